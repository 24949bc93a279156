"""IREE: compile MLIR text for the host CPU (cached on disk), load it, call it.

* `compile_vmfb(text)` runs IREE's compiler (`iree.compiler.compile_str`: the `iree-compile`
  program in a subprocess; llvm-cpu, tuned for the host CPU) and caches the result under
  `$NNC_CACHE_DIR/mlir` (default `~/.cache/nncompiler/mlir`), keyed by the MLIR text,
  the IREE version, the flags and the host CPU; files are written atomically
  (a temp file, then `os.replace`), so concurrent runs never see half a file.
* `Runtime` owns the IREE CPU devices. Two drivers run the same compiled module:
  `local-sync` (dispatches run on the calling thread: the lowest overhead, best for
  small steps) and `local-task` (a thread pool over the cores, for big ones). Each
  call picks one from its elements of work per op at the call's actual sizes (see
  `TASK_WORK`); arrays are plain host memory either way and move freely between them.
* `CompiledFunction` calls one exported function with a dict of arguments, through
  the VM directly (no per-call reflection), and returns a dict of device arrays.
"""
from __future__ import annotations

import hashlib
import os
import platform
import threading
from pathlib import Path

import numpy as np

from ...cachefs import ENTRY_FORMAT, CacheUnavailable, read_entry, write_entry
from ...errors import NNCError
from ...ir.shapes import NUMPY_DTYPE, Monomial, eval_dim
from .plan import op_count, work, work_terms

INSTALL_HINT = "pip install 'nncompiler[mlir]'"

# IREE compiler flags (measured; see docs/mlir.md):
#  --iree-llvmcpu-target-cpu=host          code for this CPU's vector units (AVX2/AVX-512/NEON)
#  --iree-input-demote-f64-to-f32=false    keep f64 as f64 (IREE demotes it by default)
# Deliberately absent: --iree-opt-level=O2 (miscompiles reductions with several consumers
# in IREE 3.13: wrong sums and "does not dominate" errors), data-tiling/ukernel/fusion
# flags (no measurable effect on these graphs, in compile time or run time).
FLAGS = (
    "--iree-hal-target-device=local",
    "--iree-hal-local-target-device-backends=llvm-cpu",
    "--iree-llvmcpu-target-cpu=host",
    "--iree-input-demote-f64-to-f32=false",
)

# A call runs on the local-task thread pool when it has more than TASK_WORK elements of
# work in all and more than TASK_WORK_PER_OP per op on average (a scan's body counted once
# per step), on a machine with at least TASK_MIN_CORES cores; otherwise on the calling
# thread (local-sync). The pool costs a fixed wake-up per dispatch, so what decides is the
# mean dispatch size. Measured on the 2-core development machine (docs/mlir.md), by that
# mean: the pool won from 79k (digits CNN, batch 128: 0.87 vs 1.10 ms) up (CNN F: 23 vs
# 42 ms; MLP A: 9.8 vs 12.8), lost at ~3k (LSTM steps: 0.47 vs 0.20 ms at T=10).
# NNC_IREE_DRIVER=local-sync|local-task forces one.
TASK_WORK = 1 << 21
TASK_WORK_PER_OP = 1 << 14
TASK_MIN_CORES = 2
FORCED_DRIVER = os.environ.get("NNC_IREE_DRIVER")


def choose_driver(work: int, ops: int, cores: int) -> str:
    """The IREE driver for a call of `work` elements of work in `ops` ops (see TASK_WORK)."""
    big = work > TASK_WORK and work > TASK_WORK_PER_OP * max(ops, 1)
    return "local-task" if big and cores >= TASK_MIN_CORES else "local-sync"



def require_iree():
    """(iree.compiler, iree.runtime), or a one-line NNCError saying what to install."""
    try:
        import iree.compiler as compiler
        import iree.runtime as runtime
    except ImportError:
        raise NNCError(f"the mlir backend needs IREE (iree-base-compiler and iree-base-runtime): "
                       f"{INSTALL_HINT}") from None
    return compiler, runtime


_AVAILABLE: bool | None = None


def iree_available() -> bool:
    """Whether IREE's compiler and runtime are importable (checked once)."""
    global _AVAILABLE
    if _AVAILABLE is None:
        import importlib.util
        try:
            _AVAILABLE = (importlib.util.find_spec("iree.compiler") is not None
                          and importlib.util.find_spec("iree.runtime") is not None)
        except (ImportError, ValueError):
            _AVAILABLE = False
    return _AVAILABLE


def iree_version() -> str:
    require_iree()
    try:
        from iree.compiler import version
        return f"{version.VERSION} {sorted(getattr(version, 'REVISIONS', {}).items())}"
    except ImportError:  # pragma: no cover - very old packages
        return "unknown"


def cache_dir() -> Path:
    from ...cachefs import private_dir
    root = os.environ.get("NNC_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "nncompiler")
    return private_dir(private_dir(root) / "mlir")


_HOST: str | None = None


def host_id() -> str:
    """What `target-cpu=host` compiles for: the CPU model and its feature flags."""
    global _HOST
    if _HOST is None:
        parts = [platform.machine(), platform.processor()]
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.split(":", 1)[0].strip() in ("model name", "flags", "Features", "CPU part"):
                        parts.append(line.strip())
                    if not line.strip():
                        break  # the first processor is enough
        except OSError:
            pass
        _HOST = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return _HOST


def cache_key(text: str, flags) -> str:
    h = hashlib.sha256()
    # ENTRY_FORMAT: entries sealed with their hash (cachefs) never share a name with older raw ones
    for part in (text, iree_version(), "\0".join(flags), host_id(), ENTRY_FORMAT):
        h.update(part.encode())
        h.update(b"\0\1")
    return h.hexdigest()


_MEMO: dict[str, bytes] = {}
_LOCK = threading.Lock()
STATS = {"compiled": 0, "disk_hits": 0, "memory_hits": 0}


def compile_vmfb(text: str, flags=FLAGS) -> bytes:
    """MLIR text -> an IREE module (vmfb bytes), from the cache when it has it."""
    compiler, _ = require_iree()
    flags = tuple(flags)
    key = cache_key(text, flags)
    with _LOCK:
        if key in _MEMO:
            STATS["memory_hits"] += 1
            return _MEMO[key]
    try:
        path = cache_dir() / f"{key}.vmfb"
    except CacheUnavailable:  # a cache we cannot create only costs recompiles; an unsafe one is refused
        path = None
    data = read_entry(path) if path else None   # native code: loaded only when its hash checks out
    if data is not None:
        STATS["disk_hits"] += 1
    else:
        try:
            data = compiler.compile_str(text, target_backends=["llvm-cpu"], extra_args=list(flags))
        except compiler.CompilerToolError as e:  # generated MLIR that IREE rejects is an nnc bug
            raise RuntimeError(f"IREE could not compile the generated MLIR:\n{e}") from None
        STATS["compiled"] += 1
        if path:
            write_entry(path, data)
    with _LOCK:
        _MEMO[key] = data
    return data


class Runtime:
    """The process's IREE CPU devices (one instance per driver, shared by every model)."""

    _shared: "Runtime | None" = None

    def __init__(self):
        _, rt = require_iree()
        try:   # device arrays held by models at exit are not leaks worth a warning per type
            from iree.runtime import _binding
            _binding.disable_leak_checker()
        except (ImportError, AttributeError):  # pragma: no cover - other runtime versions
            pass
        self.rt = rt
        self._configs: dict[str, object] = {}
        self.device = self.config("local-sync").device     # where arrays are allocated
        self.Result = result_array_class(rt)
        self._scalars: dict = {}

    @classmethod
    def get(cls) -> "Runtime":
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def config(self, driver: str):
        """A driver's device, with IREE's caching allocator: freed buffers are reused, so a
        step's outputs and inputs do not page-fault fresh memory every call."""
        if driver not in self._configs:
            try:
                device = self.rt.get_driver(driver).create_device_by_uri(driver, allocators=["caching"])
            except Exception:  # pragma: no cover - a runtime without the caching allocator
                device = None
            self._configs[driver] = self.rt.Config(device=device) if device is not None else self.rt.Config(driver)
        return self._configs[driver]

    def to_device(self, array):
        if isinstance(array, self.rt.DeviceArray):
            return array
        a = np.asarray(array)
        if a.ndim == 0:  # scalars (the learning rate, a step count) repeat: reuse their arrays
            key = (a.dtype.str, a.tobytes())
            hit = self._scalars.get(key)
            if hit is None:
                if len(self._scalars) > 256:
                    self._scalars.clear()
                hit = self._scalars[key] = self._upload(a)
            return hit
        if not a.flags.c_contiguous:  # (np.ascontiguousarray would make a scalar rank 1)
            a = a.copy(order="C")
        return self._upload(a)

    def _upload(self, a: np.ndarray):
        d = self.rt.asdevicearray(self.device, a, implicit_host_transfer=True)
        return self.Result(self.device, d._buffer_view, implicit_host_transfer=True, override_dtype=a.dtype)

    def load(self, vmfb: bytes, driver: str):
        """(context, the module's name) for a compiled module on a driver."""
        ctx = self.rt.SystemContext(config=self.config(driver))
        vm_module = self.rt.VmModule.copy_buffer(ctx.instance, vmfb)
        ctx.add_vm_module(vm_module)
        return ctx, vm_module.name


class LoadedModule:
    """A compiled module, loaded on demand into a context per driver (shared by its functions)."""

    def __init__(self, runtime: Runtime, vmfb: bytes):
        self.runtime = runtime
        self.vmfb = vmfb
        self._contexts: dict[str, object] = {}

    def function(self, driver: str, name: str):
        if driver not in self._contexts:
            self._contexts[driver] = self.runtime.load(self.vmfb, driver)
        ctx, module_name = self._contexts[driver]
        return ctx.vm_context, ctx.modules[module_name][name].vm_function


class CompiledFunction:
    """One exported function: `fn(dict of argument name -> array) -> dict of output name -> DeviceArray`."""

    def __init__(self, module: LoadedModule, fn_name: str, emitter, source: str):
        runtime = module.runtime
        rt = runtime.rt
        self.runtime = runtime
        self.module = module
        self.fn_name = fn_name
        self.source = source                     # the module's MLIR text
        self.graph = g = emitter.g
        self.arg_names = tuple(a.attr["name"] for a in g.args)
        self.arg_dtypes = tuple(np.dtype(NUMPY_DTYPE[a.dtype]) for a in g.args)
        self.out_names = tuple(name for name, _ in g.outputs)
        self.out_dtypes = tuple(np.dtype(NUMPY_DTYPE[g[i].dtype]) for _, i in g.outputs)
        self.rng = list(emitter.rng)
        # where each symbolic dimension is read from (random inputs, the work estimate)
        self.symbols: dict[str, tuple[int, int]] = {}
        for k, a in enumerate(g.args):
            for axis, d in enumerate(a.shape):
                if Monomial.parse(d).symbol is not None and d not in self.symbols:
                    self.symbols[d] = (k, axis)
        self.work_terms = work_terms(g)
        self._static_work = None if self.symbols else work(self.work_terms, {})
        self.op_count = max(1, op_count(g))
        self._contexts: dict[str, tuple] = {}
        self._DeviceArray = rt.DeviceArray
        self._VmVariantList = rt.VmVariantList
        self._HalBufferView = rt.HalBufferView
        self._Result = runtime.Result
        self._device = runtime.device
        self.last_driver = None

    def _function(self, driver: str):
        if driver not in self._contexts:
            self._contexts[driver] = self.module.function(driver, self.fn_name)
        return self._contexts[driver]

    def driver_for(self, values: list) -> str:
        if FORCED_DRIVER:
            return FORCED_DRIVER
        w = self._static_work
        if w is None:
            sizes = {s: int(np.shape(values[k])[axis]) for s, (k, axis) in self.symbols.items()}
            w = work(self.work_terms, sizes)
        return choose_driver(w, self.op_count, os.cpu_count() or 1)

    def __call__(self, args: dict) -> dict:
        DeviceArray = self._DeviceArray
        to_device = self.runtime.to_device
        values = []
        for name, dt in zip(self.arg_names, self.arg_dtypes):
            try:
                v = args[name]
            except KeyError:
                raise KeyError(f"{self.graph.name}: missing argument {name!r}") from None
            if not isinstance(v, DeviceArray):
                v = to_device(np.asarray(v, dtype=dt))
            values.append(v)
        for r in self.rng:
            values.append(to_device(self._random(r, args)))
        driver = self.driver_for(values)
        self.last_driver = driver
        vm_context, vm_function = self._function(driver)
        arg_list = self._VmVariantList(len(values))
        for v in values:
            arg_list.push_ref(v._buffer_view)
        ret_list = self._VmVariantList(len(self.out_names))
        vm_context.invoke(vm_function, arg_list, ret_list)
        get, bv_type, Result, device = ret_list.get_as_object, self._HalBufferView, self._Result, self._device
        return {name: Result(device, get(k, bv_type), implicit_host_transfer=True, override_dtype=dt)
                for k, (name, dt) in enumerate(zip(self.out_names, self.out_dtypes))}

    def _random(self, r, args: dict) -> np.ndarray:
        """dropout's noise, drawn exactly as the numpy backend draws it."""
        n = r.node
        key = args.get("rng.key", 0)
        if isinstance(key, self._DeviceArray):
            key = key.to_host()
        sizes = {s: int(np.shape(args[self.arg_names[k]])[axis]) for s, (k, axis) in self.symbols.items()}
        shape = tuple(d if isinstance(d, int) else eval_dim(d, sizes) for d in n.shape)
        gen = np.random.default_rng([n.attr["seed"], int(key) & 0xFFFFFFFF])
        return gen.random(shape, dtype=np.dtype(NUMPY_DTYPE[n.dtype]))


_RESULT_CLASS = None


def result_array_class(rt):
    """iree.runtime.DeviceArray plus what numpy arrays and torch tensors also allow:
    float()/int() of a scalar (Model calls float() on a graph's loss) and numpy 2's
    `__array__(dtype, copy)` (np.array(x, copy=True) of a device array)."""
    global _RESULT_CLASS
    if _RESULT_CLASS is None:
        class NncDeviceArray(rt.DeviceArray):
            __slots__ = ()

            def __array__(self, dtype=None, copy=None):
                host = self._transfer_to_host(True)
                if dtype is not None and np.dtype(dtype) != host.dtype:
                    return host.astype(dtype)
                return host.copy() if copy else host

            def __float__(self):
                return float(self.to_host())

            def __int__(self):
                return int(self.to_host())

            def __bool__(self):
                return bool(self.to_host())
        _RESULT_CLASS = NncDeviceArray
    return _RESULT_CLASS
