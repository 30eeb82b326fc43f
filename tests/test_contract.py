"""The generated kernel ⇄ view contract: current, translated faithfully, and its checks."""

from __future__ import annotations

import shutil
from typing import Literal, NotRequired, TypedDict

import pytest

from exbert_widget.errors import InputError
from exbert_widget.widget import contract, state
from exbert_widget.widget.commands import check_json


def test_the_generated_contract_is_current():
    stale = contract.stale()
    assert not stale, f"{[str(p) for p in stale]} stale: run `{contract.COMMAND}` and commit"


def test_a_stale_contract_fails_the_check_naming_the_command(tmp_path, monkeypatch, capsys):
    ts, md = tmp_path / "contract.ts", tmp_path / "CONTRACT.md"
    shutil.copy(contract.TS_PATH, ts)
    shutil.copy(contract.MD_PATH, md)
    monkeypatch.setattr(contract, "TS_PATH", ts)
    monkeypatch.setattr(contract, "MD_PATH", md)
    monkeypatch.setattr(contract, "ROOT", tmp_path)
    assert contract.main(["--check"]) == 0
    ts.write_text(ts.read_text().replace("layer: number;", "layer: string;"))
    assert contract.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert f"contract.ts is stale: run `{contract.COMMAND}`" in err
    assert contract.main([]) == 0 and "layer: number;" in ts.read_text()
    assert contract.main(["--check"]) == 0
    note = md.read_text()
    assert note.count(contract.MD_BEGIN) == 1 and "## Design" in note  # the note is kept


def test_every_synced_trait_is_declared_once_with_its_direction():
    names = list(state.synced_traits())
    assert len(names) == len(set(names))
    assert set(state.user_traits()) | set(state.computed_traits()) == set(names)
    assert set(state.user_traits()) == {
        "sentence", "layer", "threshold", "hide_special", "heads", "head_weights", "masked",
        "selected", "search_k",
    }  # fmt: skip
    ts = contract.render_ts()
    for name in names:
        assert f"  {name}: " in ts


class _Row(TypedDict):
    label: str
    counts: dict[str, int]
    pair: tuple[str, float]
    note: NotRequired[str | None]


@pytest.mark.parametrize(
    ("tp", "expected"),
    [
        (int, "number"),
        (list[list[tuple[str, float]]], "[string, number][][]"),
        (Literal["a", "b"], '"a" | "b"'),
        (list[int | None], "(number | null)[]"),
        (dict[str, dict[str, int]], "Record<string, Record<string, number>>"),
        (_Row, "_Row"),
    ],
)
def test_python_types_translate_to_typescript(tp, expected):
    interfaces = contract.Interfaces()
    assert interfaces.ts(tp) == expected


def test_a_typeddict_becomes_an_interface_with_optional_fields():
    interfaces = contract.Interfaces()
    interfaces.ts(_Row)
    assert interfaces.bodies["_Row"] == (
        "export interface _Row {\n  label: string;\n  counts: Record<string, number>;\n"
        "  pair: [string, number];\n  note?: string | null;\n}\n"
    )
    with pytest.raises(TypeError, match="No TypeScript spelling"):
        interfaces.ts(set[int])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"by": "embedding", "k": True}, r"args\.k must be an integer, not True"),
        ({"by": "embedding", "k": "5"}, r"args\.k must be an integer"),
        ({"by": "x", "k": 5}, r"args\.by must be 'embedding' or 'context'"),
        ({"k": 5}, "needs the field 'by'"),
        ({"by": "context", "k": 5, "heads": [1]}, "no field 'heads'"),
        ("search", "must be an object"),
    ],
)
def test_command_arguments_are_checked_against_their_declaration(value, message):
    with pytest.raises(InputError, match=message):
        check_json(value, state.SearchArgs, "args")
    check_json({"by": "context", "k": 5}, state.SearchArgs, "args")  # and a good one passes


def test_the_version_is_written_once_and_the_package_is_typed():
    import importlib.metadata
    import re

    import exbert_widget as ew

    root = contract.ROOT
    pyproject = (root / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]$', pyproject, re.M)
    assert not re.search(r"^version = ", pyproject, re.M)
    hatch_version = r'^\[tool\.hatch\.version\]\npath = "exbert_widget/__init__\.py"'
    assert re.search(hatch_version, pyproject, re.M)
    assert "version" not in (root / "js" / "package.json").read_text()
    assert (root / "exbert_widget" / "py.typed").exists()
    try:
        installed = importlib.metadata.version("exbert-widget")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("exbert-widget is not installed here (imported from the checkout)")
    assert installed == ew.__version__
