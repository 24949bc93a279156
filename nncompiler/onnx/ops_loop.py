"""ONNX's `Scan` as one IR `scan`: state variables are its carries, scan inputs its sequences,
scan outputs its stacked per-step outputs, and the outer values the body reads by name its
loop invariants.

The body is imported by the same op table as the main graph (importer.lower_nodes), nested
Scans included. An outer value the body reads is looked up on first use (`BodyScope`): an
import-time array (a shape, an integer initializer) stays one, while a run-time value or a
float initializer becomes a new invariant argument of the body, in the order first read.

ONNX lets every scan input have its own axis and direction and every scan output its own
axis and direction; the IR's scan has one axis and one direction for all of them. So the
scan takes the first input's direction and, where the inputs' axes differ, axis 0: an input
scanned along another axis is transposed to it, one read the other way is reversed (a
gather) before the loop, and an output stacked along another axis or in the other direction
is transposed or reversed after it. Output t of the IR's scan is the step that read slice t,
which is what Scan's `scan_output_directions` 1 (prepend) gives for a reverse scan.
"""
from __future__ import annotations

import numpy as np

from ..ir.shapes import TensorType
from .importer import OnnxImportError, Weight, _ImportBuilder, const_node, dtype_of, ir_name, lower_nodes
from .symbolic import SymInts


def visible(env) -> set[str]:
    """The names an environment and the scopes around it define."""
    return set(env) | (visible(env.outer) if isinstance(env, BodyScope) else set())


class BodyScope(dict):
    """A Scan body's values by ONNX name: its own, and on first read of an outer name the
    outer value, an import-time array as it is, a run-time one as a new invariant argument."""

    def __init__(self, outer: dict, outer_b, body_b):
        super().__init__()
        self.outer, self.outer_b, self.b = outer, outer_b, body_b
        self.invariants: list[int] = []       # outer ids, in the order of the body's invariant arguments
        self.arg_names: set[str] = set()

    def __missing__(self, name: str):
        v = self.outer[name]
        if isinstance(v, Weight):
            v = _CapturedWeight(v, self, name)
        elif not isinstance(v, (np.ndarray, SymInts)):     # a run-time value: a node id of the outer graph
            v = self.capture(name, v)
        self[name] = v
        return v

    def argument(self, name: str, role: str, ty: TensorType) -> int:
        """A body argument named after the ONNX value (unique within the body)."""
        base = arg = ir_name(name)
        k = 1
        while arg in self.arg_names:
            k += 1
            arg = f"{base}_{k}"
        self.arg_names.add(arg)
        return self.b.argument(arg, role, ty)

    def capture(self, name: str, outer_id: int) -> int:
        self.invariants.append(outer_id)
        return self.argument(name, "param", self.outer_b.type_of(outer_id))


class _CapturedWeight(Weight):
    """An outer float initializer a body reads: its array for import-time uses, an invariant
    argument (the outer graph's parameter) once it is a run-time operand."""

    def __init__(self, outer: Weight, scope: BodyScope, name: str):
        super().__init__(outer.array, outer.arg, outer.role)
        self.outer, self.scope, self.name, self.id = outer, scope, name, None

    def materialise(self, b) -> int:
        if self.id is None:
            self.id = self.scope.capture(self.name, self.outer.materialise(self.scope.outer_b))
        return self.id


def _per_item(cx, name: str, count: int, default: int) -> list[int]:
    v = cx.attr(name)
    v = [default] * count if v is None else [int(x) for x in v]
    if len(v) != count:
        raise cx.fail(f"{name} has {len(v)} entries for {count} {'inputs' if 'input' in name else 'outputs'}")
    return v


def _axis(cx, what: str, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise cx.fail(f"{what} has axis {axis}, out of range for rank {rank}")
    return axis % rank


def _reversed(b, v: int, axis: int) -> int:
    n = b.shape(v)[axis]
    return b.gather(v, b.constant(tuple(range(n - 1, -1, -1)), "i32", (n,)), axis=axis)


def _move_axis(b, v: int, src: int, dst: int) -> int:
    if src == dst:
        return v
    perm = [d for d in range(len(b.shape(v))) if d != src]
    perm.insert(dst, src)
    return b.transpose(v, perm=tuple(perm))


def _as_node(b, v, where: str) -> int:
    """A body output as a node of the body (an import-time value becomes a constant there)."""
    if isinstance(v, Weight):
        return v.materialise(b)
    if isinstance(v, SymInts):
        if not v.static:
            raise OnnxImportError(f"{where} is a shape with symbolic dimensions {list(v.dims)}; nnc keeps "
                                  f"shapes out of the computed graph")
        v = v.array()
    if isinstance(v, np.ndarray):
        return const_node(b, v, where)
    return v


def scan(cx):
    b = cx.b
    body = cx.attr("body")
    m = cx.attr("num_scan_inputs")
    n_state = cx.n_inputs - m
    if m < 1 or n_state < 0:
        raise cx.fail(f"num_scan_inputs={m} with {cx.n_inputs} inputs: nnc needs at least one scan input "
                      f"(the number of steps is its length)")
    if not all(cx.has(i) for i in range(cx.n_inputs)):
        raise cx.fail("an empty input name (Scan has no optional inputs)")
    n_out = len(body.output) - n_state
    if len(body.input) != n_state + m or n_out < 0 or len(body.output) == 0:
        raise cx.fail(f"the body takes {len(body.input)} inputs and gives {len(body.output)} outputs; with "
                      f"{n_state} state variable(s) and {m} scan input(s) it must take {n_state + m} and give "
                      f"at least {max(n_state, 1)}")
    in_axes, in_dirs = _per_item(cx, "scan_input_axes", m, 0), _per_item(cx, "scan_input_directions", m, 0)
    out_axes, out_dirs = _per_item(cx, "scan_output_axes", n_out, 0), _per_item(cx, "scan_output_directions", n_out, 0)
    if any(d not in (0, 1) for d in in_dirs + out_dirs):
        raise cx.fail("scan directions must be 0 (forward) or 1 (reverse)")
    states = [cx.x(i) for i in range(n_state)]
    seqs = [cx.x(i) for i in range(n_state, cx.n_inputs)]
    axes = [_axis(cx, f"scan input {k}", a, len(b.shape(s))) for k, (s, a) in enumerate(zip(seqs, in_axes))]
    lengths = {b.shape(s)[a] for s, a in zip(seqs, axes)}
    if len(lengths) != 1 or not isinstance(next(iter(lengths)), int):
        raise cx.fail(f"the scan inputs' lengths along their scan axes must be one static number (the scan "
                      f"runs a fixed number of steps), got {sorted(map(str, lengths))}")
    axis = axes[0] if len(set(axes)) == 1 else 0
    reverse = bool(in_dirs[0])
    seqs = [_move_axis(b, s, a, axis) for s, a in zip(seqs, axes)]
    seqs = [_reversed(b, s, axis) if bool(d) != reverse else s for s, d in zip(seqs, in_dirs)]

    name = ir_name(cx.node.name) if cx.node.name else f"scan{sum(n.op == 'scan' for n in b.nodes)}"
    bb = _ImportBuilder(name)
    bb._loc = b._loc
    scope = BodyScope(cx.env, b, bb)
    for k, vi in enumerate(body.input):
        outer = b.type_of(states[k] if k < n_state else seqs[k - n_state])
        ty = outer if k < n_state else TensorType(outer.dtype, outer.shape[:axis] + outer.shape[axis + 1:])
        declared = vi.type.tensor_type.elem_type if vi.type.HasField("tensor_type") else 0
        if declared and dtype_of(declared, f"{cx.where}: body input '{vi.name}'") != ty.dtype:
            raise cx.fail(f"body input '{vi.name}' is declared {dtype_of(declared, '')}, but the "
                          f"{'state variable' if k < n_state else 'scan input'} it receives is {ty.dtype}")
        scope[vi.name] = scope.argument(vi.name, "carry" if k < n_state else "input", ty)
    from onnx import numpy_helper
    for t in body.initializer:
        dtype_of(t.data_type, f"{cx.where}: body initializer '{t.name}'")
        scope[t.name] = numpy_helper.to_array(t)
    lower_nodes(bb, body, scope, cx.opset, visible(cx.env), f"{cx.where}: body: ")
    outs = []
    for k, vo in enumerate(body.output):
        where = f"{cx.where}: body output '{vo.name}'"
        if vo.name not in scope and vo.name not in visible(cx.env):
            raise cx.fail(f"body output '{vo.name}' is not computed by any node of the body")
        v = _as_node(bb, scope[vo.name], where)
        if k < n_state and bb.type_of(v) != b.type_of(states[k]):
            raise cx.fail(f"body output '{vo.name}' (state variable {k}) is {bb.type_of(v)}, but the state's "
                          f"initial value is {b.type_of(states[k])}: a loop's state keeps its type")
        outs.append((f"s{k}" if k < n_state else f"y{k - n_state}", v))
    results = b.loop(bb.build(outs), states, seqs, scope.invariants, axis=axis, reverse=reverse)
    stacked = []
    for v, a, d in zip(results[n_state:], out_axes, out_dirs):
        v = _reversed(b, v, axis) if bool(d) != reverse else v
        stacked.append(_move_axis(b, v, axis, _axis(cx, "a scan output", a, len(b.shape(v)))))
    return results[:n_state] + stacked


OPS = {"Scan": scan}
