"""The numpy backend's fast path for a `scan`: the whole loop generated as one function,
every result of the body computed `out=` into a buffer allocated once per call.

loop.run_scan calls the compiled body once per step; the body allocates each result and the
driver copies each per-step output into its stack. A recurrent step is a handful of tiny
ops ([32, 16] gates in bench case G) where a numpy call costs more than its arithmetic, so
the call of the body, its allocations and those copies are a good part of the step. Here:

- a carry lives in a [T+1, B, N] stack whose rows t and t+1 are what goes into and comes
  out of step t (t+1 and t in reverse): its op writes the next row, nothing is copied, and
  a body that also outputs the carry going in (the state a VJP reads) gets a view of it;
- a stacked output is computed into its row of a [T, B, N] stack;
- every other value has a buffer of its own, allocated before the loop;
- sigmoid is written out (rules.PRELUDE's formula, the same calls), with its scratch buffer;
- every constant operand (a scalar const or argument, sigmoid's 1 and sign bit) is a 0-d
  array made once, never a numpy scalar or a Python number, which a ufunc converts anew on
  every call ([32, 64] float32 add: 0.84 us with np.float32(1), 0.54 with 1, 0.32 with
  np.array(1, np.float32)); the values, the results' dtypes and so the bits are the same;
- the stacks are kept across calls in the workspace the calling module passes (`keep`),
  reused while no view of them is held any more: a stack is a few hundred KB (bench G200)
  and fresh memory costs page faults wherever the allocator cannot hand the last call's
  back (two G200 models stepping in turn in one process: 0.72x the step time kept, within
  noise alone); a result still held keeps its buffer, and the call allocates a new one.
  The lists of their rows the loop iterates are kept with them (`rows`): iterating an
  array makes a view of each row on every step, about 40 ns each, 18 a step in G's loops;
- a concat's parts that are binary ops of a value of the step and a sequence each (the
  LSTM VJP's gate gradients times their derivatives) are one call (loopgroups.py).

The same numpy calls on the same elements as the body compiled alone give the same bits. The
stacks are time-major, as run_scan's, returned viewed with the time axis at the scan's
`axis`. A column slice (an LSTM gate of the [B, 4*units] pre-activation) would be copied into
its buffer, as codegen._compact_slices does (numpy runs an op on a column slice row by row),
but a value read only in aligned column blocks is laid out block-major instead, and a concat
of single-use parts has them computed into its blocks (loopblocks.py): the LSTM's loops copy
no slice. Ufuncs and np.dot take their out buffer positionally (~20 ns a call less).

Tried and left out (bench G200, 2 cores): keeping every [B, N] value feature-major ([N, B],
where a gate is a contiguous block of rows and x @ W is W^T @ x^T) saves the strided ops,
but the relayouts of sequences and stacks at the loop's edges cost as much; computing a
concat's operands into its column blocks is slower than the concat (strided writes); the
sigmoid's numerator from x's bits (an int32 shift, or, max: 1.04 vs 1.46 us on [4, 32, 16])
gives other NaN bits where x is a NaN (the tests compare them); a contiguous copy of the VJP's
R^T makes np.dot faster (0.86 vs 1.05 us) but sums in another order (other bits).

The body qualifies when every value is [B, N] with the carries' B (or a scalar, an [N]
vector, or an invariant read only as a product's right-hand side) and every op is
elementwise, a slice or concat along the last axis, or such a product (`plan`); any other
(a GRU's VJP, which sums its bias gradient over the batch) runs in loop.run_scan.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from sys import getrefcount as _refs

import numpy as np

from ...ir.graph import Graph, Node
from ...ir.primitives import ELEMENTWISE_KINDS
from ...sourcetext import loc_text, quote
from .loop import axis_back
from .loopblocks import block_concats, block_major, block_of
from .loopgroups import group_call, product_groups
from .rules import OUT_OPS, np_dtype

# compiled loops, bounded like loop._BODIES (the least recently used dropped first; a dropped
# loop lives on in the modules holding it, and is generated again on next use)
MAX_LOOPS = 256
_LOOPS: OrderedDict[tuple, object] = OrderedDict()


@dataclass
class Plan:
    """What each body value is: `row` a [B, N] value with the carries' B (its own buffer, or
    its row of a stack), `vec` an [N] invariant, `scalar`, `rhs` an invariant read only as a
    product's right-hand side, `rhs_t` its transpose."""
    batch: object
    kind: dict[int, str] = field(default_factory=dict)


def _is_row(n: Node, batch) -> bool:
    return len(n.shape) == 2 and n.shape[0] == batch and isinstance(n.shape[1], int)


def plan(body: Graph, n_carry: int, n_seq: int) -> Plan | None:
    """The layout of every body value, or None when the body does not qualify."""
    args = body.args
    if n_carry < 1 or len(args[0].shape) != 2 or any(n.dtype not in ("f32", "f64") for n in args[:n_carry]):
        return None
    p = Plan(args[0].shape[0])
    users = body.users()
    for k, a in enumerate(args):
        if k < n_carry + n_seq:
            if not _is_row(a, p.batch):
                return None
            p.kind[a.id] = "row"
        elif len(a.shape) == 2 and users[a.id] and all(_reads_as_rhs(body, u, a.id) for u in users[a.id]):
            p.kind[a.id] = "rhs"
        elif _is_row(a, p.batch):
            p.kind[a.id] = "row"
        elif len(a.shape) <= 1:
            p.kind[a.id] = "vec" if a.shape else "scalar"
        else:
            return None
    for n in body.nodes:
        if n.op != "arg":
            kind = _kind(n, [p.kind.get(i) for i in n.inputs], p.batch)
            if kind is None:
                return None
            p.kind[n.id] = kind
    outputs = [i for _, i in body.outputs]
    if any(p.kind[i] != "row" for i in outputs):
        return None
    if any(body[i].type != a.type for i, a in zip(outputs[:n_carry], args[:n_carry])):
        return None
    return p


def _kind(n: Node, kinds: list, batch) -> str | None:
    rows = ("row",)
    if n.op == "const":
        return "scalar" if not n.shape else None
    if n.op == "transpose":
        return "rhs_t" if kinds == ["rhs"] and tuple(n.attr["perm"]) == (1, 0) else None
    if not _is_row(n, batch):
        return None
    if n.op == "matmul":
        return "row" if kinds[0] in rows and kinds[1] in ("rhs", "rhs_t") else None
    if n.op == "slice":
        a = n.attr
        whole_rows = len(a["start"]) == 2 and not a["start"][0] and a["stop"][0] is None
        return "row" if kinds[0] in rows and whole_rows and tuple(a["step"]) == (1, 1) else None
    if n.op == "concat":
        return "row" if n.attr["axis"] in (1, -1) and all(k in rows for k in kinds) else None
    if n.op in OUT_OPS and n.prim.kind in ELEMENTWISE_KINDS and all(k in rows + ("vec", "scalar") for k in kinds):
        return "row"
    return None


def _reads_as_rhs(body: Graph, user: int, arg: int) -> bool:
    u = body[user]
    if u.op == "matmul":
        return u.inputs[1] == arg and u.inputs[0] != arg
    return u.op == "transpose" and tuple(u.attr["perm"]) == (1, 0)


def generate(body: Graph, n_carry: int, n_seq: int, p: Plan, fn_name: str = "loop") -> str:
    """Python source of `fn_name(axis, length, reverse, *operands)`, returning what
    loop.run_scan returns: the final carries, then each stacked output along `axis`."""
    from .rules import PRELUDE
    args = body.args
    outputs = [i for _, i in body.outputs]
    setup = ["    B = a0.shape[0]", "    T = length"]
    name: dict[int, str] = {}
    for k, a in enumerate(args):
        name[a.id] = f"c{k}" if k < n_carry else f"x{k}" if k < n_carry + n_seq else f"a{k}"
    for k, a in enumerate(args[:n_carry]):
        setup.append(f"    C{k} = _keep(_ws, 'C{k}', (T + 1, B, {a.shape[1]}), {np_dtype(a)})  # carry {k}")
        setup.append(f"    np.copyto(C{k}[T if reverse else 0], a{k})")
    for k in range(n_carry, n_carry + n_seq):
        setup.append(f"    X{k} = _time_major(a{k}, axis)")
    for k, a in enumerate(args):
        if p.kind[a.id] == "scalar":           # 0-d: see the module docstring
            setup.append(f"    a{k} = np.asarray(a{k}, {np_dtype(a)})")

    # home: the row of a stack that a node's op writes into; stack: that stack over the steps
    home: dict[int, str] = {}
    stack: dict[int, str] = {}
    ones: set[str] = set()                      # the sigmoids' 0-d ones, one per dtype
    users = body.users()
    bm = block_major(body, p.kind, set(outputs))     # id -> (k, w): laid out [k, B, w] (loopblocks)

    def fresh(i: int) -> bool:
        return body[i].op != "arg" and i not in home
    for k, i in enumerate(outputs[:n_carry]):
        if fresh(i):
            home[i], stack[i] = f"C{k}[OUT]", f"(C{k}[:-1] if reverse else C{k}[1:])"
    for k, a in enumerate(args[:n_carry]):
        stack[a.id] = f"(C{k}[1:] if reverse else C{k}[:-1])"
    copies = [(i, f"C{k}[OUT]") for k, i in enumerate(outputs[:n_carry]) if home.get(i) != f"C{k}[OUT]"]
    # a block-major value whose blocks are stacked outputs lives in a [T, k, B, w] stack, and
    # those outputs are views of its blocks
    views: dict[int, str] = {}                  # a slice of a block-major value -> its view's name
    for j, i in enumerate(outputs[n_carry:]):
        src = body[i].inputs[0] if body[i].op == "slice" else None
        if i not in stack and src in bm and fresh(i):
            k, w = bm[src]
            if f"G{src}" not in home.get(src, ""):
                setup.append(f"    G{src} = _keep(_ws, 'G{src}', (T, {k}, B, {w}), {np_dtype(body[src])})  # %{src}, "
                             f"block-major: its blocks are stacked outputs")
                home[src], stack[src] = f"G{src}[t]", f"G{src}"
            b = block_of(body[i], w)
            setup.append(f"    G{src}_{b} = G{src}[:, {b}]  # stacked output {j}")
            stack[i], views[i] = f"G{src}_{b}", f"G{src}_{b}[t]"
    for j, i in enumerate(outputs[n_carry:]):
        if i not in stack:
            setup.append(f"    S{j} = _keep(_ws, 'S{j}', (T, B, {body[i].shape[1]}), {np_dtype(body[i])})  # stacked output {j}")
            if fresh(i):
                home[i] = f"S{j}[t]"
            else:
                copies.append((i, f"S{j}[t]"))
            stack[i] = f"S{j}"

    step = [f"c{k} = C{k}[IN]" if k < n_carry else f"x{k} = X{k}[t]" for k in range(n_carry + n_seq)]
    blocks = block_concats(body, p.kind, set(outputs) | set(home) | set(bm))
    for c, parts in blocks.items():
        k, width = len(parts), body[parts[0]].shape[1]
        setup.append(f"    g{c} = np.empty(({k}, B, {width}), {np_dtype(body[c])})  # %{c} concat's parts, "
                     f"block by block")
        setup.append(f"    g{c}t = g{c}.transpose(1, 0, 2)")
    part_of = {i: f"g{c}[{j}]" for c, parts in blocks.items() for j, i in enumerate(parts)}
    # grouped calls (loopgroups.py): a pair group's other operands computed into the blocks
    # of P{c}, its sequences (and a shared group's) stacked once a call
    seq_ids = [a.id for a in args[n_carry:n_carry + n_seq]]
    groups = product_groups(body, p.kind, seq_ids, blocks,
                            set(outputs) | set(home) | set(bm) | set(part_of) | {a.id for a in args})
    position = {n.id: k for k, n in enumerate(body.nodes)}
    anchor: dict[int, int] = {}                 # member -> its group's index, at the one computing it
    grouped: set[int] = set()
    for q, g in enumerate(groups):
        anchor[max(g.members, key=position.get)] = q      # after every L_j is computed
        grouped.update(g.members)
        k, w, dtype = len(g.members), body[g.members[0]].shape[1], np_dtype(body[g.members[0]])
        stacked_seqs = ", ".join(f"a{n_carry + j}" for j in g.seqs)
        setup.append(f"    D{q} = _stack_seqs(_keep(_ws, 'D{q}', (T, {k}, B, {w}), {dtype}), axis, {stacked_seqs})"
                     f"  # grouped call {q}: its sequences")
        step.insert(0, f"d{q} = D{q}[t]")
        setup.append(f"    {g.lhs} = np.empty(({k}, B, {w}), {dtype})  # the other operands of grouped call {q}")
        for j, i in enumerate(g.members):
            part_of[body[i].inputs[1 - g.seq_at]] = f"{g.lhs}[{j}]"
    block_views: dict[tuple, str] = {}

    def in_blocks(i: int, k: int, w: int) -> str:
        """Operand i of a block-major op, as [k, B, w]."""
        if i in bm or p.kind[i] == "scalar":
            return name[i]
        if (i, k, w) in block_views:
            return block_views[i, k, w]
        v = f"{name[i]}b{w}"
        at = re.fullmatch(r"(\w+)\[(t|IN|OUT)\]", home.get(i, ""))
        j = next((j for j, a in enumerate(args) if a.id == i), None)
        if j is not None and n_carry <= j < n_carry + n_seq:     # a sequence: relaid out once a call
            setup.append(f"    X{j}b{w} = _in_blocks(a{j}, axis, {k}, {w})")
            step.insert(0, f"{v} = X{j}b{w}[t]")
        elif j is not None and j < n_carry:                     # a carry: read through its stack's view
            setup.append(f"    C{j}b{w} = C{j}.reshape(T + 1, B, {k}, {w}).transpose(0, 2, 1, 3)")
            step.insert(0, f"{v} = C{j}b{w}[IN]")
        elif at:                                             # a row of a stack
            base = at.group(1)
            setup.append(f"    {base}b{w} = {base}.reshape({base}.shape[:-1] + ({k}, {w})).swapaxes(-3, -2)")
            step.append(f"{v} = {base}b{w}[{at.group(2)}]")
        else:                                                # a buffer of its own (or an invariant)
            setup.append(f"    {v} = {name[i]}.reshape(B, {k}, {w}).transpose(1, 0, 2)")
        block_views[i, k, w] = v
        return v

    for n in body.nodes:
        if n.op == "arg":
            continue
        v, kind = f"v{n.id}", p.kind[n.id]
        name[n.id] = v
        where = f"  {loc_text(n.loc)}" if n.loc else ""
        ops = [name[i] for i in n.inputs]
        if kind == "scalar":     # 0-d: see the module docstring
            setup.append(f"    {v} = np.array({n.attr['value']!r}, {np_dtype(n)})")
            continue
        if kind == "rhs_t":
            setup.append(f"    {v} = {ops[0]}.T")
            continue
        src = n.inputs[0] if n.op == "slice" and n.inputs[0] in bm else None
        if src is not None:     # a block of a block-major value: a view, or copied where it must be
            b = block_of(n, bm[src][1])
            if n.id in views:
                step.append(f"{v} = {views[n.id]}")
            elif n.id in home or n.id in part_of:
                if n.id in home:
                    step.append(f"{v} = {home[n.id]}")
                else:
                    setup.append(f"    {v} = {part_of[n.id]}")
                step.append(f"np.copyto({v}, {name[src]}[{b}])  # %{n.id} slice, block {b} of %{src}{where}")
            elif src in home:
                setup.append(f"    G{src}_{b} = G{src}[:, {b}]")
                step.append(f"{v} = G{src}_{b}[t]")
            else:
                setup.append(f"    {v} = {name[src]}[{b}]  # %{n.id} slice, block {b} of %{src}")
            continue
        shape = f"({bm[n.id][0]}, B, {bm[n.id][1]})" if n.id in bm else f"(B, {n.shape[1]})"
        if n.id in home:
            step.append(f"{v} = {home[n.id]}")
        elif n.id in part_of:
            setup.append(f"    {v} = {part_of[n.id]}")
        else:
            setup.append(f"    {v} = np.empty({shape}, {np_dtype(n)})" + ("  # block-major" if n.id in bm else ""))
        if n.id in grouped:         # computed by its group's one call
            if n.id in anchor:
                q = anchor[n.id]
                names = ", ".join(f"%{i}" for i in groups[q].members)
                step.append(f"{group_call(groups[q], f'd{q}')}  # {names} {n.op}, grouped{where}")
            continue
        entry = None
        if n.id in bm and any(i in bm for i in n.inputs):
            ops = [in_blocks(i, *bm[n.id]) for i in n.inputs]
        elif n.id in bm:    # its operands are rows: computed as a row, then copied into its blocks
            k, w = bm[n.id]
            entry, v, shape = v, f"r{n.id}", f"(B, {n.shape[1]})"
            setup.append(f"    {v} = np.empty({shape}, {np_dtype(n)})  # %{n.id} as a row, before its blocks")
            setup.append(f"    {v}b = {v}.reshape(B, {k}, {w}).transpose(1, 0, 2)")
        if n.id in blocks:      # the parts are in g's blocks already: one copy, [k, B, w] -> [B, k, w]
            k, width = len(blocks[n.id]), n.shape[1] // len(blocks[n.id])
            at = re.fullmatch(r"(\w+)\[(t|IN|OUT)\]", home.get(n.id, ""))
            if at:
                setup.append(f"    {at.group(1)}q{n.id} = {at.group(1)}.reshape({at.group(1)}.shape[:-1] + ({k}, {width}))")
                step.append(f"{v}q = {at.group(1)}q{n.id}[{at.group(2)}]")
            else:
                setup.append(f"    {v}q = {v}.reshape(B, {k}, {width})")
            step.append(f"np.copyto({v}q, g{n.id}t)  # %{n.id} concat{where}")
            continue
        if n.op == "sigmoid":
            setup.append(f"    n{n.id} = np.empty({shape}, {np_dtype(n)})  # its numerator")
            one = f"one_{n.dtype}"
            if one not in ones:
                ones.add(one)
                setup.append(f"    {one} = np.array(1, {np_dtype(n)})  # 0-d: see the module docstring")
            bits = None
            x = n.inputs[0]
            fixed_x = x not in home and body[x].op != "arg"
            in_stack = entry is None and home.get(n.id) == f"G{n.id}[t]"
            if fixed_x and n.dtype in _BITS and (entry is not None or n.id not in home or in_stack):
                bits = (f"u{n.id}x", f"u{n.id}", f"m{n.id}")      # x's buffer is fixed: its bits viewed once
                uint, sign = _BITS[n.dtype]
                if in_stack:            # out is a row of its block stack: its bits, a row of the stack's
                    setup.append(f"    u{n.id}x, G{n.id}u, m{n.id} = {ops[0]}.view(np.{uint}), "
                                 f"G{n.id}.view(np.{uint}), np.array({sign}, np.{uint})  # the bits of x and of "
                                 f"out, the sign bit")
                    step.append(f"u{n.id} = G{n.id}u[t]")
                else:
                    setup.append(f"    {', '.join(bits)} = {ops[0]}.view(np.{uint}), {v}.view(np.{uint}), "
                                 f"np.array({sign}, np.{uint})  # the bits of x and of out, the sign bit")
            step.extend(f"{line}  # %{n.id} sigmoid{where}" for line in _sigmoid(ops[0], v, f"n{n.id}", bits, one))
        else:
            step.append(f"{_op(n, ops, v)}  # %{n.id} {n.op}{where}")
        if entry is not None:
            step.append(f"np.copyto({entry}, {v}b)  # %{n.id} into its blocks")
    for k, (i, slot) in enumerate(copies):     # outputs no op could write: an argument, a repeat
        step += [f"o{k} = {slot}", f"np.copyto(o{k}, {name[i]})"]
    # a sequence or carry read only in blocks: no row of it named per step, no time-major copy
    bound = [re.fullmatch(r"(\w+) = (\w+)\[(t|IN|OUT)\]", line) for line in step]
    words = {w for line, b in zip(step, bound) if not b for w in re.findall(r"\w+", line)}
    step = [line for line, b in zip(step, bound) if not b or b.group(1) in words]
    words |= {w for line in step for w in re.findall(r"\w+", line)}
    setup = [line for line in setup if not re.fullmatch(r"    (X\d+) = _time_major\(.*", line)
             or line.split()[0] in words]
    # numpy's functions as locals: a global and an attribute lookup less per call
    used = sorted({f for line in step for f in re.findall(r"\bnp\.(\w+)\(", line)})
    setup.extend(f"    _{f} = np.{f}" for f in used)
    step = [re.sub(r"\bnp\.(\w+)\(", r"_\1(", line) for line in step]
    # a ufunc's (and np.dot's) out buffer passed positionally: the keyword costs ~20 ns a call,
    # 2% of a step of [32, 16] ops (not for maximum/minimum, which deprecate a third positional)
    step = [re.sub(r"^(_(\w+)\(.*), out=(\w+)\)", lambda m: f"{m.group(1)}, {m.group(3)})"
                   if m.group(2) in _POSITIONAL_OUT else m.group(0), line) for line in step]
    results = [f"C{k}[0 if reverse else T]" for k in range(n_carry)]
    results += [f"_stacked({stack[i]}, axis)" for i in outputs[n_carry:]]

    # Each step's rows of the stacks and sequences come from iterating them, in C, not from
    # indexing each one in Python: `c0 = C0[IN]` becomes a name of the loop's zip.
    binds = [re.fullmatch(r"(\w+) = (\w+)\[(t|IN|OUT)\]", line) for line in step]
    names = [b.group(1) for b in binds if b]
    body_lines = ["            " + line for line, b in zip(step, binds) if not b]
    rows = {False: {"t": "{}", "IN": "{}[:-1]", "OUT": "{}[1:]"},
            True: {"t": "{}[::-1]", "IN": "{}[:0:-1]", "OUT": "{}[-2::-1]"}}

    def loop(reverse: bool) -> list[str]:
        its = [rows[reverse][b.group(3)].format(b.group(2)) for b in binds if b]
        # a kept stack's rows (or a view's of it) are listed once and kept with it (`rows`)
        its = [f"_rows(_ws, {m.group(1)!r}, {it!r}, {it})" if (m := re.match(r"([CGSD]\d+)(?!\d)", it)) else it
               for it in its]
        return [f"        for {', '.join(names)}, in zip({', '.join(its)}):", *body_lines]
    source = [PRELUDE, "from nncompiler.backends.numpy.loopgen import keep as _keep, rows as _rows, stacked as _stacked",
              "from nncompiler.backends.numpy.loop import time_major as _time_major",
              "from nncompiler.backends.numpy.loopblocks import in_blocks as _in_blocks",
              "from nncompiler.backends.numpy.loopgroups import stack_seqs as _stack_seqs", "",
              f"def {fn_name}(axis, length, reverse, {', '.join(f'a{k}' for k in range(len(args)))}, _ws=None):",
              f"    # the scan of {quote(body.name)} (nncompiler/backends/numpy/loopgen.py)",
              *setup,
              "    if reverse:   # t = T-1 .. 0: a carry goes in from row t+1 and out to row t", *loop(True),
              "    else:", *loop(False),
              f"    return ({''.join(r + ', ' for r in results)})"]
    return "\n".join(source) + "\n"


_BITS = {"f32": ("uint32", "0x80000000"), "f64": ("uint64", "0x8000000000000000")}
_POSITIONAL_OUT = {f for f in dir(np) if isinstance(getattr(np, f), np.ufunc)} - {"maximum", "minimum"} | {"dot"}




def _sigmoid(x: str, out: str, num: str, bits, one: str = "1") -> list[str]:
    """rules.PRELUDE's _sigmoid, (x >= 0 ? 1 : e) / (1 + e) with e = exp(-|x|) and the
    numerator max(sign(x), e), written out with its scratch buffer: the same bits, without
    the helper's call, checks and allocation once per step. With `bits` (names of x's and
    out's bits viewed as unsigned integers, and of the sign bit), -|x| is one call setting
    the sign bit, which is what abs then negative compute, NaNs included."""
    if bits:
        neg_abs = [f"np.bitwise_or({bits[0]}, {bits[2]}, out={bits[1]})"]
    else:
        neg_abs = [f"np.abs({x}, out={out})", f"np.negative({out}, out={out})"]
    return [f"np.sign({x}, out={num})", *neg_abs, f"np.exp({out}, out={out})",
            f"np.maximum({num}, {out}, out={num})", f"np.add({out}, {one}, out={out})",
            f"np.divide({num}, {out}, out={out})"]


def _op(n: Node, ops: list[str], v: str) -> str:
    if n.op == "matmul":     # np.dot: the same sgemm call as np.matmul for 2-d operands, less overhead
        return f"np.dot({ops[0]}, {ops[1]}, out={v})"
    if n.op == "concat":
        return f"np.concatenate([{', '.join(ops)}], axis=1, out={v})"
    if n.op == "slice":     # copied: numpy runs ops on a column slice row by row, ~3x slower
        a = n.attr
        return f"np.copyto({v}, {ops[0]}[:, {a['start'][1] or ''}:{'' if a['stop'][1] is None else a['stop'][1]}])"
    return OUT_OPS[n.op](ops, v)


def keep(ws: dict | None, key: str, shape: tuple, dtype):
    """The loop's stack `key`: last call's buffer when `ws` (the calling module's workspace
    for this scan) holds one of this shape that nobody else references any more (no view of
    it returned to a caller and still held), else a new one, kept for the next call (see the
    module docstring), with no rows listed yet (`rows`). A key's dtype is fixed by the code
    calling it (`ws` is one scan's, and a scan always runs the same loop)."""
    if ws is None:
        return np.empty(shape, dtype)
    a = ws.get(key)
    # references: ws's, this local, getrefcount's argument, and one per row view listed
    # with it (a view's base is the array owning the memory); any other is a view still held
    if a is None or a.shape != shape or _refs(a) > ws[key + ":refs"]:
        a = ws[key] = np.empty(shape, dtype)
        ws[key + ":rows"], ws[key + ":refs"] = {}, 3
    return a


def rows(ws: dict | None, key: str, name: str, view):
    """The rows of `view` (named `name`, e.g. `C0[:-1]`), a view of the kept stack `key`, as
    a list made once and kept with the stack: a loop iterating the stack would make a view
    of each row on every step (about 40 ns each, a dozen a step in an LSTM's loops)."""
    if ws is None:
        return view
    listed = ws[key + ":rows"]
    r = listed.get(name)
    if r is None:
        r = listed[name] = list(view)
        ws[key + ":refs"] += len(r)
    return r


def stacked(stack, axis: int):
    """A time-major [T, B, N] stack viewed with the time axis at `axis`."""
    return axis_back(stack, axis) if axis else stack


def qualifies(body: Graph, n_carry: int, n_seq: int, precision: str = "fp32") -> bool:
    """Whether loop_function compiles this body (tf32/bf16 products keep run_scan's rounding calls)."""
    return precision == "fp32" and plan(body, n_carry, n_seq) is not None


def loop_function(text: str, n_carry: int, n_seq: int):
    """The compiled loop of a body given by its text form (cached: a module is imported once
    per compile, and the same text always compiles to the same code)."""
    key = (text, n_carry, n_seq)
    if key not in _LOOPS:
        import linecache
        from ...ir.text import parse_graph
        body = parse_graph(text, "<scan body>")
        source = generate(body, n_carry, n_seq, plan(body, n_carry, n_seq))
        filename = f"<nnc-numpy-loop:{body.name}:{abs(hash(source)):x}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        namespace: dict = {}
        exec(compile(source, filename, "exec"), namespace)
        _LOOPS[key] = namespace["loop"]
        while len(_LOOPS) > MAX_LOOPS:
            _LOOPS.popitem(last=False)
    _LOOPS.move_to_end(key)
    return _LOOPS[key]
