"""The `nnc` command: compile | run | graph | predict | eval | export | import | opt.

Every user error (a bad program, bad data, a bad flag value) is printed as a
diagnostic and exits 1; a Python traceback means a bug in nnc.
"""
from __future__ import annotations

import os
import sys
import warnings

from ..errors import NNCError
from .arguments import build_parser
from .convert import cmd_export, cmd_import
from .predict import cmd_eval, cmd_predict
from .run import cmd_run
from .show import cmd_compile, cmd_graph, cmd_opt


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning):
    """Compile warnings are diagnostics (FILE:LINE:COL: warning: ...): print them as such,
    without the Python file and line that raised them."""
    from ..frontend.checks import CompileWarning
    if issubclass(category, CompileWarning):
        print(str(message), file=file or sys.stderr)
    else:
        _default(message, category, filename, lineno, file, line)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)   # nnc run --nproc relaunches it
    commands = {"compile": cmd_compile, "run": cmd_run, "graph": cmd_graph, "predict": cmd_predict,
                "eval": cmd_eval, "export": cmd_export, "opt": cmd_opt,
                "import": cmd_import}
    from ..train.safety import Interrupted
    try:
        with warnings.catch_warnings():    # restores the default printer when the command ends
            warnings.showwarning = _show_warning
            return commands[args.command](args)
    except NNCError as e:
        print(str(e), file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except OSError as e:   # an output file that cannot be written
        where = f"{e.filename}: " if e.filename else ""
        print(f"{where}error: {e.strerror or e}", file=sys.stderr)
        return 1
    except Interrupted as e:    # training stopped on SIGINT/SIGTERM after saving (train/safety.py)
        if os.environ.get("RANK", "0") == "0":   # under a launcher, rank 0 (which saves) says so
            print(str(e), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
