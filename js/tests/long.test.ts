// @vitest-environment jsdom
// Long inputs (attention_mode "combined"): the kernel's lines and head summaries
// drawn as they come, a hovered head's lines asked for by command, head toggles
// debounced; and the parts of the view that read well at any length: the no-heads
// note, generated tokens, the Generate button, the demo head's label.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { NO_REPLY_MS } from "../src/core/commands";
import { DEBOUNCE_MS } from "../src/core/model";
import widget from "../src/index";
import { FakeModel, f16Payload, i32Payload, makeAttention, u16Payload } from "./fakeModel";

const TOKENS = ["<s>", "a", "b", "c", "d"];
const n = TOKENS.length;
const H = 3;
// Kernel lines, row by row: [column, level of 65535]; row 0 (hidden <s>) has none.
const ROWS = [0, 0, 1, 3, 5, 8];
const LINES = [1, 65535, 2, 40000, 1, 20000, 3, 30000, 2, 30000, 4, 50000, 1, 10000, 2, 5000];
const SUMMARY = Array.from({ length: 2 * n * H }, (_, k) => (k % 7) / 8);

function combinedState(over: Record<string, unknown> = {}) {
  return {
    sentence: "a b c d",
    layer: 1,
    heads: [0, 1, 2],
    head_weights: null,
    masked: [],
    hide_special: true,
    threshold: 0.7,
    selected: null,
    tokens: TOKENS,
    special: [true, false, false, false, false],
    generated: [false, false, false, false, false],
    kind: "autoregressive",
    num_layers: 2,
    num_heads: H,
    model_name: "tiny-llama",
    model_description: "",
    has_lm_head: true,
    truncated: false,
    error: "",
    top_k: TOKENS.map(() => [["x", 0.5]]),
    attention_mode: "combined",
    attention: null,
    lines: u16Payload(LINES, [LINES.length / 2, 2]),
    lines_rows: i32Payload(ROWS, [n + 1]),
    lines_scale: 0.8,
    head_summary: f16Payload(SUMMARY, [2, n, H]),
    has_corpus: false,
    search_k: 50,
    hit_list: [],
    hits_attention: null,
    summaries: {},
    report: {}, // no head report (the kernel's default)
    ...over,
  };
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tick = async () => {
  for (let i = 0; i < 4; i++) await wait(20);
};
let el: HTMLElement;
let cleanup: (() => void) | undefined;
const q = (id: string) => el.querySelector(`[data-testid="${id}"]`) as HTMLElement | null;
const hover = (id: string) => q(id)!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));

async function mount(over: Record<string, unknown> = {}) {
  const model = new FakeModel(combinedState(over));
  cleanup = widget.render({ model, el });
  await tick();
  return model;
}

beforeEach(() => {
  HTMLCanvasElement.prototype.getContext = (() => null) as typeof HTMLCanvasElement.prototype.getContext;
  el = document.createElement("div");
  document.body.appendChild(el);
});
afterEach(() => {
  cleanup?.();
  cleanup = undefined;
  el.remove();
});

describe("long inputs: what the kernel sends is what is drawn", () => {
  it("draws the kernel's lines, and the heads grids on canvases", async () => {
    await mount();
    const lines = q("attention-lines")!;
    expect(lines.getAttribute("data-edge-count")).toBe("8");
    expect(lines.getAttribute("data-mode")).toBe("all");
    expect(q("heads-canvas-left")).not.toBeNull();
    expect(q("heads-canvas-right")).not.toBeNull();
    expect(el.querySelector(".exbert-head-cell")).toBeNull(); // no DOM cells
    expect(q("head-toggle-2")!.textContent).toBe("2");
    hover("token-left-4");
    await tick();
    expect(lines.getAttribute("data-mode")).toBe("token-left-4");
    expect(lines.getAttribute("data-edge-count")).toBe("3"); // row 4's lines
    hover("token-right-2");
    await tick();
    expect(lines.getAttribute("data-edge-count")).toBe("3"); // 2 is attended to by rows 2, 3, 4
  });

  it("follows new lines from the kernel (a threshold or head change's round trip)", async () => {
    const model = await mount();
    const lines = q("attention-lines")!;
    const before = lines.getAttribute("data-signature");
    model.update({ threshold: 0.3 }); // the slider moved: the kernel answers with new lines
    await tick();
    expect(lines.getAttribute("data-edge-count")).toBe("8"); // until they come
    model.update({
      lines: u16Payload([1, 65535, 2, 100], [2, 2]),
      lines_rows: i32Payload([0, 0, 1, 2, 2, 2], [n + 1]),
    });
    await tick();
    expect(lines.getAttribute("data-edge-count")).toBe("2");
    expect(lines.getAttribute("data-signature")).not.toBe(before);
    model.update({ lines_rows: i32Payload([0, 0, 1], [3]) }); // rows that do not fit the tokens
    await tick();
    expect(lines.getAttribute("data-edge-count")).toBe("0");
  });

  it("asks the kernel for a hovered head's lines and keeps them for that cut only", async () => {
    const model = await mount();
    const lines = q("attention-lines")!;
    hover("head-toggle-2");
    await tick();
    expect(model.commands()).toEqual([{ name: "head_lines", args: { head: 2 } }]);
    expect(lines.getAttribute("data-mode")).toBe("loading-head-2");
    const result = (threshold: number) => ({
      head: 2,
      layer: 1,
      threshold,
      hide_special: true,
      lines: u16Payload([3, 65535], [1, 2]),
      rows: i32Payload([0, 0, 0, 1, 1, 1], [n + 1]),
      scale: 0.9,
    });
    model.reply(0, { result: result(0.7) });
    await tick();
    expect(lines.getAttribute("data-mode")).toBe("head-2");
    expect(lines.getAttribute("data-edge-count")).toBe("1");
    q("head-toggle-2")!.parentElement!.dispatchEvent(new MouseEvent("mouseleave"));
    await tick();
    expect(lines.getAttribute("data-mode")).toBe("all");
    hover("head-toggle-2"); // kept: no second request
    await tick();
    expect(lines.getAttribute("data-mode")).toBe("head-2");
    expect(model.commands()).toHaveLength(1);
    q("head-toggle-2")!.parentElement!.dispatchEvent(new MouseEvent("mouseleave"));
    model.update({ threshold: 0.5 }); // another cut: asked again; an answer for the old one is dropped
    await tick();
    hover("head-toggle-2");
    await tick();
    expect(model.commands()).toHaveLength(2);
    model.reply(1, { result: result(0.7) });
    await tick();
    expect(lines.getAttribute("data-mode")).toBe("loading-head-2");
  });

  it("sends quick head toggles to the kernel as one update", async () => {
    const model = await mount();
    vi.useFakeTimers();
    try {
      q("head-toggle-0")!.click();
      q("head-toggle-1")!.click();
      vi.advanceTimersByTime(40); // a frame or two
      expect(q("head-toggle-0")!.classList.contains("on")).toBe(false); // shown at once
      expect(model.saved).toEqual([]); // sent once the clicks rest
      vi.advanceTimersByTime(DEBOUNCE_MS);
      expect(model.saved).toEqual([{ heads: [2], head_weights: null }]);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("reads well at any length", () => {
  it("says so when no head is selected", async () => {
    const model = await mount({
      attention_mode: "all_heads",
      attention: f16Payload(makeAttention(H, n), [H, n, n]),
      lines: null,
      lines_rows: null,
      head_summary: null,
    });
    const note = q("no-heads-note")!;
    expect(note.style.display).toBe("none");
    q("heads-none")!.click();
    await tick();
    expect(note.style.display).toBe("");
    expect(note.textContent).toContain("No heads selected");
    expect(q("attention-lines")!.getAttribute("data-edge-count")).toBe("0");
    model.update({ heads: [], head_weights: [0, 0.5, 0] }); // weights count as a selection
    await tick();
    expect(note.style.display).toBe("none");
    model.update({ attention_mode: "combined", head_weights: null, lines_rows: i32Payload(ROWS, [n + 1]) });
    await tick();
    expect(note.style.display).toBe(""); // combined mode too
  });

  it("marks the tokens the model wrote, on both sides", async () => {
    const model = await mount();
    expect(el.querySelectorAll(".exbert-token.generated")).toHaveLength(0);
    model.update({ generated: [false, false, false, true, true] });
    await tick();
    for (const side of ["left", "right"]) {
      expect(q(`token-${side}-3`)!.classList.contains("generated")).toBe(true);
      expect(q(`token-${side}-2`)!.classList.contains("generated")).toBe(false);
    }
    hover("token-left-4");
    expect(q("tooltip")!.textContent).toContain("written by the model");
  });

  it("offers Generate to decoders only, and shows the kernel's refusal", async () => {
    const model = await mount();
    const button = q("generate") as HTMLButtonElement;
    expect(button.disabled).toBe(false);
    button.click();
    expect(model.commands()).toEqual([{ name: "generate", args: { max_new_tokens: 20 } }]);
    expect(button.disabled).toBe(true); // until the reply
    expect(q("generate-status")!.textContent).toBe("generating…");
    model.reply(0, { error: { type: "InputError", message: "The prompt has 130 tokens; <b>too long</b>" } });
    await tick();
    expect(q("generate-status")!.textContent).toBe("The prompt has 130 tokens; <b>too long</b>");
    expect(el.querySelector("b")).toBeNull();
    expect(button.disabled).toBe(false);
    (q("generate-tokens") as HTMLInputElement).value = "5";
    button.click();
    model.reply(1, { result: { sentence: "a b c d e", generated: 1 } });
    await tick();
    expect(model.commands()[1].args).toEqual({ max_new_tokens: 5 });
    expect(q("generate-status")!.style.display).toBe("none");
    model.update({ kind: "bidirectional" });
    await tick();
    expect(button.disabled).toBe(true);
    expect(button.title).toContain("Masked language models");
    model.update({ kind: "autoregressive", has_lm_head: false });
    await tick();
    expect(button.disabled).toBe(true);
    expect(button.title).toContain("without its language-model head");
  });

  it("a Generate given up for want of a reply ends its message when the text arrives after all", async () => {
    const model = await mount();
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      (q("generate") as HTMLButtonElement).click();
      vi.advanceTimersByTime(NO_REPLY_MS);
    } finally {
      vi.useRealTimers();
    }
    await tick();
    expect(q("generate-status")!.textContent).toContain("no reply from the kernel");
    model.update({ sentence: "a b c d e" }); // the kernel, busy with another cell, generated later
    await tick();
    expect(q("generate-status")!.style.display).toBe("none");
  });

  it("says on the model's label, and beside its predictions, that a head is a demo", async () => {
    const text = "all-MiniLM-L6-v2 + demo MLM head: a demo masked-LM head (held-out top-5 27%)";
    const model = await mount({ model_name: "all-MiniLM-L6-v2 + demo MLM head", model_description: text });
    expect(q("model-name")!.title).toBe(text);
    expect(q("model-name")!.textContent).toContain("demo MLM head");
    hover("token-left-2");
    expect(q("tooltip")!.textContent).toContain("held-out top-5 27%");
    model.update({ model_description: "" });
    await tick();
    expect(q("model-name")!.title).toBe("");
  });
});

describe("the bundle", () => {
  it("exports only its default widget object", async () => {
    const mod = await import("../src/index");
    expect(Object.keys(mod)).toEqual(["default"]);
    expect(typeof mod.default.render).toBe("function");
  });
});
