"""The resume test's driver: builds the shards test source on a running Ray cluster. Run as
``python -m tests.corpus_ray_child OUT ADDRESS SHARDS``; the test kills it mid-build."""

from __future__ import annotations

import sys

import exbert_widget as ew
from tests import tiny_models
from tests.test_corpus_shards import SOURCE

if __name__ == "__main__":
    out, address, shards = sys.argv[1], sys.argv[2], int(sys.argv[3])
    lm = ew.load_model(tiny_models.MINILM)
    ew.build_corpus(SOURCE, lm, out, engine="ray", address=address, shards=shards, progress=False)
