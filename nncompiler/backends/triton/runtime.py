"""The compiled graph: a planned, generated graph run on torch tensors, kernel after kernel.

* Buffers are torch tensors on the device: `cuda` when a GPU is present, else CPU
  tensors with the kernels run by the Triton interpreter (interpreter.py).
* Arguments become device tensors and bind the symbolic sizes (arguments.py);
  intermediates live in the slots of the memory plan, pooled per set of sizes
  (memory_plan.py); eager outputs are fresh tensors: the Model keeps them as the next
  step's state.
* Each launch is prepared once per set of sizes (launch.py: config, grid, argument
  recipe) and kept here, so a step after the first is list lookups and calls. On a GPU,
  fixed-shape calls are captured in a CUDA graph and replayed (one launch of the whole
  step; `NNC_CUDA_GRAPHS=0` turns it off). graphs.py owns the static buffers: batches
  are uploaded into them from pinned memory, donated state ping-pongs between two buffer
  sets, nothing is copied or synced per step.
* Ops a kernel template does not cover run as torch operations on the device, one op
  at a time (`fallback: torch` in the plan, fallback.py) -- never through numpy; a
  long scan runs as a host loop over its body's own CompiledGraph (scan_runner.py).
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from ...ir.graph import Graph
from .arguments import Arguments
from .fallback import constant_tensor, run_fallback, torch_dtype
from .graphs import StepGraphs
from .index import View, eval_dim, eval_shape
from .kernel_module import load_module
from .launch import Launcher, install_scratch_allocator
from .memory_plan import MemoryPlan

MAX_PREPARED = 8    # sets of sizes whose prepared launches are kept


class CompiledGraph:
    """A graph compiled to Triton kernels; call with a dict of argument name -> array."""

    def __init__(self, graph: Graph, plan, kernels, source: str, device: str, interpret: bool,
                 autotune: bool = False, donate=(), cuda_api=None, bodies=None, captures: bool = True):
        # donate: state arguments the step returns a `new.` value for; the runtime owns them,
        # so captured graphs update them in place (graphs.py). cuda_api: a stand-in for the
        # torch.cuda calls of graph capture (tests); given, graphs are used on any device.
        # bodies: scan node id -> its body's CompiledGraph, for the plan's `loop` groups;
        # captures=False for such a body: it runs inside its caller's captured graph.
        import torch
        self.graph = graph
        self.plan = plan
        self.source = source
        self.device = device
        self.interpret = interpret
        self.kernels = {k.index: k for k in kernels}
        self.arguments = Arguments(graph, device)
        self.arg_names = self.arguments.names
        self.launches = 0
        self.bodies = dict(bodies or {})
        module = load_module(graph.name, source) if kernels else None
        fns = {k.index: getattr(module, k.name) for k in kernels}
        self.consts = {n.id: constant_tensor(n, device) for n in graph.nodes if plan.cls[n.id] == "constbuf"}
        self.memory = MemoryPlan(graph, plan, device)
        self._prepared: dict = {}   # sizes -> per kernel group: (group, its stores' shapes and slots, launch)
        self._torch = torch
        self._dtypes = {n.id: torch_dtype(n.dtype) for n in graph.nodes}
        self.launcher = Launcher(self.kernels, fns, device, interpret,
                                 autotune=device == "cuda" and not interpret and autotune)
        # kernels that may read operands through TMA descriptors need Triton's scratch allocator
        self._descriptors = not interpret and any(any(k.info.get("tma", ())) for k in kernels)
        self._graphs = None
        if captures and (cuda_api is not None or (device == "cuda" and not interpret
                                                  and os.environ.get("NNC_CUDA_GRAPHS", "1") != "0")):
            self._graphs = StepGraphs(self, donate, cuda_api)

    def node_dtype(self, nid: int):
        """The torch dtype of node `nid`'s values (scan_runner and graphs.py allocate results)."""
        return self._dtypes[nid]

    @property
    def reads_descriptors(self) -> bool:
        """Whether a kernel may read an operand through a TMA descriptor (a 16-byte-aligned base)."""
        return self._descriptors

    def pool(self, sizes: dict) -> list:
        """The intermediate buffers at these sizes (memory_plan.py); a captured graph bakes them in."""
        pool, new = self.memory.pool(sizes)
        if new:     # launches prepared for these sizes name split-K scratch slots of the old pool
            self._prepared.pop(tuple(sorted(sizes.items())), None)
        return pool

    # -- launch configs (launch.py) -----------------------------------------------------------
    def launch_configs(self) -> dict[str, dict]:
        """kernel name -> the constexprs of its launches so far (launch.Launcher.launch_configs)."""
        return self.launcher.launch_configs()

    def pin(self, kernel_name: str, config: tuple[dict, int, int | None]):
        """Launch kernel `kernel_name` with this (constexprs, num_warps, num_stages) at every size:
        what tests use to run split-K and grouped orders under the interpreter."""
        self.launcher.pin(kernel_name, config)
        self._prepared.clear()

    # -- running ------------------------------------------------------------------------------
    def __call__(self, args: dict) -> dict:
        for name in self.arg_names:
            if name not in args:
                raise KeyError(f"{self.graph.name}: missing argument {name!r}")
        if self._graphs is not None:    # host arrays go straight into the graph's static inputs
            out = self._graphs.run({name: args[name] for name in self.arg_names})
            if out is not None:
                return out
        return self.run({name: self.arguments.tensor_arg(name, args[name]) for name in self.arg_names})

    def static_inputs(self, args: dict) -> dict | None:
        """A captured CUDA graph's input buffers for these shapes (graphs.py), or None."""
        return self._graphs.static_inputs(args) if self._graphs is not None else None

    def run(self, tensors: dict, into: dict | None = None, sizes: dict | None = None) -> dict:
        """One eager pass; `into` (output node -> tensor) names buffers to store outputs in;
        `sizes`, the symbolic sizes when the caller has bound them (a scan's every step)."""
        g = self.graph
        sizes = self.arguments.bind(tensors) if sizes is None else sizes
        bufs: dict = dict(self.consts)
        for name, t in tensors.items():
            bufs[self.arguments.nodes[name].id] = t
        pool = self.pool(sizes)
        if self._descriptors:
            install_scratch_allocator(self.device)
        if self.interpret:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._steps(bufs, sizes, pool, into or {})
        else:
            self._steps(bufs, sizes, pool, into or {})
        for o, v in self.plan.output_views.items():
            bufs[o] = self._view(v, bufs, sizes)
        return {name: bufs[i] for name, i in g.outputs}

    def _view(self, v: View, bufs, sizes):
        base = bufs[v.base]
        shape = eval_shape(v.shape, sizes)
        strides = tuple(eval_dim(s, sizes) for s in v.strides)
        off = sum(eval_dim(t, sizes) for t in v.offset)
        return base.as_strided(shape, strides, base.storage_offset() + off)

    def _steps(self, bufs, sizes, pool, into):
        key = tuple(sorted(sizes.items()))
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = []
            for k in self.plan.kernels:
                shapes = [(n, eval_shape(self.graph[n].shape, sizes), self.memory.slot_of.get(n)) for n in k.stores]
                prepared.append((k, shapes, None))
            if len(self._prepared) > MAX_PREPARED:
                self._prepared.clear()
            self._prepared[key] = prepared
        for i, (k, shapes, launch) in enumerate(prepared):
            if k.kind in ("fallback", "loop"):
                if k.kind == "loop":
                    self._loop(k, bufs, sizes)
                else:
                    run_fallback(self.graph, k.nodes, bufs, sizes, self.device)
                    self.launches += 1
                for n in k.nodes:       # a torch op or a loop allocates its own results: move them into place
                    if n in into:
                        into[n].copy_(bufs[n])
                        bufs[n] = into[n]
                continue
            for n, shape, slot in shapes:
                bufs[n] = pool[slot].view(shape) if slot is not None else into[n] if n in into else \
                    self._torch.empty(shape, dtype=self._dtypes[n], device=self.device)
            if launch is None:          # first run at these sizes: block sizes, grid, argument recipe
                ks = self.kernels[k.index]
                launch = self.launcher.launch(ks, bufs, sizes, pool)
                if self.launcher.settled(ks, key):
                    prepared[i] = (k, shapes, launch)
            fn, grid, recipe, ints, blocks, opts = launch
            if 0 in grid:
                continue
            args = [bufs[r] if how == 0 else pool[r] if how == 2 else r for how, r in recipe]
            fn[grid](*args, *ints, **blocks, **opts)
            self.launches += 1

    def _loop(self, k, bufs, sizes):
        """A scan: its body's kernels once per step (scan_runner.py); its scan_outs are the results."""
        from .scan_runner import run_scan
        g = self.graph
        scan = g[k.nodes[0]]
        operands = [self._view(self.plan.operand_views[(scan.id, p)], bufs, sizes) for p in range(len(scan.inputs))]
        results, launches = run_scan(self.bodies[scan.id], scan.attr, operands, self.device)
        for n in k.nodes[1:]:
            bufs[n] = results[g[n].attr["index"]]
        self.launches += launches
