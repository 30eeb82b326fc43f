"""Reading corpus sources: text files (books) or iterables of strings, cut into paragraphs.

A book as found in the wild has a byte-order mark, CRLF line ends, a title page, illustration
markers and chapter headings in capitals. :func:`read_paragraphs` turns it into clean paragraphs
of running text; sentence splitting is spaCy's job (see :mod:`exbert_widget.corpus.annotate`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import CorpusSourceError

__all__ = ["MAX_PARAGRAPH_CHARS", "CorpusSourceError", "is_running_text", "read_paragraphs"]

#: Paragraphs longer than this are cut (at a sentence-looking boundary) before spaCy sees them.
MAX_PARAGRAPH_CHARS = 20_000

_MARKER = re.compile(r"\[(?:illustration|picture|image|footnote|sidenote)[^\]]*\]", re.IGNORECASE)
_WS = re.compile(r"\s+")
_LOWER = re.compile(r"[a-z]")


def is_running_text(paragraph: str) -> bool:
    """Whether a cleaned paragraph is prose rather than a heading, a separator or a title line.

    Headings and title pages are set in capitals ("CHAPTER 2. THE ARRIVAL"); separators are rows of
    asterisks. Running text has lower-case letters.
    """
    return bool(_LOWER.search(paragraph))


def _clean(paragraph: str) -> str:
    paragraph = _MARKER.sub(" ", paragraph)
    return _WS.sub(" ", paragraph).strip()


def _split_long(paragraph: str) -> Iterator[str]:
    """Cut a very long paragraph into pieces of at most MAX_PARAGRAPH_CHARS, at '. ' if possible."""
    while len(paragraph) > MAX_PARAGRAPH_CHARS:
        cut = paragraph.rfind(". ", 0, MAX_PARAGRAPH_CHARS)
        if cut < MAX_PARAGRAPH_CHARS // 2:
            cut = paragraph.rfind(" ", 0, MAX_PARAGRAPH_CHARS)
        if cut <= 0:
            cut = MAX_PARAGRAPH_CHARS - 1
        yield paragraph[: cut + 1].strip()
        paragraph = paragraph[cut + 1 :].strip()
    if paragraph:
        yield paragraph


def _paragraphs_of_text(text: str) -> Iterator[str]:
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    for block in re.split(r"\n\s*\n", text):
        cleaned = _clean(block)
        if cleaned and is_running_text(cleaned):
            yield from _split_long(cleaned)


def read_text_file(path: str | os.PathLike[str]) -> str:
    """Read a UTF-8 text file (with or without BOM); clear errors when it cannot be read."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"corpus source {str(p)!r} is not a file; pass the path of a UTF-8 .txt file "
            "or an iterable of strings"
        )
    try:
        return p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusSourceError(
            f"corpus source {str(p)!r} is not valid UTF-8 ({exc}); convert it, e.g. "
            "`iconv -f latin1 -t utf-8`"
        ) from exc


def read_paragraphs(source: str | os.PathLike[str] | Iterable[str]) -> Iterator[str]:
    """Yield the clean paragraphs of running text of a source.

    ``source`` is the path of a UTF-8 text file (``str`` or ``PathLike``) or an iterable of strings,
    each of which is treated as a text of one or more paragraphs (blank lines separate paragraphs).
    Whitespace is collapsed, illustration markers are removed, and paragraphs without lower-case
    letters (title pages, chapter headings, separators) are skipped.
    """
    if isinstance(source, (str, os.PathLike)):
        yield from _paragraphs_of_text(read_text_file(source))
        return
    if isinstance(source, bytes) or not isinstance(source, Iterable):
        raise CorpusSourceError(
            f"corpus source must be a path to a .txt file or an iterable of strings, "
            f"not {type(source).__name__}"
        )
    for i, item in enumerate(source):
        if not isinstance(item, str):
            raise CorpusSourceError(
                f"item {i} of the corpus source is a {type(item).__name__}, not a str"
            )
        yield from _paragraphs_of_text(item)
