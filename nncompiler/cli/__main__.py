"""`python -m nncompiler.cli ...`, as the tests and the distributed launcher run it."""
import sys

from . import main

sys.exit(main())
