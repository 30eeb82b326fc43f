// The model boundary: the one place where the widget model's wire state becomes
// the typed state the panels read (generated/contract.ts). Array traits are
// decoded here, once per payload, and checked against their declared dtype and
// rank; a payload that does not fit is refused (read as null) and reported in
// the view. Writes are limited to the traits the user controls; one that
// changes nothing while a refusal is shown still reaches the kernel (`reapply`).

import type { AnyModel } from "@anywidget/types";
import {
  ARRAYS,
  type ArrayKey,
  type FloatArray,
  type State,
  type UserKey,
  type WireState,
} from "../generated/contract";
import { decodeFloat, isPayload } from "./arrays";
import type { CommandChannel } from "./commands";

export type Key = keyof State;
export type Slice<K extends Key> = Pick<State, K>;
export type UserValues = Partial<Pick<State, UserKey>>;

/** How long a slider or text edit waits for the next before it goes to the kernel. */
export const DEBOUNCE_MS = 150;

const isArrayKey = (key: Key): key is ArrayKey => key in ARRAYS;

export class ViewModel {
  private decoded = new WeakMap<object, FloatArray | null>();
  private problems = new Map<ArrayKey, string>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private errorListeners = new Set<() => void>();

  constructor(
    readonly raw: AnyModel<WireState>,
    private commands: Pick<CommandChannel, "invoke"> | null = null,
  ) {}

  /** A trait as the view reads it (array traits decoded, or null when refused). */
  get<K extends Key>(key: K): State[K] {
    if (isArrayKey(key)) return this.array(key) as State[K];
    if (key === "error") return this.errorText() as State[K];
    return this.raw.get(key as Exclude<K, ArrayKey>) as State[K];
  }

  /** The traits a panel reads, as one plain object. */
  slice<K extends Key>(keys: readonly K[]): Slice<K> {
    const out = {} as Slice<K>;
    for (const k of keys) out[k] = this.get(k);
    return out;
  }

  /**
   * Set traits the user controls and send them to the kernel now. Values equal
   * to the kernel's send no state (the model sees no change), so a refusal shown
   * then would stay up over a good value (the box got the kernel's value back):
   * the kernel is asked to apply its own values again, which clears it.
   */
  commit(values: UserValues): void {
    const unchanged = Object.entries(values).every(([k, v]) => same(this.raw.get(k as UserKey), v));
    this.setLocal(values);
    this.flush();
    if (unchanged && this.raw.get("error") && this.commands) {
      // A lost or failed reply leaves the refusal up, as before: nothing to add to it.
      this.commands.invoke("reapply", { names: Object.keys(values) }).catch(() => undefined);
    }
  }

  /**
   * Set traits at once in the view, but send them only once no edit came for
   * `delay` ms: a dragged slider or typed number reaches the kernel once.
   */
  commitLater(values: UserValues, delay = DEBOUNCE_MS): void {
    this.setLocal(values);
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), delay);
  }

  /** Send what is waiting (a debounced edit) now. */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.raw.save_changes();
  }

  /** Call `cb` when any of `keys` changes; returns the remover. */
  listen(keys: readonly Key[], cb: () => void): () => void {
    const events = keys.map((k) => `change:${k}` as const);
    for (const ev of events) this.raw.on(ev, cb);
    if (keys.includes("error")) this.errorListeners.add(cb);
    return () => {
      for (const ev of events) this.raw.off(ev, cb);
      this.errorListeners.delete(cb);
    };
  }

  private setLocal(values: UserValues): void {
    for (const [k, v] of Object.entries(values) as Array<[UserKey, State[UserKey]]>) {
      (this.raw as AnyModel<Pick<State, UserKey>>).set(k, v);
    }
  }

  private array(key: ArrayKey): FloatArray | null {
    const payload = this.raw.get(key);
    if (payload === null || payload === undefined || typeof payload !== "object") return null;
    let value = this.decoded.get(payload);
    if (value === undefined) {
      value = this.decode(key, payload);
      this.decoded.set(payload, value);
    }
    return value;
  }

  private decode(key: ArrayKey, payload: object): FloatArray | null {
    const spec = ARRAYS[key];
    const before = this.problems.get(key);
    let value: FloatArray | null = null;
    try {
      if (!isPayload(payload)) throw new Error("not an array payload ({view, dtype, shape})");
      const d = decodeFloat(payload, spec.dtype);
      if (d && d.shape.length !== spec.shape.length) {
        throw new Error(`shape [${d.shape.join(", ")}] is not [${spec.shape.join(", ")}]`);
      }
      value = d;
      this.problems.delete(key);
    } catch (e) {
      this.problems.set(key, `the view cannot draw ${key}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (this.problems.get(key) !== before) for (const cb of this.errorListeners) cb();
    return value;
  }

  /** The kernel's last refusal, then what the view itself could not read. */
  private errorText(): string {
    return [this.raw.get("error"), ...this.problems.values()].filter(Boolean).join("\n");
  }
}

/** Equal as JSON values (the user traits are strings, numbers, lists of them, null). */
function same(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}
