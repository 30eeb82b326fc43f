"""Corpus search in real JupyterLab, on notebooks/02_corpus_search.ipynb (a view named `view`
over `ew.demo_corpus`): select a token, search, read the hits and histograms, load a hit."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .jupyter import WIDGET, find, has

NOTEBOOK = "02_corpus_search.ipynb"
pytestmark = pytest.mark.e2e


def test_search_hits_histograms_and_loading_a_hit(lab):
    page, kernel = lab
    kernel.run("view.masked = []\nview.selected = None\nview.hide_special = True")
    assert kernel.eval("view.has_corpus") is True
    expect(find(page, "search-panel")).to_be_visible()
    expect(find(page, "search-embedding")).to_be_disabled()  # nothing selected yet

    # Select a word (not punctuation, not a special token) by clicking it.
    tokens, special = kernel.eval("view.tokens"), kernel.eval("view.special")
    i = next(
        k for k, (t, s) in enumerate(zip(tokens, special, strict=True)) if not s and t.isalpha()
    )
    find(page, f"token-left-{i}").click()
    kernel.wait_for("view.selected", i)

    find(page, "search-embedding").click()
    kernel.wait_for("len(view.hit_list) > 0", True, timeout=120)
    expect(find(page, "search-busy")).to_be_hidden(timeout=60_000)  # the command replied
    expect(find(page, "search-error")).to_be_hidden()
    hits = kernel.eval("view.hit_list")
    expect(find(page, "hit-0")).to_be_visible()
    assert page.locator(f"{WIDGET} [data-testid^='hit-']:not([data-testid^='hit-token'])").count()
    assert kernel.eval("view.sentence") not in [hit["sentence"] for hit in hits]  # varied
    for h, hit in enumerate(hits[:5]):
        j = hit["token_index"]
        match = find(page, f"hit-token-{h}-{j}")
        expect(match).to_have_class(has("match"))
        start, end = hit["token_spans"][j]  # the piece as the sentence writes it
        expect(match).to_have_text(hit["sentence"][start:end])
        assert page.locator(f"{WIDGET} [data-testid='hit-{h}'] .match").count() == 1
        ws, we = hit["word_spans"][j]
        piece = page.locator(f"[data-testid='hit-token-{h}-{j}']")  # `has` is relative
        word = page.locator(f"{WIDGET} [data-testid='hit-{h}'] .exbert-hit-word", has=piece)
        expect(word).to_have_text(hit["sentence"][ws:we])  # the whole word around it

    # The strips' legend names every label the strips draw, in the strips' colours.
    legend = find(page, "strip-legend")
    expect(legend).to_be_visible()
    cells = page.locator(f"{WIDGET} [data-testid='summary-strips'] .exbert-strip-cell")
    drawn = {c.get_attribute("data-label") for c in cells.all()}
    entries = legend.locator("[data-testid^='legend-']")
    assert {e.get_attribute("data-label") for e in entries.all()} == drawn
    for entry in entries.all()[:4]:
        label = entry.get_attribute("data-label")
        colour = entry.locator(".exbert-legend-swatch").evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        cell = page.locator(
            f"{WIDGET} [data-testid='summary-strips'] .exbert-strip-cell[data-label='{label}']"
        ).first
        assert cell.evaluate("e => getComputedStyle(e).backgroundColor") == colour

    # Histograms by dependency label: one bar per DEP label the kernel counted.
    find(page, "hist-field").select_option(value="dep")
    dep = {k for k, v in kernel.eval("view.summaries['match']['dep']").items() if v > 0}
    assert dep
    bars = page.locator(f"{WIDGET} [data-testid='hist-match'] [data-testid^='hist-bar-match-']")
    expect(bars).to_have_count(len(dep))
    assert {b.get_attribute("data-label") for b in bars.all()} == dep
    pos = {k for k, v in kernel.eval("view.summaries['match']['pos']").items() if v > 0}
    if not dep & pos:  # DEP and POS label sets differ: the bars really switched field
        expect(find(page, f"hist-bar-match-{next(iter(pos))}")).to_have_count(0)

    # Click a hit from another sentence: the kernel loads it and selects its matched token.
    h = next((k for k, x in enumerate(hits) if x["sentence"] != kernel.eval("view.sentence")), 0)
    find(page, f"hit-{h}").click()
    kernel.wait_for("view.sentence", hits[h]["sentence"], timeout=60)
    kernel.wait_for("view.selected", hits[h]["token_index"])
    expect(find(page, "sentence-input")).to_have_value(hits[h]["sentence"])
    expect(find(page, f"token-left-{hits[h]['token_index']}")).to_have_class(has("selected"))


def _hits_shown(page, kernel) -> list[str]:
    """A token selected and hits drawn (a search of 5 if there were none): their sentences."""
    kernel.run("view.selected = next(i for i, s in enumerate(view.special) if not s)")
    if not kernel.eval("len(view.hit_list)"):
        kernel.run("view.search(k=5)")
    expect(find(page, "hit-0")).to_be_visible()
    return kernel.eval("[h['sentence'] for h in view.hit_list]")


def test_a_failed_search_shows_its_error_and_keeps_the_hits(lab):
    page, kernel = lab
    before = _hits_shown(page, kernel)
    kernel.run("_corpus, view.corpus = view.corpus, None")  # the next search fails in the kernel
    try:
        find(page, "search-embedding").click()
        expect(find(page, "search-error")).to_have_text(re.compile("no corpus"), timeout=60_000)
        expect(find(page, "search-busy")).to_be_hidden()
        assert kernel.eval("[h['sentence'] for h in view.hit_list]") == before
        expect(find(page, "hit-0")).to_be_visible()
    finally:
        kernel.run("view.corpus = _corpus")
    find(page, "search-embedding").click()  # and the next one works again
    expect(find(page, "search-error")).to_be_hidden(timeout=60_000)


NO_REPLY_S = 20  # js/src/core/commands.ts: NO_REPLY_MS, ten of the kernel's heartbeats


def test_a_search_the_kernel_never_answers_says_so_and_keeps_the_hits(lab):
    """A reply that never comes (here the kernel swallows the request, as a restarted kernel
    would): the view gives up after its limit, says what to do, and keeps the last hits."""
    page, kernel = lab
    before = _hits_shown(page, kernel)
    busy, error = find(page, "search-busy"), find(page, "search-error")
    # Commands are swallowed: no reply, no heartbeat.
    kernel.run("view._commands.handle = lambda m: isinstance(m, dict) and 'name' in m")
    try:
        find(page, "search-embedding").click()
        expect(busy).to_be_visible()
        expect(error).to_contain_text(
            f"no reply from the kernel after {NO_REPLY_S} s", timeout=(NO_REPLY_S + 30) * 1000
        )
        expect(error).to_contain_text("run the cell again")
        expect(busy).to_be_hidden()
        expect(find(page, "hit-0")).to_be_visible()
        assert kernel.eval("[h['sentence'] for h in view.hit_list]") == before
    finally:
        kernel.run("del view._commands.handle")
    find(page, "search-embedding").click()  # the lane is free: the next search is answered
    expect(error).to_be_hidden(timeout=60_000)
    expect(busy).to_be_hidden(timeout=60_000)


def test_a_search_longer_than_the_views_limit_is_not_cut(lab):
    """The kernel's heartbeats keep a slow search alive past the view's limit of silence."""
    page, kernel = lab
    _hits_shown(page, kernel)
    busy, error = find(page, "search-busy"), find(page, "search-error")
    kernel.run(
        f"""
import time as _time
_search = view._commands.handlers["search"]
def _slow_search(args):
    _time.sleep({NO_REPLY_S} * 1.5)  # a search this long: longer than the view waits in silence
    return _search(args)
view._commands.handlers["search"] = _slow_search
"""
    )
    try:
        find(page, "search-context").click()
        expect(busy).to_be_visible()
        expect(busy).to_be_hidden(timeout=(NO_REPLY_S * 1.5 + 60) * 1000)
        expect(error).to_be_hidden()
        expect(find(page, "hit-0")).to_be_visible()
    finally:
        kernel.run('view._commands.handlers["search"] = _search')


# The hit whose matched token "town" is followed at once by "'" (no space between): the match's
# outline must leave that narrow neighbour visible.
TOWN = (
    "The disaster also led directly to the founding of the town's first lifeboat station in 1874."
)
# Tokens of a hit that the match's outline (drawn outside its box) would cover, for each hit,
# and how many hits have a token right beside the match (no space between them).
MATCH_NEIGHBOURS = """root => {
    const covered = [];
    let adjacent = 0;
    for (const row of root.querySelectorAll('.exbert-hit')) {
        const m = row.querySelector('.exbert-hit-token.match');
        const s = getComputedStyle(m);
        const reach = parseFloat(s.outlineWidth) + parseFloat(s.outlineOffset);
        const word = m.parentElement;  // a word's pieces, then a space or a word beside it
        const beside = [m.previousSibling, m.nextSibling, word.previousSibling, word.nextSibling];
        if (beside.some((n) => n && n.nodeType === Node.ELEMENT_NODE)) adjacent++;
        const b = m.getBoundingClientRect();
        for (const t of row.querySelectorAll('.exbert-hit-token:not(.match)')) {
            const r = t.getBoundingClientRect();
            if (r.top >= b.bottom || r.bottom <= b.top) continue;  // another line
            if (r.right > b.left - reach + 0.5 && r.left < b.right + reach - 0.5)
                covered.push(`${row.dataset.hitRow}: ${m.textContent} covers ${t.textContent}`);
        }
    }
    return [covered, adjacent];
}"""


def test_the_match_outline_covers_no_neighbouring_token(lab):
    page, kernel = lab
    kernel.run(f"view.sentence = {TOWN!r}\nview.selected = view.tokens.index('town')")
    kernel.run("view.search(by='embedding', k=10, skip_own_sentence=False)")
    kernel.wait_for("view.hit_list[0]['sentence']", TOWN)
    expect(find(page, "hit-token-0-11")).to_have_text("town")
    covered, adjacent = find(page, "hits").evaluate(MATCH_NEIGHBOURS)
    assert adjacent >= 1  # "town" + "'" at least: the check below has something to find
    assert covered == []


def test_search_results_fit_a_narrow_output(lab):
    """In a narrow window the strips, hits and histograms wrap inside the view's width instead
    of running off its right edge (where the histograms could not be seen)."""
    page, kernel = lab
    kernel.run("view.selected = next(i for i, s in enumerate(view.special) if not s)")
    if not kernel.eval("len(view.hit_list)"):
        kernel.run("view.search(k=5)")
    expect(find(page, "hit-0")).to_be_visible()
    page.set_viewport_size({"width": 600, "height": 1000})
    try:
        results = page.locator(f"{WIDGET} .exbert-search-results > *")
        root = page.locator(WIDGET).first
        page.wait_for_function(
            f"() => document.querySelector('{WIDGET}').getBoundingClientRect().width < 480"
        )
        box = root.bounding_box()
        assert box is not None
        for part in results.all():
            b = part.bounding_box()
            assert b is not None and b["width"] > 0
            assert box["x"] - 1 <= b["x"] and b["x"] + b["width"] <= box["x"] + box["width"] + 1
    finally:
        page.set_viewport_size({"width": 1400, "height": 1000})


def test_a_k_out_of_range_is_refused_with_a_reason(lab):
    """k outside 1..1000 (or no number) is refused in the view; it searched silently with the
    previous k before, while the box still showed the typed value."""
    page, kernel = lab
    before = _hits_shown(page, kernel)
    k, error = find(page, "search-k"), find(page, "search-error")
    for bad in ("5000", "0", "-2", ""):
        k.fill(bad)
        find(page, "search-embedding").click()
        expect(error).to_have_text(re.compile("from 1 to 1000"))
        expect(find(page, "search-busy")).to_be_hidden()
        assert kernel.eval("[h['sentence'] for h in view.hit_list]") == before
    k.fill("7")
    find(page, "search-embedding").click()
    kernel.wait_for("len(view.hit_list)", 7, timeout=60)
    expect(error).to_be_hidden(timeout=60_000)
    expect(page.locator(f"{WIDGET} .exbert-hit")).to_have_count(7)
