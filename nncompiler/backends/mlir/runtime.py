"""IREE: compile MLIR text for the host CPU (cached on disk), load it, call it.

* `compile_vmfb(text)` runs IREE's compiler in-process (`iree.compiler.compile_str`,
  llvm-cpu, tuned for the host CPU) and caches the result under
  `$NNC_CACHE_DIR/mlir` (default `~/.cache/nncompiler/mlir`), keyed by the MLIR text,
  the IREE version, the flags and the host CPU; files are written atomically
  (a temp file, then `os.replace`), so concurrent runs never see half a file.
* `Runtime` owns one IREE instance and CPU device (the `local-task` driver: a
  thread pool over the cores). Arrays live there as `iree.runtime.DeviceArray`s.
* `CompiledFunction` calls one exported function with a dict of arguments, through
  the VM directly (no per-call reflection), and returns a dict of device arrays.
"""
from __future__ import annotations

import hashlib
import os
import platform
import tempfile
import threading
from pathlib import Path

import numpy as np

from ...errors import NNCError
from ...ir.shapes import NUMPY_DTYPE

INSTALL_HINT = "pip install 'nncompiler[mlir]'"

# The flags, measured on the examples and the elementwise benchmark (docs/mlir.md):
#  --iree-llvmcpu-target-cpu=host   AVX-512/AVX2/FMA code for this CPU instead of generic x86-64
#  --iree-input-demote-f64-to-f32=false   keep f64 as f64 (IREE demotes it by default)
#  --iree-opt-level=O2              the default optimisation level, stated for the cache key
FLAGS = (
    "--iree-hal-target-device=local",
    "--iree-hal-local-target-device-backends=llvm-cpu",
    "--iree-llvmcpu-target-cpu=host",
    "--iree-input-demote-f64-to-f32=false",
)
DRIVER = os.environ.get("NNC_IREE_DRIVER", "local-task")


def require_iree():
    """(iree.compiler, iree.runtime), or a one-line NNCError saying what to install."""
    try:
        import iree.compiler as compiler
        import iree.runtime as runtime
    except ImportError:
        raise NNCError(f"the mlir backend needs IREE (iree-base-compiler and iree-base-runtime): "
                       f"{INSTALL_HINT}") from None
    return compiler, runtime


def iree_available() -> bool:
    import importlib.util
    try:
        return (importlib.util.find_spec("iree.compiler") is not None
                and importlib.util.find_spec("iree.runtime") is not None)
    except (ImportError, ValueError):
        return False


def iree_version() -> str:
    compiler, _ = require_iree()
    try:
        from iree.compiler import version
        return f"{version.VERSION} {sorted(getattr(version, 'REVISIONS', {}).items())}"
    except ImportError:  # pragma: no cover - very old packages
        return getattr(compiler, "__version__", "unknown")


def cache_dir() -> Path:
    root = os.environ.get("NNC_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "nncompiler")
    return Path(root) / "mlir"


_HOST: str | None = None


def host_id() -> str:
    """What `target-cpu=host` compiles for: the CPU model and its feature flags."""
    global _HOST
    if _HOST is None:
        parts = [platform.machine(), platform.processor()]
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    key = line.split(":", 1)[0].strip()
                    if key in ("model name", "flags", "Features", "CPU part") and line not in parts:
                        parts.append(line.strip())
                    if line.strip() == "":
                        break  # the first processor is enough
        except OSError:
            pass
        _HOST = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return _HOST


def cache_key(text: str, flags) -> str:
    h = hashlib.sha256()
    for part in (text, iree_version(), "\0".join(flags), host_id()):
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
    path = cache_dir() / f"{key}.vmfb"
    try:
        data = path.read_bytes()
        STATS["disk_hits"] += 1
    except OSError:
        try:
            data = compiler.compile_str(text, target_backends=["llvm-cpu"], extra_args=list(flags))
        except compiler.CompilerToolError as e:  # generated MLIR that IREE rejects is an nnc bug
            raise RuntimeError(f"IREE could not compile the generated MLIR:\n{e}") from None
        STATS["compiled"] += 1
        _write_atomic(path, data)
    with _LOCK:
        _MEMO[key] = data
    return data


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError:
        pass  # a read-only cache directory only costs recompiles


class Runtime:
    """One IREE instance and CPU device; every array and module of a Backend lives here."""

    _shared: dict[str, "Runtime"] = {}

    def __init__(self, driver: str = DRIVER):
        _, rt = require_iree()
        self.rt = rt
        self.driver = driver
        self.config = rt.Config(driver)
        self.device = self.config.device

    @classmethod
    def get(cls, driver: str = DRIVER) -> "Runtime":
        """The process-wide runtime for a driver (one thread pool, however many models)."""
        if driver not in cls._shared:
            cls._shared[driver] = cls(driver)
        return cls._shared[driver]

    def to_device(self, array) -> object:
        if isinstance(array, self.rt.DeviceArray):
            return array
        a = np.asarray(array)
        if not a.flags.c_contiguous:  # (np.ascontiguousarray would make a scalar rank 1)
            a = a.copy(order="C")
        return self.rt.asdevicearray(self.device, a, implicit_host_transfer=True)

    def load(self, vmfb: bytes):
        ctx = self.rt.SystemContext(config=self.config)
        ctx.add_vm_module(self.rt.VmModule.copy_buffer(ctx.instance, vmfb))
        return ctx


class CompiledFunction:
    """One exported function: `fn(dict of argument name -> array) -> dict of output name -> DeviceArray`."""

    def __init__(self, runtime: Runtime, ctx, fn_name: str, emitter, source: str):
        rt = runtime.rt
        self.runtime = runtime
        self.ctx = ctx
        self.source = source                     # the module's MLIR text
        self.graph = emitter.g
        g = self.graph
        module = ctx.modules.module
        self.vm_function = module[fn_name].vm_function
        self.vm_context = ctx.vm_context
        self.arg_names = tuple(a.attr["name"] for a in g.args)
        self.arg_dtypes = tuple(np.dtype(NUMPY_DTYPE[a.dtype]) for a in g.args)
        self.out_names = tuple(name for name, _ in g.outputs)
        self.out_dtypes = tuple(np.dtype(NUMPY_DTYPE[g[i].dtype]) for _, i in g.outputs)
        self.rng = list(emitter.rng)
        # where each symbolic dimension is read from (for host-generated random inputs)
        self.symbols = {}
        for a in g.args:
            for axis, d in enumerate(a.shape):
                if isinstance(d, str) and d.isidentifier() and d not in self.symbols:
                    self.symbols[d] = (a.attr["name"], axis)
        self._DeviceArray = rt.DeviceArray
        self._Result = result_array_class(rt)
        self._VmVariantList = rt.VmVariantList
        self._HalBufferView = rt.HalBufferView
        self._device = runtime.device

    def __call__(self, args: dict) -> dict:
        DeviceArray = self._DeviceArray
        arg_list = self._VmVariantList(len(self.arg_names) + len(self.rng))
        for name, dt in zip(self.arg_names, self.arg_dtypes):
            try:
                v = args[name]
            except KeyError:
                raise KeyError(f"{self.graph.name}: missing argument {name!r}") from None
            if not isinstance(v, DeviceArray):
                v = self.runtime.to_device(np.asarray(v, dtype=dt))
            arg_list.push_ref(v._buffer_view)
        for r in self.rng:
            arg_list.push_ref(self.runtime.to_device(self._random(r, args))._buffer_view)
        ret_list = self._VmVariantList(len(self.out_names))
        self.vm_context.invoke(self.vm_function, arg_list, ret_list)
        out = {}
        for k, (name, dt) in enumerate(zip(self.out_names, self.out_dtypes)):
            bv = ret_list.get_as_object(k, self._HalBufferView)
            out[name] = self._Result(self._device, bv, implicit_host_transfer=True, override_dtype=dt)
        return out

    def _random(self, r, args: dict) -> np.ndarray:
        """dropout's noise, drawn exactly as the numpy backend draws it."""
        n = r.node
        key = args["rng.key"] if "rng.key" in args else 0
        if isinstance(key, self._DeviceArray):
            key = key.to_host()
        sizes = {s: int(np.shape(args[a])[axis]) for s, (a, axis) in self.symbols.items()}
        shape = tuple(d if isinstance(d, int) else _eval_dim(d, sizes) for d in n.shape)
        gen = np.random.default_rng([n.attr["seed"], int(key) & 0xFFFFFFFF])
        return gen.random(shape, dtype=np.dtype(NUMPY_DTYPE[n.dtype]))


_RESULT_CLASS = None


def result_array_class(rt):
    """DeviceArray plus float()/int() of a scalar, as numpy and torch scalars allow (Model
    calls float() on a graph's loss)."""
    global _RESULT_CLASS
    if _RESULT_CLASS is None:
        class ResultArray(rt.DeviceArray):
            def __float__(self):
                return float(self.to_host())

            def __int__(self):
                return int(self.to_host())

            def __bool__(self):
                return bool(self.to_host())
        _RESULT_CLASS = ResultArray
    return _RESULT_CLASS


def _eval_dim(d: str, sizes: dict) -> int:
    out = 1
    for p in d.split("*"):
        out *= int(p) if p.isdigit() else sizes[p]
    return out
