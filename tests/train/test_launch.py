"""`nnc run --nproc N` (train/launch.py) exposes nothing beyond this machine and imports
nothing from the working directory (issue 13, findings 2 and 4)."""
from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import time

import pytest

from nncompiler.train.launch import loopback_interface, rank_env

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

ROOT = pathlib.Path(__file__).resolve().parents[2]
IRIS = str(ROOT / "examples" / "iris.nn")
LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


def process_tree(root: int) -> set[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        more = {p for p, pp in parents.items() if pp in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def socket_inodes(pids) -> set[str]:
    out = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                out.add(link[8:-1])
    return out


def listening() -> dict[str, tuple[str, int]]:
    """inode -> (hex address, port) of every listening TCP socket (state 0A)."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in pathlib.Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A":
                addr, port = f[1].split(":")
                out[f[9]] = (addr, int(port, 16))
    return out


def test_ranks_listen_on_loopback_only_and_import_nothing_from_the_cwd(tmp_path):
    (tmp_path / "torch.py").write_text("open('IMPORTED-FROM-CWD', 'w').close()\nraise SystemExit(3)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNC_DIST_")}
    env["PYTHONPATH"] = str(ROOT)
    # -P: as the `nnc` script would, the command itself does not put the cwd on sys.path
    proc = subprocess.Popen([sys.executable, "-P", "-m", "nncompiler", "run", IRIS, "--epochs", "6", "--quiet",
                             "--nproc", "2"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen: dict[str, tuple[str, int]] = {}
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        mine = socket_inodes(process_tree(proc.pid))
        seen.update({i: a for i, a in listening().items() if i in mine})
        time.sleep(0.02)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not (tmp_path / "IMPORTED-FROM-CWD").exists()
    assert seen, "no listening socket of the run was observed"   # the store at least
    exposed = sorted({a for a in seen.values() if a[0] not in LOOPBACK})
    assert exposed == [], f"listening beyond loopback: {exposed}"


def test_rank_environment():
    env = rank_env(1, 2, 29500, "/abs/root")
    assert env["MASTER_ADDR"] == "127.0.0.1" and env["MASTER_PORT"] == "29500"
    assert env["RANK"] == env["LOCAL_RANK"] == "1" and env["WORLD_SIZE"] == "2"
    assert env["PYTHONSAFEPATH"] == "1" and env["PYTHONPATH"].split(os.pathsep)[0] == "/abs/root"
    assert env["GLOO_SOCKET_IFNAME"] == loopback_interface()
    assert loopback_interface() in [n for _, n in socket.if_nameindex()]
