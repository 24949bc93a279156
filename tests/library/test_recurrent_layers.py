"""rnn, lstm and gru against torch.nn.RNN / LSTM / GRU with the weights copied across.

Models are built through the language. The loss is sum(h * r) with a random
cotangent `r` fed as a target, so every gradient is checked against torch's
for a non-trivial upstream gradient; the input gradient is read off a zero
parameter `dx` added to the input (d loss / d dx = d loss / d x).

Weight conversion (Keras layout -> torch): torch stores weight_ih [G*units, F]
(our kernel transposed) and weight_hh [G*units, units]; LSTM gate order is the
same (i, f, g, o = Keras i, f, c, o); GRU's torch order is r, z, n against
Keras's z, r, h, so the gate blocks are permuted; torch's GRU is Keras's
reset_after form with b_ih = bias[0] and b_hh = bias[1]. rnn and lstm have one
bias in Keras, so torch's second bias is zero.
"""
from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import torch

import nncompiler as nnc
from nncompiler.errors import CompileError
from nncompiler.library import LAYERS
from nncompiler.passes.unroll import UNROLL_MAX_LENGTH

RTOL, ATOL = 1e-4, 1e-5
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
GRU_TORCH_ORDER = (1, 0, 2)        # torch's r, z, n are Keras's gates 1, 0, 2


def _source(layer, batch, steps, features, units, return_sequences, extra=""):
    out = f"[{batch}, {steps}, {units}]" if return_sequences else f"[{batch}, {units}]"
    rs = "true" if return_sequences else "false"
    return f"""
model M {{
    input  x: f32[{batch}, {steps}, {features}]
    target r: f32{out}
    param  dx: f32[{batch}, {steps}, {features}] = 0.0
    h = {layer}(x + dx, {units}, return_sequences={rs}{extra})
    output h
    loss sum(h * r)
    optimizer sgd()
}}"""


def _permute_gates(w: np.ndarray, units: int, order) -> np.ndarray:
    """Reorder gate blocks along the last axis."""
    return np.concatenate([w[..., g * units:(g + 1) * units] for g in order], axis=-1)


def _torch_module(layer, features, units, params, use_bias=True, nonlinearity="tanh"):
    """A torch module holding our params; returns (module, to_ours) where to_ours maps the
    module's gradients back to our parameter names and layout."""
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[layer]
    kw = {"nonlinearity": nonlinearity} if layer == "rnn" else {}
    mod = cls(features, units, batch_first=True, bias=use_bias, **kw)
    order = GRU_TORCH_ORDER if layer == "gru" else tuple(range(GATES[layer]))
    perm = lambda w: _permute_gates(w, units, order)  # noqa: E731  (self-inverse for gru's swap)
    with torch.no_grad():
        mod.weight_ih_l0.copy_(torch.tensor(perm(params["h.kernel"]).T))
        mod.weight_hh_l0.copy_(torch.tensor(perm(params["h.recurrent_kernel"]).T))
        if use_bias:
            bias = params["h.bias"]
            b_ih, b_hh = (bias[0], bias[1]) if layer == "gru" else (bias, np.zeros_like(bias))
            mod.bias_ih_l0.copy_(torch.tensor(perm(b_ih)))
            mod.bias_hh_l0.copy_(torch.tensor(perm(b_hh)))

    def to_ours():
        g = {"h.kernel": perm(mod.weight_ih_l0.grad.numpy().T),
             "h.recurrent_kernel": perm(mod.weight_hh_l0.grad.numpy().T)}
        if use_bias:
            gi, gh = perm(mod.bias_ih_l0.grad.numpy()), perm(mod.bias_hh_l0.grad.numpy())
            # rnn/lstm: our one bias is torch's two added together, so its gradient is either
            g["h.bias"] = np.stack([gi, gh]) if layer == "gru" else gi
        return g
    return mod, to_ours


def _compare(layer, batch, steps, features, units, return_sequences, seed=0, use_bias=True,
             extra="", nonlinearity="tanh", go_backwards=False):
    rng = np.random.default_rng(seed)
    m = nnc.compile(_source(layer, batch, steps, features, units, return_sequences, extra))
    g = GATES[layer]
    params = {"h.kernel": rng.normal(0, 0.6, (features, g * units)),
              "h.recurrent_kernel": rng.normal(0, 0.6, (units, g * units))}
    if use_bias:
        params["h.bias"] = rng.normal(0, 0.5, (2, g * units) if layer == "gru" else (g * units,))
    params = {k: v.astype(np.float32) for k, v in params.items()}
    assert {k: v.shape for k, v in m.params.items()} == {**{k: v.shape for k, v in params.items()},
                                                           "dx": (batch, steps, features)}
    m.set_params(params)
    x = rng.normal(0, 1, (batch, steps, features)).astype(np.float32)
    out_shape = (batch, steps, units) if return_sequences else (batch, units)
    r = rng.uniform(0.5, 1.5, out_shape).astype(np.float32) * rng.choice([-1, 1], out_shape).astype(np.float32)

    ours = m.forward(x=x)
    loss, grads = m.loss_and_grads(x=x, r=r)

    mod, to_ours = _torch_module(layer, features, units, params, use_bias, nonlinearity)
    xt = torch.tensor(x[:, ::-1].copy() if go_backwards else x, requires_grad=True)
    seq = mod(xt)[0]                                   # [B, T, units], in processing order
    ref = seq if return_sequences else seq[:, -1]
    (ref * torch.tensor(r)).sum().backward()
    x_grad = xt.grad.numpy()[:, ::-1] if go_backwards else xt.grad.numpy()

    assert ours.dtype == np.float32 and ours.shape == out_shape
    np.testing.assert_allclose(ours, ref.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg="forward")
    assert loss == pytest.approx(float((ref * torch.tensor(r)).sum()), rel=1e-4, abs=1e-4)
    expected = {**to_ours(), "dx": x_grad}
    assert set(grads) == set(expected)
    for name, want in expected.items():
        assert grads[name].dtype == np.float32, name
        np.testing.assert_allclose(grads[name], want, rtol=RTOL, atol=ATOL, err_msg=f"grad.{name}")


# batch 1, T = 1 (unrolled: UNROLL_MAX_LENGTH), T = 7 (a scan, and a reverse scan for the
# gradient), units != F, both output modes
SHAPES = [(1, 1, 3, 4), (2, 7, 3, 5), (3, 4, 6, 2), (1, 7, 1, 3)]


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}F{}U{}".format(*s))
@pytest.mark.parametrize("layer", ["rnn", "lstm", "gru"])
def test_forward_and_every_gradient_match_torch(layer, shape, return_sequences):
    _compare(layer, *shape, return_sequences)


@pytest.mark.parametrize("layer", ["rnn", "lstm", "gru"])
def test_without_bias(layer):
    _compare(layer, 2, 5, 3, 4, True, seed=1, use_bias=False, extra=", use_bias=false")


@pytest.mark.parametrize("layer", ["rnn", "lstm", "gru"])
def test_go_backwards_reads_the_sequence_reversed(layer):
    # Keras: the sequence is processed from the last step; return_sequences gives the outputs in
    # processing order, i.e. torch run on the flipped input
    for steps in (UNROLL_MAX_LENGTH, 6):   # unrolled, and a reverse scan
        _compare(layer, 2, steps, 3, 4, True, seed=2, extra=", go_backwards=true", go_backwards=True)
        _compare(layer, 2, steps, 3, 4, False, seed=3, extra=", go_backwards=true", go_backwards=True)


def test_rnn_relu_activation():
    _compare("rnn", 2, 6, 3, 4, True, seed=4, extra=", activation=relu", nonlinearity="relu")


# ---- layout, initialisation, symbolic batch, diagnostics ------------------------------------

def _model(body: str, x="f32[B, 6, 3]"):
    return nnc.compile(f"""
model M {{
    input  x: {x}
    target y: f32[B, 1]
    {body}
    out = dense(h, 1)
    output out
    loss mse(out, y)
    optimizer adam()
}}""")


def test_keras_parameter_layout_and_initial_values():
    m = _model("h = lstm(x, 5)")
    p = m.params
    assert p["h.kernel"].shape == (3, 20) and p["h.recurrent_kernel"].shape == (5, 20)
    # unit_forget_bias: bias_initializer (zeros) for i, ones for f, zeros for c and o
    np.testing.assert_array_equal(p["h.bias"], np.r_[np.zeros(5), np.ones(5), np.zeros(10)])
    assert np.abs(p["h.kernel"]).max() <= np.sqrt(6 / (3 + 20))                  # glorot_uniform
    assert np.abs(p["h.recurrent_kernel"]).max() <= np.sqrt(6 / (5 + 20))        # (Keras: orthogonal)
    assert p["h.kernel"].std() > 0.1 and p["h.recurrent_kernel"].std() > 0.1

    np.testing.assert_array_equal(_model("h = lstm(x, 5, unit_forget_bias=false)").params["h.bias"], 0)
    b = _model("h = lstm(x, 5, bias_initializer=normal(stddev=0.1))").params["h.bias"]
    np.testing.assert_array_equal(b[5:10], 1)
    assert 0.02 < b[np.r_[0:5, 10:20]].std() < 0.3

    g = _model("h = gru(x, 5)").params
    assert g["h.kernel"].shape == (3, 15) and g["h.recurrent_kernel"].shape == (5, 15)
    assert g["h.bias"].shape == (2, 15)
    r = _model("h = rnn(x, 5, use_bias=false)").params
    assert set(r) == {"h.kernel", "h.recurrent_kernel", "out.kernel", "out.bias"}


@pytest.mark.parametrize("layer", ["rnn", "lstm", "gru"])
def test_symbolic_batch_and_sequences(layer):
    m = nnc.compile(f"""
model M {{
    input  x: f32[B, 5, 2]
    target y: f32[B, 5, 3]
    h = {layer}(x, 3, return_sequences=true)
    output h
    loss mse(h, y)
    optimizer sgd()
}}""")
    x = np.random.default_rng(5).normal(size=(6, 5, 2)).astype(np.float32)
    full = m.forward(x=x)
    assert full.shape == (6, 5, 3)
    for n in (1, 4):
        np.testing.assert_allclose(m.forward(x=x[:n]), full[:n], rtol=1e-6, atol=1e-7)
    # causality: step t only sees x[:, :t+1]
    x2 = x.copy()
    x2[:, 3:] = 0
    np.testing.assert_allclose(m.forward(x=x2)[:, :3], full[:, :3], rtol=1e-6, atol=1e-7)


def test_regularizers_reach_the_loss():
    m = _model("h = gru(x, 4, kernel_regularizer=l2(0.5), recurrent_regularizer=l1(0.25), "
               "bias_regularizer=l2(0.125))")
    x = np.zeros((2, 6, 3), np.float32)
    y = np.zeros((2, 1), np.float32)
    m.set_params({"h.bias": np.full((2, 12), 0.5, np.float32), "out.kernel": np.zeros((4, 1), np.float32)})
    p = m.params
    loss, _ = m.loss_and_grads(x=x, y=y)
    expected = (0.5 * (p["h.kernel"] ** 2).sum() + 0.25 * np.abs(p["h.recurrent_kernel"]).sum()
                + 0.125 * (p["h.bias"] ** 2).sum())
    assert loss == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("body,x,message", [
    ("h = lstm(x, 4)", "f32[B, 6]", r"lstm: expects a \[batch, time, features\] input, got a tensor of rank 2"),
    ("h = gru(x, 4)", "f32[B, T, 3]", "gru: the time dimension must be static"),
    ("h = rnn(x, 0)", "f32[B, 6, 3]", "rnn: units must be > 0"),
    ("h = rnn(x, 4, activation=prelu)", "f32[B, 6, 3]", "activation 'prelu' has its own parameters"),
    ("h = lstm(x, 4, recurent_initializer=zeros)", "f32[B, 6, 3]", "did you mean 'recurrent_initializer'"),
])
def test_user_errors_are_located_diagnostics(body, x, message):
    with pytest.raises(CompileError) as info:
        _model(body, x)
    text = info.value.render()
    assert re.search(message, text), text
    assert re.match(r"<string>:5:\d+: error: ", text), text


def test_short_sequences_unroll_and_long_ones_loop_projecting_the_input_once():
    def counts(steps):
        m = _model("h = lstm(x, 4)", f"f32[B, {steps}, 3]")
        return m.unoptimized_graph("predict").op_counts()
    short, long = counts(UNROLL_MAX_LENGTH), counts(UNROLL_MAX_LENGTH + 4)
    # one input projection, one recurrent matmul per step (in the body), plus the dense layer
    assert "scan" not in short and short["matmul"] == 1 + UNROLL_MAX_LENGTH + 1
    assert long["scan"] == 1 and long["matmul"] == 1 + 1


@pytest.mark.parametrize("layer", ["rnn", "lstm", "gru"])
def test_long_sequences_are_one_scan_whatever_their_length(layer):
    def train_step(steps):
        m = _model(f"h1 = {layer}(x, 4, return_sequences=true)\n    h = {layer}(h1, 3)", f"f32[B, {steps}, 3]")
        return m.graph("train_step")
    g50, g200 = train_step(50), train_step(200)
    assert len(g50.nodes) == len(g200.nodes)
    assert g200.op_counts()["scan"] == 4          # two layers, forward and backward


@pytest.mark.parametrize("layer", ["rnn", "lstm", "gru"])
def test_signature_contract(layer):
    p = inspect.signature(LAYERS[layer]).parameters
    assert list(p)[:3] == ["ctx", "x", "units"]
    ann = {k: (v.annotation if isinstance(v.annotation, str) else v.annotation.__name__) for k, v in p.items()}
    assert ann["x"] == "Tensor" and ann["units"] == "int"
    assert ann["activation"] == "Activation" and p["activation"].default == "tanh"
    assert ann["return_sequences"] == "bool" and p["return_sequences"].default is False
    assert ann["use_bias"] == "bool" and p["use_bias"].default is True
    for name, default in [("kernel_initializer", "glorot_uniform"), ("recurrent_initializer", "glorot_uniform"),
                          ("bias_initializer", "zeros")]:
        assert ann[name] == "Initializer" and p[name].default == default
    for name in ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer"):
        assert ann[name] == "Regularizer" and p[name].default is None
    if layer != "rnn":
        assert ann["recurrent_activation"] == "Activation" and p["recurrent_activation"].default == "sigmoid"
    if layer == "lstm":
        assert p["unit_forget_bias"].default is True


# ---- the example ----------------------------------------------------------------------------

def test_sine_rnn_example_learns_to_predict_the_next_value(capsys):
    """examples/sine_rnn.nn: an lstm predicting the next sample of a noisy sine.

    On the validation fifth (seed 0), predicting the last value (t19) scores an MSE of
    0.0232, and the noise on `next` (N(0, 0.05^2)) puts a floor of 0.0025 under any
    model (least squares over the 20 values reaches 0.0024 on this split). The lstm
    ends at about 0.0025; the target, 0.005, is twice the noise floor and under a
    quarter of the persistence baseline, with room for BLAS rounding differences."""
    from nncompiler.cli import main
    assert main(["run", "examples/sine_rnn.nn", "--quiet"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch=")][-1]
    metrics = {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.e]+)", line)}
    assert metrics["epoch"] == 20
    assert metrics["val_loss"] < 0.005, line
