"""Regenerate (or ``--check``) the view's contract without importing the whole package.

``python -m exbert_widget.widget.contract`` does the same but imports exbert_widget first, which
loads torch and transformers; the JS build only needs traitlets and numpy, so it loads the four
modules the contract is made of under a bare package. Exit 3: traitlets or numpy missing.
"""

import importlib
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

try:
    import numpy  # noqa: F401
    import traitlets  # noqa: F401
except ImportError as exc:
    print(f"contract: not checked ({exc.name} is not installed here)", file=sys.stderr)
    sys.exit(3)

for name, path in (
    ("exbert_widget", "exbert_widget"),
    ("exbert_widget.widget", "exbert_widget/widget"),
):
    package = types.ModuleType(name)
    package.__path__ = [str(ROOT / path)]
    sys.modules[name] = package

contract = importlib.import_module("exbert_widget.widget.contract")
sys.exit(contract.main(sys.argv[1:]))
