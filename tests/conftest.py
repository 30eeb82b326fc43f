"""Shared fixtures: tiny random models of every family, and the real all-MiniLM-L6-v2."""

from __future__ import annotations

import os

# Tests never reach the hub: a hub name must fail fast, not wait on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

import exbert_widget as ew
from tests import tiny_models


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, str]:
    """Family -> directory of a saved tiny model with its tokenizer."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {f: str(tiny_models.save(f, root / f)) for f in tiny_models.FAMILIES}


@pytest.fixture(scope="session")
def minilm() -> ew.LanguageModel:
    """The real pretrained all-MiniLM-L6-v2 (a BERT encoder without an MLM head)."""
    return ew.load_model(tiny_models.MINILM)
