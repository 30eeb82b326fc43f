"""The quickstart notebook in Notebook 7: the view renders and a click reaches the kernel."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .jupyter import WIDGET, find, open_and_run

pytestmark = pytest.mark.e2e
NOTEBOOK = "01_quickstart.ipynb"


def test_quickstart_renders_and_clicks_reach_the_kernel(notebook7_server, new_page):
    page = new_page()
    kernel = open_and_run(page, notebook7_server, NOTEBOOK)
    try:
        assert "/notebooks/" in page.url
        expect(page.locator(WIDGET)).to_be_visible()
        tokens = kernel.eval("view.tokens")
        token = find(page, "token-left-2")
        expect(token).to_be_visible()
        expect(token).to_have_text(tokens[2])
        assert int(find(page, "attention-lines").get_attribute("data-edge-count")) > 0
        token.click()
        kernel.wait_for("view.selected", 2)
        expect(token).to_have_class(re.compile(r"(^|\s)selected(\s|$)"))
    finally:
        kernel.close()
