// A single reusable tooltip positioned inside the widget root. Content is
// built from text nodes only.

export interface TooltipRow {
  label: string;
  value: string;
}

export class Tooltip {
  readonly el: HTMLDivElement;

  constructor(
    private root: HTMLElement,
    testid: string,
    cls = "exbert-tooltip",
  ) {
    this.el = document.createElement("div");
    this.el.className = cls;
    this.el.setAttribute("data-testid", testid);
    this.el.setAttribute("role", "tooltip");
    this.el.style.display = "none";
    root.appendChild(this.el);
  }

  show(anchor: HTMLElement, title: string, rows: TooltipRow[], note?: string): void {
    this.el.replaceChildren();
    const t = document.createElement("div");
    t.className = "exbert-tooltip-title";
    t.textContent = title;
    this.el.appendChild(t);
    if (rows.length) {
      const table = document.createElement("table");
      for (const r of rows) {
        const tr = document.createElement("tr");
        const a = document.createElement("td");
        a.className = "exbert-tooltip-label";
        a.textContent = r.label;
        const b = document.createElement("td");
        b.className = "exbert-tooltip-value";
        b.textContent = r.value;
        tr.append(a, b);
        table.appendChild(tr);
      }
      this.el.appendChild(table);
    }
    if (note) {
      const p = document.createElement("div");
      p.className = "exbert-tooltip-note";
      p.textContent = note;
      this.el.appendChild(p);
    }
    this.el.style.display = "block";
    this.place(anchor);
  }

  hide(): void {
    this.el.style.display = "none";
  }

  private place(anchor: HTMLElement): void {
    const r = anchor.getBoundingClientRect();
    const base = this.root.getBoundingClientRect();
    let left = r.right - base.left + 8;
    let top = r.top - base.top;
    // Flip to the left of the anchor when it would overflow the root; move it up when it would
    // run past the root's bottom (a notebook's output area clips what overflows it).
    const w = this.el.offsetWidth || 160;
    if (base.width > 0 && left + w > base.width) left = Math.max(0, r.left - base.left - w - 8);
    const h = this.el.offsetHeight;
    if (base.height > 0 && h > 0 && top + h > base.height) top = Math.max(0, base.height - h);
    this.el.style.left = `${left}px`;
    this.el.style.top = `${top}px`;
  }
}
