"""Which heads track which dependency relations over a whole corpus (Clark et al. 2019, "What does
BERT look at?"), with the corpus's spaCy parse as gold, and what each head attends to in general.

Conventions (fixed by issue 12):

- Words are the token table's ``word`` column (spaCy's words, numbered within the sentence).
  Attention *from* a word is the mean of its tokens' rows; attention *to* a word is the sum of its
  tokens' columns. Special tokens belong to no word; words made of punctuation only are never
  candidates (their characters in the sentence, Unicode category P; spaCy's ``PUNCT`` where the
  corpus stores no character spans).
- A head predicts, for each word, the other candidate word it attends to most (the first of equal
  ones). For a word with relation r (spaCy's label, ``nsubj``, ``dobj``, ...) and its syntactic
  head, ``"dependent→head"`` is right when the word's prediction is its head; ``"head→dependent"``
  when the head word's prediction is that word. An instance needs both words to be candidates
  (so ``punct`` and ``ROOT`` have none).
- Baselines: for each relation and direction, the fixed offset in −3 … +3 (0 excluded; counted in
  words) that is right most often; ties go to the nearer offset, left before right.
- Layers and heads are 0-based; ``accuracy`` is a fraction in [0, 1]; ``few`` flags relations with
  fewer than :data:`FEW` instances (reported all the same). Every sentence of the corpus is used.

Per head, over every token of every sentence (special tokens included, as the model sees them):
``entropy`` is the mean entropy of a token's attention (nats), ``to_special`` the mean share of
attention to special tokens, ``to_previous`` / ``to_next`` the mean attention to the token just
before / after (over tokens that have one). These are columns of every row of that head.

The report is cached next to the corpus (``<corpus>/head_reports/``; the user cache directory when
the corpus directory cannot be written), keyed by the corpus build and the model (fingerprint and
a digest of its weights): a rebuilt corpus or another checkpoint computes it afresh.
"""

from __future__ import annotations

import unicodedata
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..errors import CorpusError, InputError
from . import report_cache as cache

DIRECTIONS = ("dependent→head", "head→dependent")
#: Fixed offsets of the baseline, in the order ties are broken.
OFFSETS = (-1, 1, -2, 2, -3, 3)
#: Relations with fewer instances than this are flagged (``few``).
FEW = 100
STAT_COLUMNS = ("entropy", "to_special", "to_previous", "to_next")
#: The report's columns, in order, and their dtypes.
DTYPES: dict[str, Any] = {
    "relation": str,
    "layer": np.int64,
    "head": np.int64,
    "direction": str,
    "accuracy": np.float64,
    "count": np.int64,
    "baseline_offset": np.int64,
    "baseline_accuracy": np.float64,
    "few": bool,
    **{name: np.float64 for name in STAT_COLUMNS},
}
COLUMNS = list(DTYPES)
_BATCH_BYTES = 128 * 2**20


def _valid(frame: pd.DataFrame) -> bool:
    """Whether a table read back from a cache is a head report."""
    fractions = frame[["accuracy", "baseline_accuracy", "to_special", "to_previous", "to_next"]]
    return bool(
        frame["direction"].isin(DIRECTIONS).all()
        and frame["baseline_offset"].isin(OFFSETS).all()
        and ((fractions >= 0) & (fractions <= 1 + 1e-6)).all().all()
        and (frame[["layer", "head", "count"]] >= 0).all().all()
    )


#: How the report is cached; the version is bumped whenever what it computes changes.
SCHEMA = cache.Schema("head_report", 1, DTYPES, _valid)


@dataclass
class SentenceWords:
    """One sentence's words as the report needs them.

    Attributes:
        token_word: per token, its word index, or -1 (special tokens, tokens in no word).
        candidate: per word index, whether it can be predicted (has tokens, not punctuation).
        dependent, head, relation: the sentence's instances: dependent word, its head word and
            the relation's index in the report's relation list.
    """

    token_word: np.ndarray
    candidate: np.ndarray
    dependent: np.ndarray
    head: np.ndarray
    relation: np.ndarray


def _punctuation_only(text: str) -> bool:
    chars = [c for c in text if not c.isspace()]
    return bool(chars) and all(unicodedata.category(c).startswith("P") for c in chars)


def sentence_words(
    rows: dict[str, np.ndarray], sentence: str, relations: dict[str, int]
) -> SentenceWords:
    """The words, candidates and instances of one sentence from its token-table rows.

    ``relations`` maps a relation label to its index and grows with new labels.
    """
    word = rows["word"].astype(np.int64)
    count = int(word.max()) + 1 if word.size and word.max() >= 0 else 0
    has_tokens = np.zeros(count, dtype=bool)
    has_tokens[word[word >= 0]] = True
    punct = np.zeros(count, dtype=bool)
    dep = [""] * count
    head_word = np.full(count, -1, dtype=np.int64)
    for t in np.flatnonzero(word >= 0)[::-1]:  # each word's first token wins
        w = int(word[t])
        h = int(rows["head"][t])
        head_word[w] = int(word[h]) if 0 <= h < len(word) else -1
        dep[w] = str(rows["dep"][t])
        if "word_start" in rows and rows["word_start"][t] >= 0:
            punct[w] = _punctuation_only(sentence[rows["word_start"][t] : rows["word_end"][t]])
        else:
            punct[w] = str(rows["pos"][t]) == "PUNCT"
    candidate = has_tokens & ~punct
    keep = [
        w
        for w in range(count)
        if dep[w] not in ("", "ROOT")
        and 0 <= head_word[w] != w
        and candidate[w]
        and candidate[head_word[w]]
    ]
    relation = np.array([relations.setdefault(dep[w], len(relations)) for w in keep], np.int64)
    dependent = np.array(keep, dtype=np.int64)
    return SentenceWords(word, candidate, dependent, head_word[dependent], relation)


@dataclass
class Instances:
    """Every instance of the corpus, flat: sentence, dependent word, head word, relation index;
    ``starts[s]`` is sentence s's first instance."""

    sentence: np.ndarray
    dependent: np.ndarray
    head: np.ndarray
    relation: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, words: list[SentenceWords]) -> Instances:
        sizes = np.array([len(w.dependent) for w in words], dtype=np.int64)

        def flat(name: str) -> np.ndarray:
            parts = [getattr(w, name) for w in words]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

        return cls(
            np.repeat(np.arange(len(words)), sizes),
            flat("dependent"),
            flat("head"),
            flat("relation"),
            np.concatenate([[0], np.cumsum(sizes)]),
        )

    def of_sentences(self, sentences: list[int]) -> np.ndarray:
        """Indices of the instances of these sentences."""
        parts = [np.arange(self.starts[s], self.starts[s + 1]) for s in sentences]
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)


class _Accumulator:
    """Running sums over the corpus: hits per relation, direction, layer and head, and the
    per-head attention statistics."""

    def __init__(self, instances: Instances, relations: int, layers: int, heads: int) -> None:
        self.instances = instances
        self.layers, self.heads = layers, heads
        self.hits = np.zeros((relations, 2, layers, heads), dtype=np.int64)
        self.stats = np.zeros((len(STAT_COLUMNS), layers, heads), dtype=np.float64)
        self.stat_rows = np.zeros(len(STAT_COLUMNS), dtype=np.float64)

    def add(self, sentences: list[int], predicted: np.ndarray) -> None:
        """Score the instances of ``sentences`` (a batch, in order) by their predictions
        ``[layers, batch, heads, words]``."""
        inst = self.instances
        chosen = inst.of_sentences(sentences)
        if not chosen.size:
            return
        row = _positions(np.asarray(sentences), inst.sentence[chosen])
        dep, head = inst.dependent[chosen], inst.head[chosen]
        # numpy puts the instance axis of these gathers first: [instances, layers, heads]
        right = np.stack(
            [
                predicted[:, row, :, dep] == head[:, None, None],
                predicted[:, row, :, head] == dep[:, None, None],
            ]
        )
        onehot = np.zeros((len(chosen), self.hits.shape[0]), dtype=np.int64)
        onehot[np.arange(len(chosen)), inst.relation[chosen]] = 1
        self.hits += np.einsum("dilh,ir->rdlh", right.astype(np.int64), onehot)


def _positions(order: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each of ``values``, its position in ``order`` (which holds each value once)."""
    lookup = {int(v): i for i, v in enumerate(order.tolist())}
    return np.array([lookup[int(v)] for v in values.tolist()], dtype=np.int64)


def _word_scores(weights: torch.Tensor, to_word: torch.Tensor) -> torch.Tensor:
    """Word-level attention ``[batch, heads, words, words]``: from a word the mean of its
    tokens' rows, to a word the sum of its tokens' columns. ``to_word`` is the one-hot token
    -> word map ``[batch, width, words]`` (zero rows for tokens in no word)."""
    batch, heads, width, _ = weights.shape
    columns = torch.bmm(weights.reshape(batch, heads * width, width), to_word)
    columns = columns.view(batch, heads, width, -1)  # [batch, heads, width, words]
    sizes = to_word.sum(1).clamp(min=1)  # tokens per word
    from_word = (to_word / sizes[:, None, :]).transpose(1, 2)  # [batch, words, width]
    return torch.matmul(from_word[:, None], columns)


def _predictions(scores: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
    """Each word's most attended other candidate word ``[batch, heads, words]`` (the first of
    equal ones); ``candidate`` is ``[batch, words]``."""
    words = scores.shape[-1]
    others = ~torch.eye(words, dtype=torch.bool, device=scores.device)
    allowed = candidate[:, None, None, :] & others
    return scores.masked_fill(~allowed, float("-inf")).argmax(dim=-1)


def _head_stats(
    weights: torch.Tensor, lengths: torch.Tensor, special: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums over a batch's real tokens, per head: entropy, attention to special tokens, to the
    previous token, to the next token (``[4, heads]``), and how many rows each sum has (``[4]``).
    """
    width = weights.shape[-1]
    positions = torch.arange(width, device=weights.device)
    real = positions[None, :] < lengths[:, None]  # [batch, width]
    rows = real[:, None, :].to(weights.dtype)
    entropy = -torch.special.xlogy(weights, weights).sum(-1)
    to_special = torch.matmul(weights, special[:, None, :, None].to(weights.dtype))[..., 0]
    previous = torch.diagonal(weights, offset=-1, dim1=-2, dim2=-1)  # rows 1..width-1
    following = torch.diagonal(weights, offset=1, dim1=-2, dim2=-1)  # rows 0..width-2
    has_previous = (real & (positions[None, :] >= 1))[:, 1:]
    has_next = (real & (positions[None, :] + 1 < lengths[:, None]))[:, :-1]
    sums = torch.stack(
        [
            (entropy * rows).sum((0, 2)),
            (to_special * rows).sum((0, 2)),
            (previous * has_previous[:, None, :]).sum((0, 2)),
            (following * has_next[:, None, :]).sum((0, 2)),
        ]
    )
    counts = torch.stack([real.sum(), real.sum(), has_previous.sum(), has_next.sum()])
    return sums.double(), counts.double()


def _batch(
    acc: _Accumulator,
    weights: list[torch.Tensor],
    indices: list[int],
    words: list[SentenceWords],
    encodings: list,
) -> None:
    """Add one batch's instances and statistics to ``acc``."""
    device, width = weights[0].device, weights[0].shape[-1]
    count = max(1, max(len(words[i].candidate) for i in indices))
    to_word = torch.zeros((len(indices), width, count), dtype=weights[0].dtype)
    candidate = torch.zeros((len(indices), count), dtype=torch.bool)
    special = torch.zeros((len(indices), width), dtype=torch.bool)
    for row, i in enumerate(indices):
        token_word = torch.from_numpy(words[i].token_word)
        inside = torch.nonzero(token_word >= 0)[:, 0]
        to_word[row, inside, token_word[inside]] = 1.0
        candidate[row, : len(words[i].candidate)] = torch.from_numpy(words[i].candidate)
        special[row, : len(encodings[i])] = torch.tensor(encodings[i].special)
    to_word, candidate, special = to_word.to(device), candidate.to(device), special.to(device)
    lengths = torch.tensor([len(encodings[i]) for i in indices], device=device)
    predicted = []
    for layer, w in enumerate(weights):
        predicted.append(_predictions(_word_scores(w, to_word), candidate))
        sums, counts = _head_stats(w, lengths, special)
        acc.stats[:, layer] += sums.cpu().numpy()
    acc.stat_rows += counts.cpu().numpy()  # the same rows in every layer
    acc.add(indices, torch.stack(predicted).cpu().numpy())


def _table(corpus) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The token table's columns the report reads, and each sentence's first row."""
    tokens = corpus.tokens
    wanted = ["sentence_id", "token", "word", "head", "dep", "pos", "word_start", "word_end"]
    columns = {c: tokens[c].to_numpy() for c in wanted if c in tokens.columns}
    starts = np.searchsorted(columns["sentence_id"], np.arange(len(corpus.sentences) + 1))
    return columns, starts


def _sentences(corpus, lm, columns, starts, relations) -> tuple[list, list[SentenceWords]]:
    """Every sentence encoded by ``lm`` (checked against the stored tokens) and its words."""
    encodings, words = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # long sentences were truncated at build time too
        for sid in range(len(corpus.sentences)):
            text = corpus.sentences[sid]
            a, b = int(starts[sid]), int(starts[sid + 1])
            enc = lm.encode(text)
            if list(enc.tokens) != columns["token"][a:b].tolist():
                raise CorpusError(
                    f"Sentence {sid} of the corpus encodes to other tokens with {lm.name} than "
                    "the corpus stores: it was built with another tokenizer. Build a corpus for "
                    "this model."
                )
            rows = {name: values[a:b] for name, values in columns.items()}
            encodings.append(enc)
            words.append(sentence_words(rows, text, relations))
    return encodings, words


def compute(
    corpus, lm, *, batch_size: int = 32, batch_bytes: int = _BATCH_BYTES, progress: bool = True
) -> pd.DataFrame:
    """The head report without the cache; see :func:`head_report`."""
    columns, starts = _table(corpus)
    relations: dict[str, int] = {}
    encodings, words = _sentences(corpus, lm, columns, starts, relations)
    instances = Instances.of(words)
    acc = _Accumulator(instances, len(relations), lm.num_layers, lm.num_heads)
    bar = tqdm(total=len(encodings), desc="head report", unit="sentence", disable=not progress)
    with torch.no_grad(), bar:
        batches = lm.attention_batches(encodings, batch_size=batch_size, max_bytes=batch_bytes)
        for indices, weights in batches:
            _batch(acc, weights, indices, words, encodings)
            bar.update(len(indices))
    return _frame(acc, sorted(relations, key=relations.__getitem__))


def _baselines(inst: Instances, relations: int) -> np.ndarray:
    """Right answers of each fixed offset: ``[relations, 2 directions, len(OFFSETS)]``."""
    distance = inst.head - inst.dependent
    out = np.zeros((relations, 2, len(OFFSETS)), dtype=np.int64)
    for k, offset in enumerate(OFFSETS):
        out[:, 0, k] = np.bincount(inst.relation[distance == offset], minlength=relations)
        out[:, 1, k] = np.bincount(inst.relation[-distance == offset], minlength=relations)
    return out


def _frame(acc: _Accumulator, names: list[str]) -> pd.DataFrame:
    """The report's rows: relations by count (most first, then by name), both directions, every
    layer and head; the per-head statistics as columns."""
    inst = acc.instances
    counts = np.bincount(inst.relation, minlength=len(names))
    baselines = _baselines(inst, len(names))
    stats = acc.stats / np.maximum(acc.stat_rows, 1)[:, None, None]
    layers, heads = np.meshgrid(np.arange(acc.layers), np.arange(acc.heads), indexing="ij")
    order = sorted(range(len(names)), key=lambda r: (-counts[r], names[r]))
    parts = []
    for r in order:
        count = int(counts[r])
        for d, direction in enumerate(DIRECTIONS):
            best = int(np.argmax(baselines[r, d]))  # the first of equal ones
            part = {
                "relation": names[r],
                "layer": layers.ravel(),
                "head": heads.ravel(),
                "direction": direction,
                "accuracy": (acc.hits[r, d] / count).ravel(),
                "count": count,
                "baseline_offset": OFFSETS[best],
                "baseline_accuracy": baselines[r, d, best] / count,
                "few": count < FEW,
            }
            part.update({name: stats[k].ravel() for k, name in enumerate(STAT_COLUMNS)})
            parts.append(pd.DataFrame(part))
    if not parts:
        return _empty()
    return pd.concat(parts, ignore_index=True).astype(DTYPES)[COLUMNS]


def _empty() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=DTYPES[name]) for name in COLUMNS})


def head_report(
    corpus,
    lm,
    *,
    refresh: bool = False,
    progress: bool = True,
    batch_size: int = 32,
    batch_bytes: int = _BATCH_BYTES,
) -> pd.DataFrame:
    """See :meth:`exbert_widget.Corpus.head_report`; ``batch_size`` and ``batch_bytes`` bound
    a forward pass (sentences, bytes of attention weights).

    Raises:
        CorpusError: ``lm`` is not the corpus's model, or its tokenizer splits a stored
            sentence otherwise.
        InputError: an encoder–decoder model.
    """
    check = getattr(corpus, "check_model", None)
    if check is not None:
        check(lm)
    if lm.kind == "seq2seq":
        raise InputError(
            "The head report reads one stack of layers; encoder–decoder models have three."
        )
    wanted = cache.meta(SCHEMA, corpus, lm)
    paths = cache.cache_paths(SCHEMA, corpus, lm)
    if not refresh:
        for path in paths:
            cached = cache.load(SCHEMA, path, wanted)
            if cached is not None:
                return cached
    frame = compute(corpus, lm, batch_size=batch_size, batch_bytes=batch_bytes, progress=progress)
    cache.save(SCHEMA, frame, paths, wanted)
    return frame
