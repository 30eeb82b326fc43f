// Tiny DOM helpers. Text only ever goes in through textContent: tokens and
// sentences are user input and must never be parsed as HTML.

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  opts: { cls?: string; testid?: string; text?: string; attrs?: Record<string, string> } = {},
  children: Node[] = [],
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (opts.cls) el.className = opts.cls;
  if (opts.testid) el.setAttribute("data-testid", opts.testid);
  if (opts.text !== undefined) el.textContent = opts.text;
  if (opts.attrs) for (const [k, v] of Object.entries(opts.attrs)) el.setAttribute(k, v);
  for (const c of children) el.appendChild(c);
  return el;
}

export function show(el: HTMLElement, visible: boolean): void {
  el.style.display = visible ? "" : "none";
}

/** Coalesce many change events into one call per animation frame. */
export function frameScheduler(fn: () => void): () => void {
  let pending = false;
  const raf: (cb: () => void) => unknown =
    typeof requestAnimationFrame === "function" ? (cb) => requestAnimationFrame(cb) : (cb) => setTimeout(cb, 16);
  return () => {
    if (pending) return;
    pending = true;
    raf(() => {
      pending = false;
      fn();
    });
  };
}

/** Format a probability in [0,1] as a percentage. */
export function percent(p: number): string {
  const v = p * 100;
  if (!Number.isFinite(v)) return "–";
  return `${v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3)}%`;
}

const CONTROL = "input, select, textarea, button, [contenteditable]";

/**
 * Keep keys pressed in the view's own controls away from the page: Jupyter's
 * command-mode shortcuts listen on the document, so without this an arrow key
 * on the threshold slider collapses a notebook heading instead of moving the
 * slider (Lab only treats text boxes as editable). Returns the remover.
 */
export function isolateKeys(root: HTMLElement): () => void {
  const stop = (ev: Event) => {
    const t = ev.target as Element | null;
    if (t?.closest?.(CONTROL) && root.contains(t)) ev.stopPropagation();
  };
  const types = ["keydown", "keyup", "keypress"];
  for (const type of types) root.addEventListener(type, stop);
  return () => {
    for (const type of types) root.removeEventListener(type, stop);
  };
}

/**
 * Call `cb` when the page's theme changes: JupyterLab and Notebook 7 mark it on
 * <body> (data-jp-theme-*), VS Code by <body>'s classes, some hosts by <html
 * theme>. What a panel painted with the theme's colours (a canvas) repaints
 * then. Returns the remover.
 */
export function onThemeChange(cb: () => void): () => void {
  if (typeof MutationObserver !== "function" || typeof document === "undefined") return () => {};
  const observer = new MutationObserver(() => cb());
  const watch = { attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name", "class", "theme"] };
  observer.observe(document.body, watch);
  observer.observe(document.documentElement, watch);
  return () => observer.disconnect();
}
