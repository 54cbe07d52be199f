/** Shared by the importer tests: TensorFlow.js (pure-JS CPU backend) as the reference implementation. */
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import type { Model } from '../../src/graph/graph.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { importLayersModel } from '../../src/models/tfjs/index.js';
import type { WeightSpec } from '../../src/models/tfjs/weights.js';

export { tf };

export async function useCpuBackend(): Promise<void> {
  await tf.setBackend('cpu');
  await tf.ready();
}

/** A small deterministic PRNG (mulberry32) so every run sees the same numbers. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/**
 * Replaces every weight with seeded random values so biases, BN statistics and PReLU slopes are far from
 * their trivial initial values (variances stay positive).
 */
export function randomizeWeights(model: tf.LayersModel, seed: number, scale = 0.5): void {
  let s = seed;
  for (const layer of model.layers) {
    const ws = layer.weights;
    if (!ws.length) continue;
    layer.setWeights(
      ws.map((w) => {
        const shape = w.shape as number[];
        const n = shape.reduce((a, b) => a * b, 1);
        const positive = /moving_variance$/.test(w.originalName);
        const data = positive ? randomArray(n, s++, 0.5, 2) : randomArray(n, s++, -scale, scale);
        return tf.tensor(data, shape);
      }),
    );
  }
}

export interface Artifacts {
  modelTopology: object;
  weightSpecs: WeightSpec[];
  weightData: ArrayBuffer;
}

/** What model.save() hands a save handler: the topology JSON, weight specs and weight bytes. */
export async function saveToMemory(model: tf.LayersModel): Promise<Artifacts> {
  let art: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      art = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return { modelTopology: art!.modelTopology as object, weightSpecs: art!.weightSpecs as WeightSpec[], weightData: art!.weightData as ArrayBuffer };
}

export async function importFromTfjs(model: tf.LayersModel): Promise<Model> {
  const a = await saveToMemory(model);
  return importLayersModel(a.modelTopology, { data: a.weightData, specs: a.weightSpecs });
}

/** NHWC → NCHW for rank 4 (other ranks unchanged). */
export function toNchw(data: Float32Array, shape: readonly number[]): Float32Array {
  if (shape.length !== 4) return data;
  const [n, h, w, c] = shape;
  const out = new Float32Array(data.length);
  for (let b = 0; b < n; b++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) out[((b * c + k) * h + y) * w + x] = data[((b * h + y) * w + x) * c + k];
  return out;
}

/** NCHW → NHWC for rank 4; `shape` is the NCHW shape. */
export function toNhwc(data: Float32Array, shape: readonly number[]): Float32Array {
  if (shape.length !== 4) return data;
  const [n, c, h, w] = shape;
  const out = new Float32Array(data.length);
  for (let b = 0; b < n; b++) for (let k = 0; k < c; k++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[((b * h + y) * w + x) * c + k] = data[((b * c + k) * h + y) * w + x];
  return out;
}

/** Runs an ONNX model (or its bytes / file) in onnxruntime on NHWC inputs; outputs come back in Keras order. */
export async function runOnnxNhwc(model: Model | Uint8Array | string, inputs: { data: Float32Array; shape: number[] }[]): Promise<{ data: Float32Array; shape: number[] }[]> {
  const src = typeof model === 'string' || model instanceof Uint8Array ? model : modelToBytes(model);
  const session = await ort.InferenceSession.create(src as Uint8Array);
  try {
    const feeds: Record<string, ort.Tensor> = {};
    session.inputNames.forEach((name, i) => {
      const { data, shape } = inputs[i];
      const nchw = shape.length === 4 ? [shape[0], shape[3], shape[1], shape[2]] : shape;
      feeds[name] = new ort.Tensor('float32', toNchw(data, shape), nchw);
    });
    const out = await session.run(feeds);
    return session.outputNames.map((name) => {
      const t = out[name];
      const dims = t.dims.map(Number);
      const shape = dims.length === 4 ? [dims[0], dims[2], dims[3], dims[1]] : dims;
      return { data: toNhwc(t.data as Float32Array, dims), shape };
    });
  } finally {
    await session.release();
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function std(a: ArrayLike<number>): number {
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < a.length; i++) {
    s += a[i];
    s2 += a[i] * a[i];
  }
  const m = s / a.length;
  return Math.sqrt(Math.max(s2 / a.length - m * m, 0));
}
