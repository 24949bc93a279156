"""The implementations a case runs on: nnc's CPU backends and the peers.

Each implementation turns a `Problem` (bench/cases.py) into a `Runner`: `call()` is the
timed unit, and the contract is the same for everyone and mirrors nnc's API:

  * train:       one optimizer step on the batch; returns the batch's loss (computed before
                 the update) as a Python float, as `m.step(x=, y=)["loss"]` does;
  * predict:     the softmax probabilities as a host numpy array, as `m.forward(x=)`;
  * elementwise: y as a host numpy array.

Inputs are converted to each framework's array type once, outside the timed call (torch
tensors, jax device arrays, tf tensors); nnc's numpy backend takes numpy arrays, which are
its device arrays. `params()` returns a training runner's current parameters in nnc's
names and layout, for the first-step check. Frameworks are imported lazily: a peer that
is not installed is skipped with a note.

The implementations live one family a module: peers_base (the interface and thread
limits), peers_nnc, peers_numpy (the reference), peers_torch, peers_jax, peers_tf, with
peers_deep holding cases F and G for torch and jax (and F's hand-written numpy step).
"""
from __future__ import annotations

from .peers_base import Impl
from .peers_jax import JaxPeer
from .peers_nnc import NNC
from .peers_numpy import NumpyPeer
from .peers_tf import KerasPeer, TFPeer
from .peers_torch import TorchCompilePeer, TorchPeer


def all_impls() -> list[Impl]:
    """In the order they run within a case: the reference first, nnc next, then the peers."""
    return [NumpyPeer(), NNC("numpy"), NNC("mlir"), TorchPeer(), TorchCompilePeer(), JaxPeer(),
            TFPeer(), KerasPeer()]
