"""Corpus search for the view: hits, what each match attends to most, and label summaries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import CorpusError, InputError
from ..models import Analysis, LanguageModel
from .layers import layer_context, layer_output

FIELDS = ("pos", "dep", "ent", "offset")
OF = ("match", "max_att")
NONE_LABEL = "(none)"


@dataclass
class HitResult:
    """Hits as a DataFrame for Python, plus what the view draws."""

    frame: pd.DataFrame
    rows: list[dict]
    attention: np.ndarray  # float16, every hit's attention row, concatenated
    summaries: dict


def query_vector(analysis: Analysis, layer: int, selected: int, by: str) -> np.ndarray:
    """exBERT's query: the layer's output (embedding) or its per-head context at the token."""
    if by == "embedding":
        return layer_output(analysis, layer)[selected]
    return layer_context(analysis, layer)[selected]


def search_hits(
    lm: LanguageModel,
    corpus,
    analysis: Analysis,
    *,
    layer: int,
    heads: list[int],
    selected: int,
    by: str,
    k: int,
    hide_special: bool,
    exclude_sentences: Sequence[int] = (),
    max_per_sentence: int | None = None,
) -> HitResult:
    """Search ``corpus`` with the selected token and describe every hit's attention.

    The hit sentences' attention is recomputed in one length-sorted, batched forward pass that
    stops after ``layer`` (a corpus stores no attention). Each hit gets the token its match
    attends to most (mean over ``heads`` at ``layer``; special tokens excluded while
    ``hide_special``), with that token's labels.

    Raises:
        CorpusError: a hit sentence's stored tokens do not match the model's tokenizer.
    """
    vector = query_vector(analysis, layer, selected, by)
    frame = corpus.search(
        vector,
        layer=layer,
        by=by,
        k=k,
        heads=heads if by == "context" else None,
        exclude_sentences=exclude_sentences,
        max_per_sentence=max_per_sentence,
    ).reset_index(drop=True)
    sentence_ids = list(dict.fromkeys(int(s) for s in frame["sentence_id"]))
    encodings = [lm.encode(corpus.sentences[s]) for s in sentence_ids]
    layer_attention = lm.layer_attentions(encodings, layer)  # one pass, no deeper than layer
    by_sentence = dict(zip(sentence_ids, zip(encodings, layer_attention, strict=True), strict=True))
    spans = {sid: _spans(corpus, sid) for sid in sentence_ids}

    autoregressive = lm.kind == "autoregressive"
    extra: dict[str, list] = {name: [] for name in _EXTRA_COLUMNS}
    if autoregressive:
        extra.update({f"next_{name}": [] for name in ("token", "pos", "dep", "ent")})
    rows: list[dict] = []
    chunks: list[np.ndarray] = []
    offset = 0
    for hit in frame.itertuples(index=False):
        sid, index = int(hit.sentence_id), int(hit.token_index)
        labels = corpus.sentence_labels(sid)
        encoding, attention = by_sentence[sid]
        if len(labels["token"]) != len(encoding):
            raise CorpusError(
                f"Corpus sentence {sid} has {len(labels['token'])} stored tokens but {lm.name} "
                f"gives {len(encoding)}: the corpus was built with another tokenizer."
            )
        special = np.asarray(encoding.special, dtype=bool)
        row = attention[heads].mean(0)[index].astype(np.float64)
        if hide_special:
            row = np.where(special, 0.0, row)
            total = row.sum()
            row = row / total if total > 0 else row
        ranked = np.where(special, -np.inf, row) if hide_special else row
        top = int(np.argmax(ranked))
        extra["max_att_index"].append(top)
        extra["max_att_token"].append(labels["token"][top])
        extra["max_att_pos"].append(labels["pos"][top])
        extra["max_att_dep"].append(labels["dep"][top])
        extra["max_att_ent"].append(labels["ent"][top])
        extra["max_att_offset"].append(top - index)
        extra["describes_next"].append(autoregressive)
        if autoregressive:
            nxt = index + 1
            for name in ("token", "pos", "dep", "ent"):
                extra[f"next_{name}"].append(labels[name][nxt] if nxt < len(encoding) else "")
        chunks.append(row.astype(np.float16))
        rows.append(
            {
                "sentence_id": sid,
                "token_index": index,
                "score": float(hit.score),
                "token": str(hit.token),
                "pos": str(hit.pos),
                "dep": str(hit.dep),
                "ent": str(hit.ent),
                "sentence": str(hit.sentence),
                "tokens": labels["token"],
                "token_pos": labels["pos"],
                "token_dep": labels["dep"],
                "token_ent": labels["ent"],
                "special": special.tolist(),
                "att_offset": offset,
                "att_length": len(row),
                "whole_word": str(hit.whole_word),
                **spans[sid],
            }
        )
        offset += len(row)
    for name, values in extra.items():
        frame[name] = values
    for row, (_, hit) in zip(rows, frame.iterrows(), strict=True):
        row.update({name: _plain(hit[name]) for name in extra})
    attention = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float16)
    summaries = {
        of: {field: summarize(frame, field, of).to_dict() for field in FIELDS} for of in OF
    }
    return HitResult(frame, rows, attention, summaries)


_EXTRA_COLUMNS = (
    "max_att_index",
    "max_att_token",
    "max_att_pos",
    "max_att_dep",
    "max_att_ent",
    "max_att_offset",
    "describes_next",
)


def _spans(corpus, sentence_id: int) -> dict[str, list[list[int]]]:
    """Per token of a corpus sentence, its characters and its word's (``[-1, -1]``: none)."""
    words = corpus.sentence_words(sentence_id)
    return {
        "token_spans": np.stack([words.token_start, words.token_end], 1).tolist(),
        "word_spans": np.stack([words.word_start, words.word_end], 1).tolist(),
    }


def _plain(value):
    """numpy scalars -> Python scalars for the JSON state."""
    return value.item() if isinstance(value, np.generic) else value


def summarize(frame: pd.DataFrame, field: str, of: str) -> pd.Series:
    """Counts of the hits' labels (or offsets), largest first: what the histograms draw.

    ``of="match"`` counts the matched tokens (for autoregressive models: the tokens they predict,
    as exBERT did); ``of="max_att"`` counts the tokens the matches attend to most.
    ``field="offset"`` counts positions relative to the match.

    Raises:
        InputError: an unknown ``field`` or ``of``.
    """
    if field not in FIELDS:
        raise InputError(f"field must be one of {FIELDS}, got {field!r}.")
    if of not in OF:
        raise InputError(f"of must be one of {OF}, got {of!r}.")
    next_token = bool(len(frame)) and bool(frame["describes_next"].iloc[0])
    if of == "max_att":
        column = frame[f"max_att_{field}"]
    elif field == "offset":
        column = pd.Series([1 if next_token else 0] * len(frame), dtype=int)
    else:
        column = frame[f"next_{field}" if next_token else field]
    if field == "offset":
        labels = column.astype(int).map(lambda v: f"{v:+d}" if v else "0")
    else:
        labels = column.fillna("").astype(str).replace("", NONE_LABEL)
    counts = labels.value_counts()
    counts.name = f"{field} of {'matched tokens' if of == 'match' else 'max-attention tokens'}"
    return counts
