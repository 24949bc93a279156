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
  sgd(nesterov=1)  v as sgd;  p = p + momentum*v - lr*g
  nadam     mu_t = b1*(1 - 0.5*0.96^(0.004*t)),  P = P*mu_t (the product of every mu so far)
            m, v as adam;  m_hat = mu_{t+1}*m / (1 - P*mu_{t+1}) + (1 - mu_t)*g / (1 - P)
            p = p - lr * m_hat / (sqrt(v / (1 - b2^t)) + eps)
  adamax    m as adam;  u = max(b2*u, |g|);  p = p - lr / (1 - b1^t) * m / (u + eps)
  adadelta  a = rho*a + (1-rho)*g^2;  d = sqrt(s + eps) / sqrt(a + eps) * g
            s = rho*s + (1-rho)*d^2;  p = p - lr*d
  ftrl      (Keras's, with l2 += beta / (2 lr)) n' = n + g^2
            z = z + g + 2*l2_shrinkage*p - (n'^-power - n^-power) / lr * p
            p = (clip(z, -l1, l1) - z) / (n'^-power / lr + 2*l2) where |z| > l1, else 0
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
    mu, lr = _hp(b, hp, "momentum", p), _hp(b, hp, "lr", p)
    v = b.sub(b.mul(mu, slots["velocity"]), b.mul(lr, g))
    if _is_zero(b, hp["nesterov"]):
        return b.add(p, v), {"velocity": v}
    # Keras's nesterov step looks ahead along the new velocity; a hyper-parameter that is a
    # graph argument (tests) chooses at run time
    ahead = b.sub(b.mul(mu, v), b.mul(lr, g))
    return b.add(p, b.where(b.gt(_hp(b, hp, "nesterov", p), _c(b, 0.0, p)), ahead, v)), {"velocity": v}


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


def _as_param_dtype(b, step, p):
    return step if b.dtype(step) == b.dtype(p) else b.cast(step, dtype=b.dtype(p))


def _nadam(b, p, g, slots, hp, step):
    # the product of the momentum schedule has no closed form, so it is a slot (one value
    # repeated over the parameter's shape, like every slot here)
    one = _c(b, 1.0, p)
    b1, b2 = _hp(b, hp, "beta1", p), _hp(b, hp, "beta2", p)
    t = _as_param_dtype(b, step, p)

    def mu(at):
        return b.mul(b1, b.sub(one, b.mul(_c(b, 0.5, p), b.pow(_c(b, 0.96, p), b.mul(_c(b, 0.004, p), at)))))
    mu_t, mu_next = mu(t), mu(b.add(t, one))
    prod = b.mul(slots["mu_product"], mu_t)
    m = b.add(b.mul(b1, slots["m"]), b.mul(b.sub(one, b1), g))
    v = b.add(b.mul(b2, slots["v"]), b.mul(b.sub(one, b2), b.mul(g, g)))
    m_hat = b.add(b.div(b.mul(mu_next, m), b.sub(one, b.mul(prod, mu_next))),
                  b.div(b.mul(b.sub(one, mu_t), g), b.sub(one, prod)))
    v_hat = b.div(v, b.sub(one, b.pow(b2, t)))
    denom = b.add(b.sqrt(v_hat), _hp(b, hp, "epsilon", p))
    new_p = b.sub(p, b.div(b.mul(_hp(b, hp, "lr", p), m_hat), denom))
    return new_p, {"m": m, "v": v, "mu_product": prod}


def _adamax(b, p, g, slots, hp, step):
    one = _c(b, 1.0, p)
    b1, b2 = _hp(b, hp, "beta1", p), _hp(b, hp, "beta2", p)
    t = _as_param_dtype(b, step, p)
    m = b.add(b.mul(b1, slots["m"]), b.mul(b.sub(one, b1), g))
    u = b.maximum(b.mul(b2, slots["u"]), b.abs(g))
    lr_t = b.div(_hp(b, hp, "lr", p), b.sub(one, b.pow(b1, t)))
    return b.sub(p, b.mul(lr_t, b.div(m, b.add(u, _hp(b, hp, "epsilon", p))))), {"m": m, "u": u}


def _adadelta(b, p, g, slots, hp, step):
    one = _c(b, 1.0, p)
    rho, eps = _hp(b, hp, "rho", p), _hp(b, hp, "epsilon", p)
    a = b.add(b.mul(rho, slots["accum_grad"]), b.mul(b.sub(one, rho), b.mul(g, g)))
    d = b.mul(b.div(b.sqrt(b.add(slots["accum_var"], eps)), b.sqrt(b.add(a, eps))), g)
    s = b.add(b.mul(rho, slots["accum_var"]), b.mul(b.sub(one, rho), b.mul(d, d)))
    return b.sub(p, b.mul(_hp(b, hp, "lr", p), d)), {"accum_grad": a, "accum_var": s}


def _ftrl(b, p, g, slots, hp, step):
    lr, power = _hp(b, hp, "lr", p), _hp(b, hp, "lr_power", p)
    l1 = _hp(b, hp, "l1", p)
    two = _c(b, 2.0, p)
    l2 = b.add(_hp(b, hp, "l2", p), b.div(_hp(b, hp, "beta", p), b.mul(two, lr)))
    g_shrunk = b.add(g, b.mul(b.mul(two, _hp(b, hp, "l2_shrinkage", p)), p))
    n = slots["accumulator"]
    n_new = b.add(n, b.mul(g, g))
    neg_power = b.neg(power)
    sigma = b.div(b.sub(b.pow(n_new, neg_power), b.pow(n, neg_power)), lr)
    z = b.add(slots["linear"], b.sub(g_shrunk, b.mul(sigma, p)))
    quadratic = b.add(b.div(b.pow(n_new, neg_power), lr), b.mul(two, l2))
    clipped = b.where(b.lt(z, b.neg(l1)), b.neg(l1), b.where(b.gt(z, l1), l1, z))
    new_p = b.where(b.gt(b.abs(z), l1), b.div(b.sub(clipped, z), quadratic), _c(b, 0.0, p))
    return new_p, {"accumulator": n_new, "linear": z}


_LR = {"learning_rate": "lr"}

OPTIMIZERS = {
    "sgd": OptimizerDef("sgd", {"lr": 0.01, "momentum": 0.0, "nesterov": 0.0}, dict(_LR),
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
    "nadam": OptimizerDef("nadam", {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-7},
                          {**_LR, "beta_1": "beta1", "beta_2": "beta2"},
                          [("m", 0.0), ("v", 0.0), ("mu_product", 1.0)], _nadam),
    "adamax": OptimizerDef("adamax", {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-7},
                           {**_LR, "beta_1": "beta1", "beta_2": "beta2"},
                           [("m", 0.0), ("u", 0.0)], _adamax),
    "adadelta": OptimizerDef("adadelta", {"lr": 0.001, "rho": 0.95, "epsilon": 1e-7}, dict(_LR),
                             [("accum_grad", 0.0), ("accum_var", 0.0)], _adadelta),
    "ftrl": OptimizerDef("ftrl", {"lr": 0.001, "lr_power": -0.5, "initial_accumulator": 0.1, "l1": 0.0,
                                  "l2": 0.0, "l2_shrinkage": 0.0, "beta": 0.0},
                         {**_LR, "learning_rate_power": "lr_power",
                          "initial_accumulator_value": "initial_accumulator",
                          "l1_regularization_strength": "l1", "l2_regularization_strength": "l2",
                          "l2_shrinkage_regularization_strength": "l2_shrinkage"},
                         [("accumulator", 0.1), ("linear", 0.0)], _ftrl,
                         slot_from_hp={"accumulator": "initial_accumulator"}),
}
