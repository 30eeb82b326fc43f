// The logit-lens panel: for the selected token, what each layer would predict
// there (its hidden state through the model's own final norm and LM head), as
// a layer x rank table with probabilities shaded. Shown on demand (the "Logit
// lens" toggle: each selection costs the kernel one extra forward pass); while
// open, the kernel computes it (a `logit_lens` command) once the selection
// rests, not on every layer change. Models without an LM head get a one-line
// reason instead of the toggle.

import { type CommandChannel, CommandError, Superseded } from "../../core/commands";
import { h, percent, show } from "../../core/dom";
import { DEBOUNCE_MS, type Slice, type ViewModel } from "../../core/model";
import type { Panel } from "../../core/panel";
import type { LogitLensResult } from "../../generated/contract";

const KEYS = ["selected", "tokens", "sentence", "masked", "has_lm_head", "model_name", "kind"] as const;
type K = (typeof KEYS)[number];

/** Shading of a probability: its square root, so 1% is still visible next to 90%. */
export function shade(prob: number): number {
  return Math.sqrt(Math.max(0, Math.min(1, prob)));
}

export class LensPanel implements Panel<K> {
  readonly keys = KEYS;
  readonly el: HTMLElement;
  private toggle: HTMLButtonElement;
  private note: HTMLDivElement;
  private table: HTMLTableElement;
  private open = false;
  private state: Slice<K> | null = null;
  private requested = "";
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    _model: ViewModel,
    private commands: CommandChannel,
    private delay = DEBOUNCE_MS,
  ) {
    this.note = h("div", { cls: "exbert-lens-note", testid: "lens-note" });
    this.table = h("table", { cls: "exbert-lens-table", testid: "lens-table" });
    show(this.table, false);
    this.toggle = h("button", {
      cls: "exbert-btn",
      testid: "lens-toggle",
      text: "Logit lens",
      attrs: { type: "button", "aria-pressed": "false" },
    });
    this.toggle.addEventListener("click", () => this.setOpen(!this.open));
    this.el = h("div", { cls: "exbert-lens", testid: "logit-lens" }, [this.toggle, this.note, this.table]);
    show(this.note, false);
  }

  private setOpen(open: boolean): void {
    this.open = open;
    this.toggle.setAttribute("aria-pressed", String(open));
    this.toggle.classList.toggle("on", open);
    this.requested = "";
    if (this.state) this.update(this.state);
  }

  update(state: Slice<K>): void {
    this.state = state;
    show(this.toggle, state.has_lm_head);
    if (!state.has_lm_head) {
      this.clear(`Logit lens: ${state.model_name || "this model"} has no language-model head.`);
      show(this.note, true);
      return;
    }
    show(this.note, this.open);
    if (!this.open) {
      this.clear("");
      return;
    }
    if (state.selected === null || state.selected >= state.tokens.length) {
      this.clear("Select a token to see what each layer would predict there.");
      return;
    }
    const key = this.key(state);
    if (key === this.requested) return;
    this.requested = key;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.request(), this.delay);
  }

  dispose(): void {
    if (this.timer !== null) clearTimeout(this.timer);
  }

  private key(s: Slice<K>): string {
    return JSON.stringify([s.sentence, s.masked, s.selected, s.tokens]);
  }

  private clear(text: string): void {
    this.requested = "";
    if (this.timer !== null) clearTimeout(this.timer);
    this.note.textContent = text;
    this.note.classList.remove("exbert-error");
    show(this.table, false);
  }

  private request(): void {
    this.timer = null;
    const s = this.state;
    if (!s || s.selected === null) return;
    const position = s.selected;
    this.note.setAttribute("data-busy", "true");
    this.commands.invoke("logit_lens", { position }).then(
      (result) => this.receive(result),
      (e: unknown) => {
        if (e instanceof Superseded) return;
        this.note.removeAttribute("data-busy");
        this.note.classList.add("exbert-error");
        this.note.textContent = e instanceof CommandError ? e.message : String(e);
        this.requested = "";
      },
    );
  }

  private receive(result: LogitLensResult): void {
    const s = this.state;
    if (!s || s.selected !== result.position || s.sentence !== result.sentence) return; // stale
    this.note.removeAttribute("data-busy");
    this.note.classList.remove("exbert-error");
    const token = s.tokens[result.position] ?? "";
    const what = s.kind === "autoregressive" ? "the next token after" : "the token at";
    this.note.textContent = `What each layer would predict as ${what} “${token}” (layer 0: the embeddings).`;
    this.render(result.layers);
  }

  private render(layers: LogitLensResult["layers"]): void {
    const k = Math.max(0, ...layers.map((row) => row.length));
    const head = h("tr", {}, [
      h("th", { text: "layer" }),
      ...Array.from({ length: k }, (_, r) => h("th", { text: `#${r + 1}` })),
    ]);
    const rows = layers.map((row, layer) =>
      h("tr", {}, [
        h("th", { text: String(layer) }),
        ...row.map(([tok, prob], rank) => {
          const cell = h("td", {
            cls: "exbert-lens-cell",
            testid: `lens-cell-${layer}-${rank}`,
            attrs: { title: `${tok}: ${percent(prob)}`, "data-prob": String(prob) },
          });
          cell.append(
            h("span", { cls: "exbert-lens-token", text: tok }),
            h("span", { cls: "exbert-lens-prob", text: percent(prob) }),
          );
          cell.style.setProperty("--a", shade(prob).toFixed(3));
          return cell;
        }),
      ]),
    );
    this.table.replaceChildren(h("thead", {}, [head]), h("tbody", {}, rows));
    this.table.setAttribute("data-layers", String(layers.length));
    show(this.table, true);
  }
}
