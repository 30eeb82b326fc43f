// @vitest-environment jsdom
// Each panel alone: built on a model, updated with its own slice of the state.
import { describe, expect, it } from "vitest";
import { ViewModel } from "../src/core/model";
import { AttentionPanel } from "../src/panels/attention/panel";
import { ControlsPanel } from "../src/panels/controls/panel";
import { FakeModel, f16Payload } from "./fakeModel";

function mountControls(state: Record<string, unknown>) {
  const model = new FakeModel({
    sentence: "a b",
    layer: 1,
    threshold: 0.5,
    hide_special: true,
    model_name: "tiny",
    num_layers: 3,
    num_heads: 2,
    truncated: false,
    error: "",
    ...state,
  });
  const view = new ViewModel(model);
  const panel = new ControlsPanel(view);
  document.body.append(panel.el, panel.messages);
  const q = (id: string) => document.querySelector(`[data-testid="${id}"]`) as HTMLElement;
  return { model, view, panel, q, update: () => panel.update(view.slice(panel.keys)) };
}

describe("controls panel", () => {
  it("draws its slice and writes only user traits", () => {
    const { model, panel, q, update } = mountControls({});
    expect(panel.keys).toContain("error");
    update();
    const select = q("layer-select") as HTMLSelectElement;
    expect(Array.from(select.options).map((o) => o.value)).toEqual(["0", "1", "2"]);
    expect(select.value).toBe("1");
    expect((q("threshold-slider") as HTMLInputElement).value).toBe("0.5");
    q("heads-all").click();
    expect(model.saved).toEqual([{ heads: [0, 1], head_weights: null }]);
    model.update({ error: "layer 9 is out of range" });
    update();
    expect(q("error").textContent).toBe("layer 9 is out of range");
    expect(q("error").style.display).toBe("");
    panel.el.remove();
    panel.messages.remove();
  });
});

describe("attention panel", () => {
  it("draws tokens and lines from its slice alone", () => {
    const model = new FakeModel({});
    const root = document.createElement("div");
    document.body.appendChild(root);
    const panel = new AttentionPanel(new ViewModel(model), root);
    root.appendChild(panel.el);
    const att = new ViewModel(new FakeModel({ attention: f16Payload([0.75, 0.25, 0.5, 0.5], [1, 2, 2]) }));
    panel.update({
      tokens: ["x", "y"],
      special: [false, false],
      hide_special: true,
      attention: att.get("attention"),
      layer: 0,
      heads: [0],
      head_weights: null,
      threshold: 1,
      masked: [],
      selected: null,
      kind: "bidirectional",
      top_k: [],
      has_lm_head: false,
      num_heads: 1,
      generated: [false, false],
      attention_mode: "all_heads",
      lines: null,
      lines_rows: null,
      lines_scale: 0,
      head_summary: null,
      model_description: "",
      segments: [0, 0],
      pair_filter: "all",
      row_span: [],
      column_span: [],
    });
    const q = (id: string) => root.querySelector(`[data-testid="${id}"]`) as HTMLElement;
    expect(q("token-left-1").textContent).toBe("y");
    expect(q("head-cell-left-0-0").getAttribute("data-value")).toBe("0.7500");
    panel.dispose();
    root.remove();
  });
});
