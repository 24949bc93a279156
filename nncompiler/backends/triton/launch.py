"""Launching one kernel: its config per set of sizes, its grid, its arguments, its scratch.

A config (constexprs, num_warps, num_stages) comes from the shape table (tuning.py), from
`pin` (tests run split-K and grouped orders under the interpreter that way), or, with
`--autotune` on a GPU, from timing tuning.candidates once per set of sizes. The grid and the
argument recipe are computed once per set of sizes too, so a launch after the first is a
list lookup and the call: the runtime keeps the resulting tuple per sizes (runtime.py).

Kernels that read operands through TMA descriptors need global scratch memory at launch,
which Triton asks an allocator for: `install_scratch_allocator` gives it one backed by torch.
"""
from __future__ import annotations

from .codegen_scope import BLOCK_DEFAULTS
from .tuning import candidates, choose, grid as launch_grid, split_scratch


class Launcher:
    """How each kernel of one compiled graph is launched (see the module docstring)."""

    def __init__(self, kernels: dict, fns: dict, device: str, interpret: bool, autotune: bool):
        import torch
        self.kernels = kernels      # kernel index -> KernelSource
        self._fns = fns             # kernel index -> its @triton.jit function
        self.device = device
        self.interpret = interpret
        self.autotune = autotune
        self._torch = torch
        self._tuned: dict = {}      # (kernel index, sizes) -> config
        self._pinned: dict = {}     # kernel index -> config, at every size

    def launch(self, ks, bufs, sizes, pool) -> tuple:
        """(fn, grid, recipe, ints, blocks, opts) of kernel `ks` at these sizes: block sizes,
        grid and argument recipe, computed on the first run at these sizes."""
        blocks, warps, stages = self._config(ks, bufs, sizes)
        grid, ints = launch_grid(ks, sizes, blocks)
        recipe = self._recipe(ks, sizes, blocks, pool)
        return (self._fns[ks.index], grid, recipe, ints, blocks, _options(warps, stages))

    def settled(self, ks, key) -> bool:
        """Whether a launch of `ks` made now may be kept for the sizes `key`: under --autotune,
        only once a config was timed and chosen for them."""
        return not self.autotune or (ks.index, key) in self._tuned

    def pin(self, kernel_name: str, config: tuple[dict, int, int | None]):
        """Launch kernel `kernel_name` with this (constexprs, num_warps, num_stages) at every size:
        what tests use to run split-K and grouped orders under the interpreter."""
        ks = next(k for k in self.kernels.values() if k.name == kernel_name)
        blocks, warps, stages = config
        defaults = {b: v for b, v in BLOCK_DEFAULTS.items() if b in ks.blocks}
        self._pinned[ks.index] = ({**defaults, **blocks}, warps, stages)

    def launch_configs(self) -> dict[str, dict]:
        """kernel name -> the constexprs of its launches so far (the last set of sizes's): what a
        report shows, e.g. which matmuls read their operands through TMA."""
        names = {k.index: k.name for k in self.kernels.values()}
        out = {names[i]: cfg[0] for (i, _), cfg in self._tuned.items()}
        out.update({names[i]: cfg[0] for i, cfg in self._pinned.items()})
        return out

    def _config(self, ks, bufs, sizes):
        if ks.index in self._pinned:
            return self._pinned[ks.index]
        key = (ks.index, tuple(sorted(sizes.items())))
        if key not in self._tuned:
            self._tuned[key] = self._autotune(ks, bufs, sizes) if self.autotune else choose(ks, sizes, self.interpret)
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

    def _launcher(self, ks, bufs, sizes, config):
        """A launch of kernel `ks` with `config`, its arguments (split-K scratch included) bound
        once, so timing it times the kernel alone."""
        fn = self._fns[ks.index]
        blocks, warps, stages = config
        grid, ints = launch_grid(ks, sizes, blocks)
        scratch: list = []
        recipe = self._recipe(ks, sizes, blocks, scratch)
        args = [bufs[r] if how == 0 else scratch[r] if how == 2 else r for how, r in recipe]
        opts = _options(warps, stages)

        def launch():
            if all(x > 0 for x in grid):
                fn[grid](*args, *ints, **blocks, **opts)
        return launch

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


def _options(warps: int, stages: int | None) -> dict:
    """Triton's launch options; num_stages None leaves Triton's default."""
    return {"num_warps": warps} if stages is None else {"num_warps": warps, "num_stages": stages}


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
