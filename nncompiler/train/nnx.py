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
import zipfile

import numpy as np

from ..errors import NNCError

FORMAT = "nncompiler-model"
VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST = 4 << 20          # bytes: a manifest is a few kilobytes
MAX_GRAPH = 64 << 20            # bytes of IR text per graph
_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9.]*")
_DTYPES = {"float32", "float64", "int32", "int64", "bool"}
_GRAPHS = ("predict", "evaluate", "forward")


class NNXError(NNCError):
    """A `.nnx` file that cannot be read, is damaged, or was tampered with."""


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
    from .. import __version__
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


# ---------------------------------------------------------------------------- reading

def _want(ok: bool, path: str, message: str) -> None:
    if not ok:
        raise NNXError(f"{path}: {message}")


def _is_name(v) -> bool:
    return isinstance(v, str) and len(v) <= 200 and _NAME.fullmatch(v) is not None


def _types(path: str, field: str, value) -> dict:
    """A manifest's {name: "f32[B,4]"} mapping, as TensorTypes (every name and type checked)."""
    from ..ir.shapes import parse_type
    from ..resources import check_type
    _want(isinstance(value, dict), path, f"manifest field '{field}' must be an object of name: type")
    out = {}
    for name, text in value.items():
        _want(_is_name(name), path, f"manifest field '{field}': {name!r} is not a valid name")
        _want(isinstance(text, str) and len(text) <= 400, path, f"manifest field '{field}.{name}' must be a type")
        try:
            ty = parse_type(text)
            check_type(ty)
        except NNCError as e:
            raise NNXError(f"{path}: manifest field '{field}.{name}': {e}") from None
        _want(all((isinstance(d, int) and d >= 0) or isinstance(d, str) for d in ty.shape), path,
              f"manifest field '{field}.{name}': negative dimension in {text}")
        out[name] = ty
    return out


def _number(path, field, v, lo=None, integer=False, optional=False):
    if v is None and optional:
        return None
    kinds = (int,) if integer else (int, float)
    _want(isinstance(v, kinds) and not isinstance(v, bool) and np.isfinite(v) and (lo is None or v >= lo), path,
          f"manifest field '{field}' must be {'an integer' if integer else 'a finite number'}"
          + (f" >= {lo}" if lo is not None else "") + f", got {v!r}")
    return v


def _json_value(v, depth=0) -> bool:
    """Plain JSON data of bounded depth (option values: strings, numbers, booleans, lists)."""
    if depth > 4:
        return False
    if v is None or isinstance(v, (bool, int, float, str)):
        return not isinstance(v, float) or np.isfinite(v)
    if isinstance(v, list):
        return all(_json_value(x, depth + 1) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _json_value(x, depth + 1) for k, x in v.items())
    return False


def _manifest(path: str, z: zipfile.ZipFile) -> dict:
    try:
        info = z.getinfo(MANIFEST)
    except KeyError:
        raise NNXError(f"{path}: not an .nnx model (no {MANIFEST}; write one with nnc export or "
                       "Model.save('model.nnx'))") from None
    _want(info.file_size <= MAX_MANIFEST, path, f"{MANIFEST} is {info.file_size} bytes (the limit is {MAX_MANIFEST})")
    try:
        meta = json.loads(z.read(MANIFEST).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise NNXError(f"{path}: {MANIFEST} is not valid JSON: {e}") from None
    _want(isinstance(meta, dict) and meta.get("format") == FORMAT, path,
          f"not an .nnx model ({MANIFEST} does not say format \"{FORMAT}\")")
    version = meta.get("version")
    _want(isinstance(version, int) and not isinstance(version, bool) and version >= 1, path,
          f"manifest field 'version' must be a positive integer, got {version!r}")
    _want(version <= VERSION, path, f".nnx format version {version} is newer than this nncompiler reads "
          f"({VERSION}); upgrade nncompiler")
    return meta


def _read_entry(path: str, z: zipfile.ZipFile, name: str, meta: dict, limit: int) -> bytes:
    """An entry's bytes, checked against the manifest's size (before reading) and SHA-256."""
    rec = meta["entries"].get(name)
    _want(isinstance(rec, dict), path, f"manifest lists no entry '{name}'")
    try:
        info = z.getinfo(name)
    except KeyError:
        raise NNXError(f"{path}: missing entry '{name}' (the file is incomplete)") from None
    _want(info.file_size == rec.get("size"), path,
          f"entry '{name}' is {info.file_size} bytes, the manifest says {rec.get('size')!r} (edited or damaged)")
    _want(info.file_size <= limit, path, f"entry '{name}' is {info.file_size} bytes (the limit is {limit})")
    try:
        data = z.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise NNXError(f"{path}: damaged entry '{name}': {e}") from None
    _want(hashlib.sha256(data).hexdigest() == rec.get("sha256"), path,
          f"entry '{name}' does not match its SHA-256 in the manifest (edited or damaged)")
    return data


def _read_array(path: str, z: zipfile.ZipFile, key: str, meta: dict, budget: list) -> np.ndarray:
    """One .npy entry: its header read first and checked (dtype, shape as the manifest says,
    bytes within the memory left) before any data is read; never unpickled."""
    from ..resources import fmt_bytes
    name = f"{key}.npy"
    rec = meta["arrays"].get(key)
    _want(isinstance(rec, dict), path, f"manifest field 'arrays' has no entry '{key}'")
    try:
        with z.open(name) as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            header_len = f.tell()
    except KeyError:
        raise NNXError(f"{path}: missing entry '{name}' (the file is incomplete)") from None
    except zipfile.BadZipFile as e:
        raise NNXError(f"{path}: damaged entry '{name}': {e}") from None
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise NNXError(f"{path}: entry '{name}' is not a valid .npy array: {e}") from None
    _want(dtype.name in _DTYPES and not dtype.hasobject and dtype.byteorder in "=<|", path,
          f"entry '{name}' holds {dtype} data (expected little-endian float32, float64, int32, int64 or bool)")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    _want(nbytes <= budget[0], path, f"entry '{name}' claims shape {list(shape)} ({fmt_bytes(nbytes)}), more than "
          f"the {fmt_bytes(budget[0])} of memory left for the model")
    budget[0] -= nbytes
    _want(list(shape) == rec.get("shape") and dtype.name == rec.get("dtype"), path,
          f"entry '{name}' holds {dtype.name}{list(shape)}, the manifest says "
          f"{rec.get('dtype')}{rec.get('shape')} (edited or damaged)")
    data = _read_entry(path, z, name, meta, header_len + nbytes)
    _want(len(data) == header_len + nbytes, path, f"entry '{name}' has {len(data) - header_len} bytes of data, "
          f"its header says {nbytes}")
    arr = np.frombuffer(data, dtype=dtype, offset=header_len, count=int(np.prod(shape, dtype=np.int64)))
    return arr.reshape(shape, order="F" if fortran else "C").copy()


def _train_config(path: str, value):
    from ..program import CALLBACK_OPTIONS, TrainConfig
    if value is None:
        return None
    _want(isinstance(value, dict), path, "manifest field 'train' must be an object or null")
    cfg = TrainConfig(base_dir=os.path.dirname(os.path.abspath(path)))
    cfg.epochs = _number(path, "train.epochs", value.get("epochs", 1), 0, integer=True)
    batch = value.get("batch", 32)
    _want(batch in ("all", None) or (isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1), path,
          f"manifest field 'train.batch' must be a positive integer, \"all\" or null, got {batch!r}")
    cfg.batch = batch
    cfg.validate = _number(path, "train.validate", value.get("validate", 0.0), 0)
    _want(cfg.validate < 1, path, f"manifest field 'train.validate' must be below 1, got {cfg.validate!r}")
    metrics = value.get("metrics", [])
    _want(isinstance(metrics, list) and all(_is_name(x) for x in metrics), path,
          "manifest field 'train.metrics' must be a list of names")
    cfg.metrics = list(metrics)
    cfg.seed = _number(path, "train.seed", value.get("seed", 0), 0, integer=True)
    _want(isinstance(value.get("shuffle", True), bool), path, "manifest field 'train.shuffle' must be true or false")
    cfg.shuffle = value.get("shuffle", True)
    cfg.lr = _number(path, "train.lr", value.get("lr"), 0, optional=True)
    options = value.get("data_options", {})
    _want(isinstance(options, dict) and all(_is_name(k) for k in options) and _json_value(options), path,
          "manifest field 'train.data_options' must be an object of plain values")
    cfg.data_options = options
    stats = value.get("preprocessing", {})
    _want(isinstance(stats, dict) and set(stats) <= {"mean", "std"}, path,
          "manifest field 'train.preprocessing' must be an object with mean and std")
    if stats:
        ok = all(isinstance(stats.get(k), list) and len(stats[k]) <= 1 << 20 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in stats[k])
            for k in ("mean", "std"))
        _want(ok and len(stats["mean"]) == len(stats["std"]) and min(stats["std"], default=0) >= 0, path,
              "manifest field 'train.preprocessing': mean and std must be lists of finite numbers of one "
              "length (std >= 0)")
        cfg.preprocessing = {"mean": list(stats["mean"]), "std": list(stats["std"])}
    callbacks = value.get("callbacks", [])
    _want(isinstance(callbacks, list), path, "manifest field 'train.callbacks' must be a list")
    for item in callbacks:
        _want(isinstance(item, list) and len(item) == 2 and item[0] in CALLBACK_OPTIONS and isinstance(item[1], dict),
              path, f"manifest field 'train.callbacks': bad entry {item!r}")
        known = CALLBACK_OPTIONS[item[0]]
        for k, v in item[1].items():
            _want(k in known and known[k][1](v), path,
                  f"manifest field 'train.callbacks': {item[0]} option {k}={v!r} is not valid")
        cfg.callbacks.append((item[0], dict(item[1])))
    return cfg


def _graph(path: str, z, meta, kind: str, signature: dict):
    """A stored graph, parsed (the parser type-checks every node) and checked against the
    manifest: every argument is a declared input, target, parameter or buffer of the same type."""
    from ..ir.text import parse_graph
    text = _read_entry(path, z, f"{kind}.ir", meta, MAX_GRAPH)
    try:
        g = parse_graph(text.decode("utf-8"), file=f"{path}:{kind}.ir")
    except UnicodeDecodeError as e:
        raise NNXError(f"{path}: entry '{kind}.ir' is not UTF-8 text: {e}") from None
    except NNCError as e:
        raise NNXError(f"{path}: entry '{kind}.ir' is not a valid graph: {e}") from None
    for a in g.args:
        name, role = a.attr["name"], a.attr.get("role")
        if role in ("rng", "hyper"):
            continue
        want = signature.get(role, {}).get(name)
        _want(want is not None, path, f"graph '{kind}' takes {role} '{name}', which the manifest does not declare")
        _want(want == a.type, path, f"graph '{kind}' takes {role} '{name}' as {a.type}, the manifest says {want}")
    return g


def load_nnx(path, backend: str = "numpy"):
    """A Model from an `.nnx` file, with no `.nn` source: it predicts, evaluates (with a loss)
    and fine-tunes (when the file holds the training graph)."""
    from ..library.context import ParamDecl, Spec
    from ..library.optimizers import OPTIMIZERS
    from ..model import Model
    from ..program import LoweredModel
    from ..resources import available_memory
    path = os.fspath(path)
    if os.path.isdir(path):
        raise NNXError(f"{path}: is a directory, not an .nnx file")
    if not os.path.exists(path):
        raise NNXError(f"{path}: no such file")
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise NNXError(f"{path}: not an .nnx model (cannot read it as a zip archive: {e})") from None
    with z:
        meta = _manifest(path, z)
        for field, kind in (("entries", dict), ("arrays", dict), ("outputs", list)):
            _want(isinstance(meta.get(field), kind), path, f"manifest field '{field}' is missing or not a{'n object' if kind is dict else ' list'}")
        name, kind = meta.get("name"), meta.get("kind")
        _want(_is_name(name), path, f"manifest field 'name' must be a name, got {name!r}")
        _want(kind in ("model", "graph"), path, f"manifest field 'kind' must be \"model\" or \"graph\", got {kind!r}")
        inputs, targets = _types(path, "inputs", meta.get("inputs")), _types(path, "targets", meta.get("targets"))
        params, buffers = _types(path, "params", meta.get("params")), _types(path, "buffers", meta.get("buffers"))
        for field, decl in (("params", params), ("buffers", buffers)):
            for n, ty in decl.items():
                _want(all(isinstance(d, int) for d in ty.shape), path, f"manifest field '{field}.{n}': a "
                      f"parameter needs a static shape, got {ty}")
        outputs = meta["outputs"]
        _want(all(_is_name(o) for o in outputs) and outputs, path, "manifest field 'outputs' must list output names")
        loss = meta.get("loss")
        _want(loss is None or _is_name(loss), path, f"manifest field 'loss' must be a name or null, got {loss!r}")
        optimizer = meta.get("optimizer")
        spec = None
        if optimizer is not None:
            _want(isinstance(optimizer, dict) and optimizer.get("name") in OPTIMIZERS
                  and isinstance(optimizer.get("kwargs"), dict), path,
                  f"manifest field 'optimizer' must name a known optimizer, got {optimizer!r}")
            kwargs = optimizer["kwargs"]
            _want(all(_is_name(k) and isinstance(v, (int, float, bool)) and np.isfinite(v) for k, v in kwargs.items()),
                  path, "manifest field 'optimizer.kwargs' must map names to numbers")
            spec = Spec(optimizer["name"], tuple(kwargs.items()))
        cfg = _train_config(path, meta.get("train"))
        steps = _number(path, "steps_taken", meta.get("steps_taken", 0), 0, integer=True)
        lr = _number(path, "lr", meta.get("lr", 0.0), 0)
        seed = _number(path, "seed", meta.get("seed", 0), 0, integer=True)

        signature = {"input": inputs, "target": targets, "param": params, "buffer": buffers}
        graphs = {k: _graph(path, z, meta, k, signature) for k in _GRAPHS if f"{k}.ir" in meta["entries"]}
        _want("predict" in graphs, path, "no predict graph (entry 'predict.ir')")
        got = [n for n, _ in graphs["predict"].outputs]
        _want(got == outputs, path, f"graph 'predict' returns {got}, the manifest says outputs {outputs}")
        if "evaluate" in graphs:
            _want("loss" in dict(graphs["evaluate"].outputs), path, "graph 'evaluate' returns no loss")
        if "forward" in graphs:
            _want(spec is not None, path, "the file holds a training graph but no optimizer")

        available = available_memory()
        budget = [available if available is not None else 2**62]
        weights = {}
        for what, decls in (("param", params), ("buffer", buffers)):
            for n, ty in decls.items():
                arr = _read_array(path, z, f"{what}/{n}", meta, budget)
                _want(tuple(arr.shape) == tuple(ty.shape), path,
                      f"{what} '{n}' has shape {list(arr.shape)}, the manifest says {ty}")
                weights[n] = arr
        opt_state = {key[len("opt/"):]: _read_array(path, z, key, meta, budget)
                     for key in meta["arrays"] if isinstance(key, str) and key.startswith("opt/")}
        unknown = [k for k in meta["arrays"] if not (isinstance(k, str) and k.startswith("opt/"))
                   and k.partition("/")[2] not in {**params, **buffers}]
        _want(not unknown, path, f"manifest lists arrays no parameter declares: {', '.join(map(str, unknown[:3]))}")

    def decl(n, ty):
        return ParamDecl(n, ty, 0.0, None, 0)    # the values come from the file, not an initialiser

    forward = graphs.get("forward") or graphs.get("evaluate") or graphs["predict"]
    lowered = LoweredModel(name=name, kind=kind, forward=forward,
                           params={n: decl(n, t) for n, t in params.items()}, output_names=list(outputs),
                           inputs=inputs, targets=targets, loss_kind=loss, optimizer=spec, train=cfg, file=path,
                           buffers={n: decl(n, t) for n, t in buffers.items()},
                           inference=graphs.get("evaluate") or graphs["predict"])
    from dataclasses import replace
    from ..resources import check_model
    try:   # every value of a static size, and the state, within the memory available
        check_model(lowered)
        check_model(replace(lowered, forward=graphs["predict"], inference=None, params={}, buffers={}))
    except NNCError as e:
        raise NNXError(f"{path}: {e}") from None
    optimised = {k: graphs[k] for k in ("predict", "evaluate") if k in graphs}
    m = Model(lowered, backend=backend, graphs=optimised)
    m.set_params(weights)
    m.state.seed = int(seed)
    m.steps_taken = steps
    if "forward" in graphs:
        m.lr = lr
        if opt_state:
            expected = set(m.opt_state)
            _want(set(opt_state) == expected, path, "the optimizer state does not fit the optimizer "
                  f"{spec.name} (slots {sorted(opt_state)[:3]}..., expected {sorted(expected)[:3]}...)")
            current = m.opt_state
            for k, v in opt_state.items():
                _want(v.shape == current[k].shape, path, f"optimizer slot '{k}' has shape {list(v.shape)}, "
                      f"its parameter {list(current[k].shape)}")
            m.set_opt_state(opt_state)
    return m


def is_nnx(path) -> bool:
    return isinstance(path, (str, os.PathLike)) and os.fspath(path).lower().endswith(".nnx")
