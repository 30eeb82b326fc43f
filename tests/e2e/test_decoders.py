"""The decoders notebook in real JupyterLab: a 1,400-token prompt, so the kernel sends only what
is drawn (the lines and the heads grids' summaries, the grids on canvases), a hovered head's
lines come by command, and Generate appends the model's continuation and marks it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .jupyter import WIDGET, find, has

NOTEBOOK = "03_decoders.ipynb"
pytestmark = pytest.mark.e2e
POSITIVE = re.compile(r"^[1-9]\d*$")


@pytest.fixture()
def page(lab):
    page, kernel = lab
    kernel.run("view.heads = list(range(view.num_heads))\nview.threshold = 0.7\nview.layer = 2")
    page.mouse.move(5, 5)
    return page


def _count_in_kernel(kernel) -> int:
    return kernel.eval("int(view.lines_rows[-1])")


def test_a_long_prompt_draws_the_kernels_lines(page, lab):
    kernel = lab[1]
    assert kernel.eval("len(view.tokens)") > 1000
    assert kernel.eval("view.attention_mode") == "combined"
    assert kernel.eval("view.attention is None")
    lines = find(page, "attention-lines")
    expect(lines).to_have_attribute("data-layer", "2")
    expect(lines).to_have_attribute("data-edge-count", str(_count_in_kernel(kernel)))
    expect(find(page, "heads-canvas-left")).to_be_visible()
    assert page.locator(f"{WIDGET} .exbert-head-cell").count() == 0  # no DOM cells
    # hover a token: all of its lines, as the kernel cut them
    i = 40
    find(page, f"token-left-{i}").hover()
    expect(lines).to_have_attribute("data-mode", f"token-left-{i}")
    expected = kernel.eval(f"int(view.lines_rows[{i + 1}] - view.lines_rows[{i}])")
    expect(lines).to_have_attribute("data-edge-count", str(expected))
    page.mouse.move(5, 5)
    # a threshold set in Python: a kernel round trip, and the view draws the new cut
    kernel.run("view.threshold = 0.3")
    kernel.wait_for("view.threshold", 0.3)
    expect(lines).to_have_attribute("data-edge-count", str(_count_in_kernel(kernel)))


def test_hovering_a_head_fetches_its_lines(page, lab):
    kernel = lab[1]
    find(page, "head-toggle-1").hover()
    lines = find(page, "attention-lines")
    expect(lines).to_have_attribute("data-mode", "head-1", timeout=60_000)
    expected = kernel.eval(
        "int(view.head_lines(1).rows[-1])"  # the same command's answer, asked from Python
    )
    expect(lines).to_have_attribute("data-edge-count", str(expected))
    page.mouse.move(5, 5)
    expect(lines).to_have_attribute("data-mode", "all")


def test_head_toggles_reach_the_kernel_and_redraw(page, lab):
    kernel = lab[1]
    heads = kernel.eval("view.num_heads")
    find(page, "head-toggle-0").click()
    page.mouse.move(5, 5)  # off the head: all lines, not head 0's
    kernel.wait_for("view.heads", list(range(1, heads)))
    lines = find(page, "attention-lines")
    expect(lines).to_have_attribute("data-mode", "all")
    expect(lines).to_have_attribute("data-edge-count", str(_count_in_kernel(kernel)))
    find(page, "heads-none").click()
    kernel.wait_for("view.heads", [])
    expect(find(page, "no-heads-note")).to_be_visible()
    expect(lines).to_have_attribute("data-edge-count", "0")


def test_generate_without_a_token_count_says_so(page, lab):
    """A count the box cannot mean (0, negative, empty, 2.5) is refused in the view with a
    reason, where the button did nothing before (or rounded 2.5 to 3); the sentence stays."""
    kernel = lab[1]
    before = kernel.eval("view.sentence")
    status, count = find(page, "generate-status"), find(page, "generate-tokens")
    for bad in ("0", "-3", "", "2.5"):
        count.fill(bad)
        find(page, "generate").click()
        expect(status).to_be_visible()
        expect(status).to_have_text(re.compile("1 or more"))
        expect(status).to_have_class(has("exbert-error"))
        expect(find(page, "generate")).to_be_enabled()
        status.evaluate("e => { e.style.display = 'none'; }")  # the next round shows it again
    assert kernel.eval("view.sentence") == before
    count.fill("20")


def test_generate_appends_and_marks_the_models_tokens(page, lab):
    kernel = lab[1]
    before = kernel.eval("len(view.sentence)")
    marked = kernel.eval("sum(view.generated)")  # the notebook generated once already
    button = find(page, "generate")
    expect(button).to_be_enabled()
    find(page, "generate-tokens").fill("6")
    button.click()
    kernel.wait_for(f"len(view.sentence) > {before}", True, timeout=120)
    kernel.wait_for(f"sum(view.generated) > {marked}", True, timeout=60)
    expect(find(page, "generate-status")).to_be_hidden(timeout=60_000)
    flags = kernel.eval("view.generated")
    last = len(flags) - 1
    assert flags[last]
    expect(find(page, f"token-left-{last}")).to_have_class(has("generated"))
    expect(find(page, f"token-right-{last}")).to_have_class(has("generated"))
    first = flags.index(True)
    expect(find(page, f"token-left-{first - 1}")).not_to_have_class(has("generated"))
    lines = find(page, "attention-lines")
    expect(lines).to_have_attribute("data-edge-count", POSITIVE)
    find(page, f"token-left-{last}").scroll_into_view_if_needed()
    find(page, f"token-left-{last}").hover()  # a generated token's attention, like any other's
    expect(lines).to_have_attribute("data-mode", f"token-left-{last}")
    expect(lines).to_have_attribute("data-drawn-count", POSITIVE)
    expect(find(page, "tooltip")).to_contain_text("written by the model")


def test_no_view_errors_in_the_console(page, recorder):
    assert [e for e in recorder.errors if "exbert" in e.lower()] == []
