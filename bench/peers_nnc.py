"""nncompiler itself as a bench implementation, through its public API on one backend."""
from __future__ import annotations

import importlib

from .cases import Problem
from .peers_base import Impl, Runner, apply_limits, version_of


class NNC(Impl):
    """nncompiler through its public API: compile(source, backend=...), set_params, step / forward."""
    is_nnc = True

    def __init__(self, backend: str):
        self.backend = backend
        self.name = f"nnc:{backend}"

    def unavailable(self) -> str | None:
        try:
            module = importlib.import_module(f"nncompiler.backends.{self.backend}")
        except ImportError as e:
            return f"nncompiler.backends.{self.backend} does not import: {e}"
        if not hasattr(module, "Backend"):
            return f"nncompiler.backends.{self.backend} has no Backend yet"
        if self.backend == "mlir":
            for mod in ("iree.compiler", "iree.runtime"):
                try:
                    importlib.import_module(mod)
                except ImportError as e:
                    return f"{mod} does not import: {e}"
        return None

    def versions(self) -> dict:
        out = {"nncompiler": version_of("nncompiler")}
        if self.backend == "mlir":
            for dist in ("iree-base-compiler", "iree-base-runtime"):
                try:
                    from importlib.metadata import version
                    out[dist] = version(dist)
                except Exception:
                    pass
        return out

    def setup(self, p: Problem) -> Runner:
        import nncompiler as nnc
        m = nnc.compile(p.source, backend=self.backend)
        apply_limits()
        if p.params:
            m.set_params(p.params)
        feeds = dict(p.feeds)
        if p.kind == "train":
            return Runner(lambda: m.step(**feeds)["loss"], lambda: m.params,
                          graph_nodes=len(m.graph("train_step").nodes))
        x = feeds["x"]
        return Runner(lambda: m.forward(x=x), graph_nodes=len(m.graph("predict").nodes))
