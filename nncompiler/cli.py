"""The `nnc` command: compile | run.

Every user error (a bad program, bad data, a bad flag value) is printed as a
diagnostic and exits 1; a Python traceback means a bug in nnc.
"""
from __future__ import annotations

import argparse
import ast as pyast
import os
import sys

import numpy as np

from .errors import NNCError

CORE_EMITS = ("ir", "grad", "opt", "python", "passes")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnc", description="nncompiler: compile and train .nn models")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="check a .nn file, print a summary or a compilation stage")
    c.add_argument("file")
    c.add_argument("--emit", metavar="STAGE", help="print a stage: ir (forward), grad (forward+backward), "
                   "opt (optimised graphs), python (generated numpy code), passes (what each pass did); "
                   "backends add their own (triton: kernels, triton, ttir, ttgir, llir, ptx, cubin; mlir: mlir)")
    c.add_argument("--backend", default="numpy")
    c.add_argument("--target", help="code generation target, e.g. sm_90 for --backend triton")
    c.add_argument("--model", help="which block, when the file has several")
    c.add_argument("-o", "--output", help="write to this file instead of standard output")

    r = sub.add_parser("run", help="train a model per its train block, or evaluate a graph block")
    r.add_argument("file")
    r.add_argument("--epochs", type=int)
    r.add_argument("--batch", help="batch size, or 'all'")
    r.add_argument("--lr", type=float, help="learning rate")
    r.add_argument("--data", help="data file (CSV with a header, .npy or .npz)")
    r.add_argument("--seed", type=int)
    r.add_argument("--validate", type=float, help="fraction of the data held out for validation")
    r.add_argument("--feed", action="append", default=[], metavar="NAME=VALUE",
                   help="a graph input: a literal like [1, 2] or a .npy/.csv path")
    r.add_argument("--backend", default="numpy")
    r.add_argument("--model", help="which block, when the file has several")
    r.add_argument("--quiet", action="store_true", help="print only the final line")
    return p


def _write(text: str, path: str | None) -> None:
    if path:
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text if text.endswith("\n") else text + "\n")
        os.replace(tmp, path)
    else:
        print(text)


def cmd_compile(args) -> int:
    import nncompiler as nnc
    from .report import emit, summary
    m = nnc.compile(args.file, backend=args.backend, model=args.model)
    text = emit(m, args.emit, target=args.target) if args.emit else summary(m)
    if isinstance(text, bytes):  # a binary stage (cubin) must go to a file
        if not args.output:
            raise NNCError(f"--emit {args.emit} is binary; name a file with -o")
        tmp = f"{args.output}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(text)
        os.replace(tmp, args.output)
        return 0
    _write(text, args.output)
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


def cmd_run(args) -> int:
    import nncompiler as nnc
    from .train.dataset import training_data
    from .train.loop import format_epoch
    # parameters are initialised from the seed, so --seed is a compile-time setting
    m = nnc.compile(args.file, backend=args.backend, model=args.model, seed=args.seed)
    low = m.lowered
    if low.kind == "graph":
        feeds = dict(_parse_feed(f) for f in args.feed)
        outs = m.forward(**feeds)
        outs = outs if isinstance(outs, tuple) else (outs,)
        for name, value in zip(low.output_names, outs):
            _print_array(name, value)
        return 0
    from .program import TrainConfig
    cfg = low.train or TrainConfig()
    data = training_data(low, cfg, args.data)
    if args.lr is not None:
        m.lr = args.lr
    elif cfg.lr is not None:
        m.lr = cfg.lr
    batch = cfg.batch if args.batch is None else ("all" if args.batch == "all" else _positive_int(args.batch))
    epochs = cfg.epochs if args.epochs is None else args.epochs
    validate = cfg.validate if args.validate is None else args.validate
    last = {}

    def report(epoch, record):
        last.update(epoch=epoch, record=record)
        if not args.quiet:
            print(format_epoch(epoch, record), flush=True)

    m.fit(epochs=epochs, batch_size=batch, shuffle=cfg.shuffle, validation_split=validate,
          seed=cfg.seed, callback=report, **data)
    if args.quiet and last:
        print(format_epoch(last["epoch"], last["record"]))
    scalars = {k: float(v) for k, v in m.params.items() if np.ndim(v) == 0}
    if scalars:
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


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"compile": cmd_compile, "run": cmd_run}[args.command](args)
    except NNCError as e:
        print(str(e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
