"""library/spec.py: a bare name or a Spec becomes a Spec whose name the initializer or
regularizer table holds; anything else is refused with the table's kind in the message."""
import pytest

from nncompiler.library import initializers, regularizers
from nncompiler.library.spec import Spec, named_spec


def test_a_name_becomes_a_spec_and_a_spec_is_kept():
    assert initializers.as_spec("glorot_uniform") == Spec("glorot_uniform")
    spec = Spec("l2", (("l2", 0.01),))
    assert regularizers.as_spec(spec) is spec
    assert regularizers.as_spec(None) is None


def test_an_unknown_name_is_refused_with_a_suggestion():
    with pytest.raises(ValueError, match=r"^unknown initializer 'glorot_unifrom'; did you mean 'glorot_uniform'\?$"):
        initializers.as_spec("glorot_unifrom")
    with pytest.raises(ValueError, match=r"^unknown regularizer 'l3'"):
        regularizers.as_spec(Spec("l3"))


def test_something_that_is_not_a_name_is_refused():
    with pytest.raises(TypeError, match=r"^initializer: expected a name or Spec, got 3$"):
        initializers.as_spec(3)
    with pytest.raises(TypeError, match=r"^regularizer: expected a name or Spec, got \[\]$"):
        named_spec([], regularizers.REGULARIZERS, "regularizer")
