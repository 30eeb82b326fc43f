"""Take the README screenshot: the quickstart's view in real JupyterLab, in a telling state (the
demo head's predictions for a masked word, shown in the tooltip of the masked token).

Usage: python -m tests.e2e.screenshot [OUT.png]   (default docs/screenshot.png)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from .jupyter import CHROMIUM, CHROMIUM_ARGS, ROOT, WIDGET, JupyterServer, find, open_and_run

STATE = """
view.apply({"sentence": "The wizard lived in the Emerald City.", "masked": [7], "selected": 2})
view.layer = 3
view.heads = [0, 2, 4, 5, 9]
view.threshold = 0.7
view.hide_special = True
"""


def _union(*locators) -> dict:
    """The page area holding every one of ``locators`` (the tooltip may reach below the cell)."""
    boxes = [box for loc in locators if (box := loc.bounding_box())]
    left = min(b["x"] for b in boxes)
    top = min(b["y"] for b in boxes)
    right = max(b["x"] + b["width"] for b in boxes)
    bottom = max(b["y"] + b["height"] for b in boxes) + 8
    return {"x": left, "y": top, "width": right - left, "height": bottom - top}


def take(out: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        server = JupyterServer("lab", Path(tmp), ["01_quickstart.ipynb"]).start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(
                    viewport={"width": 1280, "height": 1000}, device_scale_factor=2
                )
                kernel = open_and_run(page, server, "01_quickstart.ipynb")
                page.evaluate(
                    "() => window.jupyterapp.commands.execute('application:toggle-left-area')"
                )
                kernel.run(STATE)
                kernel.close()
                expect(find(page, "token-left-2")).to_have_class("exbert-token selected")
                expect(find(page, "token-left-7")).to_have_text("[MASK]")
                expect(find(page, "attention-lines")).to_have_attribute("data-layer", "3")
                cell = page.locator(".jp-CodeCell", has=page.locator(WIDGET)).first
                cell.scroll_into_view_if_needed()
                page.evaluate("() => document.activeElement && document.activeElement.blur()")
                find(page, "token-right-7").hover()  # the masked word: what the head predicts
                tooltip = find(page, "tooltip")
                expect(tooltip).to_contain_text("would predict here")
                page.wait_for_timeout(500)
                page.screenshot(path=str(out), clip=_union(cell, tooltip))
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshot.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    take(target)
    print(f"wrote {target}")
