"""Graph-to-graph optimisation passes: decompose, fold, simplify, pads_to_concat, cse, dce, and the pipeline."""
from .pipeline import (DEFAULT_PASSES, PASSES, PassRecord, format_records, optimize, run_pass,
                       value_names)
from .cse import cse
from .dce import dce
from .decompose import decompose
from .fold import fold
from .pads import pads_to_concat
from .simplify import simplify

__all__ = ["DEFAULT_PASSES", "PASSES", "PassRecord", "format_records", "optimize", "run_pass",
           "value_names", "cse", "dce", "decompose", "fold", "simplify", "pads_to_concat"]
