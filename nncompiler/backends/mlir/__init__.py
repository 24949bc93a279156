"""MLIR backend: standard MLIR (linalg on tensors) compiled and run on the CPU through IREE.

    plan.py     the fusion plan: clusters of elementwise ops (+ reductions), folded transposes
    emit.py     MLIR text: func / arith / math / tensor / linalg, symbolic batch dims as `?`
    runtime.py  IREE: compile for the host CPU (disk cache), device arrays, calls

`Backend.compile(graph)` emits one `func.func`, compiles it with IREE (llvm-cpu) and
returns a callable running the whole graph (a training step included) as one call;
parameters and optimizer state stay in IREE device arrays between steps. IREE is
imported only when something runs, so `nnc compile --backend mlir --emit mlir` works
without it; running without it is a one-line error naming the extra to install.
"""
from __future__ import annotations

import numpy as np

from ..base import Backend as _Protocol
from .emit import emit_module
from .plan import build_plan

STAGES = ("mlir", "vmfb")


class Backend(_Protocol):
    """IREE device arrays; one compiled IREE function per graph."""

    name = "mlir"
    stages = STAGES

    def __init__(self):
        self._runtime = None
        self._functions: dict[str, object] = {}   # func.func text -> compiled callable

    @property
    def runtime(self):
        if self._runtime is None:
            from .runtime import Runtime
            self._runtime = Runtime.get()
        return self._runtime

    # -- the backend protocol ---------------------------------------------------------------
    def emit(self, graph) -> str:
        return emit_module([graph], precision=self.precision)[0]

    def compile(self, graph, donate=()):
        """One graph -> a callable; a function `compile_model` already built is reused.
        (`donate` is not used: IREE allocates each call's results.)"""
        from .emit import emit_function
        text, _ = emit_function(graph, precision=self.precision)
        if text in self._functions:
            return self._functions[text]
        return self.compile_many([graph])[graph.name]

    def compile_many(self, graphs, module_name: str | None = None, header: str | None = None) -> dict:
        """Several graphs as one module (one IREE compile): {graph name: callable}."""
        from .runtime import CompiledFunction, LoadedModule, compile_vmfb
        text, emitters = emit_module(list(graphs), module_name, header, self.precision)
        module = LoadedModule(self.runtime, compile_vmfb(text))
        out = {}
        for name, fe in emitters.items():
            out[name] = CompiledFunction(module, name, fe, text)
            self._functions[fe.text] = out[name]
        return out

    def compile_model(self, model) -> dict:
        """Every graph of a model (predict, train_step, evaluate, gradients) as one IREE module,
        the module `--emit mlir` prints; later `compile(graph)` calls for these graphs reuse it."""
        graphs = [model.graph(k) for k in _kinds(model)]
        return self.compile_many(graphs, model.lowered.name, _header(model, graphs))

    def to_device(self, array):
        runtime = self._runtime
        if runtime is None:
            from .runtime import iree_available
            if not iree_available():  # emitting MLIR needs no IREE; running it does (compile says so)
                return np.array(array)
            runtime = self.runtime
        return runtime.to_device(array)

    def to_numpy(self, value):
        if hasattr(value, "to_host"):
            return value.to_host()  # a mapped view; it keeps the device buffer alive
        return np.asarray(value)

    # -- nnc compile --emit mlir|vmfb, and the summary -------------------------------------------
    def emit_stage(self, model, stage: str, target: str | None = None):
        graphs = [model.graph(k) for k in _kinds(model)]
        text = emit_module(graphs, model.lowered.name, header=_header(model, graphs), precision=self.precision)[0]
        if stage == "mlir":
            return text
        if stage == "vmfb":
            from .runtime import FLAGS, compile_vmfb
            flags = FLAGS
            if target:
                flags = tuple(f for f in FLAGS if not f.startswith("--iree-llvmcpu-target-cpu="))
                flags += (f"--iree-llvmcpu-target-cpu={target}",)
            return compile_vmfb(text, flags)
        raise ValueError(stage)

    def summary_lines(self, model) -> list[str]:
        out = ["  mlir (linalg on tensors, IREE llvm-cpu):"]
        for kind in [k for k in _kinds(model) if k in ("predict", "train_step")]:
            plan = build_plan(model.graph(kind))
            s = plan.stats()
            singles = sum(1 for n in plan.live if n.op not in ("arg",) and n.id not in plan.member_of
                          and n.id not in plan.inline)
            matmuls = sum(1 for n in plan.live if n.op == "matmul")
            out.append(f"    {kind}: {s['clusters']} linalg.generic ({s['fused']} fusing {s['fused_ops']} IR ops), "
                       f"{matmuls} matmul, {singles - matmuls} other ops")
        return out


def _header(model, graphs) -> str:
    return (f"{model.lowered.name}: {', '.join(g.name for g in graphs)}; generated by nncompiler "
            f"from {model.lowered.file}")


def _kinds(model) -> tuple[str, ...]:
    """The graphs a model runs: a graph block only predicts; a model without an optimizer
    has no training step."""
    if model.lowered.kind != "model":
        return ("predict",)
    if model.lowered.optimizer is None:
        return ("predict", "evaluate", "gradients")
    return ("predict", "train_step", "evaluate", "gradients")


__all__ = ["Backend", "STAGES"]
