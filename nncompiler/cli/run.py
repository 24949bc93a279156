"""`nnc run`: train a model per its train block (flags override the block), or evaluate a
graph block on literal or file inputs."""
from __future__ import annotations

import ast as pyast
import os
import sys

import numpy as np

from ..errors import NNCError
from .outputs import check_writable


def _parse_feed(spec: str) -> tuple[str, np.ndarray]:
    from ..train.data import read_array
    if "=" not in spec:
        raise NNCError(f"--feed {spec}: expected NAME=VALUE")
    name, value = spec.split("=", 1)
    if os.path.splitext(value)[1] in (".npy", ".csv", ".tsv"):
        return name, read_array(value)
    try:
        return name, np.asarray(pyast.literal_eval(value))
    except (ValueError, SyntaxError):
        raise NNCError(f"--feed {name}: '{value}' is neither a number/list literal nor a .npy/.csv path") from None


def _print_array(name: str, value) -> None:
    text = np.array2string(np.asarray(value), precision=4, suppress_small=True, separator=" ")
    print(f"{name} = {text}")


def _autotune(args) -> None:
    """--autotune reaches the Triton backend as NNC_AUTOTUNE=1 (Backend(autotune=...) in the API);
    without a GPU the backend refuses it when it compiles."""
    if not getattr(args, "autotune", False):
        return
    if args.backend != "triton":
        raise NNCError(f"--autotune times Triton kernels on a GPU: use it with --backend triton, not {args.backend}")
    os.environ["NNC_AUTOTUNE"] = "1"


def cmd_run(args) -> int:
    import nncompiler as nnc
    from ..train import distributed
    if args.nproc is not None and args.nproc < 1:
        raise NNCError(f"--nproc must be >= 1, got {args.nproc}")
    if (args.nproc or 1) > 1 and not distributed.launched():   # under a launcher, --nproc is done
        if nnc.compile(args.file, model=args.model, seed=args.seed).lowered.kind == "model":  # errors once, here
            return distributed.launch(args.nproc, args.argv)
    _autotune(args)
    rank = distributed.init_from_env(args.backend)   # a rank started by torchrun joins its process group
    from ..train.dataset import training_data
    # parameters are initialised from the seed, so --seed is a compile-time setting
    m = nnc.compile(args.file, backend=args.backend, model=args.model, seed=args.seed, precision=args.precision)
    low = m.lowered
    if low.kind == "graph":
        feeds = dict(_parse_feed(f) for f in args.feed)
        from ..train.memcheck import check_call
        check_call(m, "predict", feeds, f"running graph {low.name}", "feed smaller arrays")
        outs = m.forward(**feeds)
        outs = outs if isinstance(outs, tuple) else (outs,)
        for name, value in zip(low.output_names, outs):
            _print_array(name, value)
        if args.logdir:     # nothing trains, but the graph is worth a look in TensorBoard
            from ..train.tensorboard import write_graph
            write_graph(args.logdir, low)
            print(f"TensorBoard graph in {args.logdir} (view: tensorboard --logdir {args.logdir})",
                  file=sys.stderr)
        return 0
    from ..program import TrainConfig
    from ..train.progress import reporter
    cfg = low.train or TrainConfig()
    data = training_data(low, cfg, args.data)
    if args.lr is not None:
        m.lr = args.lr
    elif cfg.lr is not None:
        m.lr = cfg.lr
    batch = cfg.batch if args.batch is None else ("all" if args.batch == "all" else _positive_int(args.batch))
    epochs = cfg.epochs if args.epochs is None else args.epochs
    validate = cfg.validate if args.validate is None else args.validate
    if epochs < 0:
        raise NNCError(f"--epochs must be >= 0, got {epochs}")
    if epochs == 0:
        print("note: 0 epochs: nothing to train; the parameters keep their initial values", file=sys.stderr)
    if args.save_every is not None and (args.save_every < 1 or not args.save):
        raise NNCError("--save-every N needs N >= 1 and a checkpoint file: --save CKPT.npz")
    if args.weights and args.resume:
        raise NNCError("--weights and --resume both set the weights; give one")
    if args.restore_best and args.early_stop is None:
        raise NNCError("--restore-best goes with --early-stop PATIENCE")

    resume = None
    if args.resume:
        from ..train.checkpoint import read_checkpoint
        resume = read_checkpoint(args.resume, args.allow_nonfinite)
        if args.lr is not None:
            resume.meta["lr"] = None          # an explicit --lr wins over the checkpoint's
        if resume.epoch >= epochs:
            print(f"note: {args.resume} is at epoch {resume.epoch} already; nothing to train "
                  f"(--epochs counts the total: ask for more than {resume.epoch})", file=sys.stderr)
    if args.weights:
        from ..train.checkpoint import load_weights
        load_weights(m, args.weights, args.allow_nonfinite)
    schedule = None
    if args.lr_schedule:
        from ..train.callbacks import parse_schedule
        schedule = parse_schedule(args.lr_schedule, m.lr, epochs)
    stopper = None
    if args.early_stop is not None:
        from ..train.callbacks import EarlyStopping
        if args.early_stop < 0:
            raise NNCError(f"--early-stop PATIENCE must be >= 0, got {args.early_stop}")
        monitor = args.monitor or ("val_loss" if validate else "loss")
        stopper = EarlyStopping(monitor, args.early_stop, restore_best_weights=args.restore_best)
    elif args.monitor:
        raise NNCError("--monitor goes with --early-stop PATIENCE")
    from ..train.callbacks import train_block_callbacks
    block_callbacks = train_block_callbacks(cfg.callbacks, bool(validate))
    if stopper is None:            # --early-stop on the command line wins over the train block's
        stopper = block_callbacks.pop("early_stopping", None)
    block_callbacks.pop("early_stopping", None)
    if args.logdir:   # fail before training, not after it
        from ..train.callbacks import require_extra
        require_extra("tensorboard", "tensorboard", "TensorBoard logging (--logdir)")
    if args.plot:
        from ..train.plot import check_format
        check_format(args.plot)

    for path in (args.save, args.plot):   # find out now, not after the last epoch
        if path:
            check_writable(path)

    printer = reporter(sys.stdout, json=args.json, quiet=args.quiet)
    from ..train.safety import TrainingGuard   # NaN checks; Ctrl-C/SIGTERM: finish the step, save, exit 130/143
    guard = TrainingGuard(nan_check=args.nan_check, signals=True, quiet_numpy=True)
    history = m.fit(epochs=epochs, batch_size=batch, shuffle=cfg.shuffle, validation_split=validate, verbose=0,
                    seed=cfg.seed, callbacks=[guard] + ([printer] if rank == 0 else []) + list(block_callbacks.values()),
                    lr_schedule=schedule,
                    nan_check=args.nan_check,
                    early_stopping=stopper,
                    logdir=args.logdir, checkpoint=args.save, save_every=args.save_every, resume=resume,
                    **data)
    if guard.signum is not None:          # a signal stopped training at the end of an epoch
        if rank == 0:
            print(guard.message(), file=sys.stderr)
        return 128 + guard.signum
    if rank:
        return 0   # rank 0 alone reports
    if stopper is not None and stopper.message():
        print(stopper.message(), file=sys.stderr)
    if args.save:
        print(f"saved {args.save}", file=sys.stderr)
    if args.logdir:
        print(f"TensorBoard logs in {args.logdir} (view: tensorboard --logdir {args.logdir})", file=sys.stderr)
    if args.plot:
        from ..train.plot import plot_history
        w, h = plot_history(history, args.plot, title=low.name)
        print(f"wrote {args.plot} ({w}x{h})", file=sys.stderr)
    scalars = {k: float(v) for k, v in m.params.items() if np.ndim(v) == 0}
    if scalars and not args.json:
        print("params: " + " ".join(f"{k}={v:.4f}" for k, v in scalars.items()))
    return 0


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise NNCError(f"--batch must be a positive integer or 'all', got '{text}'")
    return v
