import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { GraftError } from '../../src/errors.js';
import { GraphBuilder } from '../../src/graph/builder.js';
import { Graph, Model } from '../../src/graph/graph.js';
import { attr } from '../../src/graph/ir.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { inferShapes } from '../../src/graph/shapes.js';
import {
  countParams,
  cutAt,
  cutPoints,
  featureCandidates,
  findClassifier,
  foldBatchNorm,
  opHistogram,
  removeIdentities,
} from '../../src/graph/surgery.js';
import { float32, int64, numel, tensor } from '../../src/onnx/tensor.js';
import { realModels } from './models.js';
import { feedsFor, rand, runModel } from './oracle.js';

let seed = 500;
/** Either export of resnet18: this repo's scripts/export-test-models.py (1000 classes) or the weightless fixture. */
const resnet18 = realModels().find((m) => m.name === 'resnet18' || m.name === 'torch/resnet18');

/** Builder helpers for small CNNs with plausible weights. */
function net(inputShape: (number | string)[] = ['N', 3, 12, 12]) {
  const g = new Graph({ inputs: [{ name: 'x', dtype: 'float32', shape: inputShape }] });
  const b = new GraphBuilder(g);
  const w = (dims: number[], bound = 1 / Math.sqrt(numel(dims) / dims[0])) => b.initializer('w', float32(dims, rand(numel(dims), seed++, -bound, bound)));
  const vec = (n: number, lo: number, hi: number) => b.initializer('p', float32([n], rand(n, seed++, lo, hi)));
  const conv = (x: string, cin: number, cout: number, k = 3, o: { stride?: number; bias?: boolean; group?: number; name?: string; out?: string } = {}) =>
    b.op(
      'Conv',
      [x, w([cout, cin / (o.group ?? 1), k, k]), o.bias === false ? undefined : vec(cout, -0.1, 0.1)].filter((v): v is string => !!v),
      { pads: [k >> 1, k >> 1, k >> 1, k >> 1], strides: [o.stride ?? 1, o.stride ?? 1], group: o.group ?? 1 },
      { name: o.name, outputs: o.out ? [o.out] : 1 },
    );
  const bn = (x: string, c: number, out?: string) =>
    b.op('BatchNormalization', [x, vec(c, 0.5, 1.5), vec(c, -0.2, 0.2), vec(c, -0.1, 0.1), vec(c, 0.5, 1.5)], { epsilon: attr.f(1e-3) }, { outputs: out ? [out] : 1 });
  const relu = (x: string, out: string) => b.op('Relu', [x], {}, { name: `relu_${out}`, outputs: [out] });
  const finish = (out: string, shape: (number | string)[] = ['N', 10]) => {
    g.outputs = [{ name: out, dtype: 'float32', shape }];
    const m = new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }] });
    m.metadata.set('graft.labels', '["a"]');
    return m;
  };
  return { g, b, w, vec, conv, bn, relu, finish };
}

/** stem → residual block → strided conv → GAP → Flatten → Gemm → Softmax. */
function residualNet(): Model {
  const { b, w, vec, conv, bn, relu, finish } = net();
  const stem = conv('x', 3, 8, 3, { name: 'stem', out: 'stem_out' });
  const r0 = relu(bn(stem, 8, 'bn0_out'), 'r0');
  const a = relu(conv(r0, 8, 8, 3, { out: 'c1_out' }), 'block_relu_a');
  const add = b.op('Add', [conv(a, 8, 8, 3, { out: 'c2_out' }), r0], {}, { outputs: ['add_out'] });
  const r1 = relu(add, 'r1');
  const r2 = relu(conv(r1, 8, 16, 3, { stride: 2, out: 'c3_out' }), 'r2');
  const flat = b.op('Flatten', [b.op('GlobalAveragePool', [r2], {}, { outputs: ['gap_out'] })], {}, { outputs: ['flat'] });
  b.op('Softmax', [b.op('Gemm', [flat, w([10, 16]), vec(10, -0.1, 0.1)], { transB: 1 }, { name: 'fc', outputs: ['logits'] })], { axis: 1 }, { outputs: ['probs'] });
  return finish('probs');
}

async function run(m: Model, n = 2, s = 7): Promise<Record<string, ort.Tensor>> {
  return runModel(m, feedsFor(m.graph, { N: n }, s));
}

function expectClose(actual: ort.Tensor, expected: ort.Tensor, rel = 1e-5): void {
  expect(actual.dims).toEqual(expected.dims);
  const a = actual.data as Float32Array;
  const e = expected.data as Float32Array;
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < e.length; i++) {
    scale = Math.max(scale, Math.abs(e[i]));
    worst = Math.max(worst, Math.abs(a[i] - e[i]));
  }
  expect(Number.isFinite(scale) && scale > 0).toBe(true);
  expect(worst / scale).toBeLessThanOrEqual(rel);
}

function catchError(f: () => unknown): GraftError {
  try {
    f();
  } catch (e) {
    return e as GraftError;
  }
  throw new Error('expected an error');
}

describe('findClassifier', () => {
  it('finds Gemm + Softmax with the pooled feature and the map before pooling', () => {
    const c = findClassifier(residualNet());
    expect(c.kind).toBe('gemm');
    expect(c.numClasses).toBe(10);
    expect(c.outputIsProbabilities).toBe(true);
    expect(c.outputActivation).toBe('softmax');
    expect(c.classifierNodes.map((n) => n.opType)).toEqual(['Gemm', 'Softmax']);
    expect([c.featureValue, c.featureShape]).toEqual(['flat', ['N', 16]]);
    expect([c.spatialValue, c.spatialShape]).toEqual(['r2', ['N', 16, 6, 6]]);
    expect([c.stackInput, c.stackDepth]).toEqual(['flat', 1]);
  });

  it('walks a Dense stack (nsfwjs MobileNetV2 head): penultimate feature and the stack input', () => {
    const { b, w, vec, conv, relu, finish } = net(['N', 3, 8, 8]);
    const r = relu(conv('x', 3, 12, 3), 'features');
    const pooled = b.op('AveragePool', [r], { kernel_shape: [8, 8] }, { outputs: ['pool'] });
    const flat = b.op('Flatten', [pooled], {}, { outputs: ['flatten_1'] });
    const d1 = relu(b.op('Add', [b.op('MatMul', [flat, w([12, 6])]), vec(6, -0.1, 0.1)]), 'dense_1');
    const d2 = relu(b.op('Gemm', [b.op('Dropout', [d1]), w([6, 4])]), 'dense_2');
    const logits = b.op('Add', [vec(5, -0.1, 0.1), b.op('MatMul', [b.op('Dropout', [d2], {}, { outputs: ['drop_2'] }), w([4, 5])])]);
    b.op('Softmax', [logits], {}, { outputs: ['y'] });
    const c = findClassifier(finish('y', ['N', 5]));
    expect(c.kind).toBe('matmul');
    expect(c.numClasses).toBe(5);
    expect([c.featureValue, c.featureShape]).toEqual(['dense_2', ['N', 4]]);
    expect([c.stackInput, c.stackInputShape, c.stackDepth]).toEqual(['flatten_1', ['N', 12], 3]);
    expect([c.spatialValue, c.spatialShape]).toEqual(['features', ['N', 12, 8, 8]]);
    expect(c.classifierNodes.map((n) => n.opType)).toEqual(['Dropout', 'MatMul', 'Add', 'Softmax']);
    expect(c.stackNodes.map((n) => n.opType)).toEqual(['MatMul', 'Add', 'Relu', 'Dropout', 'Gemm', 'Relu', 'Dropout', 'MatMul', 'Add', 'Softmax']);
  });

  it('finds 1×1 conv classifiers (SqueezeNet and Keras MobileNet layouts)', () => {
    const sq = net(['N', 3, 8, 8]);
    const f = sq.relu(sq.conv('x', 3, 12, 3), 'fire');
    const cls = sq.relu(sq.conv(sq.b.op('Dropout', [f]), 12, 7, 1), 'cls_relu');
    sq.b.op('Flatten', [sq.b.op('GlobalAveragePool', [cls])], {}, { outputs: ['y'] });
    const c = findClassifier(sq.finish('y', ['N', 7]));
    expect([c.kind, c.numClasses, c.outputIsProbabilities, c.outputActivation]).toEqual(['conv', 7, false, null]);
    expect([c.featureValue, c.featureShape, c.spatialValue]).toEqual(['fire', ['N', 12, 8, 8], 'fire']);
    expect(c.classifierNodes.map((n) => n.opType)).toEqual(['Dropout', 'Conv', 'Relu', 'GlobalAveragePool', 'Flatten']);

    const k = net(['N', 3, 8, 8]);
    const gap = k.b.op('GlobalAveragePool', [k.relu(k.conv('x', 3, 12, 3), 'last_relu')], {}, { outputs: ['gap'] });
    const conv = k.conv(k.b.op('Dropout', [gap]), 12, 3, 1);
    k.b.op('LogSoftmax', [k.b.op('Reshape', [conv, k.b.i64([0, -1])])], {}, { outputs: ['y'] });
    const kc = findClassifier(k.finish('y', ['N', 3]));
    expect([kc.kind, kc.numClasses, kc.outputActivation, kc.outputIsProbabilities]).toEqual(['conv', 3, 'log-softmax', false]);
    expect([kc.featureValue, kc.featureShape, kc.spatialValue]).toEqual(['gap', ['N', 12, 1, 1], 'last_relu']);
  });

  it('says what it met when the output is not a classifier', () => {
    const { conv, relu, finish } = net();
    relu(conv('x', 3, 4, 3), 'act');
    const e = catchError(() => findClassifier(finish('act', ['N', 4, 12, 12])));
    expect(e).toBeInstanceOf(GraftError);
    expect(e.code).toBe('MODEL_UNSUPPORTED');
    expect(e.message).toMatch(/reached a Conv node/);
  });

  const real = realModels();
  it.skipIf(real.length === 0)('finds the classifier of real torchvision exports', () => {
    const expected: Record<string, [string, number, number]> = {
      resnet18: ['gemm', 512, 1],
      mobilenet_v2: ['gemm', 1280, 1],
      squeezenet1_1: ['conv', 512, 1],
      tiny_view: ['gemm', 2048, 1],
      'torch/mobilenet_v3_small': ['gemm', 1024, 2],
      'torch/efficientnet_b0': ['gemm', 1280, 1],
      'torch/inception_v3': ['gemm', 2048, 1],
    };
    for (const { name, load } of real) {
      const m = load();
      const c = findClassifier(m);
      const outDims = inferShapes(m).get(m.graph.outputs[0].name)!.shape!;
      expect(c.numClasses, name).toBe(outDims[1]);
      if (expected[name]) expect([c.kind, c.featureShape![1], c.stackDepth], name).toEqual(expected[name]);
      if (c.kind === 'gemm' && name !== 'tiny_view') expect(c.spatialShape?.length, name).toBe(4);
    }
  });
});

describe('cutPoints and featureCandidates', () => {
  it('marks exactly the values every path passes through', () => {
    const m = residualNet();
    expect(cutPoints(m)).toEqual(['stem_out', 'bn0_out', 'r0', 'add_out', 'r1', 'c3_out', 'r2', 'gap_out', 'flat', 'logits', 'probs']);
  });

  it('ignores constant branches and dead ends; concat branches are not cut points', () => {
    const { b, conv, relu, finish } = net();
    const a = relu(conv('x', 3, 4, 3), 'a');
    const left = relu(conv(a, 4, 4, 1), 'left');
    const right = relu(conv(relu(conv(a, 4, 4, 3), 'right_1'), 4, 4, 3), 'right_2');
    const cat = b.op('Concat', [left, right], { axis: 1 }, { outputs: ['cat'] });
    b.op('Relu', [a], {}, { outputs: ['dead'] });
    const target = b.op('Constant', [], { value: int64([2], [0, -1]) });
    const flat = b.op('Reshape', [relu(cat, 'after'), b.op('Identity', [target])], {}, { outputs: ['flat'] });
    b.op('Identity', [flat], {}, { outputs: ['y'] });
    const cuts = cutPoints(finish('y', ['N', 1152]));
    expect(cuts.filter((v) => ['a', 'left', 'right_1', 'right_2', 'cat', 'after', 'flat', 'y', 'dead'].includes(v))).toEqual(['a', 'cat', 'after', 'flat', 'y']);
  });

  it('lists feature layers in depth order with shapes, channels and block ends, leaving out the classifier', () => {
    const f = featureCandidates(residualNet());
    expect(f.map((c) => [c.value, c.opType, c.channels, c.blockEnd])).toEqual([
      ['bn0_out', 'BatchNormalization', 8, true],
      ['r0', 'Relu', 8, true],
      ['block_relu_a', 'Relu', 8, false],
      ['add_out', 'Add', 8, true],
      ['r1', 'Relu', 8, true],
      ['r2', 'Relu', 16, true],
      ['gap_out', 'GlobalAveragePool', 16, true],
      ['flat', 'Flatten', 16, true],
    ]);
    expect(f[5].shape).toEqual(['N', 16, 6, 6]);
    expect(f[5].node).toBe('relu_r2');
    expect(f.map((c) => c.index)).toEqual([...f.map((c) => c.index)].sort((a, b) => a - b));
  });

  it.skipIf(!resnet18)('finds the 8 residual block ends of resnet18 and its SiLU layers in efficientnet', () => {
    const all = realModels();
    const resnet = resnet18!.load();
    const blockEnds = featureCandidates(resnet).filter((c) => c.blockEnd && c.opType === 'Relu' && /layer\d\.\d\/relu_1/.test(c.value));
    expect(blockEnds.map((c) => c.value.split('/')[2])).toEqual(['layer1.0', 'layer1.1', 'layer2.0', 'layer2.1', 'layer3.0', 'layer3.1', 'layer4.0', 'layer4.1']);
    const eff = all.find((m) => m.name === 'torch/efficientnet_b0');
    if (eff) expect(featureCandidates(eff.load()).filter((c) => c.opType === 'Mul' && c.blockEnd).length).toBeGreaterThan(5);
  });
});

describe('cutAt', () => {
  it('cuts at a 4-D value with global average pooling; ORT agrees with pooling the original', async () => {
    const m = residualNet();
    const before = modelToBytes(m);
    const cut = cutAt(m, 'r1');
    expect(Buffer.from(modelToBytes(m)).equals(Buffer.from(before))).toBe(true);
    expect(cut.graph.outputs).toEqual([{ name: 'features', dtype: 'float32', shape: ['N', 8] }]);
    expect(cut.metadata.get('graft.labels')).toBe('["a"]');
    expect(cut.opset).toBe(17);
    expect(cut.graph.nodes.some((n) => n.opType === 'Gemm')).toBe(false);
    expect(cut.graph.initializers.size).toBe(3 * 2 + 4); // three convs with bias, one BN
    const exposed = m.clone();
    exposed.graph.outputs = [{ name: 'r1', dtype: 'float32' }];
    const ref = (await run(exposed, 3)).r1;
    const got = (await run(cut, 3)).features;
    const [n, c, h, w] = ref.dims;
    const pooled = new Float32Array(n * c);
    const d = ref.data as Float32Array;
    for (let i = 0; i < n * c; i++) {
      let s = 0;
      for (let j = 0; j < h * w; j++) s += d[i * h * w + j];
      pooled[i] = s / (h * w);
    }
    expectClose(got, new ort.Tensor('float32', pooled, [n, c]), 1e-6);
  });

  it("keeps the map with pool 'none', resolves node names, and cuts 2-D values as they are", async () => {
    const m = residualNet();
    const cut = cutAt(m, 'block_relu_a', { pool: 'none' });
    expect(cut.graph.outputs).toEqual([{ name: 'block_relu_a', dtype: 'float32', shape: ['N', 8, 12, 12] }]);
    // residual add and everything after it are gone
    expect(cut.graph.nodes.map((n) => n.opType)).toEqual(['Conv', 'BatchNormalization', 'Relu', 'Conv', 'Relu']);
    const byNode = cutAt(m, 'fc');
    expect(byNode.graph.outputs[0]).toEqual({ name: 'logits', dtype: 'float32', shape: ['N', 10] });
    const flat = cutAt(m, 'flat', { pool: 'avg' });
    expect(flat.graph.outputs[0].name).toBe('flat');
    const full = await run(m);
    expect(Array.from((await run(cutAt(m, 'logits'))).logits.data as Float32Array)).toEqual(Array.from((await run(byNode)).logits.data as Float32Array));
    expect(full.probs.dims).toEqual([2, 10]);
  });

  it('reports unknown names with close candidates, weights and rank problems', () => {
    const m = residualNet();
    const e = catchError(() => cutAt(m, 'block_relu'));
    expect(e.code).toBe('LAYER_NOT_FOUND');
    expect(e.message).toContain('"block_relu_a"');
    const typo = catchError(() => cutAt(m, 'r_1'));
    expect(typo.message).toMatch(/Close names: .*"r1"/);
    const weight = catchError(() => cutAt(m, [...m.graph.initializers.keys()][0]));
    expect(weight.message).toMatch(/is a weight/);
    const { b, finish } = net(['N', 4, 5]);
    b.op('Relu', ['x'], {}, { outputs: ['seq'] });
    const seq = finish('seq', ['N', 4, 5]);
    expect(catchError(() => cutAt(seq, 'seq', { pool: 'avg' })).code).toBe('INVALID_ARGUMENT');
    expect(cutAt(seq, 'seq').graph.outputs[0].shape).toEqual(['N', 4, 5]);
  });

  it.skipIf(!resnet18)('cut resnet18 at its pre-pool map gives the flatten feature', async () => {
    const m = resnet18!.load();
    const c = findClassifier(m);
    const cut = cutAt(m, c.spatialValue!);
    expect(cut.graph.outputs[0].shape).toEqual(['N', 512]);
    const exposed = m.clone();
    exposed.graph.outputs = [{ name: c.featureValue, dtype: 'float32' }];
    const feeds = feedsFor(m.graph, { N: 2 });
    const [a, b] = await Promise.all([runModel(cut, feeds), runModel(exposed, feeds)]);
    expectClose(a.features, b[c.featureValue], 1e-6);
  });
});

describe('countParams and opHistogram', () => {
  it('counts float weights and BN statistics, not shape constants or scalar bounds', () => {
    const { b, w, vec, finish } = net(['N', 3, 4, 4]);
    const conv = b.op('Conv', ['x', w([8, 3, 3, 3]), vec(8, 0, 1)]);
    const bn = b.op('BatchNormalization', [conv, vec(8, 1, 2), vec(8, 0, 1), vec(8, 0, 1), vec(8, 1, 2)]);
    const clip = b.op('Clip', [bn, b.f32(0), b.f32(6)]);
    const up = b.op('Resize', [clip, '', b.f32s([1, 1, 2, 2])]);
    const flat = b.op('Reshape', [b.op('GlobalAveragePool', [up]), b.i64([0, -1])]);
    b.op('Gemm', [flat, b.op('Identity', [w([10, 8])]), vec(10, 0, 1)], { transB: 1 }, { outputs: ['y'] });
    const m = finish('y');
    expect(countParams(m)).toEqual({ total: 346, weights: 216 + 8 + 16 + 80 + 10, bnStats: 16 });
    const trainable = new Set([...m.graph.initializers.keys()].filter((k) => m.graph.initializers.get(k)!.dims[0] === 10));
    expect(countParams(m, { trainableOnly: trainable })).toEqual({ total: 90, weights: 90, bnStats: 0 });
    expect([...opHistogram(m)]).toEqual([
      ['BatchNormalization', 1],
      ['Clip', 1],
      ['Conv', 1],
      ['Gemm', 1],
      ['GlobalAveragePool', 1],
      ['Identity', 1],
      ['Reshape', 1],
      ['Resize', 1],
    ]);
  });

  it.skipIf(!resnet18)("matches torchvision's resnet18 parameter count", () => {
    const m = resnet18!.load();
    // sum(p.numel() for p in resnet18().parameters()) = 11 689 512 with 1000 classes (fc: 513 000);
    // running mean/var: 2 × 4800 channels
    const k = findClassifier(m).numClasses!;
    const weights = 11_689_512 - 513_000 + 513 * k;
    expect(countParams(m)).toEqual({ total: weights + 9_600, weights, bnStats: 9_600 });
    expect(countParams(m, { trainableOnly: new Set(['fc.weight', 'fc.bias']) }).weights).toBe(513 * k);
    const h = opHistogram(m);
    expect([h.get('BatchNormalization'), h.get('Conv'), h.get('Relu'), h.get('Add'), h.get('Gemm')]).toEqual([20, 20, 17, 8, 1]);
    const counts = [...h.values()];
    expect(counts).toEqual([...counts].sort((a, b) => b - a));
  });
});

describe('foldBatchNorm', () => {
  it('folds BN into convs (bias, no bias, grouped, shared weights) and Gemms; outputs agree to 1e-5', async () => {
    const { b, w, vec, conv, bn, relu, finish } = net(['N', 4, 10, 10]);
    const c1 = bn(conv('x', 4, 8, 3), 8);
    const c2 = bn(conv(relu(c1, 'r1'), 8, 8, 3, { bias: false }), 8);
    const c3 = bn(conv(c2, 8, 8, 3, { group: 4, stride: 2 }), 8);
    // two convs reading one weight, each with its own BN
    const shared = w([8, 8, 1, 1]);
    const s1 = bn(b.op('Conv', [c3, shared]), 8);
    const s2 = bn(b.op('Conv', [relu(c3, 'r3'), shared]), 8);
    // not foldable: BN after Relu; conv output read twice
    const nf1 = bn(relu(b.op('Add', [s1, s2]), 'r4'), 8);
    const twice = conv(nf1, 8, 8, 1);
    const nf2 = b.op('Add', [bn(twice, 8), twice]);
    const flat = b.op('Flatten', [b.op('GlobalAveragePool', [nf2])]);
    const g1 = bn(b.op('Gemm', [flat, w([6, 8]), vec(6, -0.1, 0.1)], { transB: 1, alpha: attr.f(0.5), beta: attr.f(2) }), 6);
    const g2 = bn(b.op('Gemm', [g1, w([6, 5])]), 5);
    bn(b.op('Gemm', [g2, w([5, 4]), b.initializer('c', float32([1, 4], [0.1, 0.2, 0.3, 0.4]))]), 4, 'y');
    const m = finish('y', ['N', 4]);
    const before = opHistogram(m).get('BatchNormalization');
    const folded = foldBatchNorm(m);
    expect(opHistogram(m).get('BatchNormalization')).toBe(before);
    expect(before).toBe(10);
    expect(opHistogram(folded).get('BatchNormalization')).toBe(2);
    expect(folded.graph.outputs).toEqual(m.graph.outputs);
    // each conv reading the shared weight got its own folded weight; the input model's tensor is untouched
    const sharedReaders = folded.graph.nodes.filter((n) => n.opType === 'Conv' && n.inputs[1].startsWith(shared)).map((n) => n.inputs[1]);
    expect(new Set(sharedReaders).size).toBe(2);
    for (const name of sharedReaders) expect(folded.graph.initializers.get(name)!.data).not.toEqual(m.graph.initializers.get(shared)!.data);
    for (const seedN of [2, 5]) expectClose((await run(folded, seedN, seedN)).y, (await run(m, seedN, seedN)).y);
  });

  it.skipIf(realModels().length === 0)('folds every BN of real exports and keeps their outputs', async () => {
    // inception is left out for time; resnet18 reads its BN parameters through Identity nodes
    for (const { name, load } of realModels().filter((r) => !r.name.includes('inception'))) {
      const m = load();
      if (!opHistogram(m).get('BatchNormalization')) continue;
      const folded = foldBatchNorm(m);
      expect(opHistogram(folded).get('BatchNormalization') ?? 0, name).toBe(0);
      expect(countParams(folded).bnStats, name).toBe(0);
      const feeds = feedsFor(m.graph, { N: 2 });
      const out = m.graph.outputs[0].name;
      expectClose((await runModel(folded, feeds))[out], (await runModel(m, feeds))[out]);
    }
  });
});

describe('removeIdentities', () => {
  it('drops Identity and inference Dropout nodes by rewiring, keeping what must stay', async () => {
    const { b, vec, finish, g } = net(['N', 3]);
    const i1 = b.op('Identity', ['x']);
    const r = b.op('Relu', [b.op('Add', [i1, b.op('Identity', [vec(3, 0, 1)])])]);
    const d1 = b.op('Dropout', [r, b.f32(0.5)]);
    const [d2, mask] = b.node('Dropout', [d1, b.f32(0.5), b.initializer('train', tensor('bool', [], Uint8Array.of(0)))], {}, { outputs: 2 });
    const masked = b.op('Mul', [d2, b.op('Cast', [mask], { to: 1 })]);
    b.op('Identity', [b.op('Sigmoid', [masked])], {}, { outputs: ['y'] });
    b.op('Dropout', ['x', b.f32(0.5), b.initializer('t', tensor('bool', [], Uint8Array.of(1)))], {}, { outputs: ['noisy'] });
    b.op('Identity', ['x'], {}, { outputs: ['passthrough'] });
    const m = finish('y', ['N', 3]);
    g.outputs.push({ name: 'noisy', dtype: 'float32', shape: ['N', 3] }, { name: 'passthrough', dtype: 'float32', shape: ['N', 3] });
    const ref = await run(m);
    const copy = m.clone();
    expect(removeIdentities(copy.graph)).toBe(4);
    // left: the Dropout whose mask is read, the training-mode Dropout, the input → output Identity
    expect(copy.graph.nodes.filter((n) => n.opType === 'Dropout').map((n) => n.outputs[0])).toEqual([d2, 'noisy']);
    expect(copy.graph.nodes.filter((n) => n.opType === 'Identity').map((n) => n.outputs[0])).toEqual(['passthrough']);
    expect(copy.graph.nodes.find((n) => n.opType === 'Sigmoid')!.outputs).toEqual(['y']);
    expect(copy.graph.nodes.find((n) => n.opType === 'Add')!.inputs[0]).toBe('x');
    const got = await run(copy);
    expect(got.y.data).toEqual(ref.y.data);
    expect(got.passthrough.data).toEqual(ref.passthrough.data);
  });

  it.skipIf(!realModels().some((m) => m.name === 'squeezenet1_1'))('removes the Identity nodes torch writes for shared constants', async () => {
    const m = realModels().find((r) => r.name === 'squeezenet1_1')!.load();
    const copy = m.clone();
    expect(removeIdentities(copy.graph)).toBe(opHistogram(m).get('Identity'));
    expect(opHistogram(copy).get('Identity')).toBeUndefined();
    const feeds = feedsFor(m.graph, { N: 1 });
    expectClose((await runModel(copy, feeds)).output, (await runModel(m, feeds)).output, 0);
  });
});

describe('Graph.setWeights', () => {
  it('puts flat trained values into the named initializers, keeping their dims; wrong names and sizes are refused', () => {
    const g = new Graph({ initializers: new Map([['w', float32([2, 3], [0, 0, 0, 0, 0, 0])], ['b', float32([2], [0, 0])]]) });
    g.setWeights({ w: Float32Array.of(1, 2, 3, 4, 5, 6), b: Float32Array.of(7, 8), extra: Float32Array.of(9) }, ['w', 'b']);
    expect(g.initializers.get('w')!.dims).toEqual([2, 3]);
    expect(Array.from(g.initializers.get('w')!.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(g.initializers.get('b')!.data as Float32Array)).toEqual([7, 8]);
    g.setWeights({ b: Float32Array.of(-1, -2) });
    expect(Array.from(g.initializers.get('b')!.data as Float32Array)).toEqual([-1, -2]);
    expect(Array.from(g.initializers.get('w')!.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);

    const refused = (f: () => void) => {
      try {
        f();
      } catch (e) {
        return e as GraftError;
      }
      throw new Error('expected a GraftError');
    };
    expect(refused(() => g.setWeights({ extra: Float32Array.of(1) })).code).toBe('LAYER_NOT_FOUND');
    const wrongSize = refused(() => g.setWeights({ w: Float32Array.of(1, 2, 3) }));
    expect(wrongSize.code).toBe('INVALID_ARGUMENT');
    expect(wrongSize.message).toContain('holds 6 values');
    expect(refused(() => g.setWeights({}, ['b'])).message).toContain('none was given');
    // a refused call sets nothing, not even the names before the bad one
    expect(refused(() => g.setWeights({ b: Float32Array.of(3, 3), w: Float32Array.of(1) }, ['b', 'w'])).code).toBe('INVALID_ARGUMENT');
    expect(Array.from(g.initializers.get('b')!.data as Float32Array)).toEqual([-1, -2]);
    expect(Array.from(g.initializers.get('w')!.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
  });
});
