// The bar of issue 12's tools: the measure the lines show, the second panel
// (Δ when masked, Δ against a compare model, or that model beside the first),
// and the head report button (its panel is ./report.ts).

import { h, show } from "../../core/dom";
import type { Slice, ViewModel } from "../../core/model";
import type { Panel } from "../../core/panel";

const KEYS = ["measure", "compare", "compare_model_name", "kind"] as const;
type K = (typeof KEYS)[number];

const MEASURES: ReadonlyArray<[string, string]> = [
  ["attention", "attention weights"],
  ["norm", "‖α·f(x)‖ norms"],
  ["rollout", "rollout"],
];

export class BeyondBar implements Panel<K> {
  readonly keys = KEYS;
  readonly el: HTMLDivElement;
  private measure: HTMLSelectElement;
  private compare: HTMLSelectElement;
  private compareKey = "";

  constructor(model: ViewModel, extras: HTMLElement[] = []) {
    this.measure = h("select", { cls: "exbert-select", testid: "measure-select", attrs: { "aria-label": "measure" } });
    for (const [value, label] of MEASURES) this.measure.appendChild(h("option", { text: label, attrs: { value } }));
    this.measure.addEventListener("change", () =>
      model.commit({ measure: this.measure.value as "attention" | "norm" | "rollout" }),
    );
    this.compare = h("select", { cls: "exbert-select", testid: "compare-select", attrs: { "aria-label": "compare" } });
    this.compare.addEventListener("change", () =>
      model.commit({ compare: this.compare.value as "" | "unmasked" | "model" | "side" }),
    );
    this.el = h("div", { cls: "exbert-row exbert-beyond", testid: "beyond-bar" }, [
      h("label", { text: "measure " }, [this.measure]),
      h("label", { text: "compare " }, [this.compare]),
      ...extras,
    ]);
  }

  update(s: Slice<K>): void {
    this.measure.value = s.measure;
    const options: Array<[string, string]> = [["", "off"]];
    if (s.kind !== "autoregressive") options.push(["unmasked", "Δ vs unmasked"]);
    if (s.compare_model_name) options.push(["side", `${s.compare_model_name} beside`], ["model", "Δ vs compare model"]);
    const key = JSON.stringify(options);
    if (key !== this.compareKey) {
      this.compareKey = key;
      this.compare.replaceChildren();
      for (const [value, label] of options) this.compare.appendChild(h("option", { text: label, attrs: { value } }));
    }
    this.compare.value = s.compare;
    show(this.compare.parentElement as HTMLElement, options.length > 1);
  }
}
