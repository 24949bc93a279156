"""Render a kernel template by hand, load it as a module and launch it on torch tensors.

Triton reads a kernel's source from its file, so a rendered kernel is written to a real
module (under the test's tmp_path) and imported from there, as the backend's runtime does."""
import importlib.util

import torch

HEAD = "import triton\nimport triton.language as tl\n\n\n"


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load(tmp_path, text: str, name: str):
    """The @triton.jit function `name` defined by the rendered kernel `text`."""
    path = tmp_path / f"{name}.py"
    path.write_text(HEAD + text)
    spec = importlib.util.spec_from_file_location(f"kernel_test_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def indent(lines, depth: int = 1) -> str:
    return "\n".join("    " * depth + line for line in lines)
