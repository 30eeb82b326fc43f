"""The exported HTML page in real Chromium, opened from file:// with every network request
blocked: it shows the tokens as text and reacts to hover, head toggles and the layer menu with no
kernel at all."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

import exbert_widget as ew

from .jupyter import find, has

pytestmark = pytest.mark.e2e
SENTENCE = 'The "wizard" lived in <Emerald> City & Oz.'


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    lm = ew.load_model("demo")
    view = ew.ExBertView(lm, sentence=SENTENCE, layer=2)
    view.selected = 2
    path = view.save(tmp_path_factory.mktemp("export") / "view.html")
    return view, path


@pytest.fixture()
def offline_page(new_page):
    page = new_page()
    attempted: list[str] = []

    def block(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            attempted.append(route.request.url)
            route.abort()

    page.route("**/*", block)
    page.on("request", lambda r: None if r.url.startswith("file:") else attempted.append(r.url))
    return page, attempted


def test_exported_page_draws_and_reacts_offline(exported, offline_page):
    view, path = exported
    page, attempted = offline_page
    page.goto(path.as_uri())
    expect(page.locator("html")).to_have_attribute("data-exbert-ready", "true")
    shown = [t for t, s in zip(view.tokens, view.special, strict=True) if not s]
    expect(page.locator(".exbert-tokens-left .exbert-token")).to_have_text(shown)
    expect(find(page, "token-left-2")).to_have_class(has("selected"))
    lines = find(page, "attention-lines")
    expect(lines).to_have_attribute("data-layer", "2")
    expect(lines).to_have_attribute("data-mode", "all")
    find(page, "token-left-3").hover()
    expect(lines).to_have_attribute("data-mode", "token-left-3")
    page.mouse.move(2, 2)
    expect(lines).to_have_attribute("data-mode", "all")
    before = lines.get_attribute("data-signature")
    find(page, "head-toggle-4").click()
    expect(find(page, "head-toggle-4")).not_to_have_class(has("on"))
    expect(lines).not_to_have_attribute("data-signature", before)
    find(page, "layer-select").select_option("5")  # every layer is embedded
    expect(lines).to_have_attribute("data-layer", "5")
    # the kernel's features say so instead of failing silently
    find(page, "sentence-input").fill("Another sentence.")
    find(page, "sentence-apply").click()
    expect(find(page, "error")).to_contain_text("no kernel")
    expect(page.locator(".exbert-tokens-left .exbert-token")).to_have_text(shown)
    assert attempted == []
