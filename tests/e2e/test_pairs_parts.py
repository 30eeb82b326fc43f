"""Sentence pairs and encoder–decoder parts in real JupyterLab: the pair filter (the canvas draws
the kernel's filtered lines) and the part selector (cross attention: target tokens on the left,
source tokens on the right)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from . import pairs_parts_notebook
from .jupyter import WIDGET, has, open_and_run

NOTEBOOK = pairs_parts_notebook.NAME
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lab(lab_server, new_page):
    """Both views of the notebook, run in one JupyterLab page: (page, kernel client)."""
    pairs_parts_notebook.write(lab_server.root)
    page = new_page()
    kernel = open_and_run(page, lab_server, NOTEBOOK)
    expect(page.locator(WIDGET)).to_have_count(3)
    yield page, kernel
    kernel.close()


def widget(page, index: int):
    return page.locator(WIDGET).nth(index)


def find(root, name: str):
    return root.locator(f"[data-testid='{name}']").first


def column(root, side: str) -> list[str]:
    return root.locator(f".exbert-tokens-{side} .exbert-token").all_inner_texts()


def drawn_count(kernel, view: str) -> str:
    return str(kernel.eval(f"len({view}.drawn_lines())"))


def test_the_pair_filter_draws_the_kernels_filtered_lines(lab):
    page, kernel = lab
    kernel.run('pair.pair_filter = "all"\npair.layer = 2')
    root = widget(page, 0)
    lines = find(root, "attention-lines")
    expect(lines).to_have_attribute("data-layer", "2")
    expect(lines).to_have_attribute("data-edge-count", drawn_count(kernel, "pair"))
    total = int(lines.get_attribute("data-edge-count"))
    # the two sentences are drawn apart: B's first token starts a new block in both columns
    b_first = kernel.eval(
        "next(i for i, (g, s) in enumerate(zip(pair.segments, pair.special)) if g and not s)"
    )
    for side in ("left", "right"):
        token = find(root, f"token-{side}-{b_first}")
        expect(token).to_have_class(has("segment-start"))
        expect(token).to_have_class(has("segment-b"))
        expect(find(root, f"token-{side}-{b_first + 1}")).not_to_have_class(has("segment-start"))
    select = find(root, "pair-filter")
    expect(select).to_be_visible()
    counts = {}
    for name in ("A->B", "B->A", "B->B", "A->A"):
        select.select_option(name)
        kernel.wait_for("pair.pair_filter", name)
        expected = drawn_count(kernel, "pair")
        expect(lines).to_have_attribute("data-edge-count", expected)
        counts[name] = int(expected)
    assert sum(counts.values()) == total and all(counts.values())
    # hovering a B token under A->B: only its incoming lines from A
    select.select_option("A->B")
    kernel.wait_for("pair.pair_filter", "A->B")
    find(root, f"token-right-{b_first}").hover()
    expect(lines).to_have_attribute("data-mode", f"token-right-{b_first}")
    frame = kernel.eval(f"pair.drawn_lines().query('to == {b_first}').shape[0]")
    expect(lines).to_have_attribute("data-edge-count", str(frame))
    page.mouse.move(5, 5)


def test_a_pair_typed_in_the_view_reaches_the_kernel(lab):
    page, kernel = lab
    root = widget(page, 0)
    before = kernel.eval("pair.sentence_b")
    box = find(root, "sentence-b-input")
    box.fill("The sea was calm.")
    box.press("Enter")
    kernel.wait_for("pair.sentence_b", "The sea was calm.")
    expect(find(root, "token-left-12")).to_have_text("calm")  # [CLS] 7 tokens [SEP] the sea was
    expect(find(root, "token-left-9")).to_have_class(has("segment-start"))
    kernel.run(f"pair.sentence_b = {before!r}")
    expect(box).to_have_value(before)


def test_a_filter_on_sentence_b_without_one_says_why_nothing_is_drawn(lab):
    """Clearing the second sentence under "B->A" leaves no line to draw: the view says why (the
    filter stays, as in Python) instead of showing an empty middle."""
    page, kernel = lab
    root = widget(page, 0)
    before = kernel.eval("pair.sentence_b")
    note, lines = find(root, "pair-filter-note"), find(root, "attention-lines")
    kernel.run('pair.pair_filter = "B->A"')
    expect(lines).not_to_have_attribute("data-edge-count", "0")
    expect(note).to_be_hidden()
    box = find(root, "sentence-b-input")
    box.fill("")
    box.press("Enter")
    kernel.wait_for("pair.sentence_b", "")
    assert kernel.eval("len(pair.drawn_lines())") == 0
    expect(lines).to_have_attribute("data-edge-count", "0")
    expect(note).to_be_visible()
    expect(note).to_contain_text("B → A")
    expect(find(root, "pair-filter")).to_be_visible()  # where it is changed back
    find(root, "pair-filter").select_option("A->A")  # every token is in A: every line
    kernel.wait_for("pair.pair_filter", "A->A")
    expect(note).to_be_hidden()
    expect(lines).to_have_attribute("data-edge-count", drawn_count(kernel, "pair"))
    assert kernel.eval("len(pair.drawn_lines())") > 0
    kernel.run(f"pair.apply({{'sentence_b': {before!r}, 'pair_filter': 'all'}})")
    expect(box).to_have_value(before)


def test_a_decoder_without_a_pair_convention_offers_no_pair_and_keeps_its_state(lab):
    """GPT-2's tokenizer has no pair convention: the view shows no second-sentence row (the BERT
    view beside it does), and a pair sent anyway is refused with the reason, the state kept."""
    page, kernel = lab
    root = widget(page, 2)
    assert kernel.eval("decoder.takes_pair") is False and kernel.eval("pair.takes_pair") is True
    expect(find(widget(page, 0), "pair-controls")).to_be_visible()
    expect(find(root, "pair-controls")).to_be_hidden()
    expect(find(root, "sentence-b-input")).to_be_hidden()
    before = kernel.eval("list(decoder.tokens)")
    lines = find(root, "attention-lines")
    expect(lines).to_have_attribute("data-edge-count", drawn_count(kernel, "decoder"))
    kernel.run("decoder.set_state({'sentence_b': 'Mrs. Okafor kept the lamp burning.'})")
    expect(find(root, "error")).to_contain_text("no convention for a pair")
    assert kernel.eval("decoder.sentence_b") == "" and kernel.eval("list(decoder.tokens)") == before
    expect(find(root, "pair-controls")).to_be_hidden()
    expect(lines).to_have_attribute("data-edge-count", drawn_count(kernel, "decoder"))


def test_a_refused_pair_is_shown_and_the_last_good_state_kept(lab):
    page, kernel = lab
    root = widget(page, 1)  # the encoder–decoder view takes no sentence_b
    kernel.run('s2s.part = "encoder"')
    expect(find(root, "pair-controls")).to_be_hidden()
    expect(find(root, "search-unavailable")).to_be_visible()
    before = kernel.eval("list(s2s.tokens)")
    kernel.run("s2s.set_state({'sentence_b': 'A second sentence.'})")  # as the browser would
    expect(find(root, "error")).to_contain_text("encoder–decoder")
    assert kernel.eval("list(s2s.tokens)") == before and kernel.eval("s2s.sentence_b") == ""


def test_the_part_selector_shows_cross_attention_from_target_to_source(lab):
    page, kernel = lab
    root = widget(page, 1)
    kernel.run('s2s.part = "encoder"\ns2s.layer = 0')
    select = find(root, "part-select")
    expect(select).to_be_visible()
    source = kernel.eval("[t for t, s in zip(s2s.analysis.tokens, s2s.analysis.special) if not s]")
    target = kernel.eval(
        "[t for t, s in zip(s2s.analysis.target_tokens, s2s.analysis.target.special) if not s]"
    )
    assert column(root, "left") == source and column(root, "right") == source
    select.select_option("cross")
    kernel.wait_for("s2s.part", "cross")
    lines = find(root, "attention-lines")
    expect(root.locator(".exbert-tokens-left .exbert-token")).to_have_count(len(target))
    assert column(root, "left") == target and column(root, "right") == source
    expect(lines).to_have_attribute("data-edge-count", drawn_count(kernel, "s2s"))
    layers = kernel.eval("s2s.analysis.layer_count('cross')")
    expect(find(root, "layer-select").locator("option")).to_have_count(layers)
    # a target token's tooltip: the decoder's next-token predictions
    first = kernel.eval("s2s.row_span[0] + 1")
    find(root, f"token-left-{first}").hover()
    expect(find(root, "tooltip")).to_contain_text("the decoder would predict next")
    page.mouse.move(5, 5)
    select.select_option("decoder")
    kernel.wait_for("s2s.part", "decoder")
    expect(root.locator(".exbert-tokens-right .exbert-token")).to_have_count(len(target))
    assert column(root, "left") == target and column(root, "right") == target
    expect(lines).to_have_attribute("data-edge-count", drawn_count(kernel, "s2s"))


@pytest.mark.parametrize(
    ("index", "view", "box", "trait", "refused", "reason"),
    [
        (0, "pair", "sentence-input", "sentence", "   ", "The sentence is empty"),
        (1, "s2s", "target-input", "target", "  ", "The target is blank"),
    ],
)
def test_applying_the_good_value_a_refusal_left_in_the_box_clears_the_error(
    lab, index, view, box, trait, refused, reason
):
    """A refused value puts the kernel's value back in the box with the reason; applying that
    value as it is changes no state (nothing is sent as state) and must still clear the error."""
    page, kernel = lab
    root = widget(page, index)
    good = kernel.eval(f"{view}.{trait}")
    shown = good or kernel.eval(f"{view}.target_text")  # an empty target shows the generated one
    field, error = find(root, box), find(root, "error")
    field.fill(refused)
    field.press("Enter")
    expect(error).to_contain_text(reason)
    expect(field).to_have_value(shown)
    assert kernel.eval(f"{view}.{trait}") == good
    field.press("Enter")  # the box holds the kernel's good value: apply it
    expect(error).to_be_hidden()
    kernel.wait_for(f"{view}.error", "")
    assert kernel.eval(f"{view}.{trait}") == good


def test_no_view_errors_in_the_console(lab, recorder):
    assert [e for e in recorder.errors if "exbert" in e.lower()] == []
