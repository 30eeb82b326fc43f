"""Take the README screenshots of "Beyond attention weights": notebook 05's view in real
JupyterLab with norms, with rollout, the Δ view after masking, and the head report heatmap.

Usage: python -m tests.e2e.screenshot_beyond [OUT_DIR]   (default docs/)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from .jupyter import CHROMIUM, CHROMIUM_ARGS, ROOT, WIDGET, JupyterServer, find, open_and_run
from .screenshot import _union

NOTEBOOK = "05_beyond_attention.ipynb"
BASE = """
view.apply({"sentence": "The girl ran to a local pub to escape the din of her city.",
            "masked": [], "selected": None, "heads": list(range(view.num_heads)),
            "head_weights": None, "threshold": 0.7, "hide_special": True, "compare": ""})
"""
SHOTS = {
    "beyond-norm.png": 'view.apply({"measure": "norm", "layer": 2, "heads": [7]})',
    "beyond-rollout.png": 'view.apply({"measure": "rollout", "layer": 5})',
    "beyond-delta.png": (
        'view.apply({"measure": "attention", "layer": 2, "compare": "unmasked", "masked": [7]})'
    ),
    "beyond-head-report.png": 'view.apply({"measure": "attention", "layer": 2, "heads": [8]})',
}


def take(out_dir: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        server = JupyterServer("lab", Path(tmp), [NOTEBOOK]).start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(
                    viewport={"width": 1280, "height": 1400}, device_scale_factor=2
                )
                kernel = open_and_run(page, server, NOTEBOOK)
                page.evaluate(
                    "() => window.jupyterapp.commands.execute('application:toggle-left-area')"
                )
                root = page.locator(WIDGET).first
                for name, state in SHOTS.items():
                    kernel.run(BASE)
                    kernel.run(state)
                    page.mouse.move(5, 5)
                    root.scroll_into_view_if_needed()
                    page.wait_for_timeout(800)
                    parts = [find(page, "beyond-bar"), page.locator(f"{WIDGET} .exbert-attn")]
                    if name == "beyond-delta.png":
                        expect(find(page, "compare-lines")).not_to_have_attribute("data-count", "0")
                        parts = [find(page, "beyond-bar"), find(page, "compare-panel")]
                        find(page, "compare-panel").scroll_into_view_if_needed()
                        find(page, "compare-token-left-7").hover()
                        parts.append(find(page, "compare-tooltip"))
                    elif name == "beyond-head-report.png":
                        find(page, "report-relation").select_option(value="nsubj")
                        find(page, "head-report").scroll_into_view_if_needed()
                        parts = [find(page, "head-report")]
                    page.wait_for_timeout(500)
                    page.screenshot(path=str(out_dir / name), clip=_union(*parts))
                kernel.close()
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"
    target.mkdir(parents=True, exist_ok=True)
    take(target)
    print(f"wrote {', '.join(SHOTS)} in {target}")
