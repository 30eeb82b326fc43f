"""Reading corpus sources: BOM, CRLF, front matter, markers, headings, iterables, errors."""

from __future__ import annotations

import pytest

from exbert_widget.corpus.text import (
    MAX_PARAGRAPH_CHARS,
    CorpusSourceError,
    is_running_text,
    read_paragraphs,
)

BOOK = (
    "\ufeff  THE LANTERN MAKER\r\n\r\n  BY A. WRITER\r\n\r\n  [Illustration]\r\n\r\n"
    "         *       *       *       *       *\r\n\r\n"
    "CHAPTER I.\r\nTHE SHOP ON THE HILL\r\n\r\n"
    "The lantern maker opened his shop at dawn.\r\nHe swept the floor twice.\r\n\r\n"
    "[Illustration: a lantern]\r\n\r\n"
    "Nobody came [Illustration] until noon, when a girl asked for a red lamp.\r\n"
)


def test_book_with_bom_crlf_front_matter_and_markers(tmp_path):
    path = tmp_path / "book.txt"
    path.write_bytes(BOOK.encode("utf-8"))
    assert list(read_paragraphs(path)) == [
        "The lantern maker opened his shop at dawn. He swept the floor twice.",
        "Nobody came until noon, when a girl asked for a red lamp.",
    ]
    # same text with LF and without BOM, and as a str path
    path.write_text(BOOK.lstrip("\ufeff").replace("\r\n", "\n"), encoding="utf-8")
    assert len(list(read_paragraphs(str(path)))) == 2


def test_iterable_of_strings_each_may_hold_paragraphs():
    got = list(read_paragraphs(["One short line here.", "First para.\n\nSecond para.", "  "]))
    assert got == ["One short line here.", "First para.", "Second para."]


def test_headings_and_separators_are_not_running_text():
    assert not is_running_text("CHAPTER XII. THE WRECK")
    assert not is_running_text("*  *  *")
    assert is_running_text("It was late.")


def test_very_long_paragraphs_are_cut_at_sentence_ends():
    text = "This is one sentence of a long paragraph. " * 2000
    parts = list(read_paragraphs([text]))
    assert len(parts) > 1
    assert all(len(p) <= MAX_PARAGRAPH_CHARS for p in parts)
    assert all(p.endswith(".") for p in parts)
    assert sum(len(p.split()) for p in parts) == len(text.split())


def test_clear_errors_for_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a file"):
        list(read_paragraphs(tmp_path / "missing.txt"))
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait, s'il vous pla\xeet.".encode("latin-1"))
    with pytest.raises(CorpusSourceError, match="not valid UTF-8"):
        list(read_paragraphs(bad))
    with pytest.raises(CorpusSourceError, match="iterable of strings"):
        list(read_paragraphs(42))  # type: ignore[arg-type]
    with pytest.raises(CorpusSourceError, match="item 1"):
        list(read_paragraphs(["fine text", b"bytes"]))  # type: ignore[list-item]
