"""Commands that apply a trained model to data: `nnc predict` (outputs to CSV/.npy/.npz)
and `nnc eval` (loss and metrics), from a .nn program with --weights or from an .nnx model."""
from __future__ import annotations

import os
import sys

import numpy as np

from ..errors import NNCError
from .outputs import write_binary, write_text


def _read_inputs(m, specs: list[str]) -> dict[str, np.ndarray]:
    """--input PATH (one-input models), --input NAME=PATH, or an .npz of arrays by input name."""
    from ..errors import did_you_mean
    from ..train.data import read_array, read_npz
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
    from ..train import csvopts
    from ..train.data import read_array
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
    from ..train.nnx import is_nnx
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
    from ..train.steps import is_batched
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
    from ..train.memcheck import check_call
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
        write_binary(path, lambda f: np.save(f, next(iter(outputs.values()))))
        _note_no_weights(args, m, "predicted")
        return 0
    if ext == ".npz":
        write_binary(path, lambda f: np.savez(f, **outputs))
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
    write_text("\n".join(lines), path)
    _note_no_weights(args, m, "predicted")
    return 0


def _note_no_weights(args, m, what: str) -> None:
    if not args.weights and m.lowered.params:
        print(f"note: no --weights given: {what} with freshly initialised parameters", file=sys.stderr)


def cmd_eval(args) -> int:
    import json
    import nncompiler as nnc
    from ..program import TrainConfig
    from ..train.data import split_validation
    from ..train.dataset import training_data
    from ..train.loop import format_record
    weights = args.weights
    from ..train.nnx import is_nnx
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
