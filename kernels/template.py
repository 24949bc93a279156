"""KernelTemplate: Triton kernel source with named slots, and its one operation, `render`.

A template is the fixed skeleton of one kind of kernel (program ids, tiles, masks, the K
loop of a matmul); the Triton backend's code generator renders it with the parts that
depend on the fused group (parameters, index arithmetic, one line per IR op, stores).
Slots are `str.format` fields (`{name}`). `render` requires every slot and refuses unknown
ones, so a template and its filler cannot drift apart silently; a value may itself be a
`{slot}` text that a later stage fills (the code generator does that for the decorator and
the parameter list, which it knows only after the body is written).
"""
from __future__ import annotations

import string


class TemplateError(ValueError):
    """A template was rendered with missing or unknown slots (a bug in the caller)."""


class KernelTemplate:
    def __init__(self, name: str, text: str):
        self.name = name
        self.text = text
        self.slots = frozenset(f for _, f, _, _ in string.Formatter().parse(text) if f)

    def render(self, **values: str) -> str:
        missing = sorted(self.slots - values.keys())
        unknown = sorted(values.keys() - self.slots)
        if missing or unknown:
            parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                    ([f"unknown {', '.join(unknown)}"] if unknown else [])
            raise TemplateError(f"kernel template {self.name}: {'; '.join(parts)} "
                                f"(its slots: {', '.join(sorted(self.slots))})")
        return self.text.format(**values)

    def __repr__(self) -> str:
        return f"KernelTemplate({self.name!r}, slots={sorted(self.slots)})"
