// The control bar: sentence box, layer selector, head buttons, threshold,
// hide-special; plus the truncation note and the error line (the kernel's last
// refusal and anything the view itself could not read).

import { h, show } from "../../core/dom";
import type { Slice, ViewModel } from "../../core/model";
import { type Panel, range } from "../../core/panel";

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
  private lastSentence: string | null = null;
  private numLayers = -1;

  constructor(private model: ViewModel) {
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
    this.modelLabel = h("span", { cls: "exbert-model-name" });

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

    const row1 = h("div", { cls: "exbert-row" }, [this.input, apply, this.modelLabel]);
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
    }
    this.modelLabel.textContent = s.model_name;
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
