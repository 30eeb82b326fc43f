// Pure geometry and pixels of the model view: every layer x head thumbnail
// (uint8 levels [layers, heads, s, s], decoded to floats 0..255) painted into
// one RGBA image, nearest-neighbour upscaled. No DOM: the panel puts the image
// on one canvas.

export interface GridGeometry {
  layers: number;
  heads: number;
  size: number; // cells a side of one thumbnail (s)
  cell: number; // CSS px a side of one thumbnail
  gap: number; // CSS px between thumbnails
  width: number;
  height: number;
}

/** Room for the grid: thumbnails shrink with more heads, from 64 px down to 16 px. */
export function gridGeometry(layers: number, heads: number, size: number, maxWidth = 900): GridGeometry {
  const gap = heads > 16 ? 2 : 4;
  const cell = Math.max(16, Math.min(64, Math.floor(maxWidth / Math.max(1, heads)) - gap));
  return {
    layers,
    heads,
    size,
    cell,
    gap,
    width: heads * (cell + gap) - gap,
    height: layers * (cell + gap) - gap,
  };
}

/** Top-left corner of thumbnail (layer, head) in CSS px. */
export function cellOrigin(g: GridGeometry, layer: number, head: number): { x: number; y: number } {
  return { x: head * (g.cell + g.gap), y: layer * (g.cell + g.gap) };
}

/** The thumbnail under a point, or null in a gap or outside. */
export function cellAt(g: GridGeometry, x: number, y: number): { layer: number; head: number } | null {
  const step = g.cell + g.gap;
  const head = Math.floor(x / step);
  const layer = Math.floor(y / step);
  if (head < 0 || layer < 0 || head >= g.heads || layer >= g.layers) return null;
  if (x - head * step >= g.cell || y - layer * step >= g.cell) return null;
  return { layer, head };
}

/**
 * The thumbnails at their own size, side by side without gaps: an RGBA atlas
 * (heads * s) x (layers * s), a cell's level `v` drawn as `rgb` at opacity
 * v / 255 over `background`. The canvas scales each thumbnail up (nearest
 * neighbour), so the per-pixel work here is one pass over the levels.
 */
export function paintAtlas(
  g: GridGeometry,
  levels: ArrayLike<number>,
  rgb: readonly [number, number, number],
  background: readonly [number, number, number],
): Uint8ClampedArray<ArrayBuffer> {
  const s = g.size;
  const width = g.heads * s;
  const out = new Uint8ClampedArray(new ArrayBuffer(width * g.layers * s * 4));
  const colour = new Uint8ClampedArray(256 * 4);
  for (let v = 0; v < 256; v++) {
    const a = v / 255;
    for (let c = 0; c < 3; c++) colour[v * 4 + c] = Math.round(background[c] + (rgb[c] - background[c]) * a);
    colour[v * 4 + 3] = 255;
  }
  const words = new Uint32Array(out.buffer);
  const colourWords = new Uint32Array(colour.buffer);
  for (let layer = 0; layer < g.layers; layer++) {
    for (let head = 0; head < g.heads; head++) {
      const base = (layer * g.heads + head) * s * s;
      for (let r = 0; r < s; r++) {
        let o = (layer * s + r) * width + head * s;
        const src = base + r * s;
        for (let c = 0; c < s; c++) {
          const v = levels[src + c];
          words[o++] = colourWords[v > 255 ? 255 : v > 0 ? v | 0 : 0];
        }
      }
    }
  }
  return out;
}

/** "47, 111, 191" or "rgb(47, 111, 191)" as numbers; `fallback` when unreadable. */
export function parseRgb(text: string, fallback: [number, number, number]): [number, number, number] {
  const parts = (text.match(/-?[\d.]+/g) ?? []).slice(0, 3).map(Number);
  return parts.length === 3 && parts.every((p) => Number.isFinite(p)) ? (parts as [number, number, number]) : fallback;
}
