// Geometry of the two token columns. Rows have a fixed height so positions
// come from arithmetic, not DOM measurement (fast at n = 512, no reflow).

export const ROW_HEIGHT = 18; // px; must match --exbert-row-h in widget.css

export interface Layout {
  n: number;
  order: number[]; // visible token indices, top to bottom
  rowOf: Int32Array; // token index -> row, -1 when hidden
  rowHeight: number;
  height: number;
}

export function makeLayout(visible: readonly boolean[], rowHeight = ROW_HEIGHT): Layout {
  const n = visible.length;
  const rowOf = new Int32Array(n).fill(-1);
  const order: number[] = [];
  for (let i = 0; i < n; i++) {
    if (visible[i]) {
      rowOf[i] = order.length;
      order.push(i);
    }
  }
  return { n, order, rowOf, rowHeight, height: order.length * rowHeight };
}

/** Vertical centre of a token's row in column coordinates, or NaN if hidden. */
export function rowCenter(layout: Layout, token: number): number {
  const r = token >= 0 && token < layout.n ? layout.rowOf[token] : -1;
  return r < 0 ? NaN : (r + 0.5) * layout.rowHeight;
}
