"""The one table ONNX op_type -> lowering function, assembled from the op-family modules."""
from __future__ import annotations

from . import ops_loop, ops_math, ops_nn, ops_rnn, ops_shape, ops_trig

OPS = {**ops_math.OPS, **ops_trig.OPS, **ops_shape.OPS, **ops_nn.OPS, **ops_rnn.OPS, **ops_loop.OPS}


def unsupported() -> str:
    return f"supported operators: {', '.join(sorted(OPS))}"
