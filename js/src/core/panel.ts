// Panels: each part of the view is a module with its own slice of the state.
// `wire` updates a panel (once per animation frame at most) when a trait of its
// slice changed, with that slice as one plain, typed object.

import { frameScheduler } from "./dom";
import type { Key, Slice, ViewModel } from "./model";

export interface Panel<K extends Key = Key> {
  readonly el: HTMLElement;
  /** The traits the panel reads; `update` runs when one of them changes. */
  readonly keys: readonly K[];
  update(state: Slice<K>): void;
  dispose?(): void;
}

/** Keep `panels` in step with `model`; returns the remover. */
export function wire(model: ViewModel, panels: readonly Panel[]): () => void {
  const dirty = new Set<Panel>(panels);
  const run = () => {
    for (const panel of Array.from(dirty)) {
      dirty.delete(panel);
      try {
        panel.update(model.slice(panel.keys));
      } catch (e) {
        console.error("exbert-widget: update failed", e);
      }
    }
  };
  // A Python update sets many traits at once and a dragged slider fires many
  // events between frames: one update per panel and frame.
  const schedule = frameScheduler(run);
  const removers = panels.map((panel) =>
    model.listen(panel.keys, () => {
      dirty.add(panel);
      schedule();
    }),
  );
  run();
  return () => {
    for (const remove of removers) remove();
    for (const panel of panels) panel.dispose?.();
  };
}

export function range(n: number): number[] {
  return Array.from({ length: Math.max(0, n) }, (_, i) => i);
}
