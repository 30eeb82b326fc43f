// @vitest-environment jsdom
// The model view alone: the grid's pixels against the thumbnails' levels, hit
// regions, the on-demand command, and a click writing layer and heads.
import { describe, expect, it } from "vitest";
import { CommandChannel } from "../src/core/commands";
import { ViewModel } from "../src/core/model";
import { cellAt, cellOrigin, gridGeometry, paintAtlas } from "../src/panels/modelView/grid";
import { ModelViewPanel } from "../src/panels/modelView/panel";
import { FakeModel } from "./fakeModel";

function u8Payload(values: number[], shape: number[]) {
  return { view: new DataView(Uint8Array.from(values).buffer), dtype: "uint8", shape };
}

describe("model view grid", () => {
  it("sizes thumbnails by the number of heads", () => {
    expect(gridGeometry(12, 12, 64).cell).toBe(64);
    const big = gridGeometry(32, 32, 64);
    expect(big.cell).toBeGreaterThanOrEqual(16);
    expect(big.width).toBeLessThanOrEqual(900);
  });

  it("finds the thumbnail under a point, none in the gaps", () => {
    const g = gridGeometry(3, 4, 2);
    const { x, y } = cellOrigin(g, 2, 3);
    expect(cellAt(g, x + 1, y + 1)).toEqual({ layer: 2, head: 3 });
    expect(cellAt(g, x - 1, y + 1)).toBeNull(); // the gap before head 3
    expect(cellAt(g, g.width + 5, 0)).toBeNull();
  });

  it("paints each cell's level as opacity over the background, thumbnails side by side", () => {
    const g = { layers: 1, heads: 2, size: 2, cell: 4, gap: 2, width: 10, height: 4 };
    // head 0: [[255, 0], [0, 51]]; head 1: [[0, 0], [0, 255]]
    const levels = [255, 0, 0, 51, 0, 0, 0, 255];
    const px = paintAtlas(g, levels, [0, 0, 200], [255, 255, 255]);
    const at = (x: number, y: number) => Array.from(px.slice((y * 4 + x) * 4, (y * 4 + x) * 4 + 4));
    expect(px.length).toBe(4 * 2 * 4);
    expect(at(0, 0)).toEqual([0, 0, 200, 255]); // level 255: the colour itself
    expect(at(1, 0)).toEqual([255, 255, 255, 255]); // level 0: background
    expect(at(1, 1)).toEqual([204, 204, 244, 255]); // level 51 = 0.2
    expect(at(2, 0)).toEqual([255, 255, 255, 255]); // head 1
    expect(at(3, 1)).toEqual([0, 0, 200, 255]);
  });
});

describe("model view panel", () => {
  it("asks the kernel only when opened, and a click selects layer and head", async () => {
    const model = new FakeModel({ sentence: "a b", masked: [], hide_special: true, head_weights: null });
    const view = new ViewModel(model);
    const panel = new ModelViewPanel(view, new CommandChannel(model));
    document.body.appendChild(panel.el);
    const state = {
      sentence: "a b",
      masked: [],
      hide_special: true,
      tokens: ["[CLS]", "a", "b", "[SEP]"],
      layer: 0,
      heads: [0, 1],
      head_weights: null,
      num_layers: 2,
      num_heads: 3,
      part: "encoder" as const,
    };
    panel.update(state);
    expect(model.commands()).toEqual([]);
    const q = (id: string) => document.querySelector(`[data-testid="${id}"]`) as HTMLElement;
    q("model-view-toggle").click();
    expect(model.commands()).toEqual([{ name: "model_view", args: {} }]);
    expect(q("model-view-note").textContent).toContain("Computing 2 layers × 3 heads");
    const levels = Array.from({ length: 2 * 3 * 4 }, (_, i) => i * 10);
    model.reply(0, {
      result: { sentence: "a b", masked: [], hide_special: true, size: 2, thumbnails: u8Payload(levels, [2, 3, 2, 2]) },
    });
    await Promise.resolve();
    await Promise.resolve();
    expect(q("model-view").style.display).toBe("");
    expect(document.querySelectorAll(".exbert-model-cell").length).toBe(6);
    q("model-cell-1-2").dispatchEvent(new MouseEvent("click", { bubbles: true }));
    // jsdom has no layout: the click lands at (0, 0) of the overlay, i.e. cell 0-0
    expect(model.saved[model.saved.length - 1]).toEqual({ layer: 0, heads: [0], head_weights: null });
    panel.update({ ...state, hide_special: false });
    expect(model.commands().length).toBe(2); // a new setting: asked again
    panel.update({ ...state, hide_special: false, layer: 1 });
    expect(model.commands().length).toBe(2); // a layer change only redraws the marks
    model.reply(1, {
      result: {
        sentence: "a b",
        masked: [],
        hide_special: false,
        size: 2,
        thumbnails: u8Payload(levels, [2, 3, 2, 2]),
      },
    });
    await Promise.resolve();
    await Promise.resolve();
    panel.update({ ...state, hide_special: false, layer: 1, part: "cross" });
    expect(model.commands().length).toBe(3); // another part of an encoder-decoder model: asked again
    panel.el.remove();
  });
});
