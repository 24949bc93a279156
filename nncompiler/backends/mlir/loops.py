"""`scan` as a real loop in the mlir backend: one `scf.for` over the scan's steps.

    %loop5:4 = scf.for %i = %c0 to %c20 step %c1
        iter_args(%carry = %4, %carry_1 = %4, %stack = %empty, %stack_1 = %empty_1) -> (...) {
      %x = tensor.extract_slice %2[0, %i, 0] [%B, 1, 64] [1, 1, 1] : ... to tensor<?x64xf32>
      ...the body graph, emitted like any function's nodes (clusters, matmuls, slices)...
      %stack_2 = tensor.insert_slice %y into %stack[0, %i, 0] [%B, 1, 16] [1, 1, 1] : ...
      scf.yield %h, %c, %stack_2, ... : ...
    }

The loop carries the scan's carries and, for every per-step output some `scan_out` reads,
the whole stacked [.., T, ..] tensor, written one slice per step; per-step inputs are read
with `extract_slice` at the step's index (T-1-i for a reverse scan). Per-step outputs
nothing reads are dropped from the body before it is emitted.

Which scans loop (`loops_or_unrolls`): scans of at most `UNROLL_MAX_LENGTH` steps are
unrolled; longer ones become a loop over chunks of at most that many unrolled steps
(passes/chunk.py), so the module has the same size at any T. Under IREE an iteration costs a
command-buffer submission and copies every loop-carried tensor it updates whole (docs/mlir.md,
"Loops"), so fewer, fatter iterations win.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...ir.graph import Graph, Node
from ...ir.shapes import TensorType
from .types import tensor_type

if TYPE_CHECKING:  # emit.py imports this module
    from .emit import FunctionEmitter

# Scans of at most this many steps are unrolled; longer ones loop over chunks of 8 to 15
# unrolled steps. Measured with bench case G's model (LSTM 16, batch 32, Adam training step;
# IREE 3.13 llvm-cpu, 2 shared cores), loop and unrolled interleaved in one process: at T = 30
# (2 chunks) and T = 50 (5 chunks) the loop's step time equals the unrolled one within noise,
# at T = 200 (20 chunks) it is 0.75-0.85x, and it compiles 2-6x faster; one step per iteration
# was 6-28x slower than unrolled (docs/mlir.md, "Loops").
# So a module holds at most ~30 steps (a chunk and a remainder) whatever T is.
UNROLL_MAX_LENGTH = 15


def has_random(body: Graph) -> bool:
    """Does a body (or a body nested in it) draw host random numbers? Those are function
    arguments the runtime fills once per call, so such a scan runs unrolled."""
    return any(n.op == "rng_uniform" or (n.op == "scan" and has_random(n.attr["body"])) for n in body.nodes)


def loops_or_unrolls(graph: Graph) -> Graph:
    """The graph the emitter sees: short scans (and scans drawing random numbers) unrolled,
    longer ones as loops over chunks of unrolled steps (passes/chunk.py)."""
    from ...passes.chunk import chunk_scans
    from ...passes.unroll import unroll
    graph = unroll(graph, select=lambda n: n.attr["length"] <= UNROLL_MAX_LENGTH or has_random(n.attr["body"]))[0]
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


def scan_loop(fe: FunctionEmitter, n: Node) -> str:
    """Emit scan `n` as an scf.for; every live `scan_out` of it gets its result."""
    a = n.attr
    nc, ns, axis, length = a["n_carry"], a["n_seq"], a["axis"], a["length"]
    g = fe.g
    operands = fe.plan.inputs[n.id]
    readers = [u for u in fe.plan.live if u.op == "scan_out" and fe.plan.inputs[u.id][0] == n.id]
    stacks = sorted({u.attr["index"] for u in readers if u.attr["index"] >= nc})
    kept = list(range(nc)) + stacks                 # body outputs the loop keeps
    full = a["body"]
    sub = _body_emitter(fe, Graph(full.name, full.nodes, tuple(full.outputs[k] for k in kept)), n)
    body = sub.g
    outs = [i for _, i in body.outputs]

    # everything from the enclosing function, before the loop opens
    seq_ids = operands[nc:nc + ns]
    carry_types = [tensor_type(body[i].type) for i in outs[:nc]]
    inits = [_cast(fe, fe.tensor(i), tensor_type(g[i].type), ty, n) for i, ty in zip(operands[:nc], carry_types)]
    seqs = [fe.tensor(i) for i in seq_ids]
    invariants = [fe.tensor(i) for i in operands[nc + ns:]]
    stack_types = [stacked_type(body[i].type, axis, length) for i in outs[nc:]]
    inits += [fe.empty(t.dtype, t.shape, n) for t in stack_types]
    types = carry_types + [tensor_type(t) for t in stack_types]
    c0, c1, cT = fe.index_const(0), fe.index_const(1), fe.index_const(length)
    last = fe.index_const(length - 1) if a.get("reverse") else None
    iv = fe.fresh("i")
    step = fe.fresh("t") if last else iv
    seq_slices = [_slice_operands(fe, g[i].type, axis, step) for i in seq_ids]
    stack_slices = [_slice_operands(fe, t, axis, step) for t in stack_types]
    iter_args = [fe.fresh("carry") for _ in range(nc)] + [fe.fresh("stack") for _ in stack_types]

    # the region: this step's index and inputs, the body, the stacked outputs' updates
    pad = fe.ind * 3
    region: list[str] = []
    if last:
        region.append(f"{pad}{step} = arith.subi {last}, {iv} : index{fe.loc(n)}")
    xs = []
    for s, i, sl, arg in zip(seqs, seq_ids, seq_slices, body.args[nc:nc + ns]):
        x = fe.fresh(f"x_{arg.attr['name']}")
        region.append(f"{pad}{x} = tensor.extract_slice {s}{sl} : {tensor_type(g[i].type)} to "
                      f"{tensor_type(arg.type)}{fe.loc(n)}")
        xs.append(x)
    for arg, v in zip(body.args, iter_args[:nc] + xs + invariants):
        sub.val[arg.id] = v
    sub.bind_symbols()
    for d, src in fe.symbol_src.items():
        sub.symbol_src.setdefault(d, src)        # symbols only the enclosing function binds
    sub.emit_nodes()
    results = [sub.tensor(i) for i in outs]
    region += [fe.ind + line for line in sub.lines]
    yields = results[:nc]
    for y, i, acc, t, sl in zip(results[nc:], outs[nc:], iter_args[nc:], stack_types, stack_slices):
        new = fe.fresh("stacked")
        region.append(f"{pad}{new} = tensor.insert_slice {y} into {acc}{sl} : "
                      f"{tensor_type(body[i].type)} into {tensor_type(t)}{fe.loc(n)}")
        yields.append(new)
    region.append(f"{pad}scf.yield {', '.join(yields)} : {', '.join(types)}")

    res = fe.fresh(f"loop{fe.printed[n.id]}")
    fe.comment(f"%{fe.printed[n.id]} scan over {length} steps{' (reverse)' if last else ''}: "
               f"{nc} carries, {len(stacks)} stacked outputs")
    head = f"{res}:{len(types)}" if len(types) > 1 else res
    binds = ", ".join(f"{x} = {v}" for x, v in zip(iter_args, inits))
    fe.emit(f"{head} = scf.for {iv} = {c0} to {cT} step {c1} iter_args({binds}) -> ({', '.join(types)}) {{")
    fe.lines.extend(region)
    fe.emit("}", n)
    slot = {k: pos for pos, k in enumerate(kept)}
    for u in readers:
        fe.val[u.id] = res if len(types) == 1 else f"{res}#{slot[u.attr['index']]}"
    return res


def scan_result(fe: FunctionEmitter, n: Node) -> str:
    """scan_out: the loop's result, named when its scan was emitted."""
    return fe.val[n.id]


def _cast(fe: FunctionEmitter, v: str, src: str, dst: str, n: Node) -> str:
    """A carry's initial value with exactly the body's type (static and `?` sizes can differ)."""
    if src == dst:
        return v
    name = fe.fresh("init")
    fe.emit(f"{name} = tensor.cast {v} : {src} to {dst}", n)
    return name


def _body_emitter(fe: FunctionEmitter, body: Graph, n: Node) -> FunctionEmitter:
    """An emitter for the body's nodes that writes into the loop's region: it shares the
    function's SSA names (one scope: scf.for is not isolated from above), and its values are
    named after the scan (`%l5.12`: body node %12 of scan %5), reserved up front."""
    from ...passes.expand_fused import expand_fused
    sub = type(fe)(loops_or_unrolls(expand_fused(body)), fe.fn_name, indent=fe.ind, precision=fe.precision)
    sub.taken = fe.taken
    tag = fe.printed[n.id]
    sub.printed = {i: fe.fresh(f"l{tag}.{k}")[1:] for i, k in sub.printed.items()}
    return sub


LOOP_RULES = {"scan": scan_loop, "scan_out": scan_result}
