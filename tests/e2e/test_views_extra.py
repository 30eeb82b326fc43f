"""The model view, the logit-lens panel and export in real JupyterLab: what the user does in them
reaches the kernel, and what the kernel computes is what the view shows.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET

import pytest
from playwright.sync_api import expect

from .jupyter import WIDGET, find

pytestmark = pytest.mark.e2e
NOTEBOOK = "01_quickstart.ipynb"
RESET = """
view.apply({"sentence": "The wizard lived in the Emerald City.", "masked": [], "selected": None})
view.layer = 0
view.heads = list(range(view.num_heads))
view.head_weights = None
view.hide_special = True
"""


@pytest.fixture()
def page(lab):
    page, kernel = lab
    kernel.run(RESET)
    page.mouse.move(5, 5)
    expect(find(page, "token-left-2")).to_have_text("wizard")
    return page


@pytest.fixture()
def kernel(lab):
    return lab[1]


def test_model_view_click_selects_layer_and_head(page, kernel):
    layers, heads = kernel.eval("view.num_layers"), kernel.eval("view.num_heads")
    expect(find(page, "model-view")).to_be_hidden()  # on demand only
    find(page, "model-view-toggle").click()
    expect(find(page, "model-view")).to_be_visible(timeout=60_000)
    expect(page.locator("[data-testid^=model-cell-]")).to_have_count(layers * heads)
    # the canvas shows the kernel's thumbnails: compare a few pixels' darkness to the levels
    find(page, "model-cell-3-5").hover()
    expect(find(page, "model-view-hover")).to_have_text("layer 3, head 5")
    find(page, "model-cell-3-5").click()
    kernel.wait_for("view.layer", 3)
    kernel.wait_for("view.heads", [5])
    expect(find(page, "layer-select")).to_have_value("3")
    expect(find(page, "model-view-canvas")).to_have_attribute("data-heads", "5")
    # a new mask is a new analysis: the model view asks again and still answers clicks
    kernel.run("view.masked = [6]")
    expect(find(page, "model-view-note")).not_to_have_attribute("data-busy", "true", timeout=60_000)
    find(page, "model-cell-1-2").click()
    kernel.wait_for("view.layer", 1)
    kernel.wait_for("view.heads", [2])
    find(page, "model-view-toggle").click()
    expect(find(page, "model-view")).to_be_hidden()


def test_model_view_pixels_follow_the_kernels_thumbnails(page, kernel):
    find(page, "model-view-toggle").click()
    expect(find(page, "model-view")).to_be_visible(timeout=60_000)
    expect(find(page, "model-view-note")).not_to_have_attribute("data-busy", "true", timeout=60_000)
    thumbs = kernel.eval("view.thumbnails()[2, 4].tolist()")
    size = len(thumbs)
    # the darkest and the lightest cell of thumbnail (2, 4), read back from the canvas
    flat = [(v, i // size, i % size) for i, v in enumerate(v for row in thumbs for v in row)]
    hi, lo = max(flat), min(flat)
    read = page.evaluate(
        """([layer, head, size, cells]) => {
          const canvas = document.querySelector('[data-testid=model-view-canvas]');
          const cell = document.querySelector(`[data-testid=model-cell-${layer}-${head}]`);
          const ctx = canvas.getContext('2d');
          const px = parseFloat(cell.style.width);
          const x0 = parseFloat(cell.style.left), y0 = parseFloat(cell.style.top);
          return cells.map(([r, c]) => {
            const x = Math.floor(x0 + ((c + 0.5) * px) / size);
            const y = Math.floor(y0 + ((r + 0.5) * px) / size);
            return Array.from(ctx.getImageData(x, y, 1, 1).data).slice(0, 3);
          });
        }""",
        [2, 4, size, [[hi[1], hi[2]], [lo[1], lo[2]]]],
    )
    dark, light = (sum(rgb) for rgb in read)
    assert hi[0] == 255 and dark < light
    find(page, "model-view-toggle").click()


# The model view canvas's mean brightness (0..255) and the view's background brightness.
BRIGHTNESS = """() => {
    const canvas = document.querySelector('[data-testid=model-view-canvas]');
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0;
    for (let i = 0; i < d.length; i += 4) sum += (d[i] + d[i + 1] + d[i + 2]) / 3;
    const root = document.querySelector('[data-testid=exbert-root]');
    const bg = getComputedStyle(root).backgroundColor.match(/\\d+/g).slice(0, 3).map(Number);
    return [sum / (d.length / 4), (bg[0] + bg[1] + bg[2]) / 3];
}"""


def test_model_view_follows_a_theme_change(page, kernel):
    """Switching JupyterLab to its dark theme with the model view open repaints the thumbnails on
    the dark background (they stayed white squares)."""
    find(page, "model-view-toggle").click()
    expect(find(page, "model-view-note")).not_to_have_attribute("data-busy", "true", timeout=60_000)
    light, light_bg = page.evaluate(BRIGHTNESS)
    assert light_bg > 128 and light > 128
    theme = "() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: '%s'})"
    page.evaluate(theme % "JupyterLab Dark")
    try:
        page.wait_for_function(f"() => ({BRIGHTNESS})()[1] < 128", timeout=30_000)
        page.wait_for_function(f"() => ({BRIGHTNESS})()[0] < 128", timeout=10_000)
    finally:
        page.evaluate(theme % "JupyterLab Light")
        page.wait_for_function(f"() => ({BRIGHTNESS})()[1] > 128", timeout=30_000)
        find(page, "model-view-toggle").click()


def test_logit_lens_panel_shows_the_kernels_lens_for_the_selected_token(page, kernel):
    expect(find(page, "lens-note")).to_be_hidden()  # on demand only
    find(page, "lens-toggle").click()
    expect(find(page, "lens-note")).to_contain_text("Select a token")
    find(page, "token-left-2").click()
    kernel.wait_for("view.selected", 2)
    expect(find(page, "lens-table")).to_be_visible(timeout=30_000)
    rows = kernel.eval(
        "[[r.token, round(float(r.prob), 6)] for r in view.logit_lens().itertuples()]"
    )
    layers = kernel.eval("view.num_layers") + 1
    k = len(rows) // layers
    expect(find(page, "lens-table")).to_have_attribute("data-layers", str(layers))
    for layer in (0, layers - 1):
        for rank in (0, k - 1):
            token, prob = rows[layer * k + rank]
            cell = find(page, f"lens-cell-{layer}-{rank}")
            expect(cell.locator(".exbert-lens-token")).to_have_text(token)
            assert abs(float(cell.get_attribute("data-prob")) - prob) < 1e-6
    # a layer change does not ask again; a new token does
    kernel.run("view.layer = 2")
    find(page, "token-left-3").click()
    kernel.wait_for("view.selected", 3)
    top = kernel.eval("view.logit_lens().iloc[-5].token")
    expect(find(page, f"lens-cell-{layers - 1}-0").locator(".exbert-lens-token")).to_have_text(top)
    find(page, "lens-toggle").click()
    expect(find(page, "lens-table")).to_be_hidden()


def test_model_view_lens_and_export_fit_a_narrow_view(page, kernel):
    """In a narrow window the model view's grid and the lens table scroll in their own boxes and
    the export status (a long path) wraps: nothing runs past the view's right edge (out of sight
    behind the output's scroll)."""
    find(page, "model-view-toggle").click()
    expect(find(page, "model-view")).to_be_visible(timeout=60_000)
    kernel.run("view.selected = 3")
    find(page, "lens-toggle").click()
    expect(find(page, "lens-table").locator("tr")).not_to_have_count(0, timeout=60_000)
    page.set_viewport_size({"width": 600, "height": 1000})
    try:
        root = page.locator(f"{WIDGET}").first
        page.wait_for_function(
            f"() => document.querySelector('{WIDGET}').getBoundingClientRect().width < 480"
        )
        find(page, "export-format").select_option("svg")
        find(page, "export-button").click()
        expect(find(page, "export-status")).to_contain_text("exbert-view.svg", timeout=30_000)
        assert root.evaluate("e => e.scrollWidth - e.clientWidth") <= 1
        for part in ("model-view", "logit-lens"):
            box = find(page, part)
            assert box.evaluate("e => e.scrollWidth > e.clientWidth"), part  # scrolls inside
        find(page, "model-view").evaluate("e => { e.scrollLeft = e.scrollWidth; }")
        find(page, "model-cell-2-11").click()  # the last head, reached by scrolling the grid
        kernel.wait_for("view.heads", [11])
        kernel.wait_for("view.layer", 2)
    finally:
        page.set_viewport_size({"width": 1400, "height": 1000})
        find(page, "lens-toggle").click()
        find(page, "model-view-toggle").click()


def test_png_is_drawn_by_the_displayed_view_at_twice_the_svgs_size(page, kernel, tmp_path):
    png = tmp_path / "view.png"
    svg = tmp_path / "view.svg"
    kernel.run(f"view.save({str(svg)!r}); view.save({str(png)!r})")
    kernel.wait_for(f"__import__('pathlib').Path({str(png)!r}).exists()", True, timeout=30)
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    root = ET.parse(svg).getroot()
    assert (width, height) == (2 * int(root.get("width")), 2 * int(root.get("height")))
    expect(find(page, "export-status")).to_contain_text(str(png))


def test_save_button_writes_the_chosen_format(page, kernel):
    kernel.run("import os, tempfile; _cwd = os.getcwd(); os.chdir(tempfile.mkdtemp())")
    try:
        find(page, "export-format").select_option("svg")
        find(page, "export-button").click()
        expect(find(page, "export-status")).to_contain_text("exbert-view.svg", timeout=30_000)
        assert kernel.eval("os.path.getsize('exbert-view.svg') > 1000")
        find(page, "export-format").select_option("png")
        find(page, "export-button").click()
        expect(find(page, "export-status")).to_contain_text("exbert-view.png", timeout=30_000)
        assert kernel.eval("open('exbert-view.png', 'rb').read(4).hex()") == "89504e47"
    finally:
        kernel.run("os.chdir(_cwd)")
