"""Fuzzing the front end with damaged programs: every one ends in a positioned CompileError.

A mutant is a random valid program (strategies.programs) with 1-3 random
mutations: a deleted, replaced or swapped token, two names swapped, a wrong
shape in a declaration, a huge or odd number (1e400, 99999999999, 2^31, 2^63,
400 digits), unicode and control characters (NUL, a BOM, right-to-left marks,
an emoji, a lone surrogate), a duplicated or deleted line, a truncation. Then
`nnc.compile` must either succeed (some mutants are still valid programs; their
predict and train_step graphs must then derive too) or raise a CompileError
whose rendering starts with `fuzz.nn:LINE:COL: error:` -- never another
exception, a hang (each case has a time limit) or a crash (the memory the
compiler may plan for is capped with NNC_MEMORY_LIMIT, so a huge layer is
refused instead of allocated).

Plus fixed cases: an empty file, blank files, NUL bytes, a 10 MB file.
"""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings

import nncompiler as nnc
from fuzz.strategies import Hang, mutants, record, time_limit

QUICK, LONG = 300, 10000
CASE_SECONDS = 20
POSITIONED = re.compile(r"fuzz\.nn:\d+:\d+: error: \S")


@pytest.fixture(autouse=True)
def _memory_cap(monkeypatch):
    monkeypatch.setenv("NNC_MEMORY_LIMIT", "1G")


def _settings(n: int):
    return settings(max_examples=n, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])


def check_mutant(text: str, prop: str) -> str:
    """Compile `text`; return 'compiled' or 'error', failing on anything else."""
    if "\n" not in text:
        text += "\n"       # nnc.compile may read a one-line string as a file path
    try:
        with time_limit(CASE_SECONDS):
            try:
                m = nnc.compile(text, filename="fuzz.nn")
            except nnc.CompileError as e:
                first = e.render().splitlines()[0]
                assert POSITIONED.match(first), f"unpositioned diagnostic {first!r} for\n{text!r}"
                outcome = "error"
            else:
                m.graph("predict")
                if m.lowered.kind == "model":
                    m.graph("train_step")
                outcome = "compiled"
    except Hang:
        pytest.fail(f"compiling took more than {CASE_SECONDS} s:\n{text!r}")
    record(prop, outcome)
    return outcome


@_settings(QUICK)
@given(mutants())
def test_mutated_programs_give_positioned_errors(mutant):
    text, _ = mutant
    check_mutant(text, "mutants: compile or positioned CompileError")


@pytest.mark.fuzz
@_settings(LONG)
@given(mutants())
def test_mutated_programs_give_positioned_errors_long(mutant):
    text, _ = mutant
    check_mutant(text, "mutants: compile or positioned CompileError")


VALID = """model M {
    input x: f32[B, 4]
    target y: i32[B]
    h = dense(x, 8, activation=relu)
    out = dense(h, 3, activation=softmax)
    output out
    loss sparse_categorical_crossentropy(out, y)
    optimizer adam(lr=0.01)
}
"""


@pytest.mark.parametrize("text", [
    "", " ", "\n", "\n\n\n", "\t", "\ufeff", "# only a comment\n", "\x00", "\x00" * 100,
    VALID.replace("\n", "\x00", 1), VALID[:40] + "\x00" + VALID[40:], VALID.replace("relu", "r\x00lu"),
    VALID.replace("8", "1e400"), VALID.replace("8", "99999999999"), VALID.replace("8", "2147483648"),
    VALID.replace("8", "2147483647"), VALID.replace("8", "9" * 400), VALID.replace("4]", "0]"),
    VALID.replace("4]", "-4]"), VALID.replace("4]", "99999999999999999999999]"),
    VALID.replace("B, 4", "2147483647, 2147483647, 2147483647"),
    VALID.replace("lr=0.01", "lr=1e400"),
    VALID.replace("x", "\u00e9"), VALID.replace("h =", "\u202eh ="), VALID.replace("h =", "h\ud800 ="),
    VALID.replace("out", "\U0001f600"), VALID + "\x1a",
    VALID.encode("utf-16").decode("latin-1"),
], ids=lambda t: repr(t[:20]))
def test_fixed_bad_inputs(text):
    outcome = check_mutant(text, "fixed bad inputs")
    assert outcome == "error", text


def test_odd_but_valid_inputs():
    # 1e-400 rounds to 0.0, as in Python: a valid (if useless) learning rate
    for text in (VALID.replace("lr=0.01", "lr=1e-400"), VALID + "\x0c", VALID.replace("    ", "\t"),
                 VALID.replace("\n", "\r\n"), VALID.replace("{", "{\r", 1), "\ufeff" + VALID, VALID + "#" + "\u00e9\U0001f600\n"):
        assert check_mutant(text, "fixed bad inputs") == "compiled", repr(text)


TEN_MB = 10 * 1024 * 1024


def test_ten_megabyte_files():
    for text in (
        VALID + "#" * TEN_MB,                                   # a huge comment: still valid
        "\x00" * TEN_MB,
        VALID + "\u00e9" * (TEN_MB // 2),                        # 10 MB of UTF-8 after a valid block
    ):
        check_mutant(text, "10 MB files")


@pytest.mark.fuzz
def test_ten_megabyte_files_slow():
    # each takes 5-15 s in the Lark lexer/parser (tests/frontend/test_parse.py covers the parse itself)
    for text in (
        "model M {\n" + "    h = x\n" * (TEN_MB // 10) + "}\n",   # past the 100000-token limit
        VALID.replace("8,", "8" * TEN_MB + ","),                # a 10 MB number
        VALID.replace("relu", "r" * TEN_MB),                    # a 10 MB name
        "model M {\n    v = [" + "1.0, " * (TEN_MB // 5) + "]\n",  # 10 MB of numbers, unclosed
    ):
        assert check_mutant(text, "10 MB files") == "error"
