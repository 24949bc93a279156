"""A graph's generated Triton module as a live Python module, executed from its text.

Triton reads a kernel's source from the file its function was defined in, so the text is
first written to the cache (cache.write_module); the module is then executed from the text
generated here, never imported through importlib, which would prefer a planted
`__pycache__/*.pyc` matching only the file's mtime and size.

Modules are kept per process so that every CompiledGraph of the same source shares one set
of @triton.jit functions, and with them Triton's in-memory cache of compiled kernels. The
keep is bounded (`MAX_MODULES`, the least recently used dropped first): a process that
compiles graph after graph (a sweep, a fuzzer, the test suite) would otherwise hold every
module and its compiled kernels for good. A dropped module lives on in the CompiledGraphs
using it; loading its source again executes it afresh, and Triton finds its compiled
kernels in its on-disk cache. Its text stays in `linecache`: the interpreter reads a
kernel's source when the kernel first runs, which may be after the module was dropped.
"""
from __future__ import annotations

import linecache
import types
import warnings
from collections import OrderedDict

from .cache import write_module

MAX_MODULES = 256
_MODULES: OrderedDict[str, types.ModuleType] = OrderedDict()    # module file -> module, bounded


def load_module(graph_name: str, source: str):
    """Write the generated source to the cache and import it (Triton reads kernel source from files)."""
    path = write_module(graph_name, source)
    key = str(path)
    if key not in _MODULES:
        # executed from the text generated here, never through importlib, which would prefer
        # a planted __pycache__/*.pyc matching only the file's mtime and size; linecache
        # serves the same text to Triton's inspect.getsource (mtime None: never re-read)
        linecache.cache[key] = (len(source), None, source.splitlines(True), key)
        mod = types.ModuleType(path.stem)
        mod.__file__ = key
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(source, key, "exec"), mod.__dict__)
        _MODULES[key] = mod
        while len(_MODULES) > MAX_MODULES:
            _MODULES.popitem(last=False)
    _MODULES.move_to_end(key)
    return _MODULES[key]
