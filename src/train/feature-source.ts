/** Batches from features held in memory (head training on cached backbone features). */
import type { TrainBatch, BatchSource } from './fit.js';
import { fork, shuffle } from '../util/random.js';

export interface FeatureSet {
  /** Row-major [n × dim]. */
  features: Float32Array;
  labels: Int32Array;
  dim: number;
  /** Paths of the rows, when known (so validation predictions can name their images). */
  paths?: string[];
}

export function featureSource(
  train: FeatureSet,
  val: FeatureSet | undefined,
  opts: { batchSize: number; seed: number; classWeights?: Float32Array; /** Shape of one row as the graph takes it (e.g. [C, H, W]); default [dim]. */ rowDims?: number[] },
): BatchSource {
  const rowDims = opts.rowDims ?? [train.dim];
  const n = train.labels.length;
  const B = Math.max(1, opts.batchSize);
  const take = (set: FeatureSet, idx: ArrayLike<number>, from: number, to: number): TrainBatch => {
    const rows = to - from;
    const data = new Float32Array(rows * set.dim);
    const labels = new Int32Array(rows);
    for (let r = 0; r < rows; r++) {
      const i = idx[from + r];
      data.set(set.features.subarray(i * set.dim, (i + 1) * set.dim), r * set.dim);
      labels[r] = set.labels[i];
    }
    const sampleWeight = opts.classWeights ? Float32Array.from(labels, (l) => opts.classWeights![l]) : undefined;
    const paths = set.paths ? Array.from({ length: rows }, (_, r) => set.paths![idx[from + r]]) : undefined;
    return { data: { dtype: 'float32', dims: [rows, ...rowDims], data }, labels, sampleWeight, ...(paths ? { paths } : {}) };
  };
  return {
    trainBatches: Math.ceil(n / B),
    hasVal: !!val && val.labels.length > 0,
    async *train(epoch, fromBatch = 0) {
      const order = shuffle(fork(opts.seed, 'epoch', epoch), Array.from({ length: n }, (_, i) => i));
      for (let s = fromBatch * B; s < n; s += B) yield take(train, order, s, Math.min(n, s + B));
    },
    async *val() {
      if (!val) return;
      const m = val.labels.length;
      const order = Array.from({ length: m }, (_, i) => i);
      // evaluation batches can be large (no backward pass to hold memory for), within ~16 MB of rows
      const EB = Math.max(B, Math.min(256, Math.floor(4_000_000 / val.dim)));
      for (let s = 0; s < m; s += EB) yield take(val, order, s, Math.min(m, s + EB));
    },
  };
}
