// Pure attention logic: no DOM. Matrices are row-major Float32Array of n*n,
// row = attending-from token, column = attended-to token. Indices always stay
// in the full token numbering (hidden tokens get zero rows/columns) so the
// view never has to translate between "visible" and "model" indices.
// Edge sets are typed arrays (a long input's layer can keep millions of lines),
// ordered by row, then by descending weight.

export interface Edge {
  from: number;
  to: number;
  w: number;
}

/** Edges as parallel typed arrays: edge k goes from[k] -> to[k] with weight w[k]. */
export interface EdgeList {
  readonly count: number;
  readonly from: Int32Array;
  readonly to: Int32Array;
  readonly w: Float32Array;
}

/** Appends edges to growing typed arrays; `done()` trims them. */
export class EdgeBuilder {
  private from: Int32Array;
  private to: Int32Array;
  private w: Float32Array;
  private count = 0;

  constructor(capacity = 1024) {
    const c = Math.max(16, capacity);
    this.from = new Int32Array(c);
    this.to = new Int32Array(c);
    this.w = new Float32Array(c);
  }

  push(from: number, to: number, w: number): void {
    if (this.count === this.from.length) this.grow();
    this.from[this.count] = from;
    this.to[this.count] = to;
    this.w[this.count] = w;
    this.count++;
  }

  done(): EdgeList {
    const c = this.count;
    return { count: c, from: this.from.slice(0, c), to: this.to.slice(0, c), w: this.w.slice(0, c) };
  }

  private grow(): void {
    const c = this.from.length * 2;
    const f = new Int32Array(c);
    f.set(this.from);
    const t = new Int32Array(c);
    t.set(this.to);
    const w = new Float32Array(c);
    w.set(this.w);
    this.from = f;
    this.to = t;
    this.w = w;
  }
}

export const NO_EDGES: EdgeList = { count: 0, from: new Int32Array(0), to: new Int32Array(0), w: new Float32Array(0) };

/** Edges as plain objects (tests, debugging). */
export function edgeObjects(edges: EdgeList): Edge[] {
  const out: Edge[] = [];
  for (let k = 0; k < edges.count; k++) out.push({ from: edges.from[k], to: edges.to[k], w: edges.w[k] });
  return out;
}

/** Plain objects as an edge list (tests). */
export function edgeList(edges: readonly Edge[]): EdgeList {
  const b = new EdgeBuilder(edges.length);
  for (const e of edges) b.push(e.from, e.to, e.w);
  return b.done();
}

/** Lines the kernel sent (long inputs): row i's are lines[rows[i]..rows[i+1]), each [column, level]. */
export const WEIGHT_LEVELS = 65535;

export function linesToEdges(rows: ArrayLike<number>, lines: ArrayLike<number>, scale: number, n: number): EdgeList {
  const count = rows.length > n ? Number(rows[n]) : 0;
  if (count * 2 > lines.length) return NO_EDGES; // rows and lines from different payloads
  const from = new Int32Array(count);
  const to = new Int32Array(count);
  const w = new Float32Array(count);
  const unit = scale / WEIGHT_LEVELS;
  for (let i = 0; i < n; i++) from.fill(i, Number(rows[i]), Number(rows[i + 1]));
  for (let k = 0; k < count; k++) {
    to[k] = lines[2 * k];
    w[k] = lines[2 * k + 1] * unit;
  }
  return { count, from, to, w };
}

/**
 * Combine heads of one layer's attention [H, n, n].
 * With `weights` (length H): sum_h weights[h] * A_h (any linear combination).
 * Otherwise: the mean of the heads in `heads` (exBERT summed; the mean keeps rows
 * summing to 1, and the threshold cut is scale-free, so lines are the same).
 * Negative results are clamped to 0: a line cannot have negative opacity.
 */
export function combineHeads(
  att: Float32Array,
  numHeads: number,
  n: number,
  heads: readonly number[],
  weights: readonly number[] | null,
): Float32Array {
  const nn = n * n;
  const out = new Float32Array(nn);
  let coefs: number[] = [];
  let idx: number[] = [];
  if (weights && weights.length > 0) {
    for (let h = 0; h < Math.min(numHeads, weights.length); h++) {
      const w = Number(weights[h]);
      if (w !== 0 && Number.isFinite(w)) {
        idx.push(h);
        coefs.push(w);
      }
    }
  } else {
    const uniq = Array.from(new Set(heads)).filter((h) => h >= 0 && h < numHeads);
    idx = uniq;
    coefs = uniq.map(() => 1 / uniq.length);
  }
  if (idx.length === 0) return out;
  for (let k = 0; k < idx.length; k++) {
    const base = idx[k] * nn;
    const c = coefs[k];
    for (let i = 0; i < nn; i++) out[i] += c * att[base + i];
  }
  let anyNegative = false;
  for (let i = 0; i < nn; i++)
    if (out[i] < 0) {
      anyNegative = true;
      break;
    }
  if (anyNegative) for (let i = 0; i < nn; i++) if (out[i] < 0) out[i] = 0;
  return out;
}

/** One head's matrix as a fresh copy. */
export function headMatrix(att: Float32Array, n: number, h: number): Float32Array {
  const nn = n * n;
  return att.slice(h * nn, (h + 1) * nn);
}

/**
 * Remove hidden tokens (visible[i] false): zero their rows and columns, then
 * renormalise every remaining row to sum 1 over the remaining columns
 * (exBERT zeroed without renormalising; the contract asks for renormalised rows).
 * Rows whose remaining sum is 0 stay all-zero. Returns a new matrix.
 */
export function removeHidden(mat: Float32Array, n: number, visible: readonly boolean[]): Float32Array {
  const out = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    if (!visible[i]) continue;
    const r = i * n;
    let sum = 0;
    for (let j = 0; j < n; j++) if (visible[j]) sum += mat[r + j];
    if (sum <= 0) continue;
    const inv = 1 / sum;
    for (let j = 0; j < n; j++) if (visible[j]) out[r + j] = mat[r + j] * inv;
  }
  return out;
}

/** visible[i] = !(hideSpecial && special[i]). */
export function visibleMask(n: number, special: readonly boolean[], hideSpecial: boolean): boolean[] {
  const v: boolean[] = new Array(n);
  for (let i = 0; i < n; i++) v[i] = !(hideSpecial && !!special[i]);
  return v;
}

/**
 * exBERT's "display top X% of attention": per source row, sort the row's
 * positive edges by weight (descending; ties broken by lower column index) and
 * keep edges until their cumulative weight reaches threshold * row sum. The edge
 * that reaches or crosses the threshold is kept (so at least one edge per row). threshold >= 1 keeps every positive edge
 * (no float-rounding surprises); threshold <= 0 keeps none.
 * Edges are returned ordered by row, then by descending weight.
 */
export function thresholdEdges(mat: Float32Array, n: number, threshold: number): EdgeList {
  const edges = new EdgeBuilder(n * 4);
  if (!(threshold > 0)) return edges.done();
  const keepAll = threshold >= 1;
  // Sort keys instead of a comparator: for non-negative float32, the bit pattern
  // orders like the value, so key = (2^31 - 1 - bits) * M + j sorts ascending by
  // weight descending, then column ascending, with a native numeric sort
  // (about 5x faster than a comparator at n = 512). Exact while bits * M < 2^53.
  const bits = new Uint32Array(mat.buffer, mat.byteOffset, n * n);
  let M = 1;
  while (M < n) M *= 2;
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const r = i * n;
    let count = 0;
    let sum = 0;
    for (let j = 0; j < n; j++) {
      const w = mat[r + j];
      if (w > 0) {
        keys[count++] = (0x7fffffff - bits[r + j]) * M + j;
        sum += w;
      }
    }
    if (count === 0) continue;
    const row = keys.subarray(0, count).sort();
    // Relative slack so float32 rounding cannot pull in one extra edge when the
    // cumulative sum lands exactly on the target (e.g. 0.5 of [0.5, 0.3, 0.2]).
    const target = threshold * sum * (1 - 1e-6);
    let cum = 0;
    for (let k = 0; k < count; k++) {
      const j = row[k] % M;
      const w = mat[r + j];
      edges.push(i, j, w);
      cum += w;
      if (!keepAll && cum >= target) break;
    }
  }
  return edges.done();
}

/**
 * Per-token edge lists built once per state change, so hover is O(degree):
 * token i's outgoing edges are outIds[outStart[i]..outStart[i+1]), its incoming
 * inIds[inStart[i]..inStart[i+1]) (edge ids in edge order).
 */
export interface EdgeIndex {
  outStart: Int32Array;
  outIds: Int32Array;
  inStart: Int32Array;
  inIds: Int32Array;
  maxWeight: number;
}

function bucketBy(keys: Int32Array, count: number, n: number): { start: Int32Array; ids: Int32Array } {
  const start = new Int32Array(n + 1);
  for (let k = 0; k < count; k++) start[keys[k] + 1]++;
  for (let i = 0; i < n; i++) start[i + 1] += start[i];
  const next = start.slice(0, n);
  const ids = new Int32Array(count);
  for (let k = 0; k < count; k++) ids[next[keys[k]]++] = k;
  return { start, ids };
}

export function indexEdges(edges: EdgeList, n: number): EdgeIndex {
  const out = bucketBy(edges.from, edges.count, n);
  const inc = bucketBy(edges.to, edges.count, n);
  let maxWeight = 0;
  for (let k = 0; k < edges.count; k++) if (edges.w[k] > maxWeight) maxWeight = edges.w[k];
  return { outStart: out.start, outIds: out.ids, inStart: inc.start, inIds: inc.ids, maxWeight };
}

/** Ids of token i's outgoing (left) or incoming (right) edges. */
export function edgesOf(index: EdgeIndex, side: "left" | "right", token: number): Int32Array {
  if (token < 0 || token + 1 >= index.outStart.length) return new Int32Array(0);
  return side === "left"
    ? index.outIds.subarray(index.outStart[token], index.outStart[token + 1])
    : index.inIds.subarray(index.inStart[token], index.inStart[token + 1]);
}

/**
 * Heads-grid values from the per-head displayed matrices:
 * left[i*H + h]  = max over visible j of A'_h[i, j]  (attention from token i)
 * right[j*H + h] = mean over visible i of A'_h[i, j] (attention to token j)
 * where A'_h is head h after hidden-token removal and renormalisation.
 */
export function headGridValues(
  att: Float32Array,
  numHeads: number,
  n: number,
  visible: readonly boolean[],
  rows: readonly boolean[] = visible, // the rows the column means run over (a part's block)
): { left: Float32Array; right: Float32Array } {
  const left = new Float32Array(n * numHeads);
  const right = new Float32Array(n * numHeads);
  let nVisible = 0;
  for (let i = 0; i < n; i++) if (visible[i] && rows[i]) nVisible++;
  for (let h = 0; h < numHeads; h++) {
    const m = removeHidden(headMatrix(att, n, h), n, visible);
    const colSum = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      if (!visible[i]) continue;
      const r = i * n;
      let mx = 0;
      for (let j = 0; j < n; j++) {
        const w = m[r + j];
        if (w > mx) mx = w;
        colSum[j] += w;
      }
      left[i * numHeads + h] = mx;
    }
    if (nVisible > 0) for (let j = 0; j < n; j++) if (visible[j]) right[j * numHeads + h] = colSum[j] / nVisible;
  }
  return { left, right };
}

/** FNV-1a over the drawn edge set (weights quantised), as a short hex string. */
export function edgeSignature(edges: EdgeList, ids: ArrayLike<number> | null, salt = ""): string {
  let h = 0x811c9dc5;
  const mix = (x: number) => {
    h ^= x & 0xffff;
    h = Math.imul(h, 0x01000193);
    h ^= x >>> 16;
    h = Math.imul(h, 0x01000193);
  };
  for (let i = 0; i < salt.length; i++) mix(salt.charCodeAt(i));
  const count = ids ? ids.length : edges.count;
  mix(count);
  for (let k = 0; k < count; k++) {
    const e = ids ? ids[k] : k;
    mix(edges.from[e]);
    mix(edges.to[e]);
    mix(Math.round(edges.w[e] * 10000));
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}
