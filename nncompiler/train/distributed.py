"""Data-parallel training over `torch.distributed` (gloo on the CPU, NCCL for CUDA tensors).

Every rank holds the whole model and runs the same program on its slice of each global
batch. The fused `train_step` graph is split in two compiled graphs
(`nncompiler.program`): `grad_step` (forward + backward: loss, metrics, `update.<buffer>`,
`grad.<param>`) and `apply_update` (params, `grad.<param>`, optimizer state, lr ->
`new.<...>`), and a step is

    grad_step on this rank's rows -> weighted all-reduce of the gradients (bucketed)
                                   -> apply_update on every rank

so parameters and optimizer state stay identical on every rank without ever being sent
after the first step. With the global batch fixed, this is single-process training:

- every rank draws the same permutation from the shared seed (the loop's generator) and
  takes its contiguous slice `[n*r//W, n*(r+1)//W)` of each global batch of n rows;
- rank r's gradients are weighted by its share of the rows, `n_r / n`, before the
  all-reduce (a sum), so the result is the mean over the global batch even when the last
  batch does not divide evenly (a rank with no rows contributes zeros); a loss that sums
  over the rows (`loss sum(...)`) is found before the first step and weighted by 1, and one
  that is neither a mean nor a sum is refused (`loss_rule`);
- loss and metrics (batch means) and batchnorm's `update.<buffer>` travel the same way,
  so every rank reports the global batch's numbers and keeps identical buffers.

What is *not* single-process training: batch statistics (batchnorm) are per rank's slice,
and dropout draws per rank (each rank mixes its rank into the step's random key, so the
slices do not share masks).

Gradients are bucketed: flattened, in the order the backward pass produces them, into
flat buffers of about `NNC_DIST_BUCKET_MB` (default 4) MiB; the copy into the bucket is
where the row weighting is applied (one pass over each gradient). Each bucket's all-reduce
is issued asynchronously as soon as it is filled, so bucket k travels while bucket k+1 is
filled; the reduced gradients are read back as views of the buckets, never copied. The
loss and metrics ride at the end of the last bucket (a small model's step is one collective).
Numpy buckets are shared with torch through `torch.from_numpy` (gloo reduces them in
place); torch tensors (the Triton backend's device arrays, on the GPU) are bucketed and
reduced in place on their device (NCCL), never copied to the host; any other backend's
arrays go through `to_numpy`/`to_device`. See docs/distributed.md.

A failure of another rank (its process died, or it did not answer within the group's
timeout: `NNC_DIST_TIMEOUT` seconds, default 300, under `nnc run`) surfaces as one
`NNCError` naming this rank and the step, rather than a hang.
"""
from __future__ import annotations

import datetime
import os
import re
import sys
import zlib

import numpy as np

from ..errors import NNCError
from .steps import count_rows, evaluate, is_batched

TIMEOUT_ENV = "NNC_DIST_TIMEOUT"        # seconds a collective may wait for the other ranks
BUCKET_ENV = "NNC_DIST_BUCKET_MB"       # gradient bucket size in MiB
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_BUCKET_MB = 4.0


# --------------------------------------------------------------------------- the process group

def running():
    """`torch.distributed` when a process group of more than one rank is initialised, else None.

    Never imports torch: a process that initialised a group has imported it already."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist if dist.get_world_size() > 1 else None


def timeout_s() -> float:
    text = os.environ.get(TIMEOUT_ENV, "")
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise NNCError(f"{TIMEOUT_ENV}={text!r}: expected a positive number of seconds")
    return value


def _bucket_bytes() -> int:
    text = os.environ.get(BUCKET_ENV, "")
    try:
        mb = float(text) if text else DEFAULT_BUCKET_MB
    except ValueError:
        mb = -1.0
    if not mb > 0:
        raise NNCError(f"{BUCKET_ENV}={text!r}: expected a positive size in MiB")
    return max(4, int(mb * 2 ** 20))


def group_backend(backend: str) -> str:
    """The collective backend for a model backend: NCCL where the state lives on a CUDA GPU
    (triton), gloo otherwise."""
    if backend == "auto":
        from ..backends import resolve_auto
        backend = resolve_auto()
    if backend == "triton":
        import torch
        if torch.cuda.is_available():
            return "nccl"
    return "gloo"


def launched() -> bool:
    """Whether this process is a rank started by a launcher (torchrun sets these)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_from_env(backend: str = "numpy") -> int:
    """Join the process group described by the environment torchrun sets (RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT, LOCAL_RANK), with a timeout on every collective; returns this
    rank. Does nothing (returns 0) outside a launcher or with one rank."""
    if not launched() or int(os.environ.get("WORLD_SIZE") or 1) <= 1:
        return 0
    try:
        import torch
        import torch.distributed as dist
    except ImportError:
        raise NNCError("distributed training needs torch (torch.distributed): pip install torch") from None
    if dist.is_initialized():
        return dist.get_rank()
    rank = int(os.environ.get("RANK", "0"))
    pg = group_backend(backend)
    if pg == "nccl":   # one GPU per rank; the triton backend allocates on the current device
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    try:
        dist.init_process_group(pg, timeout=datetime.timedelta(seconds=timeout_s()))
    except Exception as e:  # noqa: BLE001 (store, network and backend errors alike)
        raise NNCError(f"rank {rank}: cannot join the process group ({pg}): {_first_line(e)}") from None
    import atexit
    atexit.register(_shutdown)
    return dist.get_rank()


def _shutdown() -> None:
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 (exiting anyway)
            pass


def _abandon(dist) -> None:
    """Tear down a process group whose collective failed, at once: left alone, gloo's half-done
    work can abort the process when it exits ('terminate called without an active exception')."""
    try:
        abort = getattr(dist.distributed_c10d, "_abort_process_group", None)
        if dist.get_backend() == "nccl" and abort is not None:
            abort()     # NCCL's communicators must be aborted, not waited for
        else:
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001 (the first error is the one to report)
        pass


def _group_timeout(dist) -> float:
    """The default group's collective timeout in seconds (as init_process_group set it)."""
    try:
        import torch
        device = torch.device("cuda" if dist.get_backend() == "nccl" else "cpu")
        pg = dist.distributed_c10d._get_default_group()
        return pg._get_backend(device).options._timeout.total_seconds()
    except Exception:  # noqa: BLE001 (a private API: fall back to what nnc asks for)
        return timeout_s()


def _first_line(e: BaseException) -> str:
    """The gist of a backend's error: `Read error [127.0.0.1]:37282: Connection reset by peer`."""
    text = (str(e).strip() or type(e).__name__).splitlines()[0]
    text = re.sub(r"^\[[^\]]*\.(?:cc|cpp|h)(?::\d+)?\]\s*", "", text)   # gloo's [.../pair.cc:537]
    return re.split(r"\.\s+(?=[A-Z])", text, maxsplit=1)[0][:300]


class _collective:
    """Turns a failed or timed-out collective into one NNCError."""

    def __init__(self, trainer, what: str):
        self.trainer, self.what = trainer, what

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if not isinstance(error, RuntimeError):   # torch.distributed's errors (DistError) are RuntimeErrors
            return False
        t = self.trainer
        _abandon(t.dist)
        raise NNCError(f"rank {t.rank}/{t.world}: distributed training failed during {self.what} "
                       f"(step {t.steps + 1}): another rank exited or did not answer within "
                       f"{t.timeout:g}s: {_first_line(error)}") from None


# --------------------------------------------------------------------------- launching

def launch(nproc: int, argv: list[str]) -> int:
    """`nnc run FILE.nn --nproc N`: N ranks on this machine, the rendezvous store and the
    collectives on 127.0.0.1 only, each rank `python -P -m nncompiler ARGV` (train/launch.py).
    A failed rank becomes one NNCError; the others are stopped."""
    from .launch import launch_local
    return launch_local(nproc, argv)


def _nproc_flag(argv: list[str], i: int) -> bool:
    """Whether argv[i] is `--nproc`, its value, or `--nproc=N` (the ranks must not relaunch)."""
    a = argv[i]
    return a == "--nproc" or a.startswith("--nproc=") or (i > 0 and argv[i - 1] == "--nproc")


# --------------------------------------------------------------------------- training

def trainer_for(model, **agree):
    """A DistributedTrainer when a process group of more than one rank runs, else None.

    `agree` (rows, steps per epoch, epochs, ...) must be equal on every rank: a rank that
    would run a different number of steps would leave the others waiting."""
    return None if running() is None else DistributedTrainer(model, **agree)


def _shape(value) -> tuple[int, ...]:
    """A device array's shape without copying it to the host."""
    return tuple(int(d) for d in (value.shape if hasattr(value, "shape") else np.shape(value)))


class _Ops:
    """Flat buffers of one kind of device array: numpy (shared with torch via from_numpy),
    torch tensors (reduced in place on their device), or other (through host numpy)."""

    def __init__(self, torch, backend, sample):
        self.torch, self.backend = torch, backend
        self.is_torch = isinstance(sample, torch.Tensor)
        self.device = sample.device if self.is_torch else None
        self.host = not self.is_torch and not isinstance(sample, (np.ndarray, np.generic))

    def empty(self, n: int):
        if self.is_torch:
            return self.torch.empty(n, dtype=self.torch.float32, device=self.device)
        return np.empty(n, dtype=np.float32)

    def put(self, flat, off: int, size: int, x, w: float) -> None:
        if self.is_torch:
            if not isinstance(x, self.torch.Tensor):
                x = self.torch.as_tensor(x, device=flat.device)
            self.torch.mul(x.reshape(-1), w, out=flat[off:off + size])
        else:
            x = self.backend.to_numpy(x) if self.host else x
            np.multiply(np.asarray(x).reshape(-1), np.float32(w), out=flat[off:off + size])

    def zero(self, flat, off: int, size: int) -> None:
        flat[off:off + size] = 0

    def host_list(self, flat, off: int, size: int) -> list[float]:
        return [float(v) for v in flat[off:off + size].tolist()]

    def tensor(self, flat):
        return flat if self.is_torch else self.torch.from_numpy(flat)

    def view(self, flat, off: int, size: int, shape):
        v = flat[off:off + size]
        v = v.view(shape) if self.is_torch else v.reshape(shape)
        return self.backend.to_device(np.array(v)) if self.host else v


class DistributedTrainer:
    """Drives a Model's `grad_step` and `apply_update` graphs on this rank's rows."""

    def __init__(self, model, **agree):
        import torch
        self.torch, self.dist = torch, running()
        self.model = model
        self.rank, self.world = self.dist.get_rank(), self.dist.get_world_size()
        self.timeout = _group_timeout(self.dist)
        self.bucket_bytes = _bucket_bytes()
        self.sharded = is_batched(model)    # data with a batch axis is split; otherwise every rank takes all
        self.steps = 0
        self.buckets = None     # worked out on the first step
        self._rule = None       # the loss's rule, "mean" or "sum": see loss_rule
        # small float64 vectors (stats, checks) go where the group reduces them: the CPU with
        # gloo (also "cpu:gloo,cuda:nccl"), this rank's GPU with NCCL alone
        kind = str(self.dist.get_backend())
        self._device = "cpu" if "gloo" in kind or "nccl" not in kind else f"cuda:{torch.cuda.current_device()}"
        st = model.state
        sample = st[next(iter(st))] if len(st) else None
        if "gloo" not in kind and isinstance(sample, (np.ndarray, np.generic)):
            raise NNCError(f"the {model.backend_name} backend keeps its arrays on the CPU: initialise the process "
                           f"group with backend 'gloo' (it is {kind!r})")
        odd = [f"{k} ({st.dtype(k).name})" for k in st if st.dtype(k) != np.float32]
        if odd:   # the buckets and the broadcast carry float32
            raise NNCError(f"data-parallel training keeps float32 state only; model {model.lowered.name} "
                           f"declares {', '.join(odd[:3])}{' ...' if len(odd) > 3 else ''}: train it in one process")
        self._check_agree(agree)
        self._sync_state()

    def _small(self, values: list[float]):
        return self.torch.tensor(values, dtype=self.torch.float64, device=self._device)

    # -- setup -------------------------------------------------------------------------
    def _check_agree(self, values: dict) -> None:
        """Fail on every rank (rather than hang) when the ranks disagree on the data, the
        schedule or the model's state layout."""
        st = self.model.state
        layout = ";".join(f"{k}:{_shape(st[k])}" for k in sorted(st))
        values = {**values, "model": float(zlib.crc32(f"{self.model.lowered.name}|{layout}".encode()))}
        names = list(values)
        mine = self._small([float(values[k]) for k in names])
        hi, lo = mine.clone(), -mine
        with _collective(self, "the start of training"):
            self.dist.all_reduce(hi, op=self.dist.ReduceOp.MAX)
            self.dist.all_reduce(lo, op=self.dist.ReduceOp.MAX)
        differ = [k for k, a, b in zip(names, hi.tolist(), (-lo).tolist()) if a != b]
        if differ:
            raise NNCError(f"rank {self.rank}/{self.world}: the ranks disagree on {', '.join(differ)} "
                           "(every rank must train the same model on the same data with the same settings)")

    def _sync_state(self) -> None:
        """Rank 0's parameters, buffers, optimizer state, step count and lr on every rank
        (one broadcast), so that `--weights`/`--resume` or a user's set_params cannot diverge."""
        m = self.model
        st = m.state
        names = sorted(st)
        sample = st[names[0]] if names else np.zeros(0, np.float32)
        ops = _Ops(self.torch, m.backend, sample)
        shapes = [_shape(st[k]) for k in names]
        sizes = [int(np.prod(s)) for s in shapes]
        flat = ops.empty(sum(sizes) + 2)
        off = 0
        for k, size in zip(names, sizes):
            ops.put(flat, off, size, st[k], 1.0)
            off += size
        flat[off] = float(m.steps_taken)
        flat[off + 1] = float(m.lr)
        with _collective(self, "the start of training"):
            self.dist.broadcast(ops.tensor(flat), src=0)
        if self.rank == 0:
            return
        off = 0
        for k, size, shape in zip(names, sizes, shapes):
            st.assign_device({k: ops.view(flat, off, size, shape)})
            off += size
        m.steps_taken = int(flat[off])
        if "lr" in m.hyper:
            m.lr = float(flat[off + 1])   # float32 on the wire; equal on every rank, which is what counts

    def _build_layout(self) -> None:
        """Buckets of (output name, offset, size, shape), in the order the grad_step graph
        computes them (buffer updates in the forward pass, then the gradients as the backward
        pass produces them), each about `bucket_bytes`. The loss and metrics ride at the end of
        the last bucket: one collective per step for a small model."""
        m = self.model
        g = m.graph("grad_step")
        pos = {n.id: i for i, n in enumerate(g.nodes)}
        outs = dict(g.outputs)
        self.stat_names = [n for n in outs if not n.startswith(("grad.", "update."))]
        # a curve metric's parts are vectors (per-threshold counts): each stat takes its size
        self.stat_sizes = [int(np.prod(g[outs[n]].shape)) for n in self.stat_names]
        reduced = [n for n in outs if n.startswith(("grad.", "update."))]
        reduced.sort(key=lambda n: pos[outs[n]])
        state = m.state
        sample = state[reduced[0].split(".", 1)[1]] if reduced else np.zeros(0, np.float32)
        ops = _Ops(self.torch, m.backend, sample)
        buckets, items, used = [], [], 0
        for name in reduced:
            key = name.split(".", 1)[1]
            shape = _shape(state[key])
            size = int(np.prod(shape))
            if items and (used + size) * 4 > self.bucket_bytes:
                buckets.append((items, used))
                items, used = [], 0
            items.append((name, used, size, shape))
            used += size
        self.stat_off = used
        buckets.append((items, used + sum(self.stat_sizes)))
        self.buckets, self.ops = buckets, ops

    # -- one step ----------------------------------------------------------------------
    def shard(self, n: int) -> tuple[int, int, float]:
        """This rank's rows [lo, hi) of a global batch of n, and its weight."""
        if not self.sharded:
            return 0, n, 1.0 / self.world
        lo, hi = n * self.rank // self.world, n * (self.rank + 1) // self.world
        return lo, hi, (hi - lo) / max(n, 1)

    def loss_rule(self, data: dict) -> str:
        """How the loss of a batch is made of its rows' losses: "mean" (every library loss: each
        rank's gradients weigh n_r/n) or "sum" (`loss sum(...)`: they add up). Found once, by
        evaluating the loss (inference mode, deterministic, the same on every rank) on up to 64
        rows and on their two halves; a loss that is neither, or a sum plus a regulariser, cannot
        be split across ranks and is an error."""
        if self._rule is None:
            self._rule = self._find_loss_rule(data)
        return self._rule

    def _find_loss_rule(self, data: dict) -> str:
        n = min(count_rows(data), 64)
        if not self.sharded or n < 2:
            return "mean"      # not split, or one row: every rule weighs the one rank with rows by 1
        h = n // 2
        full, a, b = (evaluate(self.model, {k: v[lo:hi] for k, v in data.items()})["loss"]
                      for lo, hi in ((0, n), (0, h), (h, n)))
        if not all(map(np.isfinite, (full, a, b))):
            return "mean"      # nothing to learn from; training will report the non-finite loss

        def close(x, y):
            return abs(x - y) <= 1e-4 * max(abs(x), abs(y)) + 1e-6
        if close(full, (h * a + (n - h) * b) / n):
            return "mean"
        if close(full, a + b):
            return "sum"
        raise NNCError(f"model {self.model.lowered.name}: its loss is neither a mean nor a sum over the batch's rows "
                       f"(on {n} rows {full:.6g}; on their halves {a:.6g} and {b:.6g}), so it cannot be split "
                       "across ranks (a sum plus a regulariser cannot either): write it as a mean over the "
                       "rows, or train in one process")

    def _rng_key(self):
        # rank 0 keeps the single-process key; the other ranks' dropout masks differ from it
        return np.int32((int(self.model.rng_key()) + self.rank * 0x9E3779B) & 0x7FFFFFFF)

    def step(self, data: dict, idx: np.ndarray) -> tuple[dict, dict[str, float]]:
        """One optimizer step on the global batch `data[idx]`: this rank computes the gradients
        of its slice; returns (this rank's batch, the global batch's loss and metrics)."""
        m = self.model
        if self.buckets is None:
            self._build_layout()
        lo, hi, w = self.shard(len(idx))
        # the loss's gradients weigh by the rank's share of rows, or 1 for a summed loss
        wl = w if not self.sharded or self.loss_rule(data) == "mean" else float(hi > lo)
        local = idx[lo:hi]
        batch = {k: v[local] for k, v in data.items()}
        out = None
        if hi > lo:
            args = m.arguments("grad_step", batch, ("input", "target"))
            if "rng.key" in args:
                args["rng.key"] = self._rng_key()
            out = m.run("grad_step", batch, args=args)
        to_numpy = m.backend.to_numpy
        stats = np.concatenate([(wl if k == "loss" else w) * np.asarray(to_numpy(out[k]), np.float64).ravel()
                                if out is not None else np.zeros(size)
                                for k, size in zip(self.stat_names, self.stat_sizes)] or [np.zeros(0)])
        ops, flats, works = self.ops, [], []
        with _collective(self, "the gradient all-reduce"):
            for items, total in self.buckets:   # issued as each bucket is filled
                flat = ops.empty(total)
                for name, off, size, _ in items:
                    if out is None:
                        ops.zero(flat, off, size)
                    else:
                        ops.put(flat, off, size, out[name], wl if name.startswith("grad.") else w)
                if len(flats) == len(self.buckets) - 1 and len(stats):   # the last one carries the stats
                    ops.put(flat, self.stat_off, len(stats), np.asarray(stats, np.float32), 1.0)
                works.append(self.dist.all_reduce(ops.tensor(flat), async_op=True))
                flats.append(flat)
            for work in works:
                work.wait()
        stats = ops.host_list(flats[-1], self.stat_off, len(stats))
        reduced = {}
        for (items, _), flat in zip(self.buckets, flats):
            for name, off, size, shape in items:
                reduced[name] = ops.view(flat, off, size, shape)
        args = m.arguments("apply_update", {}, ())
        args.update({k: v for k, v in reduced.items() if k.startswith("grad.")})
        m.state.take_outputs(m.run("apply_update", {}, args=args), "new.")
        m.state.take_outputs(reduced, "update.")
        m.steps_taken += 1
        self.steps += 1
        return batch, _split(self.stat_names, self.stat_sizes, stats)

    def evaluate(self, model, data: dict) -> dict[str, float]:
        """Loss and metrics over `data`, each rank evaluating its slice (the same on every rank)."""
        n = count_rows(data)
        lo, hi, w = self.shard(n)
        # the parts, not the ratios: the ranks' row-weighted parts add up to the whole data's
        mine = evaluate(model, {k: v[lo:hi] for k, v in data.items()}, raw=True) if hi > lo else None
        if mine is None:   # the names without running: the evaluate graph's outputs
            names = [("loss" if k == "loss" else k[len("metric."):]) for k, _ in model.graph("evaluate").outputs]
            g = model.graph("evaluate")
            mine = {name: np.zeros(g[i].shape) if g[i].shape else 0.0 for name, (_, i) in zip(names, g.outputs)}
            w = 0.0
        wl = w if not self.sharded or self.loss_rule(data) == "mean" else float(w > 0)
        sizes = [int(np.size(v)) for v in mine.values()]
        vec = self._small(np.concatenate([(wl if k == "loss" else w) * np.ravel(np.asarray(v, np.float64))
                                          for k, v in mine.items()] or [np.zeros(0)]).tolist())
        with _collective(self, "validation"):
            self.dist.all_reduce(vec)
        from ..library.metrics import epoch_value
        return epoch_value(_split(list(mine), sizes, vec.tolist()))


def _split(names: list[str], sizes: list[int], flat) -> dict:
    """Stats packed one after another back into {name: float, or an array for a vector part}."""
    out, off = {}, 0
    for name, size in zip(names, sizes):
        part = [float(v) for v in flat[off:off + size]]
        out[name] = part[0] if size == 1 else np.asarray(part)
        off += size
    return out
