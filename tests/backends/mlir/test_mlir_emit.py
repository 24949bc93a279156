"""The MLIR text: upstream dialects only, dynamic batch dims, fused generics, locations.

These tests read the emitted text and need no IREE (except the ones marked): the
module `nnc compile --backend mlir --emit mlir` prints is checked by IREE's compiler
for every example in test_mlir_parity.py.
"""
from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import nncompiler as nnc
from nncompiler.autodiff import grad
from nncompiler.backends.mlir import Backend
from nncompiler.backends.mlir.emit import _groups, dense_literal, float_literal
from nncompiler.backends.mlir.plan import build_plan, work, work_terms
from nncompiler.cli import main
from nncompiler.ir import Builder
from nncompiler.ir.shapes import TensorType

from mlir_testlib import EXAMPLES, example_path

try:
    from tests.oracle import every_primitive_graph, missing_primitives
except ImportError:  # tests/ itself is on sys.path
    from oracle import every_primitive_graph, missing_primitives

# util: IREE's, only for the functions a long scan calls (loops.py) and opaque slice offsets;
# flow: IREE's, only flow.tensor.tie_shape of a scan body's arguments (emit.tie_arguments)
ALLOWED_DIALECTS = {"func", "arith", "math", "tensor", "linalg", "util", "flow"}
IREE_OPS = {"util.func", "util.call", "util.return", "util.optimization_barrier",
            "flow.tensor"}   # ops_used reads `dialect.op`: flow.tensor.tie_shape

CHAIN = """
graph Chain {
    input x: f32[16777216]
    output swish(leaky_relu(1.5 * x + 0.25))
}
"""


def module(source_or_path, backend="mlir") -> str:
    m = nnc.compile(source_or_path, backend=backend)
    return m.backend.emit_stage(m, "mlir")


def ops_used(text: str) -> set[str]:
    """Every `dialect.op` in operation position (after `=` or at the start of a line)."""
    out = set()
    for line in text.splitlines():
        line = line.split("//")[0].strip()
        m = re.match(r"(?:%[\w.$:#-]+(?::\d+)?\s*=\s*)?([a-z_]+)\.([a-z_]+)\b", line)
        if m:
            out.add(f"{m.group(1)}.{m.group(2)}")
    return out


def generics(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if "linalg.generic" in ln]


# ---- every example ----------------------------------------------------------------------

@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_emits_one_module_of_upstream_dialects(name):
    text = module(example_path(name))
    assert text.count("\nmodule @") == 1 and text.rstrip().endswith("}")
    m = nnc.compile(example_path(name))
    kinds = ["predict"] + (["train_step", "evaluate", "gradients"] if m.lowered.kind == "model" else [])
    for kind in kinds:
        assert f"func.func @{kind}(" in text
    dialects = {op.split(".")[0] for op in ops_used(text)}
    assert dialects <= ALLOWED_DIALECTS, dialects - ALLOWED_DIALECTS
    iree = {op for op in ops_used(text) if op.split(".")[0] in ("util", "flow")}
    assert iree <= IREE_OPS, iree - IREE_OPS
    assert text.count("flow.tensor.") == text.count("flow.tensor.tie_shape")
    assert "iree" not in text.replace("nncompiler", "")


def test_iris_module_reads_like_the_ir():
    text = module(example_path("iris"))
    # a symbolic batch: dynamic sizes read once from an argument, used by tensor.empty
    assert "func.func @predict(%x: tensor<?x4xf32>, %h.kernel: tensor<4x16xf32>" in text
    assert re.search(r"%B = tensor.dim %x, %c0 : tensor<\?x4xf32>", text)
    assert "tensor.empty(%B) : tensor<?x16xf32>" in text
    # matmuls are named ops; the backward pass reads transposes through indexing maps
    assert "linalg.matmul ins(%x, %h.kernel : tensor<?x4xf32>, tensor<4x16xf32>)" in text
    assert "linalg.matmul indexing_maps = [" in text
    # locations point back at the .nn source
    assert 'loc("' in text and 'iris.nn":5:11)' in text
    # fused generics say which IR ops they cover; reductions have reduction iterators
    fused = re.findall(r"// fused: ((?:%\d+ \w+, )+%(\d+) \w+)\n\s+%(\d+) = linalg.generic", text)
    assert fused and all(last == result for _, last, result in fused)   # named after the IR's root
    assert '"parallel", "reduction"' in text
    # the argmax of the accuracy metric: a two-result reduction
    assert re.search(r"%r\d+:2 = linalg.generic", text)
    # constants
    assert "arith.constant 0xFF800000 : f32" in text   # -inf, the max reduction's start


def test_elementwise_chain_is_one_generic():
    """swish(leaky_relu(1.5*x + 0.25)): every IR op in one linalg.generic, no temporaries."""
    m = nnc.compile(CHAIN, backend="mlir")
    text = m.backend.emit(m.graph("predict"))
    assert len(generics(text)) == 1
    comment = [ln for ln in text.splitlines() if "// fused:" in ln]
    assert len(comment) == 1
    covered = re.findall(r"%\d+ (\w+)", comment[0])
    ir_ops = [n.op for n in m.graph("predict").nodes if n.op not in ("arg", "const")]
    assert sorted(covered) == sorted(ir_ops)
    assert "tensor<16777216xf32>" in text and "math.exp" in text


def test_broadcasts_are_indexing_maps():
    m = nnc.compile("""
graph G {
    input x: f32[B, 3]
    input b: f32[3]
    input c: f32[B, 1]
    output exp(x + b) * c
}""", backend="mlir")
    text = m.backend.emit(m.graph("predict"))
    assert len(generics(text)) == 1
    assert "affine_map<(d0, d1) -> (d1)>" in text         # b along the columns
    assert "affine_map<(d0, d1) -> (d0, 0)>" in text      # c's unit axis


def test_reduction_absorbs_its_elementwise_input():
    m = nnc.compile("""
graph G {
    input x: f32[B, 5]
    output sum(exp(x) * 2.0, axis=1)
}""", backend="mlir")
    text = m.backend.emit(m.graph("predict"))
    assert len(generics(text)) == 1
    assert re.search(r"// reduction: %\d+ exp, %\d+ mul, %\d+ sum", text)
    assert 'iterator_types = ["parallel", "reduction"]' in text


def test_symbolic_products_are_index_arithmetic():
    b = Builder("flat")
    x = b.argument("x", "input", TensorType("f32", ("B", 8, 8)))
    y = b.mul(b.reshape(x, shape=("64*B",)), b.scalar(2.0))
    text = Backend().emit(b.build({"y": y}))
    assert "tensor.collapse_shape %x [[0, 1, 2]] : tensor<?x8x8xf32> into tensor<?xf32>" in text
    assert re.search(r"arith.muli %c64, %B : index", text)


def test_every_primitive_lowers_to_mlir():
    g = every_primitive_graph()
    assert not missing_primitives(g)
    text = Backend().emit(g)
    used = ops_used(text)
    for op in ("linalg.matmul", "linalg.generic", "tensor.extract_slice", "tensor.insert_slice",
               "tensor.expand_shape", "tensor.collapse_shape",
               "linalg.transpose", "linalg.broadcast", "tensor.extract", "math.powf", "arith.constant"):
        assert op in used, op
    assert {op.split(".")[0] for op in used} <= ALLOWED_DIALECTS
    # a concat of parts of one width is one generic (singles.stack), not IREE's copy per part
    assert re.search(r"concat of \d+ parts of one width along axis \d+: one generic", text)
    # the random initialisers are numpy's numbers, as constants; dropout's noise an argument
    assert "random_uniform(seed=7): drawn by numpy at compile time" in text
    assert re.search(r"%rng\d+: tensor<2x2xf32>", text)


def test_gradients_of_every_primitive_lower_to_mlir():
    g = every_primitive_graph()
    b = Builder("loss", start_id=max(n.id for n in g.nodes) + 1)
    for n in g.nodes:
        b.add_node(n)
    terms = []
    for name, i in g.outputs:
        t = b.type_of(i)
        if t.dtype == "f32":
            r = b.argument(f"r.{name}", "input", TensorType("f32", t.shape))
            terms.append(b.sum(b.mul(i, r), axes=tuple(range(t.rank)), keepdims=False))
    loss = terms[0]
    for t in terms[1:]:
        loss = b.add(loss, t)
    gg = grad(b.build({"loss": loss}), "loss", wrt=["x", "y", "p", "m"])
    text = Backend().emit(gg)
    assert {op.split(".")[0] for op in ops_used(text)} <= ALLOWED_DIALECTS


def test_pad_without_interior_is_tensor_pad():
    b = Builder("p")
    x = b.argument("x", "input", TensorType("f32", (2, 3)))
    text = Backend().emit(b.build({"y": b.pad(x, lo=(1, 0), hi=(0, 2), interior=(0, 0))}))
    assert "tensor.pad %x low[1, 0] high[0, 2]" in text


def test_every_op_has_the_location_of_its_ir_node():
    text = module(example_path("digits"))
    lines = text.splitlines()
    one_line = [ln for ln in lines if re.match(r"\s+%[\w.#:]+ = (linalg|tensor)\.", ln)
                and not ln.rstrip().endswith("{") and "tensor.dim" not in ln]
    closing = [ln for ln in lines if re.match(r"\s+} (-> |: )", ln)]     # ops with a region
    assert one_line and closing
    assert all('digits.nn":' in ln for ln in one_line + closing)


# ---- the fusion plan ----------------------------------------------------------------------

def test_fusion_never_recomputes_a_smaller_value_per_broadcast_element():
    """exp(s) of a [B, 1] column used by a [B, 1000] product: its own generic, not 1000 exps a row."""
    m = nnc.compile("""
graph G {
    input s: f32[B, 1]
    input x: f32[B, 1000]
    output exp(s) * x
}""", backend="mlir")
    plan = build_plan(m.graph("predict"))
    assert plan.stats()["clusters"] == 2


def test_transpose_read_only_by_matmuls_folds_away():
    m = nnc.compile(example_path("digits"))
    g = m.graph("gradients")
    plan = build_plan(g)
    transposes = [n for n in g.nodes if n.op == "transpose"]
    assert transposes and all(n not in plan.live for n in transposes)
    assert len(plan.folded) == len(transposes)


def test_work_estimate_is_a_polynomial_in_the_batch():
    m = nnc.compile(example_path("iris"))
    terms = work_terms(m.graph("predict"))
    assert work(terms, {"B": 10}) < work(terms, {"B": 100}) < work(terms, {"B": 1000})
    assert work(terms, {"B": 0}) == work(terms, {"B": 0, None: 5})  # constants only at B = 0


# ---- literals and reshapes -------------------------------------------------------------------

def test_float_literals_round_trip_exactly():
    assert float_literal(1e-07, "f32") == "1.0e-07"
    assert float_literal(0.0, "f32") == "0.0"
    assert float_literal(float(np.float32(0.9)), "f32") == "0.9"
    assert float_literal(float("inf"), "f32") == "0x7F800000"
    assert float_literal(float("-inf"), "f64") == "0xFFF0000000000000"
    assert float_literal(float("nan"), "f32") == "0x7FC00000"
    for v in np.random.default_rng(0).standard_normal(50).astype(np.float32):
        assert np.float32(float(float_literal(v, "f32"))) == v


def test_dense_literals():
    assert dense_literal(np.full((2, 2), 0.5, np.float32), "f32") == "dense<0.5>"
    assert dense_literal(np.array([[1, 2], [3, 4]], np.int32), "i32") == "dense<[[1, 2], [3, 4]]>"
    assert dense_literal(np.array([True, False]), "bool") == "dense<[true, false]>"
    blob = dense_literal(np.array([1.0, np.nan], np.float32), "f32")
    assert blob == 'dense<"0x0000803F0000C07F">'                 # little-endian raw bits
    assert dense_literal(np.array([0.0, -0.0], np.float32), "f32") == "dense<[0.0, -0.0]>"


@pytest.mark.parametrize("src, dst, ok", [
    ((2, 6), (2, 2, 3), True), (("B", 4), ("B", 2, 2), True), (("B", 1), ("B",), True),
    ((), (1, 1), True), ((1, 1), (), True), ((2, 3), (3, 2), False), (("B", 8, 8), ("64*B",), True),
])
def test_reshape_reassociation(src, dst, ok):
    res = _groups(src, dst)
    assert (res is not None) == ok
    if res is not None:
        ga, gb, inter = res
        assert len(ga) == len(gb) == len(inter)
        if src and dst:   # (to or from rank 0, MLIR's reassociation is empty)
            assert sorted(i for g in ga for i in g) == list(range(len(src)))
            assert sorted(i for g in gb for i in g) == list(range(len(dst)))


# ---- the CLI -----------------------------------------------------------------------------------

def test_cli_emit_mlir_and_summary(capsys):
    assert main(["compile", example_path("iris"), "--backend", "mlir", "--emit", "mlir"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("// Iris: predict, train_step, evaluate, gradients")
    assert main(["compile", example_path("iris"), "--backend", "mlir"]) == 0
    out = capsys.readouterr().out
    assert "mlir (linalg on tensors, IREE llvm-cpu):" in out and "train_step:" in out


def test_emitting_needs_no_iree_and_running_names_the_extra(monkeypatch, capsys):
    from nncompiler.backends.mlir import runtime
    monkeypatch.setattr(runtime, "_AVAILABLE", False)
    monkeypatch.setattr(runtime.Runtime, "_shared", None)
    monkeypatch.setitem(sys.modules, "iree.compiler", None)   # `import iree.compiler` raises
    monkeypatch.setitem(sys.modules, "iree.runtime", None)
    assert main(["compile", example_path("linefit"), "--backend", "mlir", "--emit", "mlir"]) == 0
    assert "func.func @train_step" in capsys.readouterr().out
    assert main(["run", example_path("linefit"), "--backend", "mlir", "--epochs", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("the mlir backend needs IREE (iree-base-compiler and iree-base-runtime): "
                   "pip install 'nncompiler[mlir]'")
