"""Compile generated Triton kernels ahead of time (a worker process, or called in-process).

Run as a script (`python _aot_worker.py < jobs.json`) it imports nothing from
nncompiler: the parent starts it with TRITON_INTERPRET removed from the environment,
because Triton's language library is built for the interpreter or for the compiler
at import time, and the parent may be running kernels in the interpreter. Each job
names a generated module file, a kernel, its signature and constexprs, the target
and the cache file to write (atomically: temp file + os.replace).
"""
from __future__ import annotations

import base64
import importlib.util
import json
import os
import sys
import tempfile
import warnings

_MODULES: dict = {}


def _module(path: str):
    if path not in _MODULES:
        name = "nnc_aot_" + os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _MODULES[path] = mod
    return _MODULES[path]


def _write(path: str, data: str):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=os.path.dirname(path))
    with os.fdopen(fd, "w") as f:
        f.write(data)
    os.replace(tmp, path)


def compile_job(job: dict) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import triton
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
        fn = getattr(_module(job["module"]), job["name"])
        src = ASTSource(fn=fn, signature=job["signature"], constexprs=job["constexprs"])
        ck = triton.compile(src, target=GPUTarget(*job["target"]), options={"num_warps": job["num_warps"]})
    asm = ck.asm
    out = {"name": job["name"], "target": job["target"], "signature": job["signature"],
           "constexprs": job["constexprs"], "num_warps": job["num_warps"],
           "shared": int(getattr(ck.metadata, "shared", 0) or 0), "triton": triton.__version__}
    for stage in ("ttir", "ttgir", "llir", "ptx"):
        if stage in asm:
            out[stage] = asm[stage] if isinstance(asm[stage], str) else asm[stage].decode()
    if "cubin" in asm:
        out["cubin"] = base64.b64encode(asm["cubin"]).decode()
    _write(job["out"], json.dumps(out))
    return out


def main() -> int:
    jobs = json.load(sys.stdin)
    for job in jobs:
        try:
            compile_job(job)
        except Exception as e:   # report, keep compiling the rest
            print(f"{job['name']}: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    os.environ.pop("TRITON_INTERPRET", None)
    sys.exit(main())
