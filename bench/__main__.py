"""`python -m bench`: run the benchmark (see bench/README.md)."""
import sys

from .harness import main

sys.exit(main())
