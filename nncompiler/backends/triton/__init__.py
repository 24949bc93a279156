"""Triton GPU backend: fusion plan, Triton codegen, runtime and ahead-of-time compilation.

    plan.py      fusion planning on the optimised IR: the Plan, built by plan_classify.py (node
                 classes, buffers), plan_conv.py (convs as implicit GEMMs: which, and how they
                 read), plan_space.py (legality: iteration spaces), plan_fuse.py (merges,
                 profitability, WhyNoFuse) and plan_describe.py (order, names, report)
    index.py     iteration spaces (union-find), index arithmetic, strided views
    ops.py       the elementwise table: primitive -> Triton expression
    codegen.py   one readable @triton.jit kernel per group, from the templates in kernels/:
                 codegen_scope.py (parameters, names), codegen_body.py (one line per op),
                 codegen_matmul.py (the matmul template filled), codegen_conv.py (a conv in it),
                 codegen_window.py (pooling windows in a pointwise kernel)
    tma.py       which matmul operands Hopper's TMA tensor descriptors can read
    tuning.py    block sizes per shape; candidate configs for the GPU autotune hook
    runtime.py   the CompiledGraph: a graph's kernels run in order on torch tensors, with
                 arguments.py (arguments as device tensors, the sizes they bind), memory_plan.py
                 (intermediates in slots pooled per set of sizes), kernel_module.py (the
                 generated module executed from its text), launch.py (config, grid and
                 arguments per kernel; TMA scratch) and fallback.py (ops run as torch calls)
    interpreter.py  whether kernels run in Triton's interpreter (no GPU) or compiled for one
    loops.py     which scans run as a host loop over their body's kernels (the rest unroll)
    scan_runner.py  that loop at run time: step slices, stacked outputs in place, carries
    graphs.py    CUDA graphs over static buffers: pinned uploads, donated state, device sums
    aot.py       ttir / ttgir / llir / ptx / cubin for a target, with an on-disk cache
    cache.py     the cache directory and atomic writes

`nnc.compile(path, backend="triton")` gives the usual Model API; `nnc compile FILE.nn
--backend triton --emit kernels|triton|ttir|ttgir|llir|ptx|cubin [--target sm_90]`
prints each stage. See docs/triton.md.
"""
from __future__ import annotations

import numpy as np

from ...errors import NNCError
from ..base import Backend as _Protocol

STAGES = ("kernels", "triton", "ttir", "ttgir", "llir", "ptx", "cubin")


def _kinds(model) -> tuple[str, ...]:
    return ("predict", "train_step") if model.lowered.kind == "model" else ("predict",)


def _batch_sizes(model) -> dict:
    """The sizes a report assumes: the train block's batch if it names one, else a large batch."""
    from .tuning import ASSUMED
    train = getattr(model.lowered, "train", None)
    batch = getattr(train, "batch", None)
    return {"B": batch if isinstance(batch, int) else ASSUMED}


class Backend(_Protocol):
    """Kernels generated with Triton; device arrays are torch tensors (`cuda`, or CPU tensors
    run through the Triton interpreter on a machine without a GPU)."""

    name = "triton"
    stages = STAGES

    def __init__(self, fallback_ops=(), host_rng: bool = False, autotune: bool | None = None):
        # fallback_ops: primitives run through torch instead of a kernel (exercises the
        # fallback path); host_rng: draw rng_uniform (dropout) from numpy's stream on the
        # host, exactly as the reference backend does, instead of Philox on the device;
        # autotune: time candidate configs once per shape on a GPU (None: NNC_AUTOTUNE=1),
        # refused without one (the shape table in tuning.py decides there).
        self.fallback_ops, self.host_rng = tuple(fallback_ops), host_rng
        if autotune is None:
            import os
            autotune = os.environ.get("NNC_AUTOTUNE") == "1"
        self.autotune = bool(autotune)
        self._device = None
        self._interpret = None
        self._generated: dict = {}
        self.cuda_api = None        # a stand-in for torch.cuda's graph calls (tests: graphs.py)

    # the Model passes batches as host arrays: the runtime uploads them into a captured
    # graph's static inputs itself (pinned, non-blocking), instead of to_device's blocking copy
    host_feeds = True
    # the same code path with or without a GPU (the interpreter on CPU tensors), so that
    # what the tests count is what a GPU runs
    async_device = True

    # -- device ---------------------------------------------------------------------------
    @property
    def device(self) -> str:
        if self._device is None:
            import torch
            self._device = "cuda" if torch.cuda.is_available() else "cpu"
        return self._device

    @property
    def interpret(self) -> bool:
        if self._interpret is None:
            from .interpreter import prepare
            self._interpret = prepare(self.device)
        return self._interpret

    def to_device(self, array):
        import torch
        if isinstance(array, torch.Tensor):
            return array.to(self.device)
        # np.require, not np.ascontiguousarray: that one makes a 0-d scalar shape (1,), and a
        # step whose state changes shape from (1,) to () recaptures its CUDA graph
        arr = np.require(np.asarray(array), requirements="C")
        return torch.from_numpy(arr.copy() if not arr.flags.writeable else arr).to(self.device)

    def all_finite(self, arrays) -> bool:
        """Whether every element of every array is finite, decided on the device: one host
        sync for the whole list (train/safety.py's NaN guard calls this)."""
        import torch
        flags = [torch.isfinite(a).all() for a in arrays
                 if isinstance(a, torch.Tensor) and a.is_floating_point()]
        others = [a for a in arrays if not isinstance(a, torch.Tensor)]
        host = all(np.isfinite(np.asarray(a)).all() for a in others if np.asarray(a).dtype.kind == "f")
        return host and (not flags or bool(torch.stack(flags).all()))

    def to_numpy(self, value):
        import torch
        if isinstance(value, torch.Tensor):
            return value.detach().cpu().numpy()
        return np.asarray(value)

    def copy(self, value, into=None):
        import torch
        if not isinstance(value, torch.Tensor):
            return super().copy(value, into)
        if into is not None and into is not value and isinstance(into, torch.Tensor) \
                and into.shape == value.shape and into.dtype == value.dtype and into.device == value.device:
            return into.copy_(value)
        return value.clone()   # stays on the GPU

    # -- compilation ----------------------------------------------------------------------
    def plan(self, graph):
        return self.generated(graph)[0]

    def generated(self, graph):
        """(plan, module source, kernel sources) of a graph, cached per graph."""
        key = id(graph)
        hit, source = self._generated.get(key, (None, None))
        if hit is None or source is not graph:
            from .codegen import generate
            from .loops import loops_or_unrolls
            from .plan import plan_graph
            # plan.graph: short scans unrolled, long ones time-major `loop` groups whose bodies
            # are generated on their own (loops.py), fused primitives expanded
            plan = plan_graph(loops_or_unrolls(graph), self.fallback_ops, self.host_rng)
            text, kernels = generate(plan, precision=self.precision)
            hit = (plan, text, kernels)
            self._generated[key] = (hit, graph)
        return hit

    def units(self, graph) -> list[tuple]:
        """(graph, plan, module source, kernel sources) of a graph, then of every looped scan
        body in it (bodies of bodies included): each is its own module of kernels."""
        plan, text, kernels = self.generated(graph)
        out = [(graph, plan, text, kernels)]
        for body in loop_bodies(plan).values():
            out.extend(self.units(body))
        return out

    def kernel_count(self, graph) -> int:
        """Kernels generated for a graph, its scan bodies' included: the same at any scan length."""
        return sum(len(kernels) for _, _, _, kernels in self.units(graph))

    def _compiled(self, graph, donate=(), cuda_api=None, captures=True):
        from .runtime import CompiledGraph
        plan, text, kernels = self.generated(graph)
        bodies = {sid: self._compiled(body, captures=False) for sid, body in loop_bodies(plan).items()}
        return CompiledGraph(plan.graph, plan, kernels, text, self.device, self.interpret, autotune=self.autotune,
                             donate=donate, cuda_api=cuda_api, bodies=bodies, captures=captures)

    def compile(self, graph, donate=()):
        # donate: captured CUDA graphs update that state in place (graphs.py); a scan body runs
        # inside its caller's graph, so only the outermost graph captures
        if self.autotune and (self.device != "cuda" or self.interpret):
            raise NNCError("--autotune times kernels on a GPU and there is none here (or TRITON_INTERPRET=1); "
                           "without one the shape table in tuning.py chooses every config")
        return self._compiled(graph, donate, self.cuda_api)

    def emit(self, graph) -> str:
        return self.generated(graph)[1]

    # -- nnc compile ------------------------------------------------------------------------
    def emit_stage(self, model, stage: str, target: str | None = None):
        from ...errors import NNCError
        if stage == "kernels":
            from .aot import parse_target
            from .tuning import launch_lines
            arch = parse_target(target)[1]
            parts = []
            for k in _kinds(model):
                for _, plan, _, kernels in self.units(model.graph(k)):
                    parts.append(plan.describe() + "\n"
                                 + "\n".join(launch_lines(kernels, _batch_sizes(model), arch)))
            return "\n\n".join(parts + self.summary_lines(model))
        if stage == "triton":
            return "\n\n".join(u[2] for k in _kinds(model) for u in self.units(model.graph(k)))
        if stage not in STAGES:
            raise NNCError(f"unknown stage {stage}")
        from .aot import compile_kernels, cubin_archive, parse_target, stage_text
        from .cache import write_module
        t = parse_target(target)
        compiled = []
        for kind in _kinds(model):
            for g, plan, text, kernels in self.units(model.graph(kind)):
                if not kernels:
                    continue
                path = write_module(g.name, text)
                res = compile_kernels(path, kernels, t)
                label = kind if g is model.graph(kind) else f"{kind}/{g.name}"   # a scan body's module
                compiled.extend((label, ks.name, res[ks.name]) for ks in kernels)
        if stage == "cubin":
            return cubin_archive(compiled, t)
        return stage_text(compiled, stage, t)

    def summary_lines(self, model) -> list[str]:
        lines = []
        for kind in _kinds(model):
            plan = self.plan(model.graph(kind))
            fb = sum(1 for k in plan.kernels if k.kind == "fallback")
            what = "training step" if kind == "train_step" else "forward pass"
            extra = f" ({fb} fallback: torch)" if fb else ""
            loops = [f"{len(self.generated(body)[2])} x {plan.graph[sid].attr['length']} steps"
                     for sid, body in loop_bodies(plan).items()]
            extra += f" (+ scan bodies: {', '.join(loops)})" if loops else ""
            lines.append(f"  kernels per {what}: {plan.launches()}{extra}")
        return lines


def loop_bodies(plan) -> dict:
    """scan node id -> body graph, for each scan the plan runs as a host loop."""
    return {k.nodes[0]: plan.graph[k.nodes[0]].attr["body"] for k in plan.kernels if k.kind == "loop"}


__all__ = ["Backend", "STAGES"]
