"""PyTorch models exported with torch.onnx.export, imported by nnc, checked against torch."""
import io
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

import nncompiler as nnc  # noqa: E402


def _export(net, x, dynamic=True) -> bytes:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), f, input_names=["x"], output_names=["y"], dynamo=False,
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}} if dynamic else None)
    return f.getvalue()


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8), torch.nn.GELU(),
                               torch.nn.Linear(8, 3), torch.nn.Softmax(dim=-1))


def test_mlp_matches_torch_with_a_symbolic_batch():
    net = _mlp().eval()
    m = nnc.from_onnx(_export(net, torch.randn(2, 4)))
    assert m.lowered.inputs["x"].shape == ("batch", 4)          # the dynamic axis stays symbolic
    for n in (1, 5, 33):                                         # any batch size, one compiled graph
        x = torch.randn(n, 4)
        np.testing.assert_allclose(m.forward(x=x.numpy()), net(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_cnn_with_batchnorm_and_pooling_matches_torch():
    torch.manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 6, 3, stride=2, groups=2), torch.nn.ReLU(), torch.nn.AvgPool2d(2, ceil_mode=True),
        torch.nn.Flatten(), torch.nn.Linear(6, 5)).eval()
    with torch.no_grad():   # non-trivial running statistics, so batchnorm's inference form is exercised
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
    x = torch.randn(4, 3, 12, 12)
    m = nnc.from_onnx(_export(net, x, dynamic=False))
    np.testing.assert_allclose(m.forward(x=x.numpy()), net(x).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_trainable_import_gives_torchs_loss_and_gradients():
    net = _mlp()
    m = nnc.from_onnx(_export(net, torch.randn(2, 4)), trainable=True, loss="sparse_categorical_crossentropy")
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


class _LastStep(torch.nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.rnn, self.head = cell, torch.nn.Linear(cell.hidden_size * (2 if cell.bidirectional else 1), 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y[:, -1])


@pytest.mark.parametrize("cell", ["lstm", "gru_bidirectional"])
def test_recurrent_model_matches_torch(cell):
    torch.manual_seed(2)
    rnn = (torch.nn.LSTM(4, 8, batch_first=True) if cell == "lstm"
           else torch.nn.GRU(4, 6, batch_first=True, bidirectional=True))
    net = _LastStep(rnn).eval()
    x = torch.randn(3, 5, 4)
    m = nnc.from_onnx(_export(net, x, dynamic=False))
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
    m = nnc.from_onnx(_export(net, x, dynamic=False))
    np.testing.assert_allclose(m.forward(x=x.numpy()), net(x).detach().numpy(), rtol=1e-5, atol=1e-5)


class _Encoder(torch.nn.Module):
    """A transformer encoder layer (multi-head self-attention, GELU feed-forward, post-LayerNorm)
    written out: torch's own TransformerEncoderLayer does not go through the TorchScript
    exporter in this torch (scaled_dot_product_attention gets a tensor is_causal)."""

    def __init__(self, d=16, heads=4, ff=32):
        super().__init__()
        self.h, self.qkv, self.o = heads, torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.n1, self.n2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.ff = torch.nn.Sequential(torch.nn.Linear(d, ff), torch.nn.GELU(), torch.nn.Linear(ff, d))

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)

        def heads(t):
            return t.reshape(B, T, self.h, D // self.h).transpose(1, 2)

        q, k, v = heads(q), heads(k), heads(v)
        att = torch.softmax(q @ k.transpose(-2, -1) / (D // self.h) ** 0.5, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = self.n1(x + self.o(y))
        return self.n2(x + self.ff(x))


def test_transformer_encoder_layer_matches_torch():
    torch.manual_seed(4)
    net = _Encoder().eval()
    x = torch.randn(2, 5, 16)
    m = nnc.from_onnx(_export(net, x, dynamic=False))
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
    m = nnc.from_onnx(_export(net, torch.randn(2, 1, 8, 8)))
    assert m.lowered.inputs["x"].shape == ("batch", 1, 8, 8)
    for n in (1, 3):
        x = torch.randn(n, 1, 8, 8)
        np.testing.assert_allclose(m.forward(x=x.numpy()), net(x).detach().numpy(), rtol=1e-5, atol=1e-6)
