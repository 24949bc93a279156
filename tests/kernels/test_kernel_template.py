"""KernelTemplate.render: every slot filled, nothing else accepted, later-stage slots kept."""
import pytest

from nncompiler.kernels import matmul, pointwise, reduce
from nncompiler.kernels.template import KernelTemplate, TemplateError


def test_slots_are_read_from_the_text():
    t = KernelTemplate("t", "def {name}({params}):\n    return {value}\n")
    assert t.slots == {"name", "params", "value"}
    assert t.render(name="f", params="x", value="x + 1") == "def f(x):\n    return x + 1\n"


def test_missing_and_unknown_slots_are_named():
    t = KernelTemplate("t", "{a} {b}")
    with pytest.raises(TemplateError, match=r"kernel template t: missing b; unknown c \(its slots: a, b\)"):
        t.render(a="1", c="2")


def test_a_slot_can_be_left_for_a_later_stage():
    t = KernelTemplate("t", "{decorator}\ndef k():\n    pass\n")
    assert t.render(decorator="{decorator}").replace("{decorator}", "@triton.jit").startswith("@triton.jit\n")


@pytest.mark.parametrize("template,slots", [
    (pointwise.POINTWISE, {"decorator", "name", "params", "header", "xnumel", "body"}),
    (pointwise.COMBO, {"decorator", "name", "params", "header", "top", "segments"}),
    (pointwise.COMBO_SEGMENT, {"keyword", "end", "first", "k", "what", "sfx", "xnumel", "body"}),
    (reduce.PERSISTENT, {"decorator", "name", "params", "header", "xnumel", "rnumel", "body"}),
    (reduce.LOOPED, {"decorator", "name", "params", "header", "xnumel", "rnumel", "pre", "loop", "split",
                    "post"}),
    (reduce.SPLIT_FINISH, {"naccs", "split_store", "split_init", "split_sum"}),
    (matmul.MATMUL, {"decorator", "name", "params", "header", "M", "N", "K", "top", "a_base", "b_base",
                     "acc_dtype", "descriptors", "load_a", "load_b", "dot", "colsum_init", "colsum",
                     "ws_extra", "split_store", "split_sum", "epilogue"}),
    (matmul.LOAD_A, {"sm", "sk", "other"}),
    (matmul.LOAD_B, {"sk", "sn", "other"}),
    (matmul.TMA_OR_POINTERS, {"var", "tma", "pointers"}),
    (matmul.TMA_DESCRIPTORS, {"lines"}),
])
def test_the_backends_templates_have_the_slots_codegen_fills(template, slots):
    assert template.slots == slots
