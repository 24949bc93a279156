"""Which devices the ONNX conformance backend (nncompiler/onnx_backend.py) claims, and the "CUDA"
path: imported graphs run as the Triton backend's kernels. Without a GPU the kernels run in
Triton's interpreter (TRITON_INTERPRET=1, which tests/conftest.py sets before anything imports
triton); the outputs are checked against ONNX's own expected outputs and torch."""
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

from onnx.backend.test.runner import Runner  # noqa: E402

import nncompiler.onnx_backend as ob  # noqa: E402
from nncompiler.errors import NNCError  # noqa: E402


def _tiny_model():
    from onnx import TensorProto, helper
    node = helper.make_node("Relu", ["x"], ["y"])
    return helper.make_model(helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])]), opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("gpu", [True, False])
def test_cuda_is_claimed_exactly_when_a_gpu_and_triton_are_there(monkeypatch, gpu):
    monkeypatch.setattr(ob, "cuda_available", lambda: gpu)
    assert ob.supports_device("CUDA") is gpu
    assert ob.supports_device("CPU") is True and ob.supports_device("TPU") is False


def test_cuda_availability_asks_torch(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert ob.cuda_available() is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert ob.cuda_available() is True


def test_preparing_for_a_missing_device_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(ob, "cuda_available", lambda: False)
    with pytest.raises(NNCError, match=r"device 'CUDA' is not available here: needs a CUDA GPU .* and triton"):
        ob.prepare(_tiny_model(), device="CUDA")
    with pytest.raises(NNCError, match=r"device 'TPU' is not available here: devices: CPU, CUDA"):
        ob.prepare(_tiny_model(), device="TPU")


def _interpreted_triton():
    """Skip unless Triton can run here: on a GPU, or in its interpreter switched on in time."""
    pytest.importorskip("triton")
    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("triton was imported before TRITON_INTERPRET=1 could be set and there is no GPU")


CASES = ("test_relu", "test_gemm_default_single_elem_vector_bias", "test_softmax_axis_1", "test_matmul_3d",
         "test_conv_with_strides_padding", "test_maxpool_2d_pads", "test_reduce_mean_keepdims_example",
         "test_gather_1", "test_concat_2d_axis_1", "test_transpose_all_permutations_3")


def _on_triton(monkeypatch) -> list:
    """Claim CUDA, and record every graph the Triton backend is asked to compile."""
    _interpreted_triton()
    monkeypatch.setattr(ob, "cuda_available", lambda: True)
    compiled, runner = [], ob._triton_runner
    monkeypatch.setattr(ob, "_triton_runner", lambda g: compiled.append(g) or runner(g))
    return compiled


def test_node_cases_run_on_cuda_through_the_triton_backend(monkeypatch):
    compiled = _on_triton(monkeypatch)
    from test_backend_node import _CASES       # loaded once per session
    cases = {c.name: c for c, _ in _CASES if c.name in CASES}
    assert sorted(cases) == sorted(CASES)
    for case in cases.values():
        rep = ob.prepare(case.model, device="CUDA")
        assert rep.device == "CUDA"
        for inputs, expected in case.data_sets:
            got = rep.run([onnx.numpy_helper.to_array(i) if isinstance(i, onnx.TensorProto) else i for i in inputs])
            Runner.assert_similar_outputs(list(expected), list(got), rtol=case.rtol, atol=case.atol)
    assert len(compiled) >= len(CASES)


def test_a_torch_cnn_runs_on_cuda_and_matches_torch(monkeypatch):
    compiled = _on_triton(monkeypatch)
    from torch_models import cnn, export
    net = cnn()
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    (y,) = ob.run_model(onnx.load_from_string(export(net, x, dynamic=False)), [x.numpy()], device="CUDA")
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    np.testing.assert_allclose(y, net(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    assert [n.op for n in compiled[0].nodes].count("conv") == 2
