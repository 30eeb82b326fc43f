// Pure logic of the second panel (Δ views, the compare model): no DOM.
// The kernel sends the lines already cut: [from, to, value] rows, value < 0
// meaning less attention than the reference (Δ views only).

export interface SignedLine {
  from: number;
  to: number;
  value: number;
}

/** Rows of a [count, 3] float array as lines; a payload of another shape gives none. */
export function readLines(data: Float32Array | null, shape: readonly number[] | null): SignedLine[] {
  if (!data || !shape || shape.length !== 2 || shape[1] !== 3) return [];
  const out: SignedLine[] = [];
  for (let k = 0; k < shape[0]; k++) {
    out.push({ from: data[3 * k], to: data[3 * k + 1], value: data[3 * k + 2] });
  }
  return out;
}

/** How many lines show more (value > 0) and less (value < 0) attention. */
export function countSigns(lines: readonly SignedLine[]): { more: number; less: number } {
  let more = 0;
  let less = 0;
  for (const l of lines) {
    if (l.value > 0) more++;
    else if (l.value < 0) less++;
  }
  return { more, less };
}

/** Row index of each visible token in the panel (hidden ones: -1). */
export function rowsOf(n: number, visible: readonly boolean[]): number[] {
  const rows: number[] = new Array(n).fill(-1);
  let r = 0;
  for (let i = 0; i < n; i++) if (visible[i]) rows[i] = r++;
  return rows;
}

/** FNV-1a over the lines (values quantised), as a short hex string. */
export function lineSignature(lines: readonly SignedLine[]): string {
  let h = 0x811c9dc5;
  const mix = (x: number) => {
    h ^= x & 0xffff;
    h = Math.imul(h, 0x01000193);
    h ^= x >>> 16;
    h = Math.imul(h, 0x01000193);
  };
  mix(lines.length);
  for (const l of lines) {
    mix(l.from);
    mix(l.to);
    mix(Math.round(l.value * 10000));
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}

/** A signed difference of probabilities as percentage points. */
export function points(delta: number): string {
  const v = delta * 100;
  if (!Number.isFinite(v)) return "–";
  const sign = v > 0 ? "+" : v < 0 ? "−" : "±";
  return `${sign}${Math.abs(v).toFixed(Math.abs(v) >= 10 ? 1 : 2)} pt`;
}

/** Heatmap shade of an accuracy in [0, 1] relative to the best one: an alpha in [0.04, 1]. */
export function shade(value: number, best: number): number {
  if (!(best > 0) || !Number.isFinite(value)) return 0.04;
  return Math.max(0.04, Math.min(1, value / best));
}
