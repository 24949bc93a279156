"""The torch models the ONNX tests export (test_roundtrip.py checks the import against torch,
test_import_nn.py writes the import back as .nn): one definition each."""
import io
import warnings

import torch


def export(net, x, dynamic=True, input_name="x") -> bytes:
    """net as ONNX bytes (TorchScript exporter), input x, output y; a dynamic batch by default."""
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), f, input_names=[input_name], output_names=["y"], dynamo=False,
                          dynamic_axes={input_name: {0: "batch"}, "y": {0: "batch"}} if dynamic else None)
    return f.getvalue()


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8), torch.nn.GELU(),
                               torch.nn.Linear(8, 3), torch.nn.Softmax(dim=-1))


def cnn():
    """Convolution (padded; grouped and strided), batchnorm with non-trivial running statistics,
    max pooling and ceil-mode average pooling, flatten, linear: input [N, 3, 12, 12]."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 6, 3, stride=2, groups=2), torch.nn.ReLU(), torch.nn.AvgPool2d(2, ceil_mode=True),
        torch.nn.Flatten(), torch.nn.Linear(6, 5)).eval()
    with torch.no_grad():   # so batchnorm's inference form is exercised
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
    return net


class LastStep(torch.nn.Module):
    """A recurrent layer (batch first) and a linear head on its last time step."""

    def __init__(self, cell):
        super().__init__()
        self.rnn, self.head = cell, torch.nn.Linear(cell.hidden_size * (2 if cell.bidirectional else 1), 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y[:, -1])


def recurrent(cell: str):
    """"lstm" or "gru_bidirectional", on input [N, 5, 4]."""
    torch.manual_seed(2)
    rnn = (torch.nn.LSTM(4, 8, batch_first=True) if cell == "lstm"
           else torch.nn.GRU(4, 6, batch_first=True, bidirectional=True))
    return LastStep(rnn).eval()


class Encoder(torch.nn.Module):
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


def encoder():
    torch.manual_seed(4)
    return Encoder().eval()
