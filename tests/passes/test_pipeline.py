"""The pipeline: fixed point, records, and values preserved on random graphs."""
import re
import importlib
import sys
from textwrap import dedent

import numpy as np
import pytest

from nncompiler.backends.numpy import evaluate
from nncompiler.errors import ShapeError
from nncompiler.ir import Builder, Graph, TensorType, parse_graph, print_graph
from nncompiler.passes import (DEFAULT_PASSES, PASSES, PassRecord, cse, dce, fold, format_records,
                               optimize, run_pass, simplify)

SRC = dedent("""\
    graph g(%x: f32[B,4] input, %w: f32[4,4] param, %unused: f32[2] input) {
      %0 = const() {value=0.5} : f32[]
      %1 = const() {value=2.0} : f32[]
      %2 = mul(%0, %1) : f32[]
      %3 = mul(%x, %2) : f32[B,4]
      %4 = const() {value=0.0} : f32[]
      %5 = add(%3, %4) : f32[B,4]
      %6 = matmul(%5, %w) : f32[B,4]
      %7 = matmul(%x, %w) : f32[B,4]
      %8 = transpose(%w) {perm=[1, 0]} : f32[4,4]
      %9 = transpose(%8) {perm=[1, 0]} : f32[4,4]
      %10 = matmul(%x, %9) : f32[B,4]
      %11 = add(%6, %10) : f32[B,4]
      %12 = add(%10, %7) : f32[B,4]
      %13 = exp(%12) : f32[B,4]
      return a=%11, b=%13
    }""")


def test_reaches_the_expected_fixed_point():
    g = parse_graph(SRC)
    out, records = optimize(g)
    assert print_graph(out, with_locs=False) == dedent("""\
        graph g(%x: f32[B,4] input, %w: f32[4,4] param, %unused: f32[2] input) {
          %0 = matmul(%x, %w) : f32[B,4]
          %1 = add(%0, %0) : f32[B,4]
          %2 = exp(%1) : f32[B,4]
          return a=%1, b=%2
        }""")
    # the last round changed nothing, and running again changes nothing either
    last = records[-len(DEFAULT_PASSES):]
    assert [r.name for r in last] == ["decompose", "fold", "simplify", "pads_to_concat", "merge_slices", "cse", "dce",
                                      "scan_accumulate", "scan_hoist",
             "scan_prune", "bodies"]
    assert not any(r.changed for r in last)
    again, records2 = optimize(out)
    assert again is out and len(records2) == len(DEFAULT_PASSES) and not any(r.changed for r in records2)


def test_pow_by_a_constant_is_decomposed_even_when_fold_makes_the_constant():
    # simplify has no pow rules (decompose owns them); an exponent that only fold turns into
    # a constant is still rewritten, by decompose in the next round.
    g = parse_graph(dedent("""
        graph g(%x: f32[3] input) {
          %0 = const() {value=1.0} : f32[]
          %1 = add(%0, %0) : f32[]
          %2 = pow(%x, %1) : f32[3]
          %3 = pow(%x, %0) : f32[3]
          return a=%2, b=%3
        }"""))
    out, records = optimize(g)
    assert print_graph(out, with_locs=False) == dedent("""\
        graph g(%x: f32[3] input) {
          %0 = mul(%x, %x) : f32[3]
          return a=%0, b=%x
        }""")
    assert any("pow(x, 2) -> x * x" in c for r in records if r.name == "decompose" for c in r.changes)


def test_records_name_the_changes():
    _, records = optimize(parse_graph(SRC))
    changes = {r.name: r.changes for r in records[:len(DEFAULT_PASSES)]}
    assert changes["fold"] == ["folded %2 mul of constants"]
    assert "replaced %3 mul(x, 1) by %x" in changes["simplify"]
    assert "replaced %5 add(x, 0) by %x" in changes["simplify"]
    assert "replaced %9 transpose(transpose(x)) by %w" in changes["simplify"]
    assert any(c.startswith("merged ") for c in changes["cse"])
    assert all(c.endswith("(unused)") for c in changes["dce"]) and changes["dce"]
    first = records[0]
    assert (first.nodes_before, first.nodes_after) == (17, 17) and first.ms >= 0


def test_format_records():
    records = [PassRecord("fold", 42, 38, ["a", "b", "c", "d"], 0.31),
               PassRecord("dce", 38, 38, [], 0.04)]
    assert format_records(records) == ("fold: 42 -> 38 nodes (4 changes, 0.3 ms)\n"
                                       "dce: 38 -> 38 nodes (0 changes, 0.0 ms)")
    verbose = format_records(records[:1], verbose=True).splitlines()
    assert verbose[1:] == ["  a", "  b", "  c", "  d"]
    _, real = optimize(parse_graph(SRC))
    for line in format_records(real).splitlines():
        assert re.fullmatch(r"\w+: \d+ -> \d+ nodes \(\d+ changes, \d+\.\d ms\)", line)


def test_pass_table_runs_passes_one_by_one():
    names = ["decompose", "fold", "simplify", "pads_to_concat", "merge_slices", "cse", "dce", "scan_accumulate", "scan_hoist",
             "scan_prune", "bodies"]
    assert [n for n, _ in DEFAULT_PASSES] == names
    assert list(PASSES) == names + ["unroll"]   # unroll is run by backends and the front end, on demand
    assert PASSES["cse"] is cse and PASSES["dce"] is dce
    assert PASSES["fold"] is fold and PASSES["simplify"] is simplify
    g = parse_graph(SRC)
    for name in ("fold", "simplify", "cse", "dce"):
        g, record = run_pass(g, name)
        assert record.name == name
    with pytest.raises(KeyError, match="unknown pass 'nope'"):
        run_pass(g, "nope")
    # passes given by name, a subset
    out, records = optimize(parse_graph(SRC), passes=["dce"])
    assert [r.name for r in records] == ["dce"]  # nothing dead: one quiet round


def test_verifier_runs_after_each_pass():
    def broken(g: Graph):
        bad = tuple(n if n.op != "exp" else type(n)(n.id, "exp", n.inputs, n.attrs,
                                                    TensorType("f64", n.shape)) for n in g.nodes)
        out = Graph(g.name, bad, g.outputs)
        return out, PassRecord.of("broken", g, out, ["broke exp"], 0.0)
    with pytest.raises(ShapeError, match="exp"):
        optimize(parse_graph(SRC), passes=[("broken", broken)])


def test_stops_after_max_rounds():
    def always(g: Graph):
        return g, PassRecord.of("always", g, g, ["did something"], 0.0)
    _, records = optimize(parse_graph(SRC), passes=[("always", always)], max_rounds=3)
    assert len(records) == 3


def test_submodules_import_in_any_order():
    # pass modules import PassRecord from pipeline, which imports them: check no order breaks
    saved = {k: v for k, v in sys.modules.items() if k.startswith("nncompiler.passes")}
    try:
        for mod in ("dce", "cse", "decompose", "fold", "simplify", "pads", "pipeline"):
            for k in saved:
                sys.modules.pop(k, None)
            importlib.import_module(f"nncompiler.passes.{mod}")
    finally:
        sys.modules.update(saved)


# ---- values are preserved -------------------------------------------------------

def random_graph(seed: int, n_ops: int = 30) -> Graph:
    """Random float32 graph over x: [3,4], y: [4] and small constants, biased towards
    the patterns the passes rewrite (identity constants, duplicates, movement pairs)."""
    rng = np.random.default_rng(seed)
    b = Builder(f"rand{seed}")
    pool = [b.argument("x", "input", TensorType("f32", (3, 4))),
            b.argument("y", "input", TensorType("f32", (4,)))]
    consts = [b.scalar(v) for v in (0.0, 1.0, -1.0, 2.0, 0.5)]
    consts.append(b.constant(np.asarray(rng.standard_normal(4), np.float32).tolist(), "f32", (4,)))
    consts.append(b.constant([[1.0] * 4] * 3, "f32", (3, 4)))
    pick = lambda seq: seq[rng.integers(len(seq))]  # noqa: E731
    for _ in range(n_ops):
        x = pick(pool)
        other = pick(pool + consts)
        if rng.random() < 0.3:  # constant-only expressions, for fold
            x = pick(consts)
        kind = rng.integers(9)
        if kind == 0:
            new = b.emit(pick(["exp", "tanh", "sigmoid", "neg", "abs", "stop_gradient"]), (x,))
        elif kind in (1, 2, 3):
            op = pick(["add", "sub", "mul", "maximum", "minimum", "div"])
            new = b.emit(op, (x, other) if rng.random() < 0.5 else (other, x))
        elif kind == 4:
            new = b.pow(x, pick(consts[1:4]))
        elif kind == 5:
            t = b.transpose(b.broadcast_to(x, shape=[3, 4]), perm=[1, 0])
            new = b.transpose(t, perm=[1, 0])
        elif kind == 6:
            flat = b.reshape(x, shape=[int(np.prod(b.shape(x), dtype=int))])
            new = b.reshape(flat, shape=list(b.shape(x)))
        elif kind == 7:
            axes = pick([[], [0], [0, 1]]) if b.type_of(x).rank == 2 else []
            new = b.sum(x, axes=axes)
        elif b.nodes[x].op == "arg":
            new = b.cast(x, dtype="f32")
        else:  # a duplicate, for cse
            new = b.emit(b.nodes[x].op, b.nodes[x].inputs, **dict(b.nodes[x].attrs))
        pool.append(new)
    outs = {f"o{i}": v for i, v in enumerate(pool[-6:])}
    return b.build(outs)


@pytest.mark.parametrize("seed", range(25))
def test_optimized_graph_computes_the_same_values(seed):
    g = random_graph(seed)
    out, records = optimize(g)
    assert any(r.changed for r in records)
    assert not any(r.changed for r in records[-len(DEFAULT_PASSES):])  # fixed point reached within 10 rounds
    rng = np.random.default_rng(100 + seed)
    args = {"x": rng.standard_normal((3, 4)).astype(np.float32),
            "y": rng.standard_normal(4).astype(np.float32)}
    with np.errstate(all="ignore"):
        want, got = evaluate(g, args), evaluate(out, args)
    for k in want:
        assert want[k].shape == got[k].shape and want[k].dtype == got[k].dtype, k
        # bit-identical up to the documented ulp of pow(x, array of 2s) -> x*x
        np.testing.assert_allclose(got[k], want[k], rtol=2e-7, atol=0, err_msg=k)
