"""The quickstart notebook in real JupyterLab: the view draws, and what the user does in it
reaches the kernel (and what the kernel sets reaches the view).

One JupyterLab page runs the notebook once for the whole module; each test starts from the same
kernel state, set from Python.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .jupyter import WIDGET, find, has

pytestmark = pytest.mark.e2e
SELECT_DELAY_MS = 250  # js/src/clicks.ts: a single click is sent after this (double-click time)
POSITIVE = re.compile(r"^[1-9]\d*$")
NOTEBOOK = "01_quickstart.ipynb"
SENTENCE = "The girl ran to a local pub to escape the din of her city."
RESET = f"""
view.sentence = {SENTENCE!r}
view.masked = []
view.selected = None
view.layer = 0
view.heads = list(range(view.num_heads))
view.head_weights = None
view.threshold = 0.7
view.hide_special = True
"""


@pytest.fixture()
def page(lab):
    """The notebook page, with the view back in the default state and the mouse off it."""
    page, kernel = lab
    kernel.run(RESET)
    page.mouse.move(5, 5)
    expect(find(page, "token-left-9")).to_have_text("escape")
    expect(find(page, "attention-lines")).to_have_attribute("data-layer", "0")
    expect(find(page, "attention-lines")).to_have_attribute("data-mode", "all")
    expect(page.locator(f"{WIDGET} .exbert-token.selected")).to_have_count(0)
    return page


@pytest.fixture()
def kernel(lab):
    return lab[1]


def shown_tokens(page) -> list[str]:
    return page.locator(f"{WIDGET} .exbert-tokens-left .exbert-token").all_inner_texts()


def test_widget_renders_tokens_as_text(page, kernel):
    tokens, special = kernel.eval("view.tokens"), kernel.eval("view.special")
    assert shown_tokens(page) == [t for t, s in zip(tokens, special, strict=True) if not s]
    expect(find(page, "token-left-0")).to_have_count(0)  # [CLS] hidden by default
    assert int(find(page, "attention-lines").get_attribute("data-edge-count")) > 0


def test_click_selects_token(page, kernel):
    find(page, "token-left-3").click()
    kernel.wait_for("view.selected", 3)
    expect(find(page, "token-left-3")).to_have_class(has("selected"))
    expect(find(page, "token-right-3")).to_have_class(has("selected"))
    find(page, "token-right-3").click()  # a second click on the selected token clears it
    kernel.wait_for("view.selected", None)
    expect(find(page, "token-left-3")).not_to_have_class(has("selected"))


def test_head_toggle_and_head_cell_edit_heads(page, kernel):
    all_heads = list(range(kernel.eval("view.num_heads")))
    find(page, "head-toggle-2").click()
    kernel.wait_for("view.heads", [h for h in all_heads if h != 2])
    expect(find(page, "head-toggle-2")).not_to_have_class(has("on"))
    expect(find(page, "head-cell-left-1-2")).to_have_class(has("off"))
    find(page, "head-cell-left-1-2").click()  # a cell of the grid toggles its head too
    kernel.wait_for("view.heads", all_heads)
    expect(find(page, "head-toggle-2")).to_have_class(has("on"))
    find(page, "heads-none").click()
    kernel.wait_for("view.heads", [])
    expect(find(page, "attention-lines")).to_have_attribute("data-edge-count", "0")
    find(page, "head-toggle-5").click()
    kernel.wait_for("view.heads", [5])
    expect(find(page, "attention-lines")).not_to_have_attribute("data-edge-count", "0")
    find(page, "head-cell-right-3-7").hover()  # hovering a head shows that head's lines alone
    expect(find(page, "attention-lines")).to_have_attribute("data-mode", "head-7")
    page.mouse.move(5, 5)
    find(page, "heads-all").click()
    kernel.wait_for("view.heads", all_heads)


def selection_stays(page, kernel, token: int) -> None:
    """`selected` is still ``token`` once a click would have been sent (the view holds a single
    click back for the double-click time), in the kernel and in the drawing."""
    page.wait_for_timeout(SELECT_DELAY_MS + 250)
    kernel.wait_for("view.selected", token)
    expect(page.locator(f"{WIDGET} .exbert-tokens-left .exbert-token.selected")).to_have_count(1)
    expect(find(page, f"token-left-{token}")).to_have_class(has("selected"))


def test_double_click_masks_token_and_keeps_the_selection(page, kernel):
    word = kernel.eval("view.tokens[4]")
    kernel.run("view.selected = 2")
    expect(find(page, "token-left-2")).to_have_class(has("selected"))
    # A real double-click: mousedown/up/click twice, then dblclick.
    find(page, "token-left-4").dblclick()
    kernel.wait_for("view.masked", [4])
    kernel.wait_for("view.tokens[4]", "[MASK]")
    expect(find(page, "token-left-4")).to_have_text("[MASK]")
    expect(find(page, "token-left-4")).to_have_class(has("masked"))
    selection_stays(page, kernel, 2)
    find(page, "token-right-4").dblclick()  # and back
    kernel.wait_for("view.masked", [])
    expect(find(page, "token-left-4")).to_have_text(word)
    selection_stays(page, kernel, 2)


def test_layer_set_in_python_redraws(page, kernel):
    lines = find(page, "attention-lines")
    before = lines.get_attribute("data-signature")
    kernel.run("view.layer = 3")
    expect(lines).to_have_attribute("data-layer", "3")
    expect(lines).not_to_have_attribute("data-signature", before)
    expect(find(page, "layer-select")).to_have_value("3")
    find(page, "layer-select").select_option(value="1")  # and from the view back to Python
    kernel.wait_for("view.layer", 1)
    expect(lines).to_have_attribute("data-layer", "1")


def test_hover_shows_tooltip_and_only_that_tokens_lines(page, kernel):
    lines = find(page, "attention-lines")
    total = int(lines.get_attribute("data-edge-count"))
    find(page, "token-left-2").hover()
    tooltip = find(page, "tooltip")
    expect(tooltip).to_be_visible()
    # The quickstart's demo head predicts, and says beside its predictions that it is a demo.
    top = kernel.eval("view.top_k[2][0][0]")
    expect(tooltip).to_contain_text("would predict here")
    expect(tooltip).to_contain_text(top)
    expect(tooltip).to_contain_text("demo masked-LM head")
    expect(lines).to_have_attribute("data-mode", "token-left-2")
    assert 0 < int(lines.get_attribute("data-edge-count")) < total
    page.mouse.move(5, 5)
    expect(tooltip).to_be_hidden()
    expect(lines).to_have_attribute("data-mode", "all")


def test_sentence_is_drawn_as_text_never_as_html(page, kernel, recorder):
    hostile = "Look: <img src=x onerror=alert(1)> here"
    kernel.run(f"view.sentence = {hostile!r}")
    expect(find(page, "sentence-input")).to_have_value(hostile)
    tokens = kernel.eval("view.tokens")
    i = tokens.index("<")
    # WordPiece cuts "<img" into "<", "im", "##g": each is drawn as its own text. The input box
    # takes the sentence before the new tokens arrive, so wait for the drawing to catch up.
    for j in range(i, i + 3):
        expect(find(page, f"token-left-{j}")).to_have_text(tokens[j])
    drawn = [find(page, f"token-left-{j}").inner_text() for j in range(i, i + 3)]
    assert "".join(t.removeprefix("##") for t in drawn) == "<img"
    assert page.locator(f"{WIDGET} img").count() == 0
    page.wait_for_timeout(300)  # an onerror handler would have fired by now
    assert recorder.dialogs == []


def test_threshold_slider_sets_threshold(page, kernel):
    lines = find(page, "attention-lines")
    before = int(lines.get_attribute("data-edge-count"))
    slider = find(page, "threshold-slider")
    box = slider.bounding_box()
    page.mouse.click(box["x"] + 0.3 * box["width"], box["y"] + box["height"] / 2)
    value = float(slider.input_value())
    assert 0.1 < value < 0.6
    kernel.wait_for("round(view.threshold, 2)", round(value, 2))
    page.wait_for_function(
        f'() => +document.querySelector("{WIDGET} [data-testid=attention-lines]")'
        f".getAttribute('data-edge-count') < {before}"
    )


def test_overlong_sentence_is_truncated_with_a_note(page, kernel):
    expect(find(page, "truncated-note")).to_be_hidden()
    long = " ".join(["word"] * 600) + "."
    box = find(page, "sentence-input")
    box.fill(long)
    box.press("Enter")
    kernel.wait_for("view.truncated", True, timeout=60)
    assert kernel.eval("len(view.tokens)") == 512
    expect(find(page, "truncated-note")).to_be_visible()
    expect(find(page, "token-left-510")).to_have_text("word")
    # Still usable at 512: hovering a token far down shows its lines and its tooltip.
    lines, note = find(page, "attention-lines"), find(page, "lines-capped-note")
    find(page, "token-left-510").hover()
    expect(lines).to_have_attribute("data-mode", "token-left-510")
    expect(lines).to_have_attribute("data-drawn-count", POSITIVE)
    expect(find(page, "tooltip")).to_be_visible()
    expect(find(page, "tooltip")).to_contain_text("would predict here")
    expect(note).to_be_hidden()  # one token's lines are all drawn
    page.mouse.move(5, 5)
    expect(lines).to_have_attribute("data-mode", "all")
    _bounded_and_aligned(page, 510)
    # All lines: ~13k have an end in view here; the view says it draws the strongest 6,000.
    expect(note).to_be_visible()
    expect(note).to_have_text(re.compile(r"^showing the 6,000 strongest of [\d,]{5,} lines$"))
    kernel.run(RESET)
    expect(note).to_be_hidden()
    expect(find(page, "truncated-note")).to_be_hidden()


def _centre(locator) -> tuple[float, float]:
    box = locator.bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def _bounded_and_aligned(page, last: int) -> None:
    """A long input scrolls inside a box of bounded height; rows and head columns stay aligned
    with each other and with the head numbers above them, wherever the box is scrolled."""
    scroll = find(page, "attention-scroll")
    root = page.locator(WIDGET).first.bounding_box()
    assert root is not None and root["height"] < 1000  # not 512 rows of 18 px
    sizes = scroll.evaluate("e => [e.clientHeight, e.scrollHeight]")
    assert sizes[0] < sizes[1] and sizes[0] <= 640
    scroll.evaluate("e => { e.scrollTop = e.scrollHeight; e.scrollLeft = e.scrollWidth; }")
    expect(find(page, f"token-left-{last}")).to_be_in_viewport()
    y = _centre(find(page, f"token-left-{last}"))[1]
    for other in (f"token-right-{last}", f"head-cell-left-{last}-0", f"head-cell-right-{last}-11"):
        assert abs(_centre(find(page, other))[1] - y) < 1, other
    for h in (0, 7, 11):
        x = _centre(find(page, f"head-toggle-{h}"))[0]
        assert abs(_centre(find(page, f"head-cell-left-{last}-{h}"))[0] - x) < 1, h
    lines = find(page, "attention-lines").bounding_box()
    box = scroll.bounding_box()
    assert lines is not None and box is not None
    top, bottom = box["y"] - 1, box["y"] + box["height"] + 1  # the lines stay in the box
    assert top <= lines["y"] and lines["y"] + lines["height"] <= bottom
    scroll.evaluate("e => { e.scrollTop = 0; e.scrollLeft = 0; }")


def test_no_heads_selected_says_so_in_the_view(page, kernel):
    note = find(page, "no-heads-note")
    expect(note).to_be_hidden()
    find(page, "heads-none").click()
    kernel.wait_for("view.heads", [])
    expect(note).to_be_visible()
    expect(note).to_contain_text("No heads selected")
    expect(find(page, "attention-lines")).to_have_attribute("data-edge-count", "0")
    find(page, "head-toggle-4").click()
    expect(note).to_be_hidden()
    kernel.wait_for("view.heads", [4])


WEIGHT_STYLE = """e => {
    const rgba = (c) => c.match(/[\\d.]+/g).map(Number);
    const fill = e.querySelector('.exbert-head-weight');
    const number = e.querySelector('.exbert-head-number');
    const root = e.closest('.exbert-root');
    return {
        fill: rgba(getComputedStyle(fill).backgroundColor),
        bg: rgba(getComputedStyle(root).backgroundColor),
        number: rgba(getComputedStyle(number).color),
        fillHeight: fill.getBoundingClientRect().height,
        height: e.clientHeight,  // the fill's box: above the bottom border
    };
}"""


def _luminance(rgb) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a, b) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _check_weight_fill(page, head: int, share: float) -> None:
    """Head ``head``'s toggle is filled to ``share`` of its height, the fill is seen against the
    view's background and its number is legible on it (WCAG contrast, composited colours)."""
    style = find(page, f"head-toggle-{head}").evaluate(WEIGHT_STYLE)
    assert style["fillHeight"] == pytest.approx(share * style["height"], abs=1.0)
    *rgb, alpha = style["fill"] if len(style["fill"]) == 4 else [*style["fill"], 1.0]
    shown = [alpha * c + (1 - alpha) * b for c, b in zip(rgb, style["bg"][:3], strict=True)]
    assert _contrast(shown, style["bg"]) >= 1.5, style
    assert _contrast(style["number"], shown) >= 4.5, style


def test_head_weights_set_in_python_are_shown_on_the_head_toggles(page, kernel):
    """``view.head_weights`` (any linear combination) shows on each head's toggle: filled by
    |weight| / max |weight|, the exact weight in its tooltip and data-weight, legible in the
    light and the dark theme; a click on a head goes back to the mean of ``heads``."""
    weights = [0.5, 0.0, -1.0, 2.0, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    kernel.run(f"view.head_weights = {weights!r}")
    assert kernel.eval("view.head_weights") == weights
    top = max(abs(w) for w in weights)
    for h, w in enumerate(weights):
        toggle = find(page, f"head-toggle-{h}")
        expect(toggle).to_have_attribute("data-weight", f"{w:g}")
        if w:
            expect(toggle).to_have_class(has("weighted"))
            expect(toggle).to_have_class(has("on"))
            assert f"weight {w:g}" in toggle.get_attribute("title")
        else:
            expect(toggle).not_to_have_class(has("weighted"))
            expect(toggle).not_to_have_class(has("on"))
    expect(find(page, "head-toggle-2")).to_have_class(has("negative"))
    theme = "() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: '%s'})"
    dark = "() => document.body.dataset.jpThemeLight === 'false'"
    try:
        for name in ("JupyterLab Light", "JupyterLab Dark"):
            page.evaluate(theme % name)
            page.wait_for_function(dark if "Dark" in name else f"() => !({dark})()")
            page.wait_for_timeout(300)  # the theme's variables reach the computed styles
            for h in (0, 3, 4, 11):
                _check_weight_fill(page, h, abs(weights[h]) / top)
    finally:
        page.evaluate(theme % "JupyterLab Light")
        page.wait_for_function(f"() => !({dark})()")
    find(page, "head-toggle-1").click()  # a click edits the head set: the weights go
    kernel.wait_for("view.head_weights", None)
    expect(find(page, "head-toggle-0")).not_to_have_attribute("data-weight", re.compile("."))
    expect(find(page, "head-toggle-0")).not_to_have_class(has("weighted"))


def test_head_numbers_are_legible(page):
    number = find(page, "head-toggle-11").locator(".exbert-head-number")
    style = number.evaluate(
        "e => { const s = getComputedStyle(e); return [s.fontSize, s.writingMode]; }"
    )
    assert float(style[0].removesuffix("px")) >= 10 and style[1] == "horizontal-tb"
    box = number.bounding_box()
    assert box is not None and box["width"] > box["height"]  # "11" reads left to right


def test_the_model_label_says_the_head_is_a_demo(page, kernel):
    label = find(page, "model-name")
    expect(label).to_have_text("all-MiniLM-L6-v2 + demo MLM head")
    assert label.get_attribute("title") == kernel.eval("view.model_description")
    assert "top-5" in label.get_attribute("title")
    generate = find(page, "generate")
    expect(generate).to_be_disabled()  # a masked LM: nothing to continue
    assert "Masked language models" in generate.get_attribute("title")


def test_arrow_keys_move_the_slider_not_the_notebook(page, kernel):
    cells = page.locator(".jp-Notebook .jp-Cell:visible").count()
    slider = find(page, "threshold-slider")
    slider.focus()
    for _ in range(20):
        page.keyboard.press("ArrowLeft")  # one step (0.01) each
    kernel.wait_for("round(view.threshold, 2)", 0.5)
    expect(slider).to_have_value("0.5")
    page.keyboard.press("ArrowDown")  # also a slider step, not "select the next cell"
    kernel.wait_for("round(view.threshold, 2)", 0.49)
    assert page.locator(".jp-Notebook .jp-Cell:visible").count() == cells  # nothing collapsed
    find(page, "layer-select").focus()
    page.keyboard.press("ArrowDown")
    kernel.wait_for("view.layer", 1)


def test_hide_special_and_apply_button(page, kernel):
    find(page, "hide-special").uncheck()
    kernel.wait_for("view.hide_special", False)
    expect(find(page, "token-left-0")).to_have_text("[CLS]")
    expect(find(page, "token-left-0")).to_have_class(has("special"))
    find(page, "hide-special").check()
    kernel.wait_for("view.hide_special", True)
    expect(find(page, "token-left-0")).to_have_count(0)
    find(page, "sentence-input").fill("A cat sat on the mat.")
    find(page, "sentence-apply").click()
    kernel.wait_for("view.sentence", "A cat sat on the mat.")
    expect(find(page, "token-left-2")).to_have_text("cat")


def test_no_view_errors_or_warnings_in_the_console(page, recorder):
    assert [e for e in recorder.errors if "exbert" in e.lower()] == []
    # anywidget warns about a bundle that exports `render` itself: this one exports only its
    # default object.
    assert [w for w in recorder.warnings if "anywidget" in w.lower() or "exbert" in w.lower()] == []
