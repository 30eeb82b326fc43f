"""Reading corpus sources: BOM, CRLF, front matter, markers, headings, iterables, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from exbert_widget.corpus.text import (
    MAX_PARAGRAPH_CHARS,
    MAX_RUN_CHARS,
    CorpusSourceError,
    SourceNotFoundError,
    is_heading,
    is_running_text,
    read_paragraphs,
    read_source,
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


# -- characters a corpus cannot store --------------------------------------------------------


def test_nul_bytes_and_lone_surrogates_are_refused_by_line(tmp_path):
    path = tmp_path / "book.txt"
    path.write_bytes(b"First line of prose here.\r\nSecond line.\r\nThird \x00line.\r\n")
    with pytest.raises(CorpusSourceError, match=r"book\.txt', line 3, column 7: a NUL byte"):
        read_source(path)
    with pytest.raises(CorpusSourceError, match="item 1 of the corpus source, line 2, column 4"):
        read_source(["Fine text.", "First.\nBad\ud800 text."])
    with pytest.raises(CorpusSourceError, match=r"lone surrogate \(U\+DFFF\)"):
        read_source(["\udfff"])
    # other control characters are text like any other (a form feed is whitespace)
    assert read_source(["A page\x0cbreak, and a bell\x07 here."]).paragraphs == [
        "A page break, and a bell\x07 here."
    ]


# -- very long runs without a sentence end ---------------------------------------------------


def test_runs_without_a_sentence_end_are_cut_at_spaces_and_counted():
    words = [f"word{i}" for i in range(1_500)]  # ~10 kB, no punctuation at all
    text = read_source([" ".join(words) + ". Then a normal sentence follows."])
    assert all(len(p) <= MAX_RUN_CHARS for p in text.paragraphs)
    assert " ".join(text.paragraphs).split() == [
        *words[:-1],
        words[-1] + ".",
        *"Then a normal sentence follows.".split(),
    ]
    assert text.cut == len(text.paragraphs) - 1 >= 9
    # a book's longest runs are far shorter: nothing cut
    prose = "It was late, and the lamps were lit; nobody came. " * 100
    assert read_source([prose]).cut == 0


def test_one_megabyte_line_is_cut_quickly_into_model_sized_pieces():
    line = ("the farmer walked to town " * 40_000)[:1_000_000]
    text = read_source([line])
    assert text.cut == len(text.paragraphs) - 1 and len(text.paragraphs) >= 1_000
    assert max(len(p) for p in text.paragraphs) <= MAX_RUN_CHARS


# -- headings and front matter in books ------------------------------------------------------

TITLE_CASE_BOOK = """A Tale of the Valley

By A. Newcomer

This book is dedicated to my sister,
who read it first,
and to Tom.

Contents
 Chapter I. The River
 Chapter II. The Mill

Chapter I
The River

The river ran past the mill all summer, brown and slow, and the miller's children
fished in it every evening until the light was gone from the water.

Chapter II. The Mill

"Will it rain?" asked the miller. Nobody answered him, because nobody knew.

Good Night, Everyone
"""


def test_title_case_front_matter_and_headings_are_skipped(tmp_path):
    path = tmp_path / "valley.txt"
    path.write_text(TITLE_CASE_BOOK, encoding="utf-8")
    text = read_source(path)
    assert text.paragraphs == [
        "The river ran past the mill all summer, brown and slow, and the miller's children "
        "fished in it every evening until the light was gone from the water.",
        '"Will it rain?" asked the miller. Nobody answered him, because nobody knew.',
    ]
    assert text.front_matter == 5  # title, byline, dedication, contents, first heading
    assert text.headings == 2  # "Chapter II. The Mill", "Good Night, Everyone"
    # the same texts given as strings are the caller's own: only capitals-only ones go
    assert "A Tale of the Valley" in read_source([TITLE_CASE_BOOK]).paragraphs


def test_headings_versus_prose():
    for heading in (
        "Chapter XII",
        "Chapter I. The Cyclone",
        "CHAPTER 3.",
        "Book 2",
        "A Tale of the Valley",
        "By A. Newcomer",
        "To My Readers",
        "Contents",
    ):
        assert is_heading(heading), heading
    for prose in (
        "Chapter one was the hardest to write.",
        "It was late.",
        '"Oh, Dorothy!"',
        "The Wizard of Oz was a humbug, said the girl.",
        "Yes, Sir.",
        "he walked to the Emerald City",
    ):
        assert not is_heading(prose), prose


def test_a_text_without_early_prose_loses_no_front_matter():
    """Short lines all the way (a poem): nothing is taken for front matter."""
    poem = "\n\n".join(
        f"The owl and the hen\nwent walking again\nin verse number {i}." for i in range(80)
    )
    assert len(list(read_paragraphs([poem]))) == 80
    from exbert_widget.corpus.text import _front_matter

    blocks = poem.split("\n\n")
    assert _front_matter(blocks, [" ".join(b.split()) for b in blocks]) == 0


BOOKS = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not BOOKS.is_dir(), reason="the reference books are not beside the checkout")
@pytest.mark.parametrize(
    ("book", "first"),
    [
        ("dorothy-and-the-wizard-in-oz.txt", "It's no use; no use at all."),
        ("the-wonderful-wizard-of-oz.txt", "Folklore, legends, myths and fairy tales"),
    ],
)
def test_the_reference_books_lose_their_front_matter_and_headings(book, first):
    text = read_source(BOOKS / book)
    assert text.paragraphs[0].startswith(first)
    assert not any(is_heading(p) for p in text.paragraphs)
    for p in text.paragraphs:
        assert not p.startswith(
            ("Chapter ", "CHAPTER", "Contents", "by L. Frank", "The Wonderful Wizard of Oz")
        )
    assert text.cut == 0


NON_LATIN = [
    "Привет, как у тебя дела сегодня? Всё хорошо.",
    "Η γάτα κάθεται στο χαλί δίπλα στην πόρτα.",
    "東京は日本の首都であり、大きな都市です。",
    "北京是中国的首都，也是一座历史悠久的城市。",
    "שלום עולם, זה משפט בעברית.",
    "مرحبا بالعالم، هذه جملة عربية؟",
    "यह एक हिंदी वाक्य है।",
]


def test_text_in_other_scripts_is_running_text(tmp_path):
    """Scripts with lower case other than Latin's, and scripts without case, are running
    text (a source of them used to hold "no running text"); capitals in any script are not."""
    assert [is_running_text(p) for p in NON_LATIN] == [True] * len(NON_LATIN)
    assert not is_running_text("ГЛАВА ПЕРВАЯ. ПРИБЫТИЕ")
    assert not is_running_text("ΚΕΦΑΛΑΙΟ Α")
    source = read_source(["ГЛАВА ПЕРВАЯ", *NON_LATIN, "* * *"])
    assert source.paragraphs == NON_LATIN and source.headings == 2
    book = tmp_path / "book.txt"
    book.write_text("ГЛАВА ПЕРВАЯ\n\n" + "\n\n".join(NON_LATIN) + "\n", encoding="utf-8")
    assert list(read_paragraphs(book)) == NON_LATIN


def test_full_width_sentence_ends_are_sentence_ends():
    """A long Japanese paragraph ending its sentences with 。 is not cut as a run."""
    sentence = "これは日本語で書かれた少し長めの文であり、句点で終わります。"
    paragraph = sentence * (3 * MAX_RUN_CHARS // len(sentence))
    source = read_source([paragraph])
    assert source.cut == 0 and source.paragraphs == [paragraph]


def test_a_missing_file_or_a_text_passed_as_a_path_is_a_corpus_source_error(tmp_path):
    """Also a FileNotFoundError, as before; a text too long to be a file name used to raise a
    bare OSError (File name too long)."""
    for path in (tmp_path / "missing.txt", "The cat sat. " * 40, "word" * 100):
        with pytest.raises(CorpusSourceError, match="is not a file") as info:
            read_source(path)
        assert isinstance(info.value, FileNotFoundError)


def test_files_in_a_list_are_read_as_books_whether_paths_or_names(tmp_path, monkeypatch):
    """A list of file names used to become a corpus of file names (issue 14: a source is a
    file, a list of files, or an iterable)."""
    one, empty = tmp_path / "one.txt", tmp_path / "empty.txt"
    one.write_text("CHAPTER I\n\nThe dog ran across the park.\r\n\r\nIt was late.\n", "utf-8")
    empty.write_text("", encoding="utf-8")
    source = read_source([one, empty, "Your own text here.", one])
    book = read_source(one).paragraphs
    assert book == ["The dog ran across the park.", "It was late."]
    assert source.paragraphs == [*book, "Your own text here.", *book]
    assert source.front_matter == 2  # the heading before each copy's first prose
    monkeypatch.chdir(tmp_path)
    for name in (str(one), "one.txt", " one.txt\n"):
        assert read_source(["Some text.", name]).paragraphs == ["Some text.", *book]
    assert read_source(["one.txt is a file name in a sentence."]).paragraphs == [
        "one.txt is a file name in a sentence."
    ]
    with pytest.raises(SourceNotFoundError, match=r"item 1 .*'two.txt', names no file"):
        read_source([one, "two.txt"])
