"""Reading corpus sources: text files (books) or iterables of strings, cut into paragraphs.

A book as found in the wild has a byte-order mark, CRLF line ends, front matter (title page,
byline, dedication, contents), illustration markers and chapter headings. :func:`read_source`
reads a whole source up front, refuses what a build could not store (NUL bytes, lone
surrogates: named by line, before any model runs), and turns it into clean paragraphs of running
text; sentence splitting is spaCy's job (see :mod:`exbert_widget.corpus.annotate`).

What is skipped, precisely:

* everywhere: ``[Illustration]``-style markers; paragraphs without a letter that is lower-case
  or of a script without case (headings and title pages in capitals, rows of asterisks; text in
  Chinese, Japanese, Arabic or Hebrew is running text);
* in text files (books), also headings in mixed case: chapter headings ("Chapter XII",
  "Chapter I. The Cyclone", "Book 2") and short title-like lines (at most 10 words, no
  sentence punctuation at the end, every word of four or more letters capitalised: "A Tale of
  the Valley", "By A. Newcomer", "Contents");
* in text files, front matter: the paragraphs before the first real paragraph (prose ending in
  ``.``, ``!`` or ``?`` whose lines, but the last, are at least 40 characters long, so a
  dedication or a table of contents set in short lines is not one), looked for within the first
  50 paragraphs and the first 10 % of the text (or 5,000 characters, if more); where none is found
  there, nothing is skipped as front matter.

Iterables of strings are the caller's own texts: only markers and paragraphs without such letters
are dropped there. Runs of more than ``MAX_RUN_CHARS`` characters without a sentence end
(``.!?;:``, their CJK full-width forms, ``؟`` or ``।``) are cut at spaces: no model takes such a
"sentence" whole, and spaCy parses them slowly; :attr:`Source.cut` counts the cuts.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from ..errors import CorpusSourceError

__all__ = [
    "MAX_PARAGRAPH_CHARS",
    "MAX_RUN_CHARS",
    "CorpusSourceError",
    "Source",
    "SourceLike",
    "SourceNotFoundError",
    "is_heading",
    "is_running_text",
    "read_paragraphs",
    "read_source",
]

#: Paragraphs longer than this are cut (at a sentence-looking boundary) before spaCy sees them.
MAX_PARAGRAPH_CHARS = 20_000
#: Longest stretch without a sentence end kept whole (a real book's longest is ~350).
MAX_RUN_CHARS = 1_000
FRONT_MATTER_PARAGRAPHS = 50  # front matter is looked for within this many paragraphs ...
FRONT_MATTER_SHARE = 0.10  # ... and this share of the text (at least FRONT_MATTER_MIN_CHARS)
FRONT_MATTER_MIN_CHARS = 5_000
PROSE_LINE_CHARS = 40  # every line of a wrapped prose paragraph but its last is this long

_MARKER = re.compile(r"\[(?:illustration|picture|image|footnote|sidenote)[^\]]*\]", re.IGNORECASE)
_WS = re.compile(r"\s+")
_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")
_SENTENCE_END = re.compile(r"[.!?;:\u3002\uff01\uff1f\uff1b\uff1a\u061f\u0964]")
_ENDS_SENTENCE = re.compile(r"[.!?\u3002\uff01\uff1f\u061f\u0964][\"'\u201d\u2019)\]]*$")
_ENDS_PUNCTUATED = re.compile(r"[.!?,;:][\"'\u201d\u2019)\]]*$")
_CHAPTER = re.compile(
    r"^(?:chapter|book|part|volume|section|canto)\s+(?:\d+|[ivxlcdm]+)\b\.?(?:\s+[^.!?]*)?$",
    re.IGNORECASE,
)


#: What a corpus is built from: a text file's path, or texts and paths of text files.
SourceLike: TypeAlias = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]


class SourceNotFoundError(CorpusSourceError, FileNotFoundError):
    """A corpus source path that is not a file (also a ``FileNotFoundError``)."""


@dataclass
class Source:
    """A source read whole: its clean paragraphs, and what was skipped or cut on the way."""

    paragraphs: list[str] = field(default_factory=list)
    front_matter: int = 0  # paragraphs skipped as front matter
    headings: int = 0  # paragraphs skipped as headings, title lines or separators
    cut: int = 0  # cuts in runs of more than MAX_RUN_CHARS characters without a sentence end

    @property
    def chars(self) -> int:
        return sum(len(p) for p in self.paragraphs)


def is_running_text(paragraph: str) -> bool:
    """Whether a cleaned paragraph has a letter that is not upper-case (lower-case in any
    script, or of a script without case: CJK, Arabic, Hebrew, ...): headings and title pages set
    in capitals ("CHAPTER 2. THE ARRIVAL", "ГЛАВА 2") and separators (rows of asterisks) have
    none."""
    return any(c.isalpha() and not c.isupper() for c in paragraph)


def is_heading(paragraph: str) -> bool:
    """Whether a cleaned paragraph of a book is a heading rather than running text: no
    lower-case letters, a chapter heading, or a short title-like line (see the module's
    docstring)."""
    if not is_running_text(paragraph) or _CHAPTER.match(paragraph):
        return True
    words = paragraph.split()
    if len(words) > 10 or _ENDS_PUNCTUATED.search(paragraph):
        return False
    long_words = [w.strip("\"'\u201c\u2018(") for w in words if sum(c.isalpha() for c in w) >= 4]
    return bool(long_words) and all(w[:1].isupper() for w in long_words)


def _is_prose(block: str, cleaned: str) -> bool:
    """Whether a paragraph is real prose: it ends a sentence, and every line of the raw block
    but the last is long (wrapped text, not short centred lines)."""
    lines = [line.strip() for line in block.strip().split("\n")]
    return bool(_ENDS_SENTENCE.search(cleaned)) and all(
        len(line) >= PROSE_LINE_CHARS for line in lines[:-1]
    )


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


def _cut_runs(paragraph: str) -> list[str]:
    """The paragraph, cut at spaces wherever a run without a sentence end exceeds
    MAX_RUN_CHARS (pieces of at most MAX_RUN_CHARS characters)."""
    cuts: list[int] = []
    start = 0
    for end in [m.end() for m in _SENTENCE_END.finditer(paragraph)] + [len(paragraph)]:
        while end - start > MAX_RUN_CHARS:
            space = paragraph.rfind(" ", start + 1, start + MAX_RUN_CHARS + 1)
            start = space if space > start else start + MAX_RUN_CHARS
            cuts.append(start)
        start = max(start, end)
    bounds = [0, *cuts, len(paragraph)]
    pieces = [paragraph[a:b].strip() for a, b in itertools.pairwise(bounds)]
    return [p for p in pieces if p]


def _check_characters(text: str, where: str) -> None:
    """Refuse what a corpus cannot store: NUL (ends strings in HDF5) and lone surrogates (not
    encodable as UTF-8), naming the line."""
    bad = _FORBIDDEN.search(text)
    if bad is None:
        return
    line = text.count("\n", 0, bad.start()) + 1
    column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
    what = "a NUL byte" if bad.group() == "\x00" else f"a lone surrogate (U+{ord(bad.group()):04X})"
    raise CorpusSourceError(
        f"{where}, line {line}, column {column}: {what}, which a corpus cannot store; remove it "
        "(e.g. `tr -d '\\000'` for NUL bytes) or fix the text's encoding"
    )


def _read_text(text: str, source: Source, book: bool) -> None:
    """Add a text's paragraphs to ``source``; ``book`` applies the heading and front-matter
    rules of text files."""
    blocks = re.split(r"\n\s*\n", text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n"))
    cleaned = [_clean(block) for block in blocks]
    skip = _front_matter(blocks, cleaned) if book else 0
    source.front_matter += sum(1 for p in cleaned[:skip] if p)
    for paragraph in cleaned[skip:]:
        if not paragraph:
            continue
        if not is_running_text(paragraph) or (book and is_heading(paragraph)):
            source.headings += 1
            continue
        runs = _cut_runs(paragraph)
        source.cut += len(runs) - 1
        for run in runs:
            source.paragraphs.extend(_split_long(run))


def _front_matter(blocks: list[str], cleaned: list[str]) -> int:
    """How many leading blocks are front matter: those before the first real prose paragraph,
    if there is one early in the text (else none)."""
    limit = max(FRONT_MATTER_SHARE * sum(len(p) for p in cleaned), FRONT_MATTER_MIN_CHARS)
    seen = 0
    for i, (block, paragraph) in enumerate(zip(blocks, cleaned, strict=True)):
        if i >= FRONT_MATTER_PARAGRAPHS or seen > limit:
            return 0
        if paragraph and not is_heading(paragraph) and _is_prose(block, paragraph):
            return i
        seen += len(paragraph)
    return 0


def read_text_file(path: str | os.PathLike[str]) -> str:
    """Read a UTF-8 text file (with or without BOM); clear errors when it cannot be read.

    Raises:
        SourceNotFoundError: (a ``CorpusSourceError`` and a ``FileNotFoundError``) no such file.
        CorpusSourceError: not UTF-8, or unreadable.
    """
    p = Path(path)
    if not _is_file(p):
        raise SourceNotFoundError(
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
    except OSError as exc:
        raise CorpusSourceError(f"corpus source {str(p)!r} cannot be read ({exc})") from exc


def read_source(source: SourceLike) -> Source:
    """Read a whole source and return its clean paragraphs of running text.

    ``source`` is the path of a UTF-8 text file (``str`` or ``PathLike``: a book, see the
    module's docstring for what is skipped) or an iterable of strings, each of which is treated
    as a text of one or more paragraphs (blank lines separate paragraphs), or of paths of text
    files (books), in any mix: an ``os.PathLike`` item, or a one-line ``str`` item that is the
    path of an existing file (a list of file names is a list of books). Whitespace is collapsed
    and markers are removed.

    Raises:
        SourceNotFoundError: (a ``CorpusSourceError``) a path that is not a file, or an item
            without spaces ending in ``.txt`` that names no file.
        CorpusSourceError: not UTF-8, not a path or an iterable of strings, or holding a NUL
            byte or a lone surrogate (the message names the item and line).
    """
    out = Source()
    if isinstance(source, (str, os.PathLike)):
        _read_file(source, out, f"corpus source {str(source)!r}")
        return out
    if isinstance(source, bytes) or not isinstance(source, Iterable):
        raise CorpusSourceError(
            f"corpus source must be a path to a .txt file or an iterable of strings, "
            f"not {type(source).__name__}"
        )
    for i, item in enumerate(source):
        if isinstance(item, os.PathLike):
            _read_file(item, out, f"item {i} of the corpus source ({str(item)!r})")
            continue
        if not isinstance(item, str):
            raise CorpusSourceError(
                f"item {i} of the corpus source is a {type(item).__name__}, not a str"
            )
        named = _named_file(item, i)
        if named is not None:
            _read_file(named, out, f"item {i} of the corpus source ({item!r})")
            continue
        _check_characters(item.replace("\r\n", "\n"), f"item {i} of the corpus source")
        _read_text(item, out, book=False)
    return out


def _read_file(path: str | os.PathLike[str], out: Source, where: str) -> None:
    text = read_text_file(path)
    _check_characters(text.replace("\r\n", "\n"), where)
    _read_text(text, out, book=True)


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; False for a name the system cannot even look up (too
    long: a text passed where a path was expected)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _named_file(item: str, i: int) -> Path | None:
    """The file a one-line ``str`` item is the path of (a list of file names is a list of
    books), else None: the item is text.

    Raises:
        SourceNotFoundError: an item without spaces ending in ``.txt`` that names no file (a
            mistyped book name would otherwise become a one-word paragraph, dropped unseen).
    """
    name = item.strip()
    if not name or "\n" in name or len(name) > 4096:
        return None
    path = Path(name)
    if _is_file(path):
        return path
    if path.suffix.lower() == ".txt" and not any(c.isspace() for c in name):
        raise SourceNotFoundError(
            f"item {i} of the corpus source, {item!r}, names no file; a list of file names is "
            "read as books, other items as text"
        )
    return None


def read_paragraphs(source: SourceLike) -> Iterator[str]:
    """The clean paragraphs of running text of a source (:func:`read_source`'s paragraphs).

    Raises:
        CorpusSourceError: as :func:`read_source`.
    """
    yield from read_source(source).paragraphs
