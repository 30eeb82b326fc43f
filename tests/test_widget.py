"""ExBertView's traits, refusals and binary transport, in the kernel."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import torch
import traitlets
from ipywidgets.widgets.widget import _remove_buffers

import exbert_widget as ew
from exbert_widget.widget.arrays import array_from_json, array_to_json
from exbert_widget.widget.state import DEFAULT_SENTENCE
from tests import tiny_models

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "01_quickstart.ipynb"


@pytest.fixture()
def view(minilm) -> ew.ExBertView:
    return ew.ExBertView(minilm)


def _count_forward(lm, monkeypatch) -> list[int]:
    """Counts full forward passes: each runs the input embeddings once (recomputing one layer's
    attention on demand does not)."""
    calls: list[int] = []
    embeddings = lm.model.get_input_embeddings()
    original = embeddings.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(embeddings, "forward", counting)
    return calls


def test_initial_state_matches_the_analysis(view, minilm):
    a = minilm.analyze(view.sentence)
    assert view.tokens == a.tokens and view.special == a.special
    assert (view.num_layers, view.num_heads, view.kind) == (6, 12, "bidirectional")
    assert view.heads == list(range(12)) and view.hide_special and view.threshold == 0.7
    np.testing.assert_allclose(view.attention, a.attentions[0], atol=1e-3)
    assert view.attention.dtype == np.float16
    assert view.has_lm_head is False and all(row == [] for row in view.top_k)


def test_layer_change_reslices_without_a_forward_pass(view, minilm, monkeypatch):
    calls = _count_forward(minilm, monkeypatch)
    view.layer = 4
    view.heads = [1, 3]
    view.threshold = 0.5
    view.hide_special = False
    view.head_weights = [1.0] + [0.0] * 11
    assert calls == []
    np.testing.assert_allclose(view.attention, view.analysis.attentions[4], atol=1e-3)


def test_sentence_and_mask_changes_run_exactly_one_forward_pass(view, minilm, monkeypatch):
    calls = _count_forward(minilm, monkeypatch)
    view.masked = [2]
    assert len(calls) == 1 and view.tokens[2] == "[MASK]"
    view.selected = 3
    view.sentence = "A cat sat on the mat."
    assert len(calls) == 2
    assert view.masked == [] and view.selected is None
    assert view.tokens == minilm.analyze("A cat sat on the mat.").tokens


CAT = "A cat sat on the mat."


@pytest.mark.parametrize("sentence_first", [True, False])
def test_constructor_traits_all_take_effect_with_a_sentence(minilm, monkeypatch, sentence_first):
    calls = _count_forward(minilm, monkeypatch)
    others = {"masked": [3], "selected": 4, "layer": 2, "heads": [1, 5], "threshold": 0.5}
    traits = {"sentence": CAT, **others} if sentence_first else {**others, "sentence": CAT}
    view = ew.ExBertView(minilm, **traits)
    assert len(calls) == 1  # one forward pass, with the mask already in
    assert view.sentence == CAT and view.masked == [3] and view.selected == 4
    assert (view.layer, view.heads, view.threshold) == (2, [1, 5], 0.5)
    assert view.tokens[3] == "[MASK]" and view.analysis.masked == (3,)
    np.testing.assert_allclose(view.attention, view.analysis.attentions[2], atol=1e-3)


@pytest.mark.parametrize(
    ("traits", "message"),
    [
        ({"selected": 500}, r"selected token 500 is out of range: tokens are 0\.\.\d+"),
        ({"sentence": CAT, "selected": 9}, r"tokens are 0\.\.8"),
        ({"sentence": CAT, "masked": [40]}, "out of range"),
        ({"layer": 6}, "layers 0..5"),
    ],
    ids=["selected-no-sentence", "selected", "masked", "layer"],
)
def test_constructor_refuses_out_of_range_traits(minilm, traits, message):
    with pytest.raises(traitlets.TraitError, match=message):
        ew.ExBertView(minilm, **traits)


def test_refusals_name_the_model_by_its_short_label(view, minilm):
    label = view.model_name
    assert label != minilm.name and minilm.name.endswith(label)  # a local path, shortened
    for trait, value in (("layer", 9), ("heads", [40])):
        with pytest.raises(traitlets.TraitError) as info:
            setattr(view, trait, value)
        assert label in str(info.value) and minilm.name not in str(info.value)


@pytest.mark.parametrize(
    ("trait", "value", "message"),
    [
        ("layer", 6, "layers 0..5"),
        ("layer", -1, "layers 0..5"),
        ("heads", [0, 12], "heads 0..11"),
        ("masked", [99], "out of range"),
        ("masked", [0], "special"),
        ("selected", 500, "out of range"),
        ("threshold", 0.0, "threshold"),
        ("head_weights", [1.0, 2.0], "one per head"),
        ("sentence", "   ", "empty"),
    ],
)
def test_out_of_range_values_are_refused_and_state_kept(view, trait, value, message):
    before = getattr(view, trait)
    tokens = list(view.tokens)
    with pytest.raises(traitlets.TraitError, match=message):
        setattr(view, trait, value)
    assert getattr(view, trait) == before
    assert view.tokens == tokens


def test_refusal_from_the_browser_keeps_state_and_reports(view):
    view.layer = 2
    view.set_state({"layer": 9})
    assert view.layer == 2
    assert "layers 0..5" in view.error
    view.set_state({"layer": 3})
    assert view.layer == 3 and view.error == ""


def test_autoregressive_view_refuses_masks(tiny_dirs):
    view = ew.ExBertView(tiny_dirs["gpt2"], sentence="Once upon a time")
    assert view.kind == "autoregressive" and view.special[0]
    with pytest.raises(traitlets.TraitError, match="autoregressive"):
        view.masked = [1]
    # top-k is the next-token prediction from the LM head
    assert all(len(row) == 5 for row in view.top_k)


def test_model_may_be_a_path_or_objects(tiny_dirs):
    assert ew.ExBertView(tiny_dirs["roberta"]).num_layers == 2
    model, tok = tiny_models.build("distilbert")
    assert ew.ExBertView((model, tok)).kind == "bidirectional"
    with pytest.raises(TypeError, match="load_model"):
        ew.ExBertView(42)
    with pytest.raises(TypeError, match="no trait"):
        ew.ExBertView(tiny_dirs["bert"], colour="red")


@pytest.mark.parametrize("corpus", [42, b"/tmp", ["a", "b"]])
def test_a_corpus_that_is_no_directory_or_corpus_is_refused_clearly(tiny_dirs, corpus):
    with pytest.raises(ew.CorpusError, match="corpus must be None, a corpus directory"):
        ew.ExBertView(tiny_dirs["bert"], corpus=corpus)


def test_arrays_travel_as_bytes_never_json_lists(view):
    state = view.get_state()
    wire = state["attention"]
    assert wire["dtype"] == "float16" and wire["shape"] == [12, len(view.tokens), len(view.tokens)]
    stripped, _paths, buffers = _remove_buffers(state)
    assert buffers and sum(b.nbytes for b in buffers) >= 12 * len(view.tokens) ** 2 * 2
    data = {k: v for k, v in stripped.items() if k not in ("_esm", "_css")}
    assert len(json.dumps(data)) < 20_000  # everything else is small plain JSON
    back = array_from_json({**wire, "view": bytes(wire["view"])})
    np.testing.assert_array_equal(back, view.attention)


def test_serializer_round_trips_every_wire_dtype():
    rng = np.random.default_rng(0)
    for dtype in ("float16", "float32", "uint8", "int32"):
        arr = (rng.random((3, 4, 5)) * 100).astype(dtype)
        wire = array_to_json(arr)
        assert isinstance(wire["view"], memoryview)
        np.testing.assert_array_equal(array_from_json(wire), arr)
    assert array_to_json(None) is None
    with pytest.raises(TypeError, match="carry"):
        array_to_json(np.zeros(3, dtype=np.float64))


def test_html_in_a_sentence_stays_text(view):
    view.sentence = "Look: <img src=x onerror=alert(1)> here"
    assert any("<" in tok or "img" in tok for tok in view.tokens)
    assert view.analysis.text == "Look: <img src=x onerror=alert(1)> here"


def test_truncation_is_reported(tiny_dirs):
    view = ew.ExBertView(tiny_dirs["bert"])
    with pytest.warns(UserWarning):
        view.sentence = " ".join(["harbour"] * 300)
    assert view.truncated and len(view.tokens) == 128


def test_search_without_corpus_or_selection_is_refused(view):
    with pytest.raises(ew.InputError, match="no corpus"):
        view.search()


@pytest.fixture(scope="module")
def demo_lm() -> ew.LanguageModel:
    return ew.load_model("demo")


def test_quickstart_masks_a_word_and_shows_the_demo_heads_predictions(demo_lm, monkeypatch):
    """The notebook masks "city" on the demo model; its table is the view's current analysis."""
    monkeypatch.setattr(ew, "load_model", lambda *_args, **_kw: demo_lm)  # the module's copy
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    namespace: dict = {}
    for cell in cells:
        if cell["cell_type"] == "code":
            exec("".join(cell["source"]), namespace)
    view, a = namespace["view"], namespace["a"]
    assert view.masked == [7] and a is view.analysis and a.tokens[7] == "[MASK]"
    assert demo_lm.analyze(view.sentence).tokens[7] == "city"
    assert view.top_k[7][0][0] == "city" and view.top_k[7][0][1] > 0.3  # what the text says
    assert view.model_description  # and the view says it is a demo head


def test_the_demo_model_is_labelled_as_a_demo_head(demo_lm, minilm):
    from exbert_widget.models.demo import DEMO_LABEL, demo_description, head_info

    view = ew.ExBertView(demo_lm)
    assert view.model_name == DEMO_LABEL and "demo" in view.model_name
    assert view.model_description == demo_description()
    top5 = float(head_info()["held_out_top5"])  # what the head file says it measured
    assert "demo masked-LM head" in view.model_description
    assert f"top-5 {top5:.0%}" in view.model_description
    assert ew.ExBertView(minilm).model_description == ""


# -- generation (issue 9) -------------------------------------------------------------------------

PROMPT = "The keeper of the lighthouse"


def _greedy(directory: str, prompt_ids: list[int], n: int) -> list[int]:
    """transformers' own greedy generation on the same ids."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
            pad_token_id=model.config.eos_token_id,
        )  # fmt: skip
    return out[0, len(prompt_ids) :].tolist()


def test_generate_appends_the_greedy_continuation_and_marks_it(tiny_dirs):
    from transformers import AutoTokenizer

    view = ew.ExBertView(tiny_dirs["llama"], sentence=PROMPT)
    tok = AutoTokenizer.from_pretrained(tiny_dirs["llama"])
    prompt_ids = tok(PROMPT)["input_ids"]  # the Llama tokenizer adds <s> itself
    assert view.analysis.input_ids == prompt_ids
    new_ids = _greedy(tiny_dirs["llama"], prompt_ids, 6)
    added = view.generate(6)
    assert view.sentence == tok.decode(prompt_ids + new_ids, skip_special_tokens=True)
    assert view.sentence == PROMPT + added and added
    written = [i for i, new in zip(view.analysis.input_ids, view.generated, strict=True) if new]
    assert written == [i for i in new_ids if i != tok.eos_token_id]  # re-tokenised alike here
    assert not any(view.generated[: len(prompt_ids)])
    n = len(view.tokens)  # the new tokens' attention is there like any other's
    assert view.attention.shape == (view.num_heads, n, n)
    np.testing.assert_allclose(view.attention.astype(np.float32).sum(-1), 1.0, atol=1e-2)
    first = sum(view.generated)
    longer = view.sentence
    view.generate(3)  # the marks accumulate
    assert view.sentence.startswith(longer) and sum(view.generated) > first
    assert view.generated[: len(written) + len(prompt_ids)] == [False] * len(prompt_ids) + [
        True
    ] * len(written)
    view.sentence = "Another prompt"  # a sentence of the user's own: no marks
    assert not any(view.generated)


def test_generate_that_only_begins_a_character_says_so_and_keeps_the_state(tiny_dirs):
    """One new token that is the first byte of "€": the continuation's text is empty (the
    character is cut), so the view says to ask for more tokens instead of doing nothing."""
    view = ew.ExBertView(tiny_dirs["llama"], sentence=PROMPT)  # a byte-level BPE
    tok, model = view.lm.tokenizer, view.lm.model
    first_byte = tok.convert_tokens_to_ids("â")  # "€" is E2 82 AC; E2 is "â" in GPT-2's bytes
    assert tok.decode([first_byte]) == "\ufffd"
    saved = model.generation_config.suppress_tokens
    model.generation_config.suppress_tokens = [
        i for i in range(model.config.vocab_size) if i != first_byte
    ]
    try:
        assert view.lm.greedy_continuation(PROMPT, 1).new_ids == [first_byte]
        with pytest.raises(ew.InputError, match=r"next 1 token\(s\) only begin a character"):
            view.generate(1)
        assert view.sentence == PROMPT and not any(view.generated)
        model.generation_config.suppress_tokens = [
            i for i in range(model.config.vocab_size) if i != tok.eos_token_id
        ]
        assert view.generate(1) == ""  # stopping at once on the end token is no error
    finally:
        model.generation_config.suppress_tokens = saved


def test_generate_is_refused_for_masked_lms_and_keeps_the_state(view, monkeypatch):
    before = (view.sentence, list(view.tokens), view.attention)
    with pytest.raises(ew.InputError, match="masked"):
        view.generate()
    reply = command(view, monkeypatch, "generate", {"max_new_tokens": 5})
    assert not reply["ok"] and reply["error"]["type"] == "InputError"
    assert "only decoders" not in reply["error"]["message"]  # the engine's own words
    assert "masked" in reply["error"]["message"]
    assert (view.sentence, view.tokens) == before[:2] and view.attention is before[2]
    assert not any(view.generated)


def test_generate_command_replies_and_refusals_keep_the_state(tiny_dirs, monkeypatch):
    view = ew.ExBertView(tiny_dirs["llama"], sentence=PROMPT)
    reply = command(view, monkeypatch, "generate", {"max_new_tokens": 4})
    assert reply["ok"] and reply["result"]["sentence"] == view.sentence != PROMPT
    assert reply["result"]["generated"] == sum(view.generated) > 0
    state = (view.sentence, list(view.generated))
    for args, message in (
        ({"max_new_tokens": 0}, "at least 1"),
        ({"max_new_tokens": 500}, "limit of 128 tokens"),
        ({"max_new_tokens": "5"}, "must be an integer"),
    ):
        reply = command(view, monkeypatch, "generate", args)
        assert not reply["ok"] and message in reply["error"]["message"]
        assert (view.sentence, list(view.generated)) == state


# -- the contract's bad input (issue 10): each found by a probe of the first view -----------------


def _replies(view, monkeypatch) -> list[dict]:
    sent: list[dict] = []
    monkeypatch.setattr(view, "send", lambda content, buffers=None: sent.append(content))
    return sent


def _resent(view, monkeypatch) -> list[list[str]]:
    """The trait names the kernel sends back to the view (to undo a refused edit there)."""
    calls: list[list[str]] = []
    original = view.send_state

    def recording(key=None):
        calls.append(sorted([key] if isinstance(key, str) else key or []))
        return original(key)

    monkeypatch.setattr(view, "send_state", recording)
    return calls


def command(view, monkeypatch, name, args, request_id="r1") -> dict:
    sent = _replies(view, monkeypatch)
    view._on_message(
        view, {"kind": "exbert-command", "id": request_id, "name": name, "args": args}, []
    )
    replies = [m for m in sent if m["kind"] != "exbert-working"]  # heartbeats of a slow one
    assert len(replies) == 1 and replies[0]["kind"] == "exbert-reply"
    assert replies[0]["id"] == request_id
    return replies[0]


def test_reapplying_the_kernels_values_clears_a_refusal_and_changes_nothing(
    view, minilm, monkeypatch
):
    """The view's Apply of an unchanged box (the good value a refusal put back) sends no state;
    its ``reapply`` command takes the browser-update path, so the refusal goes."""
    view.set_state({"sentence": "   "})
    assert "empty" in view.error and view.sentence == DEFAULT_SENTENCE
    forward = _count_forward(minilm, monkeypatch)
    before = (list(view.tokens), view.attention.copy())
    reply = command(view, monkeypatch, "reapply", {"names": ["sentence", "heads"]})
    assert reply["ok"] and reply["result"] == {"error": ""} and view.error == ""
    assert view.sentence == DEFAULT_SENTENCE and view.tokens == before[0] and forward == []
    np.testing.assert_array_equal(view.attention, before[1])
    reply = command(view, monkeypatch, "reapply", {"names": ["tokens"]}, request_id="r2")
    assert not reply["ok"] and reply["error"]["type"] == "InputError"
    assert "not a trait the view sets" in reply["error"]["message"]


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"layer": "3"}, "expected an int"),
        ({"layer": True}, "not a bool"),
        ({"selected": True}, "not a bool"),
        ({"layer": 2.5}, "expected an int"),
        ({"heads": [[1]]}, "expected an int"),
        ({"heads": [1, True]}, "not a bool"),
        ({"head_weights": [1.0, 2.0]}, "one per head"),
        ({"threshold": "high"}, "a number"),
        ({"hide_special": 1}, "boolean"),
        ({"masked": [1, 99]}, "out of range"),
        ({"search_k": 10**7}, "between 1 and 1000"),
        ({"colour": "red"}, "no trait 'colour'"),
    ],
)
def test_browser_edits_of_the_wrong_type_or_shape_are_refused_and_shown(
    view, monkeypatch, update, message
):
    before = {k: v for k, v in view.get_state().items() if k != "error"}
    resent = _resent(view, monkeypatch)
    view.set_state({"layer": 1, **update} if "layer" not in update else update)
    assert message in view.error
    after = {k: v for k, v in view.get_state().items() if k != "error"}
    assert after == before  # all or nothing: layer 1 came with it and was undone too
    assert resent and set(resent[-1]) <= set(view.keys) and resent[-1]


@pytest.mark.parametrize(
    "trait", ["tokens", "special", "num_layers", "attention", "top_k", "has_corpus", "error"]
)
def test_computed_traits_are_read_only_from_the_browser(view, monkeypatch, trait):
    resent = _resent(view, monkeypatch)
    view.set_state({trait: ["x"]})
    assert f"{trait!r} is computed by the kernel" in view.error
    assert view.tokens == view.analysis.tokens and view.num_layers == 6
    assert resent[-1] == [trait]
    with pytest.raises(traitlets.TraitError, match="read-only"):
        setattr(view, trait, ["x"])


def test_a_bool_is_not_an_index(view):
    view.layer = 2
    for trait in ("layer", "selected"):
        with pytest.raises(ew.StateError, match="not a bool"):
            setattr(view, trait, True)
    assert view.layer == 2 and view.selected is None
    assert view.attention.shape == (12, len(view.tokens), len(view.tokens))  # one layer, not six


def test_refusals_are_exbert_errors_and_trait_errors(view):
    with pytest.raises(ew.ExbertError) as info:
        view.layer = 40
    assert isinstance(info.value, ew.InputError) and isinstance(info.value, traitlets.TraitError)


LONE = "\ud800 lone"


def test_a_lone_surrogate_is_an_input_error_and_the_state_stays_consistent(view, minilm):
    with pytest.raises(ew.InputError, match="not valid Unicode"):
        view.sentence = LONE
    with pytest.raises(ew.InputError, match="not valid Unicode"):
        view.apply({"sentence": LONE, "masked": []})
    assert view.sentence == view.analysis.text == DEFAULT
    view.set_state({"sentence": LONE})  # from the browser: refused, shown, nothing changes
    assert "not valid Unicode" in view.error and view.sentence == view.analysis.text == DEFAULT
    view.set_state({"sentence": CAT})  # and later updates still work
    assert (
        view.error == "" and view.analysis.text == CAT and view.tokens == minilm.analyze(CAT).tokens
    )


DEFAULT = "The girl ran to a local pub to escape the din of her city."


def test_sentence_and_mask_in_one_update_are_applied_together(view, minilm, monkeypatch):
    calls = _count_forward(minilm, monkeypatch)
    view.set_state({"sentence": CAT, "masked": [2]})
    assert view.error == "" and len(calls) == 1
    assert view.sentence == CAT and view.masked == [2] and view.analysis.masked == (2,)
    expected = minilm.analyze(CAT, [2])
    assert view.tokens == expected.tokens and view.tokens[2] == "[MASK]"
    np.testing.assert_allclose(view.attention, expected.attentions[0], atol=1e-3)
    # The mask is checked against the new sentence, not the old one: 11 fits the default
    # sentence's 16 tokens but not CAT's 9, so the update is refused whole.
    view.set_state({"sentence": DEFAULT, "masked": []})
    view.set_state({"sentence": CAT, "masked": [11]})
    assert "out of range" in view.error
    assert view.sentence == view.analysis.text == DEFAULT and view.masked == []


def test_a_sentence_alone_clears_mask_and_selection_but_keeps_what_comes_with_it(view):
    view.apply({"masked": [3], "selected": 2})
    view.set_state({"sentence": CAT})
    assert (view.masked, view.selected) == ([], None)
    view.set_state({"sentence": DEFAULT, "selected": 4, "masked": [5]})
    assert (view.masked, view.selected, view.analysis.masked) == ([5], 4, (5,))


def test_concurrent_updates_are_serialised(view):
    import threading

    sentences = [f"{name} walked to the river at dawn." for name in ("Anna", "Bob", "Cleo", "Dan")]
    for trial in range(12):
        barrier = threading.Barrier(3)
        updates = [{"sentence": sentences[trial % 4]}, {"masked": [2]}, {"layer": trial % 6}]

        def send(update, barrier=barrier):
            barrier.wait()
            view.set_state(update)

        threads = [threading.Thread(target=send, args=(u,)) for u in updates]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        a = view.analysis
        assert view.error == ""
        assert view.sentence == a.text == sentences[trial % 4], trial
        assert tuple(view.masked) == a.masked and view.masked in ([], [2]), trial
        assert view.tokens == a.tokens and view.layer == trial % 6
        np.testing.assert_array_equal(view.attention, a.attentions[view.layer].astype(np.float16))


def test_unknown_commands_and_malformed_messages_get_error_replies(view, monkeypatch):
    reply = command(view, monkeypatch, "explode", {})
    assert reply["ok"] is False and reply["error"]["type"] == "InputError"
    assert "Unknown command 'explode'" in reply["error"]["message"]
    assert all(name in reply["error"]["message"] for name in ("load_hit", "search"))
    sent = _replies(view, monkeypatch)
    view._on_message(view, {"type": "search", "by": "embedding"}, [])  # the first draft's shape
    assert sent == []  # not a command: logged, not answered (there is no id to answer)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"by": "embedding", "k": 10**7}, "between 1 and 1000"),
        ({"by": "embedding", "k": 0}, "between 1 and 1000"),
        ({"by": "embedding", "k": True}, "must be an integer"),
        ({"by": "embedding", "k": 5.5}, "must be an integer"),
        ({"by": "colour", "k": 5}, "'embedding' or 'context'"),
        ({"by": "embedding"}, "needs the field 'k'"),
        ({"by": "embedding", "k": 5, "extra": 1}, "no field 'extra'"),
        ([], "must be an object"),
    ],
)
def test_search_command_arguments_are_checked(view, monkeypatch, args, message):
    reply = command(view, monkeypatch, "search", args)
    assert reply["ok"] is False and reply["error"]["type"] == "InputError"
    assert message in reply["error"]["message"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"index": "2"}, "must be an integer"),
        ({}, "needs the field 'index'"),
        ({"index": None}, "must be an integer"),
        ({"index": 0}, "No search yet"),
    ],
)
def test_load_hit_command_arguments_are_checked(view, monkeypatch, args, message):
    reply = command(view, monkeypatch, "load_hit", args)
    assert reply["ok"] is False and reply["error"]["type"] == "InputError"
    assert message in reply["error"]["message"]


def test_a_browser_update_that_fails_while_computing_is_undone(view, monkeypatch):
    """The browser sends a new sentence; the model then fails (e.g. out of memory): the view
    shows the error and keeps its last good state, mask included, instead of a sentence no
    analysis matches. The next good update clears the error."""
    view.apply({"sentence": "The cat sat on the mat.", "masked": [2]})
    view.layer = 1
    before = {name: getattr(view, name) for name in ("sentence", "masked", "layer", "tokens")}
    analysis = view.analysis

    def failing(*_args, **_kwargs):
        raise RuntimeError("CPU out of memory (simulated)")

    monkeypatch.setattr(view.lm, "analyze", failing)
    view.set_state({"sentence": "A dog ran in the park.", "layer": 3})
    assert view.error == "RuntimeError: CPU out of memory (simulated)"
    assert {name: getattr(view, name) for name in before} == before
    assert view.analysis is analysis
    monkeypatch.undo()
    view.set_state({"sentence": "A dog ran in the park."})
    assert view.error == "" and view.analysis.text == "A dog ran in the park."
    assert view.tokens == view.lm.analyze("A dog ran in the park.").tokens
