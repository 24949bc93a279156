"""The runtime: run a planned, generated graph on torch tensors.

* Buffers are torch tensors on the device: `cuda` when a GPU is present, else CPU
  tensors with the kernels run by the Triton interpreter (`TRITON_INTERPRET=1`, which
  must be set before triton is imported; the backend sets it when it can).
* A memory plan gives every intermediate buffer a slot; slots are reused within a
  step once their last reader has run, and allocated once per set of sizes (so
  steps after the first allocate nothing but their outputs). Eager outputs are
  fresh tensors: the Model keeps them as the next step's state.
* Each launch is a prebuilt closure (pointer list, grid recipe, block sizes); on a
  GPU, fixed-shape calls are captured in a CUDA graph and replayed (one launch of
  the whole step; `NNC_CUDA_GRAPHS=0` turns it off). graphs.py owns the static
  buffers: batches are uploaded into them from pinned memory, donated state
  ping-pongs between two buffer sets, nothing is copied or synced per step.
* Ops a kernel template does not cover run as torch operations on the device, one
  op at a time (`fallback: torch` in the plan) -- never through numpy.
"""
from __future__ import annotations

import linecache
import os
import sys
import types
import warnings
from collections import OrderedDict

import numpy as np

from ...errors import NNCError
from ...ir.graph import Builder, Graph
from ...ir.shapes import NUMPY_DTYPE, Monomial, canon_dim, numel
from .cache import write_module
from .codegen_scope import BLOCK_DEFAULTS
from .fallback import torch_dtype, torch_op
from .graphs import StepGraphs
from .index import View, eval_dim, eval_shape
from .tuning import candidates, choose, grid as launch_grid, split_scratch


# ---- mode ------------------------------------------------------------------------------

def interpreter_active() -> bool:
    """Whether triton was imported with TRITON_INTERPRET=1 (its library functions are interpreted)."""
    if "triton" not in sys.modules:
        return os.environ.get("TRITON_INTERPRET") == "1"
    import triton.language as tl
    return type(tl.sum).__name__ == "InterpretedFunction"


def prepare(device: str) -> bool:
    """Decide how kernels run on this machine; returns True for the interpreter."""
    if device == "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return False
    if "triton" not in sys.modules:
        os.environ["TRITON_INTERPRET"] = "1"
    if not interpreter_active():
        raise NNCError("the triton backend runs kernels in the Triton interpreter on a machine without a GPU, "
                       "which needs TRITON_INTERPRET=1 set before triton is imported "
                       "(export TRITON_INTERPRET=1, or import nncompiler's triton backend first)")
    return True


_MODULES: dict[str, object] = {}


def load_module(graph_name: str, source: str):
    """Write the generated source to the cache and import it (Triton reads kernel source from files)."""
    path = write_module(graph_name, source)
    key = str(path)
    if key not in _MODULES:
        # executed from the text generated here, never through importlib, which would prefer
        # a planted __pycache__/*.pyc matching only the file's mtime and size; linecache
        # serves the same text to Triton's inspect.getsource (mtime None: never re-read)
        linecache.cache[key] = (len(source), None, source.splitlines(True), key)
        mod = types.ModuleType(path.stem)
        mod.__file__ = key
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(source, key, "exec"), mod.__dict__)
        _MODULES[key] = mod
    return _MODULES[key]


def install_scratch_allocator(device: str) -> None:
    """Give Triton an allocator for the global scratch memory a kernel asks for at launch: a
    device-side tensor descriptor (TMA, tma.py) is written there. Torch allocates it, so inside
    a CUDA graph capture it comes from the graph's private pool and replays at the same address.
    Triton keeps the allocator per thread (a ContextVar), so this runs before each call's
    launches; an allocator the caller installed is left alone."""
    import triton
    set_allocator = getattr(triton, "set_allocator", None)
    if set_allocator is None:
        return
    try:
        from triton.runtime._allocation import _allocator
        current = _allocator.get()
    except (ImportError, AttributeError):
        current = None
    if current is not None and type(current).__name__ != "NullAllocator":
        return
    set_allocator(_TorchScratch(device))


class _TorchScratch:
    def __init__(self, device: str):
        self.device = device

    def __call__(self, size: int, alignment: int, stream):
        import torch
        return torch.empty(size, dtype=torch.int8, device=self.device)


# ---- the compiled graph ------------------------------------------------------------------

def constant_value(node) -> np.ndarray:
    """A constant tensor (const, seeded random_*) through the numpy backend, the reference."""
    from ..numpy import evaluate
    b = Builder("const")
    out = b.emit(node.op, (), **node.attr)
    return evaluate(b.build({"v": out}))["v"]


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
        self.arg_names = tuple(a.attr["name"] for a in graph.args)
        self._arg_nodes = {a.attr["name"]: a for a in graph.args}
        self.launches = 0
        self.bodies = dict(bodies or {})
        module = load_module(graph.name, source) if kernels else None
        self._fns = {k.index: getattr(module, k.name) for k in kernels}
        self.consts = {}
        for n in graph.nodes:
            if plan.cls[n.id] == "constbuf":
                self.consts[n.id] = torch.from_numpy(np.ascontiguousarray(constant_value(n))).to(device)
        self._binds = []
        for a in graph.args:
            for axis, d in enumerate(a.shape):
                if Monomial.parse(d).symbol is not None:
                    self._binds.append((a.attr["name"], axis, d))
        self._plan_memory()
        self._pools: OrderedDict = OrderedDict()
        self._prepared: dict = {}
        self._torch = torch
        self._dtypes = {n.id: torch_dtype(n.dtype) for n in graph.nodes}
        self._tuned: dict = {}
        self._scalars: OrderedDict = OrderedDict()
        self.autotune = device == "cuda" and not interpret and autotune
        self._pinned: dict = {}
        # kernels that may read operands through TMA descriptors need Triton's scratch allocator
        self._descriptors = not interpret and any(any(k.info.get("tma", ())) for k in kernels)
        self._graphs = None
        if captures and (cuda_api is not None or (device == "cuda" and not interpret
                                                  and os.environ.get("NNC_CUDA_GRAPHS", "1") != "0")):
            self._graphs = StepGraphs(self, donate, cuda_api)

    def node_dtype(self, nid: int):
        """The torch dtype of node `nid`'s values (scan_runner allocates a body's results)."""
        return self._dtypes[nid]

    @property
    def reads_descriptors(self) -> bool:
        """Whether a kernel may read an operand through a TMA descriptor (a 16-byte-aligned base)."""
        return self._descriptors

    # -- memory plan ----------------------------------------------------------------------
    def _plan_memory(self):
        """Give every intermediate a slot; a slot is free again once its last reader has run."""
        g = self.graph
        plan = self.plan
        fresh = set(plan.output_bases)
        last_use: dict[int, int] = {}
        for k in plan.kernels:
            for r in k.reads:
                last_use[r] = k.index
        self.slot_of: dict[int, int] = {}
        self.slots: list[tuple[str, object]] = []
        free: dict[tuple, list[int]] = {}
        live: set[int] = set()

        def key(n):
            return (g[n].dtype, canon_dim(numel(g[n].shape)))

        for k in plan.kernels:
            if k.kind not in ("fallback", "loop"):     # those allocate their own results
                for n in k.stores:
                    if n in fresh:
                        continue
                    if free.get(key(n)):
                        self.slot_of[n] = free[key(n)].pop()
                    else:
                        self.slot_of[n] = len(self.slots)
                        self.slots.append(key(n))
                    live.add(n)
            for n in sorted(live):
                if last_use.get(n, k.index) <= k.index:
                    free.setdefault(key(n), []).append(self.slot_of[n])
                    live.discard(n)

    def _pool(self, sizes: dict):
        import torch
        key = tuple(sorted(sizes.items()))
        pool = self._pools.get(key)
        if pool is None:
            pool = [torch.empty(eval_dim(n, sizes), dtype=torch_dtype(dt), device=self.device) for dt, n in self.slots]
            self._pools[key] = pool
            self._prepared.pop(key, None)    # its launches name split-K scratch slots of the old pool
            while len(self._pools) > 4:
                self._pools.popitem(last=False)
        return pool

    # -- arguments --------------------------------------------------------------------------
    def _scalar(self, value, dt: str):
        import torch
        arr = np.asarray(value, dtype=NUMPY_DTYPE[dt])
        key = (dt, arr.tobytes())
        t = self._scalars.get(key)
        if t is None:
            t = torch.from_numpy(arr.reshape(())).to(self.device)
            self._scalars[key] = t
            while len(self._scalars) > 64:
                self._scalars.popitem(last=False)
        return t

    def tensor_arg(self, name: str, value):
        import torch
        node = self._arg_nodes[name]
        dt = torch_dtype(node.dtype)
        if isinstance(value, torch.Tensor):
            t = value
            if t.device.type != torch.device(self.device).type:
                t = t.to(self.device)
            if t.dtype != dt:
                t = t.to(dt)
            t = t if t.is_contiguous() else t.contiguous()
            # a view into a bigger tensor may start anywhere; TMA descriptors (and vector loads)
            # need a 16-byte-aligned base, which every allocation the runtime makes has
            return t if t.data_ptr() % 16 == 0 else t.clone()
        arr = np.asarray(value)
        if arr.ndim == 0:
            return self._scalar(arr, node.dtype)
        return torch.from_numpy(np.ascontiguousarray(arr.astype(NUMPY_DTYPE[node.dtype], copy=False))).to(self.device)

    def bind(self, tensors: dict) -> dict:
        sizes: dict = {}
        for name, axis, sym in self._binds:
            v = int(tensors[name].shape[axis])
            if sizes.setdefault(sym, v) != v:
                raise ValueError(f"{self.graph.name}: dimension {sym} is {sizes[sym]} and {v}")
        return sizes

    # -- running ------------------------------------------------------------------------------
    def __call__(self, args: dict) -> dict:
        for name in self.arg_names:
            if name not in args:
                raise KeyError(f"{self.graph.name}: missing argument {name!r}")
        if self._graphs is not None:    # host arrays go straight into the graph's static inputs
            out = self._graphs.run({name: args[name] for name in self.arg_names})
            if out is not None:
                return out
        return self.run({name: self.tensor_arg(name, args[name]) for name in self.arg_names})

    def static_inputs(self, args: dict) -> dict | None:
        """A captured CUDA graph's input buffers for these shapes (graphs.py), or None."""
        return self._graphs.static_inputs(args) if self._graphs is not None else None

    def run(self, tensors: dict, into: dict | None = None, sizes: dict | None = None) -> dict:
        """One eager pass; `into` (output node -> tensor) names buffers to store outputs in;
        `sizes`, the symbolic sizes when the caller has bound them (a scan's every step)."""
        g = self.graph
        sizes = self.bind(tensors) if sizes is None else sizes
        bufs: dict = dict(self.consts)
        for name, t in tensors.items():
            bufs[self._arg_nodes[name].id] = t
        pool = self._pool(sizes)
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
                shapes = [(n, eval_shape(self.graph[n].shape, sizes), self.slot_of.get(n)) for n in k.stores]
                prepared.append((k, shapes, None))
            if len(self._prepared) > 8:
                self._prepared.clear()
            self._prepared[key] = prepared
        for i, (k, shapes, launch) in enumerate(prepared):
            if k.kind in ("fallback", "loop"):
                (self._loop if k.kind == "loop" else self._fallback)(k, bufs, sizes)
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
                blocks, warps, stages = self._config(ks, bufs, sizes)
                grid, ints = launch_grid(ks, sizes, blocks)
                recipe = self._recipe(ks, sizes, blocks, pool)
                opts = {"num_warps": warps} if stages is None else {"num_warps": warps, "num_stages": stages}
                launch = (self._fns[ks.index], grid, recipe, ints, blocks, opts)
                if not self.autotune or (ks.index, key) in self._tuned:
                    prepared[i] = (k, shapes, launch)
            fn, grid, recipe, ints, blocks, opts = launch
            if 0 in grid:
                continue
            args = [bufs[r] if how == 0 else pool[r] if how == 2 else r for how, r in recipe]
            fn[grid](*args, *ints, **blocks, **opts)
            self.launches += 1

    def _recipe(self, ks, sizes, blocks, pool) -> list[tuple[int, object]]:
        """How to get each argument at launch: (0, node id) a buffer, (1, value) an int, (2, slot)
        a split-K scratch tensor held in this size's pool (so a captured CUDA graph keeps it)."""
        ws, locks = split_scratch(ks, sizes, blocks)
        recipe = []
        for p in ks.params:
            if p.kind == "buf":
                recipe.append((0, p.ref))
            elif p.kind == "size":
                recipe.append((1, int(sizes[p.ref])))
            elif p.kind == "scratch":
                # counters start at 0 and the last split resets them: zeros once, reused every launch
                n, dt = (ws, self._torch.float32) if p.ref == "ws_ptr" else (locks, self._torch.int32)
                pool.append(self._torch.zeros(max(n, 1), dtype=dt, device=self.device))
                recipe.append((2, len(pool) - 1))
        return recipe

    def launch_configs(self) -> dict[str, dict]:
        """kernel name -> the constexprs of its launches so far (the last set of sizes's): what a
        report shows, e.g. which matmuls read their operands through TMA."""
        names = {k.index: k.name for k in self.kernels.values()}
        out = {names[i]: cfg[0] for (i, _), cfg in self._tuned.items()}
        out.update({names[i]: cfg[0] for i, cfg in self._pinned.items()})
        return out

    def pin(self, kernel_name: str, config: tuple[dict, int, int | None]):
        """Launch kernel `kernel_name` with this (constexprs, num_warps, num_stages) at every size:
        what tests use to run split-K and grouped orders under the interpreter."""
        ks = next(k for k in self.kernels.values() if k.name == kernel_name)
        blocks, warps, stages = config
        defaults = {b: v for b, v in BLOCK_DEFAULTS.items() if b in ks.blocks}
        self._pinned[ks.index] = ({**defaults, **blocks}, warps, stages)
        self._prepared.clear()

    def _launcher(self, ks, bufs, sizes, config):
        """A launch of kernel `ks` with `config`, its arguments (split-K scratch included) bound
        once, so timing it times the kernel alone."""
        fn = self._fns[ks.index]
        blocks, warps, stages = config
        grid, ints = launch_grid(ks, sizes, blocks)
        scratch: list = []
        recipe = self._recipe(ks, sizes, blocks, scratch)
        args = [bufs[r] if how == 0 else scratch[r] if how == 2 else r for how, r in recipe]
        opts = {"num_warps": warps} if stages is None else {"num_warps": warps, "num_stages": stages}

        def launch():
            if all(x > 0 for x in grid):
                fn[grid](*args, *ints, **blocks, **opts)
        return launch

    def _config(self, ks, bufs, sizes):
        if ks.index in self._pinned:
            return self._pinned[ks.index]
        if not self.autotune:
            key = (ks.index, tuple(sorted(sizes.items())))
            cfg = self._tuned.get(key)
            if cfg is None:
                cfg = choose(ks, sizes, self.interpret)
                self._tuned[key] = cfg
            return cfg
        key = (ks.index, tuple(sorted(sizes.items())))
        if key not in self._tuned:
            self._tuned[key] = self._autotune(ks, bufs, sizes)
        return self._tuned[key]

    def _autotune(self, ks, bufs, sizes):
        """`--autotune`: time each candidate config (kernels are pure: outputs never alias
        inputs) once for these sizes and keep the fastest."""
        import torch
        best, best_t = None, float("inf")
        for cfg in candidates(ks, sizes):
            try:
                launch = self._launcher(ks, bufs, sizes, cfg)
                launch()                # compiles
                torch.cuda.synchronize()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(5):
                    launch()
                end.record()
                torch.cuda.synchronize()
                t = start.elapsed_time(end)
            except Exception:           # a config the hardware cannot run (shared memory)
                continue
            if t < best_t:
                best, best_t = cfg, t
        return best or choose(ks, sizes, False)

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

    def _fallback(self, k, bufs, sizes):
        """Run one op through torch on the device, reading its operands through torch views."""
        import torch
        g = self.graph
        memo: dict = {}

        def value(i):
            if i in bufs:
                return bufs[i]
            if i in memo:
                return memo[i]
            n = g[i]
            if n.op == "const":
                v = torch.from_numpy(np.ascontiguousarray(constant_value(n))).to(self.device)
            elif n.op == "size":
                total = eval_dim(numel([g[n.inputs[0]].shape[a] for a in _axes(n, g)]), sizes)
                v = torch.tensor(total, dtype=torch_dtype(n.dtype), device=self.device)
            else:
                v = torch_op(n, [value(x) for x in n.inputs], g, self.device, sizes)
            memo[i] = v
            return v

        for nid in k.nodes:
            n = g[nid]
            out = torch_op(n, [value(x) for x in n.inputs], g, self.device, sizes)
            bufs[nid] = out.to(torch_dtype(n.dtype)).contiguous().reshape(eval_shape(n.shape, sizes))
        self.launches += 1
