"""`.nnx` files: a trained model that runs without its `.nn` source.

One zip archive (stored, not compressed: the sizes read from it are the sizes held):

    manifest.json        format name and version, the model's signature (inputs, targets,
                         outputs with their IR types), parameter and buffer types, the
                         optimizer, the train block's settings (its data options are the
                         preprocessing `nnc predict` applies to a CSV), steps taken, lr, and
                         for every other entry its size and SHA-256
    predict.ir           the optimised inference graph, in the IR's text form
    evaluate.ir          the optimised loss-and-metrics graph (models with a loss)
    forward.ir           the training-mode forward graph, unoptimised (with train=True):
                         fine-tuning derives the train step from it as `nnc run` does
    param/<name>.npy     every parameter, buffer (buffer/) and optimizer slot (opt/)

A `.nnx` file is untrusted input (docs/robustness.md): nothing is unpickled or executed;
the manifest is checked field by field, every entry against its recorded size and hash,
every array's header against the manifest and the memory available before its bytes are
read, and the graphs through the IR parser (which type-checks every node) and against the
declared signature.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import tokenize
import zipfile
import zlib

import numpy as np

from ..errors import NNCError
from .nnxcheck import (FORMAT, MANIFEST, VERSION, NNXError, is_name, number, read_array, read_graph,  
                       read_manifest, train_config, types, want)

_GRAPHS = ("predict", "evaluate", "forward")


# ---------------------------------------------------------------------------- writing

def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def _train_settings(cfg) -> dict | None:
    if cfg is None:
        return None
    return {"epochs": cfg.epochs, "batch": cfg.batch, "validate": cfg.validate, "metrics": list(cfg.metrics),
            "seed": cfg.seed, "shuffle": cfg.shuffle, "lr": cfg.lr, "data_options": dict(cfg.data_options),
            "preprocessing": dict(cfg.preprocessing),
            "callbacks": [[name, dict(opts)] for name, opts in cfg.callbacks]}


_LOC_FILE = re.compile(r'loc\(("(?:[^"\\]|\\.)*")')


def _ir_text(graph) -> bytes:
    """The graph's text form, its source positions naming the file alone: an exported model
    does not carry the folders of the machine it was built on."""
    from ..ir.text import print_graph

    def base(m):
        return "loc(" + json.dumps(os.path.basename(json.loads(m.group(1))))
    return _LOC_FILE.sub(base, print_graph(graph)).encode()


def save_nnx(model, path, *, train: bool = True) -> None:
    """Write `model` (graphs, weights, signature, train settings) to `path` atomically.
    `train=False` leaves out the training graph and optimizer state: the file then predicts
    and evaluates but cannot be fine-tuned."""
    from ..version import __version__
    low = model.lowered
    train = train and low.optimizer is not None
    from .csvopts import training_statistics
    training_statistics(low)    # standardize=true: the statistics prediction will need, stored
    entries: dict[str, bytes] = {}
    entries["predict.ir"] = _ir_text(model.graph("predict"))
    if "loss" in dict(low.forward.outputs):
        entries["evaluate.ir"] = _ir_text(model.graph("evaluate"))
    if train:
        entries["forward.ir"] = _ir_text(low.forward)
    arrays = {f"param/{k}": v for k, v in model.params.items()}
    arrays.update({f"buffer/{k}": v for k, v in model.buffers.items()})
    if train:
        arrays.update({f"opt/{k}": v for k, v in model.opt_state.items()})
    for key, value in arrays.items():
        entries[f"{key}.npy"] = _npy(np.asarray(value))
    opt = low.optimizer
    manifest = {
        "format": FORMAT, "version": VERSION, "nncompiler": __version__,
        "name": low.name, "kind": low.kind, "loss": low.loss_kind,
        "inputs": {k: str(t) for k, t in low.inputs.items()},
        "targets": {k: str(t) for k, t in low.targets.items()},
        "outputs": list(low.output_names),
        "params": {k: str(d.type) for k, d in low.params.items()},
        "buffers": {k: str(d.type) for k, d in low.buffers.items()},
        "optimizer": {"name": opt.name, "kwargs": dict(opt.kwargs)} if train else None,
        "train": _train_settings(low.train),
        "steps_taken": int(model.steps_taken), "lr": float(model.lr),
        "seed": int(model.state.seed),
        "arrays": {k: {"dtype": np.asarray(v).dtype.name, "shape": list(np.shape(v))} for k, v in arrays.items()},
        "entries": {k: {"size": len(v), "sha256": hashlib.sha256(v).hexdigest()} for k, v in entries.items()},
    }

    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
            z.writestr(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
            for name, data in entries.items():
                z.writestr(name, data)

    path = os.fspath(path)
    if os.path.isdir(path):
        raise NNXError(f"{path}: is a directory; name a file such as {path.rstrip('/')}/model.nnx")
    from ..fsutil import atomic_write
    try:
        atomic_write(path, write, fsync=True, make_dirs=False)
    except OSError as e:
        raise NNXError(f"{path}: cannot write: {e.strerror or e}") from None


def load_nnx(path, model_class, backend: str = "numpy", allow_nonfinite: bool = False):
    """A Model from an `.nnx` file, with no `.nn` source: it predicts, evaluates (with a loss)
    and fine-tunes (when the file holds the training graph). Weights holding NaN or Inf are
    refused unless `allow_nonfinite` (as checkpoints' are). `model_class` is `nncompiler.Model`,
    passed in (train/ sits beside model.py, which imports this module to save)."""
    try:
        return _load_nnx(path, model_class, backend, allow_nonfinite)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, OSError, struct.error,
            UnicodeDecodeError, SyntaxError, tokenize.TokenError) as e:
        # a damaged archive can fail anywhere zipfile reads (a bad CRC, an unknown compression
        # method in a flipped header, a cut stream): one clear line, never a traceback
        raise NNXError(f"{os.fspath(path)}: damaged .nnx file ({type(e).__name__}: {e})") from None


def _load_nnx(path, model_class, backend, allow_nonfinite):
    from ..library.context import ParamDecl, Spec
    from ..library.optimizers import OPTIMIZERS
    from ..program import LoweredModel
    from ..ir.limits import available_memory
    from .ckptcheck import check_array
    path = os.fspath(path)
    if os.path.isdir(path):
        raise NNXError(f"{path}: is a directory, not an .nnx file")
    if not os.path.exists(path):
        raise NNXError(f"{path}: no such file")
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise NNXError(f"{path}: not an .nnx model (cannot read it as a zip archive: {e})") from None
    from .arrays import check_headers
    # every array's header, together, against the memory available, before anything is read
    check_headers(path, lambda message: NNXError(f"{path}: {message}"))
    with z:
        meta = read_manifest(path, z)
        for field, kind in (("entries", dict), ("arrays", dict), ("outputs", list)):
            want(isinstance(meta.get(field), kind), path, f"manifest field '{field}' is missing or not a{'n object' if kind is dict else ' list'}")
        name, kind = meta.get("name"), meta.get("kind")
        want(is_name(name), path, f"manifest field 'name' must be a name, got {name!r}")
        want(kind in ("model", "graph"), path, f"manifest field 'kind' must be \"model\" or \"graph\", got {kind!r}")
        inputs, targets = types(path, "inputs", meta.get("inputs")), types(path, "targets", meta.get("targets"))
        params, buffers = types(path, "params", meta.get("params")), types(path, "buffers", meta.get("buffers"))
        for field, decl in (("params", params), ("buffers", buffers)):
            for n, ty in decl.items():
                want(all(isinstance(d, int) for d in ty.shape), path, f"manifest field '{field}.{n}': a "
                      f"parameter needs a static shape, got {ty}")
        outputs = meta["outputs"]
        want(all(is_name(o) for o in outputs) and outputs, path, "manifest field 'outputs' must list output names")
        loss = meta.get("loss")
        want(loss is None or is_name(loss), path, f"manifest field 'loss' must be a name or null, got {loss!r}")
        optimizer = meta.get("optimizer")
        spec = None
        if optimizer is not None:
            want(isinstance(optimizer, dict) and optimizer.get("name") in OPTIMIZERS
                  and isinstance(optimizer.get("kwargs"), dict), path,
                  f"manifest field 'optimizer' must name a known optimizer, got {optimizer!r}")
            kwargs = optimizer["kwargs"]
            want(all(is_name(k) and isinstance(v, (int, float, bool)) and np.isfinite(v) for k, v in kwargs.items()),
                  path, "manifest field 'optimizer.kwargs' must map names to numbers")
            spec = Spec(optimizer["name"], tuple(kwargs.items()))
        cfg = train_config(path, meta.get("train"))
        steps = number(path, "steps_taken", meta.get("steps_taken", 0), 0, integer=True)
        lr = number(path, "lr", meta.get("lr", 0.0), 0)
        seed = number(path, "seed", meta.get("seed", 0), 0, integer=True)

        signature = {"input": inputs, "target": targets, "param": params, "buffer": buffers}
        graphs = {k: read_graph(path, z, meta, k, signature) for k in _GRAPHS if f"{k}.ir" in meta["entries"]}
        want("predict" in graphs, path, "no predict graph (entry 'predict.ir')")
        got = [n for n, _ in graphs["predict"].outputs]
        want(got == outputs, path, f"graph 'predict' returns {got}, the manifest says outputs {outputs}")
        if "evaluate" in graphs:
            want("loss" in dict(graphs["evaluate"].outputs), path, "graph 'evaluate' returns no loss")
        if "forward" in graphs:
            want(spec is not None, path, "the file holds a training graph but no optimizer")

        available = available_memory()
        budget = [available if available is not None else 2**62]
        weights = {}
        for what, decls in (("param", params), ("buffer", buffers)):
            for n, ty in decls.items():
                arr = read_array(path, z, f"{what}/{n}", meta, budget)
                try:
                    check_array(path, f"{what}/{n}", arr, allow_nonfinite)
                except NNCError as e:
                    raise NNXError(str(e)) from None
                want(tuple(arr.shape) == tuple(ty.shape), path,
                      f"{what} '{n}' has shape {list(arr.shape)}, the manifest says {ty}")
                weights[n] = arr
        opt_state = {key[len("opt/"):]: read_array(path, z, key, meta, budget)
                     for key in meta["arrays"] if isinstance(key, str) and key.startswith("opt/")}
        unknown = [k for k in meta["arrays"] if not (isinstance(k, str) and k.startswith("opt/"))
                   and k.partition("/")[2] not in {**params, **buffers}]
        want(not unknown, path, f"manifest lists arrays no parameter declares: {', '.join(map(str, unknown[:3]))}")

    def decl(n, ty):
        return ParamDecl(n, ty, 0.0, None, 0)    # the values come from the file, not an initialiser

    forward = graphs.get("forward") or graphs.get("evaluate") or graphs["predict"]
    lowered = LoweredModel(name=name, kind=kind, forward=forward,
                           params={n: decl(n, t) for n, t in params.items()}, output_names=list(outputs),
                           inputs=inputs, targets=targets, loss_kind=loss, optimizer=spec, train=cfg, file=path,
                           buffers={n: decl(n, t) for n, t in buffers.items()},
                           inference=graphs.get("evaluate") or graphs["predict"])
    from dataclasses import replace
    from ..frontend.memory import check_model
    try:   # every value of a static size, and the state, within the memory available
        check_model(lowered)
        check_model(replace(lowered, forward=graphs["predict"], inference=None, params={}, buffers={}))
    except NNCError as e:
        raise NNXError(f"{path}: {e}") from None
    optimised = {k: graphs[k] for k in ("predict", "evaluate") if k in graphs}
    m = model_class(lowered, backend=backend, graphs=optimised)
    m.set_params(weights)
    m.state.seed = int(seed)
    m.steps_taken = steps
    if "forward" in graphs:
        m.lr = lr
        if opt_state:
            expected = set(m.opt_state)
            want(set(opt_state) == expected, path, "the optimizer state does not fit the optimizer "
                  f"{spec.name} (slots {sorted(opt_state)[:3]}..., expected {sorted(expected)[:3]}...)")
            current = m.opt_state
            for k, v in opt_state.items():
                want(v.shape == current[k].shape, path, f"optimizer slot '{k}' has shape {list(v.shape)}, "
                      f"its parameter {list(current[k].shape)}")
            m.set_opt_state(opt_state)
    return m


def is_nnx(path) -> bool:
    return isinstance(path, (str, os.PathLike)) and os.fspath(path).lower().endswith(".nnx")
