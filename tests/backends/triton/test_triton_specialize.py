"""Specialisation as Triton's JIT does it, checked without a GPU: the AOT compile derives the
same attributes as the JIT's own `specialize_impl` (16-byte-aligned pointers and sizes divisible
by 16 get tt.divisibility=16, a size of 1 becomes a constant), so the PTX vectorises (`ld.global.v4`
over a [B, 512] tensor, 16-byte `cp.async` in a matmul), division is IEEE (`div.rn.f32`) and the
cubin manifest lists every parameter of the PTX entry, the scratch pointers Triton appends included."""
import io
import json
import re
import tarfile

import pytest
import torch

import nncompiler as nnc
from nncompiler.backends import get_backend
from nncompiler.backends.triton import aot
from nncompiler.backends.triton.cache import write_module
from nncompiler.backends.triton.tuning import choose
from nncompiler.ir import Builder
from nncompiler.ir.shapes import TensorType as T

MLP = """
model MLP {
    input  x: f32[B, 784]
    target y: i32[B]
    h1  = dense(x, 512, activation=relu)
    out = dense(h1, 10, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer adam(lr=0.001)
}
"""


@pytest.fixture()
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton"))
    return tmp_path


def _pointwise():
    """One pointwise kernel over [B, 512] with a division: (x / y) * 0.5."""
    b = Builder("scale")
    x = b.argument("x", "input", T("f32", ("B", 512)))
    y = b.argument("y", "input", T("f32", ("B", 512)))
    g = b.build({"z": b.mul(b.div(x, y), b.scalar(0.5))})
    _, text, (ks,) = get_backend("triton").generated(g)
    return g, text, ks


@pytest.mark.parametrize("batch", [256, 37, 1])
def test_aot_attributes_are_the_jits_own(batch):
    try:
        from triton._C.libtriton import native_specialize_impl
        from triton.backends.nvidia.compiler import CUDABackend
    except ImportError:
        pytest.skip("this Triton has no native_specialize_impl")
    _, _, ks = _pointwise()
    blocks = choose(ks, {"B": batch}, False)[0]
    sig, consts, aligned = aot.specialization(ks, {"B": batch}, blocks)
    values = {"buf": torch.empty(batch * 512), "size": batch}
    for i, p in enumerate(ks.params):      # what the JIT derives from the launch's real arguments
        kind, attr = native_specialize_impl(CUDABackend, values[p.kind], False, True, True)[:2]
        if kind == "constexpr":
            assert sig[p.name] == "constexpr" and consts[p.name] == attr, p.name
        else:
            assert (i in aligned) == (attr == "D"), (p.name, attr)
    if batch == 1:
        assert consts == {"s_B": 1}
    # without a binding the size gets no attribute: the cubin serves every batch
    assert aot.specialization(ks, None, blocks)[2] == [i for i, p in enumerate(ks.params) if p.kind == "buf"]


def test_pointwise_ptx_vectorises_and_divides_ieee(fresh_cache):
    g, text, ks = _pointwise()
    assert "tl.math.div_rn(" in ks.text and "do_not_specialize" not in ks.text
    res = aot.compile_kernels(write_module(g.name, text), [ks], aot.parse_target("sm_90"))[ks.name]
    ptx = res["ptx"]
    assert "ld.global.v4" in ptx and "st.global.v4" in ptx
    assert "div.rn.f32" in ptx and "div.full.f32" not in ptx
    assert res["divisible_by_16"] == [0, 1, 2]                 # x, y, z pointers; s_B unbound


def test_matmul_cp_async_is_16_bytes_and_the_manifest_lists_every_entry_param(fresh_cache):
    m = nnc.compile(MLP, backend="triton")
    g = m.graph("predict")
    _, text, kernels = m.backend.generated(g)
    mm = kernels[0]
    assert mm.kind == "matmul"
    # pointer loads (sm_80; on sm_90 the operands come through TMA, test_triton_tma.py) copy 16 bytes
    res80 = aot.compile_kernels(write_module(g.name, text), [mm], aot.parse_target("sm_80"))[mm.name]
    sizes = re.findall(r"cp\.async\.\w+\.shared\.global(?:\.L2::\w+)? \[[^]]+\], \[[^]]+\], (0x[0-9a-f]+|\d+)", res80["ptx"])
    assert sizes and {int(s, 0) for s in sizes} == {16}, sorted(set(sizes))
    res = aot.compile_kernels(write_module(g.name, text), [mm], aot.parse_target("sm_90"))[mm.name]
    with tarfile.open(fileobj=io.BytesIO(aot.cubin_archive([("predict", mm.name, res)], aot.parse_target("sm_90")))) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    (entry,) = manifest["kernels"]
    entry_decl = re.search(r"\.entry\s+\w+\s*\((.*?)\)", res["ptx"], re.S).group(1)
    n_ptx = entry_decl.count(".param")
    params = entry["entry_params"]
    assert len(params) == n_ptx
    assert [p["name"] for p in params if not p.get("hidden")] == [p.name for p in mm.params]
    assert any(p.get("hidden") for p in params)           # Triton's scratch pointers, listed too
    assert entry["num_stages"] and entry["divisible_by_16"]
    assert entry["global_scratch"] > 0                      # the TMA descriptors' memory
