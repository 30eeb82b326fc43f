"""Take the README screenshot: the quickstart's view in real JupyterLab, in a telling state.

Usage: python -m tests.e2e.screenshot [OUT.png]   (default docs/screenshot.png)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from .jupyter import CHROMIUM, CHROMIUM_ARGS, ROOT, WIDGET, JupyterServer, find, open_and_run

STATE = """
view.sentence = "The girl ran to a local pub to escape the din of her city."
view.masked = []
view.layer = 2
view.heads = [0, 2, 4, 5, 9]
view.threshold = 0.7
view.hide_special = True
view.selected = 9
"""


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
                expect(find(page, "token-left-9")).to_have_class("exbert-token selected")
                expect(find(page, "attention-lines")).to_have_attribute("data-layer", "2")
                page.mouse.move(2, 2)
                cell = page.locator(".jp-CodeCell", has=page.locator(WIDGET)).first
                cell.scroll_into_view_if_needed()
                page.evaluate("() => document.activeElement && document.activeElement.blur()")
                page.wait_for_timeout(500)
                cell.screenshot(path=str(out))
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshot.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    take(target)
    print(f"wrote {target}")
