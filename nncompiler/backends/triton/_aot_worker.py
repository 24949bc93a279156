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
import hashlib
import json
import linecache
import os
import re
import sys
import tempfile
import types
import warnings

_MODULES: dict = {}


def _module(path: str, sha256: str):
    """The generated module, executed from its text after checking the hash the parent
    computed (never through importlib, which would prefer a planted __pycache__ .pyc)."""
    if path not in _MODULES:
        with open(path, "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise RuntimeError(f"{path}: the generated module changed on disk after it was written; not running it")
        text = data.decode()
        linecache.cache[path] = (len(text), None, text.splitlines(True), path)  # what Triton's getsource reads
        mod = types.ModuleType("nnc_aot_" + os.path.splitext(os.path.basename(path))[0])
        mod.__file__ = path
        exec(compile(text, path, "exec"), mod.__dict__)
        _MODULES[path] = mod
    return _MODULES[path]


def _write(path: str, data: str):
    """Atomically, sealed like nncompiler.cachefs.seal (a first line with the SHA-256 of the
    rest), which the parent checks before using the cubin; this script imports nothing of nncompiler."""
    payload = data.encode()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=os.path.dirname(path))
    with os.fdopen(fd, "wb") as f:
        f.write(b"nnc-sha256:" + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
    os.replace(tmp, path)


def compile_job(job: dict) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import triton
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
        fn = getattr(_module(job["module"], job["module_sha256"]), job["name"])
        # the attributes the JIT derives for an aligned pointer or a size divisible by 16
        attrs = {(i,): [["tt.divisibility", 16]] for i in job.get("divisible_by_16", [])}
        src = ASTSource(fn=fn, signature=job["signature"], constexprs=job["constexprs"], attrs=attrs)
        options = {"num_warps": job["num_warps"]}
        if job.get("num_stages") is not None:
            options["num_stages"] = job["num_stages"]
        ck = triton.compile(src, target=GPUTarget(*job["target"]), options=options)
    asm = ck.asm
    out = {"name": job["name"], "target": job["target"], "signature": job["signature"],
           "constexprs": job["constexprs"], "divisible_by_16": job.get("divisible_by_16", []),
           "num_warps": job["num_warps"], "num_stages": job.get("num_stages"),
           "shared": int(getattr(ck.metadata, "shared", 0) or 0),
           # bytes of global scratch per program a launcher must pass (TMA descriptors live there)
           "global_scratch": int(getattr(ck.metadata, "global_scratch_size", 0) or 0),
           "triton": triton.__version__}
    for stage in ("ttir", "ttgir", "llir", "ptx"):
        if stage in asm:
            out[stage] = asm[stage] if isinstance(asm[stage], str) else asm[stage].decode()
    out["entry_params"] = entry_params(job["signature"], out.get("ptx", ""))
    if "cubin" in asm:
        out["cubin"] = base64.b64encode(asm["cubin"]).decode()
    _write(job["out"], json.dumps(out))
    return out


def entry_params(signature: dict, ptx: str) -> list[dict]:
    """Every parameter of the PTX entry, in order: the kernel's non-constexpr arguments, then the
    pointers Triton appends (global and profile scratch, which a launcher passes too; null when
    their size in the metadata is 0)."""
    m = re.search(r"\.entry\s+\w+\s*\((.*?)\)", ptx, re.S)
    params = re.findall(r"\.param\s+\.(\w+)\s+(?:\.ptr\s+\.global\s+\.align\s+\d+\s+)?(\w+)", m.group(1)) if m else []
    named = [(k, v) for k, v in signature.items() if v != "constexpr"]
    out = []
    for i, (ptype, _) in enumerate(params):
        if i < len(named):
            out.append({"name": named[i][0], "type": named[i][1], "ptx": ptype})
        else:
            out.append({"name": ("global_scratch", "profile_scratch")[min(i - len(named), 1)] if i - len(named) < 2
                        else f"hidden{i - len(named)}", "type": "*i8", "ptx": ptype, "hidden": True})
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
