// The strips' palette: every POS tag its own colour, and the colours apart under normal vision
// and simulated colour blindness (Machado, Oliveira & Fernandes 2009, severity 1, applied in
// linear RGB), by CIEDE2000 distance in CIELAB.
import { describe, expect, it } from "vitest";
import { colorFor, DEP_LABELS, EMPTY_COLOR, ENTITY_TYPES, PALETTE, POS_TAGS } from "../src/panels/search/palette";

type RGB = [number, number, number];
const SIMULATIONS: Record<string, number[][]> = {
  normal: [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
  ],
  protanopia: [
    [0.152286, 1.052583, -0.204868],
    [0.114503, 0.786281, 0.099216],
    [-0.003882, -0.048116, 1.051998],
  ],
  deuteranopia: [
    [0.367322, 0.860646, -0.227968],
    [0.280085, 0.672501, 0.047413],
    [-0.01182, 0.04294, 0.968881],
  ],
  tritanopia: [
    [1.255528, -0.076749, -0.178779],
    [-0.078411, 0.930809, 0.147602],
    [0.004733, 0.691367, 0.3039],
  ],
};

const hex = (c: string): RGB => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16) / 255) as RGB;
const linear = (v: number) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
const gamma = (v: number) => {
  const c = Math.min(1, Math.max(0, v));
  return c <= 0.0031308 ? 12.92 * c : 1.055 * c ** (1 / 2.4) - 0.055;
};

function simulate(c: RGB, m: number[][]): RGB {
  const l = c.map(linear);
  return m.map((row) => gamma(row[0] * l[0] + row[1] * l[1] + row[2] * l[2])) as RGB;
}

function lab(c: RGB): RGB {
  const [r, g, b] = c.map(linear);
  const xyz = [
    (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047,
    0.2126 * r + 0.7152 * g + 0.0722 * b,
    (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883,
  ];
  const f = xyz.map((t) => (t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116));
  return [116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])];
}

/** CIEDE2000 (Sharma, Wu & Dalal 2005). */
function deltaE(p: RGB, q: RGB): number {
  const rad = Math.PI / 180;
  const [L1, a1, b1] = p;
  const [L2, a2, b2] = q;
  const Cb = (Math.hypot(a1, b1) + Math.hypot(a2, b2)) / 2;
  const G = 0.5 * (1 - Math.sqrt(Cb ** 7 / (Cb ** 7 + 25 ** 7)));
  const a1p = (1 + G) * a1;
  const a2p = (1 + G) * a2;
  const C1 = Math.hypot(a1p, b1);
  const C2 = Math.hypot(a2p, b2);
  const h1 = (Math.atan2(b1, a1p) / rad + 360) % 360;
  const h2 = (Math.atan2(b2, a2p) / rad + 360) % 360;
  let dh = h2 - h1;
  if (C1 * C2 === 0) dh = 0;
  else if (dh > 180) dh -= 360;
  else if (dh < -180) dh += 360;
  const dL = L2 - L1;
  const dC = C2 - C1;
  const dH = 2 * Math.sqrt(C1 * C2) * Math.sin((dh / 2) * rad);
  const Lb = (L1 + L2) / 2;
  const Cbp = (C1 + C2) / 2;
  let hb = h1 + h2;
  if (C1 * C2 !== 0) hb = Math.abs(h1 - h2) > 180 ? (hb + 360) / 2 : hb / 2;
  const T =
    1 -
    0.17 * Math.cos((hb - 30) * rad) +
    0.24 * Math.cos(2 * hb * rad) +
    0.32 * Math.cos((3 * hb + 6) * rad) -
    0.2 * Math.cos((4 * hb - 63) * rad);
  const dTheta = 30 * Math.exp(-(((hb - 275) / 25) ** 2));
  const Rc = 2 * Math.sqrt(Cbp ** 7 / (Cbp ** 7 + 25 ** 7));
  const Sl = 1 + (0.015 * (Lb - 50) ** 2) / Math.sqrt(20 + (Lb - 50) ** 2);
  const Sc = 1 + 0.045 * Cbp;
  const Sh = 1 + 0.015 * Cbp * T;
  const Rt = -Math.sin(2 * dTheta * rad) * Rc;
  return Math.sqrt((dL / Sl) ** 2 + (dC / Sc) ** 2 + (dH / Sh) ** 2 + Rt * (dC / Sc) * (dH / Sh));
}

/** The smallest distance between two of `colors` under any of the simulations. */
function closest(colors: string[]): number {
  let min = Infinity;
  for (const m of Object.values(SIMULATIONS)) {
    const labs = colors.map((c) => lab(simulate(hex(c), m)));
    for (let i = 0; i < labs.length; i++) for (let j = 0; j < i; j++) min = Math.min(min, deltaE(labs[i], labs[j]));
  }
  return min;
}

describe("palette", () => {
  it("computes CIEDE2000 as published (Sharma et al.'s test pairs)", () => {
    expect(deltaE([50, 2.6772, -79.7751], [50, 0, -82.7485])).toBeCloseTo(2.0425, 4);
    expect(deltaE([50, -1.3802, -84.2814], [50, 0, -82.7485])).toBeCloseTo(1.0, 3);
    expect(deltaE([50, 2.5, 0], [73, 25, -18])).toBeCloseTo(27.1492, 3);
  });

  it("gives every POS tag, entity type and common DEP label its own colour", () => {
    for (const list of [POS_TAGS, ENTITY_TYPES, DEP_LABELS]) {
      const colors = list.map(colorFor);
      expect(new Set(colors).size).toBe(list.length);
      expect(colors).not.toContain(EMPTY_COLOR);
    }
    expect(colorFor("VERB")).not.toBe(colorFor("PROPN")); // the issue: both were orange
    expect(colorFor("AUX")).not.toBe(colorFor("VERB"));
  });

  it("keeps the colours apart for colour-blind readers too", () => {
    expect(closest(PALETTE)).toBeGreaterThanOrEqual(7.5); // any two, any vision
    expect(closest(PALETTE.slice(0, 9))).toBeGreaterThanOrEqual(11.5); // the nine commonest POS
    expect(closest([...PALETTE, EMPTY_COLOR])).toBeGreaterThanOrEqual(7.5); // and "none"
  });
});
