// One column of tokens (left = attending from, right = attended to). Tokens are
// DOM elements (text via textContent); events are delegated to the column so a
// 512-token sentence has four listeners, not two thousand.

import type { Layout } from "./layout";

export type Side = "left" | "right";

export interface TokenHandlers {
  hover(side: Side, token: number | null, el: HTMLElement | null): void;
  click(side: Side, token: number, detail: number): void; // detail: the click count (2 in a double-click)
  dblclick(side: Side, token: number): void;
}

export interface TokenMarks {
  selected: number | null;
  masked: ReadonlySet<number>;
  special: readonly boolean[];
  autoregressive: boolean;
  hovered: number | null; // token whose lines are shown (either side)
  generated: readonly boolean[]; // tokens the model wrote (view.generate)
}

export class TokenColumn {
  readonly el: HTMLDivElement;
  private items: HTMLDivElement[] = []; // by token index; undefined when hidden

  constructor(
    readonly side: Side,
    handlers: TokenHandlers,
  ) {
    this.el = document.createElement("div");
    this.el.className = `exbert-tokens exbert-tokens-${side}`;
    const tokenOf = (ev: Event): [number, HTMLElement] | null => {
      const t = (ev.target as HTMLElement | null)?.closest?.("[data-index]") as HTMLElement | null;
      if (!t || !this.el.contains(t)) return null;
      return [Number(t.getAttribute("data-index")), t];
    };
    this.el.addEventListener("mouseover", (ev) => {
      const hit = tokenOf(ev);
      if (hit) handlers.hover(side, hit[0], hit[1]);
    });
    this.el.addEventListener("mouseleave", () => handlers.hover(side, null, null));
    this.el.addEventListener("click", (ev) => {
      const hit = tokenOf(ev);
      if (hit) handlers.click(side, hit[0], (ev as MouseEvent).detail);
    });
    this.el.addEventListener("dblclick", (ev) => {
      const hit = tokenOf(ev);
      if (hit) {
        ev.preventDefault();
        handlers.dblclick(side, hit[0]);
      }
    });
  }

  render(tokens: readonly string[], layout: Layout): void {
    this.el.replaceChildren();
    this.items = [];
    this.el.style.height = `${layout.height}px`;
    const frag = document.createDocumentFragment();
    for (const i of layout.order) {
      const d = document.createElement("div");
      d.className = "exbert-token";
      d.setAttribute("data-index", String(i));
      d.setAttribute("data-testid", `token-${this.side}-${i}`);
      d.textContent = tokens[i];
      d.title = tokens[i]; // attribute, not HTML: safe
      this.items[i] = d;
      frag.appendChild(d);
    }
    this.el.appendChild(frag);
  }

  mark(m: TokenMarks): void {
    const n = this.items.length;
    for (let i = 0; i < n; i++) {
      const d = this.items[i];
      if (!d) continue;
      const cl = d.classList;
      cl.toggle("selected", m.selected === i);
      cl.toggle("masked", m.masked.has(i));
      cl.toggle("special", !!m.special[i]);
      // Every token after the selected one is greyed; the next one is also marked "next".
      cl.toggle("greyed", m.autoregressive && m.selected !== null && i > m.selected);
      cl.toggle("next", m.autoregressive && m.selected !== null && i === m.selected + 1);
      cl.toggle("hovered", m.hovered === i);
      cl.toggle("generated", !!m.generated[i]);
    }
  }

  item(i: number): HTMLDivElement | undefined {
    return this.items[i];
  }
}
