// Pure attention logic: no DOM. Matrices are row-major Float32Array of n*n,
// row = attending-from token, column = attended-to token. Indices always stay
// in the full token numbering (hidden tokens get zero rows/columns) so the
// view never has to translate between "visible" and "model" indices.

export interface Edge {
  from: number;
  to: number;
  w: number;
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
export function thresholdEdges(mat: Float32Array, n: number, threshold: number): Edge[] {
  const edges: Edge[] = [];
  if (!(threshold > 0)) return edges;
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
      edges.push({ from: i, to: j, w });
      cum += w;
      if (!keepAll && cum >= target) break;
    }
  }
  return edges;
}

/** Per-token edge lists built once per state change, so hover is O(degree). */
export interface EdgeIndex {
  outgoing: number[][]; // token -> indices into edges
  incoming: number[][];
  maxWeight: number;
}

export function indexEdges(edges: readonly Edge[], n: number): EdgeIndex {
  const outgoing: number[][] = Array.from({ length: n }, () => []);
  const incoming: number[][] = Array.from({ length: n }, () => []);
  let maxWeight = 0;
  edges.forEach((e, k) => {
    outgoing[e.from].push(k);
    incoming[e.to].push(k);
    if (e.w > maxWeight) maxWeight = e.w;
  });
  return { outgoing, incoming, maxWeight };
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
): { left: Float32Array; right: Float32Array } {
  const left = new Float32Array(n * numHeads);
  const right = new Float32Array(n * numHeads);
  let nVisible = 0;
  for (let i = 0; i < n; i++) if (visible[i]) nVisible++;
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
export function edgeSignature(edges: readonly Edge[], ids: readonly number[] | null, salt = ""): string {
  let h = 0x811c9dc5;
  const mix = (x: number) => {
    h ^= x & 0xffff;
    h = Math.imul(h, 0x01000193);
    h ^= x >>> 16;
    h = Math.imul(h, 0x01000193);
  };
  for (let i = 0; i < salt.length; i++) mix(salt.charCodeAt(i));
  const count = ids ? ids.length : edges.length;
  mix(count);
  for (let k = 0; k < count; k++) {
    const e = edges[ids ? ids[k] : k];
    mix(e.from);
    mix(e.to);
    mix(Math.round(e.w * 10000));
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}
