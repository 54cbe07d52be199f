/**
 * Tensors as graft holds them in memory: a dtype, dims and a TypedArray. float16/bfloat16 keep their raw
 * 16-bit patterns (Uint16Array) so a model round-trips bit-exactly; `toFloat32` widens when maths needs it.
 */

export type DType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool'
  | 'string';

export type TensorArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | string[];

export interface Tensor<A extends TensorArray = TensorArray> {
  readonly dtype: DType;
  readonly dims: readonly number[];
  readonly data: A;
}

interface DTypeInfo {
  /** ONNX TensorProto.DataType number. */
  readonly onnx: number;
  readonly bytes: number;
  readonly array: { new (n: number): Exclude<TensorArray, string[]>; new (buf: ArrayBuffer, off: number, n: number): Exclude<TensorArray, string[]> } | null;
}

const DTYPES: Record<DType, DTypeInfo> = {
  float32: { onnx: 1, bytes: 4, array: Float32Array },
  uint8: { onnx: 2, bytes: 1, array: Uint8Array },
  int8: { onnx: 3, bytes: 1, array: Int8Array },
  uint16: { onnx: 4, bytes: 2, array: Uint16Array },
  int16: { onnx: 5, bytes: 2, array: Int16Array },
  int32: { onnx: 6, bytes: 4, array: Int32Array },
  int64: { onnx: 7, bytes: 8, array: BigInt64Array },
  string: { onnx: 8, bytes: 0, array: null },
  bool: { onnx: 9, bytes: 1, array: Uint8Array },
  float16: { onnx: 10, bytes: 2, array: Uint16Array },
  float64: { onnx: 11, bytes: 8, array: Float64Array },
  uint32: { onnx: 12, bytes: 4, array: Uint32Array },
  uint64: { onnx: 13, bytes: 8, array: BigUint64Array },
  bfloat16: { onnx: 16, bytes: 2, array: Uint16Array },
};

const BY_ONNX = new Map<number, DType>(Object.entries(DTYPES).map(([k, v]) => [v.onnx, k as DType]));

export function dtypeFromOnnx(code: number): DType | undefined {
  return BY_ONNX.get(code);
}

export function dtypeToOnnx(dtype: DType): number {
  return DTYPES[dtype].onnx;
}

export function bytesPerElement(dtype: DType): number {
  return DTYPES[dtype].bytes;
}

export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** A zero-filled array of the right class for `dtype`. */
export function allocate(dtype: DType, n: number): TensorArray {
  const ctor = DTYPES[dtype].array;
  return ctor ? new ctor(n) : new Array<string>(n).fill('');
}

/**
 * Views `bytes` (little-endian, as ONNX raw_data is) as a TypedArray of `dtype`. Copies only when the
 * bytes are not aligned for the element size, which protobuf decoding makes common.
 */
export function arrayFromBytes(dtype: DType, bytes: Uint8Array): Exclude<TensorArray, string[]> {
  const info = DTYPES[dtype];
  if (!info.array) throw new TypeError(`dtype ${dtype} has no fixed-size representation`);
  const n = Math.floor(bytes.byteLength / info.bytes);
  if (bytes.byteOffset % info.bytes === 0) return new info.array(bytes.buffer as ArrayBuffer, bytes.byteOffset, n);
  const copy = new Uint8Array(n * info.bytes);
  copy.set(bytes.subarray(0, n * info.bytes));
  return new info.array(copy.buffer, 0, n);
}

export function bytesOf(data: Exclude<TensorArray, string[]>): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export function tensor<A extends TensorArray>(dtype: DType, dims: readonly number[], data: A): Tensor<A> {
  const n = numel(dims);
  if (data.length !== n) throw new RangeError(`tensor of dims [${dims.join(',')}] needs ${n} elements, got ${data.length}`);
  return { dtype, dims: [...dims], data };
}

export function float32(dims: readonly number[], data?: ArrayLike<number>): Tensor<Float32Array> {
  return tensor('float32', dims, data ? Float32Array.from(data) : new Float32Array(numel(dims)));
}

export function int64(dims: readonly number[], data: ArrayLike<number | bigint>): Tensor<BigInt64Array> {
  return tensor('int64', dims, BigInt64Array.from(Array.from(data, (v) => BigInt(v))));
}

export function scalarFloat32(v: number): Tensor<Float32Array> {
  return tensor('float32', [], Float32Array.of(v));
}

// IEEE 754 half → single, done through the bit patterns so subnormals, infinities and NaN survive.
const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

export function halfToFloat(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) {
    if (mant === 0) {
      u32Scratch[0] = sign;
      return f32Scratch[0];
    }
    // subnormal half: value = mant * 2^-24
    const v = mant * 2 ** -24;
    return sign ? -v : v;
  }
  if (exp === 0x1f) {
    u32Scratch[0] = sign | 0x7f800000 | (mant << 13);
    return f32Scratch[0];
  }
  u32Scratch[0] = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  return f32Scratch[0];
}

/** Single → half with round-to-nearest-even. */
export function floatToHalf(v: number): number {
  f32Scratch[0] = v;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  // a carry out of the mantissa correctly bumps the exponent (up to infinity)
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

function bfloat16ToFloat(b: number): number {
  u32Scratch[0] = b << 16;
  return f32Scratch[0];
}

/** Any numeric tensor as float32 (a view when it already is one). */
export function toFloat32(t: Tensor): Tensor<Float32Array> {
  if (t.dtype === 'float32') return t as Tensor<Float32Array>;
  const n = numel(t.dims);
  const out = new Float32Array(n);
  const d = t.data;
  if (t.dtype === 'float16') for (let i = 0; i < n; i++) out[i] = halfToFloat((d as Uint16Array)[i]);
  else if (t.dtype === 'bfloat16') for (let i = 0; i < n; i++) out[i] = bfloat16ToFloat((d as Uint16Array)[i]);
  else if (t.dtype === 'string') throw new TypeError('string tensors have no float value');
  else for (let i = 0; i < n; i++) out[i] = Number((d as ArrayLike<number | bigint>)[i]);
  return { dtype: 'float32', dims: [...t.dims], data: out };
}

/** Integer tensors (shape vectors, axes) as plain numbers. */
export function toNumbers(t: Tensor): number[] {
  if (t.dtype === 'string') throw new TypeError('string tensors have no numeric value');
  if (t.dtype === 'float16' || t.dtype === 'bfloat16') return Array.from(toFloat32(t).data);
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}
