/**
 * tfjs weights manifests: the binary layout tf.io writes (specs in manifest order, shards concatenated)
 * and its post-training quantisation (uint8 / uint16 affine, float16), decoded to plain tensors.
 */
import { GraftError } from '../../errors.js';
import { halfToFloat, numel, type Tensor } from '../../onnx/tensor.js';
import { concatArrays } from '../../util/arrays.js';

export interface WeightQuantization {
  dtype: 'uint8' | 'uint16' | 'float16';
  /** value = min + scale × q (uint8 / uint16 only). */
  min?: number;
  scale?: number;
}

export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32' | 'bool' | 'string' | string;
  quantization?: WeightQuantization;
}

export interface WeightsGroup {
  paths: string[];
  weights: WeightSpec[];
}

export type WeightsManifest = WeightsGroup[];

export type WeightBytes = ArrayBuffer | Uint8Array | readonly (ArrayBuffer | Uint8Array)[];

/** Every spec of a manifest, in the order their bytes appear when all shards are concatenated. */
export function specsOfManifest(manifest: WeightsManifest): WeightSpec[] {
  return manifest.flatMap((g) => g.weights ?? []);
}

/** One contiguous byte view over shards (copied only when there is more than one). */
export function concatBytes(data: WeightBytes): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  const parts = (data as readonly (ArrayBuffer | Uint8Array)[]).map((p) => (p instanceof Uint8Array ? p : new Uint8Array(p)));
  return parts.length === 1 ? parts[0] : concatArrays(parts, (n) => new Uint8Array(n));
}

const PLAIN_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1 };
const QUANT_BYTES: Record<string, number> = { uint8: 1, uint16: 2, float16: 2 };

/**
 * Decodes every weight to float32 (int32 / bool weights keep their type), dequantising exactly as
 * tf.io.decodeWeights does (q × scale + min, rounded once to float32).
 */
export function decodeWeights(data: WeightBytes, specs: readonly WeightSpec[]): Map<string, Tensor> {
  const bytes = concatBytes(data);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Map<string, Tensor>();
  let offset = 0;
  const need = (n: number, spec: WeightSpec) => {
    if (offset + n > bytes.byteLength) {
      throw new GraftError(
        'MODEL_INVALID',
        `The weight data ends inside weight "${spec.name}" (needs bytes ${offset}..${offset + n}, has ${bytes.byteLength}). A weight shard is missing or truncated.`,
        { subject: spec.name },
      );
    }
  };
  for (const spec of specs) {
    const n = numel(spec.shape);
    const q = spec.quantization;
    if (spec.dtype === 'string') {
      // strings are length-prefixed; they never feed a layer, but their bytes must be skipped
      for (let i = 0; i < n; i++) {
        need(4, spec);
        const len = view.getUint32(offset, true);
        offset += 4;
        need(len, spec);
        offset += len;
      }
      continue;
    }
    if (q) {
      const size = QUANT_BYTES[q.dtype];
      if (!size) throw new GraftError('MODEL_INVALID', `Weight "${spec.name}" uses quantisation "${q.dtype}"; only uint8, uint16 and float16 exist in tfjs.`, { subject: spec.name });
      if (q.dtype !== 'float16' && (typeof q.min !== 'number' || typeof q.scale !== 'number')) {
        throw new GraftError('MODEL_INVALID', `Weight "${spec.name}" is ${q.dtype}-quantised but its manifest entry has no min / scale.`, { subject: spec.name });
      }
      need(n * size, spec);
      const raw = (i: number) => (size === 1 ? bytes[offset + i] : view.getUint16(offset + 2 * i, true));
      if (spec.dtype === 'int32') {
        const v = new Int32Array(n);
        for (let i = 0; i < n; i++) v[i] = Math.round(raw(i) * q.scale! + q.min!);
        out.set(spec.name, { dtype: 'int32', dims: [...spec.shape], data: v });
      } else {
        const v = new Float32Array(n);
        if (q.dtype === 'float16') for (let i = 0; i < n; i++) v[i] = halfToFloat(raw(i));
        else for (let i = 0; i < n; i++) v[i] = raw(i) * q.scale! + q.min!;
        out.set(spec.name, { dtype: 'float32', dims: [...spec.shape], data: v });
      }
      offset += n * size;
      continue;
    }
    const size = PLAIN_BYTES[spec.dtype];
    if (!size) throw new GraftError('MODEL_INVALID', `Weight "${spec.name}" has dtype "${spec.dtype}", which a layers model does not use.`, { subject: spec.name });
    need(n * size, spec);
    // a copy: the source bytes need not be 4-byte aligned, and callers may drop the shards afterwards
    const chunk = bytes.slice(offset, offset + n * size);
    const data = spec.dtype === 'float32' ? new Float32Array(chunk.buffer) : spec.dtype === 'int32' ? new Int32Array(chunk.buffer) : chunk;
    out.set(spec.name, { dtype: spec.dtype === 'bool' ? 'bool' : (spec.dtype as 'float32' | 'int32'), dims: [...spec.shape], data });
    offset += n * size;
  }
  if (offset !== bytes.byteLength) {
    throw new GraftError(
      'MODEL_INVALID',
      `The weight data has ${bytes.byteLength} bytes but the manifest describes ${offset}. The shards do not belong to this model.json.`,
    );
  }
  return out;
}
