// Export: a format menu and a Save button (the kernel writes the file: SVG and
// HTML from its own state), and the view's part of a PNG: the kernel sends the
// SVG it rendered, the view rasterises it at 2x pixel density and sends the PNG
// back by the `png` command. The view tells the kernel when it is displayed
// (an `exbert-attach` message), so `view.save("x.png")` can say at once when no
// view would answer.

import { type CommandChannel, CommandError, Superseded } from "../../core/commands";
import { h } from "../../core/dom";
import type { ViewModel } from "../../core/model";
import type { Panel } from "../../core/panel";
import type { ExportArgs } from "../../generated/contract";

export const PNG_REQUEST = "exbert-png-request";
/** A view was displayed or removed (no reply; the kernel counts the views on screen). */
export const ATTACH = "exbert-attach";
export const PNG_SCALE = 2;

type Format = ExportArgs["format"];

/** The PNG (base64, no data-URL prefix) of an SVG document, at `scale` x its size. */
export async function svgToPng(svg: string, scale = PNG_SCALE): Promise<string> {
  const img = new Image();
  img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(img.naturalWidth * scale));
  canvas.height = Math.max(1, Math.round(img.naturalHeight * scale));
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("this browser cannot draw on a canvas");
  ctx.scale(scale, scale);
  ctx.drawImage(img, 0, 0);
  const url = canvas.toDataURL("image/png");
  return url.slice(url.indexOf(",") + 1);
}

function isPngRequest(msg: unknown): msg is { kind: string; request: string; svg: string } {
  const m = msg as { kind?: unknown; request?: unknown; svg?: unknown } | null;
  return !!m && m.kind === PNG_REQUEST && typeof m.request === "string" && typeof m.svg === "string";
}

export class ExportPanel implements Panel<never> {
  readonly keys = [] as const;
  readonly el: HTMLElement;
  private format: HTMLSelectElement;
  private button: HTMLButtonElement;
  private status: HTMLSpanElement;
  private onMessage = (msg: unknown) => {
    if (isPngRequest(msg)) void this.answerPng(msg.request, msg.svg);
  };

  constructor(
    private model: ViewModel,
    private commands: CommandChannel,
    private rasterise: (svg: string) => Promise<string> = svgToPng,
  ) {
    this.format = h("select", {
      cls: "exbert-select",
      testid: "export-format",
      attrs: { "aria-label": "Export format" },
    });
    for (const f of ["svg", "html", "png"] as const)
      this.format.append(h("option", { text: f.toUpperCase(), attrs: { value: f } }));
    this.button = h("button", { cls: "exbert-btn", testid: "export-button", text: "Save", attrs: { type: "button" } });
    this.button.addEventListener("click", () => this.save(this.format.value as Format));
    this.status = h("span", { cls: "exbert-export-status", testid: "export-status" });
    this.el = h("div", { cls: "exbert-export" }, [
      h("span", { text: "Export " }),
      this.format,
      this.button,
      this.status,
    ]);
    model.raw.on("msg:custom", this.onMessage);
    model.raw.send({ kind: ATTACH, attached: true });
  }

  update(): void {}

  dispose(): void {
    this.model.raw.off("msg:custom", this.onMessage);
    this.model.raw.send({ kind: ATTACH, attached: false });
  }

  private say(text: string, error = false): void {
    this.status.textContent = text;
    this.status.classList.toggle("exbert-error", error);
  }

  private save(format: Format): void {
    this.say(`Saving ${format.toUpperCase()}…`);
    this.commands.invoke("export", { format }).then(
      (r) => {
        if (format !== "png") this.say(`Saved ${r.path} (${Math.ceil(r.bytes / 1024)} kB)`);
      },
      (e: unknown) => this.fail(e),
    );
  }

  private async answerPng(request: string, svg: string): Promise<void> {
    let data = "";
    let error = "";
    try {
      data = await this.rasterise(svg);
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
    this.commands.invoke("png", error ? { request, data, error } : { request, data }).then(
      (r) => this.say(`Saved ${r.path} (${Math.ceil(r.bytes / 1024)} kB)`),
      (e: unknown) => this.fail(e),
    );
  }

  private fail(e: unknown): void {
    if (e instanceof Superseded) return;
    this.say(e instanceof CommandError ? e.message : String(e), true);
  }
}
