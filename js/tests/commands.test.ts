import { afterEach, describe, expect, it, vi } from "vitest";
import { CommandChannel, CommandError, NO_REPLY_MS, NoReply, Superseded } from "../src/core/commands";
import { FakeModel } from "./fakeModel";

const outcome = <T>(p: Promise<T>) =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (error: Error) => ({ ok: false as const, error }),
  );

describe("command channel", () => {
  it("sends one request with an id and resolves with the reply's result", async () => {
    const model = new FakeModel({});
    const channel = new CommandChannel(model);
    const reply = channel.invoke("search", { by: "embedding", k: 5 });
    expect(model.sent).toHaveLength(1);
    const msg = model.sent[0];
    expect(msg).toMatchObject({ kind: "exbert-command", name: "search", args: { by: "embedding", k: 5 } });
    expect(typeof msg.id).toBe("string");
    model.emitReply({ kind: "exbert-reply", id: "someone-else", ok: true, result: { count: 99 } }); // not ours
    model.reply(0, { result: { count: 5 } });
    await expect(reply).resolves.toEqual({ count: 5 });
  });

  it("rejects with the kernel's error type and message", async () => {
    const model = new FakeModel({});
    const channel = new CommandChannel(model);
    const reply = outcome(channel.invoke("load_hit", { index: 7 }));
    model.reply(0, { error: { type: "InputError", message: "hit index must be between 0 and 4, got 7." } });
    const r = await reply;
    expect(r.ok).toBe(false);
    expect(r.ok || r.error).toBeInstanceOf(CommandError);
    expect(r.ok || (r.error as CommandError).type).toBe("InputError");
    expect(r.ok || r.error.message).toBe("hit index must be between 0 and 4, got 7.");
  });

  it("keeps one request per command in flight; a newer one supersedes the rest", async () => {
    const model = new FakeModel({});
    const channel = new CommandChannel(model);
    const first = outcome(channel.invoke("load_hit", { index: 1 }));
    const second = outcome(channel.invoke("load_hit", { index: 2 }));
    const third = outcome(channel.invoke("load_hit", { index: 3 }));
    const search = outcome(channel.invoke("search", { by: "context", k: 3 })); // another lane
    expect(model.commands()).toEqual([
      { name: "load_hit", args: { index: 1 } },
      { name: "search", args: { by: "context", k: 3 } },
    ]);
    for (const r of [await first, await second]) expect(r.ok || r.error).toBeInstanceOf(Superseded);
    model.reply(0, { result: { sentence: "one", selected: 1 } }); // the superseded reply is dropped...
    expect(model.commands()[2]).toEqual({ name: "load_hit", args: { index: 3 } }); // ...and the newest sent
    model.reply(2, { result: { sentence: "three", selected: 3 } });
    expect(await third).toEqual({ ok: true, value: { sentence: "three", selected: 3 } });
    model.reply(1, { result: { count: 3 } });
    expect(await search).toEqual({ ok: true, value: { count: 3 } });
    expect(model.commands()).toHaveLength(3); // index 2 never reached the kernel
  });

  it("rejects what is pending when disposed, and stops listening", async () => {
    const model = new FakeModel({});
    const channel = new CommandChannel(model);
    const reply = outcome(channel.invoke("search", { by: "embedding", k: 1 }));
    channel.dispose();
    const r = await reply;
    expect(r.ok || r.error).toBeInstanceOf(Superseded);
    expect(model.listeners.get("msg:custom")?.size ?? 0).toBe(0);
  });

  it("puts a reply's binary buffers back at their paths and decodes the arrays", async () => {
    const model = new FakeModel({});
    const channel = new CommandChannel(model);
    const reply = channel.invoke("head_lines", { head: 1 });
    const request = model.sent[0];
    const lines = new DataView(new ArrayBuffer(8));
    [3, 65535, 1, 7].forEach((v, i) => {
      lines.setUint16(2 * i, v, true);
    });
    const rows = new DataView(new ArrayBuffer(12));
    [0, 1, 2].forEach((v, i) => {
      rows.setInt32(4 * i, v, true);
    });
    model.emitReply(
      {
        kind: "exbert-reply",
        id: request.id,
        ok: true,
        result: {
          head: 1,
          layer: 0,
          threshold: 0.7,
          hide_special: true,
          scale: 0.5,
          lines: { dtype: "uint16", shape: [2, 2] },
          rows: { dtype: "int32", shape: [3] },
        },
        buffer_paths: [
          ["result", "lines", "view"],
          ["result", "rows", "view"],
        ],
      },
      [lines, rows],
    );
    const r = await reply;
    expect(r.lines.shape).toEqual([2, 2]);
    expect(Array.from(r.lines.data)).toEqual([3, 65535, 1, 7]);
    expect(Array.from(r.rows.data)).toEqual([0, 1, 2]);
    expect(r.scale).toBe(0.5);
  });

  it("rejects a reply whose arrays cannot be read", async () => {
    const model = new FakeModel({});
    const channel = new CommandChannel(model);
    const reply = outcome(channel.invoke("head_lines", { head: 1 }));
    const request = model.sent[0];
    model.emitReply(
      {
        kind: "exbert-reply",
        id: request.id,
        ok: true,
        result: { lines: { dtype: "uint16", shape: [4, 2] } },
        buffer_paths: [["result", "lines", "view"]],
      },
      [new DataView(new ArrayBuffer(4))], // 4 bytes for 8 values
    );
    const r = await reply;
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toBeInstanceOf(CommandError);
      expect(r.error.message).toContain("cannot read the reply");
    }
  });
});

describe("a reply that never comes", () => {
  afterEach(() => {
    vi.useRealTimers();
  });
  const working = (model: FakeModel, index: number) =>
    model.emitReply({ kind: "exbert-working", id: model.sent[index].id });

  it("is given up after NO_REPLY_MS of silence with what to do; a late reply is dropped", async () => {
    vi.useFakeTimers();
    const model = new FakeModel({});
    const channel = new CommandChannel(model);
    let settled = false;
    const search = outcome(channel.invoke("search", { by: "embedding", k: 5 })).finally(() => {
      settled = true;
    });
    vi.advanceTimersByTime(NO_REPLY_MS - 1);
    await Promise.resolve();
    expect(settled).toBe(false);
    vi.advanceTimersByTime(1);
    const r = await search;
    expect(r.ok || r.error).toBeInstanceOf(NoReply);
    expect(r.ok || r.error).toBeInstanceOf(CommandError); // panels show its message as any refusal
    expect(r.ok || r.error.message).toBe(
      `search: no reply from the kernel after ${NO_REPLY_MS / 1000} s — is it still running, or ` +
        "busy with another cell? " +
        "If it was restarted or stopped, run the cell again.",
    );
    const next = outcome(channel.invoke("search", { by: "context", k: 2 }));
    expect(model.commands()).toHaveLength(2); // the lane is free again: sent at once
    model.reply(0, { result: { count: 5 } }); // the lost reply, late: dropped
    model.reply(1, { result: { count: 2 } });
    expect(await next).toEqual({ ok: true, value: { count: 2 } });
  });

  it("waits as long as the kernel says it is working: a long search is not cut", async () => {
    vi.useFakeTimers();
    const model = new FakeModel({});
    const channel = new CommandChannel(model);
    const search = outcome(channel.invoke("search", { by: "embedding", k: 5 }));
    for (let beat = 0; beat < 50; beat++) {
      vi.advanceTimersByTime(NO_REPLY_MS / 2);
      working(model, 0);
      model.emitReply({ kind: "exbert-working", id: "someone-else" }); // not ours: ignored
    }
    vi.advanceTimersByTime(NO_REPLY_MS - 1);
    model.reply(0, { result: { count: 5 } }); // 25 limits after it was sent
    expect(await search).toEqual({ ok: true, value: { count: 5 } });
    vi.advanceTimersByTime(10 * NO_REPLY_MS); // nothing in flight: no timer left to fire
    expect(vi.getTimerCount()).toBe(0);
  });

  it("frees the lane for the newest request when the superseded one in flight gets no reply", async () => {
    vi.useFakeTimers();
    const model = new FakeModel({});
    const channel = new CommandChannel(model, 1000);
    const first = outcome(channel.invoke("load_hit", { index: 1 }));
    const second = outcome(channel.invoke("load_hit", { index: 2 }));
    const r = await first;
    expect(r.ok || r.error).toBeInstanceOf(Superseded);
    expect(model.commands()).toHaveLength(1);
    vi.advanceTimersByTime(1000);
    expect(model.commands()[1]).toEqual({ name: "load_hit", args: { index: 2 } });
    model.reply(1, { result: { sentence: "two", selected: 2 } });
    expect(await second).toEqual({ ok: true, value: { sentence: "two", selected: 2 } });
  });
});
