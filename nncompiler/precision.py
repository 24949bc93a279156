"""Precision modes of matmuls (and convolutions, which lower to matmuls): fp32, tf32, bf16.

    fp32   IEEE float32 products and sums (the default, as torch's: no TF32)
    tf32   operands rounded to TF32 (10 mantissa bits), products summed in float32:
           the tensor-core TF32 path (`tl.dot(..., input_precision="tf32")`)
    bf16   mixed precision as `torch.autocast(dtype=torch.bfloat16)` does it: matmul
           operands in bfloat16 (7 mantissa bits), accumulation in float32; everything
           else (reductions, softmax, the loss, the optimizer update, the master
           weights) stays float32

Only float32 matmul operands change; every backend applies the same rounding
(round to nearest, ties to even) so CPU results predict GPU results: a product of two
rounded operands is exact in float32, so rounding then multiplying in float32 is what
the tensor core computes, up to the order of the float32 sums.
"""
from __future__ import annotations

import numpy as np

PRECISIONS = ("fp32", "tf32", "bf16")
DEFAULT = "fp32"

#: mantissa bits dropped from a float32 (23 bits) by each mode's rounding
DROPPED_BITS = {"tf32": 13, "bf16": 16}


def check(precision) -> str:
    """The precision name, or an NNCError naming the choices."""
    from .errors import NNCError, did_you_mean
    if precision is None:
        return DEFAULT
    if precision not in PRECISIONS:
        raise NNCError(f"unknown precision '{precision}'{did_you_mean(str(precision), PRECISIONS)} "
                       f"(choose {', '.join(PRECISIONS)})")
    return precision


def round_mantissa(x, dropped: int):
    """float32 `x` rounded to 23 - `dropped` mantissa bits, nearest with ties to even,
    kept as float32. Inf and NaN pass through (a NaN stays a NaN: its payload may change)."""
    x = np.asarray(x, dtype=np.float32)
    bits = x.view(np.uint32)
    half = np.uint32((1 << (dropped - 1)) - 1)
    lsb = (bits >> np.uint32(dropped)) & np.uint32(1)
    mask = np.uint32((0xFFFFFFFF << dropped) & 0xFFFFFFFF)
    rounded = ((bits + half + lsb) & mask).view(np.float32)
    # inf/nan: adding could carry a NaN into inf or an inf's exponent into a NaN
    return np.where(np.isfinite(x), rounded, x)


def round_bf16(x):
    """float32 -> the nearest bfloat16, as float32."""
    return round_mantissa(x, 16)


def round_tf32(x):
    """float32 -> the nearest TF32, as float32."""
    return round_mantissa(x, 13)


def rounder(precision: str):
    """The numpy rounding of a mode's matmul operands, or None for fp32."""
    return {"tf32": round_tf32, "bf16": round_bf16}.get(precision)
