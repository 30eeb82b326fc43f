// @vitest-environment jsdom
// Issue 12's panels alone: the measure bar, the second panel (Δ / compare
// model) and the head report heatmap, each on a FakeModel.
import { describe, expect, it } from "vitest";
import { CommandChannel } from "../src/core/commands";
import { ViewModel } from "../src/core/model";
import { ComparePanel } from "../src/panels/beyond/compare";
import { countSigns, lineSignature, points, readLines, rowsOf, shade } from "../src/panels/beyond/lines";
import { BeyondBar } from "../src/panels/beyond/panel";
import { HeadReportPanel } from "../src/panels/beyond/report";
import { FakeModel, f32Payload } from "./fakeModel";

const q = (id: string) => document.querySelector(`[data-testid="${id}"]`) as HTMLElement;

describe("second-panel logic", () => {
  it("reads [from, to, value] rows and counts signs", () => {
    const lines = readLines(new Float32Array([0, 1, 0.5, 1, 0, -0.25, 2, 2, 0]), [3, 3]);
    expect(lines).toEqual([
      { from: 0, to: 1, value: 0.5 },
      { from: 1, to: 0, value: -0.25 },
      { from: 2, to: 2, value: 0 },
    ]);
    expect(countSigns(lines)).toEqual({ more: 1, less: 1 });
    expect(readLines(new Float32Array(4), [2, 2])).toEqual([]);
    expect(lineSignature(lines)).not.toBe(lineSignature(lines.slice(1)));
  });
  it("numbers visible rows, formats points and shades", () => {
    expect(rowsOf(4, [false, true, true, false])).toEqual([-1, 0, 1, -1]);
    expect(points(0.0123)).toBe("+1.23 pt");
    expect(points(-0.5)).toBe("−50.0 pt");
    expect(shade(0.5, 1)).toBe(0.5);
    expect(shade(0, 0)).toBe(0.04);
  });
});

function compareModel(state: Record<string, unknown>) {
  return new FakeModel({
    tokens: ["[CLS]", "a", "b", "c", "[SEP]"],
    special: [true, false, false, false, true],
    hide_special: true,
    compare: "unmasked",
    compare_lines: f32Payload([1, 2, 0.3, 2, 1, -0.2, 3, 1, 0.1], [3, 3]),
    compare_note: "",
    compare_top_k: [[], [["x", 0.5, 0.25]], [], [], []],
    compare_model_name: "",
    model_name: "tiny",
    layer: 1,
    selected: 2,
    ...state,
  });
}

describe("compare panel", () => {
  it("draws Δ lines in two classes with a legend, and the probabilities on hover", () => {
    const model = compareModel({});
    const view = new ViewModel(model);
    const root = document.createElement("div");
    document.body.appendChild(root);
    const panel = new ComparePanel(view, root);
    root.appendChild(panel.el);
    panel.update(view.slice(panel.keys));
    const svg = q("compare-lines");
    expect(svg.getAttribute("data-more-count")).toBe("2");
    expect(svg.getAttribute("data-less-count")).toBe("1");
    expect(svg.querySelectorAll("path.exbert-more").length).toBe(2);
    expect(svg.querySelectorAll("path.exbert-less").length).toBe(1);
    expect(q("compare-legend").style.display).toBe("");
    expect(q("compare-token-left-0")).toBeNull(); // a hidden special token
    expect(q("compare-token-right-2").classList.contains("selected")).toBe(true);
    expect(q("compare-title").textContent).toContain("masked − unmasked");
    q("compare-token-left-1").dispatchEvent(new Event("mouseenter"));
    expect(svg.querySelectorAll("path:not(.exbert-dim)").length).toBe(1); // the lines from "a"
    expect(q("compare-tooltip").textContent).toContain("50.0%");
    expect(q("compare-tooltip").textContent).toContain("+25.0 pt");
    q("compare-token-left-1").dispatchEvent(new Event("mouseleave"));
    expect(svg.querySelectorAll("path.exbert-dim").length).toBe(0);
    model.update({ compare: "side", compare_model_name: "other" });
    panel.update(view.slice(panel.keys));
    expect(svg.querySelectorAll("path.exbert-same").length).toBe(3);
    expect(q("compare-legend").style.display).toBe("none");
    model.update({ compare: "" });
    panel.update(view.slice(panel.keys));
    expect(panel.el.style.display).toBe("none");
    root.remove();
  });
});

describe("measure bar", () => {
  it("commits the measure and the compare mode, offering compare-model modes only with one", () => {
    const model = new FakeModel({ measure: "attention", compare: "", compare_model_name: "", kind: "bidirectional" });
    const view = new ViewModel(model);
    const bar = new BeyondBar(view);
    document.body.appendChild(bar.el);
    bar.update(view.slice(bar.keys));
    const select = q("compare-select") as HTMLSelectElement;
    expect(Array.from(select.options).map((o) => o.value)).toEqual(["", "unmasked"]);
    const measure = q("measure-select") as HTMLSelectElement;
    measure.value = "rollout";
    measure.dispatchEvent(new Event("change"));
    expect(model.saved).toEqual([{ measure: "rollout" }]);
    model.update({ compare_model_name: "other" });
    bar.update(view.slice(bar.keys));
    expect(Array.from(select.options).map((o) => o.value)).toEqual(["", "unmasked", "side", "model"]);
    bar.el.remove();
  });
});

describe("head report panel", () => {
  const report = {
    num_layers: 2,
    num_heads: 3,
    relations: [
      { relation: "nsubj", count: 120, few: false },
      { relation: "amod", count: 40, few: true },
    ],
    directions: ["dependent→head", "head→dependent"],
    accuracy: {
      nsubj: { "dependent→head": [0.1, 0.2, 0.8, 0.3, 0.4, 0.5], "head→dependent": [0, 0, 0, 0, 0, 1] },
      amod: { "dependent→head": [0.9, 0, 0, 0, 0, 0], "head→dependent": [0, 0, 0, 0, 0, 0] },
    },
    baseline: { nsubj: { "dependent→head": [1, 0.45], "head→dependent": [-1, 0.3] }, amod: {} },
  };

  it("shades layers × heads for the chosen relation, and a click selects that layer and head", () => {
    const model = new FakeModel({ report, has_corpus: true, layer: 0, heads: [0, 1, 2], head_weights: null });
    const view = new ViewModel(model);
    const panel = new HeadReportPanel(view);
    document.body.append(panel.button, panel.el);
    panel.update(view.slice(panel.keys));
    expect(panel.el.style.display).toBe("");
    expect(q("report-cell-0-2").getAttribute("data-value")).toBe("0.8000");
    expect(q("report-cell-0-2").style.backgroundColor).toContain("1");
    expect(q("report-baseline").textContent).toContain("offset +1");
    expect(q("report-cell-1-1").classList.contains("above-baseline")).toBe(false);
    q("report-cell-1-2").click();
    expect(model.saved).toEqual([{ layer: 1, heads: [2], head_weights: null }]);
    panel.update(view.slice(panel.keys));
    expect(q("report-cell-1-2").classList.contains("selected")).toBe(true);
    const relation = q("report-relation") as HTMLSelectElement;
    relation.value = "amod";
    relation.dispatchEvent(new Event("change"));
    expect(q("report-cell-0-0").getAttribute("data-value")).toBe("0.9000");
    panel.button.remove();
    panel.el.remove();
  });

  it("asks the kernel for the report and shows its error", async () => {
    const model = new FakeModel({ report: {}, has_corpus: true, layer: 0, heads: [], head_weights: null });
    const view = new ViewModel(model);
    const panel = new HeadReportPanel(view, new CommandChannel(model));
    document.body.append(panel.button, panel.status, panel.el);
    panel.update(view.slice(panel.keys));
    expect(panel.el.style.display).toBe("none");
    panel.button.click();
    expect(model.commands()).toEqual([{ name: "head_report", args: { refresh: false } }]);
    expect(panel.status.textContent).toContain("computing");
    model.reply(0, { error: { type: "InputError", message: "no corpus" } });
    await new Promise((r) => setTimeout(r, 0));
    expect(panel.status.textContent).toBe("no corpus");
    panel.button.remove();
    panel.status.remove();
    panel.el.remove();
  });

  it("a report given up for want of a reply ends its message when the report arrives after all", async () => {
    const model = new FakeModel({ report: {}, has_corpus: true, layer: 0, heads: [], head_weights: null });
    const view = new ViewModel(model);
    const panel = new HeadReportPanel(view, new CommandChannel(model, 5));
    document.body.append(panel.button, panel.status, panel.el);
    panel.update(view.slice(panel.keys));
    panel.button.click();
    await new Promise((r) => setTimeout(r, 20)); // no reply, no heartbeat
    expect(panel.status.textContent).toContain("no reply from the kernel");
    expect(panel.status.style.display).toBe("");
    model.update({ report }); // the kernel, busy with another cell, computed it later
    panel.update(view.slice(panel.keys));
    expect(panel.status.style.display).toBe("none");
    expect(q("report-cell-0-2").getAttribute("data-value")).toBe("0.8000");
    panel.button.remove();
    panel.status.remove();
    panel.el.remove();
  });
});
