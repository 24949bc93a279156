"""The one protocol every backend implements (`nncompiler.backends.<name>.Backend`).

The runtime (`Model`, `State`), the CLI and `report` talk to a backend only through
these methods, never through `inspect` or a backend's private attributes, so adding a
backend means subclassing this class and filling in the abstract methods.

Arrays live on the backend's device between calls ("device arrays": numpy arrays for
numpy, torch tensors for triton, IREE buffers for mlir); the runtime moves values in
with `to_device` and out with `to_numpy`, and keeps everything else on the device.

A backend compiles whatever graph it is given: it never looks at a graph's name to
decide how. Where a graph should run somewhere else (the `init` graph, which always
runs on numpy so every backend starts from the same numbers), the caller picks that
backend explicitly.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

#: A compiled graph: {argument name: device array} -> {output name: device array}.
Compiled = Callable[[dict], dict]


class Backend:
    """A backend: compile a graph to a callable, place and fetch arrays, run.

    Required: `compile`, `emit`, `to_device`, `to_numpy`. The rest have defaults that
    are right for a backend with no stages of its own and no special copying."""

    #: the name `--backend` and `nnc.compile(..., backend=...)` use
    name: str = ""
    #: `--emit` stages this backend adds to the core ones (ir, grad, opt, python, passes)
    stages: tuple[str, ...] = ()
    #: compiled graphs take batches as host (numpy) arrays and upload them themselves (triton:
    #: pinned, non-blocking, straight into a CUDA graph's inputs); else the Model calls to_device
    host_feeds: bool = False
    #: reading a device value makes the host wait for queued work (a GPU): training then sums
    #: losses on the device and checks them for NaN every few steps rather than every step
    async_device: bool = False
    #: matmul precision (precision.py): fp32, tf32 or bf16; set by `get_backend`, read by
    #: code generation, so generated code (and every cache keyed on it) differs per mode
    precision: str = "fp32"

    # -- compiling and running ----------------------------------------------------------
    def compile(self, graph, donate: tuple[str, ...] = ()) -> Compiled:
        """The graph as a callable. `donate` names arguments the callable may overwrite in
        place (state the step returns a `new.` value for); a backend may ignore it."""
        raise NotImplementedError

    def run(self, compiled: Compiled, args: dict) -> dict:
        """Call a compiled graph on device arrays; outputs stay on the device."""
        return compiled(args)

    def positional(self, compiled: Compiled, arg_names: tuple[str, ...]) -> Callable[..., dict]:
        """`compiled` as a function of its arguments in `arg_names` order, returning what `run`
        returns: a training step's hot path then builds no argument dict per call. The default
        builds it and calls `run`; a backend whose compiled code takes positional arguments
        returns that code itself."""
        run = self.run

        def call(*values):
            return run(compiled, dict(zip(arg_names, values)))
        return call

    def emit(self, graph) -> str:
        """The generated source of one graph (what `--emit` prints for it)."""
        raise NotImplementedError

    # -- arrays ---------------------------------------------------------------------------
    def to_device(self, array):
        """A numpy array (or a value of this backend) as a device array."""
        raise NotImplementedError

    def to_numpy(self, value) -> np.ndarray:
        """A device array's value on the host (a copy or a read-only view: copy before writing)."""
        raise NotImplementedError

    def all_finite(self, arrays) -> bool:
        """Whether every element of every array is finite (the NaN guard's check); a backend
        whose arrays live on a device decides it there and reads back one flag."""
        for a in arrays:
            arr = np.asarray(self.to_numpy(a))
            if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
                return False
        return True

    def copy(self, value, into=None):
        """A device array equal to `value` that later steps cannot change; `into`, a previous
        copy of the same shape and dtype, may be overwritten and returned to save an allocation."""
        return self.to_device(np.array(self.to_numpy(value), copy=True))

    # -- nnc compile --------------------------------------------------------------------------
    def emit_stage(self, model, stage: str, target: str | None = None) -> str | bytes:
        """One of `stages` for a model's graphs (text, or bytes for a binary stage)."""
        raise ValueError(f"backend '{self.name}' has no stage '{stage}'")

    def summary_lines(self, model) -> list[str]:
        """Lines `nnc compile`'s summary adds for this backend (kernel counts, ...)."""
        return []
