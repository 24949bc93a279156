"""A compiled graph's arguments as kernel operands: device tensors of the declared dtype, and
the symbolic sizes (`B`, `T`) their shapes bind.

Host arrays are copied to the device; device tensors are used where they lie when they
already have the dtype, a contiguous layout and a 16-byte-aligned start, and copied
otherwise. Host scalars (the learning rate, a step's random key) become 0-d device tensors,
uploaded once per distinct value: the most recent `MAX_SCALARS` values are kept.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ...ir.graph import Graph
from ...ir.shapes import NUMPY_DTYPE, Monomial
from .fallback import torch_dtype

MAX_SCALARS = 64


class Arguments:
    """names: the graph's argument names in order; nodes: name -> its `arg` node."""

    def __init__(self, graph: Graph, device: str):
        self.graph_name = graph.name
        self.device = device
        self.names = tuple(a.attr["name"] for a in graph.args)
        self.nodes = {a.attr["name"]: a for a in graph.args}
        self._binds = []
        for a in graph.args:
            for axis, d in enumerate(a.shape):
                if Monomial.parse(d).symbol is not None:
                    self._binds.append((a.attr["name"], axis, d))
        self._scalars: OrderedDict = OrderedDict()

    def _scalar(self, value, dt: str):
        import torch
        arr = np.asarray(value, dtype=NUMPY_DTYPE[dt])
        key = (dt, arr.tobytes())
        t = self._scalars.get(key)
        if t is None:
            t = torch.from_numpy(arr.reshape(())).to(self.device)
            self._scalars[key] = t
            while len(self._scalars) > MAX_SCALARS:
                self._scalars.popitem(last=False)
        return t

    def tensor_arg(self, name: str, value):
        """Argument `name`'s value as the device tensor a kernel reads."""
        import torch
        node = self.nodes[name]
        dt = torch_dtype(node.dtype)
        if isinstance(value, torch.Tensor):
            t = value
            if t.device.type != torch.device(self.device).type:
                t = t.to(self.device)
            if t.dtype != dt:
                t = t.to(dt)
            t = t if t.is_contiguous() else t.contiguous()
            # a view into a bigger tensor may start anywhere; TMA descriptors (and vector loads)
            # need a 16-byte-aligned base, which every allocation the runtime makes has
            return t if t.data_ptr() % 16 == 0 else t.clone()
        arr = np.asarray(value)
        if arr.ndim == 0:
            return self._scalar(arr, node.dtype)
        return torch.from_numpy(np.ascontiguousarray(arr.astype(NUMPY_DTYPE[node.dtype], copy=False))).to(self.device)

    def bind(self, tensors: dict) -> dict:
        """symbol -> size, read off the arguments' shapes (a symbol bound twice must agree)."""
        sizes: dict = {}
        for name, axis, sym in self._binds:
            v = int(tensors[name].shape[axis])
            if sizes.setdefault(sym, v) != v:
                raise ValueError(f"{self.graph_name}: dimension {sym} is {sizes[sym]} and {v}")
        return sizes
