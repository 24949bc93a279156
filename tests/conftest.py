"""Make the source tree importable when nncompiler is not installed."""
import importlib.util
import os
import sys

if importlib.util.find_spec("nncompiler") is None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
