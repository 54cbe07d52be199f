/**
 * The compiled training step on a small CNN: the loss matches an independent computation, the gradient
 * of every trainable weight matches finite differences of the loss, and the options (label smoothing,
 * sample weights, dropout masks, batch-statistics BN, freezing) do what they say.
 */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { buildTrainStep, type TrainStep, type TrainStepOptions } from '../../src/autodiff/train-step.js';
import { GraphBuilder } from '../../src/graph/builder.js';
import { Graph, Model } from '../../src/graph/graph.js';
import { attr } from '../../src/graph/ir.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { inferShapes } from '../../src/graph/shapes.js';
import { float32 } from '../../src/onnx/tensor.js';
import { fill } from '../fixtures/prng.js';

const N = 3;
const K = 4;

/**
 * conv-BN-act → pool → conv(+bias) → act → GAP → flatten → dropout → gemm: logits [N, K]. The smooth
 * variant (Softplus, average pooling) is for finite differences across the whole network: with ReLU
 * and max pooling some kink always sits inside the step (those rules have exact tests of their own).
 */
function smallCnn(smooth = true, clip = false): Model {
  const g = new Graph({ inputs: [{ name: 'image', dtype: 'float32', shape: ['batch', 3, 8, 8] }] });
  const b = new GraphBuilder(g);
  const w = (name: string, dims: number[], seed: number, lo = -0.5, hi = 0.5) => {
    g.initializers.set(name, float32(dims, fill(seed, dims, lo, hi)));
    return name;
  };
  const c1 = b.op('Conv', ['image', w('conv1.weight', [6, 3, 3, 3], 1)], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  const bn = b.op('BatchNormalization', [c1, w('bn1.weight', [6], 2, 0.5, 1.5), w('bn1.bias', [6], 3), w('bn1.running_mean', [6], 4, -0.2, 0.2), w('bn1.running_var', [6], 5, 0.5, 1.5)], {
    epsilon: attr.f(1e-5),
    momentum: attr.f(0.9),
  });
  const act = smooth ? 'Softplus' : 'Relu';
  const r1 = clip ? b.op('Clip', [bn, b.f32(0), b.f32(0.6)]) : b.op(act, [bn]);
  const p1 = b.op(smooth ? 'AveragePool' : 'MaxPool', [r1], { kernel_shape: [2, 2], strides: [2, 2] });
  const c2 = b.op('Conv', [p1, w('conv2.weight', [8, 6, 3, 3], 6), w('conv2.bias', [8], 7)], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  const r2 = b.op(act, [c2]);
  const flat = b.op('Flatten', [b.op('GlobalAveragePool', [r2])], { axis: 1 });
  const drop = b.op('Dropout', [flat, b.f32(0.25)]);
  b.op('Gemm', [drop, w('fc.weight', [K, 8], 8), w('fc.bias', [K], 9)], { transB: 1 }, { outputs: ['logits'] });
  g.outputs = [{ name: 'logits', dtype: 'float32', shape: ['batch', K] }];
  return new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }] });
}

const ALL = ['conv1.weight', 'bn1.weight', 'bn1.bias', 'conv2.weight', 'conv2.bias', 'fc.weight', 'fc.bias'];
const image = fill(100, [N, 3, 8, 8], -1, 1);
const labels = BigInt64Array.of(0n, 3n, 1n);

interface Run {
  step: TrainStep;
  session: ort.InferenceSession;
  weights: Map<string, Float32Array>;
  masks: Map<string, Float32Array>;
  stats: Map<string, Float32Array>;
}

async function compile(opts: Omit<TrainStepOptions, 'trainable'> & { trainable?: string[] } = {}, model = smallCnn()): Promise<Run> {
  const step = buildTrainStep(model, { trainable: opts.trainable ?? ALL, ...opts });
  const session = await ort.InferenceSession.create(modelToBytes(step.model));
  const weights = new Map(step.params.map((p) => [p.name, Float32Array.from(model.graph.initializers.get(p.name)!.data as Float32Array)]));
  const masks = new Map(
    step.dropout.map((d, k) => {
      const n = N * (d.shape.slice(1) as number[]).reduce((a, x) => a * x, 1);
      const u = fill(500 + k, [n], 0, 1);
      return [d.input, u.map((v) => (v < d.ratio ? 0 : 1 / (1 - d.ratio)))];
    }),
  );
  const stats = new Map(step.bnStats.map((s) => [s.input, Float32Array.from(model.graph.initializers.get(s.input)!.data as Float32Array)]));
  return { step, session, weights, masks, stats };
}

async function run(r: Run, override: Map<string, Float32Array> = new Map(), sampleWeight?: Float32Array) {
  const feeds: Record<string, ort.Tensor> = {
    [r.step.dataInput]: new ort.Tensor('float32', image, [N, 3, 8, 8]),
    [r.step.labels]: new ort.Tensor('int64', labels, [N]),
  };
  if (r.step.sampleWeight) feeds[r.step.sampleWeight] = new ort.Tensor('float32', sampleWeight!, [N]);
  for (const p of r.step.params) feeds[p.name] = new ort.Tensor('float32', override.get(p.name) ?? r.weights.get(p.name)!, p.dims);
  for (const d of r.step.dropout) feeds[d.input] = new ort.Tensor('float32', r.masks.get(d.input)!, [N, ...(d.shape.slice(1) as number[])]);
  for (const s of r.step.bnStats) feeds[s.input] = new ort.Tensor('float32', r.stats.get(s.input)!, s.dims);
  return r.session.run(feeds);
}

function crossEntropy(logits: Float32Array, eps = 0, w?: Float32Array): number {
  let total = 0;
  let wsum = 0;
  for (let n = 0; n < N; n++) {
    const row = Array.from(logits.subarray(n * K, n * K + K));
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    let l = 0;
    for (let k = 0; k < K; k++) l -= ((k === Number(labels[n]) ? 1 - eps : 0) + eps / K) * (row[k] - lse);
    const wn = w ? w[n] : 1;
    total += wn * l;
    wsum += wn;
  }
  return total / wsum;
}

/**
 * Worst relative error between <grad, v> and the central difference of the loss along v. A whole
 * network in float32 (ORT has no float64 Conv) leaves ~1e-3 of noise and the odd ReLU/max-pool kink
 * inside the step; the per-rule tests and the PyTorch fixtures are the tight checks.
 */
async function worstDirectionalError(r: Run, opts: { sampleWeight?: Float32Array; eps?: number } = {}): Promise<number> {
  const { sampleWeight, eps = 0 } = opts;
  const out = await run(r, new Map(), sampleWeight);
  let worst = 0;
  for (const p of r.step.params) {
    const g = out[p.grad].data as Float32Array;
    const w = r.weights.get(p.name)!;
    for (let k = 0; k < 2; k++) {
      const v = fill(900 + k + p.name.length, [w.length], -1, 1);
      const h = 1e-3;
      // the loss is recomputed in float64 from the logits: float32 rounding of the in-graph loss
      // would otherwise dominate the central difference
      const lossAt = async (sign: number) =>
        crossEntropy((await run(r, new Map([[p.name, w.map((x, i) => x + sign * h * v[i])]]), sampleWeight))[r.step.logits].data as Float32Array, eps, sampleWeight);
      const numeric = ((await lossAt(1)) - (await lossAt(-1))) / (2 * h);
      let analytic = 0;
      for (let i = 0; i < w.length; i++) analytic += g[i] * v[i];
      // directional derivatives here are O(0.1–2); the floor keeps a near-zero one from turning
      // ~5e-5 of float32 noise into a large relative error
      worst = Math.max(worst, Math.abs(analytic - numeric) / Math.max(Math.abs(analytic), Math.abs(numeric), 5e-2));
    }
  }
  return worst;
}

describe('buildTrainStep', () => {
  it('computes the cross-entropy of the forward logits and exact gradients for every weight', async () => {
    const r = await compile();
    expect(r.step.params.map((p) => p.name)).toEqual(ALL);
    expect(r.step.dropout).toHaveLength(1);
    const out = await run(r);
    const logits = out[r.step.logits].data as Float32Array;
    expect(out[r.step.loss].data[0]).toBeCloseTo(crossEntropy(logits), 5);
    expect(await worstDirectionalError(r)).toBeLessThan(5e-3);
  });

  it('dropout masks are applied: a zero mask removes the features entirely', async () => {
    const r = await compile();
    const zero = new Map([[r.step.dropout[0].input, new Float32Array(N * 8)]]);
    const rz = { ...r, masks: zero };
    const logits = (await run(rz))[r.step.logits].data as Float32Array;
    const bias = r.weights.get('fc.bias')!;
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) expect(logits[n * K + k]).toBeCloseTo(bias[k], 6);
  });

  it('label smoothing and sample weights change the loss as defined, and stay exact', async () => {
    const r = await compile({ labelSmoothing: 0.1, sampleWeights: true });
    const w = Float32Array.of(0.5, 2, 1);
    const out = await run(r, new Map(), w);
    expect(out[r.step.loss].data[0]).toBeCloseTo(crossEntropy(out[r.step.logits].data as Float32Array, 0.1, w), 5);
    expect(await worstDirectionalError(r, { sampleWeight: w, eps: 0.1 })).toBeLessThan(5e-3);
  });

  it('the ReLU / max-pool variant compiles, and freezing leaves its max pool undifferentiated', async () => {
    const relu = buildTrainStep(smallCnn(false), { trainable: ALL });
    expect(relu.model.graph.nodes.some((n) => n.opType === 'ScatterElements')).toBe(true);
    const head = buildTrainStep(smallCnn(false), { trainable: ['fc.weight'] });
    expect(head.model.graph.nodes.some((n) => n.opType === 'ScatterElements')).toBe(false);
  });

  it.each([
    ['ReLU', false],
    ['Clip (both bounds reached)', true],
  ])('a %s read only by a max pool runs after the pool, with the same loss and gradients', async (_, clip) => {
    const moved = await compile({}, smallCnn(false, clip));
    const kept = await compile({ poolBeforeActivation: false }, smallCnn(false, clip));
    const producerOf = (r: Run, v: string) => r.step.model.graph.nodes.find((n) => n.outputs.includes(v))!;
    const pool = (r: Run) => r.step.model.graph.nodes.find((n) => n.opType === 'MaxPool')!;
    expect(producerOf(moved, pool(moved).inputs[0]).opType).toBe('Conv');
    const act = clip ? 'Clip' : 'Relu';
    expect(moved.step.model.graph.nodes.find((n) => n.inputs[0] === pool(moved).outputs[0])?.opType).toBe(act);
    expect(producerOf(kept, pool(kept).inputs[0]).opType).toBe(act);
    const [a, b] = [await run(moved), await run(kept)];
    expect(a[moved.step.loss].data[0]).toBe(b[kept.step.loss].data[0]);
    for (const p of moved.step.params) {
      const [ga, gb] = [a[p.grad].data as Float32Array, b[kept.step.params.find((q) => q.name === p.name)!.grad].data as Float32Array];
      expect(ga.some((v) => v !== 0), p.name).toBe(true);
      ga.forEach((v, i) => expect(Math.abs(v - gb[i]), `${p.name}[${i}]`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(gb[i]))));
    }
  });

  it('frozen layers get no gradient outputs and no backward nodes', async () => {
    const head = await compile({ trainable: ['fc.weight', 'fc.bias'] });
    expect(head.step.params.map((p) => p.name)).toEqual(['fc.weight', 'fc.bias']);
    const ops = head.step.model.graph.nodes.map((n) => n.opType);
    expect(ops).not.toContain('ConvTranspose');
    expect(await worstDirectionalError(head)).toBeLessThan(5e-3);
    // frozen weights stay initializers, so onnxruntime can pre-pack them
    expect(head.step.model.graph.initializers.has('conv1.weight')).toBe(true);
  });

  it('batch-statistics BatchNorm: exact gradients and PyTorch-style running statistics', async () => {
    const r = await compile({ batchNorm: 'train' });
    expect(r.step.bnStats.map((s) => s.input)).toEqual(['bn1.running_mean', 'bn1.running_var']);
    expect(await worstDirectionalError(r)).toBeLessThan(5e-3);
    // running stats: recompute the batch statistics of conv1's output in JS
    const probe = smallCnn();
    const conv1Out = probe.graph.nodes[0].outputs[0];
    probe.graph.outputs = [{ name: conv1Out, dtype: 'float32', shape: ['batch', 6, 8, 8] }];
    probe.graph.prune();
    const s = await ort.InferenceSession.create(modelToBytes(probe));
    const y = (await s.run({ image: new ort.Tensor('float32', image, [N, 3, 8, 8]) }))[conv1Out].data as Float32Array;
    const out = await run(r);
    const [meanOut, varOut] = r.step.bnStats.map((st) => out[st.updated].data as Float32Array);
    const m0 = r.stats.get('bn1.running_mean')!;
    const v0 = r.stats.get('bn1.running_var')!;
    const count = N * 64;
    for (let c = 0; c < 6; c++) {
      let sum = 0;
      for (let n = 0; n < N; n++) for (let i = 0; i < 64; i++) sum += y[(n * 6 + c) * 64 + i];
      const mu = sum / count;
      let sq = 0;
      for (let n = 0; n < N; n++) for (let i = 0; i < 64; i++) sq += (y[(n * 6 + c) * 64 + i] - mu) ** 2;
      expect(meanOut[c]).toBeCloseTo(0.9 * m0[c] + 0.1 * mu, 5);
      expect(varOut[c]).toBeCloseTo(0.9 * v0[c] + 0.1 * (sq / (count - 1)), 5);
    }
  });

  it('batch-statistics BatchNorm: the backward keeps one activation-sized tensor of the normalisation', async () => {
    // What the backward reads from the forward pass stays alive until then: for BN with batch statistics
    // PyTorch keeps its input; graft's decomposition keeps x − μ (the per-channel γ/σ folded before it
    // multiplies), plus the Softplus input that follows. A normalised x̂ kept as well would be a third.
    const { step } = await compile({ batchNorm: 'train' });
    const g = step.model.graph;
    const { producer } = g.index();
    const forward = new Set<string>();
    const visit = (v: string) => {
      const p = producer.get(v);
      if (!p || forward.has(p.name)) return;
      forward.add(p.name);
      for (const i of p.inputs) if (i) visit(i);
    };
    visit(step.logits);
    const shapes = inferShapes(step.model, { inputShapes: { [step.dataInput]: [N, 3, 8, 8] } });
    const saved = new Set<string>();
    for (const n of g.nodes) {
      if (forward.has(n.name)) continue;
      for (const i of n.inputs) if (i && forward.has(producer.get(i)?.name ?? '') && JSON.stringify(shapes.get(i)?.shape) === JSON.stringify([N, 6, 8, 8])) saved.add(i);
    }
    expect(saved.size, [...saved].join(', ')).toBe(2);
  });

  it('the backward reads shapes from the batch input, not from forward activations it would keep alive', async () => {
    for (const opts of [{}, { batchNorm: 'train' as const }]) {
      const { step } = await compile(opts, smallCnn(false));
      const g = step.model.graph;
      const inputs = new Set(g.inputs.map((i) => i.name));
      const readers = g.nodes.filter((n) => n.opType === 'Shape' || n.opType === 'Size');
      expect(readers.length, 'the batch size is read somewhere').toBeGreaterThan(0);
      expect(readers.filter((n) => !inputs.has(n.inputs[0])).map((n) => `${n.opType}(${n.inputs[0]})`)).toEqual([]);
    }
  });

  it('one graph serves any batch size', async () => {
    const r = await compile();
    const small = {
      [r.step.dataInput]: new ort.Tensor('float32', image.subarray(0, 3 * 64), [1, 3, 8, 8]),
      [r.step.labels]: new ort.Tensor('int64', labels.subarray(0, 1), [1]),
      [r.step.dropout[0].input]: new ort.Tensor('float32', new Float32Array(8).fill(1), [1, 8]),
      ...Object.fromEntries(r.step.params.map((p) => [p.name, new ort.Tensor('float32', r.weights.get(p.name)!, p.dims)])),
    };
    const out = await r.session.run(small);
    expect(out[r.step.logits].dims).toEqual([1, K]);
    expect(Number.isFinite(out[r.step.loss].data[0] as number)).toBe(true);
  });

  it('refuses weights that do not exist and models without a [N, K] output', () => {
    expect(() => buildTrainStep(smallCnn(), { trainable: ['nope'] })).toThrow(/not a weight/);
    const m = smallCnn();
    m.graph.outputs = [{ name: m.graph.nodes[0].outputs[0], dtype: 'float32' }];
    expect(() => buildTrainStep(m, { trainable: ['conv1.weight'] })).toThrow(/\[N, classes\]/);
  });
});
