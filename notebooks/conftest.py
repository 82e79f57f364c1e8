"""Notebooks run under pytest (nbmake) in their reduced mode."""

import os

os.environ.setdefault("AVOCADO_XR_NOTEBOOK_QUICK", "1")
