// The slice of anywidget's model API that the view uses (AFM), typed loosely
// so that tests can pass a small fake.

export type Callback = (...args: unknown[]) => void;

export interface AnyModel {
  get(name: string): any; // eslint-disable-line @typescript-eslint/no-explicit-any
  set(name: string, value: unknown): void;
  save_changes(): void;
  on(event: string, cb: Callback): void;
  off(event?: string | null, cb?: Callback | null): void;
  send(content: unknown, callbacks?: unknown, buffers?: unknown[]): void;
}

/** Subscribe to model events and return one function that removes them all. */
export function listen(model: AnyModel, pairs: Array<[string, Callback]>): () => void {
  for (const [ev, cb] of pairs) model.on(ev, cb);
  return () => {
    for (const [ev, cb] of pairs) model.off(ev, cb);
  };
}

/** Set and save in one step: every user edit goes straight back to Python. */
export function commit(model: AnyModel, values: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(values)) model.set(k, v);
  model.save_changes();
}
