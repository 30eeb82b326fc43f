// The hit list: each hit sentence as its words, every model token a span of
// its own inside its word (so "Alnwick" reads as one word while its matched
// piece "n" stays marked), each shaded by the matched token's attention row.
// Hover a token for its POS / DEP / entity / attention; click a row to load
// that sentence. While hide_special, the hit sentences' special tokens are not
// drawn (the matched token always is); `hit-token-{i}-{j}` keeps j as the index
// into the hit's full token list. A corpus without character offsets (format
// 2) shows the tokens themselves, space-separated.

import type { Tooltip } from "../../core/tooltip";
import { hitAttentionRow, shades } from "./hitAttention";
import { hitTokenShown } from "./strips";
import type { Hit } from "./types";

export class HitList {
  readonly el: HTMLDivElement; // data-testid hits
  private rows: HTMLDivElement[] = [];
  private hits: readonly Hit[] = [];
  private rowsAtt: Float32Array[] = [];
  private highlighted: number | null = null;

  constructor(
    private tooltip: Tooltip,
    onLoad: (i: number) => void,
  ) {
    this.el = document.createElement("div");
    this.el.className = "exbert-hits";
    this.el.setAttribute("data-testid", "hits");
    this.el.addEventListener("click", (ev) => {
      const row = (ev.target as HTMLElement | null)?.closest?.("[data-hit-row]") as HTMLElement | null;
      if (row) onLoad(Number(row.getAttribute("data-hit-row")));
    });
    this.el.addEventListener("mouseover", (ev) => {
      const t = (ev.target as HTMLElement | null)?.closest?.("[data-j]") as HTMLElement | null;
      if (!t) return;
      const row = t.closest("[data-hit-row]") as HTMLElement | null;
      if (!row) return;
      this.showToken(Number(row.getAttribute("data-hit-row")), Number(t.getAttribute("data-j")), t);
    });
    this.el.addEventListener("mouseout", (ev) => {
      const to = (ev as MouseEvent).relatedTarget as HTMLElement | null;
      if (!to?.closest?.("[data-j]")) this.tooltip.hide();
    });
  }

  render(hits: readonly Hit[], att: Float32Array | null, hideSpecial = false): void {
    this.hits = hits;
    this.rows = [];
    this.rowsAtt = [];
    this.highlighted = null;
    this.tooltip.hide();
    this.el.replaceChildren();
    const head = document.createElement("div");
    head.className = "exbert-hits-header";
    const nextNote = hits.some((x) => x.describes_next) ? " (the match describes the next token)" : "";
    head.textContent = hits.length ? `${hits.length} hits${nextNote}` : "no hits";
    if (hits.length === 0) head.classList.add("exbert-muted");
    this.el.appendChild(head);
    const frag = document.createDocumentFragment();
    hits.forEach((hit, i) => {
      const row = document.createElement("div");
      row.className = "exbert-hit";
      row.setAttribute("data-testid", `hit-${i}`);
      row.setAttribute("data-hit-row", String(i));
      row.title = "click to load this sentence";
      const meta = document.createElement("span");
      meta.className = "exbert-hit-meta";
      meta.textContent = `${i + 1}. ${Number(hit.score).toFixed(3)}`;
      row.appendChild(meta);
      const attRow = hitAttentionRow(att, hit);
      this.rowsAtt.push(attRow);
      const shown = (j: number) => j === hit.token_index || hitTokenShown(hit, j, hideSpecial);
      const sh = shades(attRow, shown);
      const line = document.createElement("span");
      line.className = "exbert-hit-tokens";
      const piece = (j: number, text: string) => {
        const t = document.createElement("span");
        t.className = `exbert-hit-token${j === hit.token_index ? " match" : ""}${hit.special?.[j] ? " special" : ""}`;
        t.setAttribute("data-testid", `hit-token-${i}-${j}`);
        t.setAttribute("data-j", String(j));
        t.style.setProperty("--a", (sh[j] ?? 0).toFixed(3));
        t.textContent = text;
        return t;
      };
      appendWords(line, hit, shown, piece);
      row.appendChild(line);
      this.rows.push(row);
      frag.appendChild(row);
    });
    this.el.appendChild(frag);
  }

  highlight(i: number | null): void {
    if (this.highlighted !== null) this.rows[this.highlighted]?.classList.remove("highlight");
    this.highlighted = i;
    if (i !== null) {
      const r = this.rows[i];
      if (r) {
        r.classList.add("highlight");
        r.scrollIntoView?.({ block: "nearest" });
      }
    }
  }

  private showToken(i: number, j: number, el: HTMLElement): void {
    const hit = this.hits[i];
    if (!hit) return;
    const att = this.rowsAtt[i]?.[j];
    const [ws, we] = hit.word_spans?.[j] ?? [-1, -1];
    const word = ws >= 0 && we > ws ? hit.sentence.slice(ws, we) : "";
    this.tooltip.show(el, hit.tokens?.[j] ?? "", [
      ...(word && word !== hit.tokens?.[j] ? [{ label: "word", value: word }] : []),
      { label: "POS", value: hit.token_pos?.[j] || "–" },
      { label: "DEP", value: hit.token_dep?.[j] || "–" },
      { label: "entity", value: hit.token_ent?.[j] || "–" },
      { label: "attention", value: att === undefined ? "–" : att.toFixed(4) },
    ]);
  }
}

/** Whether the hit carries the characters of every token (corpus format 3). */
export function hasSpans(hit: Hit): boolean {
  const n = (hit.tokens ?? []).length;
  return (
    hit.token_spans?.length === n &&
    hit.word_spans?.length === n &&
    hit.token_spans.some(([a]) => a >= 0) &&
    typeof hit.sentence === "string"
  );
}

/**
 * Append the hit sentence to `line`: the sentence's own text between words, each
 * word a span holding its tokens' spans (made by `piece`); tokens without
 * characters (special ones) as their token text. Only tokens `shown` are drawn.
 */
export function appendWords(
  line: HTMLElement,
  hit: Hit,
  shown: (j: number) => boolean,
  piece: (j: number, text: string) => HTMLElement,
): void {
  const toks = hit.tokens ?? [];
  if (!hasSpans(hit)) {
    toks.forEach((tok, j) => {
      if (!shown(j)) return;
      line.appendChild(piece(j, tok));
      line.appendChild(document.createTextNode(" "));
    });
    return;
  }
  const text = hit.sentence;
  let cursor = 0; // characters of the sentence drawn so far
  let word: HTMLElement | null = null;
  let wordKey = "";
  toks.forEach((tok, j) => {
    const [ts, te] = hit.token_spans[j];
    const [ws, we] = hit.word_spans[j];
    if (ts < 0 || ws < 0) {
      word = null;
      wordKey = "";
      if (!shown(j)) return;
      if (line.childNodes.length) line.appendChild(document.createTextNode(" "));
      line.appendChild(piece(j, tok));
      return;
    }
    const key = `${ws}:${we}`;
    if (key !== wordKey || !word) {
      const gap = text.slice(cursor, Math.max(cursor, ws));
      if (gap) line.appendChild(document.createTextNode(gap));
      else if (word === null && line.childNodes.length) line.appendChild(document.createTextNode(" "));
      word = document.createElement("span");
      word.className = "exbert-hit-word";
      word.title = text.slice(ws, we);
      line.appendChild(word);
      wordKey = key;
      cursor = Math.max(cursor, ws);
    }
    const start = Math.max(ts, cursor);
    if (start > cursor) word.appendChild(document.createTextNode(text.slice(cursor, start)));
    const end = Math.max(start, te);
    word.appendChild(piece(j, text.slice(start, end) || tok));
    cursor = end;
  });
}
