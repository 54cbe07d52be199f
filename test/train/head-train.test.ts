import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { modelToBytes } from '../../src/graph/serialize.js';
import { Runtime } from '../../src/runtime/index.js';
import type { FeatureSet } from '../../src/train/feature-source.js';
import { trainHead, type HeadTrainOptions } from '../../src/train/head-train.js';
import { createRng } from '../../src/util/random.js';

/** Gaussian blobs in D dimensions: class k centred at a random unit-ish direction. */
function blobs(n: number, dim: number, K: number, seed: number, spread = 1.0): FeatureSet {
  const rng = createRng(seed);
  const centers = Array.from({ length: K }, () => Float32Array.from({ length: dim }, () => rng.normal() * 0.15));
  const features = new Float32Array(n * dim);
  const labels = new Int32Array(n);
  const noise = createRng(seed + 1);
  for (let i = 0; i < n; i++) {
    const k = i % K;
    labels[i] = k;
    for (let d = 0; d < dim; d++) features[i * dim + d] = Math.max(0, centers[k][d] + noise.normal() * spread * 0.15);
  }
  return { features, labels, dim };
}

let runtime: Runtime;
beforeAll(async () => {
  runtime = await Runtime.create();
});
afterAll(async () => {
  await runtime.close();
});

const base = (): HeadTrainOptions => ({
  runtime,
  epochs: 100,
  batchSize: 32,
  lr: 1e-3,
  optimizer: 'adamw',
  weightDecay: 1e-4,
  schedule: 'one-cycle',
  labelSmoothing: 0,
  dropout: 0,
  patience: 0,
  seed: 1,
});

describe('head training on cached features', () => {
  it('learns 1 280-d features of 5 classes to high validation accuracy, loss falling', async () => {
    // train and validation draws share their class centres: one generator, split
    const all = blobs(1250, 1280, 5, 3);
    const train: FeatureSet = { features: all.features.subarray(0, 1000 * 1280), labels: all.labels.subarray(0, 1000), dim: 1280 };
    const val: FeatureSet = { features: all.features.subarray(1000 * 1280), labels: all.labels.subarray(1000), dim: 1280 };
    const r = await trainHead(train, val, 5, { ...base(), epochs: 20 });
    expect(r.fit.history).toHaveLength(20);
    const last = r.fit.history.at(-1)!;
    expect(last.valAccuracy).toBeGreaterThan(0.95);
    expect(r.fit.history[0].trainLoss).toBeGreaterThan(last.trainLoss);
  });

  it('is deterministic for a seed, and the exported head reproduces the validation predictions', async () => {
    const train = blobs(200, 64, 3, 5, 3);
    const all = blobs(260, 64, 3, 5, 3);
    const val: FeatureSet = { features: all.features.subarray(200 * 64), labels: all.labels.subarray(200), dim: 64 };
    const o = { ...base(), epochs: 5, hidden: 16, dropout: 0.2 };
    const a = await trainHead(train, val, 3, o);
    const b = await trainHead(train, val, 3, o);
    expect(a.fit.history.map((h) => h.valLoss)).toEqual(b.fit.history.map((h) => h.valLoss));
    // the head model, run by plain onnxruntime, gives the validation loss fit recorded for the best epoch
    const s = await ort.InferenceSession.create(modelToBytes(a.head.model));
    const out = await s.run({ [a.head.input]: new ort.Tensor('float32', val.features, [60, 64]) });
    const logits = out[a.head.logits].data as Float32Array;
    let loss = 0;
    for (let n = 0; n < 60; n++) {
      const row = Array.from(logits.subarray(n * 3, n * 3 + 3));
      const m = Math.max(...row);
      loss += m + Math.log(row.reduce((acc, x) => acc + Math.exp(x - m), 0)) - row[val.labels[n]];
    }
    const bestEpoch = a.fit.best!.epoch;
    expect(loss / 60).toBeCloseTo(a.fit.history[bestEpoch - 1].valLoss!, 4);
  });

  it('early stopping stops when validation loss stalls and keeps the best epoch', async () => {
    const train = blobs(120, 32, 3, 9, 6);
    const all = blobs(180, 32, 3, 9, 6);
    const val: FeatureSet = { features: all.features.subarray(120 * 32), labels: all.labels.subarray(120), dim: 32 };
    const r = await trainHead(train, val, 3, { ...base(), epochs: 300, lr: 3e-2, schedule: 'constant', patience: 3 });
    expect(r.fit.stoppedEarly).toBe(true);
    const losses = r.fit.history.map((h) => h.valLoss!);
    expect(r.fit.best!.valLoss).toBe(Math.min(...losses));
    expect(r.fit.history.length - r.fit.best!.epoch).toBe(3);
  });
});
