/** Batches from features held in memory (head training on cached backbone features). */
import type { TrainBatch, BatchSource } from './fit.js';
import { fork, shuffle } from '../util/random.js';

export interface FeatureSet {
  /** Row-major [n × dim]. */
  features: Float32Array;
  labels: Int32Array;
  dim: number;
}

export function featureSource(train: FeatureSet, val: FeatureSet | undefined, opts: { batchSize: number; seed: number; classWeights?: Float32Array }): BatchSource {
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
    return { data: { dtype: 'float32', dims: [rows, set.dim], data }, labels, sampleWeight };
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
      // evaluation batches can be large: there is no backward pass to hold memory for
      const EB = Math.max(B, 256);
      for (let s = 0; s < m; s += EB) yield take(val, order, s, Math.min(m, s + EB));
    },
  };
}
