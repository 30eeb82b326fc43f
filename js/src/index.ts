// anywidget entry (AFM): builds the view inside `el` and keeps it in sync with
// the model. All computation of model quantities happens in the kernel; this
// module only wires state changes to the views, coalescing bursts of change
// events into a single update per frame.

import { AttentionView } from "./attentionView";
import { frameScheduler, h, isolateKeys } from "./dom";
import { AnyModel, listen } from "./model";
import { SearchPanel } from "./search/panel";

const TRAITS = [
  "sentence", "layer", "heads", "head_weights", "masked", "hide_special", "threshold", "selected",
  "tokens", "special", "kind", "num_layers", "num_heads", "model_name", "has_lm_head", "truncated",
  "error", "top_k", "attention",
  "has_corpus", "search_k", "search_busy", "search_error", "hit_list", "hits", "hits_attention", "summaries",
];

export function render({ model, el }: { model: AnyModel; el: HTMLElement }): () => void {
  const root = h("div", { cls: "exbert-root", testid: "exbert-root" });
  const attention = new AttentionView(model, root);
  const search = new SearchPanel(model, root);
  root.append(attention.controls.el, attention.controls.messages, attention.el, search.el);
  el.appendChild(root);
  const releaseKeys = isolateKeys(root);

  const update = () => {
    try {
      attention.update();
      search.update();
    } catch (e) {
      console.error("exbert-widget: update failed", e);
    }
  };
  // One update per animation frame: a Python update sets many traits at once,
  // and a dragged slider fires many input events between frames.
  const schedule = frameScheduler(update);
  const unlisten = listen(model, TRAITS.map((t) => [`change:${t}`, schedule] as [string, () => void]));
  update();
  return () => {
    unlisten();
    releaseKeys();
    attention.dispose();
    root.remove();
  };
}

export default { render };
