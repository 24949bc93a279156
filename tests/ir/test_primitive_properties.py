"""The properties each primitive declares in the table hold for what numpy (the oracle,
called directly, not through any backend) computes."""
import numpy as np
import pytest

from nncompiler.ir import PRIMITIVES

# the binary/compare primitives as numpy ufuncs
UFUNC = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "pow": np.power,
         "maximum": np.maximum, "minimum": np.minimum, "lt": np.less, "le": np.less_equal,
         "gt": np.greater, "ge": np.greater_equal, "eq": np.equal, "ne": np.not_equal}
VALUES = np.array([-2.5, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0, np.inf, -np.inf, np.nan], np.float32)


@pytest.mark.parametrize("op", sorted(UFUNC))
def test_commutative_is_declared_exactly_for_the_ops_that_commute(op):
    a, b = np.meshgrid(VALUES, VALUES)
    with np.errstate(all="ignore"):
        ab, ba = UFUNC[op](a, b), UFUNC[op](b, a)
    commutes = bool(np.array_equal(ab, ba, equal_nan=True))
    assert PRIMITIVES[op].commutative == commutes, op


def test_every_binary_and_compare_op_is_checked_above():
    assert {n for n, p in PRIMITIVES.items() if p.kind in ("binary", "compare")} == set(UFUNC)


def test_views_are_movement_ops_of_one_operand_and_the_identity_marker():
    views = {n for n, p in PRIMITIVES.items() if p.view}
    assert views == {"reshape", "transpose", "broadcast_to", "slice", "stop_gradient"}
    assert all(PRIMITIVES[n].arity == 1 for n in views)


def test_fold_leaves_exactly_arguments_and_random_draws():
    assert {n for n, p in PRIMITIVES.items() if not p.foldable} == {
        "arg", "random_uniform", "random_normal", "rng_uniform"}


def test_elementwise_ops_may_overwrite_any_operand_and_nothing_else_does():
    for name, p in PRIMITIVES.items():
        if p.elementwise and not p.view:
            assert p.overwrites == tuple(range(p.arity)), name
        else:
            assert p.overwrites == (), name


@pytest.mark.parametrize("op, reduce", [("sum", np.add.reduce), ("max", np.maximum.reduce)])
def test_reduction_identities_leave_any_value_unchanged(op, reduce):
    identity = {"zero": np.float32(0), "lowest": np.float32(-np.inf)}[PRIMITIVES[op].identity]
    for v in VALUES[~np.isnan(VALUES)]:
        assert reduce(np.array([identity, v], np.float32)) == v


def test_formulas_are_written_for_the_ops_backends_could_disagree_on():
    for op in ("sigmoid", "pow", "div", "sign", "log1p", "maximum", "minimum"):
        assert PRIMITIVES[op].formula, op
