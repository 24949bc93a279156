"""Ahead-of-time compilation: the generated kernels to TTIR, TTGIR, LLVM IR, PTX and cubin.

No GPU is needed: `triton.compile` lowers for a `GPUTarget` (`--target sm_90` is
("cuda", 90, 32)) and runs the `ptxas` that ships in the Triton wheel. Results are
cached on disk (`cache.py`), keyed by kernel source, signature, constexprs, warps,
target, Triton version and nncompiler version; `STATS` counts hits and misses, so a
second compile of the same model is a few file reads.

Kernels compile in worker processes (in parallel) when there are several to do, or
when this process runs Triton's interpreter (whose language library cannot feed the
compiler); a single kernel in a compiler-mode process compiles in-process.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from ...cachefs import ENTRY_FORMAT, read_entry
from ...errors import NNCError
from .cache import cache_dir, digest
from .tuning import choose, grid as launch_grid

STATS = {"hits": 0, "misses": 0}
_COMMENT = {"ttir": "//", "ttgir": "//", "llir": ";", "ptx": "//"}


def parse_target(target: str | None) -> tuple[str, int, int]:
    """`sm_90`, `sm_90a`, `sm90`, `90`, `cuda:90` -> ("cuda", 90, 32); None: this GPU, else sm_90."""
    if target is None:
        try:
            import torch
            if torch.cuda.is_available():
                major, minor = torch.cuda.get_device_capability()
                return ("cuda", major * 10 + minor, 32)
        except ImportError:
            pass
        return ("cuda", 90, 32)
    m = re.fullmatch(r"(?:cuda:)?(?:sm_?)?(\d+)a?", target.strip().lower())
    if not m:
        raise NNCError(f"--target {target}: expected an NVIDIA architecture such as sm_90 or sm_80")
    return ("cuda", int(m.group(1)), 32)


def target_name(t) -> str:
    return f"sm_{t[1]}"


def _versions() -> tuple[str, str]:
    import triton

    from ...version import __version__
    return triton.__version__, __version__


def specialization(ks, sizes: dict | None, blocks: dict) -> tuple[dict, dict, list[int]]:
    """(signature, int arguments fixed as constexprs, indices of arguments known divisible by 16):
    what Triton's JIT would derive from a launch (its `specialize_impl`): an int equal to 1
    becomes a constant, an int divisible by 16 and a 16-byte-aligned pointer get
    `tt.divisibility = 16`. Pointers are the runtime's buffers, whole torch allocations (aligned
    to 256 bytes); a size is known only where `sizes` binds it (unbound: no attribute, the
    kernel valid for every size)."""
    sig = dict(ks.signature)
    consts: dict = {}
    aligned: list[int] = []
    ints = iter([])
    if sizes is not None:
        try:
            ints = iter(launch_grid(ks, sizes, blocks)[1])
        except KeyError:
            sizes = None
    for i, p in enumerate(ks.params):
        if p.kind in ("buf", "scratch"):
            aligned.append(i)
            continue
        value = None
        if sizes is not None:
            value = next(ints) if p.kind == "int" else sizes.get(p.ref)
        if value == 1:
            sig[p.name] = "constexpr"
            consts[p.name] = 1
        elif value is not None and value % 16 == 0:
            aligned.append(i)
    return sig, consts, aligned


def job_for(ks, module_path: Path, target, sizes: dict | None = None) -> dict:
    from .tuning import sm_count
    blocks, warps, stages = choose(ks, sizes, interpret=False, sms=sm_count(target[1]), arch=target[1])
    sig, consts, aligned = specialization(ks, sizes, blocks)
    from .ops import HELPERS
    helpers = "".join(HELPERS[h] for h in sorted(ks.helpers))
    tv, nv = _versions()
    key = digest(ks.name, ks.text, helpers, json.dumps(sig, sort_keys=True),
                 json.dumps({**blocks, **consts}, sort_keys=True), json.dumps(aligned), warps, stages,
                 target, tv, nv, ENTRY_FORMAT)
    out = cache_dir() / "aot" / key[:2] / f"{key}.json"
    # the worker executes the module only if the file still holds the text hashed here
    source_hash = hashlib.sha256(Path(module_path).read_bytes()).hexdigest()
    return {"module": str(module_path), "module_sha256": source_hash, "name": ks.name,
            "signature": sig, "constexprs": {**blocks, **consts}, "divisible_by_16": aligned,
            "num_warps": warps, "num_stages": stages, "target": list(target), "out": str(out)}


def read_cached(path: Path) -> dict | None:
    """A compiled kernel from the cache, or None to rebuild it: a missing entry, or one that
    fails its hash check (cubins are native code: warned about, never loaded) or does not parse."""
    payload = read_entry(path)
    if payload is None:
        return None
    try:
        return json.loads(payload)
    except ValueError:   # UnicodeDecodeError included
        return None


def compile_kernels(module_path: Path, kernels: list, target, sizes: dict | None = None) -> dict[str, dict]:
    """name -> compiled kernel (stages and metadata), from the cache or freshly compiled."""
    return compile_all([(module_path, kernels)], target, sizes)[0]


def compile_all(items: list, target, sizes: dict | None = None) -> list[dict[str, dict]]:
    """Compile the kernels of several generated modules in one batch of workers (one dict per
    (module path, kernels) item). Identical kernels (same cache key) compile once."""
    results: list[dict[str, dict]] = [{} for _ in items]
    todo: dict[str, dict] = {}
    wanted: list[tuple[int, str, str]] = []
    for k, (module_path, kernels) in enumerate(items):
        for ks in kernels:
            job = job_for(ks, module_path, target, sizes)
            path = Path(job["out"])
            hit = read_cached(path) if job["out"] not in todo else None
            if hit is not None:
                results[k][ks.name] = hit
                STATS["hits"] += 1
                continue
            todo.setdefault(job["out"], job)
            wanted.append((k, ks.name, job["out"]))
    if todo:
        STATS["misses"] += len(todo)
        _run_jobs(sorted(todo.values(), key=lambda j: (j["module"], j["name"])))
        for k, name, out in wanted:
            entry = read_cached(Path(out))
            if entry is None:
                raise NNCError(f"{out}: the kernel just compiled cannot be read back from the cache")
            results[k][name] = entry
    return results


def _run_jobs(jobs: list[dict]):
    from .interpreter import interpreter_active
    if len(jobs) == 1 and not interpreter_active():
        from . import _aot_worker
        try:
            _aot_worker.compile_job(jobs[0])
        except Exception as e:
            raise NNCError(f"triton failed to compile {jobs[0]['name']}: {e}") from None
        return
    workers = max(1, min(len(jobs), os.cpu_count() or 1, 8))
    chunks = [jobs[i::workers] for i in range(workers)]
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)
    script = str(Path(__file__).with_name("_aot_worker.py"))
    procs = [subprocess.Popen([sys.executable, "-P", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, text=True) for _ in chunks]
    errors = []
    for p, chunk in zip(procs, chunks):
        _, err = p.communicate(json.dumps(chunk))
        if p.returncode != 0:
            errors.append(err.strip().splitlines()[-1] if err.strip() else f"worker exited with {p.returncode}")
    if errors:
        raise NNCError("triton failed to compile: " + "; ".join(errors))


def stage_text(compiled: list[tuple[str, str, dict]], stage: str, target) -> str:
    c = _COMMENT[stage]
    if not compiled:
        return f"{c} no kernels: every output is a constant or a view"
    out = []
    for graph_kind, name, res in compiled:
        out.append(f"{c} ===== {graph_kind}: {name} ({target_name(target)}, num_warps={res['num_warps']}, "
                   f"constexprs={res['constexprs']}) =====")
        out.append(res[stage].rstrip())
        out.append("")
    return "\n".join(out)


def cubin_archive(compiled: list[tuple[str, str, dict]], target) -> bytes:
    """A tar of `<graph>/<kernel>.cubin` plus `manifest.json` (signature, constexprs, warps,
    shared memory per kernel): what a launcher needs."""
    buf = io.BytesIO()
    manifest = []
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for graph_kind, name, res in compiled:
            data = base64.b64decode(res["cubin"])
            info = tarfile.TarInfo(f"{graph_kind}/{name}.cubin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            manifest.append({"graph": graph_kind, "kernel": name, "file": info.name,
                             "signature": res["signature"], "constexprs": res["constexprs"],
                             "divisible_by_16": res.get("divisible_by_16", []),
                             "entry_params": res.get("entry_params", []),
                             "num_warps": res["num_warps"], "num_stages": res.get("num_stages"),
                             "shared": res.get("shared", 0), "global_scratch": res.get("global_scratch", 0)})
        data = json.dumps({"target": target_name(target), "kernels": manifest}, indent=1).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
