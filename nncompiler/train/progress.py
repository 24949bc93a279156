"""Reporting training as it goes: a progress bar on a terminal, plain lines or JSON lines otherwise.

    epoch 3/10 [=========>          ] 5/8  1520 samples/s  loss=0.4120  ETA 0:02

On a terminal (`stream.isatty()`) the bar is redrawn in place with `\\r` while
the epoch runs, then replaced by the epoch's line. Elsewhere (a pipe, a file,
CI logs) only the per-epoch lines are printed, in the format `nnc run` has
always printed:

    epoch=3 loss=0.4120 accuracy=0.9510 val_loss=0.3880 val_accuracy=0.9670

`--json` prints one JSON object per epoch instead: `epoch`, `loss`, each
metric, the validation values and the learning rate `lr` (a number that is
not finite is written as null, so every line parses as strict JSON).
"""
from __future__ import annotations

import json
import math
import shutil
import sys
import time

from .callbacks import Callback
from .loop import format_epoch


def _stream(stream):
    return stream if stream is not None else sys.stdout


def _finite(v):
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def json_record(epoch: int, record: dict, lr: float | None = None) -> str:
    out = {"epoch": epoch, **{k: _finite(v) for k, v in record.items()}}
    if lr is not None:
        out["lr"] = _finite(lr)
    return json.dumps(out)


class EpochPrinter(Callback):
    """One line per epoch (`json` for JSON lines); `quiet` prints only the last one, when training ends."""

    def __init__(self, stream=None, json: bool = False, quiet: bool = False):
        self.stream, self.json, self.quiet = stream, json, quiet
        self.last: tuple[int, dict, float] | None = None

    def line(self, epoch: int, record: dict, lr: float) -> str:
        return json_record(epoch, record, lr) if self.json else format_epoch(epoch, record)

    def on_epoch_end(self, state, record):
        self.last = (state.epoch, dict(record), state.model.lr)
        if not self.quiet:
            print(self.line(*self.last), file=_stream(self.stream), flush=True)

    def on_train_end(self, state):
        if self.quiet and self.last is not None:
            print(self.line(*self.last), file=_stream(self.stream), flush=True)


def _clock(seconds: float) -> str:
    seconds = int(round(max(seconds, 0)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar(EpochPrinter):
    """A bar redrawn with `\\r` during each epoch (steps, throughput, running loss, ETA), then the epoch line."""

    def __init__(self, stream=None, min_interval: float = 0.1, width: int | None = None):
        super().__init__(stream)
        self.min_interval, self.width = min_interval, width
        self._drawn = 0

    def on_epoch_begin(self, state):
        self._start = self._last_draw = time.perf_counter()
        self._steps = self._rows = 0
        self._loss = 0.0
        self._draw(state, force=True)

    def on_batch_end(self, state, batch, stats, rows):
        self._steps += 1
        self._rows += rows
        if "loss" in stats:     # summed where it lies; read only when the bar is drawn
            from .steps import on_device
            self._loss = self._loss + on_device(stats, "loss") * rows
        done = self._steps >= state.steps_per_epoch
        if done or time.perf_counter() - self._last_draw >= self.min_interval:
            self._draw(state)

    def bar_text(self, state) -> str:
        total = max(state.steps_per_epoch, 1)
        elapsed = time.perf_counter() - self._start
        parts = [f"epoch {state.epoch}/{state.epochs}"]
        tail = [f"{self._steps}/{total}"]
        if self._steps and elapsed > 0:
            tail.append(f"{self._rows / elapsed:.0f} samples/s")
            tail.append(f"loss={float(self._loss) / max(self._rows, 1):.4f}")
            tail.append(f"ETA {_clock(elapsed / self._steps * (total - self._steps))}")
        cols = self.width or shutil.get_terminal_size((80, 24)).columns
        # a fixed allowance for the tail (steps, rate, loss, ETA) keeps the bar one width all epoch
        size = max(10, min(30, cols - len(parts[0]) - 60))
        filled = size * min(self._steps, total) // total
        bar = "=" * filled + (">" if filled < size else "") + " " * (size - filled - 1)
        return f"{parts[0]} [{bar[:size]}] " + "  ".join(tail)

    def _draw(self, state, force: bool = False):
        text = self.bar_text(state)
        pad = " " * max(self._drawn - len(text), 0)
        out = _stream(self.stream)
        out.write("\r" + text + pad)
        out.flush()
        self._drawn = len(text)
        self._last_draw = time.perf_counter()

    def on_epoch_end(self, state, record):
        line = format_epoch(state.epoch, record)
        out = _stream(self.stream)
        out.write("\r" + line + " " * max(self._drawn - len(line), 0) + "\n")
        out.flush()
        self._drawn = 0
        self.last = (state.epoch, dict(record), state.model.lr)

    def close(self):
        if self._drawn:   # training failed mid-epoch: end the bar's line
            _stream(self.stream).write("\n")
            self._drawn = 0


def reporter(stream=None, json: bool = False, quiet: bool = False) -> EpochPrinter:
    """The right reporter for `stream`: JSON lines, quiet, a bar on a terminal, or plain lines."""
    stream = _stream(stream)
    if json or quiet:
        return EpochPrinter(stream, json=json, quiet=quiet)
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return ProgressBar(stream)
    return EpochPrinter(stream)
