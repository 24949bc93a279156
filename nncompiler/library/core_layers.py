"""Core layers beyond dense: dropout, reshape, concat/add, embedding, batchnorm, layernorm."""
from __future__ import annotations

LAYERS: dict = {}
