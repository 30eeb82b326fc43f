// Slicing the flat hits_attention array: hit i's attention row (matched token
// -> each token of the hit sentence) is data[att_offset, att_offset + att_length).

import type { Hit } from "./types";

export function hitAttentionRow(data: Float32Array | null, hit: Pick<Hit, "att_offset" | "att_length">): Float32Array {
  const len = Math.max(0, Number(hit.att_length) || 0);
  const out = new Float32Array(len);
  if (!data) return out;
  const start = Math.max(0, Number(hit.att_offset) || 0);
  const end = Math.min(data.length, start + len);
  if (end > start) out.set(data.subarray(start, end));
  return out;
}

/**
 * Shade in [0, 1] per token: value relative to the row's maximum. With `shown`,
 * the maximum is taken over the shown tokens only (hidden special tokens must
 * not wash out the words' shading).
 */
export function shades(row: Float32Array, shown?: (j: number) => boolean): Float32Array {
  let max = 0;
  for (let i = 0; i < row.length; i++) if (row[i] > max && (!shown || shown(i))) max = row[i];
  const out = new Float32Array(row.length);
  if (max > 0) for (let i = 0; i < row.length; i++) out[i] = Math.max(0, row[i]) / max;
  return out;
}
