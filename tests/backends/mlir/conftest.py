"""Fixtures for the MLIR backend's tests (the helpers are in mlir_testlib.py)."""
from __future__ import annotations

import pytest

from mlir_testlib import get_pair


@pytest.fixture(scope="session")
def example_pair():
    """example_pair(name) -> Pair: an example compiled by both backends, once per session."""
    return get_pair
