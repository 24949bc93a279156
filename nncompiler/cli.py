"""The `nnc` command: compile | run | graph | predict | eval | opt.

Every user error (a bad program, bad data, a bad flag value) is printed as a
diagnostic and exits 1; a Python traceback means a bug in nnc.
"""
from __future__ import annotations

import argparse
import ast as pyast
import os
import sys
import warnings

import numpy as np

from .errors import NNCError
from .precision import PRECISIONS

CORE_EMITS = ("ir", "grad", "opt", "python", "passes")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnc", description="nncompiler: compile and train .nn models")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="check a .nn file, print a summary or a compilation stage")
    c.add_argument("file")
    c.add_argument("--emit", metavar="STAGE", help="print a stage: ir (forward), grad (forward+backward), "
                   "opt (optimised graphs), python (generated numpy code), passes (what each pass did); "
                   "backends add their own (triton: kernels, triton, ttir, ttgir, llir, ptx, cubin; mlir: mlir, vmfb)")
    c.add_argument("--backend", default=None,
                   help="numpy (the default), triton, mlir or auto; --emit of a backend's stage picks that backend")
    c.add_argument("--target", help="code generation target, e.g. sm_90 for --backend triton")
    c.add_argument("--precision", choices=PRECISIONS, help="matmul precision: fp32 (IEEE, the default), tf32 (tensor cores) or bf16 "
                   "(mixed: bf16 operands, fp32 accumulation, loss and update); overrides the train block's")
    c.add_argument("--model", help="which block, when the file has several")
    c.add_argument("-o", "--output", help="write to this file instead of standard output")

    r = sub.add_parser("run", help="train a model per its train block, or evaluate a graph block")
    r.add_argument("file")
    r.add_argument("--epochs", type=int, help="epochs to train (with --resume, the total: a checkpoint at "
                   "epoch 2 and --epochs 4 runs epochs 3 and 4)")
    r.add_argument("--batch", help="batch size, or 'all'")
    r.add_argument("--lr", type=float, help="learning rate")
    r.add_argument("--data", help="data file (CSV with a header, .npy or .npz)")
    r.add_argument("--seed", type=int)
    r.add_argument("--validate", type=float, help="fraction of the data held out for validation")
    r.add_argument("--feed", action="append", default=[], metavar="NAME=VALUE",
                   help="a graph input: a literal like [1, 2] or a .npy/.csv path")
    r.add_argument("--backend", default="numpy")
    r.add_argument("--autotune", action="store_true",
                   help="with --backend triton on a GPU: time candidate kernel configs once per shape and keep "
                        "the fastest (default: the shape table decides)")
    r.add_argument("--precision", choices=PRECISIONS, help="matmul precision: fp32 (IEEE, the default), tf32 (tensor cores) or bf16 "
                   "(mixed: bf16 operands, fp32 accumulation, loss and update); overrides the train block's")
    r.add_argument("--model", help="which block, when the file has several")
    r.add_argument("--quiet", action="store_true", help="print only the final line")
    r.add_argument("--json", action="store_true", help="print one JSON object per epoch (epoch, loss, metrics, lr)")
    r.add_argument("--lr-schedule", metavar="SPEC",
                   help="step:N:FACTOR (lr*FACTOR every N epochs), exp:RATE (lr*RATE^(epoch-1)) or cosine[:MIN_LR]")
    r.add_argument("--early-stop", type=int, metavar="PATIENCE",
                   help="stop when the monitored value has not improved for PATIENCE epochs")
    r.add_argument("--monitor", metavar="NAME", help="what early stopping watches (default val_loss, "
                   "or loss without validation data)")
    r.add_argument("--restore-best", action="store_true", help="with --early-stop: end with the best epoch's weights")
    r.add_argument("--save", metavar="CKPT.npz", help="write a checkpoint when training ends")
    r.add_argument("--save-every", type=int, metavar="N", help="with --save: also every N epochs")
    r.add_argument("--resume", metavar="CKPT.npz", help="continue from a checkpoint; --epochs counts the total")
    r.add_argument("--weights", metavar="CKPT.npz", help="start from a checkpoint's weights (fine-tuning)")
    r.add_argument("--allow-nonfinite", action="store_true", help="load a checkpoint even if its arrays hold NaN or Inf (refused by default)")
    r.add_argument("--logdir", metavar="DIR", help="write TensorBoard logs (scalars, histograms, graph) to DIR")
    r.add_argument("--plot", metavar="FILE", help="draw the training curves to FILE (.png, .svg, .pdf)")
    r.add_argument("--nan-check", action=argparse.BooleanOptionalAction, default=True,
                   help="stop on a NaN/Inf loss or parameter, naming the first non-finite op (default: on)")
    r.add_argument("--nproc", type=int, metavar="N", help="train data-parallel on N ranks on this machine "
                   "(torchrun --standalone; needs torch); see docs/distributed.md")

    g = sub.add_parser("graph", help="draw a model's graph with Graphviz (one box per layer)")
    g.add_argument("file")
    g.add_argument("-o", "--output", help="FILE.svg, .png, .pdf or .dot (default: DOT to standard output)")
    g.add_argument("--ops", action="store_true", help="one node per IR op, boxed by layer")
    g.add_argument("--grad", action="store_true", help="include the backward pass")
    g.add_argument("--model", help="which block, when the file has several")

    pr = sub.add_parser("predict", help="run a trained model on new inputs")
    pr.add_argument("file", help="a .nn program, or a model saved as .nnx (nnc export, Model.save)")
    pr.add_argument("--weights", metavar="CKPT.npz", help="a checkpoint from nnc run --save or Model.save")
    pr.add_argument("--allow-nonfinite", action="store_true", help="load a checkpoint even if its arrays hold NaN or Inf (refused by default)")
    pr.add_argument("--input", action="append", default=[], metavar="[NAME=]PATH",
                    help="input data: .csv/.tsv, .npy, or .npz with one array per input")
    pr.add_argument("-o", "--output", help="OUT.csv (default: CSV to standard output), .npy or .npz")
    pr.add_argument("--batch", type=int, default=4096, help="rows per forward pass (default 4096)")
    pr.add_argument("--backend", default="numpy")
    pr.add_argument("--model", help="which block, when the file has several")

    x = sub.add_parser("export", help="write a model's inference graph and weights in another format")
    x.add_argument("file")
    x.add_argument("--format", choices=("nnx", "onnx"), help="nnx: the model with its graphs, weights and train "
                   "settings, which nnc predict and nnc.load run without the .nn file; onnx: a standard ONNX "
                   "model (default: from the output's extension, nnx unless it ends .onnx)")
    x.add_argument("-o", "--output", required=True, help="the file to write")
    x.add_argument("--no-train", action="store_true", help="nnx: leave out the training graph and optimizer "
                   "state (the file predicts and evaluates but cannot be fine-tuned)")
    x.add_argument("--weights", metavar="CKPT.npz", help="a checkpoint from nnc run --save (default: initial weights)")
    x.add_argument("--model", help="which block, when the file has several")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset to target (default 17)")

    im = sub.add_parser("import", help="write an ONNX model as a .nn graph block (weights in a side .npz)")
    im.add_argument("file", help="an .onnx model")
    im.add_argument("-o", "--output", required=True, help="the .nn file to write")
    im.add_argument("--weights", metavar="CKPT.npz", help="where its weights go, a checkpoint that "
                    "--weights and nnc.load_weights read (default: the output with .npz)")

    e = sub.add_parser("eval", help="print a trained model's loss and metrics on data")
    e.add_argument("file", help="a .nn program, or a model saved as .nnx (give --data)")
    e.add_argument("--weights", metavar="CKPT.npz", help="a checkpoint from nnc run --save or Model.save")
    e.add_argument("--allow-nonfinite", action="store_true", help="load a checkpoint even if its arrays hold NaN or Inf (refused by default)")
    e.add_argument("--data", help="data file (default: the train block's data)")
    e.add_argument("--split", choices=("all", "train", "validation"), default="all",
                   help="evaluate on all rows, or the train block's training or validation part")
    e.add_argument("--json", action="store_true", help="print a JSON object")
    e.add_argument("--backend", default="numpy")
    e.add_argument("--model", help="which block, when the file has several")

    o = sub.add_parser("opt", help="run optimisation passes on textual IR and print the result (like mlir-opt)")
    o.add_argument("file", help="a .ir file (the text `nnc compile --emit ir` prints)")
    o.add_argument("--pass", dest="passes", action="append", default=[], metavar="NAME",
                   help="run this pass (repeat for several, in order); default: the whole pipeline to a fixed point")
    o.add_argument("--records", action="store_true", help="also print what each pass changed (to standard error)")
    o.add_argument("-o", "--output", help="write to this file instead of standard output")
    return p


def _write(text: str, path: str | None) -> None:
    if path:
        _write_binary(path, lambda f: f.write((text if text.endswith("\n") else text + "\n").encode()))
    else:
        print(text)


def _write_binary(path: str, write) -> None:
    """Write a file atomically (see fsutil); errors name `path`."""
    from .fsutil import atomic_write
    try:
        atomic_write(path, write, make_dirs=False)
    except OSError as e:
        raise NNCError(f"{path}: cannot write: {e.strerror or e}") from None


def cmd_compile(args) -> int:
    import nncompiler as nnc
    from .report import emit, stage_owner, summary
    backend = args.backend
    if backend is None:          # `--emit mlir` means the mlir backend, not "numpy has no mlir stage"
        backend = stage_owner(args.emit) if args.emit else None
        if backend:
            print(f"note: --emit {args.emit} is a stage of backend '{backend}'; compiling with "
                  f"--backend {backend}", file=sys.stderr)
        backend = backend or "numpy"
    m = nnc.compile(args.file, backend=backend, model=args.model, precision=args.precision)
    text = emit(m, args.emit, target=args.target) if args.emit else summary(m)
    if isinstance(text, bytes):  # a binary stage (cubin) must go to a file
        if not args.output:
            raise NNCError(f"--emit {args.emit} is binary; name a file with -o")
        _write_binary(args.output, lambda f: f.write(text))
        return 0
    _write(text, args.output)
    return 0


def cmd_opt(args) -> int:
    from .ir.text import parse_graphs, print_graphs
    from .passes.pipeline import PASSES, format_records, optimize, run_pass
    unknown = [p for p in args.passes if p not in PASSES]
    if unknown:
        raise NNCError(f"unknown pass '{unknown[0]}' (known: {', '.join(PASSES)})")
    with open(args.file, encoding="utf-8") as f:
        graphs = parse_graphs(f.read(), args.file)
    out, records = [], []
    for g in graphs:
        if args.passes:
            for name in args.passes:
                g, record = run_pass(g, name)
                records.append(record)
        else:
            g, recs = optimize(g)
            records.extend(recs)
        out.append(g)
    if args.records:
        print(format_records(records, verbose=True), file=sys.stderr)
    _write(print_graphs(out), args.output)
    return 0


def _parse_feed(spec: str) -> tuple[str, np.ndarray]:
    from .train.data import read_array
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
    from .train import distributed
    if args.nproc is not None and args.nproc < 1:
        raise NNCError(f"--nproc must be >= 1, got {args.nproc}")
    if (args.nproc or 1) > 1 and not distributed.launched():   # under a launcher, --nproc is done
        if nnc.compile(args.file, model=args.model, seed=args.seed).lowered.kind == "model":  # errors once, here
            return distributed.launch(args.nproc, args.argv)
    _autotune(args)
    rank = distributed.init_from_env(args.backend)   # a rank started by torchrun joins its process group
    from .train.dataset import training_data
    # parameters are initialised from the seed, so --seed is a compile-time setting
    m = nnc.compile(args.file, backend=args.backend, model=args.model, seed=args.seed, precision=args.precision)
    low = m.lowered
    if low.kind == "graph":
        feeds = dict(_parse_feed(f) for f in args.feed)
        from .train.memcheck import check_call
        check_call(m, "predict", feeds, f"running graph {low.name}", "feed smaller arrays")
        outs = m.forward(**feeds)
        outs = outs if isinstance(outs, tuple) else (outs,)
        for name, value in zip(low.output_names, outs):
            _print_array(name, value)
        if args.logdir:     # nothing trains, but the graph is worth a look in TensorBoard
            from .train.tensorboard import write_graph
            write_graph(args.logdir, low)
            print(f"TensorBoard graph in {args.logdir} (view: tensorboard --logdir {args.logdir})",
                  file=sys.stderr)
        return 0
    from .program import TrainConfig
    from .train.progress import reporter
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
        from .train.checkpoint import read_checkpoint
        resume = read_checkpoint(args.resume, args.allow_nonfinite)
        if args.lr is not None:
            resume.meta["lr"] = None          # an explicit --lr wins over the checkpoint's
        if resume.epoch >= epochs:
            print(f"note: {args.resume} is at epoch {resume.epoch} already; nothing to train "
                  f"(--epochs counts the total: ask for more than {resume.epoch})", file=sys.stderr)
    if args.weights:
        from .train.checkpoint import load_weights
        load_weights(m, args.weights, args.allow_nonfinite)
    schedule = None
    if args.lr_schedule:
        from .train.callbacks import parse_schedule
        schedule = parse_schedule(args.lr_schedule, m.lr, epochs)
    stopper = None
    if args.early_stop is not None:
        from .train.callbacks import EarlyStopping
        if args.early_stop < 0:
            raise NNCError(f"--early-stop PATIENCE must be >= 0, got {args.early_stop}")
        monitor = args.monitor or ("val_loss" if validate else "loss")
        stopper = EarlyStopping(monitor, args.early_stop, restore_best_weights=args.restore_best)
    elif args.monitor:
        raise NNCError("--monitor goes with --early-stop PATIENCE")
    from .train.callbacks import train_block_callbacks
    block_callbacks = train_block_callbacks(cfg.callbacks, bool(validate))
    if stopper is None:            # --early-stop on the command line wins over the train block's
        stopper = block_callbacks.pop("early_stopping", None)
    block_callbacks.pop("early_stopping", None)
    if args.logdir:   # fail before training, not after it
        from .train.callbacks import require_extra
        require_extra("tensorboard", "tensorboard", "TensorBoard logging (--logdir)")
    if args.plot:
        from .train.plot import check_format
        check_format(args.plot)

    for path in (args.save, args.plot):   # find out now, not after the last epoch
        if path:
            _check_writable(path)

    printer = reporter(sys.stdout, json=args.json, quiet=args.quiet)
    from .train.safety import TrainingGuard   # NaN checks; Ctrl-C/SIGTERM: finish the step, save, exit 130/143
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
        from .train.plot import plot_history
        w, h = plot_history(history, args.plot, title=low.name)
        print(f"wrote {args.plot} ({w}x{h})", file=sys.stderr)
    scalars = {k: float(v) for k, v in m.params.items() if np.ndim(v) == 0}
    if scalars and not args.json:
        print("params: " + " ".join(f"{k}={v:.4f}" for k, v in scalars.items()))
    return 0


def _check_writable(path: str) -> None:
    """Fail now, not after training, when `path` cannot be written. Tried for real: a temporary
    file created and removed where atomic_write will put its own (os.access says yes to root
    even on a read-only file system or sysfs)."""
    import tempfile
    if os.path.isdir(path):
        raise NNCError(f"{path}: is a directory; name a file")
    target = os.path.realpath(path)   # a symlink is written through (fsutil.atomic_write)
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise NNCError(f"{path}: cannot write there: no such directory {folder}")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=os.path.basename(target) + ".tmp")
    except OSError as e:
        raise NNCError(f"{path}: cannot write there: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(probe)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise NNCError(f"--batch must be a positive integer or 'all', got '{text}'")
    return v


def cmd_graph(args) -> int:
    import nncompiler as nnc
    from .viz import INSTALL_HINT, dot_available, render, to_dot
    out = args.output
    ext = os.path.splitext(out)[1].lower() if out else ".dot"
    if ext not in (".dot", ".gv", ".svg", ".png", ".pdf"):
        raise NNCError(f"-o {out}: expected a .svg, .png, .pdf or .dot file")
    m = nnc.compile(args.file, model=args.model)
    text = to_dot(m, ops=args.ops, grad=args.grad)
    if out is None:
        sys.stdout.write(text)
        return 0
    if ext in (".dot", ".gv"):
        _write(text, out)
        return 0
    if not dot_available():
        fallback = os.path.splitext(out)[0] + ".dot"
        _write(text, fallback)
        print(f"wrote {fallback} instead of {out}: Graphviz's 'dot' is not installed; {INSTALL_HINT}",
              file=sys.stderr)
        return 0
    render(text, out)
    return 0


def _read_inputs(m, specs: list[str]) -> dict[str, np.ndarray]:
    """--input PATH (one-input models), --input NAME=PATH, or an .npz of arrays by input name."""
    from .errors import did_you_mean
    from .train.data import read_array, read_npz
    low = m.lowered
    names = list(low.inputs)
    if not specs:
        raise NNCError(f"give the input data: --input PATH (model {low.name} takes {', '.join(names)})")
    feeds: dict[str, np.ndarray] = {}
    for spec in specs:
        name, path = spec.split("=", 1) if "=" in spec and not os.path.exists(spec) else (None, spec)
        if path.lower().endswith(".npz") and name is None:
            for key, arr in read_npz(path).items():
                if key not in names:
                    raise NNCError(f"{path}: array '{key}' is not an input of model {low.name}"
                                   f"{did_you_mean(key, names)} (inputs: {', '.join(names)})")
                feeds[key] = arr
            continue
        if name is None:
            if len(names) != 1:
                raise NNCError(f"model {low.name} has inputs {', '.join(names)}: give --input NAME=PATH for each, "
                               "or one .npz with an array per name")
            name = names[0]
        elif name not in names:
            raise NNCError(f"--input {spec}: model {low.name} has no input '{name}'{did_you_mean(name, names)}")
        ext = os.path.splitext(path)[1].lower()
        if ext in (".csv", ".tsv"):
            feeds[name] = _read_input_csv(m, name, path)
        else:
            feeds[name] = read_array(path)
    missing = [n for n in names if n not in feeds]
    if missing:
        raise NNCError(f"missing input data for {', '.join(repr(n) for n in missing)}")
    return feeds


def _read_input_csv(m, name: str, path: str) -> np.ndarray:
    """A CSV of features; the train block's label column(s), if the file has them, are left out."""
    from .train import csvopts
    from .train.data import read_array
    cfg = m.lowered.train
    options = dict(cfg.data_options) if cfg else {}
    label = options.get("label")
    labels = [label] if isinstance(label, str) else list(label or [])
    header = csvopts.header(path) if os.path.isfile(path) else []
    present = [c for c in labels if c in header]
    named = [c for key in ("columns", "drop") for c in
             ([options[key]] if isinstance(options.get(key), str) else options.get(key) or [])]
    if present or any(c in header for c in named):    # a header naming columns to select
        dtype = m.lowered.inputs[name].dtype
        features, _, _ = csvopts.read(path, options, dtype_hint=dtype if dtype != "f32" else None,
                                      labels_present=present)
    else:
        features = read_array(path)
    if options.get("scale") is not None or options.get("standardize"):   # as the training data was
        features = csvopts.preprocess(features, {"scale": options.get("scale")}, None, path)
        features = csvopts.preprocess(features, {"standardize": options.get("standardize")},
                                      csvopts.training_statistics(m.lowered), path)
    return features


def _output_columns(name: str, arr: np.ndarray) -> tuple[list[str], np.ndarray]:
    if arr.ndim == 1:
        return [name], arr.reshape(-1, 1)
    flat = arr.reshape(arr.shape[0], -1)
    return [f"{name}{j}" for j in range(flat.shape[1])], flat


def _fmt_value(v) -> str:
    if isinstance(v, np.floating) and v.dtype.itemsize <= 4:
        return f"{float(v):.9g}"          # enough digits to read back the same float32
    if isinstance(v, (np.floating, float)):
        return repr(float(v))
    if isinstance(v, (np.bool_, bool)):
        return str(int(v))
    return str(v)


def _open_model(args):
    """A .nn program compiled, or an .nnx model loaded (it holds its own weights)."""
    import nncompiler as nnc
    from .train.nnx import is_nnx
    if not is_nnx(args.file):
        return nnc.compile(args.file, backend=args.backend, model=args.model)
    if args.weights:
        raise NNCError(f"{args.file} holds its weights; --weights goes with a .nn file")
    if args.model:
        raise NNCError(f"{args.file} holds one model; --model goes with a .nn file")
    m = nnc.load(args.file, backend=args.backend, allow_nonfinite=getattr(args, "allow_nonfinite", False))
    args.weights = args.file       # no "freshly initialised parameters" note
    return m


def cmd_predict(args) -> int:
    import nncompiler as nnc
    from .train.steps import is_batched
    weights = args.weights
    m = _open_model(args)
    if weights:
        nnc.load_weights(m, weights, args.allow_nonfinite)
    if args.batch < 1:
        raise NNCError(f"--batch must be a positive integer, got {args.batch}")
    feeds = _read_inputs(m, args.input)
    names = m.lowered.output_names
    rows = {len(v) for v in feeds.values() if np.ndim(v)}
    chunks = [feeds]
    outs_batched = all(m.graph("predict").output(n).shape and isinstance(m.graph("predict").output(n).shape[0], str)
                       for n in names)
    if is_batched(m) and outs_batched and len(rows) == 1 and rows.pop() > args.batch:
        n = len(next(iter(feeds.values())))
        chunks = [{k: v[i:i + args.batch] for k, v in feeds.items()} for i in range(0, n, args.batch)]
    from .train.memcheck import check_call
    check_call(m, "predict", chunks[0], f"predicting {len(next(iter(chunks[0].values()), []))} rows at once",
               "use a smaller --batch")
    results = []
    for chunk in chunks:
        out = m.forward(**chunk)
        results.append(out if isinstance(out, tuple) else (out,))
    outputs = {n: (np.concatenate([r[i] for r in results]) if len(results) > 1 else results[0][i])
               for i, n in enumerate(names)}
    path = args.output
    ext = os.path.splitext(path)[1].lower() if path else ".csv"
    if ext == ".npy":
        if len(outputs) != 1:
            raise NNCError(f"-o {path}: model {m.lowered.name} has {len(outputs)} outputs; write an .npz or .csv")
        _write_binary(path, lambda f: np.save(f, next(iter(outputs.values()))))
        _note_no_weights(args, m, "predicted")
        return 0
    if ext == ".npz":
        _write_binary(path, lambda f: np.savez(f, **outputs))
        _note_no_weights(args, m, "predicted")
        return 0
    if ext not in (".csv", ".tsv"):
        raise NNCError(f"-o {path}: expected a .csv, .tsv, .npy or .npz file")
    header, columns = [], []
    for name, arr in outputs.items():
        arr = np.asarray(arr)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        cols, flat = _output_columns(name, arr)
        header += cols
        columns.append(flat)
    if len({c.shape[0] for c in columns}) > 1:
        raise NNCError(f"the outputs of model {m.lowered.name} have different numbers of rows; write them "
                       "to an .npz file (-o OUT.npz)")
    table = np.concatenate(columns, axis=1) if len(columns) > 1 else columns[0]
    sep = "\t" if ext == ".tsv" else ","
    lines = [sep.join(header)] + [sep.join(_fmt_value(v) for v in row) for row in table]
    _write("\n".join(lines), path)
    _note_no_weights(args, m, "predicted")
    return 0


def _note_no_weights(args, m, what: str) -> None:
    if not args.weights and m.lowered.params:
        print(f"note: no --weights given: {what} with freshly initialised parameters", file=sys.stderr)


def cmd_eval(args) -> int:
    import json
    import nncompiler as nnc
    from .program import TrainConfig
    from .train.data import split_validation
    from .train.dataset import training_data
    from .train.loop import format_record
    weights = args.weights
    from .train.nnx import is_nnx
    if is_nnx(args.file) and not args.data:
        raise NNCError(f"{args.file}: give the data to evaluate on: --data PATH (an .nnx file holds no data)")
    m = _open_model(args)
    low = m.lowered
    if low.kind != "model":
        raise NNCError(f"{low.name} is a graph block: it has no loss to evaluate (use nnc run --feed)")
    if weights:
        nnc.load_weights(m, weights, args.allow_nonfinite)
    cfg = low.train or TrainConfig()
    data = training_data(low, cfg, args.data, training=False)
    if args.split != "all":
        if not cfg.validate:
            raise NNCError(f"--split {args.split}: the train block holds out no validation data (no 'validate' line)")
        train, val = split_validation(data, cfg.validate, cfg.seed)
        data = train if args.split == "train" else val
    record = m.evaluate(**data)
    print(json.dumps(record) if args.json else format_record(record))
    _note_no_weights(args, m, "evaluated")
    return 0


def cmd_export(args) -> int:
    import nncompiler as nnc
    fmt = args.format or ("onnx" if args.output.lower().endswith(".onnx") else "nnx")
    m = nnc.compile(args.file, model=args.model)
    if args.weights:
        nnc.load_weights(m, args.weights)
    elif m.lowered.params and not args.file.lower().endswith(".nnx"):
        print("note: no --weights given: exported with freshly initialised parameters", file=sys.stderr)
    _check_writable(args.output)
    if fmt == "onnx":
        from .onnx.export import export_onnx
        export_onnx(m, args.output, opset=args.opset)
    else:
        from .train.nnx import save_nnx
        save_nnx(m, args.output, train=not args.no_train)
    return 0


def cmd_import(args) -> int:
    """Write the ONNX model as a .nn graph block that compiles to the forward IR of
    `from_onnx(file, trainable=True)`; its weights (parameters) go to a side checkpoint."""
    import nncompiler as nnc
    from .fsutil import atomic_write
    from .onnx.to_nn import graph_to_nn
    m = nnc.from_onnx(args.file, trainable=True)
    ckpt = args.weights or os.path.splitext(args.output)[0] + ".npz"
    text = graph_to_nn(m.lowered.forward, source=os.path.basename(args.file),
                       weights=os.path.basename(ckpt) if m.params else "")
    _check_writable(args.output)
    if m.params:
        _check_writable(ckpt)
    atomic_write(args.output, text, make_dirs=False)
    if m.params:
        m.save(ckpt)
        print(f"note: weights in {ckpt}: give it as --weights (or nnc.load_weights) with {args.output}",
              file=sys.stderr)
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning):
    """Compile warnings are diagnostics (FILE:LINE:COL: warning: ...): print them as such,
    without the Python file and line that raised them."""
    from .frontend.checks import CompileWarning
    if issubclass(category, CompileWarning):
        print(str(message), file=file or sys.stderr)
    else:
        _default(message, category, filename, lineno, file, line)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)   # nnc run --nproc relaunches it
    commands = {"compile": cmd_compile, "run": cmd_run, "graph": cmd_graph, "predict": cmd_predict,
                "eval": cmd_eval, "export": cmd_export, "opt": cmd_opt,
                "import": cmd_import}
    from .train.safety import Interrupted
    try:
        with warnings.catch_warnings():    # restores the default printer when the command ends
            warnings.showwarning = _show_warning
            return commands[args.command](args)
    except NNCError as e:
        print(str(e), file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except OSError as e:   # an output file that cannot be written
        where = f"{e.filename}: " if e.filename else ""
        print(f"{where}error: {e.strerror or e}", file=sys.stderr)
        return 1
    except Interrupted as e:    # training stopped on SIGINT/SIGTERM after saving (train/safety.py)
        if os.environ.get("RANK", "0") == "0":   # under a launcher, rank 0 (which saves) says so
            print(str(e), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
