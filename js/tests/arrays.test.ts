import { describe, expect, it } from "vitest";
import { decodeArray, decodeFloat, halfToFloat, normaliseDtype } from "../src/core/arrays";

function bytesU16(values: number[], pad = 0): DataView {
  // Put the data at a non-zero, odd offset to check byteOffset handling.
  const buf = new ArrayBuffer(pad + values.length * 2);
  const dv = new DataView(buf, pad);
  values.forEach((v, i) => {
    dv.setUint16(i * 2, v, true);
  });
  return dv;
}

describe("float16", () => {
  const cases: Array<[number, number]> = [
    [0x0000, 0],
    [0x3c00, 1],
    [0xbc00, -1],
    [0xc000, -2],
    [0x3800, 0.5],
    [0x3555, 0.333251953125],
    [0x7bff, 65504],
    [0x0400, 2 ** -14], // smallest normal
    [0x0001, 2 ** -24], // smallest subnormal
    [0x03ff, 1023 * 2 ** -24], // largest subnormal
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ];
  it.each(cases)("bits %s decode exactly", (bits, value) => {
    expect(halfToFloat(bits)).toBe(value);
  });
  it("decodes NaN and negative zero", () => {
    expect(halfToFloat(0x7e00)).toBeNaN();
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
  });
  it("decodes a float16 payload with shape, at an odd byte offset", () => {
    const d = decodeArray({
      view: bytesU16([0x3c00, 0x3800, 0x3555, 0xc000, 0x0000, 0x7bff], 3),
      dtype: "float16",
      shape: [2, 3],
    });
    expect(d).not.toBeNull();
    expect(d!.shape).toEqual([2, 3]);
    expect(d!.data).toBeInstanceOf(Float32Array);
    expect(Array.from(d!.data)).toEqual([1, 0.5, 0.333251953125, -2, 0, 65504]);
  });
  it("accepts numpy dtype spellings", () => {
    expect(normaliseDtype("<f2")).toBe("float16");
    expect(normaliseDtype("float32")).toBe("float32");
    expect(normaliseDtype("|u1")).toBe("uint8");
    expect(normaliseDtype("<i4")).toBe("int32");
    const d = decodeArray({ view: bytesU16([0x4000]), dtype: "<f2", shape: [1] });
    expect(Array.from(d!.data)).toEqual([2]);
  });
});

describe("float32, uint8, int32", () => {
  it("decodes float32 from known bit patterns", () => {
    const dv = new DataView(new ArrayBuffer(12));
    dv.setUint32(0, 0x3f800000, true); // 1
    dv.setUint32(4, 0xc0490fdb, true); // -pi (float32)
    dv.setUint32(8, 0x3e800000, true); // 0.25
    const d = decodeArray({ view: dv, dtype: "float32", shape: [3] })!;
    expect(d.data[0]).toBe(1);
    expect(d.data[1]).toBe(Math.fround(-Math.PI));
    expect(d.data[2]).toBe(0.25);
  });
  it("decodes uint8 (copying) and int32 (signed, little-endian)", () => {
    const u = decodeArray({ view: new Uint8Array([0, 1, 255, 7]), dtype: "uint8", shape: [2, 2] })!;
    expect(u.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(u.data)).toEqual([0, 1, 255, 7]);
    const dv = new DataView(new ArrayBuffer(8));
    dv.setInt32(0, -5, true);
    dv.setInt32(4, 123456789, true);
    const i = decodeArray({ view: dv.buffer, dtype: "int32", shape: [2] })!;
    expect(i.data).toBeInstanceOf(Int32Array);
    expect(Array.from(i.data)).toEqual([-5, 123456789]);
  });
  it("widens ints to float with decodeFloat and returns null for empty traits", () => {
    const f = decodeFloat({ view: new Uint8Array([3, 4]), dtype: "uint8", shape: [2] })!;
    expect(f.data).toBeInstanceOf(Float32Array);
    expect(Array.from(f.data)).toEqual([3, 4]);
    expect(decodeArray(null)).toBeNull();
    expect(decodeArray({})).toBeNull();
  });
  it("rejects payloads shorter than their shape and unknown dtypes", () => {
    expect(() => decodeArray({ view: new Uint8Array(2), dtype: "float32", shape: [1] })).toThrow();
    expect(() => decodeArray({ view: new Uint8Array(8), dtype: "float64", shape: [1] })).toThrow(/unsupported/);
  });
});

describe("uint16 (the kernel's lines)", () => {
  it("decodes little-endian at any offset and widens to float on request", () => {
    const dv = bytesU16([0, 1, 65535, 300], 3);
    const d = decodeArray({ view: dv, dtype: "uint16", shape: [2, 2] })!;
    expect(d.data).toBeInstanceOf(Uint16Array);
    expect(Array.from(d.data)).toEqual([0, 1, 65535, 300]);
    expect(normaliseDtype("<u2")).toBe("uint16");
    const f = decodeFloat({ view: dv, dtype: "uint16", shape: [4] }, "uint16")!;
    expect(Array.from(f.data)).toEqual([0, 1, 65535, 300]);
    expect(() => decodeArray({ view: bytesU16([1]), dtype: "uint16", shape: [2] })).toThrow(/bytes/);
  });
});
