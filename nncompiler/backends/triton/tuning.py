"""Launch configurations: block sizes, warps and pipeline stages per kernel and shape.

Matmuls pick a tile from `MM_CONFIGS` by shape, in the spirit of Inductor's mm_configs
(torch/_inductor/kernel/mm_common.py): large tiles with 8 warps and 3-4 stages for
large outputs, smaller ones for skinny shapes, and split-K when even the tiles that
keep some data reuse are fewer than the GPU's SMs (`SM_COUNT`, 132 on an H100), so
every matmul fills the machine. In a tensor-core mode (tf32, bf16) on Hopper the tiles
stay wgmma-sized (>= 64 rows, 4 or 8 warps) and split-K fills the SMs instead. On a GPU
the choice uses the sizes rounded up to a power of two (a new batch size recompiles only
when it crosses one); where a size is
unknown (AOT, no binding) a symbolic batch is assumed large. Under the Triton
interpreter (no GPU) every program instance costs Python time, so tiles are as large
as the actual sizes allow. `candidates` lists what `--autotune` times on a GPU.

A config is (constexprs, num_warps, num_stages); num_stages None is Triton's default.
"""
from __future__ import annotations

from .index import eval_dim

# streaming multiprocessors per architecture (the SKU most deployed: A100, H100 SXM, B200)
SM_COUNT = {70: 80, 75: 40, 80: 108, 86: 84, 87: 16, 89: 128, 90: 132, 100: 148, 103: 148, 120: 84}
ASSUMED = 1 << 12      # a symbolic size nothing binds (AOT): "large"
MAX_SPLIT = 64
GROUP_M = 8

# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages), largest tile first
MM_CONFIGS = (
    (128, 256, 32, 8, 3), (256, 128, 32, 8, 3), (128, 128, 32, 8, 4), (128, 64, 32, 4, 4),
    (64, 128, 32, 4, 4), (64, 64, 32, 4, 4), (128, 32, 32, 4, 3), (32, 128, 32, 4, 3),
    (64, 32, 32, 4, 3), (32, 64, 32, 4, 3), (128, 16, 32, 4, 3), (16, 128, 32, 4, 3),
    (64, 16, 32, 2, 3), (16, 64, 32, 2, 3), (32, 32, 32, 4, 3), (32, 16, 32, 2, 3),
    (16, 32, 32, 2, 3), (16, 16, 32, 2, 3),
)


def np2(n: int) -> int:
    n = max(int(n), 1)
    return 1 << (n - 1).bit_length()


def _clamp(v, lo, hi):
    return max(lo, min(hi, v))


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def sm_count(arch: int | None = None) -> int:
    """SMs of the GPU present (arch None), else of the architecture's usual part (default H100)."""
    if arch is None:
        try:
            import torch
            if torch.cuda.is_available():
                return torch.cuda.get_device_properties(0).multi_processor_count
        except ImportError:
            pass
        arch = 90
    return SM_COUNT.get(arch, SM_COUNT[90])


# Warp-group tensor-core MMA (Hopper's wgmma) takes a tile of at least 64 rows and a multiple
# of 4 warps (Triton lowers any other dot to the warp-level mma.sync, at about half the rate).
# The tiles the table offers a tensor-core mode on such an architecture, 64x16 with 4 warps.
WGMMA_CONFIGS = tuple((m, n, k, max(w, 4), s) for m, n, k, w, s in MM_CONFIGS if m >= 64)


def uses_wgmma(precision: str | None, arch: int | None) -> bool:
    """Whether float32 matmuls in this precision mode on this architecture should keep tiles
    that wgmma can run: tensor-core modes (tf32, bf16) on sm_90 up to (not including) sm_120,
    the consumer Blackwell part, which has no warp-group MMA."""
    return precision in ("tf32", "bf16") and arch is not None and 90 <= arch < 120


def matmul_config(M: int, N: int, K: int, batch: int, sms: int, split_ok: bool,
                  wgmma: bool = False) -> tuple[dict, int, int]:
    """A tile, split-K factor and warps/stages for C[batch, M, N] = A[M, K] @ B[K, N].

    In order of preference: the largest tile (at least 64x64) whose tiles fill the SMs;
    a tile split over K (each split keeping >= 128 of K); any tile that fills the SMs;
    a split keeping >= 32 of K; and failing all, the config with the most programs.

    With `wgmma` (a tensor-core mode on Hopper) that order runs first over `WGMMA_CONFIGS`
    only (at least 64 rows, 4 or 8 warps; a 64-row tile may cover fewer rows, masked), so the
    SMs are filled by split-K rather than by smaller tiles; only when no such tile fills them
    (K too short to split) does the whole table's order decide, and when nothing fills them
    the wgmma tile with the most programs is kept."""
    def fits(c, min_m=16):
        return c[0] <= max(min_m, np2(M)) and c[1] <= max(16, np2(N))

    def make(c, split):
        bk = _clamp(np2(cdiv(K, split)), 16, c[2])
        return ({"BLOCK_M": c[0], "BLOCK_N": c[1], "BLOCK_K": bk, "SPLIT_K": split, "GROUP_M": GROUP_M},
                c[3], c[4])

    def tiles(c):
        return cdiv(M, c[0]) * cdiv(N, c[1]) * batch

    def filling(table):
        for c in table:
            if c[0] * c[1] >= 64 * 64 and tiles(c) >= sms:
                return make(c, 1)
        for min_k, min_area in ((128, 32 * 32), (None, 0), (32, 0)):
            for c in table:
                if c[0] * c[1] < min_area:
                    continue
                if min_k is None:
                    if tiles(c) >= sms:
                        return make(c, 1)
                    continue
                split = cdiv(sms, tiles(c))
                if split_ok and split <= MAX_SPLIT and K // split >= min_k:
                    return make(c, split)
        return None

    table = [c for c in MM_CONFIGS if fits(c)]
    if wgmma:
        wide = [c for c in WGMMA_CONFIGS if fits(c, min_m=64)]
        got = filling(wide) or filling(table)
        if got is not None:
            return got
        table = wide
    else:
        got = filling(table)
        if got is not None:
            return got
    best = max(table, key=lambda c: (tiles(c) * _max_split(K, split_ok), c[0] * c[1]))
    return make(best, _max_split(K, split_ok))


def _max_split(K: int, split_ok: bool) -> int:
    return _clamp(K // 32, 1, MAX_SPLIT) if split_ok else 1


def device_arch() -> int:
    """The compute capability of the GPU present as major*10+minor, else 90 (an H100)."""
    try:
        import torch
        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return major * 10 + minor
    except ImportError:
        pass
    return 90


def choose(ks, sizes: dict | None, interpret: bool, sms: int | None = None,
           arch: int | None = None) -> tuple[dict, int, int | None]:
    """(constexprs, num_warps, num_stages) for kernel `ks`; `sizes` binds the symbols; `arch`
    (default: the GPU present, else sm_90) decides whether tensor-core modes keep wgmma tiles
    and whether a matmul's operands load through TMA descriptors."""
    info = ks.info

    def val(d, default):
        if isinstance(d, int):
            return d
        if sizes is not None:
            try:
                v = eval_dim(d, sizes)
            except KeyError:
                return default
            return v if interpret else np2(v)
        return default

    if ks.kind in ("pointwise", "combo"):
        n = val(info["numel"], 1 << 20)
        if interpret:
            return {"XBLOCK": _clamp(np2(n), 1, 16384)}, 4, None
        xb = _clamp(np2(n), 128, 1024)
        return {"XBLOCK": xb}, 4 if xb <= 512 else 8, None
    if ks.kind == "reduction":
        x = val(info["xnumel"], 1 << 16)
        r = val(info["rnumel"], 1 << 16)
        if info["persistent"]:
            rb = np2(r)
            budget = 1 << 16 if interpret else 2048
            xb = _clamp(np2(x), 1, max(1, budget // rb))
            if not interpret:
                xb = min(xb, 128)
            return {"XBLOCK": xb, "RBLOCK": rb}, 4 if xb * rb <= 2048 else 8, None
        if interpret:
            rb = _clamp(np2(r), 1, 8192)
            return {"XBLOCK": _clamp(np2(x), 1, max(1, (1 << 16) // rb)), "RBLOCK": rb, "SPLIT_R": 1}, 4, None
        if info["rinner"]:
            rb = _clamp(np2(r), 16, 1024)
            xb = 1 if x == 1 else _clamp(np2(x), 1, max(1, 2048 // rb))
        else:
            rb = _clamp(np2(r), 16, 64)
            xb = _clamp(np2(x), 1, 64)
        split = 1
        if info.get("split_ok"):
            rb, split = reduce_split(cdiv(x, xb), r, rb, sms or sm_count(arch))
        return {"XBLOCK": xb, "RBLOCK": rb, "SPLIT_R": split}, 4 if xb * rb <= 2048 else 8, None
    blocks, warps, stages = _matmul_choice(info, val, interpret, sms, arch)
    blocks["TMA"] = int(uses_tma(info, interpret, arch))
    return blocks, warps, stages


def uses_tma(info: dict, interpret: bool, arch: int | None) -> bool:
    """Whether a matmul launch reads its qualifying operands (tma.py) through tensor descriptors:
    compiled for sm_90 or newer (the Tensor Memory Accelerator), by a Triton that has them. The
    interpreter keeps pointer loads (the same numbers; tests pin TMA on to check the other path)."""
    from .tma import available
    if interpret or info["dtype"] != "f32" or not any(info.get("tma", ())):
        return False
    return (arch if arch is not None else device_arch()) >= 90 and available()


def _matmul_choice(info: dict, val, interpret: bool, sms: int | None, arch: int | None):
    M = val(info["M"], ASSUMED)
    N = val(info["N"], ASSUMED)
    K = val(info["K"], ASSUMED)
    batch = val(info.get("batch", 1), ASSUMED)
    integer = info["dtype"] not in ("f32", "f64")
    if interpret:
        cap = 32 if integer else 256
        return {"BLOCK_M": _clamp(np2(M), 16, cap), "BLOCK_N": _clamp(np2(N), 16, cap),
                "BLOCK_K": _clamp(np2(K), 16, 16 if integer else 512), "SPLIT_K": 1, "GROUP_M": GROUP_M}, 4, None
    if integer:     # tl.sum of products: a 3-D temporary, so small tiles
        return {"BLOCK_M": _clamp(np2(M), 16, 32), "BLOCK_N": _clamp(np2(N), 16, 32), "BLOCK_K": 16,
                "SPLIT_K": 1, "GROUP_M": GROUP_M}, 4, None
    wgmma = info["dtype"] == "f32" and uses_wgmma(info.get("precision"), arch if arch is not None else device_arch())
    blocks, warps, stages = matmul_config(M, N, K, batch, sms or sm_count(arch), split_ok=info["dtype"] == "f32",
                                          wgmma=wgmma)
    if info["dtype"] == "f64":    # twice the registers and shared memory per element
        blocks.update(BLOCK_M=min(blocks["BLOCK_M"], 64), BLOCK_N=min(blocks["BLOCK_N"], 64), BLOCK_K=16)
        warps, stages = 4, 2
    return blocks, warps, stages


MIN_SPLIT_R = 16     # rows of the reduced extent each split of a split reduction keeps at least


def reduce_split(xprogs: int, r: int, rb: int, sms: int) -> tuple[int, int]:
    """(RBLOCK, SPLIT_R) for a looped reduction with `xprogs` row blocks over a reduced extent
    `r`: when the row blocks alone leave SMs idle (the loss mean over the batch is one row, a
    bias gradient's [B, N] -> [N] a few), the reduced extent is split over SPLIT_R programs per
    row block, enough to fill the SMs, each keeping at least MIN_SPLIT_R of it (RBLOCK shrinks,
    to no less than 16, so that every split has a block of its own)."""
    if xprogs >= sms or r < 2 * MIN_SPLIT_R:
        return rb, 1
    want = cdiv(sms, xprogs)
    while rb > 16 and cdiv(r, rb) < want:
        rb //= 2
    split = max(1, min(want, cdiv(r, rb), r // MIN_SPLIT_R))
    return rb, split


def grid(ks, sizes: dict, blocks: dict) -> tuple[tuple, list[int]]:
    """(launch grid, the extra int arguments a combo kernel takes: its segments' cumulative ends)."""
    out, ints = [], []
    for entry in ks.grid:
        if entry[0] == "cdiv":
            out.append(cdiv(eval_dim(entry[1], sizes), blocks[entry[2]]))
        elif entry[0] == "reduce":    # (row block, split) flattened onto axis 0
            out.append(cdiv(eval_dim(entry[1], sizes), blocks[entry[2]]) * blocks.get("SPLIT_R", 1))
        elif entry[0] == "matmul":    # (batch, tile, split) flattened onto axis 0
            _, M, N, batch = entry
            out.append(cdiv(eval_dim(M, sizes), blocks["BLOCK_M"]) * cdiv(eval_dim(N, sizes), blocks["BLOCK_N"])
                       * eval_dim(batch, sizes) * blocks["SPLIT_K"])
        else:   # combo: segment block counts, cumulative ends passed as ints
            total = 0
            for d in entry[1]:
                total += cdiv(eval_dim(d, sizes), blocks[entry[2]])
                ints.append(total)
            out.append(total)
    return tuple(out), ints


def split_scratch(ks, sizes: dict, blocks: dict) -> tuple[int, int]:
    """(workspace floats, tile counters) a split-K launch or a split reduction needs; (0, 0)
    unsplit."""
    if ks.kind == "reduction":
        split = blocks.get("SPLIT_R", 1)
        if split == 1:
            return 0, 0
        rows = grid(ks, sizes, blocks)[0][0] // split
        return rows * split * blocks["XBLOCK"] * blocks["RBLOCK"] * max(1, ks.info.get("accs", 1)), rows
    split = blocks.get("SPLIT_K", 1)
    if split == 1:
        return 0, 0
    info = ks.info
    tiles = grid(ks, sizes, blocks)[0][0] // split
    per_tile = blocks["BLOCK_M"] * blocks["BLOCK_N"] + info.get("colsums", 0) * max(blocks["BLOCK_M"], blocks["BLOCK_N"])
    return tiles * split * per_tile, tiles


def _bound(d, sizes: dict | None) -> int:
    if isinstance(d, int):
        return d
    try:
        return eval_dim(d, sizes) if sizes is not None else ASSUMED
    except KeyError:
        return ASSUMED


def candidates(ks, sizes: dict | None = None, sms: int | None = None,
               arch: int | None = None) -> list[tuple[dict, int, int | None]]:
    """Configs `--autotune` times on a GPU (the table's choice first)."""
    base = choose(ks, sizes, False, sms, arch)
    out = [base]
    if ks.kind == "matmul" and ks.info["dtype"] == "f32":
        # the table's tiles that fit the shape, unsplit and split as the table would split them
        M, N = (_bound(ks.info[d], sizes) for d in ("M", "N"))
        for bm, bn, bk, w, st in MM_CONFIGS:
            if bm <= max(16, np2(M)) and bn <= max(16, np2(N)):
                for split in sorted({1, base[0]["SPLIT_K"]}):
                    out.append(({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": split,
                                 "GROUP_M": GROUP_M, "TMA": base[0]["TMA"]}, w, st))
    elif ks.kind in ("pointwise", "combo"):
        for xb, w in ((256, 4), (512, 4), (2048, 8), (4096, 8)):
            out.append(({"XBLOCK": xb}, w, None))
    elif ks.kind == "reduction" and not ks.info["persistent"]:
        for xb, rb in ((1, 2048), (4, 512), (16, 128), (64, 32)):
            out.append(({"XBLOCK": xb, "RBLOCK": rb, "SPLIT_R": 1}, 4, None))
    elif ks.kind == "reduction":
        rb = base[0]["RBLOCK"]
        for xb in (1, 4, 16, 64):
            if xb * rb <= 16384:
                out.append(({"XBLOCK": xb, "RBLOCK": rb}, 4 if xb * rb <= 2048 else 8, None))
    seen, uniq = set(), []
    for cfg, w, st in out:
        key = (tuple(sorted(cfg.items())), w, st)
        if key not in seen:
            seen.add(key)
            uniq.append((cfg, w, st))
    return uniq


def launch_table(kernels, sizes: dict, arch: int = 90) -> list[dict]:
    """What each kernel launches at these sizes on this architecture (the GPU table, not the
    interpreter's): its config and number of programs (CTAs). `--emit kernels` prints it."""
    sms = sm_count(arch)
    rows = []
    for ks in kernels:
        blocks, warps, stages = choose(ks, sizes, False, sms, arch)
        ctas = 1
        for n in grid(ks, sizes, blocks)[0]:
            ctas *= n
        rows.append({"kernel": ks.name, "kind": ks.kind, "ctas": ctas, "blocks": blocks,
                     "num_warps": warps, "num_stages": stages, "sms": sms})
    return rows


def launch_lines(kernels, sizes: dict, arch: int = 90) -> list[str]:
    rows = launch_table(kernels, sizes, arch)
    if not rows:
        return []
    where = ", ".join(f"{k}={v}" for k, v in sorted(sizes.items())) or "static shapes"
    out = [f"launches at {where} on sm_{arch} ({rows[0]['sms']} SMs):"]
    for r in rows:
        b = r["blocks"]
        if r["kind"] == "matmul":
            what = (f"tile {b['BLOCK_M']}x{b['BLOCK_N']}x{b['BLOCK_K']}, split-K {b['SPLIT_K']}, "
                    f"group {b['GROUP_M']}, stages {r['num_stages']}" + (", TMA loads" if b.get("TMA") else ""))
        elif r["kind"] == "reduction" and "SPLIT_R" in b:
            what = (f"XBLOCK {b['XBLOCK']}, RBLOCK {b['RBLOCK']}, "
                    + (f"split {b['SPLIT_R']} (two-stage)" if b["SPLIT_R"] > 1 else "unsplit"))
        else:
            what = ", ".join(f"{k} {v}" for k, v in b.items())
        out.append(f"  {r['kernel']}: {r['ctas']} CTAs ({what}, {r['num_warps']} warps)")
    return out
