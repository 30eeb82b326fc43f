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
        "sentence_b", "pair_filter", "target", "part", "measure", "compare",
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


def test_optional_command_arguments_may_be_left_out_but_not_mistyped():
    check_json({"by": "context", "k": 5}, state.SearchArgs, "args")
    check_json(
        {"by": "context", "k": 5, "skip_own_sentence": False, "max_per_sentence": None},
        state.SearchArgs,
        "args",
    )
    with pytest.raises(InputError, match=r"args\.max_per_sentence must be an integer or null"):
        check_json({"by": "context", "k": 5, "max_per_sentence": 1.5}, state.SearchArgs, "args")
    with pytest.raises(InputError, match=r"args\.skip_own_sentence must be true or false"):
        check_json({"by": "context", "k": 5, "skip_own_sentence": "yes"}, state.SearchArgs, "args")


def test_arrays_in_command_results_and_the_defaults_reach_the_view():
    interfaces = contract.Interfaces()
    interfaces.ts(state.HeadLinesResult)
    body = interfaces.bodies["HeadLinesResult"]
    assert "  lines: FloatArray;\n" in body and "  rows: FloatArray;\n" in body
    ts = contract.render_ts()
    assert 'export const DEFAULTS = {"skip_own_sentence": true, "max_per_sentence": 2' in ts
    assert state.DEFAULTS["max_new_tokens"] == state.MAX_NEW_TOKENS


def test_a_reply_carries_its_arrays_as_buffers_with_their_paths():
    import numpy as np

    from exbert_widget.widget.commands import Dispatcher
    from exbert_widget.widget.state import COMMANDS

    sent: list = []
    array = np.arange(6, dtype=np.uint16).reshape(3, 2)
    handlers = {name: (lambda _args: {"count": 1}) for name in COMMANDS}
    handlers["head_lines"] = lambda args: {"head": args["head"], "lines": array}
    dispatcher = Dispatcher(handlers, send=lambda reply, buffers: sent.append((reply, buffers)))
    request = {"kind": "exbert-command", "id": "x", "name": "head_lines", "args": {"head": 2}}
    dispatcher.handle(request)
    reply, buffers = sent[0]
    assert reply["result"] == {"head": 2, "lines": {"dtype": "uint16", "shape": [3, 2]}}
    assert reply["buffer_paths"] == [["result", "lines", "view"]]
    assert bytes(buffers[0]) == array.tobytes()
    dispatcher.handle({"kind": "exbert-command", "id": "y", "name": "search", "args": {}})
    assert "buffer_paths" not in sent[1][0] and sent[1][1] == []


def test_a_running_command_beats_until_its_reply_and_never_after(monkeypatch):
    """While a handler runs, the kernel says so every HEARTBEAT_S (the view's wait restarts on
    each); the beats stop before the reply goes out."""
    import threading

    from exbert_widget.widget import commands
    from exbert_widget.widget.state import COMMANDS

    monkeypatch.setattr(commands, "HEARTBEAT_S", 0.005)
    sent: list[dict] = []
    beaten = threading.Event()

    def beat(message: dict) -> None:
        sent.append(message)
        if len(sent) >= 3:
            beaten.set()

    def slow_search(_args):
        # Ends once three beats went out (the safety limit only stops a broken test hanging).
        assert beaten.wait(60), "no heartbeat while the command ran"
        return {"count": 7}

    handlers = {name: (lambda _args: {}) for name in COMMANDS}
    handlers["search"] = slow_search
    dispatcher = commands.Dispatcher(
        handlers, send=lambda reply, buffers: sent.append(reply), beat=beat
    )
    args = {"by": "embedding", "k": 5}
    dispatcher.handle({"kind": "exbert-command", "id": "s1", "name": "search", "args": args})
    *beats, reply = list(sent)
    assert len(beats) >= 3 and all(b == {"kind": "exbert-working", "id": "s1"} for b in beats)
    assert reply["kind"] == "exbert-reply" and reply["ok"] and reply["result"] == {"count": 7}
    threading.Event().wait(0.05)  # ten periods later, still nothing after the reply
    assert sent[-1] is reply
