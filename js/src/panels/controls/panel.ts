// The control bar: sentence box, generate (decoders), layer selector, head
// buttons, threshold, hide-special; plus the truncation note and the error line
// (the kernel's last refusal and anything the view itself could not read).

import { type CommandChannel, failureText, NoReply, Superseded } from "../../core/commands";
import { h, show } from "../../core/dom";
import type { Slice, ViewModel } from "../../core/model";
import { type Panel, range } from "../../core/panel";
import { DEFAULTS } from "../../generated/contract";

const KEYS = [
  "sentence",
  "layer",
  "threshold",
  "hide_special",
  "model_name",
  "num_layers",
  "num_heads",
  "truncated",
  "error",
  "kind",
  "has_lm_head",
  "model_description",
] as const;
type K = (typeof KEYS)[number];

export class ControlsPanel implements Panel<K> {
  readonly keys = KEYS;
  readonly el: HTMLDivElement;
  readonly messages: HTMLDivElement;
  private input: HTMLInputElement;
  private layerSelect: HTMLSelectElement;
  private slider: HTMLInputElement;
  private sliderValue: HTMLSpanElement;
  private hide: HTMLInputElement;
  private modelLabel: HTMLSpanElement;
  private truncatedNote: HTMLDivElement;
  private errorLine: HTMLDivElement;
  private generateButton: HTMLButtonElement;
  private generateCount: HTMLInputElement;
  private generateStatus: HTMLSpanElement;
  private generating = false;
  private generateGaveUp = false; // the last Generate was given up on for want of a reply
  private lastSentence: string | null = null;
  private numLayers = -1;

  constructor(
    private model: ViewModel,
    private commands: CommandChannel | null = null,
  ) {
    this.input = h("input", {
      cls: "exbert-sentence",
      testid: "sentence-input",
      attrs: {
        type: "text",
        placeholder: "Type a sentence and press Enter",
        spellcheck: "false",
        "aria-label": "sentence",
      },
    });
    this.input.addEventListener("keydown", (ev) => {
      ev.stopPropagation(); // typing must not trigger notebook shortcuts
      if (ev.key === "Enter") {
        ev.preventDefault();
        this.apply();
      }
    });
    this.input.addEventListener("keyup", (ev) => ev.stopPropagation());
    const apply = this.button("sentence-apply", "Apply", () => this.apply());
    this.modelLabel = h("span", { cls: "exbert-model-name", testid: "model-name" });
    this.generateButton = this.button("generate", "Generate", () => this.generate());
    this.generateCount = h("input", {
      cls: "exbert-k",
      testid: "generate-tokens",
      attrs: { type: "number", min: "1", max: "1000", step: "1", "aria-label": "new tokens" },
    });
    this.generateCount.value = String(DEFAULTS.max_new_tokens);
    this.generateStatus = h("span", { cls: "exbert-error", testid: "generate-status", attrs: { role: "status" } });

    this.layerSelect = h("select", { cls: "exbert-select", testid: "layer-select", attrs: { "aria-label": "layer" } });
    this.layerSelect.addEventListener("change", () => model.commit({ layer: Number(this.layerSelect.value) }));
    const all = this.button("heads-all", "all heads", () =>
      model.commit({ heads: range(model.get("num_heads")), head_weights: null }),
    );
    const none = this.button("heads-none", "no heads", () => model.commit({ heads: [], head_weights: null }));

    this.slider = h("input", {
      cls: "exbert-slider",
      testid: "threshold-slider",
      attrs: { type: "range", min: "0.01", max: "1", step: "0.01", "aria-label": "display top % of attention" },
    });
    this.sliderValue = h("span", { cls: "exbert-slider-value" });
    // Drawn at once, sent to the kernel once the slider rests.
    this.slider.addEventListener("input", () => model.commitLater({ threshold: Number(this.slider.value) }));
    this.hide = h("input", { testid: "hide-special", attrs: { type: "checkbox" } });
    this.hide.addEventListener("change", () => model.commit({ hide_special: this.hide.checked }));

    this.truncatedNote = h("div", {
      cls: "exbert-note",
      testid: "truncated-note",
      text: "Input was truncated to the model's maximum length",
    });
    this.errorLine = h("div", { cls: "exbert-error", testid: "error", attrs: { role: "alert" } });
    show(this.generateStatus, false);

    const generate = h("span", { cls: "exbert-field" }, [
      this.generateButton,
      this.generateCount,
      document.createTextNode(" tokens"),
    ]);
    const row1 = h("div", { cls: "exbert-row" }, [this.input, apply, generate, this.modelLabel, this.generateStatus]);
    const row2 = h("div", { cls: "exbert-row" }, [
      h("label", { cls: "exbert-field", text: "Layer " }, [this.layerSelect]),
      all,
      none,
      h("label", { cls: "exbert-field", text: "Display top " }, [
        this.slider,
        this.sliderValue,
        document.createTextNode(" of attention"),
      ]),
      h("label", { cls: "exbert-field" }, [this.hide, document.createTextNode(" Hide special tokens")]),
    ]);
    this.el = h("div", { cls: "exbert-controls" }, [row1, row2]);
    this.messages = h("div", { cls: "exbert-messages" }, [this.truncatedNote, this.errorLine]);
  }

  update(s: Slice<K>): void {
    if (s.sentence !== this.lastSentence) {
      this.input.value = s.sentence;
      this.lastSentence = s.sentence;
      if (this.generateGaveUp) {
        // the kernel, busy with another cell, generated after all: the no-reply message is over
        this.generateGaveUp = false;
        show(this.generateStatus, false);
      }
    }
    this.modelLabel.textContent = s.model_name;
    this.modelLabel.title = s.model_description;
    this.modelLabel.classList.toggle("described", !!s.model_description);
    this.syncGenerate(s);
    this.renderLayers(s.num_layers);
    this.layerSelect.value = String(s.layer);
    this.slider.value = String(s.threshold);
    this.sliderValue.textContent = `${Math.round(s.threshold * 100)}%`;
    this.hide.checked = s.hide_special;
    show(this.truncatedNote, s.truncated);
    this.errorLine.textContent = s.error;
    show(this.errorLine, !!s.error);
  }

  private apply(): void {
    this.model.commit({ sentence: this.input.value });
  }

  /** Generation is for decoders with their LM head; otherwise the button says why not. */
  private syncGenerate(s: Slice<K>): void {
    const reason =
      s.kind === "seq2seq"
        ? "Encoder–decoder models: leave the target empty (below) and the model generates it."
        : s.kind !== "autoregressive"
          ? "Masked language models fill in masked tokens; only decoders continue the text."
          : !s.has_lm_head
            ? "This model was loaded without its language-model head: it cannot predict tokens."
            : "";
    this.generateButton.disabled = !!reason || this.generating || !this.commands;
    this.generateButton.title = reason || "Append the model's greedy continuation to the sentence";
    this.generateCount.disabled = !!reason;
  }

  private generate(): void {
    const n = Number(this.generateCount.value);
    if (!this.commands) return;
    if (!(Number.isInteger(n) && n >= 1)) {
      // The box holds no count (empty, 0, negative, 2.5): say so rather than do nothing, or
      // round it in silence.
      this.generateStatus.className = "exbert-error";
      this.generateStatus.textContent = "Give the number of new tokens: a whole number, 1 or more.";
      show(this.generateStatus, true);
      return;
    }
    this.generating = true;
    this.generateGaveUp = false;
    this.generateButton.disabled = true;
    this.generateStatus.className = "exbert-busy";
    this.generateStatus.textContent = "generating…";
    show(this.generateStatus, true);
    this.commands
      .invoke("generate", { max_new_tokens: n })
      .then(() => show(this.generateStatus, false))
      .catch((e: unknown) => {
        if (e instanceof Superseded) return;
        this.generateGaveUp = e instanceof NoReply;
        this.generateStatus.className = "exbert-error";
        this.generateStatus.textContent = failureText(e);
      })
      .finally(() => {
        this.generating = false;
        this.generateButton.disabled = false;
        this.syncGenerate(this.model.slice(KEYS));
      });
  }

  private button(testid: string, text: string, onClick: () => void): HTMLButtonElement {
    const b = h("button", { cls: "exbert-btn", testid, text, attrs: { type: "button" } });
    b.addEventListener("click", onClick);
    return b;
  }

  private renderLayers(numLayers: number): void {
    if (numLayers === this.numLayers) return;
    this.numLayers = numLayers;
    this.layerSelect.replaceChildren();
    for (let l = 0; l < numLayers; l++) {
      // Labels are the 0-based indices of Python's `layer` trait (exBERT showed 1..L):
      // a label equal to another option's value would make the two ambiguous.
      this.layerSelect.appendChild(h("option", { text: String(l), attrs: { value: String(l) } }));
    }
  }
}
