"""Front end: .nn source text to a syntax tree.

    from nncompiler.frontend.parse import parse   # parse(source, filename) -> ast.Program
    from nncompiler.frontend import ast           # the node classes

`parse` is deliberately not re-exported here: a function named like its own
submodule would shadow `nncompiler.frontend.parse` for `import ... as` and for
monkeypatching.
"""
