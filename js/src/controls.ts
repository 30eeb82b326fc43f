// The control bar: sentence box, layer selector, head buttons, threshold,
// hide-special; plus the truncation note and the error line.

import { h, show } from "./dom";

export interface ControlHandlers {
  apply(sentence: string): void;
  layer(layer: number): void;
  allHeads(): void;
  noHeads(): void;
  threshold(t: number): void;
  hideSpecial(on: boolean): void;
}

export interface ControlState {
  sentence: string;
  modelName: string;
  numLayers: number;
  layer: number;
  threshold: number;
  hideSpecial: boolean;
  truncated: boolean;
  error: string;
}

export class Controls {
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

  constructor(handlers: ControlHandlers) {
    this.input = h("input", {
      cls: "exbert-sentence",
      testid: "sentence-input",
      attrs: { type: "text", placeholder: "Type a sentence and press Enter", spellcheck: "false", "aria-label": "sentence" },
    });
    this.input.addEventListener("keydown", (ev) => {
      ev.stopPropagation(); // typing must not trigger notebook shortcuts
      if (ev.key === "Enter") {
        ev.preventDefault();
        handlers.apply(this.input.value);
      }
    });
    // Keep keystrokes out of Jupyter's command-mode shortcuts.
    this.input.addEventListener("keyup", (ev) => ev.stopPropagation());
    const apply = h("button", { cls: "exbert-btn", testid: "sentence-apply", text: "Apply", attrs: { type: "button" } });
    apply.addEventListener("click", () => handlers.apply(this.input.value));

    this.modelLabel = h("span", { cls: "exbert-model-name" });

    this.layerSelect = h("select", { cls: "exbert-select", testid: "layer-select", attrs: { "aria-label": "layer" } });
    this.layerSelect.addEventListener("change", () => handlers.layer(Number(this.layerSelect.value)));

    const all = h("button", { cls: "exbert-btn", testid: "heads-all", text: "all heads", attrs: { type: "button" } });
    all.addEventListener("click", () => handlers.allHeads());
    const none = h("button", { cls: "exbert-btn", testid: "heads-none", text: "no heads", attrs: { type: "button" } });
    none.addEventListener("click", () => handlers.noHeads());

    this.slider = h("input", {
      cls: "exbert-slider",
      testid: "threshold-slider",
      attrs: { type: "range", min: "0.01", max: "1", step: "0.01", "aria-label": "display top % of attention" },
    });
    this.sliderValue = h("span", { cls: "exbert-slider-value" });
    this.slider.addEventListener("input", () => {
      const t = Number(this.slider.value);
      this.sliderValue.textContent = `${Math.round(t * 100)}%`;
      handlers.threshold(t);
    });

    this.hide = h("input", { testid: "hide-special", attrs: { type: "checkbox" } });
    this.hide.addEventListener("change", () => handlers.hideSpecial(this.hide.checked));

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
      h("label", { cls: "exbert-field", text: "Display top " }, [this.slider, this.sliderValue, document.createTextNode(" of attention")]),
      h("label", { cls: "exbert-field" }, [this.hide, document.createTextNode(" Hide special tokens")]),
    ]);
    this.el = h("div", { cls: "exbert-controls" }, [row1, row2]);
    this.messages = h("div", { cls: "exbert-messages" }, [this.truncatedNote, this.errorLine]);
  }

  update(s: ControlState): void {
    if (s.sentence !== this.lastSentence) {
      this.input.value = s.sentence;
      this.lastSentence = s.sentence;
    }
    this.modelLabel.textContent = s.modelName;
    if (s.numLayers !== this.numLayers) {
      this.numLayers = s.numLayers;
      this.layerSelect.replaceChildren();
      for (let l = 0; l < s.numLayers; l++) {
        // Labels are the 0-based indices of Python's `layer` trait (exBERT showed 1..L):
        // a label equal to another option's value would make the two ambiguous.
        this.layerSelect.appendChild(h("option", { text: String(l), attrs: { value: String(l) } }));
      }
    }
    this.layerSelect.value = String(s.layer);
    this.slider.value = String(s.threshold);
    this.sliderValue.textContent = `${Math.round(s.threshold * 100)}%`;
    this.hide.checked = s.hideSpecial;
    show(this.truncatedNote, s.truncated);
    this.errorLine.textContent = s.error;
    show(this.errorLine, !!s.error);
  }
}
