"""The notebook the pair and part browser tests (and their README screenshots) run: a sentence
pair on the demo model, and a tiny random T5 (built from its config, as notebook 03 builds a
decoder) with a given target, and a tiny random GPT-2 (no pair convention), each in its own
view."""

from __future__ import annotations

from pathlib import Path

import nbformat

NAME = "pairs_parts.ipynb"
PAIR_CELL = """\
import exbert_widget as ew

lm = ew.load_model("demo")
pair = ew.ExBertView(lm, sentence="The keeper of the lighthouse slept.",
                     sentence_b="Mrs. Okafor kept the lamp burning all night.")
pair"""
SEQ2SEQ_CELL = """\
import tempfile
from pathlib import Path

from tests import tiny_models  # a tiny random T5 (t5-small's classes), saved with its tokenizer

t5 = ew.load_model(str(tiny_models.save("t5", Path(tempfile.mkdtemp()) / "t5")))
s2s = ew.ExBertView(t5, sentence="The keeper of the lighthouse slept.",
                    target="Die Wärterin des Leuchtturms schlief.")
s2s"""
DECODER_CELL = """\
gpt2 = ew.load_model(str(tiny_models.save("gpt2", Path(tempfile.mkdtemp()) / "gpt2")))
decoder = ew.ExBertView(gpt2, sentence="The keeper of the lighthouse slept.")
decoder"""


def write(directory: Path) -> Path:
    """Write the notebook into ``directory`` (a Jupyter server's root); returns its path."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in (PAIR_CELL, SEQ2SEQ_CELL, DECODER_CELL)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = directory / NAME
    nbformat.write(nb, path)
    return path
