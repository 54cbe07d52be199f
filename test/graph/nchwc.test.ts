/**
 * graph/nchwc: which convs move to ORT's blocked kernels and how the layout conversions are placed. The
 * numbers (every architecture's gradients against PyTorch through the lowered graph) are checked in
 * test/autodiff/torch.test.ts; this runs the small cases through ORT against the plain graph.
 */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/graph/builder.js';
import { Graph, Model } from '../../src/graph/graph.js';
import type { Node } from '../../src/graph/ir.js';
import { FILTER_REORDER, lowerConvsToNchwc, NCHWC_DOMAIN } from '../../src/graph/nchwc.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { float32 } from '../../src/onnx/tensor.js';
import { nchwcBlockSize } from '../../src/runtime/nchwc-probe.js';

const B = 16;

interface ConvSpec {
  x: string;
  w: [number, number, number, number];
  /** the weight is an initializer (ORT's own transformer handles those) instead of a graph input. */
  constant?: boolean;
  group?: number;
  stride?: number;
  /** [top, left, bottom, right]; default: half the kernel on every side */
  pads?: number[];
  dilation?: number;
}

/** A graph whose convs read weights fed as inputs w0, w1, … (as in a training step). */
function convGraph(input: number[], build: (conv: (s: ConvSpec) => string, b: GraphBuilder) => string[]): Model {
  const g = new Graph({ inputs: [{ name: 'x', dtype: 'float32', shape: input }] });
  const b = new GraphBuilder(g);
  b.reserve('x');
  let k = 0;
  const conv = (s: ConvSpec) => {
    const w = `w${k++}`;
    b.reserve(w);
    const data = Float32Array.from({ length: s.w.reduce((p, q) => p * q, 1) }, (_, i) => Math.sin(i * 0.7 + k) * 0.2);
    if (s.constant) g.initializers.set(w, float32(s.w, data));
    else g.inputs.push({ name: w, dtype: 'float32', shape: s.w });
    const p = s.w[2] >> 1;
    const d = s.dilation ?? 1;
    return b.op('Conv', [s.x, w], {
      kernel_shape: [s.w[2], s.w[3]],
      pads: s.pads ?? [p, p, p, p],
      strides: [s.stride ?? 1, s.stride ?? 1],
      dilations: [d, d],
      group: s.group ?? 1,
    });
  };
  const outs = build(conv, b);
  g.outputs = outs.map((name) => ({ name, dtype: 'float32' }));
  return new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }] });
}

const opTypes = (nodes: readonly Node[]) => nodes.map((n) => (n.domain === NCHWC_DOMAIN ? `nchwc.${n.opType}` : n.opType));
const ops = (m: Model) => opTypes(m.graph.nodes);
const blockedConvs = (m: Model): Node[] => m.graph.nodes.filter((n) => n.domain === NCHWC_DOMAIN && n.opType === 'Conv');

async function runAll(m: Model, feeds: Record<string, ort.Tensor>): Promise<Float32Array[]> {
  const s = await ort.InferenceSession.create(modelToBytes(m), { intraOpNumThreads: 1 });
  try {
    const out = await s.run(feeds);
    return m.graph.outputs.map((o) => out[o.name].data as Float32Array);
  } finally {
    await s.release();
  }
}

function feedsFor(m: Model): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [k, v] of m.graph.inputs.entries()) {
    const dims = v.shape as number[];
    const n = dims.reduce((p, q) => p * q, 1);
    feeds[v.name] = new ort.Tensor('float32', Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.31 + k) * (k ? 0.2 : 1)), dims);
  }
  return feeds;
}

describe('lowerConvsToNchwc', () => {
  it('keeps a conv → relu → conv chain blocked: one ReorderInput, the Relu fused, the second conv reading the blocked tensor', () => {
    const m = convGraph([2, 32, 8, 8], (conv, b) => {
      const h = b.op('Relu', [conv({ x: 'x', w: [32, 32, 3, 3] })]);
      return [conv({ x: h, w: [64, 32, 3, 3], stride: 2 })];
    });
    const r = lowerConvsToNchwc(m, { block: B });
    expect(r).toEqual({ lowered: 2, reorders: 2, foldedFlips: 0 });
    // nothing reads the first conv's output in NCHW, so its ReorderOutput is pruned
    expect(opTypes(m.graph.nodes.filter((n) => n.opType !== 'Reshape' && !n.name.startsWith(FILTER_REORDER)))).toEqual([
      'nchwc.ReorderInput',
      'nchwc.Conv',
      'nchwc.Conv',
      'nchwc.ReorderOutput',
    ]);
    const [first, second] = blockedConvs(m);
    expect(first.string('activation')).toBe('Relu');
    expect(second.string('activation')).toBeUndefined();
    expect(second.inputs[0]).toBe(first.outputs[0]);
    expect(second.ints('strides')).toEqual([2, 2]);
    expect(m.opsetImports).toContainEqual({ domain: NCHWC_DOMAIN, version: 1 });
  });

  it('reorders filters with ReorderInput, which runs on every thread, not with Transposes of single floats', () => {
    const m = convGraph([2, 32, 8, 8], (conv) => [conv({ x: conv({ x: 'x', w: [32, 32, 3, 3] }), w: [32, 1, 3, 3], group: 32 })]);
    lowerConvsToNchwc(m, { block: B });
    expect(ops(m)).not.toContain('Transpose');
    // the dense filter in two passes ([O, I, k] → [O, I/B, k, Bi] → [O/B, I/B, k, Bi, Bo]), the depthwise one in one
    expect(m.graph.nodes.filter((n) => n.name.startsWith(FILTER_REORDER))).toHaveLength(3);
  });

  it('fuses a residual block: the Add as the second conv\'s Sum input (the block input, already blocked), then the Relu', () => {
    const m = convGraph([2, 32, 8, 8], (conv, b) => {
      const h = b.op('Relu', [conv({ x: 'x', w: [32, 32, 3, 3] })]);
      return [b.op('Relu', [b.op('Add', [conv({ x: h, w: [32, 32, 3, 3] }), 'x'])])];
    });
    expect(lowerConvsToNchwc(m, { block: B })).toEqual({ lowered: 2, reorders: 2, foldedFlips: 0 });
    const reorderIn = m.graph.nodes.find((n) => n.opType === 'ReorderInput')!;
    const [, second] = blockedConvs(m);
    expect(second.inputs[3]).toBe(reorderIn.outputs[0]);
    expect(second.string('activation')).toBe('Relu');
    expect(ops(m)).not.toContain('Add');
    expect(ops(m)).not.toContain('Relu');
  });

  it('leaves alone convs with constant weights, channel counts off the block, and grouped (not depthwise) convs', () => {
    const m = convGraph([1, 32, 8, 8], (conv) => [
      conv({ x: 'x', w: [32, 32, 3, 3], constant: true }),
      conv({ x: 'x', w: [24, 32, 3, 3] }),
      conv({ x: 'x', w: [32, 16, 3, 3], group: 2 }),
    ]);
    const before = ops(m);
    expect(lowerConvsToNchwc(m, { block: B })).toEqual({ lowered: 0, reorders: 0, foldedFlips: 0 });
    expect(ops(m)).toEqual(before);
  });

  it('reads a 3-channel image in NCHW directly, and takes depthwise convs', () => {
    const m = convGraph([1, 3, 16, 16], (conv) => {
      const stem = conv({ x: 'x', w: [32, 3, 7, 7], stride: 2 });
      return [conv({ x: stem, w: [32, 1, 3, 3], group: 32 })];
    });
    expect(lowerConvsToNchwc(m, { block: B }).lowered).toBe(2);
    const [stem, dw] = blockedConvs(m);
    expect(stem.inputs[0]).toBe('x');
    expect(dw.inputs[0]).toBe(stem.outputs[0]);
    expect(dw.int('group')).toBe(32);
  });

  it("builds an input-gradient conv's filter, flip(Wᵀ) as the conv rule emits it, from the forward weight's first reorder pass", async (ctx) => {
    const build = () => {
      const g = new Graph({
        inputs: [
          { name: 'x', dtype: 'float32', shape: [2, 32, 6, 6] },
          { name: 'dy', dtype: 'float32', shape: [2, 48, 6, 6] },
          { name: 'w', dtype: 'float32', shape: [48, 32, 3, 3] },
        ],
      });
      const b = new GraphBuilder(g);
      b.reserve('x', 'dy', 'w');
      const anti = b.initializer('anti', float32([9, 9], Array.from({ length: 81 }, (_, i) => (i % 9 === 8 - Math.floor(i / 9) ? 1 : 0))));
      const y = b.op('Conv', ['x', 'w'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
      const swapped = b.op('Reshape', [b.op('Transpose', ['w'], { perm: [1, 0, 2, 3] }), b.i64([-1, 9])]);
      const flipped = b.op('Reshape', [b.op('MatMul', [swapped, anti]), b.i64([32, 48, 3, 3])]);
      const dx = b.op('Conv', ['dy', flipped], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
      g.outputs = [
        { name: y, dtype: 'float32' },
        { name: dx, dtype: 'float32' },
      ];
      return new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }] });
    };
    const lowered = build();
    expect(lowerConvsToNchwc(lowered, { block: B })).toMatchObject({ lowered: 2, foldedFlips: 1 });
    const ops = lowered.graph.nodes.map((n) => n.opType);
    expect(ops).not.toContain('MatMul'); // the flip is a Gather over the blocked taps now
    expect(ops.filter((o) => o === 'Gather')).toHaveLength(1);
    // the weight is read by one Reshape (the shared first pass), not by a separate [1,0,2,3] transpose
    expect(lowered.graph.nodes.filter((n) => n.inputs.includes('w')).map((n) => n.opType)).toEqual(['Reshape']);

    const block = await nchwcBlockSize();
    if (!block) ctx.skip();
    const plain = build();
    const onMachine = build();
    lowerConvsToNchwc(onMachine, { block });
    const feeds = feedsFor(plain);
    const want = await runAll(plain, feeds);
    const got = await runAll(onMachine, feeds);
    for (const [k, w] of want.entries()) {
      const scale = Math.max(...Array.from(w, Math.abs));
      expect(Math.max(...Array.from(w, (v, i) => Math.abs(v - got[k][i]))) / scale, `output ${k}`).toBeLessThan(1e-5);
    }
  });

  it('computes a gradient mask, its product and a gradient sum in the blocked layout when a conv reads the result', () => {
    // a backward pass's shape: dX = conv(dY) → · ReLU mask of a forward output → the next input-gradient conv
    const m = convGraph([2, 32, 8, 8], (conv, b) => {
      const y = b.op('Relu', [conv({ x: 'x', w: [32, 32, 3, 3] })]);
      const dx = b.op('Sum', [conv({ x: y, w: [32, 32, 3, 3] }), conv({ x: y, w: [32, 32, 1, 1] })]);
      const masked = b.op('Mul', [dx, b.op('Cast', [b.op('Greater', [y, b.f32(0)])], { to: 1 })]);
      return [conv({ x: masked, w: [32, 32, 3, 3] }), b.op('Neg', [masked])];
    });
    lowerConvsToNchwc(m, { block: B });
    const { producer } = m.graph.index();
    // one ReorderInput (x); the mask's chain reads the blocked forward output, the last conv the blocked product
    expect(m.graph.nodes.filter((n) => n.opType === 'ReorderInput' && !n.name.startsWith(FILTER_REORDER))).toHaveLength(1);
    const convs = blockedConvs(m);
    const product = producer.get(convs[3].inputs[0])!;
    expect(product.opType).toBe('Mul');
    expect(product.inputs.map((v) => producer.get(v)?.opType)).toEqual(['Sum', 'Cast']);
    expect(producer.get(product.inputs[0])!.inputs).toEqual([convs[1].outputs[0], convs[2].outputs[0]]);
    const greater = m.graph.nodes.find((n) => n.opType === 'Greater')!;
    expect(greater.inputs[0]).toBe(convs[0].outputs[0]);
    // the NCHW reader gets the product through one ReorderOutput; no NCHW copy of the chain is left
    const neg = m.graph.nodes.find((n) => n.opType === 'Neg')!;
    expect(producer.get(neg.inputs[0])).toMatchObject({ opType: 'ReorderOutput', inputs: [product.outputs[0]] });
    expect(ops(m).filter((o) => o === 'Mul' || o === 'Sum' || o === 'Cast' || o === 'Greater')).toHaveLength(4);
  });

  it('keeps a pointwise product in NCHW, mask and all, when one operand has no blocked twin', () => {
    const m = convGraph([1, 32, 4, 4], (conv, b) => {
      b.reserve('scale');
      const y = conv({ x: 'x', w: [32, 32, 3, 3] });
      // the mask (which could go blocked) comes first: nothing of the chain may move before the whole can
      const mask = b.op('Cast', [b.op('Greater', [y, b.f32(0)])], { to: 1 });
      return [conv({ x: b.op('Mul', [mask, 'scale']), w: [32, 32, 3, 3] })];
    });
    m.graph.inputs.push({ name: 'scale', dtype: 'float32', shape: [1, 32, 4, 4] });
    lowerConvsToNchwc(m, { block: B });
    const { producer } = m.graph.index();
    const greater = m.graph.nodes.find((n) => n.opType === 'Greater')!;
    expect(producer.get(greater.inputs[0])?.opType).toBe('ReorderOutput');
    expect(m.graph.nodes.filter((n) => n.opType === 'ReorderOutput').map((n) => producer.get(n.inputs[0])?.opType)).toEqual(['Conv', 'Conv']);
    expect(producer.get(blockedConvs(m)[1].inputs[0])?.opType).toBe('ReorderInput');
  });

  it('does not fuse a Relu into a conv whose output something else also reads', () => {
    const m = convGraph([1, 32, 4, 4], (conv, b) => {
      const y = conv({ x: 'x', w: [32, 32, 3, 3] });
      return [b.op('Relu', [y]), b.op('Neg', [y])];
    });
    lowerConvsToNchwc(m, { block: B });
    expect(blockedConvs(m)[0].string('activation')).toBeUndefined();
    expect(ops(m)).toContain('Relu');
  });

  it('computes what the plain graph computes (ORT, this machine\'s block size)', async (ctx) => {
    const block = await nchwcBlockSize();
    if (!block) ctx.skip();
    const build = () =>
      convGraph([2, 3, 20, 20], (conv, b) => {
        const stem = b.op('Relu', [conv({ x: 'x', w: [32, 3, 5, 5], stride: 2 })]);
        const a = b.op('Relu', [conv({ x: stem, w: [32, 32, 3, 3] })]);
        const c = conv({ x: a, w: [32, 32, 3, 3] });
        const sum = b.op('Relu', [b.op('Add', [c, stem])]);
        const dw = conv({ x: sum, w: [32, 1, 3, 3], group: 32, stride: 2 });
        const pw = conv({ x: dw, w: [64, 32, 1, 1] });
        const dilated = conv({ x: a, w: [32, 32, 3, 3], dilation: 2, pads: [2, 2, 2, 2] });
        const rectangular = conv({ x: a, w: [32, 32, 1, 7], pads: [0, 3, 0, 3] });
        const asymmetric = conv({ x: a, w: [32, 32, 3, 3], stride: 2, pads: [0, 0, 1, 1] }); // Keras "same"
        // a ReLU6's gradient mask (bounds as Constant nodes, as exported) on a sum, read by a conv: blocked
        const six = b.op('Clip', [dilated, b.op('Constant', [], { value: float32([], [0]) }), b.op('Constant', [], { value: float32([], [6]) })]);
        const mask = b.op('Cast', [b.op('And', [b.op('Greater', [six, b.f32(0)]), b.op('Less', [six, b.f32(0.1)])])], { to: 1 });
        const masked = conv({ x: b.op('Mul', [b.op('Add', [rectangular, a]), mask]), w: [32, 32, 3, 3] });
        // a comparison something else also reads in NCHW (there is no ReorderOutput for booleans)
        const above = b.op('Greater', [asymmetric, b.f32(0)]);
        const gated = conv({ x: b.op('Mul', [asymmetric, b.op('Cast', [above], { to: 1 })]), w: [32, 32, 1, 1] });
        return [pw, a, dilated, rectangular, asymmetric, masked, gated, b.op('Cast', [b.op('Not', [above])], { to: 1 })];
      });
    const plain = build();
    const lowered = build();
    expect(lowerConvsToNchwc(lowered, { block }).lowered).toBe(10);
    expect(lowered.graph.nodes.filter((n) => n.opType === 'ReorderInput' && !n.name.startsWith(FILTER_REORDER)), 'only the image enters the blocked layout').toHaveLength(0);
    expect(blockedConvs(lowered).filter((n) => n.inputs[3]).length, 'convs with a fused residual Add').toBe(1);
    const feeds = feedsFor(plain);
    const want = await runAll(plain, feeds);
    const got = await runAll(lowered, feeds);
    for (const [k, w] of want.entries()) {
      const scale = Math.max(...Array.from(w, Math.abs));
      const err = Math.max(...Array.from(w, (v, i) => Math.abs(v - got[k][i])));
      expect(err / scale, `output ${k}`).toBeLessThan(1e-5);
    }
  });
});
