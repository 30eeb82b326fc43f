// @vitest-environment jsdom
// The logit-lens panel alone: debounced requests on selection, the table, the
// no-LM-head line, stale replies dropped.
import { describe, expect, it } from "vitest";
import { CommandChannel } from "../src/core/commands";
import { ViewModel } from "../src/core/model";
import { LensPanel, shade } from "../src/panels/lens/panel";
import { FakeModel } from "./fakeModel";

const base = {
  selected: null as number | null,
  tokens: ["[CLS]", "a", "b", "[SEP]"],
  sentence: "a b",
  masked: [] as number[],
  has_lm_head: true,
  model_name: "tiny",
  kind: "bidirectional" as const,
};
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("logit lens panel", () => {
  it("asks once the selection rests and draws layer x rank", async () => {
    const model = new FakeModel({});
    const panel = new LensPanel(new ViewModel(model), new CommandChannel(model), 5);
    document.body.appendChild(panel.el);
    const q = (id: string) => document.querySelector(`[data-testid="${id}"]`) as HTMLElement;
    panel.update({ ...base, selected: 1 });
    await tick(20);
    expect(model.commands()).toEqual([]); // closed: nothing asked
    q("lens-toggle").click();
    panel.update(base);
    expect(q("lens-note").textContent).toContain("Select a token");
    panel.update({ ...base, selected: 1 });
    panel.update({ ...base, selected: 2 }); // a second click before the first rests
    await tick(20);
    expect(model.commands()).toEqual([{ name: "logit_lens", args: { position: 2 } }]);
    model.reply(0, {
      result: {
        sentence: "a b",
        position: 2,
        layers: [
          [
            ["x", 0.5],
            ["<y>", 0.25],
          ],
          [
            ["b", 0.9],
            ["&", 0.01],
          ],
        ],
      },
    });
    await tick(0);
    expect(q("lens-table").style.display).toBe("");
    expect(q("lens-cell-1-0").textContent).toBe("b90.0%");
    expect(q("lens-cell-0-1").querySelector(".exbert-lens-token")?.textContent).toBe("<y>");
    expect(q("lens-cell-0-0").style.getPropertyValue("--a")).toBe(shade(0.5).toFixed(3));
    panel.update({ ...base, selected: 2, layer: 3 } as typeof base); // no new request without a new token
    await tick(20);
    expect(model.commands().length).toBe(1);
    panel.el.remove();
  });

  it("says why there is no lens for a model without an LM head", async () => {
    const model = new FakeModel({});
    const panel = new LensPanel(new ViewModel(model), new CommandChannel(model), 5);
    panel.update({ ...base, has_lm_head: false, selected: 1, model_name: "MiniLM" });
    await tick(20);
    expect(model.commands()).toEqual([]);
    expect(panel.el.textContent).toContain("MiniLM has no language-model head");
    expect((panel.el.querySelector("[data-testid=lens-toggle]") as HTMLElement).style.display).toBe("none");
    expect((panel.el.querySelector("table") as HTMLElement).style.display).toBe("none");
  });
});
