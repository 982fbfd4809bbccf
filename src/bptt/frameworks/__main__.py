"""python -m bptt.frameworks: many random cross-checks (see bptt.frameworks.stress)."""
import sys

from .stress import main

sys.exit(main())
