"""TensorBoard logging: real event files, written by TensorBoard's own writer.

    nnc run examples/iris.nn --logdir runs/iris
    m.fit(x=X, y=Y, epochs=20, logdir="runs/iris")
    tensorboard --logdir runs

Like Keras, a run directory holds two runs, `train/` and `validation/`, whose
scalars share tags so TensorBoard draws them on one chart:

    train/       loss, <metric> ..., learning_rate        (step = epoch)
                 weights/<param>, gradients/<param>       histograms
                 the model's dataflow graph               (Graphs tab)
    validation/  loss, <metric> ...                        (val_loss, val_<metric>)

Gradients are the loss's gradients on the epoch's last training batch, at the
weights the epoch ended with (`Model.loss_and_grads`). The graph is the forward
IR in training mode: one NodeDef per IR node, named `<layer>/<op>_<n>` (n as
`nnc compile --emit ir` numbers it) so each `.nn` statement is a name scope
TensorBoard collapses into one box; parameters sit in their layer's scope
(`h.kernel` is `h/kernel`), and every node carries its dtype and its output
shape (`_output_shapes`, symbolic dimensions as -1).

Needs the optional `tensorboard` package: `pip install 'nncompiler[tensorboard]'`.
"""
from __future__ import annotations

import itertools
import os
import socket
import time

import numpy as np

from ..errors import NNCError
from ..ir.graph import Graph
from .callbacks import Callback, require_extra

EXTRA = "tensorboard"
PURPOSE = "TensorBoard logging (--logdir)"

_DTYPE_ENUM = {"f32": "DT_FLOAT", "f64": "DT_DOUBLE", "i32": "DT_INT32", "i64": "DT_INT64", "bool": "DT_BOOL"}


def _protos():
    require_extra("tensorboard", EXTRA, PURPOSE)
    from tensorboard.compat.proto import (attr_value_pb2, graph_pb2, node_def_pb2, tensor_shape_pb2,
                                          types_pb2, versions_pb2)
    return attr_value_pb2, graph_pb2, node_def_pb2, tensor_shape_pb2, types_pb2, versions_pb2


def node_names(g: Graph, sources: dict) -> dict[int, str]:
    """node id -> a TensorBoard node name with its layer as name scope (`h/matmul_0`, `h/kernel`)."""
    from ..viz import layer_groups, value_names
    groups, printed = layer_groups(g, sources), value_names(g)
    names: dict[int, str] = {}
    for n in g.nodes:
        if n.op == "arg":
            name, role = n.attr["name"], n.attr["role"]
            names[n.id] = name.replace(".", "/") if role in ("param", "buffer") else name
        else:
            leaf = f"{n.op}_{printed[n.id][1:]}"
            names[n.id] = f"{groups[n.id]}/{leaf}" if groups[n.id] else leaf
    # a node may not share its name with a scope (`intercept` and `intercept/add_0`)
    scopes = {name.rsplit("/", 1)[0] for name in names.values() if "/" in name}
    scopes |= {s for name in scopes for s in _prefixes(name)}
    for i, name in names.items():
        if name in scopes:
            names[i] = f"{name}/{name.rsplit('/', 1)[-1]}"
    return names


def _prefixes(name: str):
    parts = name.split("/")
    for k in range(1, len(parts)):
        yield "/".join(parts[:k])


def graph_def(g: Graph, sources: dict):
    """The IR graph as a TensorBoard GraphDef (one NodeDef per IR node, plus one per output)."""
    from ..ir.text import fmt_attr
    attr_pb, graph_pb, node_pb, shape_pb, types_pb, versions_pb = _protos()
    names = node_names(g, sources)

    def shape_of(n):
        return shape_pb.TensorShapeProto(dim=[shape_pb.TensorShapeProto.Dim(size=d if isinstance(d, int) else -1)
                                              for d in n.shape])

    def attrs(n) -> dict:
        out = {
            "T": attr_pb.AttrValue(type=types_pb.DataType.Value(_DTYPE_ENUM.get(n.dtype, "DT_INVALID"))),
            "_output_shapes": attr_pb.AttrValue(list=attr_pb.AttrValue.ListValue(shape=[shape_of(n)])),
            "type": attr_pb.AttrValue(s=str(n.type).encode()),
        }
        if n.loc is not None:
            out["loc"] = attr_pb.AttrValue(s=str(n.loc).encode())
        for k, v in n.attrs:
            if k not in ("dtype", "shape") or n.op != "arg":
                out[k] = attr_pb.AttrValue(s=fmt_attr(v).encode())
        return out

    gd = graph_pb.GraphDef(versions=versions_pb.VersionDef(producer=22))
    for n in g.nodes:
        op = n.attr["role"] if n.op == "arg" else n.op
        gd.node.append(node_pb.NodeDef(name=names[n.id], op=op, input=[names[i] for i in n.inputs], attr=attrs(n)))
    for out_name, i in g.outputs:
        gd.node.append(node_pb.NodeDef(name=f"outputs/{out_name}", op="output", input=[names[i]],
                                       attr={"_output_shapes": attrs(g[i])["_output_shapes"],
                                             "T": attrs(g[i])["T"]}))
    return gd


_uid = itertools.count()


class EventFile:
    """One `events.out.tfevents.*` file, framed by TensorBoard's RecordWriter.

    (tensorboard's EventFileWriter does the same through `tf.io.gfile`, which
    imports all of TensorFlow when it is installed: seconds per process.)
    """

    def __init__(self, logdir: str):
        require_extra("tensorboard", EXTRA, PURPOSE)
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter
        name = "events.out.tfevents.%010d.%s.%s.%s" % (time.time(), socket.gethostname(), os.getpid(), next(_uid))
        try:
            os.makedirs(logdir, exist_ok=True)
            self._records = RecordWriter(open(os.path.join(logdir, name), "wb"))
        except OSError as e:
            raise NNCError(f"{logdir}: cannot write TensorBoard logs there: {e.strerror or e}") from None
        self.path = os.path.join(logdir, name)
        self.add_event(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2",
                                       source_metadata=event_pb2.SourceMetadata(writer="nncompiler")))
        self.flush()

    def add_event(self, event) -> None:
        self._records.write(event.SerializeToString())

    def flush(self) -> None:
        self._records.flush()

    def close(self) -> None:
        if not self._records.closed:
            self._records.close()


def write_graph(logdir: str, lowered) -> None:
    """Only the dataflow graph, under `logdir/train` like a training run's: what `nnc run
    --logdir` writes for a `graph` block (the course's "look at the graph in TensorBoard")."""
    require_extra("tensorboard", EXTRA, PURPOSE)
    from tensorboard.compat.proto import event_pb2
    writer = EventFile(os.path.join(os.fspath(logdir), "train"))
    try:
        writer.add_event(event_pb2.Event(wall_time=time.time(), step=0, graph_def=graph_def(
            lowered.forward, lowered.sources).SerializeToString()))
    finally:
        writer.close()


class TensorBoard(Callback):
    """Write per-epoch scalars, weight and gradient histograms and the graph under `logdir`."""

    def __init__(self, logdir: str, histograms: bool = True, gradients: bool = True, graph: bool = True,
                 histogram_freq: int = 1):
        self.logdir = os.fspath(logdir)
        self.histograms, self.gradients, self.graph = histograms, gradients, graph
        self.histogram_freq = max(1, int(histogram_freq))
        self._writers: dict[str, object] = {}

    # -- writing ------------------------------------------------------------------
    def _writer(self, run: str):
        if run not in self._writers:
            self._writers[run] = EventFile(os.path.join(self.logdir, run))
        return self._writers[run]

    def _event(self, run: str, step: int, **fields) -> None:
        from tensorboard.compat.proto import event_pb2
        self._writer(run).add_event(event_pb2.Event(wall_time=time.time(), step=step, **fields))

    def scalars(self, run: str, step: int, values: dict) -> None:
        from tensorboard.compat.proto import summary_pb2
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=k, simple_value=float(v))
                                             for k, v in values.items()])
        self._event(run, step, summary=summary)

    def histogram(self, run: str, step: int, tag: str, values) -> None:
        from tensorboard.plugins.histogram.summary_v2 import histogram_pb
        self._event(run, step, summary=histogram_pb(tag, np.asarray(values, dtype=np.float64)))

    # -- hooks --------------------------------------------------------------------
    def on_train_begin(self, state):
        require_extra("tensorboard", EXTRA, PURPOSE)
        writer = self._writer("train")
        if self.graph:
            low = state.model.lowered
            self._event("train", state.epoch, graph_def=graph_def(low.forward, low.sources).SerializeToString())
        writer.flush()

    def on_epoch_end(self, state, record):
        step = state.epoch
        train = {k: v for k, v in record.items() if not k.startswith("val_")}
        train["learning_rate"] = state.model.lr
        self.scalars("train", step, train)
        val = {k[len("val_"):]: v for k, v in record.items() if k.startswith("val_")}
        if val:
            self.scalars("validation", step, val)
        if self.histograms and step % self.histogram_freq == 0:
            m = state.model
            for name, value in {**m.params, **m.buffers}.items():
                self.histogram("train", step, f"weights/{name}", value)
            if self.gradients and state.last_batch is not None:
                _, grads = m.loss_and_grads(**state.last_batch)
                for name, value in grads.items():
                    self.histogram("train", step, f"gradients/{name}", value)
        for w in self._writers.values():
            w.flush()

    def on_train_end(self, state):
        self.close()

    def close(self):
        writers, self._writers = self._writers, {}
        for w in writers.values():
            w.close()
