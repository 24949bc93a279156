"""`scan` in the mlir backend: one call of a private function, the scan's body, per step.

    util.func private @train_step.scan6(%s0: tensor<?x16xf32>, ..., %xw: tensor<?x10x64xf32>, ...,
        %token: tensor<1xi32>) -> (tensor<?x16xf32>, ..., tensor<?x10x16xf32>, %token)
        attributes {inlining_policy = #util.inline.never} { ...10 LSTM steps... }

    %x6_0_xw = tensor.extract_slice %1[0, 0, 0, 0] [1, %B, 10, 64] [1, 1, 1, 1] : ...
    %step6_0:10 = util.call @train_step.scan6(%carry, %carry_1, %x6_0_xw, ..., %token6) : ...
    %x6_1_xw = tensor.extract_slice %1[1, 0, 0, 0] ...
    %step6_1:10 = util.call @train_step.scan6(%step6_0#0, %step6_0#1, %x6_1_xw, ..., %step6_0#9) : ...
    ...
    %stack6 = tensor.insert_slice %step6_0#2 into %empty_5[0, 0, 0, 0] [1, %B, 10, 16] ...

Scans of at most `UNROLL_MAX_LENGTH` steps are unrolled before emission; longer ones are first
rewritten as a scan over chunks of K unrolled steps, the sequences laid out chunk-major
(passes/chunk.py), so a step here is a chunk. The body is emitted once, as its own function
(`FunctionEmitter.build(private=True)`), and called once per chunk: the carries go from one call
to the next, each call's per-step inputs are a slice of the sequences (one contiguous block),
and the per-step outputs some `scan_out` reads are inserted into one stacked tensor after the
calls. Outputs nothing reads are not returned. Nested scans nest (a function calling its own).

Why calls and not an `scf.for` (IREE 3.13, llvm-cpu; docs/mlir.md, "Loops"): IREE copies every
tensor a loop carries and updates (a stacked output) whole on every iteration, O(T^2) bytes per
call; a call returns its chunk's outputs, each copied once into the stack. The module grows by a
few lines per chunk, not by the body: the compile time stays that of one chunk.

Three IREE 3.13 limitations shape the text (each found by compiling; see the helpers):
- a plain func.func would be inlined: `#util.inline.never` on a util.func keeps the calls;
- util IPO crashes on such calls (dropping a duplicated result twice); it leaves functions with
  a tied operand alone, hence the token each call takes and returns in place (`TOKEN`);
- every call of a function must pass operands of one resource lifetime, hence the initial and
  final carries go through a copy IREE cannot fold (`_copy`); outputs that are the body's own
  arguments are not returned (the call's operand is used instead).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...ir.graph import Graph, Node
from ...passes.unroll import draws_random
from ...ir.shapes import TensorType
from .types import symbol_name, tensor_type

if TYPE_CHECKING:  # emit.py imports this module
    from .emit import FunctionEmitter

# Scans of at most this many steps are unrolled; longer ones are called chunk by chunk, a chunk
# being 8 to 15 unrolled steps (passes/chunk.py): a module holds at most ~30 steps of a scan (a
# chunk and a remainder) whatever T is. Measured with bench case G's model (LSTM 16, batch 32,
# Adam training step, T = 200; IREE 3.13 llvm-cpu, 2 shared cores), chunks of 15, 20 and 25
# steps ran within the noise of each other, while the compile time grows with the chunk.
UNROLL_MAX_LENGTH = 15


def loops_or_unrolls(graph: Graph) -> Graph:
    """The graph the emitter sees: short scans (and scans drawing random numbers) unrolled,
    longer ones as loops over chunks of unrolled steps (passes/chunk.py)."""
    from ...passes.chunk import chunk_scans
    from ...passes.unroll import unroll
    graph = unroll(graph, select=lambda n: n.attr["length"] <= UNROLL_MAX_LENGTH or draws_random(n.attr["body"]))[0]
    return chunk_scans(graph, UNROLL_MAX_LENGTH)[0]


def stacked_type(t: TensorType, axis: int, length: int) -> TensorType:
    return TensorType(t.dtype, tuple(t.shape[:axis]) + (length,) + tuple(t.shape[axis:]))


def _slice_operands(fe: FunctionEmitter, stacked: TensorType, axis: int, step: str) -> str:
    """`[offsets] [sizes] [strides]` of one step's slice of a stacked tensor (sizes use the
    enclosing function's dimension values, so call this before the loop opens)."""
    rank = stacked.rank
    offsets = ", ".join(step if k == axis else "0" for k in range(rank))
    sizes = ", ".join("1" if k == axis else (str(d) if isinstance(d, int) else fe.dim(d))
                      for k, d in enumerate(stacked.shape))
    return f"[{offsets}] [{sizes}] [{', '.join(['1'] * rank)}]"


def scan_calls(fe: FunctionEmitter, n: Node) -> str:
    """Emit scan `n` as one call of its body function per step; every live `scan_out` of it
    gets its result (a carry of the last call, or the steps' outputs inserted into one stack)."""
    a = n.attr
    nc, ns, axis, length = a["n_carry"], a["n_seq"], a["axis"], a["length"]
    g = fe.g
    operands = fe.plan.inputs[n.id]
    readers = [u for u in fe.plan.live if u.op == "scan_out" and fe.plan.inputs[u.id][0] == n.id]
    stacks = sorted({u.attr["index"] for u in readers if u.attr["index"] >= nc})
    kept = list(range(nc)) + stacks                 # body outputs the scan needs
    full = a["body"]
    # The function returns each needed value once, and none of its arguments: an output that is
    # an argument (a carry saved for the VJP) is the call's operand. (IREE 3.13's util IPO,
    # dropping duplicated and passed-through results itself, leaves dangling uses and crashes.)
    arg_pos = {x.id: k for k, x in enumerate(full.args)}
    returned: dict[int, int] = {}                   # body node -> result position
    source = {}                                     # kept output -> ("arg" | "result", position)
    for k in kept:
        i = full.outputs[k][1]
        if i in arg_pos:
            source[k] = ("arg", arg_pos[i])
        else:
            source[k] = ("result", returned.setdefault(i, len(returned)))
    names = {i: name for name, i in reversed(full.outputs)}
    symbol, body = _body_function(fe, Graph(full.name, full.nodes, tuple((names[i], i) for i in returned)), n)
    params = [tensor_type(x.type) for x in body.args]
    results = [tensor_type(body[i].type) for _, i in body.outputs]
    seq_ids = operands[nc:nc + ns]
    step_types = {k: full[full.outputs[k][1]].type for k in kept}
    reverse = bool(a.get("reverse"))
    tag = fe.printed[n.id]

    fe.comment(f"%{tag} scan over {length} steps{' (reverse)' if reverse else ''}: {nc} carries, "
               f"{len(stacks)} stacked outputs; one call of {symbol} per step")
    carries = [_copy(fe, _cast(fe, fe.tensor(i), tensor_type(g[i].type), ty, n), body.args[k].type, n)
               for k, (i, ty) in enumerate(zip(operands[:nc], params))]
    invariants = [_cast(fe, fe.tensor(i), tensor_type(g[i].type), ty, n)
                  for i, ty in zip(operands[nc + ns:], params[nc + ns:])]
    token = fe.fresh(f"token{tag}")
    fe.emit(f"{token} = arith.constant dense<0> : {TOKEN}")
    per_step: dict[int, dict[int, tuple[str, str]]] = {}   # step -> kept output -> (value, type)
    for t in (range(length - 1, -1, -1) if reverse else range(length)):
        xs = []
        for i, arg in zip(seq_ids, body.args[nc:nc + ns]):
            x = fe.fresh(f"x{tag}_{t}_{arg.attr['name']}")
            fe.emit(f"{x} = tensor.extract_slice {fe.tensor(i)}{_slice_operands(fe, g[i].type, axis, str(t))} : "
                    f"{tensor_type(g[i].type)} to {tensor_type(arg.type)}", n)
            xs.append(x)
        operands_now = carries + xs + invariants
        r = fe.fresh(f"step{tag}_{t}")
        values = [f"{r}#{k}" for k in range(len(results) + 1)]
        fe.emit(f"{r}:{len(results) + 1} = util.call {symbol}({', '.join(operands_now + [token])}) : "
                f"({', '.join(params + [TOKEN])}) -> ({', '.join(results + [token])})", n)
        token = values[-1]
        per_step[t] = {k: (operands_now[pos], params[pos]) if kind == "arg" else (values[pos], results[pos])
                       for k, (kind, pos) in source.items()}
        # a carry's result type can be more static than the parameter's (or less): cast between
        carries = [_cast(fe, *per_step[t][k], params[k], n) for k in range(nc)]
    last = per_step[0 if reverse else length - 1]
    read = {u.attr["index"] for u in readers}
    found = {k: _copy(fe, last[k][0], step_types[k], n) for k in range(nc) if k in read}
    for k in stacks:
        st = stacked_type(step_types[k], axis, length)
        acc = fe.empty(st.dtype, st.shape, n)
        for t in range(length):
            new = fe.fresh(f"stack{tag}")
            v, ty = per_step[t][k]
            fe.emit(f"{new} = tensor.insert_slice {v} into {acc}{_slice_operands(fe, st, axis, str(t))}"
                    f" : {ty} into {tensor_type(st)}", n)
            acc = new
        found[k] = acc
    for u in readers:
        fe.val[u.id] = found[u.attr["index"]]
    return next(iter(found.values()), "")


def scan_result(fe: FunctionEmitter, n: Node) -> str:
    """scan_out: the loop's result, named when its scan was emitted."""
    return fe.val[n.id]


def _copy(fe: FunctionEmitter, v: str, t: TensorType, n: Node) -> str:
    """A copy of a carry entering the first call or leaving the last one, which IREE cannot fold
    away: the bits OR an opaque zero (`util.optimization_barrier`). IREE 3.13 gives each
    argument and result of a function one resource lifetime for all its calls and rejects a call
    whose operands differ ("'util.call' op function type mismatch"): a carry that starts as a
    function argument (external) and is then a call's result (transient), or a result the
    function returns (external) that the next call also takes. Through these copies every
    carry a call takes or returns is an internal (transient) tensor."""
    from .types import ELEM
    elem = ELEM[t.dtype]
    bits = {"f32": "i32", "f64": "i64"}.get(t.dtype, elem)
    zero = fe.consts.get(("zero", bits))
    if zero is None:
        c = fe.fresh(f"zero_{bits}")
        zero = fe.fresh(f"opaque_{bits}")
        fe.emit(f"{c} = arith.constant dense<{'false' if bits == 'i1' else 0}> : tensor<{bits}>")
        fe.emit(f"{zero} = util.optimization_barrier {c} : tensor<{bits}>")
        fe.consts[("zero", bits)] = zero
    ty = tensor_type(t)
    rank = t.rank
    dims = ", ".join(f"d{k}" for k in range(rank))
    ident = f"affine_map<({dims}) -> ({dims})>"
    out = fe.empty(t.dtype, t.shape, n)
    name = fe.fresh("carry")
    fe.comment(f"a copy of a carry of %{fe.printed[n.id]} that IREE keeps (one resource lifetime per call operand)")
    a, z, o, x, y, r = (fe.fresh(k) for k in ("a", "z", "o", "x", "y", "r"))
    pad = fe.ind * 2
    cast = bits != elem                      # floats: OR their bits as an integer
    body = [f"{x} = arith.bitcast {a} : {elem} to {bits}"] if cast else []
    body.append(f"{y} = arith.ori {x if cast else a}, {z} : {bits}")
    body += [f"{r} = arith.bitcast {y} : {bits} to {elem}"] if cast else []
    iters = ", ".join(['"parallel"'] * rank)
    fe.lines += [f"{pad}{name} = linalg.generic {{indexing_maps = [{ident}, affine_map<({dims}) -> ()>, {ident}], "
                 f"iterator_types = [{iters}]}} ins({v}, {zero} : {ty}, tensor<{bits}>) outs({out} : {ty}) {{",
                 f"{pad}^bb0({a}: {elem}, {z}: {bits}, {o}: {elem}):",
                 *[f"{pad}{fe.ind}{line}" for line in body],
                 f"{pad}{fe.ind}linalg.yield {r if cast else y} : {elem}",
                 f"{pad}}} -> {ty}{fe.loc(n)}"]
    return name


def _cast(fe: FunctionEmitter, v: str, src: str, dst: str, n: Node) -> str:
    """A carry's initial value with exactly the body's type (static and `?` sizes can differ)."""
    if src == dst:
        return v
    name = fe.fresh("init")
    fe.emit(f"{name} = tensor.cast {v} : {src} to {dst}", n)
    return name


# The token every call of a scan's body function takes and returns in place (a tied result).
# IREE 3.13's interprocedural pass (util IPO) leaves dangling uses, and crashes, when it drops
# a result that duplicates another dropped one (the sizes and offsets of a function's results,
# once the stream dialect has packed them, often are); it leaves functions with tied operands
# alone.
TOKEN = "tensor<1xi32>"


def _body_function(fe: FunctionEmitter, body: Graph, n: Node) -> tuple[str, Graph]:
    """The scan's body as a private function of the module, kept out of line (IREE inlines a
    plain func.func; `#util.inline.never` keeps it a call): (its symbol, the graph it runs).
    Scans nested in the body become functions of their own the same way; a body identical to
    one already emitted (an inner scan in each unrolled step of an outer one) reuses it."""
    from ...passes.expand_fused import expand_fused
    name = f"{fe.fn_name}.scan{fe.printed[n.id]}"
    sub = type(fe)(loops_or_unrolls(expand_fused(body)), name, indent=fe.ind, precision=fe.precision)
    sub.functions, sub.bodies = fe.functions, fe.bodies      # one of each for the whole function
    text = sub.build(private=True)
    key = text.replace(symbol_name(name), "@", 1)
    if key not in fe.bodies:
        fe.bodies[key] = symbol_name(name)
        fe.functions.append(text)
    return fe.bodies[key], sub.g


LOOP_RULES = {"scan": scan_calls, "scan_out": scan_result}
