"""Graph-to-graph optimisation passes: decompose, fold, simplify, pads_to_concat, cse, dce, the scan
bodies pass, unroll, and the pipeline."""
from .pipeline import (DEFAULT_PASSES, PASSES, PassRecord, format_records, optimize, run_pass,
                       value_names)
from .cse import cse
from .dce import dce
from .decompose import decompose
from .fold import fold
from .pads import pads_to_concat
from .simplify import simplify
from .unroll import HAS_SCAN, optimize_bodies, unroll

__all__ = ["DEFAULT_PASSES", "PASSES", "PassRecord", "format_records", "optimize", "run_pass",
           "value_names", "cse", "dce", "decompose", "fold", "simplify", "pads_to_concat", "unroll",
           "optimize_bodies", "HAS_SCAN"]
