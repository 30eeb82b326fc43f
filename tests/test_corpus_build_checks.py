"""A build fails before the work: out_dir, then the whole source, then the index spec are
checked before spaCy loads or the model runs; long runs and long sentences are warned about."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import exbert_widget as ew
from exbert_widget.cli import main as cli_main
from exbert_widget.corpus import build
from exbert_widget.corpus.text import MAX_RUN_CHARS


@pytest.fixture(scope="module")
def tiny_bert(tiny_dirs):
    return ew.load_model(tiny_dirs["bert"])


@pytest.fixture()
def no_work(monkeypatch, tiny_bert):
    """Fails the test if spaCy loads or the model encodes anything."""

    def refuse(*args, **kwargs):
        raise AssertionError("the work started before the inputs were checked")

    monkeypatch.setattr(build, "load_spacy", refuse)
    monkeypatch.setattr(tiny_bert, "encode", refuse)


def test_bad_sources_fail_before_spacy_or_the_model(tiny_bert, tmp_path, no_work):
    book = tmp_path / "book.txt"
    book.write_bytes(("A fine first line of prose.\n" * 500 + "and then\x00 a NUL.\n").encode())
    with pytest.raises(ew.CorpusSourceError, match=r"line 501, column 9: a NUL byte"):
        ew.build_corpus(book, tiny_bert, tmp_path / "out")
    with pytest.raises(ew.CorpusSourceError, match="item 2 of the corpus source, line 1"):
        ew.build_corpus(["Fine.", "Fine too.", "bad \ud834 here"], tiny_bert, tmp_path / "out")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\nCHAPTER I\n\n* * *\n", encoding="utf-8")
    with pytest.raises(ew.CorpusSourceError, match="no running text"):
        ew.build_corpus(empty, tiny_bert, tmp_path / "out")
    with pytest.raises(ValueError, match="Unknown index spec"):
        ew.build_corpus(["Some text here."], tiny_bert, tmp_path / "out", index="HNSW")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (None, "An index spec is a string"),
        (6, "An index spec is a string"),
        ("", "Unknown index spec"),
        ("PQ8x4fs,SQ6", "needs an inverted file"),
        ("IVF4,PQ7x4fs,SQ6", "7 sub-quantizers do not divide the vectors' 32 dimensions"),
    ],
)
@pytest.mark.parametrize("shards", [None, 2])
def test_bad_index_specs_are_input_errors_before_the_work(
    tiny_bert, tmp_path, no_work, monkeypatch, spec, message, shards
):
    """Non-strings used to fail with an AttributeError, and a fast-scan code that does not
    divide the width with a bare ValueError only once the model had run."""
    from exbert_widget.corpus import sharded_build

    monkeypatch.setattr(sharded_build, "load_spacy", build.load_spacy)  # no_work's refusal
    assert tiny_bert.hidden_size == tiny_bert.context_size == 32
    with pytest.raises(ew.InputError, match=message):
        ew.build_corpus(["Some text here."], tiny_bert, tmp_path / "out", index=spec, shards=shards)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_a_bad_out_dir_fails_first(tiny_bert, tmp_path, no_work):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    with pytest.raises(ew.CorpusError, match="is a file, not a corpus directory"):
        ew.build_corpus(tmp_path / "missing.txt", tiny_bert, afile)  # out_dir before source
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ew.CorpusError, match="exists and is not a corpus"):
        ew.build_corpus(["Some text here."], tiny_bert, foreign)
    assert afile.read_text() == "mine" and (foreign / "notes.txt").read_text() == "keep me"


def test_a_line_without_punctuation_is_cut_with_a_warning(tiny_bert, tmp_path):
    line = " ".join(f"word{i % 97}" for i in range(2_000))  # ~12 kB, no sentence end
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        corpus = ew.build_corpus([line], tiny_bert, tmp_path / "c", progress=False)
    counts = corpus.manifest["counts"]
    messages = [str(w.message) for w in record]
    assert counts["cut"] >= 11
    assert any(f"cut at spaces {counts['cut']} times" in m for m in messages), messages
    # this tiny model takes 128 tokens: the 1,000-character pieces are too long for it, and
    # the warning says how many were truncated
    pieces = len(corpus.sentences)
    assert counts["truncated"] == pieces
    assert any(f"{pieces} of {pieces} sentences have more tokens" in m for m in messages)
    assert max(len(s) for s in corpus.sentences[:]) <= MAX_RUN_CHARS
    # nothing of the line is lost
    assert " ".join(corpus.sentences[:]).split() == line.split()


def test_sentences_longer_than_the_model_are_counted_and_warned(tiny_bert, tmp_path):
    long = "The list went on, " + ", ".join(f"item {i}" for i in range(80)) + "."
    with pytest.warns(UserWarning, match="it was truncated"):
        assert len(tiny_bert.encode(long)) == tiny_bert.max_length
    with pytest.warns(UserWarning, match=r"1 of 2 sentences have more tokens than .* \(128\)"):
        corpus = ew.build_corpus(
            [long, "A short one here."], tiny_bert, tmp_path / "c", progress=False
        )
    assert corpus.manifest["counts"]["truncated"] == 1


def test_cli_checks_source_and_out_dir_before_loading_the_model(tmp_path, capsys):
    """A model path that does not exist: had it been loaded first, its error would show."""
    model = str(tmp_path / "no-such-model")
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"Some prose.\n\x00\n")
    afile = tmp_path / "afile"
    afile.write_text("x")
    prose = tmp_path / "prose.txt"  # the source is checked first: a good one, for the out dir
    prose.write_text("It was a fine morning in the town by the sea.\n", encoding="utf-8")
    cases = [
        (tmp_path / "missing.txt", tmp_path / "o", "is not a file"),
        (empty, tmp_path / "o", "holds no running text"),
        (nul, tmp_path / "o", "line 2, column 1: a NUL byte"),
        (prose, afile, "is a file, not a corpus directory"),
    ]
    for source, out, message in cases:
        code = cli_main(["corpus", "build", str(source), "--model", model, "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err
        assert "no-such-model" not in err
    code = cli_main(
        [
            "corpus",
            "build",
            str(nul),
            "--model",
            model,
            "--out",
            str(tmp_path / "o"),
            "--index",
            "X",
        ]
    )
    assert code == 2 and "NUL" in capsys.readouterr().err


def test_cli_build_of_a_clean_source_reaches_the_model(tmp_path, capsys):
    book = tmp_path / "book.txt"
    book.write_text("It was a fine morning, and the town was quiet.\n", encoding="utf-8")
    code = cli_main(
        [
            "corpus",
            "build",
            str(book),
            "--model",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "nope" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_cli_info_prints_the_verified_manifest(tiny_bert, tmp_path, capsys):
    corpus = ew.build_corpus(
        ["It was a fine morning in town."], tiny_bert, tmp_path / "c", progress=False
    )
    for verify in ("manifest", "fast", "full"):
        assert cli_main(["corpus", "info", str(corpus.root), "--verify", verify]) == 0
        assert json.loads(capsys.readouterr().out) == corpus.manifest
    (corpus.root / "manifest.json").write_text('{"format": 1}')
    assert cli_main(["corpus", "info", str(corpus.root)]) == 2
    assert "manifest" in capsys.readouterr().err
    assert cli_main(["corpus", "info", str(tmp_path / "none")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_cli_info_into_a_pipe_closed_early_says_nothing(tiny_bert, tmp_path):
    """``exbert corpus info DIR | head``: a reader that leaves before the manifest is written
    (``true`` reads nothing) is no error of the command's: no message, no traceback, and the
    status of a command ended by the closed pipe."""
    corpus = ew.build_corpus(["A quiet pipe."], tiny_bert, tmp_path / "c", progress=False)
    command = (
        f"{sys.executable} -m exbert_widget.cli corpus info {corpus.root} | true; "
        "exit ${PIPESTATUS[0]}"
    )
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert proc.stderr == ""
    assert proc.returncode == 141


def test_opening_something_that_is_not_a_path():
    for bad in (None, 3, ["a"]):
        with pytest.raises(ew.InputError, match=r"A corpus directory is a path"):
            ew.Corpus.open(bad)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"layers": 1}, "layers must be a non-empty list"),
        ({"layers": "01"}, "layers must be a non-empty list"),
        ({"layers": [0.5]}, "layers must be a non-empty list"),
        ({"layers": [True]}, "layers must be a non-empty list"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"batch_size": "8"}, "batch_size must be an integer"),
        ({"batch_size": 2.5}, "batch_size must be an integer"),
        ({"min_chars": -1}, "min_chars must be at least 0"),
        ({"min_chars": "a"}, "min_chars must be an integer"),
        ({"spacy_processes": 0}, "spacy_processes must be None or at least 1"),
        ({"actors": 0}, "actors must be None or at least 1"),
        ({"address": 5}, "address must be None"),
        ({"out_dir": None}, r"out_dir must be a path \(str or os\.PathLike\), got NoneType"),
        ({"out_dir": 5}, "out_dir must be a path"),
        ({"lm": None}, r"lm must be a model loaded with ew\.load_model"),
        ({"lm": "prajjwal1/bert-tiny"}, r"lm must be a model loaded with ew\.load_model"),
    ],
)
def test_odd_build_options_are_input_errors_before_the_work(
    tiny_bert, tmp_path, no_work, option, message
):
    """These used to raise bare TypeErrors mid-build, or (batch_size=0) run as if 1."""
    args = {"lm": tiny_bert, "out_dir": tmp_path / "out", **option}
    with pytest.raises(ew.InputError, match=message):
        ew.build_corpus(["Some text here."], args.pop("lm"), args.pop("out_dir"), **args)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_numpy_layers_and_counts_are_integers(tiny_bert, tmp_path):
    corpus = ew.build_corpus(
        ["The cat sat on the mat near the door.", "A second sentence is here."],
        tiny_bert,
        tmp_path / "c",
        layers=np.array([1, 1]),
        batch_size=np.int64(4),
        progress=False,
    )
    assert tiny_bert.num_layers == 2
    assert corpus.manifest["indexed"] == {"layers": [1], "kinds": ["embedding", "context"]}
    assert len(corpus.search(np.ones(32), np.int64(1), k=3)) == 3


def test_a_spacy_model_that_is_neither_name_path_nor_pipeline(tiny_bert, tmp_path):
    """spacy_model=5 failed with AttributeError ('int' object has no attribute 'pipe'), and a
    pathlib.Path was taken for a loaded pipeline."""
    with pytest.raises(ew.SpacyModelError, match="spacy_model must be a spaCy pipeline name"):
        ew.build_corpus(["Some text here."], tiny_bert, tmp_path / "a", spacy_model=5)
    with pytest.raises(ew.SpacyModelError, match=r"tried .*no-such-pipeline"):
        ew.build_corpus(
            ["Some text here."],
            tiny_bert,
            tmp_path / "b",
            spacy_model=tmp_path / "no-such-pipeline",
        )
    assert not list(tmp_path.iterdir())


def test_an_encoder_decoder_model_is_refused_before_the_work(tmp_path, monkeypatch):
    """It failed inside the build, once spaCy had loaded and parsed the source."""
    from tests import tiny_models

    t5 = ew.load_model(str(tiny_models.save("t5", tmp_path / "t5")))
    monkeypatch.setattr(build, "load_spacy", no_spacy)
    with pytest.raises(ew.InputError, match="is an encoder–decoder model: a corpus holds"):
        ew.build_corpus(["Some text here."], t5, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def no_spacy(*args, **kwargs):
    raise AssertionError("spaCy loaded before the model was checked")


def test_cli_builds_one_corpus_from_several_books(tiny_dirs, tiny_bert, tmp_path, capsys):
    """``exbert corpus build a.txt b.txt``: one corpus holding both books, in order, the same
    as ``build_corpus([Path(a), Path(b)], ...)``."""
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("The owl sat on the old oak tree.\n\nIt watched the road.\n", "utf-8")
    second.write_text("A cart came down the hill at dusk.\n", "utf-8")
    args = ["corpus", "build", str(first), str(second), "--model", tiny_dirs["bert"]]
    assert cli_main([*args, "--out", str(tmp_path / "cli")]) == 0
    capsys.readouterr()
    built = ew.Corpus.open(tmp_path / "cli")
    direct = ew.build_corpus([first, second], tiny_bert, tmp_path / "api", progress=False)
    assert (
        list(built.sentences[:])
        == list(direct.sentences[:])
        == [
            "The owl sat on the old oak tree.",
            "It watched the road.",
            "A cart came down the hill at dusk.",
        ]
    )


RUSSIAN = [
    "Дороти жила в Канзасе вместе с дядей Генри и тётей Эм.",
    "Их дом был совсем маленький, потому что лес для стройки везли издалека.",
]
CHINESE = [
    "多萝西和亨利叔叔、艾姆婶婶一起住在堪萨斯大草原的中部。",
    "他们的房子很小，因为盖房子的木材要用马车从很远的地方运来。",
]


@pytest.mark.parametrize(("text", "script"), [(RUSSIAN, "Cyrillic"), (CHINESE, "CJK")])
def test_a_text_in_a_script_the_spacy_pipeline_cannot_read_is_warned_about(
    tiny_bert, tmp_path, text, script
):
    """English spaCy on Russian or Chinese text gives meaningless words, POS and DEP (a Chinese
    sentence is one "word"): the build says so, naming the script and what to pass."""
    with pytest.warns(UserWarning, match=f"Most letters of the text are {script}, but the spaCy "
                      "pipeline is for 'en'") as caught:  # fmt: skip
        corpus = ew.build_corpus(text, tiny_bert, tmp_path / "out", progress=False)
    assert "spacy_model=" in str(caught[0].message)
    # still built, as asked, with the English pipeline's (wrong) sentence splits
    assert "".join(corpus.sentences[:]).replace(" ", "") == "".join(text).replace(" ", "")


def test_english_with_a_few_foreign_words_is_not_warned_about():
    nlp = build.load_spacy()
    mixed = ["Dorothy said 'спасибо' and '谢谢' to the kind old witch of the north, smiling."]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build.check_script(mixed, nlp)
        build.check_script(CHINESE, _Lang("xx"))  # a multi-language pipeline: any script
    with pytest.warns(UserWarning, match="are CJK, but the spaCy pipeline is for 'de'"):
        build.check_script(CHINESE, _Lang("de"))


class _Lang:
    """What check_script reads of a pipeline: its language and meta."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.meta = {"lang": lang, "name": "core_news_sm"}
