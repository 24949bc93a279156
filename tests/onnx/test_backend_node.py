"""ONNX's own conformance cases (onnx.backend.test, kind "node": one operator each, with
inputs and expected outputs ONNX computed) run through nnc's `onnx.backend.base.Backend`.

A case is collected when every operator in it is in nnc's op table; EXCLUDE names the
collected cases nnc does not support, each with its reason. Outputs are compared by
ONNX's own runner (`assert_similar_outputs`, the case's rtol/atol: 1e-3/1e-7 by default).
The summary per op is in docs/onnx.md (regenerate with `python -m tests.onnx.node_report`).
"""
import re
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx.backend.test.loader import load_model_tests  # noqa: E402
from onnx.backend.test.runner import Runner  # noqa: E402

from nncompiler.onnx_backend import NncBackend  # noqa: E402
from nncompiler.onnx.importer import DTYPES, MIN_OPSET, ONNX_TYPE_NAMES  # noqa: E402
from nncompiler.onnx.table import OPS  # noqa: E402

# case-name regex -> why nnc does not run it
EXCLUDE = {
    r"^test_training_dropout": "Dropout with training_mode=true: nnc imports the inference graph",
    r"^test_onehot_": "OneHot with a float depth input: not yet pinned at import time",
    r"^test_range_float_type_positive_delta$": "Range on float graph inputs: not yet pinned at import time",
    r"^test_scatter_elements_with_reduction_(max|min|mul)$": "ScatterElements reduction max/min/mul: no primitive",
    r"^test_scatternd_(max|min|multiply)": "ScatterND reduction max/min/mul: no primitive",
    r"(^test_slice_start_out_of_bounds$|^test_split_zero_size|^test_tri[lu]_zero$|^test_shape_start_greater_than_end$"
    r"|^test_reduce_(log_sum_exp|max|min)_empty_set|^test_constantofshape_int_shape_zero$"
    r"|^test_layer_normalization_(2d_axis0|2d_axis_negative_2|3d_axis0_epsilon|3d_axis_negative_3_epsilon|4d_axis0|4d_axis_negative_4)_expanded|^test_rotary_embedding.*_expanded$)": "produces or reduces an empty tensor: the IR has no zero-size tensors",
    r"^test_batchnorm_.*_training_mode$": "BatchNormalization training_mode=1: nnc imports the inference graph",
    r"^test_maxpool_with_argmax_": "MaxPool's Indices output (and storage_order=1) is not lowered",
    r"^test_causal_conv_with_state_kernel_size_one_expanded$": "builds an empty tensor: the IR has no zero-size tensors",
    r"^test_lstm_with_peepholes$": "LSTM peepholes and sequence_lens are not lowered",
    r"^test_einsum_batch_diagonal$": "Einsum with '...' and a diagonal (repeated letter) is not lowered",
    r"^test_reduce_min_bool_inputs$": "ReduceMin on bool: not lowered (negation of bool)",
}


def excluded(case) -> str | None:
    """Why a case is not run: an opset before 13, a data type nnc has no dtype for, or EXCLUDE."""
    opset = max((o.version for o in case.model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        return f"opset {opset}: nnc imports opset {MIN_OPSET} and later"
    g = case.model.graph
    for vi in list(g.input) + list(g.output):
        t = vi.type.tensor_type.elem_type
        if t not in DTYPES:
            return f"data type {ONNX_TYPE_NAMES.get(t, t)}: nnc has float, double, int32, int64, bool"
    for pattern, why in EXCLUDE.items():
        if re.search(pattern, case.name):
            return why
    return None


def node_cases():
    """(case, why-excluded-or-None) for every node case whose operators nnc lowers."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = load_model_tests(kind="node")
    out = []
    for case in cases:
        ops = {n.op_type for n in case.model.graph.node}
        if ops and ops <= set(OPS):
            out.append((case, excluded(case)))
    return out


def _array(v):
    """Some cases store values as TensorProto (as ONNX's runner does, convert them)."""
    return onnx.numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else v


def run_case(case) -> None:
    rep = NncBackend.prepare(case.model, "CPU")
    for inputs, expected in case.data_sets:
        got = rep.run([_array(i) for i in inputs])
        Runner.assert_similar_outputs([_array(e) for e in expected], list(got), rtol=case.rtol, atol=case.atol)


_CASES = node_cases()


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=[pytest.mark.skip(reason=why)] if why else [])
                                  for c, why in _CASES])
def test_node(case):
    with np.errstate(all="ignore"):
        run_case(case)


def test_enough_cases_pass_the_suite():
    """The issue's goal, kept: at least 600 node cases collected and not excluded."""
    assert sum(1 for _, why in _CASES if why is None) >= 600


def test_the_documented_counts_are_current():
    """docs/onnx.md's per-op table says what this suite runs: per op, the collected cases that are
    not excluded pass (test_node fails otherwise), so pass = collected - excluded and fail = 0."""
    import collections
    import pathlib
    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "onnx.md").read_text()
    documented = {m[0]: tuple(map(int, m[1:])) for m in re.findall(
        r"^\| ([A-Za-z(][\w ,()]*?) \| (\d+) \| (\d+) \| (\d+) \|$", text, re.M)}
    counts = collections.defaultdict(lambda: [0, 0, 0])
    for case, why in _CASES:
        ops = [n.op_type for n in case.model.graph.node]
        counts[ops[0] if len(ops) == 1 else "(function bodies, several ops)"][2 if why else 0] += 1
    assert documented == {op: tuple(c) for op, c in counts.items()}, \
        "stale: regenerate the table with `PYTHONPATH=. python tests/onnx/node_report.py`"
    total = re.search(r"\*\*(\d+) pass, (\d+) fail, (\d+) excluded\*\*", text).groups()
    assert tuple(map(int, total)) == tuple(sum(c[k] for c in counts.values()) for k in range(3))
