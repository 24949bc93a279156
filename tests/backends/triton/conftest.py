"""Triton backend tests are skipped where triton is not installed. (Whether kernels run in
Triton's interpreter is decided once for the session, in tests/conftest.py.)"""
import pytest

try:
    import triton  # noqa: F401
    HAVE_TRITON = True
except ImportError:          # pragma: no cover
    HAVE_TRITON = False


def pytest_collection_modifyitems(config, items):
    if HAVE_TRITON:
        return
    skip = pytest.mark.skip(reason="triton is not installed")
    for item in items:
        if "backends/triton" in str(item.fspath):
            item.add_marker(skip)
