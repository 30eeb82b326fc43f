"""The view in the other front ends, in real Chromium: marimo, Voilà, and the standalone widget
manager that embedding and VS Code's notebook renderer use (a proxy for VS Code).

The standalone test also renders from an installed wheel when ``EXBERT_WHEEL_PYTHON`` names
the Python of a virtual environment that has it (``.ci/run`` makes one with no Node on its
PATH): the view then comes from the bundle inside the wheel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .apps import AppServer
from .jupyter import NOTEBOOKS, ROOT, WIDGET, Kernel, find, has

pytestmark = pytest.mark.e2e
HERE = Path(__file__).resolve().parent
SENTENCE = "The girl ran to a local pub to escape the din of her city."
QUICKSTART_SENTENCE = "The wizard lived in the Emerald City."


def _wait_for_token_texts(page, tokens: list[str], special: list[bool]) -> None:
    for i in (1, 2, len(tokens) - 2):
        assert not special[i]
        expect(find(page, f"token-left-{i}")).to_have_text(tokens[i], timeout=120_000)
    shown = page.locator(f"{WIDGET} .exbert-tokens-left .exbert-token").all_inner_texts()
    assert shown == [t for t, s in zip(tokens, special, strict=True) if not s]


# -- marimo ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def marimo_app(tmp_path_factory):
    base = tmp_path_factory.mktemp("marimo")
    shutil.copy(HERE / "apps" / "marimo_quickstart.py", base / "app.py")
    args = ["marimo", "run", "app.py", "--headless", "--no-token", "--host", "127.0.0.1"]
    server = AppServer([*args, "--port", "{port}"], base, base / "marimo.log").start()
    yield server
    server.stop()


def test_marimo_renders_tokens_and_a_click_reaches_python(marimo_app, new_page, minilm):
    page = new_page()
    page.goto(marimo_app.url)
    a = minilm.analyze(SENTENCE)
    _wait_for_token_texts(page, a.tokens, a.special)
    expect(find(page, "attention-lines")).not_to_have_attribute("data-edge-count", "0")
    expect(page.get_by_text("selected in Python: None")).to_be_visible()
    find(page, "token-left-3").click()
    # marimo runs the cell that reads the widget's value again: Python saw the click.
    expect(page.get_by_text("selected in Python: 3")).to_be_visible(timeout=60_000)
    expect(find(page, "token-left-3")).to_have_class(has("selected"))
    find(page, "layer-select").select_option(value="2")
    expect(find(page, "attention-lines")).to_have_attribute("data-layer", "2", timeout=60_000)


# -- Voilà -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def voila_app(tmp_path_factory):
    base = tmp_path_factory.mktemp("voila")
    shutil.copy(NOTEBOOKS / "01_quickstart.ipynb", base / "quickstart.ipynb")
    args = ["voila", "quickstart.ipynb", "--no-browser", "--Voila.ip=127.0.0.1", "--port={port}"]
    # Ready when it answers at all: asking for the page would start a kernel of its own.
    server = AppServer(args, base, base / "voila.log").start("/voila/static/ready")
    yield server
    server.stop()


def _voila_kernel(server: AppServer) -> Kernel:
    """A client on the kernel Voilà started for the page (the only one: nothing else asked)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        log = server.log_tail(100_000)
        folder = re.search(r"Storing connection files in (\S+?)\.?$", log, re.M)
        started = re.findall(r"Kernel started: ([0-9a-f-]+)", log)
        if folder and started:
            assert len(started) == 1, started
            path = Path(folder[1]) / f"kernel-{started[0]}.json"
            if path.exists():
                return Kernel(path)
        time.sleep(0.5)
    raise LookupError(f"no kernel of Voilà's found:\n{server.log_tail()}")


def test_voila_dashboard_renders_and_a_click_selects(voila_app, new_page, minilm):
    page = new_page()
    # Voilà streams the page while it runs the notebook: wait for the view, not for "load".
    page.goto(voila_app.url, wait_until="commit", timeout=120_000)
    # The quickstart's demo model has MiniLM's tokenizer; it masks "city".
    a = minilm.analyze(QUICKSTART_SENTENCE, masked=[7])
    _wait_for_token_texts(page, a.tokens, a.special)
    expect(find(page, "token-left-7")).to_have_text("[MASK]")
    expect(find(page, "layer-select")).to_have_value("3")
    kernel = _voila_kernel(voila_app)
    try:
        assert kernel.eval("view.masked") == [7]
        find(page, "token-left-2").click()
        kernel.wait_for("view.selected", 2, timeout=60)
        expect(find(page, "token-left-2")).to_have_class(has("selected"))
    finally:
        kernel.close()


# -- the standalone widget manager (embedding; VS Code's renderer) -----------------------------

EMBED = HERE / "embed"
# drop_defaults=False: a kernel sends a widget's whole state (anywidget's JS model has no
# defaults for its view class), and so does this page.
WRITE_EMBED = """
import json, sys
import exbert_widget as ew
from ipywidgets.embed import embed_minimal_html
view = ew.ExBertView(sys.argv[2], sentence="The cat sat on the mat.")
embed_minimal_html(sys.argv[1], views=[view], title="exbert-widget", drop_defaults=False)
print(json.dumps({"module": ew.__file__, "tokens": view.tokens, "special": view.special}))
"""


def _embed_assets() -> Path:
    if not (EMBED / "node_modules").exists():
        if shutil.which("npm") is None:
            pytest.skip("npm (Node.js) is needed once, to install the standalone widget manager")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=EMBED, check=True)
    return EMBED / "node_modules"


def _pythons() -> list:
    wheel = os.environ.get("EXBERT_WHEEL_PYTHON")
    return ["checkout", pytest.param(wheel, id="wheel")] if wheel else ["checkout"]


@pytest.mark.parametrize("python", _pythons())
def test_standalone_widget_manager_renders_the_bundle(python, tmp_path, tiny_dirs, new_page):
    modules = _embed_assets()
    html = tmp_path / "embed.html"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if python == "checkout":
        python, env["PYTHONPATH"] = sys.executable, str(ROOT)
    else:  # the wheel's environment: nothing from the checkout, no Node on the PATH
        env["PATH"] = str(Path(python).parent)
        assert shutil.which("node", path=env["PATH"]) is None
    done = subprocess.run(
        [python, "-c", WRITE_EMBED, str(html), tiny_dirs["bert"]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    if python != sys.executable:  # imported from the wheel's environment, not the checkout
        module = Path(info["module"])
        assert module.is_relative_to(Path(python).parent.parent), module
        assert not module.is_relative_to(ROOT / "exbert_widget"), module

    # The page pins cdnjs's minified require.js by its digest; npm's requirejs is another build
    # of it, so the pin goes (it is the CDN's file, not ours, that it vouches for).
    html.write_text(re.sub(r' integrity="[^"]*"', "", html.read_text()))
    page = new_page()
    outside: list[str] = []
    page.route("**/*", lambda route: _serve_offline(route, modules, outside))
    page.goto(html.as_uri())
    _wait_for_token_texts(page, info["tokens"], info["special"])
    expect(find(page, "attention-lines")).not_to_have_attribute("data-edge-count", "0")
    expect(find(page, "layer-select").locator("option")).to_have_count(2)
    assert outside == []


def _serve_offline(route, modules: Path, outside: list[str]) -> None:
    """The embed page's CDN requests, answered from local files; anything else is refused."""
    url = route.request.url
    manager = re.search(r"/@jupyter-widgets/html-manager@[^/]+/dist/(.+)$", url)
    if url.startswith("file://"):
        route.continue_()
    elif re.search(r"/require(\.min)?\.js$", url):
        route.fulfill(path=modules / "requirejs" / "require.js")
    elif manager:
        route.fulfill(path=modules / "@jupyter-widgets" / "html-manager" / "dist" / manager[1])
    elif re.search(r"/npm/anywidget@[^/]+/dist/index\.js$", url):
        import anywidget

        route.fulfill(path=Path(anywidget.__file__).parent / "nbextension" / "index.js")
    else:
        outside.append(url)
        route.abort()
