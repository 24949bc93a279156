"""TMA operands (tma.py) without a GPU: which matmul operands qualify for a tensor descriptor,
that the tile table turns them on for sm_90 only, that the descriptor path of the generated
kernels gives numpy's numbers under TRITON_INTERPRET=1 (transposed weight-gradient operands,
split-K, a flattened batch), and that the sm_90 PTX of the MLP training step copies tiles with
`cp.async.bulk.tensor`."""
import contextvars

import numpy as np
import pytest
import torch

import nncompiler as nnc
from nncompiler.backends import get_backend
from nncompiler.backends.numpy import compile_graph
from nncompiler.backends.triton import aot, tuning
from nncompiler.backends.triton.cache import write_module
from nncompiler.backends.triton.index import View
from nncompiler.backends.triton.launch import install_scratch_allocator
from nncompiler.backends.triton.tma import COLUMNS, ROWS, operand_layout
from nncompiler.cli import main
from nncompiler.ir import Builder
from nncompiler.ir.shapes import TensorType as T

from mlp_source import MLP  # noqa: E402  (the tests' directory is on sys.path)


@pytest.mark.parametrize("view,space,dtype,want", [
    (View(0, ("B", 784), (784, 1)), ("B", 512), "f32", ROWS),          # x of x @ w
    (View(0, (512, "B"), (1, 512)), (512, 10), "f32", COLUMNS),        # h^T of a weight gradient
    (View(0, (512, 10), (10, 1)), ("B", 10), "f32", None),             # rows 40 bytes apart
    (View(0, (10, 512), (1, 10)), ("B", 512), "f32", None),            # w^T of a 10-wide layer
    (View(0, (4, 8), ("B", 1)), (4, 8), "f32", None),                  # a stride known only at run time
    (View(0, (4, 8), (0, 1)), (4, 8), "f32", None),                    # a broadcast row
    (View(0, (4, 8), (8, 1)), (4, 8), "f64", None),                    # not a wgmma operand type
    (View(0, (3, 4, 8), (32, 8, 1)), (3, 4, 8), "f32", ROWS),          # batch elements 128 bytes apart
    (View(0, (3, 4, 8), (33, 8, 1)), (3, 4, 8), "f32", None),          # ... 132: a misaligned base
    (View(0, (4, 8), (8, 1), (2,)), (4, 8), "f32", None),              # a slice starting 8 bytes in
    (View(0, (4, 8), (8, 1), (4,)), (4, 8), "f32", ROWS),
    (View(0, (4, 8), (16, 1)), (4, 8), "f32", ROWS),                   # every other row of a buffer
    (View(0, (4, 8), (4, 1)), (4, 8), "f32", None),                    # rows overlapping each other
    (View(0, ("B", "B"), (512, 1)), ("B", "B"), "f32", None),          # a row length unknown here
])
def test_which_operands_a_descriptor_can_read(view, space, dtype, want):
    assert operand_layout(view, space, dtype) == want


def _mlp_matmuls(precision="fp32"):
    m = nnc.compile(MLP, backend="triton", precision=precision)
    g = m.graph("train_step")
    _, text, kernels = m.backend.generated(g)
    return g, text, [ks for ks in kernels if ks.kind == "matmul"]


def test_the_table_turns_tma_on_for_sm_90_compiled_kernels_only():
    _, text, mms = _mlp_matmuls()
    # 7 of the 8 matmuls read an operand through a descriptor; dlogits @ w3^T has only 10-wide rows
    assert sum(any(ks.info["tma"]) for ks in mms) == 7
    assert ("columns", "rows") in [ks.info["tma"] for ks in mms]    # a weight gradient: h^T @ g
    assert text.count("tl.make_tensor_descriptor") == sum(sum(map(bool, ks.info["tma"])) for ks in mms)
    for ks in mms:
        on = tuning.choose(ks, {"B": 256}, False, sms=132, arch=90)[0]["TMA"]
        assert on == int(any(ks.info["tma"]))
        assert tuning.choose(ks, {"B": 256}, False, sms=108, arch=80)[0]["TMA"] == 0
        assert tuning.choose(ks, {"B": 256}, True)[0]["TMA"] == 0
    lines = tuning.launch_lines(mms, {"B": 256}, arch=90)
    assert sum("TMA loads" in line for line in lines) == 7


def _aligned_graph():
    """x @ w with a bias + relu epilogue, the transposed weight gradient x^T @ g with its bias
    gradient and an SGD update, and a batched [B, 4, 8] @ [8, 16] (batch elements 128 bytes apart): rows 16-byte aligned, M ragged."""
    b = Builder("tma")
    x = b.argument("x", "input", T("f32", ("B", 40)))
    g = b.argument("g", "input", T("f32", ("B", 32)))
    xs = b.argument("xs", "input", T("f32", ("B", 4, 8)))
    w = b.argument("w", "param", T("f32", (40, 32)))
    v = b.argument("v", "param", T("f32", (8, 16)))
    bias = b.argument("bias", "param", T("f32", (32,)))
    y = b.maximum(b.add(b.matmul(x, w), bias), b.scalar(0.0))
    dw = b.matmul(b.transpose(x, perm=(1, 0)), g)
    lr = b.scalar(0.1)
    return b.build({"y": y, "z": b.matmul(xs, v), "new.w": b.sub(w, b.mul(lr, dw)),
                    "new.bias": b.sub(bias, b.mul(lr, b.sum(g, axes=(0,))))})


@pytest.mark.parametrize("split", [1, 3])
def test_the_descriptor_path_matches_numpy_under_the_interpreter(split):
    be = get_backend("triton")
    graph = _aligned_graph()
    cg = be.compile(graph)
    mms = [k for k in cg.kernels.values() if k.kind == "matmul"]
    assert len(mms) == 3 and all(all(k.info["tma"]) for k in mms)
    assert any(COLUMNS in k.info["tma"] for k in mms)
    for k in mms:
        cg.pin(k.name, ({"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "SPLIT_K": split, "GROUP_M": 2,
                         "TMA": 1}, 4, None))
    rng = np.random.default_rng(0)
    args = {"x": rng.standard_normal((37, 40)), "g": rng.standard_normal((37, 32)),
            "xs": rng.standard_normal((37, 4, 8)), "w": rng.standard_normal((40, 32)),
            "v": rng.standard_normal((8, 16)), "bias": rng.standard_normal(32)}
    args = {k: a.astype(np.float32) for k, a in args.items()}
    want = compile_graph(graph)(args)
    for _ in range(2):       # the second call reuses the split-K counters the first reset
        got = cg(args)
        for name, value in want.items():
            np.testing.assert_allclose(be.to_numpy(got[name]), value, rtol=1e-4, atol=1e-5, err_msg=name)
    assert {k.name: cg.launch_configs()[k.name]["TMA"] for k in mms} == {k.name: 1 for k in mms}


ALIGNED_MLP = """
model Small {
    input  x: f32[B, 24]
    target y: i32[B]
    h   = dense(x, 32, activation=relu)
    out = dense(h, 10, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer adam(lr=0.01)
}
"""


def test_training_steps_with_descriptor_loads_match_numpy():
    """Every matmul kernel of a training step launched with TMA on (the interpreter's tiles)."""
    mt, mn = nnc.compile(ALIGNED_MLP, backend="triton"), nnc.compile(ALIGNED_MLP)
    cg = mt.compiled("train_step")
    mms = [k for k in cg.kernels.values() if k.kind == "matmul"]
    assert sum(any(k.info["tma"]) for k in mms) >= 3
    for k in mms:
        blocks, warps, stages = tuning.choose(k, {"B": 20}, True)
        cg.pin(k.name, ({**blocks, "TMA": 1}, warps, stages))
    rng = np.random.default_rng(2)
    for _ in range(3):
        batch = {"x": rng.standard_normal((20, 24)).astype(np.float32), "y": rng.integers(0, 10, 20).astype(np.int32)}
        got, want = mt.step(**batch), mn.step(**batch)
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)
    for name, value in mn.params.items():
        np.testing.assert_allclose(mt.params[name], value, rtol=1e-4, atol=1e-5, err_msg=name)


def test_the_runtime_gives_triton_a_scratch_allocator_and_keeps_a_callers():
    import triton
    from triton.runtime import _allocation
    if not hasattr(_allocation, "_allocator"):
        pytest.skip("this Triton keeps its allocator elsewhere (the runtime then always installs its own)")

    def fresh():
        install_scratch_allocator("cpu")
        alloc = _allocation._allocator.get()
        return type(alloc).__name__, alloc(64, 128, None)

    name, buf = contextvars.Context().run(fresh)      # Triton's allocator is per context
    assert name == "_TorchScratch" and isinstance(buf, torch.Tensor) and buf.numel() == 64

    def theirs():
        mine = lambda size, align, stream: torch.empty(size, dtype=torch.int8)  # noqa: E731
        triton.set_allocator(mine)
        install_scratch_allocator("cpu")
        return _allocation._allocator.get() is mine
    assert contextvars.Context().run(theirs)


def test_a_misaligned_tensor_argument_is_copied_to_an_aligned_one():
    be = get_backend("triton")
    cg = be.compile(_aligned_graph())
    base = torch.arange(37 * 40 + 1, dtype=torch.float32)
    x = base[1:].view(37, 40)                   # starts 4 bytes into its storage
    t = cg.arguments.tensor_arg("x", x)
    assert t.data_ptr() % 16 == 0 and torch.equal(t, x)
    aligned = base[:-1].view(37, 40)
    assert cg.arguments.tensor_arg("x", aligned).data_ptr() == aligned.data_ptr()    # no copy when aligned


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton"))
    return tmp_path / "cache"


def test_first_matmul_of_the_mlp_step_copies_tiles_with_tma_on_sm_90(fresh_cache):
    """The quick form of the CLI check below: one kernel (~3 s)."""
    g, text, mms = _mlp_matmuls()
    res = aot.compile_kernels(write_module(g.name, text), mms[:1], aot.parse_target("sm_90"), {"B": 256})
    entry = res[mms[0].name]
    assert entry["constexprs"]["TMA"] == 1
    assert "cp.async.bulk.tensor.2d" in entry["ptx"] and "tensormap.replace" in entry["ptx"]
    assert entry["global_scratch"] > 0          # where the descriptors live: a launcher passes it
    # sm_80 has no TMA: the same kernel source compiles to pointer loads
    res80 = aot.compile_kernels(write_module(g.name, text), mms[:1], aot.parse_target("sm_80"), {"B": 256})
    assert "cp.async.bulk.tensor" not in res80[mms[0].name]["ptx"]


# ~40 s on two cores (every kernel of the MLP's predict and train_step graphs)
@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "tf32"])
def test_cli_ptx_of_the_mlp_training_step_uses_tma(fresh_cache, tmp_path, capsys, precision):
    mlp = tmp_path / "mlp.nn"
    mlp.write_text(MLP)
    assert main(["compile", str(mlp), "--backend", "triton", "--precision", precision, "--target", "sm_90",
                 "--emit", "ptx"]) == 0
    out = capsys.readouterr().out
    kernels = out.split("===== train_step: ")[1:]
    mm = [k for k in kernels if k.startswith("nnc_matmul")]
    assert len(mm) == 8 and sum("cp.async.bulk.tensor" in k for k in mm) == 7
    if precision == "tf32":
        assert "wgmma.mma_async.sync.aligned" in out

