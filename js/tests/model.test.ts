import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CommandChannel } from "../src/core/commands";
import { DEBOUNCE_MS, ViewModel } from "../src/core/model";
import { USER_KEYS } from "../src/generated/contract";
import { FakeModel, f16Payload, f32Payload } from "./fakeModel";

const att = () => f16Payload([0.5, 0.5, 0.25, 0.75], [1, 2, 2]);

describe("model boundary", () => {
  it("reads traits typed, and decodes each array payload once", () => {
    const model = new FakeModel({ layer: 3, attention: att(), error: "" });
    const view = new ViewModel(model);
    const layer: number = view.get("layer"); // a number, no cast
    expect(layer).toBe(3);
    const a = view.get("attention");
    expect(a?.shape).toEqual([1, 2, 2]);
    expect(Array.from(a!.data)).toEqual([0.5, 0.5, 0.25, 0.75]);
    expect(view.get("attention")).toBe(a); // the same decoded object: decoded once
    model.update({ attention: att() });
    expect(view.get("attention")).not.toBe(a); // a new payload is decoded anew
    expect(view.slice(["layer", "attention"])).toEqual({ layer: 3, attention: view.get("attention") });
  });

  it.each([
    ["a float32 payload", f32Payload([1, 0, 0, 1], [1, 2, 2]), "dtype float32 is not float16"],
    ["the wrong rank", f16Payload([1, 0, 0, 1], [4]), "shape [4] is not [num_heads, n, n]"],
    ["a payload shorter than its shape", f16Payload([1, 0], [1, 2, 2]), "float16 payload has 4 bytes, shape needs 8"],
    ["not a payload", { dtype: "float16" }, "not an array payload ({view, dtype, shape})"],
  ])("refuses %s and says so in the error line", (_what, payload, message) => {
    const model = new FakeModel({ attention: payload, error: "layer 9 is out of range" });
    const view = new ViewModel(model);
    const heard: string[] = [];
    view.listen(["error"], () => heard.push(view.get("error")));
    expect(view.get("attention")).toBeNull();
    expect(view.get("error")).toBe(`layer 9 is out of range\nthe view cannot draw attention: ${message}`);
    expect(heard).toHaveLength(1);
    model.update({ attention: att() }); // a good payload clears the problem
    expect(view.get("attention")).not.toBeNull();
    expect(view.get("error")).toBe("layer 9 is out of range");
    expect(heard).toHaveLength(2);
  });

  it("only the user's traits can be written", () => {
    const view = new ViewModel(new FakeModel({}));
    // @ts-expect-error: tokens are computed by the kernel
    expect(() => view.commit({ tokens: ["x"] })).not.toThrow();
    expect(USER_KEYS).not.toContain("tokens");
  });
});

describe("an edit that changes nothing", () => {
  const refused = () =>
    new FakeModel({ sentence: "good", heads: [0, 2], error: "sentence: a lone surrogate", layer: 1 });

  it("asks the kernel to re-apply its values while a refusal is shown", () => {
    const model = refused();
    const view = new ViewModel(model, new CommandChannel(model));
    view.commit({ sentence: "good" }); // the box got the kernel's value back; Apply again
    expect(model.commands()).toEqual([{ name: "reapply", args: { names: ["sentence"] } }]);
    model.reply(0, { result: { error: "sentence: a lone surrogate" } }); // say, a newer refusal
    view.commit({ heads: [0, 2], layer: 1 }); // equal lists count as unchanged too
    expect(model.commands()[1]).toEqual({ name: "reapply", args: { names: ["heads", "layer"] } });
  });

  it("sends a changed value as state, and nothing more without a refusal shown", () => {
    const model = refused();
    const view = new ViewModel(model, new CommandChannel(model));
    view.commit({ sentence: "better" });
    expect(model.saved[model.saved.length - 1]).toEqual({ sentence: "better" });
    model.update({ error: "" });
    view.commit({ sentence: "better" });
    expect(model.commands()).toEqual([]);
  });
});

describe("debounced edits", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("sets at once in the view and sends once the edits rest", () => {
    const model = new FakeModel({ threshold: 0.7 });
    const view = new ViewModel(model);
    for (let i = 1; i <= 20; i++) {
      view.commitLater({ threshold: 0.7 - i / 100 });
      expect(view.get("threshold")).toBeCloseTo(0.7 - i / 100); // drawn at once
      vi.advanceTimersByTime(DEBOUNCE_MS / 2);
    }
    expect(model.saves).toBe(0);
    vi.advanceTimersByTime(DEBOUNCE_MS);
    expect(model.saved).toEqual([{ threshold: 0.7 - 20 / 100 }]);
  });

  it("sends a waiting edit with the next direct commit, or on flush", () => {
    const model = new FakeModel({});
    const view = new ViewModel(model);
    view.commitLater({ threshold: 0.4 });
    view.commit({ layer: 2 });
    expect(model.saved).toEqual([{ threshold: 0.4, layer: 2 }]);
    vi.advanceTimersByTime(DEBOUNCE_MS * 2);
    expect(model.saves).toBe(1); // the timer was cleared
    view.commitLater({ search_k: 9 });
    view.flush();
    expect(model.saved[1]).toEqual({ search_k: 9 });
  });
});
