"""The Triton caches cannot be poisoned (issue 13, finding 3): generated modules run from
the text nnc generated, never a planted bytecode file; compiled kernels (cubins) are
loaded only when their hash checks out; the cache root is private; a corrupt entry is rebuilt."""
import base64
import importlib._bootstrap_external as bootstrap
import json
import os
import stat
import sys

import pytest

from nncompiler.backends.triton import aot, cache
from nncompiler.backends.triton.kernel_module import load_module
from nncompiler.cachefs import read_entry, seal
from nncompiler.errors import NNCError

SOURCE = "VALUE = 1\n"
EVIL = "import os; os.environ['NNC_PWNED'] = '1'; VALUE = 666\n"


@pytest.fixture()
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NNC_PWNED", raising=False)
    return tmp_path / "cache"


def test_a_planted_pyc_is_never_run(cache_root):
    path = cache.write_module("planted", SOURCE)
    st = os.stat(path)
    # bytecode of other code, stamped with the real file's mtime and size: what importlib trusts
    pyc = bootstrap._code_to_timestamp_pyc(compile(EVIL, str(path), "exec"), int(st.st_mtime), st.st_size)
    pycache = path.parent / "__pycache__"
    pycache.mkdir()
    (pycache / f"{path.stem}.{sys.implementation.cache_tag}.pyc").write_bytes(pyc)
    mod = load_module("planted", SOURCE)
    assert mod.VALUE == 1 and "NNC_PWNED" not in os.environ


def test_a_changed_or_non_utf8_module_file_is_rewritten(cache_root):
    path = cache.write_module("mod", SOURCE)
    path.write_bytes(b"\xff\xfe not utf-8 \x80")
    assert cache.write_module("mod", SOURCE) == path and path.read_bytes() == SOURCE.encode()
    path.write_text(EVIL)
    assert load_module("mod2", SOURCE).VALUE == 1 and "NNC_PWNED" not in os.environ


def test_loaded_modules_are_shared_and_their_keep_is_bounded(cache_root, monkeypatch):
    from nncompiler.backends.triton import kernel_module
    monkeypatch.setattr(kernel_module, "MAX_MODULES", 2)
    monkeypatch.setattr(kernel_module, "_MODULES", type(kernel_module._MODULES)())
    first = load_module("keep", "VALUE = 1\n")
    assert load_module("keep", "VALUE = 1\n") is first            # one module per source: shared kernels
    load_module("keep", "VALUE = 2\n")
    load_module("keep", "VALUE = 1\n")                            # used again: the newest
    load_module("keep", "VALUE = 3\n")
    assert len(kernel_module._MODULES) == 2
    assert load_module("keep", "VALUE = 1\n") is first            # kept over VALUE = 2, used longer ago
    again = load_module("keep", "VALUE = 2\n")                    # dropped, executed afresh
    assert again.VALUE == 2 and len(kernel_module._MODULES) == 2


def test_a_flipped_byte_in_a_cached_cubin_is_detected(cache_root, tmp_path):
    entry = {"name": "k", "num_warps": 4, "cubin": base64.b64encode(b"\x7fELF native code").decode()}
    path = cache_root / "aot" / "ab" / "abcd.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(seal(json.dumps(entry).encode()))
    assert aot.read_cached(path) == entry
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x01                                     # inside the base64 cubin
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"abcd\.json: cache entry failed its integrity check"):
        assert aot.read_cached(path) is None             # rebuilt by the caller, never loaded


def test_a_corrupt_or_old_entry_is_rebuilt_silently(cache_root):
    path = cache_root / "e.json"
    cache_root.mkdir(mode=0o700)
    path.write_bytes(b"\xff\xfe\x00 not utf-8")
    assert aot.read_cached(path) is None
    path.write_bytes(seal(b"\xff not json"))
    assert aot.read_cached(path) is None
    assert read_entry(cache_root / "missing") is None


def test_the_cache_root_is_created_private(cache_root):
    root = cache.cache_dir()
    assert root == cache_root and stat.S_IMODE(os.stat(root).st_mode) == 0o700


def test_a_group_writable_cache_is_refused(cache_root):
    cache_root.mkdir(mode=0o700)
    os.chmod(cache_root, 0o775)
    with pytest.raises(NNCError, match=r"writable by group or others \(mode 0775\).*chmod go-w .*NNC_CACHE_DIR"):
        cache.write_module("m", SOURCE)


def test_a_cache_owned_by_another_user_is_refused(cache_root, monkeypatch):
    cache_root.mkdir(mode=0o700)
    me = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: me + 4242)  # the folder is then someone else's, root or not
    with pytest.raises(NNCError, match=r"belongs to another user \(uid \d+, you are \d+\).*NNC_CACHE_DIR"):
        cache.cache_dir()
