// anywidget entry (AFM): builds the panels inside `el` and keeps them in step
// with the model. Everything the panels read passes the typed model boundary
// (core/model.ts); kernel work goes through the command channel.

import type { AnyModel } from "@anywidget/types";
import { CommandChannel } from "./core/commands";
import { h, isolateKeys } from "./core/dom";
import { ViewModel } from "./core/model";
import { wire } from "./core/panel";
import type { WireState } from "./generated/contract";
import { AttentionPanel } from "./panels/attention/panel";
import { ComparePanel } from "./panels/beyond/compare";
import { BeyondBar } from "./panels/beyond/panel";
import { HeadReportPanel } from "./panels/beyond/report";
import { ControlsPanel } from "./panels/controls/panel";
import { ExportPanel } from "./panels/export/panel";
import { LensPanel } from "./panels/lens/panel";
import { ModelViewPanel } from "./panels/modelView/panel";
import { PairsPartsPanel } from "./panels/pairs/panel";
import { SearchPanel } from "./panels/search/panel";

function render({ model, el }: { model: AnyModel<WireState>; el: HTMLElement }): () => void {
  const commands = new CommandChannel(model);
  const view = new ViewModel(model, commands);
  const root = h("div", { cls: "exbert-root", testid: "exbert-root" });
  const controls = new ControlsPanel(view, commands);
  const attention = new AttentionPanel(view, root, commands);
  const search = new SearchPanel(view, commands, root);
  const pairs = new PairsPartsPanel(view);
  const modelView = new ModelViewPanel(view, commands);
  const lens = new LensPanel(view, commands);
  const exporter = new ExportPanel(view, commands);
  const report = new HeadReportPanel(view, commands);
  const beyond = new BeyondBar(view, [report.button, report.status]);
  const compare = new ComparePanel(view, root);
  root.append(
    controls.el,
    pairs.el,
    beyond.el,
    controls.messages,
    attention.el,
    compare.el,
    report.el,
    lens.el,
    modelView.el,
    exporter.el,
    search.el,
  );
  el.appendChild(root);
  const releaseKeys = isolateKeys(root);
  const unwire = wire(view, [controls, pairs, attention, search, modelView, lens, exporter, beyond, compare, report]);
  return () => {
    unwire();
    view.flush(); // an edit still waiting for its debounce reaches the kernel
    commands.dispose();
    releaseKeys();
    root.remove();
  };
}

// The default export only: anywidget warns about a module that exports `render` itself.
export default { render };
