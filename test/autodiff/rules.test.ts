/**
 * Every gradient rule against central finite differences (directional derivatives, float32-aware
 * tolerances). Inputs of piecewise-linear ops are kept away from their kinks so the differences are
 * well-defined.
 */
import { describe, expect, it } from 'vitest';
import { differentiableOps } from '../../src/autodiff/registry.js';
import { chooseDw, type ConvGeometry } from '../../src/autodiff/rules/conv.js';
import type { ConvDwMethod, ConvDxMethod } from '../../src/autodiff/rule.js';
import type { GraphBuilder } from '../../src/graph/builder.js';
import { attr } from '../../src/graph/ir.js';
import { fill } from '../fixtures/prng.js';
import { analyticGrad, gradCheck, type GradCheckCase } from './gradcheck.js';

const TOL = 2e-3;

/** Values in ±[lo, hi]: uniform magnitude, random sign — never near zero. */
function awayFromZero(seed: number, n: number, lo = 0.2, hi = 1): Float32Array {
  const mag = fill(seed, [n], lo, hi);
  const sign = fill(seed + 1, [n], -1, 1);
  return mag.map((m, i) => (sign[i] < 0 ? -m : m));
}

async function expectGradOk(c: GradCheckCase, tol = TOL) {
  const r = await gradCheck(c);
  expect(r.worstRelErr, JSON.stringify(r.details.slice(0, 6))).toBeLessThan(tol);
}

const unary = (op: string, attrs: Record<string, unknown> = {}) => (b: GraphBuilder, i: Record<string, string>) =>
  b.op(op, [i.x], attrs as never);

describe('activation rules', () => {
  const n = [2, 3, 4, 5];
  const size = 2 * 3 * 4 * 5;
  const cases: [string, GradCheckCase][] = [
    ['Relu', { build: unary('Relu'), inputs: { x: { dims: n, data: awayFromZero(1, size) } }, h: 1e-3 }],
    ['LeakyRelu', { build: unary('LeakyRelu', { alpha: attr.f(0.1) }), inputs: { x: { dims: n, data: awayFromZero(2, size) } }, h: 1e-3 }],
    ['Sigmoid', { build: unary('Sigmoid'), inputs: { x: { dims: n, lo: -3, hi: 3 } } }],
    ['Tanh', { build: unary('Tanh'), inputs: { x: { dims: n, lo: -2, hi: 2 } } }],
    ['HardSigmoid', { build: unary('HardSigmoid', { alpha: attr.f(0.2), beta: attr.f(0.5) }), inputs: { x: { dims: n, data: awayFromZero(3, size, 0.1, 2.4) } }, h: 1e-3 }],
    ['HardSwish', { build: unary('HardSwish'), inputs: { x: { dims: n, data: awayFromZero(4, size, 0.1, 2.9).map((v, i) => (i % 5 === 0 ? v * 2 + Math.sign(v) * 0.2 : v)) } }, h: 1e-3 }],
    ['Elu', { build: unary('Elu', { alpha: attr.f(0.7) }), inputs: { x: { dims: n, data: awayFromZero(5, size) } }, h: 1e-3 }],
    ['Selu', { build: unary('Selu'), inputs: { x: { dims: n, data: awayFromZero(6, size) } }, h: 1e-3 }],
    ['Softplus', { build: unary('Softplus'), inputs: { x: { dims: n, lo: -3, hi: 3 } } }],
    ['Exp', { build: unary('Exp'), inputs: { x: { dims: n, lo: -1, hi: 1 } } }],
    ['Log', { build: unary('Log'), inputs: { x: { dims: n, lo: 0.5, hi: 2 } } }],
    ['Sqrt', { build: unary('Sqrt'), inputs: { x: { dims: n, lo: 0.5, hi: 2 } } }],
    ['Neg', { build: unary('Neg'), inputs: { x: { dims: n } } }],
    ['Abs', { build: unary('Abs'), inputs: { x: { dims: n, data: awayFromZero(7, size) } }, h: 1e-3 }],
    ['Reciprocal', { build: unary('Reciprocal'), inputs: { x: { dims: n, lo: 0.5, hi: 2 } }, h: 2e-3 }],
    ['Erf', { build: unary('Erf'), inputs: { x: { dims: n, lo: -2, hi: 2 } } }],
    ['Softmax axis 1', { build: unary('Softmax', { axis: 1 }), inputs: { x: { dims: n, lo: -2, hi: 2 } } }],
    ['Softmax last', { build: unary('Softmax', { axis: -1 }), inputs: { x: { dims: [4, 7], lo: -2, hi: 2 } } }],
    ['LogSoftmax', { build: unary('LogSoftmax', { axis: 1 }), inputs: { x: { dims: [4, 7], lo: -2, hi: 2 } } }],
    [
      'Clip as ReLU6 (inputs)',
      {
        build: (b, i) => b.op('Clip', [i.x, b.f32(0), b.f32(6)]),
        inputs: { x: { dims: n, data: awayFromZero(8, size, 0.2, 7.5).map((v) => (Math.abs(v - 6) < 0.2 ? v + 0.5 : v)) } },
        h: 1e-3,
      },
    ],
    ['Clip with only a lower bound', { build: (b, i) => b.op('Clip', [i.x, b.f32(-0.5)]), inputs: { x: { dims: [40], data: awayFromZero(9, 40, 0.05, 0.45).map((v, i) => (i % 3 ? v : v * 3)) } }, h: 1e-3 }],
    ['PRelu', { build: (b, i) => b.op('PRelu', [i.x, i.slope]), inputs: { x: { dims: n, data: awayFromZero(10, size) }, slope: { dims: [3, 1, 1], lo: 0.1, hi: 0.5 } }, h: 1e-3 }],
  ];
  for (const [name, c] of cases) it(name, () => expectGradOk(c));
});

describe('elementwise rules with broadcasting', () => {
  const bin = (op: string) => (b: GraphBuilder, i: Record<string, string>) => b.op(op, [i.a, i.c]);
  const shapes: [number[], number[]][] = [
    [[2, 3, 4], [2, 3, 4]],
    [[2, 3, 4], [4]],
    [[2, 3, 4], [3, 1]],
    [[1, 3, 1], [2, 1, 4]],
  ];
  for (const op of ['Add', 'Sub', 'Mul', 'Div']) {
    for (const [sa, sc] of shapes) {
      it(`${op} ${JSON.stringify(sa)} ⊙ ${JSON.stringify(sc)}`, () =>
        expectGradOk({ build: bin(op), inputs: { a: { dims: sa }, c: { dims: sc, ...(op === 'Div' ? { lo: 0.5, hi: 2 } : {}) } } }));
    }
  }
  it('Sum of three with broadcasting', () =>
    expectGradOk({ build: (b, i) => b.op('Sum', [i.a, i.c, i.d]), inputs: { a: { dims: [2, 3] }, c: { dims: [3] }, d: { dims: [2, 1] } } }));
  it('Mean of two', () => expectGradOk({ build: (b, i) => b.op('Mean', [i.a, i.c]), inputs: { a: { dims: [2, 3] }, c: { dims: [2, 3] } } }));
  it('Pow with a constant exponent', () =>
    expectGradOk({ build: (b, i) => b.op('Pow', [i.a, b.f32(3)]), inputs: { a: { dims: [2, 5], lo: 0.5, hi: 1.5 } } }));
  it('Max and Min select the larger/smaller input', async () => {
    const a = awayFromZero(11, 12);
    const c = a.map((v, i) => v + (i % 2 ? 0.3 : -0.3));
    // the inputs differ by ±0.3 everywhere, so a step of 1e-2 never flips a selection
    await expectGradOk({ build: bin('Max'), inputs: { a: { dims: [3, 4], data: a }, c: { dims: [3, 4], data: c } }, h: 1e-2 });
    await expectGradOk({ build: bin('Min'), inputs: { a: { dims: [3, 4], data: a.slice() }, c: { dims: [3, 4], data: c.slice() } }, h: 1e-2 });
  });
  it('Where routes to the chosen branch', () =>
    expectGradOk({
      build: (b, i) => b.op('Where', [b.op('Greater', [i.m, b.f32(0)]), i.a, i.c]),
      inputs: { m: { dims: [3, 4], wrt: false }, a: { dims: [3, 4] }, c: { dims: [4] } },
    }));
  it('Expand', () => expectGradOk({ build: (b, i) => b.op('Expand', [i.a, b.i64([2, 3, 4])]), inputs: { a: { dims: [3, 1] } } }));
});

describe('matrix products', () => {
  for (const [tA, tB] of [
    [0, 0],
    [0, 1],
    [1, 0],
    [1, 1],
  ]) {
    it(`Gemm transA=${tA} transB=${tB} with alpha, beta and a broadcast bias`, () =>
      expectGradOk({
        build: (b, i) => b.op('Gemm', [i.a, i.w, i.c], { transA: tA, transB: tB, alpha: attr.f(0.7), beta: attr.f(1.3) }),
        inputs: { a: { dims: tA ? [4, 3] : [3, 4] }, w: { dims: tB ? [5, 4] : [4, 5] }, c: { dims: [5] } },
      }));
  }
  const mm: [number[], number[]][] = [
    [[3, 4], [4, 5]],
    [[2, 3, 4], [4, 5]],
    [[2, 3, 4], [2, 4, 5]],
    [[2, 1, 3, 4], [3, 4, 2]],
    [[4], [4, 5]],
    [[2, 3, 4], [4]],
  ];
  for (const [sa, sb] of mm) {
    it(`MatMul ${JSON.stringify(sa)} × ${JSON.stringify(sb)}`, () => expectGradOk({ build: (b, i) => b.op('MatMul', [i.a, i.w]), inputs: { a: { dims: sa }, w: { dims: sb } } }));
  }
});

describe('convolution', () => {
  interface ConvCase {
    name: string;
    x: number[];
    w: number[];
    attrs: Record<string, unknown>;
    bias?: boolean;
  }
  const convs: ConvCase[] = [
    { name: '3×3 s1 p1', x: [2, 3, 7, 7], w: [4, 3, 3, 3], attrs: { pads: [1, 1, 1, 1] }, bias: true },
    { name: '3×3 s2 p1 on odd size', x: [2, 3, 7, 7], w: [4, 3, 3, 3], attrs: { strides: [2, 2], pads: [1, 1, 1, 1] } },
    { name: '3×3 s2 asymmetric (Keras same)', x: [2, 3, 8, 8], w: [4, 3, 3, 3], attrs: { strides: [2, 2], pads: [0, 0, 1, 1] } },
    { name: '3×3 s2 p1 on even size (parity planes)', x: [2, 3, 8, 8], w: [4, 3, 3, 3], attrs: { strides: [2, 2], pads: [1, 1, 1, 1] } },
    // odd output heights: tapGather's Gemms over all output rows (even ones may take its half sums)
    { name: '3×3 s2 p1 on even size, odd output', x: [2, 3, 10, 10], w: [4, 3, 3, 3], attrs: { strides: [2, 2], pads: [1, 1, 1, 1] } },
    { name: '3×2 s1 asymmetric pads, odd output', x: [2, 3, 5, 7], w: [4, 3, 3, 2], attrs: { pads: [0, 1, 2, 0] } },
    { name: '3×2 s2 dilation 2 on even size, uneven pads', x: [2, 3, 10, 8], w: [4, 3, 3, 2], attrs: { strides: [2, 2], dilations: [2, 2], pads: [2, 0, 1, 1] } },
    { name: '7×7 s2 p3 on even size', x: [2, 3, 12, 12], w: [4, 3, 7, 7], attrs: { strides: [2, 2], pads: [3, 3, 3, 3] } },
    { name: '1×1 s2 on even size', x: [2, 5, 6, 6], w: [3, 5, 1, 1], attrs: { strides: [2, 2] } },
    { name: '1×1 s1', x: [2, 5, 4, 4], w: [3, 5, 1, 1], attrs: {}, bias: true },
    { name: '1×1 s2', x: [2, 5, 5, 5], w: [3, 5, 1, 1], attrs: { strides: [2, 2] } },
    { name: '7×7 s2 p3 stem', x: [2, 3, 11, 11], w: [4, 3, 7, 7], attrs: { strides: [2, 2], pads: [3, 3, 3, 3] } },
    // above dwTapGather's stack size: X's rows gathered kernel row by kernel row, products per tap
    { name: '3×3 s1 p1 on a large map (row gathers per kernel row)', x: [1, 8, 160, 160], w: [8, 8, 3, 3], attrs: { pads: [1, 1, 1, 1] } },
    // batch-as-channels as two groups over the batch's halves (odd channel count), with an odd batch
    { name: '5×5 s2 p2, one channel, batch of 3', x: [3, 1, 12, 9], w: [4, 1, 5, 5], attrs: { strides: [2, 2], pads: [2, 2, 2, 2] } },
    // imageIm2col's image chunks (27 taps against 20 filters: 3 chunks), uneven over a batch of 5
    { name: '3×3 s2 p1, batch of 5, more taps than filters', x: [5, 3, 8, 8], w: [20, 3, 3, 3], attrs: { strides: [2, 2], pads: [1, 1, 1, 1] } },
    // stride 3: three parity planes per axis, sizes padded up to multiples of 3
    { name: '5×5 s3 p2, rectangular', x: [2, 3, 11, 10], w: [4, 3, 5, 5], attrs: { strides: [3, 3], pads: [2, 2, 2, 2] } },
    { name: '3×3 dilation 2', x: [2, 3, 9, 9], w: [4, 3, 3, 3], attrs: { dilations: [2, 2], pads: [2, 2, 2, 2] } },
    { name: '3×3 s1 unpadded, rectangular input', x: [2, 3, 6, 5], w: [4, 3, 3, 3], attrs: {} },
    { name: '3×2 s1 asymmetric pads', x: [2, 3, 6, 7], w: [4, 3, 3, 2], attrs: { pads: [0, 1, 2, 0] } },
    { name: 'depthwise 3×3 s1', x: [2, 4, 6, 6], w: [4, 1, 3, 3], attrs: { group: 4, pads: [1, 1, 1, 1] }, bias: true },
    { name: 'depthwise 3×3 s2', x: [2, 4, 7, 7], w: [4, 1, 3, 3], attrs: { group: 4, strides: [2, 2], pads: [1, 1, 1, 1] } },
    // even sizes: the taps from SpaceToDepth's parity planes without the extra zero row and column
    { name: 'depthwise 3×3 s2 p1 on even size', x: [2, 4, 8, 8], w: [4, 1, 3, 3], attrs: { group: 4, strides: [2, 2], pads: [1, 1, 1, 1] } },
    { name: 'depthwise 3×3 s2 p1, odd output height, rectangular', x: [2, 4, 10, 6], w: [4, 1, 3, 3], attrs: { group: 4, strides: [2, 2], pads: [1, 1, 1, 1] } },
    { name: 'depthwise 3×3 s2 asymmetric (Keras same)', x: [2, 4, 8, 8], w: [4, 1, 3, 3], attrs: { group: 4, strides: [2, 2], pads: [0, 0, 1, 1] } },
    { name: 'depthwise 3×2 s2 dilation 2, uneven pads', x: [2, 3, 9, 8], w: [3, 1, 3, 2], attrs: { group: 3, strides: [2, 2], dilations: [2, 2], pads: [2, 0, 1, 1] } },
    { name: 'depthwise 3×3 dilation 2, uneven pads, rectangular', x: [2, 4, 7, 6], w: [4, 1, 3, 3], attrs: { group: 4, dilations: [2, 2], pads: [2, 1, 1, 2] } },
    { name: 'depthwise 3×2 unpadded', x: [2, 3, 5, 6], w: [3, 1, 3, 2], attrs: { group: 3 } },
    { name: 'depthwise multiplier 2', x: [2, 3, 6, 6], w: [6, 1, 3, 3], attrs: { group: 3, pads: [1, 1, 1, 1] } },
    { name: 'grouped (2 groups)', x: [2, 4, 6, 6], w: [6, 2, 3, 3], attrs: { group: 2, pads: [1, 1, 1, 1] } },
    { name: 'SAME_UPPER s2', x: [2, 3, 7, 7], w: [4, 3, 3, 3], attrs: { strides: [2, 2], auto_pad: 'SAME_UPPER' } },
    { name: 'rectangular kernel, stride', x: [2, 3, 8, 7], w: [4, 3, 3, 1], attrs: { strides: [2, 1], pads: [1, 0, 1, 0] } },
  ];
  it("'auto' picks the measured weight-gradient form per layer shape", () => {
    const geom = (C: number, O: number, k: number, s: number, H: number, group = 1): ConvGeometry => {
      const p = k >> 1;
      const OH = Math.floor((H + 2 * p - k) / s) + 1;
      return { C, H, W: H, O, kh: k, kw: k, sh: s, sw: s, dh: 1, dw: 1, pt: p, pl: p, pb: p, pr: p, group, OH, OW: OH };
    };
    expect(chooseDw(geom(64, 64, 3, 1, 56), 'auto')).toBe('tapGather');
    expect(chooseDw(geom(256, 256, 3, 1, 14), 'auto')).toBe('tapGather');
    expect(chooseDw(geom(128, 256, 3, 2, 28), 'auto')).toBe('tapGather'); // stride 2: rows of the parity planes
    expect(chooseDw(geom(128, 256, 3, 2, 27), 'auto')).toBe('tapGemm'); // odd size: no parity planes
    expect(chooseDw(geom(3, 32, 3, 2, 224), 'auto')).toBe('imageIm2col'); // RGB stems: X's im2col against dY as it is
    expect(chooseDw(geom(3, 64, 7, 2, 224), 'auto')).toBe('imageIm2col'); // ResNet's: in chunks of images
    expect(chooseDw(geom(1, 32, 3, 1, 112), 'auto')).toBe('imageIm2col');
    expect(chooseDw(geom(3, 8, 7, 2, 224), 'auto')).toBe('batchAsChannels'); // cols would be 18 times dY
    expect(chooseDw(geom(3, 32, 3, 3, 224), 'auto')).toBe('tapGemm');
    expect(chooseDw(geom(512, 512, 3, 1, 7), 'auto')).toBe('im2col'); // 7×7 maps: one Gemm over the taps
    expect(chooseDw(geom(256, 512, 3, 2, 14), 'auto')).toBe('im2col');
    expect(chooseDw(geom(256, 512, 1, 2, 14), 'auto')).toBe('tapGather');
    expect(chooseDw(geom(256, 512, 1, 1, 14), 'auto')).toBe('tapGemm');
    expect(chooseDw(geom(32, 32, 3, 1, 56, 32), 'auto')).toBe('tapReduce');
  });

  const dxMethods: ConvDxMethod[] = ['convTranspose', 'flippedConv'];
  const dwMethods: ConvDwMethod[] = ['batchAsChannels', 'tapGemm', 'im2col', 'tapReduce', 'tapMatMul', 'tapGather', 'imageIm2col'];
  for (const c of convs) {
    for (const dx of dxMethods) {
      for (const dw of dwMethods) {
        it(`Conv ${c.name} (dX ${dx}, dW ${dw})`, () =>
          expectGradOk({
            build: (b, i) => b.op('Conv', [i.x, i.w, c.bias ? i.bias : undefined], { kernel_shape: c.w.slice(2), ...c.attrs } as never),
            inputs: { x: { dims: c.x }, w: { dims: c.w, lo: -0.5, hi: 0.5 }, ...(c.bias ? { bias: { dims: [c.w[0]] } } : {}) },
            options: { convDx: dx, convDw: dw },
          }));
      }
    }
  }
});

describe('pooling and reductions', () => {
  // distinct values so each max-pool window has a unique argmax away from ties
  const distinct = (n: number, seed: number) => {
    const v = fill(seed, [n], 0, 1);
    const order = Array.from(v.keys()).sort((a, b) => v[a] - v[b]);
    const out = new Float32Array(n);
    order.forEach((idx, rank) => (out[idx] = rank / n - 0.5));
    return out;
  };
  it('MaxPool 2×2 s2', () => expectGradOk({ build: (b, i) => b.op('MaxPool', [i.x], { kernel_shape: [2, 2], strides: [2, 2] }), inputs: { x: { dims: [2, 3, 6, 6], data: distinct(216, 1) } }, h: 1e-3 }));
  it('MaxPool 3×3 s2 p1 (overlapping windows)', () =>
    expectGradOk({ build: (b, i) => b.op('MaxPool', [i.x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }), inputs: { x: { dims: [2, 2, 7, 7], data: distinct(196, 2) } }, h: 1e-3 }));
  it('MaxPool ceil_mode', () =>
    expectGradOk({ build: (b, i) => b.op('MaxPool', [i.x], { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 }), inputs: { x: { dims: [1, 2, 8, 8], data: distinct(128, 3) } }, h: 1e-3 }));
  it('AveragePool 2×2 s2', () => expectGradOk({ build: (b, i) => b.op('AveragePool', [i.x], { kernel_shape: [2, 2], strides: [2, 2] }), inputs: { x: { dims: [2, 3, 6, 6] } } }));
  it('AveragePool 3×3 s1 p1 excluding pads', () =>
    expectGradOk({ build: (b, i) => b.op('AveragePool', [i.x], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }), inputs: { x: { dims: [2, 3, 5, 5] } } }));
  it('AveragePool 3×3 s2 p1 including pads', () =>
    expectGradOk({ build: (b, i) => b.op('AveragePool', [i.x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad: 1 }), inputs: { x: { dims: [2, 3, 7, 7] } } }));
  it('AveragePool ceil_mode', () =>
    expectGradOk({ build: (b, i) => b.op('AveragePool', [i.x], { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 }), inputs: { x: { dims: [1, 2, 8, 8] } } }));
  it('GlobalAveragePool', () => expectGradOk({ build: (b, i) => b.op('GlobalAveragePool', [i.x]), inputs: { x: { dims: [2, 3, 4, 5] } } }));
  it('GlobalMaxPool', () => expectGradOk({ build: (b, i) => b.op('GlobalMaxPool', [i.x]), inputs: { x: { dims: [2, 3, 4, 5], data: distinct(120, 4) } }, h: 1e-3 }));
  it('ReduceMean keepdims=0 over spatial axes', () => expectGradOk({ build: (b, i) => b.op('ReduceMean', [i.x], { axes: [2, 3], keepdims: 0 }), inputs: { x: { dims: [2, 3, 4, 5] } } }));
  it('ReduceSum (axes input) keepdims=1', () => expectGradOk({ build: (b, i) => b.op('ReduceSum', [i.x, b.i64([1])], { keepdims: 1 }), inputs: { x: { dims: [2, 3, 4] } } }));
  it('ReduceMax', () => expectGradOk({ build: (b, i) => b.op('ReduceMax', [i.x], { axes: [1], keepdims: 0 }), inputs: { x: { dims: [2, 6, 3], data: distinct(36, 5) } }, h: 1e-3 }));
});

// At a tie the derivative is a convention, which finite differences cannot check: these pin PyTorch's
// (the same as TensorFlow's for the reductions) on exact values.
describe('max gradients at ties', () => {
  const x = Float32Array.from([1, 3, 3, 2, 0, 0, 0, 0]);
  it('ReduceMax shares the gradient evenly between tied maxima (torch.amax, tf.reduce_max)', async () => {
    const g = await analyticGrad({ build: (b, i) => b.op('ReduceMax', [i.x], { axes: [1], keepdims: 0 }), inputs: { x: { dims: [2, 4], data: x } } }, Float32Array.from([1, 2]));
    expect(Array.from(g)).toEqual([0, 0.5, 0.5, 0, 0.5, 0.5, 0.5, 0.5]);
  });
  it('ReduceMin over every axis', async () => {
    const g = await analyticGrad({ build: (b, i) => b.op('ReduceMin', [i.x], { keepdims: 1 }), inputs: { x: { dims: [2, 4], data: x } } }, Float32Array.from([8]));
    expect(Array.from(g)).toEqual([0, 0, 0, 0, 2, 2, 2, 2]);
  });
  it('GlobalMaxPool routes to the first maximum in row-major order (adaptive_max_pool2d)', async () => {
    const g = await analyticGrad({ build: (b, i) => b.op('GlobalMaxPool', [i.x]), inputs: { x: { dims: [2, 1, 2, 2], data: x } } }, Float32Array.from([1, 2]));
    expect(Array.from(g)).toEqual([0, 1, 0, 0, 2, 0, 0, 0]);
  });
  it('MaxPool routes each window to its first maximum (max_pool2d)', async () => {
    const g = await analyticGrad({ build: (b, i) => b.op('MaxPool', [i.x], { kernel_shape: [2, 2] }), inputs: { x: { dims: [2, 1, 2, 2], data: x } } }, Float32Array.from([1, 2]));
    expect(Array.from(g)).toEqual([0, 1, 0, 0, 2, 0, 0, 0]);
  });
});

describe('data movement', () => {
  it('Reshape / Flatten / Squeeze / Unsqueeze', async () => {
    await expectGradOk({ build: (b, i) => b.op('Reshape', [i.x, b.i64([2, -1])]), inputs: { x: { dims: [2, 3, 4] } } });
    await expectGradOk({ build: (b, i) => b.op('Flatten', [i.x], { axis: 1 }), inputs: { x: { dims: [2, 3, 2, 2] } } });
    await expectGradOk({ build: (b, i) => b.op('Squeeze', [i.x, b.i64([2, 3])]), inputs: { x: { dims: [2, 3, 1, 1] } } });
    await expectGradOk({ build: (b, i) => b.op('Unsqueeze', [i.x, b.i64([0])]), inputs: { x: { dims: [2, 3] } } });
  });
  it('Transpose', () => expectGradOk({ build: (b, i) => b.op('Transpose', [i.x], { perm: [0, 2, 3, 1] }), inputs: { x: { dims: [2, 3, 4, 5] } } }));
  it('Concat along a symbolic batch axis (sizes known at run time)', () =>
    expectGradOk({ build: (b, i) => b.op('Concat', [i.a, i.c], { axis: 0 }), inputs: { a: { dims: [2, 3] }, c: { dims: [3, 3] } }, symbolicBatch: true }));
  it('Concat (inputs of different sizes)', () =>
    expectGradOk({ build: (b, i) => b.op('Concat', [i.a, i.c, i.a], { axis: 1 }), inputs: { a: { dims: [2, 3, 2] }, c: { dims: [2, 5, 2] } } }));
  it('Split with an unused output', () =>
    expectGradOk({
      build: (b, i) => {
        const [p, , r] = b.node('Split', [i.x, b.i64([2, 1, 3])], { axis: 1 }, { outputs: 3 });
        return b.op('Concat', [p, r], { axis: 1 });
      },
      inputs: { x: { dims: [2, 6, 3] } },
    }));
  it('Slice with negative and clamped bounds', () =>
    expectGradOk({ build: (b, i) => b.op('Slice', [i.x, b.i64([1, -3]), b.i64([100, -1]), b.i64([1, 2])]), inputs: { x: { dims: [2, 4, 6] } } }));
  it('Pad constant (and a crop)', async () => {
    await expectGradOk({ build: (b, i) => b.op('Pad', [i.x, b.i64([0, 0, 1, 2, 0, 0, 2, 1])]), inputs: { x: { dims: [2, 3, 4, 4] } } });
    await expectGradOk({ build: (b, i) => b.op('Pad', [i.x, b.i64([0, 0, -1, 2, 0, 0, 1, -2])]), inputs: { x: { dims: [2, 3, 4, 4] } } });
  });
  it('Identity, Cast, inference Dropout', () =>
    expectGradOk({ build: (b, i) => b.op('Dropout', [b.op('Cast', [b.op('Identity', [i.x])], { to: 1 })]), inputs: { x: { dims: [3, 4] } } }));
});

describe('normalisation', () => {
  it('BatchNormalization with frozen statistics: x, scale and bias', () =>
    expectGradOk({
      build: (b, i) => b.op('BatchNormalization', [i.x, i.scale, i.bias, i.mean, i.var], { epsilon: attr.f(1e-3) }),
      inputs: { x: { dims: [2, 3, 4, 4] }, scale: { dims: [3], lo: 0.5, hi: 1.5 }, bias: { dims: [3] }, mean: { dims: [3], wrt: false }, var: { dims: [3], lo: 0.5, hi: 2, wrt: false } },
    }));
  it('BatchNormalization after Flatten (2-D input)', () =>
    expectGradOk({
      build: (b, i) => b.op('BatchNormalization', [i.x, i.scale, i.bias, i.mean, i.var]),
      inputs: { x: { dims: [4, 3] }, scale: { dims: [3], lo: 0.5, hi: 1.5 }, bias: { dims: [3] }, mean: { dims: [3], wrt: false }, var: { dims: [3], lo: 0.5, hi: 2, wrt: false } },
    }));
});

describe('rule coverage', () => {
  it('covers every op the issue lists for ResNet, VGG, MobileNet, EfficientNet and Inception', () => {
    const required = ['Conv', 'Gemm', 'MatMul', 'Relu', 'Clip', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Mul', 'Add', 'Sub', 'Div', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'ReduceMean', 'Flatten', 'Reshape', 'Transpose', 'Concat', 'Pad', 'BatchNormalization', 'Dropout', 'Softmax'];
    const have = new Set(differentiableOps());
    expect(required.filter((op) => !have.has(op))).toEqual([]);
  });
  it('fails with NO_GRADIENT_RULE naming the op', async () => {
    await expect(gradCheck({ build: (b, i) => b.op('LpNormalization', [i.x]), inputs: { x: { dims: [2, 3] } } })).rejects.toMatchObject({ code: 'NO_GRADIENT_RULE', message: expect.stringContaining('LpNormalization') });
  });
});


