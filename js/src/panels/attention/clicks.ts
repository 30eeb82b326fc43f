// Click selects a token, double-click masks it. A real double-click arrives as
// click (detail 1), click (detail 2), dblclick: toggling `selected` on each
// click would move or wipe the selection and send two kernel messages for
// nothing. So a click's selection shows at once but goes to the kernel only
// after `delayMs`; a second click in that time cancels it. A slower second
// click (the OS double-click time can be longer) sends the earlier selection
// back, so either way a double-click leaves `selected` as it was.

export const SELECT_DELAY_MS = 250;
const SERIES_MS = 1500; // a detail-2 click later than this is not part of our series

export interface SelectionPort {
  read(): number | null; // the model's `selected`
  write(value: number | null): void; // commit it to the kernel
  changed(): void; // the shown selection changed: redraw the marks
}

export class ClickSelection {
  private pending: { value: number | null; timer: ReturnType<typeof setTimeout> } | null = null;
  // The selection before the last single click, to restore on a double-click.
  private series: { token: number; before: number | null; at: number } | null = null;

  constructor(
    private port: SelectionPort,
    private delayMs = SELECT_DELAY_MS,
  ) {}

  /** The selection to show: a pending click's, else the model's. */
  current(): number | null {
    return this.pending ? this.pending.value : this.port.read();
  }

  click(token: number, detail: number): void {
    if (detail > 1) {
      this.undo(token);
      return;
    }
    this.flush();
    const before = this.port.read();
    this.series = { token, before, at: Date.now() };
    const timer = setTimeout(() => this.flush(), this.delayMs);
    this.pending = { value: before === token ? null : token, timer };
    this.port.changed();
  }

  /** Send a pending selection now. */
  flush(): void {
    const p = this.pending;
    if (!p) return;
    clearTimeout(p.timer);
    this.pending = null;
    this.port.write(p.value);
  }

  /** Drop a pending selection, e.g. when the tokens it points at are replaced. */
  cancel(): void {
    if (!this.pending) return;
    clearTimeout(this.pending.timer);
    this.pending = null;
    this.port.changed();
  }

  private undo(token: number): void {
    const s = this.series;
    if (!s || s.token !== token || Date.now() - s.at > SERIES_MS) return;
    if (this.pending) this.cancel();
    else if (this.port.read() !== s.before) this.port.write(s.before);
  }
}
