"""Reading training data: CSV, .npy and .npz files, validation splits, batches.

The work is split by concern; this module keeps the names callers import:
datafile.py (opening files, errors), csvfile.py (CSV/TSV), arrays.py (.npy,
.npz), batching.py (splits, batches), datacheck.py (arrays against a model's
declarations).
"""
from .arrays import read_array, read_npz
from .batching import batches, split_validation
from .csvfile import BLOCK_ROWS, read_csv
from .datacheck import check_against, check_labels, label_classes

__all__ = ["BLOCK_ROWS", "batches", "check_against", "check_labels", "label_classes", "read_array", "read_csv", "read_npz",
           "split_validation"]
