"""python -m bptt.frameworks: many random cross-checks (see bptt.frameworks.stress)."""
import sys

from ..progress import leave
from .stress import main

sys.exit(leave(main()))
