// A minimal stand-in for anywidget's model, recording saves and messages.
import { AnyModel, Callback } from "../src/model";

export class FakeModel implements AnyModel {
  state: Record<string, unknown>;
  listeners = new Map<string, Set<Callback>>();
  saves = 0;
  sent: unknown[] = [];

  constructor(initial: Record<string, unknown>) {
    this.state = { ...initial };
  }
  get(name: string) {
    return this.state[name];
  }
  set(name: string, value: unknown) {
    this.state[name] = value;
    this.listeners.get(`change:${name}`)?.forEach((cb) => cb());
  }
  /** Python-side update: set many traits in one go. */
  update(values: Record<string, unknown>) {
    for (const [k, v] of Object.entries(values)) this.set(k, v);
  }
  save_changes() {
    this.saves++;
  }
  on(ev: string, cb: Callback) {
    if (!this.listeners.has(ev)) this.listeners.set(ev, new Set());
    this.listeners.get(ev)!.add(cb);
  }
  off(ev?: string | null, cb?: Callback | null) {
    if (ev && cb) this.listeners.get(ev)?.delete(cb);
  }
  send(content: unknown) {
    this.sent.push(content);
  }
}

export function f32Payload(values: number[], shape: number[]) {
  const dv = new DataView(new ArrayBuffer(values.length * 4));
  values.forEach((v, i) => dv.setFloat32(i * 4, v, true));
  return { view: dv, dtype: "float32", shape };
}

/** Attention [H, n, n]: head h attends from i mostly to (i + h) % n. */
export function makeAttention(H: number, n: number): number[] {
  const out: number[] = [];
  for (let h = 0; h < H; h++)
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) out.push(j === (i + h) % n ? 0.6 + 0.4 / n : 0.4 / n);
  return out;
}
