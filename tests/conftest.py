"""Make the source tree importable when nncompiler is not installed, and keep every test's
compiled code out of the user's cache."""
import importlib.util
import os
import sys

import pytest

if importlib.util.find_spec("nncompiler") is None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session", autouse=True)
def _session_cache_dir(tmp_path_factory):
    """Compiled modules (Triton, IREE) go to a per-session directory (unless NNC_CACHE_DIR is set):
    a run neither reads stale entries from ~/.cache/nncompiler nor leaves its own there, and
    subprocesses (the CLI tests, distributed ranks) inherit the same directory."""
    if os.environ.get("NNC_CACHE_DIR"):
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NNC_CACHE_DIR", str(tmp_path_factory.mktemp("nnc_cache")))
        yield
