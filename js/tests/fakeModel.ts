// A stand-in for anywidget's model (typed as anywidget's AnyModel<WireState>),
// recording saves, state sent to the kernel, and custom messages; `reply`
// answers a command as the kernel would.
import type { AnyModel } from "@anywidget/types";
import type { WireState } from "../src/generated/contract";

// biome-ignore lint/suspicious/noExplicitAny: anywidget's own listener type
type Listener = (...args: any[]) => void;

export class FakeModel implements AnyModel<WireState> {
  state: Record<string, unknown>;
  listeners = new Map<string, Set<Listener>>();
  saves = 0;
  /** What each save_changes sent: the traits set since the last save. */
  saved: Array<Record<string, unknown>> = [];
  sent: Array<Record<string, unknown>> = [];
  widget_manager = {
    get_model: () => Promise.reject(new Error("no widget manager in tests")),
  };
  private dirty: Record<string, unknown> = {};

  constructor(initial: Record<string, unknown>) {
    this.state = { ...initial };
  }
  get<K extends keyof WireState>(name: K): WireState[K] {
    return this.state[name] as WireState[K];
  }
  set<K extends keyof WireState>(name: K, value: WireState[K]) {
    this.state[name] = value;
    this.dirty[name] = value;
    this.emit(`change:${name}`);
  }
  /** A kernel-side update: many traits in one go (not sent back). */
  update(values: Record<string, unknown>) {
    for (const [k, v] of Object.entries(values)) {
      this.state[k] = v;
      this.emit(`change:${k}`);
    }
  }
  save_changes() {
    this.saves++;
    this.saved.push(this.dirty);
    this.dirty = {};
  }
  on(ev: string, cb: Listener) {
    if (!this.listeners.has(ev)) this.listeners.set(ev, new Set());
    this.listeners.get(ev)!.add(cb);
  }
  off(ev?: string | null, cb?: Listener | null) {
    if (ev && cb) this.listeners.get(ev)?.delete(cb);
  }
  send(content: Record<string, unknown>) {
    this.sent.push(content);
  }
  /** The commands sent so far, as {name, args}. */
  commands(): Array<{ name: unknown; args: unknown }> {
    return this.sent.filter((m) => m.kind === "exbert-command").map((m) => ({ name: m.name, args: m.args }));
  }
  /** Answer command request `index` (in send order) with a result or an error. */
  reply(index: number, outcome: { result: unknown } | { error: { type: string; message: string } }) {
    const request = this.sent.filter((m) => m.kind === "exbert-command")[index];
    const msg =
      "result" in outcome
        ? { kind: "exbert-reply", id: request.id, ok: true, result: outcome.result }
        : { kind: "exbert-reply", id: request.id, ok: false, error: outcome.error };
    this.emit("msg:custom", msg, []);
  }
  /** A custom message from the kernel, with binary buffers as a widget message carries them. */
  emitReply(msg: Record<string, unknown>, buffers: DataView[] = []) {
    this.emit("msg:custom", msg, buffers);
  }
  private emit(ev: string, ...args: unknown[]) {
    for (const cb of this.listeners.get(ev) ?? []) cb(...args);
  }
}

export function f32Payload(values: number[], shape: number[]) {
  const dv = new DataView(new ArrayBuffer(values.length * 4));
  values.forEach((v, i) => {
    dv.setFloat32(i * 4, v, true);
  });
  return { view: dv, dtype: "float32", shape };
}

/** float16 bits of `values` (exact for values float16 can hold, e.g. multiples of 1/1024). */
export function f16Payload(values: number[], shape: number[]) {
  const dv = new DataView(new ArrayBuffer(values.length * 2));
  values.forEach((v, i) => {
    dv.setUint16(i * 2, toHalf(v), true);
  });
  return { view: dv, dtype: "float16", shape };
}

function toHalf(v: number): number {
  if (v === 0) return 0;
  const sign = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  if (e < -14) return sign | Math.round(a / 2 ** -24); // subnormal
  const frac = Math.round((a / 2 ** e - 1) * 1024);
  return sign | (((e + 15) << 10) + frac); // a rounded-up fraction carries into the exponent
}

/** Attention [H, n, n]: head h attends from i mostly to (i + h) % n. */
export function makeAttention(H: number, n: number): number[] {
  const out: number[] = [];
  for (let h = 0; h < H; h++)
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out.push(j === (i + h) % n ? 0.6 + 0.4 / n : 0.4 / n);
  return out;
}

export function u16Payload(values: number[], shape: number[]) {
  const dv = new DataView(new ArrayBuffer(values.length * 2));
  values.forEach((v, i) => {
    dv.setUint16(i * 2, v, true);
  });
  return { view: dv, dtype: "uint16", shape };
}

export function i32Payload(values: number[], shape: number[]) {
  const dv = new DataView(new ArrayBuffer(values.length * 4));
  values.forEach((v, i) => {
    dv.setInt32(i * 4, v, true);
  });
  return { view: dv, dtype: "int32", shape };
}
