"""Reading an `.nnx` file without trusting it: each field of the manifest by type and range,
each entry by its recorded size (before reading) and SHA-256, each array's header before its
data, each graph through the IR parser and against the declared signature. Errors name the
file and what is wrong (`m.nnx: manifest field 'version' must be a positive integer, got '1'`).
The format itself is described in nnx.py."""
from __future__ import annotations

import hashlib
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

class NNXError(NNCError):
    """A `.nnx` file that cannot be read, is damaged, or was tampered with."""


def want(ok: bool, path: str, message: str) -> None:
    if not ok:
        raise NNXError(f"{path}: {message}")


def is_name(v) -> bool:
    return isinstance(v, str) and len(v) <= 200 and _NAME.fullmatch(v) is not None


def types(path: str, field: str, value) -> dict:
    """A manifest's {name: "f32[B,4]"} mapping, as TensorTypes (every name and type checked)."""
    from ..ir.shapes import parse_type
    from ..ir.limits import check_type
    want(isinstance(value, dict), path, f"manifest field '{field}' must be an object of name: type")
    out = {}
    for name, text in value.items():
        want(is_name(name), path, f"manifest field '{field}': {name!r} is not a valid name")
        want(isinstance(text, str) and len(text) <= 400, path, f"manifest field '{field}.{name}' must be a type")
        try:
            ty = parse_type(text)
            check_type(ty)
        except NNCError as e:
            raise NNXError(f"{path}: manifest field '{field}.{name}': {e}") from None
        want(all((isinstance(d, int) and d >= 0) or isinstance(d, str) for d in ty.shape), path,
              f"manifest field '{field}.{name}': negative dimension in {text}")
        out[name] = ty
    return out


def number(path, field, v, lo=None, integer=False, optional=False):
    if v is None and optional:
        return None
    kinds = (int,) if integer else (int, float)
    want(isinstance(v, kinds) and not isinstance(v, bool) and np.isfinite(v) and (lo is None or v >= lo), path,
          f"manifest field '{field}' must be {'an integer' if integer else 'a finite number'}"
          + (f" >= {lo}" if lo is not None else "") + f", got {v!r}")
    return v


def json_value(v, depth=0) -> bool:
    """Plain JSON data of bounded depth (option values: strings, numbers, booleans, lists)."""
    if depth > 4:
        return False
    if v is None or isinstance(v, (bool, int, float, str)):
        return not isinstance(v, float) or np.isfinite(v)
    if isinstance(v, list):
        return all(json_value(x, depth + 1) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and json_value(x, depth + 1) for k, x in v.items())
    return False


def read_manifest(path: str, z: zipfile.ZipFile) -> dict:
    try:
        info = z.getinfo(MANIFEST)
    except KeyError:
        raise NNXError(f"{path}: not an .nnx model (no {MANIFEST}; write one with nnc export or "
                       "Model.save('model.nnx'))") from None
    want(info.file_size <= MAX_MANIFEST, path, f"{MANIFEST} is {info.file_size} bytes (the limit is {MAX_MANIFEST})")
    try:
        raw = z.read(MANIFEST)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:   # a bad CRC, a cut file
        raise NNXError(f"{path}: damaged entry '{MANIFEST}': {e}") from None
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise NNXError(f"{path}: {MANIFEST} is not valid JSON: {e}") from None
    want(isinstance(meta, dict) and meta.get("format") == FORMAT, path,
          f"not an .nnx model ({MANIFEST} does not say format \"{FORMAT}\")")
    version = meta.get("version")
    want(isinstance(version, int) and not isinstance(version, bool) and version >= 1, path,
          f"manifest field 'version' must be a positive integer, got {version!r}")
    want(version <= VERSION, path, f".nnx format version {version} is newer than this nncompiler reads "
          f"({VERSION}); upgrade nncompiler")
    return meta


def read_entry(path: str, z: zipfile.ZipFile, name: str, meta: dict, limit: int) -> bytes:
    """An entry's bytes, checked against the manifest's size (before reading) and SHA-256."""
    rec = meta["entries"].get(name)
    want(isinstance(rec, dict), path, f"manifest lists no entry '{name}'")
    try:
        info = z.getinfo(name)
    except KeyError:
        raise NNXError(f"{path}: missing entry '{name}' (the file is incomplete)") from None
    want(info.file_size == rec.get("size"), path,
          f"entry '{name}' is {info.file_size} bytes, the manifest says {rec.get('size')!r} (edited or damaged)")
    want(info.file_size <= limit, path, f"entry '{name}' is {info.file_size} bytes (the limit is {limit})")
    try:
        data = z.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise NNXError(f"{path}: damaged entry '{name}': {e}") from None
    want(hashlib.sha256(data).hexdigest() == rec.get("sha256"), path,
          f"entry '{name}' does not match its SHA-256 in the manifest (edited or damaged)")
    return data


def read_array(path: str, z: zipfile.ZipFile, key: str, meta: dict, budget: list) -> np.ndarray:
    """One .npy entry: its header read first and checked (dtype, shape as the manifest says,
    bytes within the memory left) before any data is read; never unpickled."""
    from ..ir.limits import fmt_bytes
    name = f"{key}.npy"
    rec = meta["arrays"].get(key)
    want(isinstance(rec, dict), path, f"manifest field 'arrays' has no entry '{key}'")
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
    want(dtype.name in _DTYPES and not dtype.hasobject and dtype.byteorder in "=<|", path,
          f"entry '{name}' holds {dtype} data (expected little-endian float32, float64, int32, int64 or bool)")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    want(nbytes <= budget[0], path, f"entry '{name}' claims shape {list(shape)} ({fmt_bytes(nbytes)}), more than "
          f"the {fmt_bytes(budget[0])} of memory left for the model")
    budget[0] -= nbytes
    want(list(shape) == rec.get("shape") and dtype.name == rec.get("dtype"), path,
          f"entry '{name}' holds {dtype.name}{list(shape)}, the manifest says "
          f"{rec.get('dtype')}{rec.get('shape')} (edited or damaged)")
    data = read_entry(path, z, name, meta, header_len + nbytes)
    want(len(data) == header_len + nbytes, path, f"entry '{name}' has {len(data) - header_len} bytes of data, "
          f"its header says {nbytes}")
    arr = np.frombuffer(data, dtype=dtype, offset=header_len, count=int(np.prod(shape, dtype=np.int64)))
    return arr.reshape(shape, order="F" if fortran else "C").copy()


def train_config(path: str, value):
    from ..program import CALLBACK_OPTIONS, TrainConfig
    if value is None:
        return None
    want(isinstance(value, dict), path, "manifest field 'train' must be an object or null")
    cfg = TrainConfig(base_dir=os.path.dirname(os.path.abspath(path)))
    cfg.epochs = number(path, "train.epochs", value.get("epochs", 1), 0, integer=True)
    batch = value.get("batch", 32)
    want(batch in ("all", None) or (isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1), path,
          f"manifest field 'train.batch' must be a positive integer, \"all\" or null, got {batch!r}")
    cfg.batch = batch
    cfg.validate = number(path, "train.validate", value.get("validate", 0.0), 0)
    want(cfg.validate < 1, path, f"manifest field 'train.validate' must be below 1, got {cfg.validate!r}")
    metrics = value.get("metrics", [])
    want(isinstance(metrics, list) and all(is_name(x) for x in metrics), path,
          "manifest field 'train.metrics' must be a list of names")
    cfg.metrics = list(metrics)
    cfg.seed = number(path, "train.seed", value.get("seed", 0), 0, integer=True)
    want(isinstance(value.get("shuffle", True), bool), path, "manifest field 'train.shuffle' must be true or false")
    cfg.shuffle = value.get("shuffle", True)
    cfg.lr = number(path, "train.lr", value.get("lr"), 0, optional=True)
    options = value.get("data_options", {})
    want(isinstance(options, dict) and all(is_name(k) for k in options) and json_value(options), path,
          "manifest field 'train.data_options' must be an object of plain values")
    cfg.data_options = options
    stats = value.get("preprocessing", {})
    want(isinstance(stats, dict) and set(stats) <= {"mean", "std"}, path,
          "manifest field 'train.preprocessing' must be an object with mean and std")
    if stats:
        ok = all(isinstance(stats.get(k), list) and len(stats[k]) <= 1 << 20 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in stats[k])
            for k in ("mean", "std"))
        want(ok and len(stats["mean"]) == len(stats["std"]) and min(stats["std"], default=0) >= 0, path,
              "manifest field 'train.preprocessing': mean and std must be lists of finite numbers of one "
              "length (std >= 0)")
        cfg.preprocessing = {"mean": list(stats["mean"]), "std": list(stats["std"])}
    callbacks = value.get("callbacks", [])
    want(isinstance(callbacks, list), path, "manifest field 'train.callbacks' must be a list")
    for item in callbacks:
        want(isinstance(item, list) and len(item) == 2 and item[0] in CALLBACK_OPTIONS and isinstance(item[1], dict),
              path, f"manifest field 'train.callbacks': bad entry {item!r}")
        known = CALLBACK_OPTIONS[item[0]]
        for k, v in item[1].items():
            want(k in known and known[k][1](v), path,
                  f"manifest field 'train.callbacks': {item[0]} option {k}={v!r} is not valid")
        cfg.callbacks.append((item[0], dict(item[1])))
    return cfg


def read_graph(path: str, z, meta, kind: str, signature: dict):
    """A stored graph, parsed (the parser type-checks every node) and checked against the
    manifest: every argument is a declared input, target, parameter or buffer of the same type."""
    from ..ir.text import parse_graph
    text = read_entry(path, z, f"{kind}.ir", meta, MAX_GRAPH)
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
        declared = signature.get(role, {}).get(name)
        want(declared is not None, path, f"graph '{kind}' takes {role} '{name}', which the manifest does not declare")
        want(declared == a.type, path, f"graph '{kind}' takes {role} '{name}' as {a.type}, the manifest says {declared}")
    return g
