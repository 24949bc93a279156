"""Convolution and pooling layers (NHWC, Keras's layout), as compositions of primitives."""
from __future__ import annotations

LAYERS: dict = {}
