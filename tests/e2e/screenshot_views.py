"""Take the README screenshots of the model view, the logit-lens panel and an export: the
quickstart's view in real JupyterLab (the demo model), and a saved SVG as Chromium renders it.

Usage: python -m tests.e2e.screenshot_views [DIR]   (default docs/)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from .jupyter import CHROMIUM, CHROMIUM_ARGS, ROOT, JupyterServer, find, open_and_run

STATE = """
view.apply({"sentence": "The wizard lived in the Emerald City.", "masked": [7], "selected": 7})
view.layer = 3
view.heads = [0, 2, 4, 5, 9]
view.hide_special = True
"""


def take(out: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        server = JupyterServer("lab", Path(tmp), ["01_quickstart.ipynb"]).start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(
                    viewport={"width": 1280, "height": 1400}, device_scale_factor=2
                )
                kernel = open_and_run(page, server, "01_quickstart.ipynb")
                page.evaluate(
                    "() => window.jupyterapp.commands.execute('application:toggle-left-area')"
                )
                kernel.run(STATE)
                svg = Path(tmp) / "view.svg"
                kernel.run(f"view.save({str(svg)!r})")
                kernel.close()
                lens = find(page, "logit-lens")
                find(page, "lens-toggle").click()
                expect(find(page, "lens-table")).to_be_visible(timeout=60_000)
                lens.scroll_into_view_if_needed()
                lens.screenshot(path=str(out / "logit_lens.png"))
                find(page, "model-view-toggle").click()
                expect(find(page, "model-view")).to_be_visible(timeout=60_000)
                find(page, "model-cell-3-5").hover()
                grid = find(page, "model-view")
                grid.scroll_into_view_if_needed()
                page.wait_for_timeout(300)
                grid.screenshot(path=str(out / "model_view.png"))
                figure = browser.new_page(device_scale_factor=2)
                figure.goto(svg.as_uri())
                figure.locator("svg").screenshot(path=str(out / "export_svg.png"))
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"
    target.mkdir(parents=True, exist_ok=True)
    take(target)
    print(f"wrote {target}/model_view.png, logit_lens.png, export_svg.png")
