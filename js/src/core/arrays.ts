// The one decoder for binary array traits. Python sends every array as
// {view: DataView, dtype, shape} (little-endian bytes, C order); this turns it
// into a typed array. float16 is widened to Float32Array because JS has no
// native half type.

export type NumericArray = Float32Array | Uint8Array | Uint16Array | Int32Array;

export interface Decoded<T extends NumericArray = NumericArray> {
  data: T;
  shape: number[];
}

export interface ArrayPayload {
  view: DataView | ArrayBuffer | ArrayBufferView;
  dtype: string;
  shape: number[];
}

let HALF_TABLE: Float32Array | null = null;

/** Exact float16 (IEEE 754 binary16) bits -> number, including subnormals, inf and NaN. */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x03ff;
  if (exp === 0) return sign * frac * 2 ** -24; // subnormal (and signed zero)
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

// A 65536-entry lookup table makes decoding [H, 512, 512] a single pass of loads.
function halfTable(): Float32Array {
  if (!HALF_TABLE) {
    HALF_TABLE = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) HALF_TABLE[i] = halfToFloat(i);
  }
  return HALF_TABLE;
}

function toDataView(v: ArrayPayload["view"]): DataView {
  if (v instanceof DataView) return v;
  if (v instanceof ArrayBuffer) return new DataView(v);
  if (ArrayBuffer.isView(v)) return new DataView(v.buffer, v.byteOffset, v.byteLength);
  throw new TypeError("array payload has no byte view");
}

/** Normalise numpy-style dtype spellings ("<f2", "float16", "f4", ...). */
export function normaliseDtype(dtype: string): string {
  const d = dtype.replace(/^[<=|]/, "");
  switch (d) {
    case "f2":
    case "float16":
    case "half":
      return "float16";
    case "f4":
    case "float32":
      return "float32";
    case "u1":
    case "uint8":
    case "b1":
    case "bool":
      return "uint8";
    case "u2":
    case "uint16":
      return "uint16";
    case "i4":
    case "int32":
      return "int32";
    default:
      return d;
  }
}

function product(shape: number[]): number {
  let p = 1;
  for (const s of shape) p *= s;
  return p;
}

export function isPayload(x: unknown): x is ArrayPayload {
  return (
    typeof x === "object" &&
    x !== null &&
    "view" in x &&
    "dtype" in x &&
    "shape" in x &&
    (x as ArrayPayload).view != null
  );
}

/** Decode a payload; returns null for null/undefined/malformed input (e.g. no analysis yet). */
export function decodeArray(payload: unknown): Decoded | null {
  if (!isPayload(payload)) return null;
  const dv = toDataView(payload.view);
  const shape = Array.from(payload.shape, Number);
  const count = product(shape);
  const dtype = normaliseDtype(String(payload.dtype));
  if (dtype.startsWith(">")) throw new Error(`big-endian arrays are not supported: ${payload.dtype}`);
  switch (dtype) {
    case "float16": {
      checkSize(dv, count, 2, dtype);
      const table = halfTable();
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[dv.getUint16(i * 2, true)];
      return { data: out, shape };
    }
    case "float32": {
      checkSize(dv, count, 4, dtype);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
      return { data: out, shape };
    }
    case "uint8": {
      checkSize(dv, count, 1, dtype);
      // Copy so the result never aliases a buffer the widget manager may reuse.
      const out = new Uint8Array(count);
      out.set(new Uint8Array(dv.buffer, dv.byteOffset, count));
      return { data: out, shape };
    }
    case "uint16": {
      checkSize(dv, count, 2, dtype);
      const out = new Uint16Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getUint16(i * 2, true);
      return { data: out, shape };
    }
    case "int32": {
      checkSize(dv, count, 4, dtype);
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getInt32(i * 4, true);
      return { data: out, shape };
    }
    default:
      throw new Error(`unsupported dtype: ${payload.dtype}`);
  }
}

function checkSize(dv: DataView, count: number, itemSize: number, dtype: string): void {
  if (dv.byteLength < count * itemSize) {
    throw new Error(`${dtype} payload has ${dv.byteLength} bytes, shape needs ${count * itemSize}`);
  }
}

/**
 * Decode and require a float result (float16/float32); ints are widened. With
 * `dtype`, a payload of another dtype is refused (an error).
 */
export function decodeFloat(payload: unknown, dtype?: string): Decoded<Float32Array> | null {
  if (dtype !== undefined && isPayload(payload) && normaliseDtype(String(payload.dtype)) !== dtype) {
    throw new Error(`dtype ${payload.dtype} is not ${dtype}`);
  }
  const d = decodeArray(payload);
  if (!d) return null;
  if (d.data instanceof Float32Array) return d as Decoded<Float32Array>;
  return { data: Float32Array.from(d.data), shape: d.shape };
}
