"""Every optimizer: several steps of the IR update (run on the numpy backend) equal a
plain numpy transcription of the published formula step for step, and torch.optim."""
import numpy as np
import pytest
import torch

from nncompiler.backends.numpy import compile_graph
from nncompiler.ir import Builder
from nncompiler.ir.shapes import TensorType
from nncompiler.library import OPTIMIZERS, OptimizerDef

STEPS = 6
SHAPE = (3, 4)
rng = np.random.default_rng(3)
P0 = rng.normal(size=SHAPE).astype(np.float32)
GRADS = [rng.normal(size=SHAPE).astype(np.float32) for _ in range(STEPS)]


def step_graph(opt: OptimizerDef, dtype="f32"):
    """One update as a graph: arguments p, g, slot.<name>, hp.<name>, step; outputs p and slot.<name>."""
    b = Builder(f"{opt.name}_step")
    ty = TensorType(dtype, SHAPE)
    p = b.argument("p", "param", ty)
    g = b.argument("g", "input", ty)
    slots = {name: b.argument(f"slot.{name}", "state", ty) for name, _ in opt.slots}
    hp = {name: b.argument(f"hp.{name}", "input", TensorType("f32", ())) for name in opt.defaults}
    t = b.argument("step", "input", TensorType("f32", ()))
    new_p, new_slots = opt.update(b, p, g, slots, hp, t)
    assert set(new_slots) == set(slots)
    return compile_graph(b.build({"p": new_p, **{f"slot.{k}": v for k, v in new_slots.items()}}))


def run_ours(name, kwargs):
    opt = OPTIMIZERS[name]
    hp = opt.hyperparams(kwargs)
    fn = step_graph(opt)
    p = P0.copy()
    slots = {k: np.full(SHAPE, v, np.float32) for k, v in opt.slot_init(hp).items()}
    history = []
    for t, g in enumerate(GRADS, start=1):
        args = {"p": p, "g": g, "step": np.float32(t), **{f"slot.{k}": v for k, v in slots.items()},
                **{f"hp.{k}": np.float32(v) for k, v in hp.items()}}
        out = fn(args)
        p = np.asarray(out["p"])
        slots = {k: np.asarray(out[f"slot.{k}"]) for k in slots}
        assert p.dtype == np.float32
        history.append((p, slots))
    return history


def run_numpy(name, hp):
    """The published formulas, transcribed (float32 like the graph)."""
    f = np.float32
    p = P0.copy()
    s1 = np.zeros(SHAPE, f)
    s2 = np.zeros(SHAPE, f)
    if name == "adagrad":
        s1[:] = hp["initial_accumulator"]
    history = []
    for t, g in enumerate(GRADS, start=1):
        lr, eps = f(hp["lr"]), f(hp.get("epsilon", 0.0))
        if name == "sgd":
            s1 = f(hp["momentum"]) * s1 - lr * g
            p = p + s1
        elif name == "adagrad":
            s1 = s1 + g * g
            p = p - lr * g / (np.sqrt(s1) + eps)
        elif name == "rmsprop":
            rho = f(hp["rho"])
            s1 = rho * s1 + (f(1) - rho) * g * g
            p = p - lr * g / (np.sqrt(s1) + eps)
        elif name == "adam":
            b1, b2 = f(hp["beta1"]), f(hp["beta2"])
            s1 = b1 * s1 + (f(1) - b1) * g
            s2 = b2 * s2 + (f(1) - b2) * g * g
            m_hat = s1 / (f(1) - b1 ** f(t))
            v_hat = s2 / (f(1) - b2 ** f(t))
            p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        history.append((p, s1, s2))
    return history


def run_torch(name, hp):
    w = torch.nn.Parameter(torch.tensor(P0))
    if name == "sgd":
        opt = torch.optim.SGD([w], lr=hp["lr"], momentum=hp["momentum"])
    elif name == "adagrad":
        opt = torch.optim.Adagrad([w], lr=hp["lr"], initial_accumulator_value=hp["initial_accumulator"],
                                  eps=hp["epsilon"])
    elif name == "rmsprop":
        opt = torch.optim.RMSprop([w], lr=hp["lr"], alpha=hp["rho"], eps=hp["epsilon"])
    else:
        opt = torch.optim.Adam([w], lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["epsilon"])
    out = []
    for g in GRADS:
        w.grad = torch.tensor(g)
        opt.step()
        out.append(w.detach().numpy().copy())
    return out


CASES = [
    ("sgd", {}),
    ("sgd", {"learning_rate": 0.1, "momentum": 0.9}),
    ("adagrad", {}),
    ("adagrad", {"lr": 0.5, "initial_accumulator_value": 0.3, "epsilon": 1e-3}),
    ("rmsprop", {}),
    ("rmsprop", {"learning_rate": 0.05, "rho": 0.8}),
    ("adam", {}),
    ("adam", {"lr": 0.1, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-4}),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_update_matches_formula_and_torch(name, kwargs):
    hp = OPTIMIZERS[name].hyperparams(kwargs)
    ours = run_ours(name, kwargs)
    ref = run_numpy(name, hp)
    tor = run_torch(name, hp)
    for t, ((p, slots), (rp, s1, s2), tp) in enumerate(zip(ours, ref, tor), start=1):
        np.testing.assert_allclose(p, rp, rtol=1e-5, atol=1e-7, err_msg=f"step {t}: params vs formula")
        np.testing.assert_allclose(p - P0, rp - P0, rtol=1e-4, atol=1e-7, err_msg=f"step {t}: update vs formula")
        np.testing.assert_allclose(list(slots.values())[0], s1, rtol=1e-5, atol=1e-7, err_msg=f"step {t}: slot")
        if name == "adam":
            np.testing.assert_allclose(slots["v"], s2, rtol=1e-5, atol=1e-9, err_msg=f"step {t}: v")
        np.testing.assert_allclose(p, tp, rtol=1e-5, atol=1e-7, err_msg=f"step {t}: params vs torch")
    assert not np.allclose(ours[-1][0], P0)       # it did move


def test_keras_defaults_and_aliases():
    assert OPTIMIZERS["sgd"].defaults == {"lr": 0.01, "momentum": 0.0, "nesterov": 0.0}
    assert OPTIMIZERS["adagrad"].defaults == {"lr": 0.001, "initial_accumulator": 0.1, "epsilon": 1e-7}
    assert OPTIMIZERS["rmsprop"].defaults == {"lr": 0.001, "rho": 0.9, "epsilon": 1e-7}
    assert OPTIMIZERS["adam"].defaults == {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-7}
    assert OPTIMIZERS["adam"].hyperparams({"learning_rate": 0.5, "beta_1": 0.5})["beta1"] == 0.5
    with pytest.raises(ValueError, match="did you mean"):
        OPTIMIZERS["adam"].hyperparams({"beta_3": 0.5})
    assert OPTIMIZERS["adagrad"].slot_init() == {"accumulator": 0.1}
    assert OPTIMIZERS["adagrad"].slot_init(OPTIMIZERS["adagrad"].hyperparams(
        {"initial_accumulator_value": 0.7})) == {"accumulator": 0.7}
    assert OPTIMIZERS["adam"].slot_init() == {"m": 0.0, "v": 0.0}
    for opt in OPTIMIZERS.values():
        assert all(v in opt.defaults for v in opt.aliases.values()), opt.name


def test_update_keeps_f64_params_f64():
    fn = step_graph(OPTIMIZERS["adam"], dtype="f64")
    hp = {f"hp.{k}": np.float32(v) for k, v in OPTIMIZERS["adam"].defaults.items()}
    out = fn({"p": P0.astype(np.float64), "g": GRADS[0].astype(np.float64), "slot.m": np.zeros(SHAPE),
              "slot.v": np.zeros(SHAPE), "step": np.float32(1), **hp})
    assert np.asarray(out["p"]).dtype == np.float64
