"""Regenerate multilabel.csv: a small synthetic, non-exclusive multi-label dataset.

    python examples/data/make_multilabel.py            # writes next to this script

400 rows, 6 float features x0..x5 drawn from N(0, 1) with a fixed seed, and
three binary labels that are fixed simple functions of the features (any
combination of labels can be on at once, so it needs one sigmoid per label,
not a softmax):

    l0 = x0 + x1 > 0          (linear)
    l1 = x2 * x3 > 0          (XOR-like: needs a hidden layer)
    l2 = x4 > 0.5 * x5        (linear, correlated with nothing else)

The labels are noise-free, so a small MLP (6 -> 32 -> 3) reaches well over
0.9 per-label accuracy.  Features are written with 4 decimals.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

SEED = 20240601
ROWS = 400


def make(rows: int = ROWS, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.round(rng.standard_normal((rows, 6)), 4).astype(np.float32)
    labels = np.stack(
        [
            x[:, 0] + x[:, 1] > 0,
            x[:, 2] * x[:, 3] > 0,
            x[:, 4] > 0.5 * x[:, 5],
        ],
        axis=1,
    ).astype(np.int32)
    return x, labels


def write(path: Path, rows: int = ROWS, seed: int = SEED) -> None:
    x, labels = make(rows, seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([f"x{i}" for i in range(x.shape[1])] + [f"l{j}" for j in range(labels.shape[1])])
        for xr, lr in zip(x, labels):
            w.writerow([f"{v:.4f}" for v in xr] + [str(int(v)) for v in lr])


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("multilabel.csv")
    write(out)
    print(f"wrote {out}")
