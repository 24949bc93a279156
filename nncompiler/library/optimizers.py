"""Optimizers as IR: one `OptimizerDef` per algorithm.

The training step graph calls `update(b, p, g, slots, hp, step)` once per
parameter. Hyper-parameters arrive as scalar node ids (the learning rate is a
graph argument, so a schedule can change it without recompiling) and `step` is
the 1-based step count as an f32 scalar node. State ("slots") lives outside the
graph and is threaded through it: each update returns the new slot values.

The formulas are exactly these (g the gradient):
  sgd       v = momentum*v - lr*g;  p = p + v
  adagrad   a = a + g^2;  p = p - lr*g / (sqrt(a) + eps),  a starts at initial_accumulator
  rmsprop   s = rho*s + (1-rho)*g^2;  p = p - lr*g / (sqrt(s) + eps)
  adam      m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
            p = p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import did_you_mean
from ..ir.graph import Builder

UpdateFn = Callable[[Builder, int, int, dict, dict, int], tuple]


@dataclass(frozen=True)
class OptimizerDef:
    name: str
    defaults: dict[str, float]                 # Keras's defaults, under our names
    aliases: dict[str, str]                    # Keras's names -> ours (learning_rate -> lr)
    slots: list[tuple[str, float]]             # per-parameter state and its default initial value
    update: UpdateFn
    # slot name -> hyper-parameter whose value is that slot's initial value
    # (adagrad's accumulator starts at `initial_accumulator`); see `slot_init`
    slot_from_hp: dict[str, str] = field(default_factory=dict)

    def hyperparams(self, kwargs: dict | None = None) -> dict[str, float]:
        """Defaults overridden by user keywords (Keras names accepted); rejects unknown names."""
        out = dict(self.defaults)
        for key, value in (kwargs or {}).items():
            ours = self.aliases.get(key, key)
            if ours not in self.defaults:
                known = list(self.defaults) + list(self.aliases)
                raise ValueError(f"optimizer '{self.name}' has no parameter '{key}'{did_you_mean(key, known)}")
            out[ours] = float(value)
        return out

    def slot_init(self, hyperparams: dict[str, float] | None = None) -> dict[str, float]:
        """Initial value of each slot, honouring hyper-parameters that set it."""
        hp = hyperparams or self.defaults
        return {name: float(hp.get(self.slot_from_hp.get(name, ""), init)) for name, init in self.slots}


def _c(b: Builder, v: float, like: int) -> int:
    return b.scalar(v, b.dtype(like))


def _hp(b: Builder, hp: dict, name: str, like: int) -> int:
    """A hyper-parameter node in the parameter's dtype (they are built as f32 scalars)."""
    h = hp[name]
    return h if b.dtype(h) == b.dtype(like) else b.cast(h, dtype=b.dtype(like))


def _is_zero(b: Builder, node_id: int) -> bool:
    node = next((n for n in reversed(b.nodes) if n.id == node_id), None)
    return node is not None and node.op == "const" and node.attr["value"] == 0


def _sgd(b, p, g, slots, hp, step):
    if _is_zero(b, hp["momentum"]):  # plain gradient descent: the velocity slot stays untouched
        return b.sub(p, b.mul(_hp(b, hp, "lr", p), g)), {"velocity": slots["velocity"]}
    v = b.sub(b.mul(_hp(b, hp, "momentum", p), slots["velocity"]), b.mul(_hp(b, hp, "lr", p), g))
    return b.add(p, v), {"velocity": v}


def _adagrad(b, p, g, slots, hp, step):
    a = b.add(slots["accumulator"], b.mul(g, g))
    denom = b.add(b.sqrt(a), _hp(b, hp, "epsilon", p))
    return b.sub(p, b.div(b.mul(_hp(b, hp, "lr", p), g), denom)), {"accumulator": a}


def _rmsprop(b, p, g, slots, hp, step):
    rho = _hp(b, hp, "rho", p)
    s = b.add(b.mul(rho, slots["rms"]), b.mul(b.sub(_c(b, 1.0, p), rho), b.mul(g, g)))
    denom = b.add(b.sqrt(s), _hp(b, hp, "epsilon", p))
    return b.sub(p, b.div(b.mul(_hp(b, hp, "lr", p), g), denom)), {"rms": s}


def _adam(b, p, g, slots, hp, step):
    one = _c(b, 1.0, p)
    b1, b2 = _hp(b, hp, "beta1", p), _hp(b, hp, "beta2", p)
    t = step if b.dtype(step) == b.dtype(p) else b.cast(step, dtype=b.dtype(p))
    m = b.add(b.mul(b1, slots["m"]), b.mul(b.sub(one, b1), g))
    v = b.add(b.mul(b2, slots["v"]), b.mul(b.sub(one, b2), b.mul(g, g)))
    m_hat = b.div(m, b.sub(one, b.pow(b1, t)))
    v_hat = b.div(v, b.sub(one, b.pow(b2, t)))
    denom = b.add(b.sqrt(v_hat), _hp(b, hp, "epsilon", p))
    return b.sub(p, b.div(b.mul(_hp(b, hp, "lr", p), m_hat), denom)), {"m": m, "v": v}


_LR = {"learning_rate": "lr"}

OPTIMIZERS = {
    "sgd": OptimizerDef("sgd", {"lr": 0.01, "momentum": 0.0}, dict(_LR),
                        [("velocity", 0.0)], _sgd),
    "adagrad": OptimizerDef("adagrad", {"lr": 0.001, "initial_accumulator": 0.1, "epsilon": 1e-7},
                            {**_LR, "initial_accumulator_value": "initial_accumulator"},
                            [("accumulator", 0.1)], _adagrad,
                            slot_from_hp={"accumulator": "initial_accumulator"}),
    "rmsprop": OptimizerDef("rmsprop", {"lr": 0.001, "rho": 0.9, "epsilon": 1e-7}, dict(_LR),
                            [("rms", 0.0)], _rmsprop),
    "adam": OptimizerDef("adam", {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-7},
                         {**_LR, "beta_1": "beta1", "beta_2": "beta2"},
                         [("m", 0.0), ("v", 0.0)], _adam),
}
