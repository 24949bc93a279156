"""Block sizes: a heuristic per kernel shape, and candidate configs for the autotune hook.

On a GPU the choice uses only what is static in the model (a symbolic batch is assumed
large), so one compiled kernel serves every batch size. Under the Triton interpreter
(no GPU) there is nothing to compile and every program instance costs Python time, so
tiles are as large as the actual sizes allow. `candidates` lists the configs the
autotune hook times on a GPU (`NNC_AUTOTUNE=1`).
"""
from __future__ import annotations

from .index import eval_dim


def np2(n: int) -> int:
    n = max(int(n), 1)
    return 1 << (n - 1).bit_length()


def _static(d):
    return d if isinstance(d, int) else None


def _clamp(v, lo, hi):
    return max(lo, min(hi, v))


def choose(ks, sizes: dict | None, interpret: bool) -> tuple[dict, int]:
    """(constexpr block sizes, num_warps) for kernel `ks`; `sizes` binds the symbols (interpreter)."""
    info = ks.info

    def val(d, default):
        if isinstance(d, int):
            return d
        if interpret and sizes is not None:
            return eval_dim(d, sizes)
        return default

    if ks.kind in ("pointwise", "combo"):
        n = val(info["numel"], 1 << 20)
        if interpret:
            return {"XBLOCK": _clamp(np2(n), 1, 16384)}, 4
        xb = _clamp(np2(n), 128, 1024)
        return {"XBLOCK": xb}, 4 if xb <= 512 else 8
    if ks.kind == "reduction":
        x = val(info["xnumel"], 1 << 16)
        r = val(info["rnumel"], 1 << 16)
        if info["persistent"]:
            rb = np2(r)
            budget = 1 << 16 if interpret else 2048
            xb = _clamp(np2(x), 1, max(1, budget // rb))
            if not interpret:
                xb = min(xb, 128)
            return {"XBLOCK": xb, "RBLOCK": rb}, 4 if xb * rb <= 2048 else 8
        if interpret:
            rb = _clamp(np2(r), 1, 8192)
            return {"XBLOCK": _clamp(np2(x), 1, max(1, (1 << 16) // rb)), "RBLOCK": rb}, 4
        if info["rinner"]:
            rb = _clamp(np2(r), 16, 1024)
            xb = 1 if x == 1 else _clamp(np2(x), 1, max(1, 2048 // rb))
        else:
            rb = _clamp(np2(r), 16, 64)
            xb = _clamp(np2(x), 1, 64)
        return {"XBLOCK": xb, "RBLOCK": rb}, 4 if xb * rb <= 2048 else 8
    # matmul
    M = val(info["M"], 1 << 12)
    N = val(info["N"], 1 << 12)
    K = val(info["K"], 1 << 12)
    integer = info["dtype"] not in ("f32", "f64")
    if interpret:
        cap = 32 if integer else 256
        return {"BLOCK_M": _clamp(np2(M), 16, cap), "BLOCK_N": _clamp(np2(N), 16, cap),
                "BLOCK_K": _clamp(np2(K), 16, 16 if integer else 512)}, 4
    if integer:
        return {"BLOCK_M": _clamp(np2(M), 16, 32), "BLOCK_N": _clamp(np2(N), 16, 32), "BLOCK_K": 16}, 4
    bk = 16 if info["dtype"] == "f64" else 32
    return {"BLOCK_M": _clamp(np2(M), 16, 64), "BLOCK_N": _clamp(np2(N), 16, 64),
            "BLOCK_K": _clamp(np2(K), 16, bk)}, 4


def candidates(ks) -> list[tuple[dict, int]]:
    """Configs the GPU autotune hook times (the heuristic's choice first)."""
    base, warps = choose(ks, None, False)
    out = [(base, warps)]
    if ks.kind == "matmul":
        for bm, bn, bk, w in ((128, 64, 32, 4), (64, 128, 32, 4), (128, 128, 32, 8), (32, 64, 32, 4),
                              (64, 32, 32, 4), (32, 32, 32, 4), (16, 64, 64, 4), (64, 64, 64, 4)):
            out.append(({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, w))
    elif ks.kind in ("pointwise", "combo"):
        for xb, w in ((256, 4), (512, 4), (2048, 8), (4096, 8)):
            out.append(({"XBLOCK": xb}, w))
    elif ks.kind == "reduction" and not ks.info["persistent"]:
        for xb, rb in ((1, 2048), (4, 512), (16, 128), (64, 32)):
            out.append(({"XBLOCK": xb, "RBLOCK": rb}, 4))
    elif ks.kind == "reduction":
        rb = base["RBLOCK"]
        for xb in (1, 4, 16, 64):
            if xb * rb <= 16384:
                out.append(({"XBLOCK": xb, "RBLOCK": rb}, 4 if xb * rb <= 2048 else 8))
    seen, uniq = set(), []
    for cfg, w in out:
        key = (tuple(sorted(cfg.items())), w)
        if key not in seen:
            seen.add(key)
            uniq.append((cfg, w))
    return uniq
