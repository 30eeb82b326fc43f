"""Notebook 05 (beyond attention weights) in real JupyterLab: the measure switch redraws what the
kernel expects, the Δ view draws lines in two colours, and a heatmap click selects a layer and
head in the kernel."""

from __future__ import annotations

import math

import numpy as np
import pytest
from playwright.sync_api import expect

from .jupyter import WIDGET, find, has

pytestmark = pytest.mark.e2e
NOTEBOOK = "05_beyond_attention.ipynb"
SENTENCE = "The girl ran to a local pub to escape the din of her city."
RESET = f"""
view.apply({{"sentence": {SENTENCE!r}, "masked": [], "selected": None, "layer": 2,
            "heads": list(range(view.num_heads)), "head_weights": None, "threshold": 0.7,
            "hide_special": True, "measure": "attention", "compare": ""}})
"""


@pytest.fixture()
def page(lab):
    page, kernel = lab
    kernel.run(RESET)
    page.mouse.move(5, 5)
    expect(find(page, "attention-lines")).to_have_attribute("data-layer", "2")
    expect(find(page, "measure-select")).to_have_value("attention")
    return page


@pytest.fixture()
def kernel(lab):
    return lab[1]


# -- the view's drawing rules, restated in Python (js/src/panels/attention/attention.ts) -------


def _f32(x: float) -> float:
    return float(np.float32(x))


def _drawn_edges(att: np.ndarray, heads, special, threshold: float) -> list[tuple[int, int, float]]:
    """combineHeads (float32 accumulation), removeHidden, thresholdEdges, as the view does them
    on the decoded float16 attention."""
    n = att.shape[-1]
    c = 1 / len(heads)
    out = np.zeros((n, n), dtype=np.float32)
    for h in heads:
        out = (out.astype(np.float64) + c * att[h].astype(np.float64)).astype(np.float32)
    visible = [not s for s in special]
    mat = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        if not visible[i]:
            continue
        total = 0.0
        for j in range(n):
            if visible[j]:
                total += float(out[i, j])
        if total <= 0:
            continue
        inv = 1 / total
        for j in range(n):
            if visible[j]:
                mat[i, j] = _f32(float(out[i, j]) * inv)
    edges = []
    for i in range(n):
        row = [(float(mat[i, j]), j) for j in range(n) if mat[i, j] > 0]
        total = sum(w for w, _ in row)  # sequential, as the view sums
        target = threshold * total * (1 - 1e-6)
        cum = 0.0
        for w, j in sorted(row, key=lambda p: (-p[0], p[1])):
            edges.append((i, j, w))
            cum += w
            if threshold < 1 and cum >= target:
                break
    return edges


def _signature(edges, salt: str) -> str:
    """edgeSignature: FNV-1a over the edges (weights quantised)."""
    h = 0x811C9DC5

    def mix(x: int) -> None:
        nonlocal h
        h ^= x & 0xFFFF
        h = (h * 0x01000193) & 0xFFFFFFFF
        h ^= (x & 0xFFFFFFFF) >> 16
        h = (h * 0x01000193) & 0xFFFFFFFF

    for ch in salt:
        mix(ord(ch))
    mix(len(edges))
    for i, j, w in edges:
        mix(i)
        mix(j)
        mix(math.floor(w * 10000 + 0.5))
    return f"{h:08x}"


def expected_signature(kernel) -> str:
    att = np.array(kernel.eval("view.attention.astype('float32').tolist()"), dtype=np.float32)
    heads, special = kernel.eval("view.heads"), kernel.eval("view.special")
    threshold, layer = kernel.eval("view.threshold"), kernel.eval("view.layer")
    return _signature(_drawn_edges(att, heads, special, threshold), f"L{layer}")


def test_measure_switch_redraws_what_the_kernel_expects(page, kernel):
    lines = find(page, "attention-lines")
    expect(lines).to_have_attribute("data-signature", expected_signature(kernel))
    before = lines.get_attribute("data-signature")
    for measure in ("norm", "rollout"):
        find(page, "measure-select").select_option(value=measure)
        kernel.wait_for("view.measure", measure)
        expect(lines).not_to_have_attribute("data-signature", before)
        expect(lines).to_have_attribute("data-signature", expected_signature(kernel))
        before = lines.get_attribute("data-signature")
    # rollout: the heads the view combines are the engine's rollout of those heads
    error = kernel.eval(
        "float(abs(view.attention[view.heads].astype('float32').mean(0)"
        " - view.analysis.rollout(view.layer, heads=view.heads)).max())"
    )
    assert error < 3e-3
    kernel.run('view.measure = "attention"')  # from Python back to the view
    expect(find(page, "measure-select")).to_have_value("attention")


def test_delta_view_draws_more_and_less_in_two_colours(page, kernel):
    find(page, "compare-select").select_option(value="unmasked")
    kernel.wait_for("view.compare", "unmasked")
    expect(find(page, "compare-note")).to_contain_text("Mask a token")
    find(page, "token-left-7").dblclick()  # mask "pub" in the attention panel
    kernel.wait_for("view.masked", [7])
    kernel.wait_for("view.compare_lines is not None and view.analysis.masked == (7,)", True)
    svg = find(page, "compare-lines")
    count = kernel.eval("len(view.compare_lines)")
    more = kernel.eval("int((view.compare_lines[:, 2] > 0).sum())")
    expect(svg).to_have_attribute("data-count", str(count))
    expect(svg).to_have_attribute("data-more-count", str(more))
    expect(svg).to_have_attribute("data-less-count", str(count - more))
    assert more > 0 and count - more > 0
    colours = page.evaluate(
        """() => ['more', 'less'].map((c) => getComputedStyle(document.querySelector(
            `[data-testid=exbert-root] path.exbert-${c}`)).stroke)"""
    )
    assert colours[0] != colours[1] and all(colours), colours
    expect(find(page, "compare-legend")).to_be_visible()
    find(page, "compare-token-left-7").hover()  # the masked token's predictions, both sides
    tip = find(page, "compare-tooltip")
    expect(tip).to_be_visible()
    first = kernel.eval("view.compare_top_k[7][0][0]")
    expect(tip).to_contain_text(first)
    expect(tip).to_contain_text("pt")


def test_delta_panel_and_head_report_scroll_inside_a_narrow_view(page, kernel):
    """In a narrow window the Δ drawing (a fixed-size SVG) and the head report's grid scroll in
    their own boxes instead of running past the view's right edge."""
    kernel.run('view.apply({"compare": "unmasked", "masked": [7]})')
    svg = find(page, "compare-lines")
    expect(svg).to_have_attribute("data-count", str(kernel.eval("len(view.compare_lines)")))
    page.set_viewport_size({"width": 600, "height": 1000})
    try:
        page.wait_for_function(
            f"() => document.querySelector('{WIDGET}').getBoundingClientRect().width < 480"
        )
        root = page.locator(WIDGET).first
        assert root.evaluate("e => e.scrollWidth - e.clientWidth") <= 1
        for part in ("compare-panel", "head-report"):  # the report: the notebook made it
            assert find(page, part).evaluate("e => e.scrollWidth > e.clientWidth"), part
    finally:
        page.set_viewport_size({"width": 1400, "height": 1000})


def test_heatmap_click_selects_layer_and_head(page, kernel):
    find(page, "head-report-button").click()
    report = find(page, "head-report")
    expect(report).to_be_visible(timeout=120_000)
    find(page, "report-relation").select_option(value="nsubj")
    best = kernel.eval(
        'view.head_report().query(\'relation == "nsubj" and direction == "dependent→head"\')'
        ".sort_values('accuracy', ascending=False).iloc[0][['layer', 'head']].astype(int).tolist()"
    )
    find(page, "report-direction").select_option(value="dependent→head")
    cell = find(page, f"report-cell-{best[0]}-{best[1]}")
    accuracy = kernel.eval(
        f'float(view.head_report().query(\'relation == "nsubj" and direction == '
        f"\"dependent→head\" and layer == {best[0]} and head == {best[1]}')['accuracy'].iloc[0])"
    )
    assert float(cell.get_attribute("data-value")) == pytest.approx(accuracy, abs=1e-4)
    cell.click()
    kernel.wait_for("view.layer", best[0])
    kernel.wait_for("view.heads", [best[1]])
    expect(find(page, "attention-lines")).to_have_attribute("data-layer", str(best[0]))
    expect(cell).to_have_class(has("selected"))
