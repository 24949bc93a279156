"""The training loop: epochs of mini-batch gradient descent over arrays.

`batch_size=1` is stochastic gradient descent, `"all"` (or None) full-batch
gradient descent. Shuffling draws from one generator seeded once, so the same
seed gives the same numbers. Per-epoch metrics are means over the epoch's
batches weighted by batch size, as Keras reports them.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError
from .data import batches, check_labels, label_classes, split_validation
from .steps import StepStats, count_rows, evaluate, feed_names, host_value, is_batched, on_device


def fit(model, data: dict, epochs: int, batch_size, shuffle: bool, validation_split: float,
        validation_data: dict | None, seed: int, callback=None, *, callbacks=None, lr_schedule=None,
        early_stopping=None, logdir: str | None = None, checkpoint: str | None = None,
        save_every: int | None = None, resume=None, nan_check: bool = True,
        initial_epoch: int = 0, sample_weight=None) -> dict[str, list[float]]:
    """Train for epochs `1..epochs` (or, resuming, from the checkpoint's epoch + 1); returns the history.

    callback        fn(epoch, record) after every epoch
    callbacks       Callback objects (see callbacks.py): progress bars, your own hooks
    lr_schedule     fn(epoch) -> lr, applied before every epoch (epochs count from 1)
    early_stopping  (monitor, patience[, restore_best_weights]) or an EarlyStopping
    logdir          write TensorBoard event files there (needs the tensorboard extra)
    checkpoint      save a checkpoint there when training ends (and every `save_every` epochs)
    resume          a checkpoint (path or Checkpoint) to continue from: weights, optimizer
                    state, step count, shuffle generator, history; `epochs` counts the total
    nan_check       stop on a NaN/Inf loss or parameter, naming the first non-finite IR op (safety.py)
    initial_epoch   Keras's: the epochs already done (training runs epochs initial_epoch+1..epochs)
    sample_weight   one weight per row of `data`: each row's loss counts w times (Keras's
                    sum(w * loss) / rows); validation is not weighted

    Called in every rank of an initialised torch.distributed process group of several ranks,
    it trains data-parallel: each rank takes its slice of every global batch (see
    distributed.py); only rank 0 writes `logdir` and `checkpoint`.
    """
    from ..library.metrics import epoch_value
    from .callbacks import (CallbackList, LambdaCallback, LearningRateScheduler, TrainState,
                            early_stopping_callback)
    data = {k: np.asarray(v) for k, v in data.items()}
    missing = [n for n in feed_names(model) if n not in data]
    if missing:
        raise DataError(f"missing training data for {', '.join(repr(m) for m in missing)}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise DataError(f"epochs must be a non-negative integer, got {epochs!r}")
    classes = label_classes(model.lowered.forward)
    check_labels(data, classes)
    if validation_data is not None:
        check_labels(validation_data, classes)

    ckpt = None
    if resume is not None:
        from .checkpoint import Checkpoint, read_checkpoint, restore_training
        ckpt = resume if isinstance(resume, Checkpoint) else read_checkpoint(resume)
        restore_training(model, ckpt)
        if ckpt.meta.get("seed") is not None:
            seed = int(ckpt.meta["seed"])       # the same validation split as the interrupted run

    from ..program import WEIGHT
    if sample_weight is not None:      # split with the rows it weighs, then kept apart from the data
        data = {**data, WEIGHT: np.asarray(sample_weight)}
    if validation_data is None and validation_split:
        data, validation_data = split_validation(data, validation_split, seed)
        validation_data.pop(WEIGHT, None)
    weights = data.pop(WEIGHT, None)
    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {}
    start = int(initial_epoch)
    if ckpt is not None:
        start = ckpt.epoch
        history = {k: list(v) for k, v in (ckpt.meta.get("history") or {}).items()}
        if ckpt.meta.get("rng") is not None:
            rng.bit_generator.state = ckpt.meta["rng"]
    n = count_rows(data)
    if batch_size in ("all", None) or not is_batched(model):
        batch_size = "all"
    steps = 1 if batch_size == "all" else max(1, -(-n // int(batch_size)))
    partial = None
    if ckpt is not None and ckpt.meta.get("partial"):   # saved mid-epoch: skip the batches done
        from .safety import resume_point
        partial = resume_point(ckpt, batch_size, n)
    from .memory import check_fit     # refuse a batch whose step would not fit in memory
    check_fit(model, data, batch_size, n, validation_data)
    from .distributed import trainer_for   # data parallel when a torch.distributed group runs
    dist = trainer_for(model, rows=n, steps=steps, epochs=epochs, start=start)
    if dist is not None and weights is not None:
        raise DataError("sample or class weights are not supported in data-parallel training yet")
    if dist is not None and dist.rank != 0:
        logdir = checkpoint = None          # rank 0 alone writes logs and checkpoints

    chain = []
    if lr_schedule is not None:
        chain.append(LearningRateScheduler(lr_schedule))
    chain.extend(callbacks or ())
    if callback is not None:
        chain.append(LambdaCallback(callback))
    if early_stopping is not None:
        chain.append(early_stopping_callback(early_stopping))
    if logdir is not None:
        from .tensorboard import TensorBoard
        chain.append(TensorBoard(logdir))
    if checkpoint is not None:
        from .checkpoint import ModelCheckpoint
        chain.append(ModelCheckpoint(checkpoint, every=save_every))
    from .safety import TrainingGuard
    if nan_check and not any(isinstance(c, TrainingGuard) for c in chain):
        chain.insert(0, TrainingGuard())       # first: it checks a step before anyone reports it
    cbs = CallbackList(chain)
    if ckpt is not None:
        from .checkpoint import callback_key
        for c in chain:
            saved = ckpt.callback_state(callback_key(chain, c)) if hasattr(c, "set_state") else None
            if saved is not None:
                c.set_state(saved)

    has_val = validation_data is not None and count_rows(validation_data) > 0
    state = TrainState(model=model, epochs=epochs, epoch=start, steps_per_epoch=steps, rows=n,
                       history=history, rng=rng, seed=seed, has_validation=has_val,
                       extra={"callbacks": chain, "partial": partial, "batch_size": batch_size})
    try:
        cbs.on_train_begin(state)
        for epoch in range(start + 1, epochs + 1):
            state.epoch = epoch
            cbs.on_epoch_begin(state)
            totals: dict[str, float] = {}
            seen = skip = 0
            if partial and partial["epoch"] == epoch:     # resuming in the middle of this epoch
                totals, seen, skip = ({k: np.asarray(v, np.float64) if isinstance(v, list) else v
                                       for k, v in partial["totals"].items()},
                                      int(partial["seen"]), int(partial["batches"]))
            for i, idx in enumerate(batches(n, batch_size, shuffle, rng)):
                if i < skip:
                    continue
                if dist is None:
                    batch = {k: v[idx] for k, v in data.items()}
                    out = model.step_on_device(None if weights is None else weights[idx], **batch)
                    stats = StepStats(out, model.backend.to_numpy)
                else:   # this rank's slice of the global batch; the stats are the global batch's
                    batch, stats = dist.step(data, idx)
                rows = len(idx)
                for k in stats:             # summed where the step ran: no wait per step
                    totals[k] = totals.get(k, 0.0) + on_device(stats, k) * rows
                seen += rows
                state.last_batch = batch
                cbs.on_batch_end(state, i, stats, rows)
            totals = {k: host_value(model.backend.to_numpy(v)) for k, v in totals.items()}
            record = epoch_value({("loss" if k == "loss" else k[len("metric."):]): v / max(seen, 1)
                                  for k, v in totals.items()})   # ratio and curve metrics over the whole epoch
            if has_val:
                for k, v in (evaluate if dist is None else dist.evaluate)(model, validation_data).items():
                    record[f"val_{k}"] = v
            for k, v in record.items():
                history.setdefault(k, []).append(v)
            cbs.on_epoch_end(state, record)
            if state.stop:
                break
    except BaseException:
        cbs.abort()
        raise
    cbs.on_train_end(state)
    return history


def format_epoch(epoch: int, record: dict[str, float]) -> str:
    """`epoch=3 loss=0.412 accuracy=0.951 val_loss=0.388 val_accuracy=0.967`."""
    return " ".join([f"epoch={epoch}", format_record(record)]) if record else f"epoch={epoch}"


def format_record(record: dict[str, float]) -> str:
    """`loss=0.4120 accuracy=0.9510` (4 decimals; 4 significant digits from 1e4 up)."""
    return " ".join(f"{k}={v:.4g}" if abs(v) >= 1e4 else f"{k}={v:.4f}" for k, v in record.items())
