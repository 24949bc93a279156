"""Symbolic reverse-mode autodiff: the VJP table and the driver."""
from .reverse import grad
from .vjp import VJP, unbroadcast

__all__ = ["grad", "VJP", "unbroadcast"]
