"""Take the README screenshots of sentence pairs and encoder–decoder parts: the pair view with the
A→B filter (docs/pairs.png), and the tiny T5's cross attention, target tokens on the left and
source tokens on the right (docs/parts.png).

Usage: python -m tests.e2e.screenshot_pairs_parts [OUT_DIR]   (default docs/)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from . import pairs_parts_notebook
from .jupyter import CHROMIUM, CHROMIUM_ARGS, ROOT, WIDGET, JupyterServer, open_and_run
from .screenshot import _union

PAIR_STATE = 'pair.apply({"layer": 2, "threshold": 0.9, "pair_filter": "A->B"})'
PARTS_STATE = 's2s.apply({"part": "cross", "layer": 1, "threshold": 0.5})'


def _shoot(page, index: int, out: Path) -> None:
    cell = page.locator(".jp-CodeCell", has=page.locator(WIDGET)).nth(index)
    cell.scroll_into_view_if_needed()
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.mouse.move(5, 5)
    page.wait_for_timeout(500)
    page.screenshot(path=str(out), clip=_union(cell.locator(WIDGET)))


def take(out_dir: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        server = JupyterServer("lab", Path(tmp), []).start()
        pairs_parts_notebook.write(server.root)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(
                    viewport={"width": 1280, "height": 1500}, device_scale_factor=2
                )
                kernel = open_and_run(page, server, pairs_parts_notebook.NAME)
                page.evaluate(
                    "() => window.jupyterapp.commands.execute('application:toggle-left-area')"
                )
                kernel.run(PAIR_STATE + "\n" + PARTS_STATE)
                kernel.close()
                lines = page.locator(WIDGET).nth(1).locator("[data-testid='attention-lines']")
                expect(lines).to_have_attribute("data-layer", "1")
                _shoot(page, 0, out_dir / "pairs.png")
                _shoot(page, 1, out_dir / "parts.png")
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"
    target.mkdir(parents=True, exist_ok=True)
    take(target)
    print(f"wrote {target / 'pairs.png'} and {target / 'parts.png'}")
