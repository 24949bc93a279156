"""Training safety: stop on NaN/Inf (and say where it came from), stop cleanly on SIGINT/SIGTERM.

`TrainingGuard` is a callback that `fit` puts first in its chain (`nan_check=True`,
the default; `nnc run` also asks it to handle signals):

* **NaN check.** It checks that the loss of every step and every new parameter are
  finite (on a backend whose arrays live on a GPU, `async_device`, the losses are
  checked with the parameters every few steps, on the device, not one by one). A
  snapshot of the state is kept on the device (`State.snapshot`, every few steps),
  so on a non-finite value the model is put back
  to its state before the failing step, the failing step is re-run through the
  numpy backend with every IR node of its train_step graph as an output, and the
  error names the epoch, the step, the first parameter that went non-finite and the
  first IR op whose value is not finite, with its `.nn` position. If training
  writes a checkpoint, the last good state is saved there (resumable), never the
  poisoned one.

* **Signals.** The first SIGINT (Ctrl-C) or SIGTERM only sets a flag: the step in
  progress finishes, then the guard writes a checkpoint (atomically: a temporary
  file, fsync, rename) and raises `Interrupted`, which `nnc run` turns into exit
  status 130 or 143. A checkpoint written in the middle of an epoch records where
  (`partial`: the epoch, the batches done, the running sums, and the shuffle
  generator's state before that epoch), so `--resume` replays the same batch order,
  skips the batches already done and prints the same numbers as an uninterrupted
  run. A second signal interrupts at once.
"""
from __future__ import annotations

import math
import signal
import threading

import numpy as np

from ..errors import Diagnostic, NNCError
from .callbacks import Callback


class NonFiniteError(NNCError):
    """Training produced a NaN or an infinity; see `TrainingGuard`."""

    def __init__(self, message: str, epoch: int, step: int, batch: int, param: str | None = None,
                 node=None, checkpoint: str | None = None):
        super().__init__(message)
        self.epoch, self.step, self.batch = epoch, step, batch
        self.param, self.node, self.checkpoint = param, node, checkpoint


class Interrupted(KeyboardInterrupt):
    """Training stopped on a signal; `exit_code` is 128 + the signal number (130, 143)."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum, self.message = signum, message
        self.exit_code = 128 + signum

    def __str__(self) -> str:
        return self.message


def _name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _finite(value) -> bool:
    """Whether every element is finite: one sum (NaN and Inf propagate), confirmed elementwise
    only when the sum is not finite (a sum of large finite values can overflow)."""
    try:
        if math.isfinite(float(value.sum())):
            return True
    except (TypeError, ValueError, AttributeError):
        pass
    arr = np.asarray(value)
    return arr.dtype.kind not in "fc" or bool(np.isfinite(arr).all())


def resume_point(ckpt, batch_size, rows: int) -> dict:
    """The `partial` record of a checkpoint written in the middle of an epoch, checked against this run."""
    partial = dict(ckpt.meta["partial"])
    if partial.get("batch_size") != batch_size or partial.get("rows") != rows:
        raise NNCError(f"{ckpt.path}: the checkpoint was written in the middle of epoch {partial.get('epoch')} "
                       f"(batch size {partial.get('batch_size')}, {partial.get('rows')} training rows); resume "
                       f"with the same batch size and data (here: batch size {batch_size}, {rows} rows)")
    return partial


class TrainingGuard(Callback):
    """NaN/Inf checks after every step, and clean stops on SIGINT/SIGTERM (see the module docstring).

    checkpoint: where to save on a stop; default: the path of the fit's ModelCheckpoint
    (`checkpoint=` / `--save`), if any.

    The NaN check costs a few microseconds a step: the loss is checked after every
    step; the parameters every `every` steps (fewer when the batches are large: the
    steps since the last check keep their batches, at most `log_bytes` of them) and at
    every epoch's end (before anyone saves them), where the state is also copied aside. A step is deterministic (its
    state, batch, learning rate and random key fix it), so when something is not
    finite the guard goes back to the last copy and replays the steps since, checking
    each, to find the exact step that first went wrong and the state before it.
    """

    every = 32
    log_bytes = 256 * 2**20

    def __init__(self, nan_check: bool = True, signals: bool = False, checkpoint: str | None = None,
                 quiet_numpy: bool = False):
        self.nan_check, self.signals, self.checkpoint = nan_check, signals, checkpoint
        self.quiet_numpy = quiet_numpy       # no numpy overflow/NaN warnings while the guard reports them
        self._numpy_err = None
        self.signum: int | None = None          # the signal that stopped training, if one did
        self.stopped_at: tuple[int, int] | None = None   # (epoch, batches done in it)
        self.saved: str | None = None          # the checkpoint written on the stop
        self._handlers: dict = {}

    # -- hooks ----------------------------------------------------------------------
    def on_train_begin(self, state):
        self.model = state.model
        self.ckpt_cb = next((c for c in state.extra.get("callbacks", ()) if hasattr(c, "saved_epoch")), None)
        if self.checkpoint is None and self.ckpt_cb is not None:
            self.checkpoint = self.ckpt_cb.path
        self.done, self.seen, self.totals = 0, 0, {}
        if self.nan_check:
            self._params = [p for p in self.model.lowered.params if p in self.model.state]
            # a backend that checks on its device (a GPU): the losses wait for the next check
            # (every `every` steps and at the epoch's end) instead of a host sync per step; the
            # replay from the last snapshot still finds the exact step
            self._device_check = self.model.backend.async_device
            self._losses: list = []
            self._every: int | None = None
            self._snap = None
            self._take_snapshot()
        if self.signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._handlers[sig] = signal.signal(sig, self._on_signal)
        if self.nan_check and self.quiet_numpy:
            self._numpy_err = np.seterr(invalid="ignore", divide="ignore", over="ignore")

    def on_epoch_begin(self, state):
        self.epoch_rng = state.rng.bit_generator.state if state.rng is not None else None
        partial = state.extra.get("partial")
        if partial and partial.get("epoch") == state.epoch:
            self.done, self.seen = int(partial["batches"]), int(partial["seen"])
            self.totals = {k: np.asarray(v, np.float64) if isinstance(v, list) else v
                           for k, v in partial["totals"].items()}
        else:
            self.done, self.seen, self.totals = 0, 0, {}
        if self.nan_check:
            self._mark()

    def on_batch_end(self, state, batch, stats, rows):
        from .steps import on_device
        if self.nan_check:
            self._log.append((state.last_batch, rows))
            if "loss" in stats:
                if self._device_check:      # checked with the parameters, one sync per check
                    self._losses.append(on_device(stats, "loss"))
                elif not math.isfinite(stats["loss"]):
                    self._fail(state)
            if self._every is None:     # the first batch tells how many the log may hold
                size = sum(getattr(v, "nbytes", 0) for v in (state.last_batch or {}).values())
                self._every = max(1, min(self.every, self.log_bytes // max(size, 1)))
            if len(self._log) >= self._every:
                self._verify(state)
        self.done = batch + 1
        for k in stats:
            self.totals[k] = self.totals.get(k, 0.0) + on_device(stats, k) * rows
        self.seen += rows
        if self.signum is not None:
            self.stopped_at = (state.epoch, self.done)
            where = self._save_partial(state)
            raise Interrupted(self.signum, f"interrupted by {_name(self.signum)} in epoch {state.epoch} after "
                                           f"batch {self.done} of {state.steps_per_epoch}: {where}")

    def on_epoch_end(self, state, record):
        if self.nan_check and self._log:   # before the epoch's state is saved or reported as done
            self._verify(state)
        if self.signum is not None:     # the epoch is complete: stop here; ModelCheckpoint saves it
            state.stop = True
            self.stopped_at = (state.epoch, state.steps_per_epoch)
            self.saved = self.checkpoint

    def on_train_end(self, state):
        self._restore_handlers()

    def close(self):
        self._restore_handlers()

    def message(self) -> str:
        """What `nnc run` prints after training stopped at an epoch's end on a signal."""
        epoch = self.stopped_at[0] if self.stopped_at else "?"
        where = (f"saved {self.saved} at the end of epoch {epoch}; continue with --resume {self.saved}"
                 if self.saved else "nothing saved (no --save)")
        return f"interrupted by {_name(self.signum)} after epoch {epoch}: {where}"

    # -- signals ----------------------------------------------------------------------
    def _on_signal(self, signum, frame):
        if self.signum is not None:       # a second signal: stop now
            self._restore_handlers()
            raise Interrupted(signum, f"interrupted by a second {_name(signum)}; nothing saved")
        self.signum = signum

    def _restore_handlers(self):
        if self._numpy_err is not None:
            np.seterr(**self._numpy_err)
            self._numpy_err = None
        for sig, old in self._handlers.items():
            try:
                signal.signal(sig, old)
            except (ValueError, TypeError):
                pass
        self._handlers = {}

    # -- checkpoints --------------------------------------------------------------------
    def _save_partial(self, state) -> str:
        """Save the current state as a checkpoint in the middle of `state.epoch`; say where."""
        if not self.checkpoint:
            return "nothing saved (no --save)"
        from .checkpoint import save_checkpoint
        rng = None
        if self.epoch_rng is not None:
            rng = np.random.default_rng()
            rng.bit_generator.state = self.epoch_rng
        partial = {"epoch": state.epoch, "batches": self.done, "seen": self.seen,
                   "totals": {k: _plain(v) for k, v in self.totals.items()},
                   "batch_size": _batch_size(state), "rows": state.rows}
        history = {k: v[:state.epoch - 1] for k, v in state.history.items()}   # completed epochs only
        save_checkpoint(state.model, self.checkpoint, epoch=state.epoch - 1, rng=rng, seed=state.seed,
                        history=history, callbacks=state.extra.get("callbacks", ()),
                        extra={"partial": partial})
        self.saved = self.checkpoint
        return (f"saved {self.checkpoint} (epoch {state.epoch}, {self.done} of {state.steps_per_epoch} "
                f"batches done); continue with --resume {self.checkpoint}")

    # -- NaN check ------------------------------------------------------------------------
    def _params_finite(self) -> str | None:
        """The first parameter that is not finite, or None."""
        st = self.model.state
        check = self.model.backend.all_finite   # where the arrays live (a GPU: one sync, no copy)
        if self.model.backend.async_device:
            if check([st[p] for p in self._params]):
                return None
            return next((p for p in self._params if not check([st[p]])), None)
        try:   # one sum per parameter (NaN and Inf propagate); confirmed one by one if not finite
            if math.isfinite(sum(float(st[p].sum()) for p in self._params)):
                return None
        except (TypeError, ValueError, AttributeError):
            pass
        return next((p for p in self._params if not _finite(st[p])), None)

    def _take_snapshot(self):
        """Copy the state aside (into the buffers of the previous copy) and start a new log."""
        self._snap = self.model.state.snapshot(into=self._snap)
        self._mark()

    def _mark(self):
        self._log: list = []         # (batch, rows) of every step since the snapshot
        self._losses = []            # their losses, where the backend checks on its device
        self._at = (self.done, self.seen, dict(self.totals))

    def _verify(self, state):
        losses, self._losses = self._losses, []
        if losses and not self.model.backend.all_finite(losses):
            self._fail(state)
        if self._params_finite() is not None:
            self._fail(state)
        self._take_snapshot()

    def _fail(self, state):
        """Something is not finite: find the first bad step since the snapshot, stop there."""
        model = self.model
        st = model.state
        log = self._log
        # the arrays and step of the snapshot; the lr stays: a schedule may have moved it since
        st.restore(self._snap, hyper=False)
        self.done, self.seen, totals = self._at
        self.totals = dict(totals)
        epoch_start = state.epoch
        for batch_data, rows in log:       # replay, checking every step
            before = st.snapshot()
            stats = model.step(**batch_data)
            loss = stats.get("loss")
            bad_loss = loss is not None and not math.isfinite(loss)
            bad_param = self._params_finite()
            if bad_loss or bad_param:
                st.restore(before, hyper=False)        # back to the last good state
                self._report(state, epoch_start, batch_data, loss, bad_loss, bad_param)
            self.done += 1
            self.seen += rows
            for k, v in stats.items():
                self.totals[k] = self.totals.get(k, 0.0) + v * rows
        # not reproduced (a backend that is not deterministic, or data-parallel steps, which a
        # single process cannot replay): keep the last state that was checked, report the step
        st.restore(self._snap, hyper=False)
        self.done, self.seen, totals = self._at
        self.totals = dict(totals)
        self._report(state, epoch_start, log[-1][0] if log else state.last_batch, None, True, None,
                     replayed=False)

    def _report(self, state, epoch, batch_data, loss, bad_loss, bad_param, replayed=True):
        model = self.model
        step = model.steps_taken + 1
        node, detail = None, ""
        if replayed:
            try:
                node, detail = first_non_finite_op(model, batch_data)
            except Exception as e:  # the diagnosis must never hide the error itself
                detail = f"(could not re-run the step to find the op: {type(e).__name__}: {e})"
        else:
            step = model.steps_taken + len(self._log)
            detail = (f"(replaying the steps since the last check did not reproduce it; the state kept is "
                      f"the one checked after step {model.steps_taken})")
        what = (f"the loss is {loss}" if bad_loss and loss is not None else
                "the loss is not finite" if bad_loss else f"parameter '{bad_param}' became non-finite")
        batch_no = self.done + 1 if replayed else self.done + len(self._log)
        head = (f"training stopped at epoch {epoch}, step {step} (batch {batch_no} of "
                f"{state.steps_per_epoch}): {what}")
        notes = []
        if node is not None:
            head += f"; the first non-finite value is {node.op} ({node.type}){detail}"
        elif detail:
            notes.append(detail)
        if replayed:
            if bad_param and bad_loss:
                notes.append(f"the first parameter that went non-finite in this step: '{bad_param}'")
            elif bad_loss:
                notes.append("the parameters stayed finite in this step")
            notes.append("the model keeps its weights from before this step")
        saved = None
        if self.checkpoint:
            try:
                where = self._save_partial(state)
                saved = self.checkpoint
                notes.append(where.replace("saved", "saved the last good state to", 1))
            except NNCError as e:
                notes.append(f"could not save the last good state: {e}")
        notes.append("lower the learning rate, or look at the op above; --no-nan-check / "
                     "fit(nan_check=False) turns this check off")
        loc = node.loc if node is not None else None
        text = Diagnostic(loc, head, notes=notes).render(getattr(model.lowered, "sources", None))
        raise NonFiniteError(text, epoch, step, batch_no, bad_param, node, saved)


def _batch_size(state):
    bs = state.extra.get("batch_size")
    return bs if bs in (None, "all") else int(bs)


def first_non_finite_op(model, batch: dict):
    """(node, detail) for the first node of the train_step graph whose value is not finite when the
    step runs on `batch` from the model's current state, through the numpy backend; (None, '')."""
    from ..backends.numpy import compile_graph
    from ..ir.graph import Graph
    g = model.unoptimized_graph("train_step")
    probe = Graph(g.name, g.nodes, tuple((f"v{n.id}", n.id) for n in g.nodes if n.op != "arg"))
    fn = compile_graph(probe)
    args = {}
    for a in g.args:
        name, role = a.attr["name"], a.attr["role"]
        if role in ("input", "target"):
            args[name] = model.check_feeds({name: batch[name]}, {name: a.type})[name]
        elif role == "rng":
            args[name] = model.rng_key()
        elif role == "hyper":
            args[name] = np.float32(model.lr)
        else:
            args[name] = model.state.numpy([name])[name]
    with np.errstate(all="ignore"):
        out = fn(args)
    values = {}
    for n in g.nodes:
        if n.op == "arg":
            values[n.id] = args[n.attr["name"]]
            continue
        v = np.asarray(out[f"v{n.id}"])
        values[n.id] = v
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            return n, _operands(g, n, values)
    return None, ""


def _operands(g, n, values) -> str:
    parts = []
    for i in n.inputs:
        v = np.asarray(values[i])
        if v.dtype.kind not in "fiu" or v.size == 0:
            continue
        src = g[i]
        name = src.attr["name"] if src.op == "arg" else src.op
        parts.append(f"{name} in [{v.min():.4g}, {v.max():.4g}]" if v.size > 1 else f"{name} = {v.item():.4g}")
    return f" (operands: {', '.join(parts)})" if parts else ""


def _plain(v):
    """A running total for a checkpoint: a float, or a list for a vector metric part."""
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    a = np.asarray(v, np.float64)
    return float(a.reshape(())) if a.size == 1 else a.tolist()
