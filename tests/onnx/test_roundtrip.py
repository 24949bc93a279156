"""PyTorch models exported with torch.onnx.export, imported by nnc, checked against torch."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

import nncompiler as nnc  # noqa: E402
from torch_models import cnn, encoder, export, mlp, recurrent  # noqa: E402


def test_mlp_matches_torch_with_a_symbolic_batch():
    net = mlp().eval()
    m = nnc.from_onnx(export(net, torch.randn(2, 4)))
    assert m.lowered.inputs["x"].shape == ("batch", 4)          # the dynamic axis stays symbolic
    for n in (1, 5, 33):                                         # any batch size, one compiled graph
        x = torch.randn(n, 4)
        np.testing.assert_allclose(m.forward(x=x.numpy()), net(x).detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("onnx_name,arg_name", [("input", "input_"), ("image.0", "image_0")])
def test_inputs_are_given_by_their_onnx_names(onnx_name, arg_name):
    # `input` is a .nn keyword and `image.0` no .nn name: the arguments are renamed so that
    # `nnc import` can write them, but a user still passes the ONNX model's own names
    net = mlp()
    m = nnc.from_onnx(export(net, torch.randn(2, 4), input_name=onnx_name),
                      trainable=True, loss="sparse_categorical_crossentropy")
    assert list(m.lowered.inputs) == [arg_name]
    x, y = torch.randn(6, 4), np.array([0, 2, 1, 1, 0, 2], np.int32)
    want = net(x).detach().numpy()
    for given in (onnx_name, arg_name):
        np.testing.assert_allclose(m.forward(**{given: x.numpy()}), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(m.predict(**{given: x.numpy()}, batch_size=4), want, rtol=1e-5, atol=1e-6)
    loss = m.evaluate(**{onnx_name: x.numpy()}, target=y)["loss"]
    assert loss == pytest.approx(m.evaluate(x.numpy(), y)["loss"])
    m.step(**{onnx_name: x.numpy()}, target=y)
    m.fit(**{onnx_name: x.numpy()}, target=y, epochs=5, batch_size=6, verbose=0)
    assert m.evaluate(**{onnx_name: x.numpy()}, target=y)["loss"] < loss
    with pytest.raises(nnc.NNCError, match="name the same input"):
        m.forward(**{onnx_name: x.numpy(), arg_name: x.numpy()})


def test_cnn_with_batchnorm_and_pooling_matches_torch():
    net = cnn()
    x = torch.randn(4, 3, 12, 12)
    m = nnc.from_onnx(export(net, x, dynamic=False))
    np.testing.assert_allclose(m.forward(x=x.numpy()), net(x).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_trainable_import_gives_torchs_loss_and_gradients():
    net = mlp()
    m = nnc.from_onnx(export(net, torch.randn(2, 4)), trainable=True, loss="sparse_categorical_crossentropy")
    x, y = torch.randn(6, 4), torch.tensor([0, 2, 1, 1, 0, 2])
    loss, grads = m.loss_and_grads(x=x.numpy(), target=y.numpy().astype(np.int32))
    # the oracle: Keras's crossentropy of probabilities (clipped to [1e-7, 1 - 1e-7]) in torch
    p = net(x).clamp(1e-7, 1 - 1e-7)
    ref = -torch.log(p[torch.arange(6), y] / p.sum(-1)).mean()
    ref.backward()
    np.testing.assert_allclose(loss, ref.item(), rtol=1e-5)
    for name, param in net.named_parameters():
        # torch's "0.weight" is not an identifier; the importer names it "_0_weight"
        np.testing.assert_allclose(grads["_" + name.replace(".", "_")], param.grad.numpy(), rtol=1e-4, atol=1e-6)
    before = m.evaluate(x=x.numpy(), target=y.numpy().astype(np.int32))["loss"]
    m.fit(x=x.numpy(), target=y.numpy().astype(np.int32), epochs=20, batch_size=6)
    assert m.evaluate(x=x.numpy(), target=y.numpy().astype(np.int32))["loss"] < before


@pytest.mark.parametrize("cell", ["lstm", "gru_bidirectional"])
def test_recurrent_model_matches_torch(cell):
    net = recurrent(cell)
    x = torch.randn(3, 5, 4)
    m = nnc.from_onnx(export(net, x, dynamic=False))
    np.testing.assert_allclose(m.forward(x=x.numpy()), net(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_transposed_convolution_and_einsum_match_torch():
    torch.manual_seed(3)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.up = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)

        def forward(self, x):
            y = self.up(x)                                            # [N, 6, 10, 10]
            return torch.einsum("nchw,ndhw->ncd", y, y)               # per-sample channel Gram matrix

    net = Net().eval()
    x = torch.randn(2, 4, 5, 5)
    m = nnc.from_onnx(export(net, x, dynamic=False))
    np.testing.assert_allclose(m.forward(x=x.numpy()), net(x).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_transformer_encoder_layer_matches_torch():
    net = encoder()
    x = torch.randn(2, 5, 16)
    m = nnc.from_onnx(export(net, x, dynamic=False))
    np.testing.assert_allclose(m.forward(x=x.numpy()), net(x).detach().numpy(), rtol=1e-5, atol=2e-6)


def test_dynamic_batch_flatten_by_view_matches_torch():
    """x.view(x.size(0), -1) exports as Shape -> Gather -> Unsqueeze -> Concat -> Reshape on the
    dynamic batch; the importer evaluates that on the symbolic dimension."""
    torch.manual_seed(5)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = torch.nn.Conv2d(1, 4, 3), torch.nn.Linear(4 * 6 * 6, 2)

        def forward(self, x):
            h = torch.relu(self.conv(x))
            return self.fc(h.view(h.size(0), -1))

    net = Net().eval()
    m = nnc.from_onnx(export(net, torch.randn(2, 1, 8, 8)))
    assert m.lowered.inputs["x"].shape == ("batch", 1, 8, 8)
    for n in (1, 3):
        x = torch.randn(n, 1, 8, 8)
        np.testing.assert_allclose(m.forward(x=x.numpy()), net(x).detach().numpy(), rtol=1e-5, atol=1e-6)
