"""fsutil.atomic_write: exclusive temporary files beside the target, the modes a shell
would give, symlinks written through (issue 13, findings 5 and 15)."""
import os
import stat

import numpy as np
import pytest

from nncompiler.cli import main
from nncompiler.fsutil import atomic_write, current_umask


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture()
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_the_umask_is_read_without_changing_it(umask022):
    assert current_umask() == 0o022
    assert current_umask() == 0o022


def test_a_new_file_gets_the_mode_the_umask_implies(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a.txt", "x")
        assert mode(tmp_path / "a.txt") == 0o640
        os.umask(0o022)
        atomic_write(tmp_path / "b.txt", "x")
        assert mode(tmp_path / "b.txt") == 0o644
    finally:
        os.umask(old)


def test_an_existing_file_keeps_its_mode(tmp_path, umask022):
    p = tmp_path / "keep.txt"
    p.write_text("old")
    os.chmod(p, 0o604)
    atomic_write(p, "new")
    assert p.read_text() == "new" and mode(p) == 0o604


def test_a_symlink_is_written_through(tmp_path, umask022):
    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    assert atomic_write(link, "new") == target
    assert link.is_symlink() and target.read_text() == "new"
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "made.txt")
    atomic_write(dangling, "made")
    assert (tmp_path / "made.txt").read_text() == "made" and dangling.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "link.txt", "made.txt", "real.txt"]


def test_graph_output_never_follows_a_planted_temporary_symlink(tmp_path, capsys, umask022):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "g.svg"
    for suffix in (f".tmp{os.getpid()}", ".tmp"):           # the old fixed name, and the prefix of the new ones
        os.symlink(victim, str(out) + suffix)
    assert main(["graph", "examples/iris.nn", "-o", str(out)]) == 0
    assert victim.read_text() == "precious"
    assert out.read_text().lstrip().startswith(("<?xml", "<svg")) and mode(out) == 0o644


def test_save_to_a_symlink_writes_its_target(tmp_path, capsys, umask022):
    target = tmp_path / "weights.npz"
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    assert main(["run", "examples/linefit.nn", "--epochs", "1", "--save", str(link)]) == 0
    assert link.is_symlink() and target.is_file() and mode(target) == 0o644
    with np.load(target) as z:
        assert len(z.files) > 0
