"""A cheap start: importing the package and the CLI loads no model stack; the hub fails fast."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import exbert_widget as ew
from exbert_widget.models import hub

HEAVY = ("torch", "transformers", "faiss", "spacy", "h5py", "anywidget", "pandas")


def _modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nimport json; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_importing_the_package_loads_no_heavy_library():
    loaded = _modules_after("import exbert_widget as ew; ew.ExbertError, ew.__version__")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_cli_help_loads_no_heavy_library():
    code = (
        "from exbert_widget import cli\n"
        "try:\n    cli.main(['corpus', 'build', '--help'])\nexcept SystemExit:\n    pass"
    )
    loaded = _modules_after(code)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_public_names_still_resolve():
    assert ew.load_model.__name__ == "load_model"
    assert ew.ExBertView.__name__ == "ExBertView" and ew.Corpus.__name__ == "Corpus"
    assert set(ew.__all__) <= set(dir(ew))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ew.nope  # noqa: B018


def test_an_unreachable_hub_fails_with_one_clear_error(monkeypatch, tmp_path):
    """Not cached, and the hub endpoint does not answer: ModelLoadError from the probe, before
    transformers starts its retries."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(hub, "_reachable", lambda endpoint: f"{endpoint} refused")
    with pytest.raises(ew.ModelLoadError, match=r"cannot be reached.*load_model\('demo'\)"):
        ew.load_model("someone/not-cached-model")


def test_the_probe_reports_a_closed_port():
    # port 9 (discard) on loopback is closed here: the connection is refused at once
    why = hub._reachable("http://127.0.0.1:9")
    assert why is not None and "127.0.0.1:9" in why


def test_hub_options_use_the_cache_or_stay_out_of_the_way(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert hub.hub_options(str(tmp_path)) == {}  # a local directory
    monkeypatch.setattr(hub, "_cached", lambda repo: True)
    assert hub.hub_options("org/cached") == {"local_files_only": True}
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "_cached", lambda repo: False)
    assert hub.hub_options("org/anything") == {"local_files_only": True}  # no probe either


def test_corpus_info_reads_the_manifest_without_the_heavy_stack(tiny_dirs, tmp_path):
    lm = ew.load_model(tiny_dirs["bert"])
    corpus = ew.build_corpus(["It was a fine morning in town."], lm, tmp_path / "c", progress=False)
    code = (
        "from exbert_widget import cli\n"
        f"assert cli.main(['corpus', 'info', {str(corpus.root)!r}]) == 0"
    )
    loaded = _modules_after(code)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize("text", [None, "", "[Illustration]\n\nCHAPTER I\n"])
def test_corpus_build_refuses_a_bad_source_before_the_heavy_stack(tmp_path, text):
    """`exbert corpus build missing.txt` (or a file with no running text) answers at once: the
    source is checked before torch, FAISS or spaCy are imported, not only before the model
    loads (which, at their import time, took ~20 s on a loaded machine)."""
    source = tmp_path / "book.txt"
    if text is not None:
        source.write_text(text, encoding="utf-8")
    argv = ["corpus", "build", str(source), "--model", "demo", "--out", str(tmp_path / "out")]
    _refused_without_the_heavy_stack(argv, ["corpus source", str(source)])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad", ["out", "index"])
def test_corpus_build_refuses_a_bad_out_or_index_before_the_heavy_stack(tmp_path, bad):
    """A good book with `--out` naming a file or a bad `--index` spec answers at once too: both
    are checked without torch or FAISS, not after their import (~20 s on a loaded machine)."""
    source = tmp_path / "book.txt"
    source.write_text("It was a fine morning in the town by the river.\n", encoding="utf-8")
    out = tmp_path / "out"
    if bad == "out":
        out.write_text("not a corpus", encoding="utf-8")
    argv = ["corpus", "build", str(source), "--model", "demo", "--out", str(out)]
    argv += ["--index", "HNSW32" if bad == "index" else "auto"]
    said = "is a file, not a corpus directory" if bad == "out" else "Unknown index spec 'HNSW32'"
    _refused_without_the_heavy_stack(argv, [said])
    assert out.is_file() if bad == "out" else not out.exists()


def _refused_without_the_heavy_stack(argv: list[str], said: list[str]) -> None:
    """``exbert ARGV`` in a fresh interpreter exits with 2, its error naming each of ``said``,
    having imported nothing of :data:`HEAVY`."""
    code = (
        "import contextlib, io\n"
        "from exbert_widget import cli\n"
        "err = io.StringIO()\n"
        "with contextlib.redirect_stderr(err):\n"
        f"    assert cli.main({argv!r}) == 2\n"
        f"assert all(s in err.getvalue() for s in {said!r}), err.getvalue()\n"
    )
    loaded = _modules_after(code)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_offline_mode_set_late_asks_the_hub_nothing(monkeypatch, tmp_path):
    """`os.environ["HF_HUB_OFFLINE"] = "1"` in a notebook after transformers was imported:
    huggingface_hub read the variable at its import, so transformers still asked the hub for the
    file (five retries, ~24 s, before the error). The load must not ask for it."""
    import socket

    import huggingface_hub.constants
    import huggingface_hub.file_download as download

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read before
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # ... the user set it
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))

    def no_network(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    asked = []

    def metadata(url, *args, **kwargs):
        asked.append(url)
        raise OSError("no network in this test")

    monkeypatch.setattr(download, "get_hf_file_metadata", metadata)
    with pytest.raises(ew.ModelLoadError, match="someone/not-cached-model"):
        ew.load_model("someone/not-cached-model")
    assert asked == []
