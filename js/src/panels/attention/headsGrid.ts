// Heads grid beside a token column: one row per visible token, one cell per
// head, shaded by that head's attention from (left) or to (right) the token.
// Clicking a cell or a header toggles the head; hovering a cell shows that
// head's lines alone. Events are delegated (n * H cells, few listeners).

import type { Layout } from "./layout";
import type { Side } from "./tokens";

export interface HeadHandlers {
  hoverHead(h: number | null): void;
  toggleHead(h: number): void;
}

export class HeadsGrid {
  readonly el: HTMLDivElement; // body, inside the scrolling area
  readonly header: HTMLDivElement; // head toggles, above the scrolling area
  private cells: HTMLDivElement[] = [];
  private toggles: HTMLButtonElement[] = [];
  private numHeads = 0;
  private n = 0;

  constructor(
    readonly side: Side,
    handlers: HeadHandlers,
    private withTestIds: boolean,
  ) {
    this.el = document.createElement("div");
    this.el.className = `exbert-heads exbert-heads-${side}`;
    this.header = document.createElement("div");
    this.header.className = `exbert-heads-header exbert-heads-header-${side}`;

    const headOf = (ev: Event): number | null => {
      const t = (ev.target as HTMLElement | null)?.closest?.("[data-head]") as HTMLElement | null;
      return t ? Number(t.getAttribute("data-head")) : null;
    };
    this.el.addEventListener("mouseover", (ev) => {
      const h = headOf(ev);
      if (h !== null) handlers.hoverHead(h);
    });
    this.el.addEventListener("mouseleave", () => handlers.hoverHead(null));
    this.el.addEventListener("click", (ev) => {
      const h = headOf(ev);
      if (h !== null) handlers.toggleHead(h);
    });
    this.header.addEventListener("click", (ev) => {
      const h = headOf(ev);
      if (h !== null) handlers.toggleHead(h);
    });
    this.header.addEventListener("mouseover", (ev) => {
      const h = headOf(ev);
      if (h !== null) handlers.hoverHead(h);
    });
    this.header.addEventListener("mouseleave", () => handlers.hoverHead(null));
  }

  render(numHeads: number, layout: Layout): void {
    this.numHeads = numHeads;
    this.n = layout.n;
    this.el.style.setProperty("--exbert-heads", String(numHeads));
    this.header.style.setProperty("--exbert-heads", String(numHeads));

    this.header.replaceChildren();
    this.toggles = [];
    for (let h = 0; h < numHeads; h++) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "exbert-head-toggle";
      b.setAttribute("data-head", String(h));
      if (this.withTestIds) b.setAttribute("data-testid", `head-toggle-${h}`);
      b.title = `head ${h}: click to toggle`;
      b.textContent = String(h); // 0-based, as in the `heads` trait
      this.toggles.push(b);
      this.header.appendChild(b);
    }

    this.el.replaceChildren();
    this.el.style.height = `${layout.height}px`;
    this.cells = new Array(layout.n * numHeads);
    const frag = document.createDocumentFragment();
    for (const i of layout.order) {
      const row = document.createElement("div");
      row.className = "exbert-heads-row";
      for (let h = 0; h < numHeads; h++) {
        const c = document.createElement("div");
        c.className = "exbert-head-cell";
        c.setAttribute("data-head", String(h));
        c.setAttribute("data-testid", `head-cell-${this.side}-${i}-${h}`);
        this.cells[i * numHeads + h] = c;
        row.appendChild(c);
      }
      frag.appendChild(row);
    }
    this.el.appendChild(frag);
  }

  /** values[i*H + h]; shading is relative to the grid's maximum so small means still show. */
  setValues(values: Float32Array | null): void {
    const H = this.numHeads;
    let max = 0;
    if (values) for (let k = 0; k < values.length; k++) if (values[k] > max) max = values[k];
    const inv = max > 0 ? 1 / max : 0;
    for (let k = 0; k < this.n * H; k++) {
      const c = this.cells[k];
      if (!c) continue;
      const v = values && k < values.length ? values[k] : 0;
      c.style.setProperty("--a", (v * inv).toFixed(3));
      c.setAttribute("data-value", v.toFixed(4));
    }
  }

  /** weight[h] > 0 means the head contributes to the drawn lines. */
  setActive(active: readonly boolean[], hoveredHead: number | null): void {
    const H = this.numHeads;
    this.toggles.forEach((b, h) => {
      b.classList.toggle("on", !!active[h]);
      b.classList.toggle("hovered", hoveredHead === h);
      b.setAttribute("aria-pressed", active[h] ? "true" : "false");
    });
    for (let k = 0; k < this.cells.length; k++) {
      const c = this.cells[k];
      if (!c) continue;
      const h = k % H;
      c.classList.toggle("off", !active[h]);
      c.classList.toggle("hovered", hoveredHead === h);
    }
  }
}
