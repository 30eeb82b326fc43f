"""Browser tests: real JupyterLab / Notebook 7 servers driven by Playwright's Chromium.

Each server runs in its own process group, in a temporary root directory holding copies of the
notebooks under test, with private settings, workspaces and runtime directories (so the kernel's
connection file is found and read from the test, to check and set traits in the kernel).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .jupyter import CHROMIUM, CHROMIUM_ARGS, NOTEBOOKS, JupyterServer, open_and_run

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    missing = not Path(CHROMIUM).exists()
    for item in items:
        if here not in item.path.parents:
            continue
        item.add_marker(pytest.mark.e2e)
        if missing:
            item.add_marker(
                pytest.mark.skip(
                    reason=f"no Chromium at {CHROMIUM} (set EXBERT_E2E_CHROMIUM to its path)"
                )
            )


def _server(app: str, tmp_path_factory, notebooks: list[str]) -> Iterator[JupyterServer]:
    server = JupyterServer(app, tmp_path_factory.mktemp(f"jupyter-{app}"), notebooks).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory) -> Iterator[JupyterServer]:
    """JupyterLab with every example notebook in its root."""
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    yield from _server("lab", tmp_path_factory, names)


@pytest.fixture(scope="session")
def notebook7_server(tmp_path_factory) -> Iterator[JupyterServer]:
    yield from _server("notebook", tmp_path_factory, ["01_quickstart.ipynb"])


# -- browser -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class PageRecorder:
    """The pages of one test module: dialogs and console errors recorded, and screenshots
    under test-artifacts/ after every test (failed ones, setup failures included, marked so)."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.pages: list[Any] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.warnings: list[str] = []
        for old in ARTIFACTS.glob(f"{module}-*.png"):
            old.unlink()

    def track(self, page) -> None:
        self.pages.append(page)

        def on_dialog(dialog) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)

        def on_console(msg) -> None:
            if msg.type == "error":
                self.errors.append(msg.text)
            elif msg.type == "warning":
                self.warnings.append(msg.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def screenshot(self, test: str, failed: bool) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", test)
        for i, page in enumerate(self.pages):
            if page.is_closed():
                continue
            suffix = (f"-{i}" if i else "") + ("-FAILED" if failed else "")
            path = ARTIFACTS / f"{self.module}-{name}{suffix}.png"
            try:
                page.screenshot(path=str(path), timeout=10_000)
            except Exception as exc:  # a screenshot must never hide the test's own outcome
                print(f"screenshot {path.name} failed: {exc}")


_RECORDERS: dict[Path, PageRecorder] = {}


@pytest.fixture(scope="module")
def recorder(request) -> Iterator[PageRecorder]:
    rec = PageRecorder(request.path.stem)
    _RECORDERS[request.path] = rec
    yield rec
    _RECORDERS.pop(request.path, None)


@pytest.fixture(scope="module")
def new_page(browser, recorder) -> Iterator[Callable[[], Any]]:
    """Factory of fresh pages in one browser context per module."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)

    def make():
        page = context.new_page()
        recorder.track(page)
        return page

    try:
        yield make
    finally:
        context.close()


@pytest.fixture(scope="module")
def lab(lab_server, new_page, request):
    """The test module's ``NOTEBOOK`` run in one JupyterLab page: (page, kernel client)."""
    page = new_page()
    kernel = open_and_run(page, lab_server, request.module.NOTEBOOK)
    yield page, kernel
    kernel.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Screenshot every page of the module after each test, and after a failed setup."""
    outcome = yield
    report = outcome.get_result()
    rec = _RECORDERS.get(item.path)
    if rec is not None and (report.when == "call" or report.failed):
        rec.screenshot(item.name, report.failed)
