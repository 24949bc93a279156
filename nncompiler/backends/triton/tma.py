"""Which matmul operands Hopper's Tensor Memory Accelerator (TMA) can load, and how.

On sm_90 a matmul kernel can read its A and B tiles through device-side tensor
descriptors (`tl.make_tensor_descriptor`): one `cp.async.bulk.tensor` copies a whole
tile from global to shared memory, out-of-bounds elements are zero-filled by the
hardware (no masks), and Triton's pipeliner overlaps the copies with wgmma. A
descriptor describes a 2-D row-major region: its last stride must be 1, every other
stride and the base address a multiple of 16 bytes. (Triton 3.6 rejects block
pointers for this use; descriptors work from 3.6 on.)

A transposed operand (a weight gradient reads Xᵀ) is stored with its *row* index
contiguous; the descriptor then describes the stored layout ([K, M] for A) and the
kernel transposes the loaded tile in registers (`tl.trans`), which costs nothing on
the way into shared memory.

The decision is static and per operand, made when the kernel is generated: strides
and offsets must be known integers (a symbolic stride could be anything at run time).
Whether a launch actually uses the descriptors is the `TMA` constexpr, chosen per
target by `tuning.choose` (sm_90 and newer, compiled kernels only), so one kernel
source serves every GPU and the interpreter.
"""
from __future__ import annotations

from .index import View, right_align

ALIGN_BYTES = 16
ELEMENT_BYTES = {"f32": 4}      # the wgmma operand types the matmul template loads with TMA

# how a qualifying operand is laid out in memory, per operand position (0: A[M, K], 1: B[K, N])
ROWS = "rows"          # stored as the kernel reads it: the last axis contiguous
COLUMNS = "columns"    # stored transposed: the second-to-last axis contiguous (load, then tl.trans)


def _aligned(stride, nbytes: int) -> bool:
    return isinstance(stride, int) and stride >= 0 and (stride * nbytes) % ALIGN_BYTES == 0


def operand_layout(view: View, space_shape, dtype: str) -> str | None:
    """ROWS, COLUMNS or None (pointer loads): whether a tensor descriptor can read this matmul
    operand view inside an iteration space of `space_shape` (batch dims, then M and N)."""
    nbytes = ELEMENT_BYTES.get(dtype)
    if nbytes is None or len(view.shape) < 2:
        return None
    outer, inner = view.strides[-2], view.strides[-1]
    if inner == 1 and isinstance(outer, int) and outer > 0 and _aligned(outer, nbytes):
        layout, stride, extent = ROWS, outer, view.shape[-1]
    elif outer == 1 and isinstance(inner, int) and inner > 0 and _aligned(inner, nbytes):
        layout, stride, extent = COLUMNS, inner, view.shape[-2]
    else:
        return None
    # rows that do not overlap (a slice or the whole buffer, never a window of another view)
    if not isinstance(extent, int) or stride < extent:
        return None
    # the descriptor's base is the operand's start for this program's batch element
    for j, oj in enumerate(right_align(view.shape[:-2], space_shape[:-2])):
        if oj is not None and not _aligned(view.strides[j], nbytes):
            return None
    if not all(isinstance(t, int) for t in view.offset) or not _aligned(sum(view.offset), nbytes):
        return None
    return layout


def descriptor_lines(var: str, base: str, layout: str, rows: str, cols: str, stride: str,
                     block_rows: str, block_cols: str) -> str:
    """The `make_tensor_descriptor` statement for operand `var` (a or b) of logical shape
    [rows, cols] whose non-unit stride is `stride`."""
    if layout == COLUMNS:
        rows, cols, block_rows, block_cols = cols, rows, block_cols, block_rows
    return (f"{var}_desc = tl.make_tensor_descriptor({base}, shape=[{rows}, {cols}], strides=[{stride}, 1], "
            f"block_shape=[{block_rows}, {block_cols}])")


def descriptor_load(var: str, layout: str, row: str, col: str) -> str:
    """The tile of operand `var` at (row, col) of its logical shape, as the kernel uses it."""
    if layout == COLUMNS:
        return f"tl.trans({var}_desc.load([{col}, {row}]))"
    return f"{var}_desc.load([{row}, {col}])"


def available() -> bool:
    """Whether this Triton has device-side tensor descriptors (3.6 and newer)."""
    try:
        import triton.language as tl
    except ImportError:
        return False
    return hasattr(tl, "make_tensor_descriptor")
