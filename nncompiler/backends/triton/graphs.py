"""CUDA graphs without per-step copies: static buffers, pinned uploads, donated state.

A captured graph bakes in the addresses of everything it reads and writes, so the
runtime owns those buffers and arranges for the data to already be in them:

* **Batch arrays** (numpy on the host) are written into a pinned staging tensor and
  copied with `non_blocking=True` straight into the graph's static input: one
  host->device copy per array per step, and the host never waits for it. Each
  argument has two staging tensors used in turn, so the host fills one while the
  copy from the other may still be in flight; an event per staging tensor says when
  it may be refilled (the host only waits if it is two whole steps ahead).
* **Host scalars** (the learning rate) are uploaded the same way, but only when their
  value changed since the last upload.
* **The random key** (`rng` arguments: dropout's Philox seed) changes every step, but
  predictably: the State derives it from the step count, one more each step. The key's
  static buffer is the device-side step counter: the captured graph ends by advancing it
  ((key + 1) mod 2^31, `advance_key`), and the host keeps the value it predicts the
  buffer holds, so the step's key is already on the device and nothing is uploaded. A key
  that differs from the prediction (a restored checkpoint, the step count set by hand,
  another rank's key) is uploaded once, as any host scalar.
* **Donated state** (parameters and optimizer slots the step returns a `new.` value
  for) lives in two sets of buffers, S0 and S1, and the step is captured twice:
  phase 0 reads S0 and writes its new state into S1, phase 1 reads S1 and writes S0.
  The Model feeds the returned new state straight back in, so steady-state training
  ping-pongs between the two graphs with no copy at all. State that arrives in any
  other tensor (set_params, a restored checkpoint) is copied into S0 once.
* **Outputs** (loss, metrics) are preallocated per phase and valid until the same
  phase runs again, i.e. for one more step: read or accumulate them (DeviceStats)
  before then.

Every torch.cuda call goes through a `CudaAPI` object, so a test can hand in a stand-in
that runs on the CPU and counts uploads, device copies and host syncs while the code
above it is exactly the code a GPU runs.
"""
from __future__ import annotations

import contextlib
import sys
import warnings
from collections import OrderedDict

import numpy as np

from ...ir.shapes import NUMPY_DTYPE
from .index import eval_shape


class CudaAPI:
    """The few torch.cuda operations the graph runner needs (the real ones)."""

    @contextlib.contextmanager
    def side_stream(self):
        """Warm-up runs go on a side stream, as torch.cuda.graphs' documentation asks."""
        import torch
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            yield
        torch.cuda.current_stream().wait_stream(stream)

    def capture(self, fn):
        """Capture fn's launches; returns (replay, what fn returned)."""
        import torch
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            result = fn()
        return graph.replay, result

    def pinned(self, shape, dtype):
        import torch
        return torch.empty(shape, dtype=dtype, pin_memory=True)

    def upload(self, dst, src):
        dst.copy_(src, non_blocking=True)

    def copy(self, dst, src):
        dst.copy_(src)

    def event(self):
        import torch
        return torch.cuda.Event()


class StepGraphs:
    """Capture a fixed-shape call of a CompiledGraph and replay it (see the module docstring).

    The first call at a set of shapes runs eagerly (it compiles the kernels); the second
    captures. A last partial batch has other shapes, so it gets its own captured pair
    (up to four shape sets are kept). Any failure to capture falls back to plain
    launches for good."""

    def __init__(self, cg, donate=(), api: CudaAPI | None = None):
        self.cg = cg
        self.api = api or CudaAPI()
        self.donate = tuple(n for n in donate if n in cg.arg_names and f"new.{n}" in dict(cg.graph.outputs))
        self.entries: OrderedDict = OrderedDict()
        self.disabled = False
        self.seen: set = set()

    @staticmethod
    def _key(args: dict) -> tuple:
        return tuple((k, tuple(getattr(v, "shape", ()))) for k, v in sorted(args.items()))

    def static_inputs(self, args: dict) -> dict | None:
        """The buffers the graph captured for these shapes reads its non-state inputs from (None
        before capture). A caller that keeps its data in them (a benchmark with the batch already
        on the device) pays no copy at all."""
        entry = self.entries.get(self._key(args))
        return dict(entry.shared) if entry is not None else None

    def run(self, args: dict):
        if self.disabled:
            return None
        key = self._key(args)
        entry = self.entries.get(key)
        if entry is None:
            if key not in self.seen:        # first call with these shapes: run eagerly (compiles)
                self.seen.add(key)
                return None
            try:
                entry = _Entry(self, {k: self.cg.arguments.tensor_arg(k, v) for k, v in args.items()})
            except Exception as e:          # pragma: no cover - GPU only
                warnings.warn(f"nncompiler: CUDA graph capture failed ({e}); running kernels eagerly")
                self.disabled = True
                return None
            self.entries[key] = entry
            while len(self.entries) > 4:
                self.entries.popitem(last=False)
        return entry.replay(args)


class _Entry:
    """Both phases of one shape set: shared static inputs, S0/S1 state, per-phase outputs."""

    def __init__(self, owner: StepGraphs, tensors: dict):
        import torch
        cg, api = owner.cg, owner.api
        self.cg, self.api, self.donate = cg, api, owner.donate
        self.shared = {k: t.clone() for k, t in tensors.items() if k not in self.donate}
        self.state = [{k: tensors[k].clone() for k in self.donate},
                      {k: tensors[k].clone() for k in self.donate}]
        self.staging: dict = {}     # name -> [[pinned, event or None], [pinned, event or None]], next index
        self.host_value: dict = {}  # name -> bytes of the host scalar last uploaded
        # random keys the graph advances on the device after each step (module docstring)
        self.counters = tuple(a.attr["name"] for a in cg.graph.args_with_role("rng")
                              if a.attr["name"] in self.shared and a.dtype in ("i32", "i64"))
        sizes = cg.arguments.bind(tensors)
        cg.pool(sizes)              # the graphs bake in these intermediate buffers
        outs = dict(cg.graph.outputs)
        self.outputs = []
        self.replays = []
        for phase in (0, 1):
            reads, writes = self.state[phase], self.state[1 - phase]
            into = {}               # output base node -> the buffer it is stored into
            for name, nid in cg.graph.outputs:
                if nid in cg.plan.output_bases and nid not in into:
                    into[nid] = torch.empty(eval_shape(cg.graph[nid].shape, sizes),
                                            dtype=cg.node_dtype(nid), device=cg.device)
            for x in self.donate:   # new state lands directly in the other phase's buffers
                nid = outs[f"new.{x}"]
                target = writes[x]
                if nid in cg.plan.output_bases and nid not in cg.plan.output_views \
                        and tuple(into[nid].shape) == tuple(target.shape) and into[nid].dtype == target.dtype:
                    into[nid] = target

            def step(reads=reads, writes=writes, into=into):
                result = cg.run({**self.shared, **reads}, into)
                for x in self.donate:       # only when a new value is not a stored buffer (rare)
                    if result[f"new.{x}"].data_ptr() != writes[x].data_ptr():
                        api.copy(writes[x], result[f"new.{x}"])
                    result[f"new.{x}"] = writes[x]
                for name in self.counters:  # the next step's key, on the device
                    advance_key(self.shared[name])
                return result

            with api.side_stream():
                step()                      # warm-up: allocations happen outside the capture
            replay, result = api.capture(step)
            self.replays.append(replay)
            self.outputs.append(result)
        for x in self.donate:       # warm-ups (and a stand-in's capture) ran steps: restore S0
            api.copy(self.state[0][x], tensors[x])
        self.phase_of = {}
        for phase in (0, 1):
            if self.donate:
                self.phase_of[self.state[phase][self.donate[0]].data_ptr()] = phase

    # -- one call ----------------------------------------------------------------------------
    def replay(self, args: dict) -> dict:
        phase = 0
        if self.donate:
            phase = self.phase_of.get(_ptr(args[self.donate[0]]), 0)
            mine = self.state[phase]
            for x in self.donate:
                if _ptr(args[x]) != mine[x].data_ptr():   # state from elsewhere: adopt it once
                    self._put(x, mine[x], args[x])
        for k, s in self.shared.items():
            self._put(k, s, args[k])
        self.replays[phase]()
        for name in self.counters:      # what the buffer holds now (unknown until a first upload)
            if name in self.host_value:
                self.host_value[name] = next_key(self.host_value[name])
        return dict(self.outputs[phase])

    def _put(self, name, static, value):
        """Make `static` hold `value`: nothing if it is the buffer, else one copy."""
        import torch
        if isinstance(value, torch.Tensor):
            self.host_value.pop(name, None)     # the buffer's value is no longer the host's to predict
            if value.data_ptr() != static.data_ptr():
                self.api.copy(static, self.cg.arguments.tensor_arg(name, value))
            return
        arr = np.asarray(value)
        if arr.ndim == 0:           # host scalar: upload only when it changed
            arr = arr.astype(NUMPY_DTYPE[self.cg.arguments.nodes[name].dtype], copy=False)
            if self.host_value.get(name) == arr.tobytes():
                return
            self.host_value[name] = arr.tobytes()
        self._upload(name, static, arr)

    def _upload(self, name, static, arr):
        slots = self.staging.get(name)
        if slots is None:
            slots = self.staging[name] = [[self.api.pinned(tuple(static.shape), static.dtype), None]
                                          for _ in range(2)] + [0]
        i = slots[2]
        slots[2] = 1 - i
        pinned, event = slots[i]
        if event is not None and not event.query():   # the host is two steps ahead: wait for the copy
            event.synchronize()
        np.copyto(pinned.numpy(), arr, casting="unsafe")
        self.api.upload(static, pinned)
        if event is None:
            event = slots[i][1] = self.api.event()
        event.record()


KEY_MASK = 0x7FFFFFFF     # keys stay non-negative int32s: (key + 1) mod 2^31


def advance_key(key) -> None:
    """The next step's random key, in place on the device (a captured graph's last op)."""
    key.add_(1).bitwise_and_(KEY_MASK)


def next_key(host_bytes: bytes) -> bytes:
    """`advance_key` on the host: the bytes (numpy's, native order) of the key a buffer holding
    `host_bytes` holds next."""
    value = int.from_bytes(host_bytes, sys.byteorder, signed=True)
    return ((value + 1) & KEY_MASK).to_bytes(len(host_bytes), sys.byteorder, signed=True)


def _ptr(value) -> int:
    return value.data_ptr() if hasattr(value, "data_ptr") else -1


class DeviceStats:
    """Running sums of a step's scalar outputs (loss, metrics) times its rows, on the device.

    `add` enqueues two small device ops and never waits; `read` is the one host sync of a
    log interval and also says whether every value added was finite (NaN and Inf survive
    a sum)."""

    def __init__(self):
        self.names: tuple = ()
        self.sums = None
        self.rows = 0

    def add(self, values: dict, rows: int) -> None:
        import torch
        names = tuple(sorted(values))
        vals = torch.stack([values[k].reshape(()).to(torch.float64) for k in names])
        if self.sums is None or names != self.names:
            if self.sums is not None:
                raise ValueError(f"a step returned {names}, earlier steps {self.names}")
            self.names, self.sums = names, torch.zeros_like(vals)
        self.sums.add_(vals, alpha=rows)
        self.rows += rows

    def read(self, reset: bool = True) -> tuple[dict[str, float], int]:
        """(name -> sum of value x rows, rows) since the last reset: one host sync."""
        sums = dict(zip(self.names, self.sums.tolist())) if self.sums is not None else {}
        rows = self.rows
        if reset:
            self.sums, self.rows = None, 0
        return sums, rows
