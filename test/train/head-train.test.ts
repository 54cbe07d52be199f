import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { buildTrainStep } from '../../src/autodiff/train-step.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { float32 } from '../../src/onnx/tensor.js';
import { Runtime } from '../../src/runtime/index.js';
import type { FeatureSet } from '../../src/train/feature-source.js';
import { buildHead, foldStandardization } from '../../src/train/head.js';
import { fitStandardizer, trainHead, type HeadTrainOptions } from '../../src/train/head-train.js';
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

  it('returns its weights unfolded with the standardisation: buildHead({ standardize }) computes the exported head', async () => {
    // features far from zero mean (as pooled ReLU6 activations are), so folding matters
    const raw = blobs(150, 32, 3, 2, 3);
    const train: FeatureSet = { ...raw, features: raw.features.map((v) => 4 + v) };
    const r = await trainHead(train, undefined, 3, { ...base(), epochs: 3, dropout: 0.3 });
    expect(r.standardizer!.mean[0]).toBeGreaterThan(3.9);
    const behind = buildHead({ inputDim: 32, numClasses: 3, dropout: 0.3, seed: 1, standardize: r.standardizer });
    for (const p of behind.params) behind.model.graph.initializers.set(p, float32(behind.model.graph.initializers.get(p)!.dims, r.weights[p]));
    const logits = async (h: typeof behind) =>
      (await (await ort.InferenceSession.create(modelToBytes(h.model))).run({ [h.input]: new ort.Tensor('float32', train.features.subarray(0, 10 * 32), [10, 32]) }))[h.logits].data as Float32Array;
    const [folded, unfolded] = [await logits(r.head), await logits(behind)];
    unfolded.forEach((v, i) => expect(v).toBeCloseTo(folded[i], 4));
    // in training, its dropout drops standardised features: with every feature dropped, the logits are
    // the bias (a dropped raw feature would read as −mean/std ≈ −4/0.15 instead)
    const step = buildTrainStep(behind.model, { trainable: behind.params });
    const feeds: Record<string, ort.Tensor> = {
      [step.dataInput]: new ort.Tensor('float32', train.features.subarray(0, 2 * 32), [2, 32]),
      [step.labels]: new ort.Tensor('int64', BigInt64Array.from([0n, 1n]), [2]),
      [step.dropout[0].input]: new ort.Tensor('float32', new Float32Array(2 * 32), [2, 32]),
    };
    for (const p of step.params) feeds[p.name] = new ort.Tensor('float32', r.weights[p.name], p.dims);
    const dropped = (await (await ort.InferenceSession.create(modelToBytes(step.model))).run(feeds))[step.logits].data as Float32Array;
    const bias = r.weights['head/fc.bias'];
    dropped.forEach((v, i) => expect(v).toBeCloseTo(bias[i % 3], 5));
  });

  it('a feature constant on the training set (a dead ReLU channel) is not scaled into thousands of σ', () => {
    // 3 features: two spread with std ≈ 0.1 and 0.2, one always 0 in training
    const rows = 200;
    const features = new Float32Array(rows * 3);
    const rng = createRng(9);
    for (let r = 0; r < rows; r++) {
      features[r * 3] = 1 + 0.1 * rng.normal();
      features[r * 3 + 1] = 2 + 0.2 * rng.normal();
    }
    const s = fitStandardizer({ features, labels: new Int32Array(rows), dim: 3 });
    expect(1 / s.invStd[0]).toBeCloseTo(0.1, 1);
    // floored at a tenth of the median std (0.1 here): a 0.05 activation later reads as ~5σ, not 50 000σ
    expect(1 / s.invStd[2]).toBeGreaterThan(0.005);
    expect(1 / s.invStd[2]).toBeLessThan(0.02);
  });

  it('foldStandardization folds the standardisation into the first layer, through dropout and a hidden layer', async () => {
    const D = 24;
    const standardize = { mean: Float32Array.from({ length: D }, (_, d) => 3 + d / 10), invStd: Float32Array.from({ length: D }, (_, d) => 1 / (0.1 + d / 50)) };
    const h = buildHead({ inputDim: D, numClasses: 4, hidden: 8, dropout: 0.3, seed: 3, standardize });
    const x = new ort.Tensor('float32', blobs(6, D, 2, 4).features.map((v) => 3 + v), [6, D]);
    const run = async (m: typeof h.model) => (await (await ort.InferenceSession.create(modelToBytes(m))).run({ [h.input]: x }))[h.logits].data as Float32Array;
    const before = await run(h.model);
    const folded = h.model.clone();
    foldStandardization(folded);
    const after = await run(folded);
    after.forEach((v, i) => expect(v).toBeCloseTo(before[i], 4));
    expect(folded.graph.nodes.map((n) => n.opType)).not.toContain('Sub');
    expect([...folded.graph.initializers.keys()].filter((k) => k.startsWith('head/features.'))).toEqual([]);
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
