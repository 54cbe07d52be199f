import { describe, expect, it } from 'vitest';
import { addDim, broadcastDim, broadcastShapes, divDim, evalDim, mulDim, prodDims } from '../../src/graph/dims.js';
import { GraphBuilder } from '../../src/graph/builder.js';
import { Graph } from '../../src/graph/graph.js';
import { attr, type Dim } from '../../src/graph/ir.js';
import { modelFromBytes, modelToBytes } from '../../src/graph/serialize.js';
import { annotateShapes, inferShapes, inferShapesDetailed } from '../../src/graph/shapes.js';
import { float32, int64, numel, tensor } from '../../src/onnx/tensor.js';
import { realModels } from './models.js';
import { checkAgainstOrt, feedsFor, modelOf, rand, runModel } from './oracle.js';

function start(inputs: [string, Dim[]][]): { g: Graph; b: GraphBuilder } {
  const g = new Graph({ inputs: inputs.map(([name, shape]) => ({ name, dtype: 'float32', shape })) });
  const b = new GraphBuilder(g);
  return { g, b };
}

let seed = 100;
const weight = (b: GraphBuilder, dims: number[]) => b.initializer('w', float32(dims, rand(numel(dims), seed++, -0.5, 0.5)));
const shapeOf = (g: Graph, name: string, opset = 17) => inferShapes(g, { opset }).get(name)?.shape;

describe('dim algebra', () => {
  it('broadcasts symbols the way ONNX does', () => {
    expect(broadcastDim(1, 'N')).toBe('N');
    expect(broadcastDim('N', 1)).toBe('N');
    expect(broadcastDim('N', 4)).toBe(4);
    expect(broadcastDim(4, 'N')).toBe(4);
    expect(broadcastDim('N', 'N')).toBe('N');
    expect(broadcastDim('N', 'M')).toBeNull();
    expect(broadcastDim(null, 'N')).toBeNull();
    expect(broadcastDim(null, 3)).toBe(3);
    expect(broadcastDim(3, 4)).toBeNull();
    expect(broadcastShapes(['N', 1, 5], [4, 1], [])).toEqual(['N', 4, 5]);
    expect(broadcastShapes(['N', 3], undefined)).toBeUndefined();
  });

  it('multiplies and divides symbolic products exactly', () => {
    expect(mulDim('N', 512)).toBe('512*N');
    expect(divDim(prodDims(['N', 512, 1, 1]), 512)).toBe('N');
    expect(divDim(mulDim('N', 'T'), 'T')).toBe('N');
    expect(divDim('N', 2)).toBeNull();
    expect(divDim(6, 4)).toBeNull();
    expect(mulDim(null, 0)).toBe(0);
    expect(addDim('N', 0)).toBe('N');
    expect(addDim('N', 2)).toBeNull();
    expect(evalDim('3*N*T', { N: 2, T: 5 })).toBe(30);
    expect(evalDim('N', {})).toBeNull();
  });
});

describe('inferShapes against onnxruntime', () => {
  it('convolutions: asymmetric pads, SAME on odd sizes, dilation, groups, 1-D, transposed', async () => {
    const { g, b } = start([
      ['x', ['N', 3, 17, 15]],
      ['s', ['N', 4, 11]],
    ]);
    const bias = b.initializer('bias', float32([4], [0.1, 0.2, 0.3, 0.4]));
    b.op('Conv', ['x', weight(b, [8, 3, 3, 3])], { pads: [1, 1, 1, 1] });
    b.op('Conv', ['x', weight(b, [8, 3, 3, 3])], { strides: [2, 2], auto_pad: 'SAME_UPPER', kernel_shape: [3, 3] });
    b.op('Conv', ['x', weight(b, [4, 3, 4, 4])], { strides: [2, 2], auto_pad: 'SAME_LOWER' });
    b.op('Conv', ['x', weight(b, [4, 3, 5, 5])], { strides: [3, 3], auto_pad: 'VALID' });
    b.op('Conv', ['x', weight(b, [4, 3, 3, 3])], { strides: [2, 2], pads: [0, 0, 1, 1] }); // Keras ZeroPadding2D(((0,1),(0,1)))
    b.op('Conv', ['x', weight(b, [4, 3, 3, 3]), bias], { dilations: [2, 3], pads: [2, 1, 0, 3] });
    b.op('Conv', ['x', weight(b, [5, 3, 1, 1])]);
    const x6 = b.op('Conv', ['x', weight(b, [6, 3, 3, 3])], { pads: [1, 1, 1, 1] });
    b.op('Conv', [x6, weight(b, [6, 2, 3, 3])], { group: 3, strides: [2, 1] });
    b.op('Conv', [x6, weight(b, [6, 1, 3, 3])], { group: 6, strides: [2, 2], pads: [1, 1, 1, 1] }); // depthwise
    b.op('Conv', ['s', weight(b, [2, 4, 3])], { strides: [2], pads: [1, 0] });
    b.op('ConvTranspose', ['x', weight(b, [3, 4, 3, 3])], { strides: [2, 2], output_padding: [1, 0], pads: [1, 1, 1, 1] });
    b.op('ConvTranspose', ['x', weight(b, [3, 4, 3, 3])], { strides: [2, 2], output_shape: [34, 30] });
    b.op('ConvTranspose', [x6, weight(b, [6, 2, 3, 3])], { group: 3, strides: [2, 2], dilations: [2, 1] });
    b.op('ConvTranspose', ['x', weight(b, [3, 2, 4, 4])], { strides: [2, 2], auto_pad: 'SAME_UPPER' });
    const r = await checkAgainstOrt(g);
    expect(r.unknown).toEqual([]);
    expect(r.checked).toBe(15);
    expect(shapeOf(g, g.nodes[1].outputs[0])).toEqual(['N', 8, 9, 8]);
    expect(shapeOf(g, g.nodes[4].outputs[0])).toEqual(['N', 4, 8, 7]);
  });

  it('pools: ceil_mode (incl. a last window in the padding), dilations, SAME/VALID, Indices, global', async () => {
    const { g, b } = start([
      ['x', ['N', 3, 17, 15]],
      ['y', ['N', 2, 5, 6]],
    ]);
    b.op('MaxPool', ['x'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
    b.op('MaxPool', ['x'], { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 });
    b.op('MaxPool', ['x'], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 });
    b.op('MaxPool', ['y'], { kernel_shape: [2, 2], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 });
    b.op('MaxPool', ['x'], { kernel_shape: [3, 3], dilations: [2, 2], strides: [1, 2] });
    b.node('MaxPool', ['x'], { kernel_shape: [2, 3], strides: [2, 2] }, { outputs: 2 });
    b.op('MaxPool', ['x'], { kernel_shape: [3, 3], strides: [3, 3], auto_pad: 'VALID' });
    b.op('AveragePool', ['x'], { kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_UPPER' });
    b.op('AveragePool', ['x'], { kernel_shape: [2, 2], strides: [2, 2], auto_pad: 'SAME_LOWER' });
    b.op('AveragePool', ['x'], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 });
    b.op('AveragePool', ['x'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 0, 1, 0], count_include_pad: 1 });
    b.op('LpPool', ['x'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], p: 2 });
    b.op('GlobalAveragePool', ['x']);
    b.op('GlobalMaxPool', ['y']);
    const r = await checkAgainstOrt(g);
    expect(r.unknown).toEqual([]);
    expect(shapeOf(g, g.nodes[3].outputs[0])).toEqual(['N', 2, 3, 4]);
    expect(inferShapes(g).get(g.nodes[5].outputs[1])).toEqual({ name: g.nodes[5].outputs[1], dtype: 'int64', shape: ['N', 3, 8, 7] });
  });

  it('activations, casts and normalisations keep shapes; Dropout, BN and LayerNorm side outputs', async () => {
    const { g, b } = start([['x', ['N', 4, 5, 6]]]);
    for (const op of ['Relu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'LeakyRelu', 'Elu', 'Selu', 'Softplus', 'Erf', 'Exp', 'Log', 'Sqrt', 'Neg', 'Abs', 'Reciprocal', 'Identity'])
      b.op(op, ['x']);
    b.op('Clip', ['x', b.f32(0), b.f32(6)]);
    b.op('Softmax', ['x'], { axis: 1 });
    b.op('LogSoftmax', ['x'], { axis: -1 });
    b.node('Dropout', ['x', b.f32(0.3)], {}, { outputs: 2 });
    b.op('Cast', ['x'], { to: 6 });
    b.op('Cast', ['x'], { to: 10 });
    b.op('Cast', ['x'], { to: 9 });
    const ch = (v: number) => b.initializer('c', float32([4], [v, v + 0.1, v + 0.2, v + 0.3]));
    b.op('BatchNormalization', ['x', ch(1), ch(0), ch(0), ch(1)], { epsilon: attr.f(1e-5) });
    b.op('InstanceNormalization', ['x', ch(1), ch(0)]);
    b.op('LRN', ['x'], { size: 3 });
    b.node('LayerNormalization', ['x', weight(b, [5, 6]), weight(b, [5, 6])], { axis: -2 }, { outputs: 3 });
    const r = await checkAgainstOrt(g);
    expect(r.unknown).toEqual([]);
    const types = inferShapes(g);
    const ln = g.nodes.at(-1)!;
    expect(types.get(ln.outputs[1])!.shape).toEqual(['N', 4, 1, 1]);
    const dropout = g.nodes.find((n) => n.opType === 'Dropout')!;
    expect(types.get(dropout.outputs[1])!.dtype).toBe('bool');
  });

  it('Gelu (opset 20) and BatchNormalization training outputs', async () => {
    const { g, b } = start([['x', ['N', 3, 4]]]);
    b.op('Gelu', ['x'], { approximate: 'tanh' });
    expect((await checkAgainstOrt(g, { opset: 20 })).unknown).toEqual([]);
    // training-mode BN is not in ORT's CPU build: checked against the ONNX spec instead
    const t = start([['x', ['N', 3, 4, 4]]]);
    const c = t.b.initializer('c', float32([3], [1, 1, 1]));
    const outs = t.b.node('BatchNormalization', ['x', c, c, c, c], { training_mode: 1 }, { outputs: 3 });
    const types = inferShapes(t.g, { opset: 15 });
    expect(outs.map((o) => types.get(o)!.shape)).toEqual([['N', 3, 4, 4], [3], [3]]);
  });

  it('broadcasting binaries, variadic ops, comparisons and Where', async () => {
    const { g, b } = start([
      ['x', ['N', 4, 5, 6]],
      ['y', ['N', 1, 5, 1]],
    ]);
    const c1 = weight(b, [1, 5, 1]);
    const c2 = weight(b, [6]);
    const c3 = weight(b, [4, 1, 1]);
    b.op('Add', ['x', c1]);
    b.op('Sub', [c2, 'x']);
    b.op('Mul', ['x', 'y']);
    b.op('Div', ['y', c3]);
    b.op('Pow', ['x', b.f32(2)]);
    b.op('Max', ['x', c1, c3]);
    b.op('Min', ['y', c2]);
    b.op('Sum', ['x', 'y', c2]);
    b.op('Mean', [c1, c3]);
    const gt = b.op('Greater', ['x', c1]);
    const lt = b.op('Less', ['y', b.f32(0)]);
    b.op('Equal', [gt, lt]);
    b.op('And', [gt, lt]);
    b.op('Or', [lt, gt]);
    b.op('Where', [lt, 'x', c2]);
    const r = await checkAgainstOrt(g);
    expect(r.unknown).toEqual([]);
    expect(shapeOf(g, g.nodes[3].outputs[0])).toEqual(['N', 4, 5, 1]);
  });

  it('Gemm with transA/transB and MatMul batched and 1-D', async () => {
    const { g, b } = start([
      ['a', ['N', 6]],
      ['x', ['N', 2, 3, 4]],
      ['v', [4]],
    ]);
    b.op('Gemm', ['a', weight(b, [6, 4]), weight(b, [4])]);
    b.op('Gemm', ['a', weight(b, [4, 6]), weight(b, [1, 4])], { transB: 1, alpha: attr.f(0.5) });
    b.op('Gemm', [b.op('Transpose', ['a']), weight(b, [6, 3])], { transA: 1 });
    b.op('MatMul', ['x', weight(b, [4, 5])]);
    b.op('MatMul', ['x', weight(b, [2, 4, 5])]);
    b.op('MatMul', ['x', 'v']);
    b.op('MatMul', [weight(b, [3]), 'x']);
    b.op('MatMul', ['v', 'v']);
    b.op('MatMul', ['v', weight(b, [4, 2])]);
    const r = await checkAgainstOrt(g);
    expect(r.unknown).toEqual([]);
    expect(shapeOf(g, g.nodes[6].outputs[0])).toEqual(['N', 2, 3]);
    expect(shapeOf(g, g.nodes[8].outputs[0])).toEqual([]);
  });

  it('reshaping ops: Flatten, Reshape (0, -1, allowzero), Transpose, Concat, Split, Squeeze/Unsqueeze', async () => {
    const { g, b } = start([['x', ['N', 4, 5, 6]]]);
    for (const axis of [0, 1, 2, -1]) b.op('Flatten', ['x'], { axis });
    b.op('Reshape', ['x', b.i64([0, -1])]);
    b.op('Reshape', ['x', b.i64([0, 2, -1, 3])]);
    b.op('Reshape', ['x', b.i64([-1, 30])]);
    b.op('Reshape', ['x', b.i64([0, 0, 30])]);
    const empty = b.op('Slice', ['x', b.i64([6]), b.i64([6]), b.i64([3])]);
    b.op('Reshape', [empty, b.i64([0, 7])], { allowzero: 1 });
    b.op('Transpose', ['x'], { perm: [0, 2, 3, 1] });
    b.op('Transpose', ['x']);
    b.op('Concat', ['x', 'x'], { axis: 1 });
    b.op('Concat', ['x', b.op('Slice', ['x', b.i64([0]), b.i64([2]), b.i64([3])]), 'x'], { axis: -1 });
    b.node('Split', ['x', b.i64([1, 3])], { axis: 1 }, { outputs: 2 });
    b.node('Split', ['x'], { axis: 3 }, { outputs: 3 });
    const u = b.op('Unsqueeze', ['x', b.i64([0, -1])]);
    b.op('Squeeze', [u, b.i64([0, 5])]);
    b.op('Squeeze', [b.op('GlobalAveragePool', ['x']), b.i64([2, 3])]);
    const r = await checkAgainstOrt(g);
    expect(r.unknown).toEqual([]);
    const types = inferShapes(g);
    const out = (i: number) => types.get(g.nodes[i].outputs[0])!.shape;
    expect(out(0)).toEqual([1, '120*N']);
    expect(out(2)).toEqual(['4*N', 30]);
    expect(out(4)).toEqual(['N', 120]);
    expect(out(6)).toEqual(['4*N', 30]);
  });

  it('Split at opset 11 (attribute) and opset 18 (num_outputs, uneven)', async () => {
    const a = start([['x', ['N', 7, 3]]]);
    a.b.node('Split', ['x'], { axis: 1, split: [2, 5] }, { outputs: 2 });
    a.b.op('Unsqueeze', ['x'], { axes: [1] });
    a.b.op('Squeeze', [a.b.op('ReduceMean', ['x'], { axes: [1] })], { axes: [1] });
    expect((await checkAgainstOrt(a.g, { opset: 11 })).unknown).toEqual([]);
    const c = start([['x', ['N', 7, 3]]]);
    c.b.node('Split', ['x'], { axis: 1, num_outputs: 3 }, { outputs: 3 });
    c.b.op('ReduceMean', ['x', c.b.i64([1])], { keepdims: 0 });
    c.b.op('ReduceMax', ['x'], { keepdims: 0 });
    expect((await checkAgainstOrt(c.g, { opset: 18 })).unknown).toEqual([]);
    expect(inferShapes(c.g, { opset: 18 }).get(c.g.nodes[0].outputs[2])!.shape).toEqual(['N', 1, 3]);
  });

  it('opset-specific forms: Slice attributes (opset 9); Resize axes/keep_aspect_ratio_policy and Pad axes (opset 18)', async () => {
    const a = start([['x', ['N', 3, 10, 7]]]);
    a.b.op('Slice', ['x'], { starts: [1, -4], ends: [100, -1], axes: [2, 3] });
    a.b.op('Squeeze', [a.b.op('Slice', ['x'], { starts: [0, 0], ends: [1, 1], axes: [1, 2] })], { axes: [1] });
    expect((await checkAgainstOrt(a.g, { opset: 9 })).unknown).toEqual([]);
    const c = start([['x', ['N', 3, 10, 7]]]);
    c.b.op('Resize', ['x', '', '', c.b.i64([5, 5])], { axes: [2, 3], keep_aspect_ratio_policy: 'not_larger' });
    c.b.op('Resize', ['x', '', '', c.b.i64([5, 5])], { axes: [2, 3], keep_aspect_ratio_policy: 'not_smaller' });
    c.b.op('Resize', ['x', '', c.b.f32s([0.5, 3])], { axes: [3, 2] });
    c.b.op('Pad', ['x', c.b.i64([1, 2, 3, 4]), '', c.b.i64([-1, 1])]);
    expect((await checkAgainstOrt(c.g, { opset: 18 })).unknown).toEqual([]);
    const types = inferShapes(c.g, { opset: 18 });
    expect(c.g.nodes.map((n) => types.get(n.outputs[0])!.shape)).toEqual([
      ['N', 3, 5, 4],
      ['N', 3, 7, 5],
      ['N', 3, 30, 3],
      ['N', 9, 10, 11],
    ]);
  });

  it('Slice with negative steps, clamping and negative axes; Pad in every mode', async () => {
    const { g, b } = start([['x', ['N', 4, 9, 8]]]);
    const big = (v: bigint[]) => b.initializer('big', int64([v.length], v));
    b.op('Slice', ['x', b.i64([1]), b.i64([-1]), b.i64([2])]);
    b.op('Slice', ['x', b.i64([-1]), b.i64([-1000]), b.i64([3]), b.i64([-2])]);
    b.op('Slice', ['x', b.i64([7, 1]), b.i64([1, 1000]), b.i64([-2, -1]), b.i64([-3, 3])]);
    b.op('Slice', ['x', b.i64([0, 2]), big([2n ** 63n - 1n, 3n]), b.i64([0, 1])]);
    b.op('Slice', ['x', b.i64([-1, -100]), big([-(2n ** 63n), 100n]), b.i64([0, 3]), b.i64([-1, 5])]);
    b.op('Slice', ['x', b.i64([20]), b.i64([30]), b.i64([2])]);
    b.op('Pad', ['x', b.i64([0, 0, 1, 2, 0, 0, 3, 0])]);
    b.op('Pad', ['x', b.i64([0, 1, 1, 1, 0, 1, -2, -1]), b.f32(0.5)]);
    b.op('Pad', ['x', b.i64([0, 0, 2, 2, 0, 0, 2, 2])], { mode: 'reflect' });
    b.op('Pad', ['x', b.i64([0, 0, 3, 0, 0, 0, 0, 1])], { mode: 'edge' });
    const r = await checkAgainstOrt(g);
    expect(r.unknown).toEqual([]);
    expect(shapeOf(g, g.nodes[1].outputs[0])).toEqual(['N', 4, 9, 4]);
  });

  it('Shape, Size, Gather, Constant, ConstantOfShape, Expand, Tile, Range', async () => {
    const { g, b } = start([['x', ['N', 4, 5, 7]]]);
    const shape = b.op('Shape', ['x']);
    b.op('Shape', ['x'], { start: 1, end: -1 });
    b.op('Size', ['x']);
    b.op('Gather', ['x', b.initializer('idx', int64([2, 2], [0, 2, 1, -1]))], { axis: 1 });
    b.op('Gather', [shape, b.i64Scalar(-1)]);
    b.op('Constant', [], { value: float32([2, 3]) });
    b.op('Constant', [], { value_float: attr.f(1) });
    b.op('Constant', [], { value_floats: attr.fs([1, 2]) });
    b.op('Constant', [], { value_int: 3 });
    b.op('Constant', [], { value_ints: [1, 2, 3] });
    b.op('ConstantOfShape', [shape], { value: int64([1], [1]) });
    b.op('Expand', [weight(b, [4, 1, 1]), shape]);
    b.op('Expand', ['x', b.i64([3, 1, 1, 1, 1])]);
    b.op('Tile', ['x', b.i64([1, 2, 1, 3])]);
    b.op('Range', [b.i64Scalar(0), b.i64Scalar(10), b.i64Scalar(3)]);
    b.op('Range', [b.f32(1), b.f32(-2), b.f32(-0.5)]);
    b.op('Range', [b.i64Scalar(0), b.op('Gather', [shape, b.i64Scalar(0)]), b.i64Scalar(1)]);
    const r = await checkAgainstOrt(g);
    expect(r.unknown).toEqual([]);
    const { types, values } = inferShapesDetailed(g);
    expect(values.get(shape)).toEqual(['N', 4, 5, 7]);
    expect(values.get(g.nodes[1].outputs[0])).toEqual([4, 5]);
    expect(values.get(g.nodes[2].outputs[0])).toEqual(['140*N']);
    expect(types.get(g.nodes[11].outputs[0])!.shape).toEqual(['N', 4, 5, 7]);
    expect(types.get(g.nodes.at(-1)!.outputs[0])!.shape).toEqual(['N']);
  });

  it('reductions (axes attribute vs input by opset, keepdims, noop_with_empty_axes), ArgMax, TopK', async () => {
    const { g, b } = start([['x', ['N', 4, 5, 7]]]);
    b.op('ReduceMean', ['x'], { axes: [2, 3] });
    b.op('ReduceSum', ['x', b.i64([1, -1])], { keepdims: 0 });
    b.op('ReduceSum', ['x'], { noop_with_empty_axes: 1 });
    b.op('ReduceSum', ['x'], { keepdims: 0 });
    b.op('ReduceMax', ['x']);
    b.op('ReduceMin', ['x'], { axes: [0], keepdims: 0 });
    b.op('ReduceL2', ['x'], { axes: [-1] });
    b.op('ArgMax', ['x'], { axis: 1, keepdims: 0 });
    b.op('ArgMin', ['x'], { axis: -1 });
    b.node('TopK', ['x', b.i64([3])], { axis: -1 }, { outputs: 2 });
    b.node('TopK', ['x', b.i64([2])], { axis: 1, largest: 0 }, { outputs: 2 });
    const r = await checkAgainstOrt(g);
    expect(r.unknown).toEqual([]);
    expect(shapeOf(g, g.nodes[1].outputs[0])).toEqual(['N', 5]);
    expect(shapeOf(g, g.nodes[2].outputs[0])).toEqual(['N', 4, 5, 7]);
    expect(shapeOf(g, g.nodes[3].outputs[0])).toEqual([]);
  });

  it('Resize by scales and sizes, Upsample, OneHot, ScatterElements, NonZero', async () => {
    const { g, b } = start([['x', ['N', 3, 5, 7]]]);
    b.op('Resize', ['x', '', b.f32s([1, 1, 2, 0.5])], { mode: 'nearest' });
    b.op('Resize', ['x', '', b.f32s([1, 1, 1.5, 1.3])], { mode: 'linear' });
    b.op('Resize', ['x', '', '', b.op('Concat', [b.op('Slice', [b.op('Shape', ['x']), b.i64([0]), b.i64([2])]), b.i64([9, 4])], { axis: 0 })]);
    const am = b.op('ArgMax', ['x'], { axis: 1 });
    b.op('OneHot', [am, b.i64Scalar(10), b.f32s([0, 1])]);
    b.op('OneHot', [am, b.f32(4), b.f32s([0, 1])], { axis: 1 });
    b.op('ScatterElements', ['x', am, b.op('Slice', ['x', b.i64([0]), b.i64([1]), b.i64([1])])], { axis: 1 });
    b.op('NonZero', [b.op('Greater', ['x', b.f32(0)])]);
    const r = await checkAgainstOrt(g);
    expect(r.unknown).toEqual([g.nodes.at(-1)!.outputs[0]]);
    expect(shapeOf(g, g.nodes.at(-1)!.outputs[0])).toEqual([4, null]);
    expect(shapeOf(g, g.nodes[1].outputs[0])).toEqual(['N', 3, 7, 9]);

    const u = start([['x', ['N', 3, 5, 7]]]);
    u.b.op('Upsample', ['x', u.b.f32s([1, 1, 2, 3])]);
    expect((await checkAgainstOrt(u.g, { opset: 9 })).unknown).toEqual([]);
    const r10 = start([['x', ['N', 3, 5, 7]]]);
    r10.b.op('Resize', ['x', r10.b.f32s([1, 1, 0.5, 0.5])]);
    expect((await checkAgainstOrt(r10.g, { opset: 10 })).unknown).toEqual([]);
  });

  it("resolves torch's x.view(x.size(0), -1) to ['N', features] (opset 11 and 17)", async () => {
    for (const opset of [11, 17]) {
      const { g, b } = start([['x', ['N', 3, 8, 8]]]);
      const r = b.op('Relu', [b.op('Conv', ['x', weight(b, [16, 3, 3, 3])], { strides: [2, 2], pads: [1, 1, 1, 1] })]);
      const batch = b.op('Gather', [b.op('Shape', [r]), b.i64Scalar(0)], { axis: 0 });
      const u = opset >= 13 ? b.op('Unsqueeze', [batch, b.i64([0])]) : b.op('Unsqueeze', [batch], { axes: [0] });
      const target = b.op('Concat', [u, b.i64([-1])], { axis: 0 });
      const flat = b.op('Reshape', [r, target]);
      // x.view(x.size(0), x.size(1), -1) and a shape computed with Mul/Div/Cast
      const ch = b.op('Gather', [b.op('Shape', [r]), b.i64Scalar(1)]);
      const t3 = b.op('Concat', [u, opset >= 13 ? b.op('Unsqueeze', [ch, b.i64([0])]) : b.op('Unsqueeze', [ch], { axes: [0] }), b.i64([-1])], { axis: 0 });
      const v3 = b.op('Reshape', [r, t3]);
      const half = b.op('Cast', [b.op('Div', [b.op('Mul', [b.op('Shape', [r]), b.i64([1, 2, 1, 1])]), b.i64([1, 1, 2, 1])])], { to: 7 });
      const v4 = b.op('Reshape', [r, half]);
      const res = await checkAgainstOrt(g, { opset });
      expect(res.unknown).toEqual([]);
      const types = inferShapes(g, { opset });
      expect(types.get(flat)!.shape).toEqual(['N', 256]);
      expect(types.get(v3)!.shape).toEqual(['N', 16, 16]);
      expect(types.get(v4)!.shape).toEqual(['N', 32, 2, 4]);
    }
  });

  it("resolves torch's expand(-1) pattern (ConstantOfShape → Mul → Equal → Where → Expand)", async () => {
    const { g, b } = start([['x', ['N', 4, 5]]]);
    const batch = b.op('Unsqueeze', [b.op('Gather', [b.op('Shape', ['x']), b.i64Scalar(0)]), b.i64([0])]);
    const target = b.op('Concat', [batch, b.i64([-1, -1])], { axis: 0 });
    const ones = b.op('ConstantOfShape', [b.i64([3])], { value: int64([1], [1]) });
    const neg = b.op('Mul', [ones, b.i64Scalar(-1)]);
    const shape = b.op('Where', [b.op('Equal', [target, neg]), ones, target]);
    const e = b.op('Expand', [weight(b, [1, 4, 5]), shape]);
    const res = await checkAgainstOrt(g);
    expect(res.unknown).toEqual([]);
    expect(inferShapes(g).get(e)!.shape).toEqual(['N', 4, 5]);
  });
});

describe('inferShapes behaviour', () => {
  it('takes input shapes from options and complains about unknown input names', () => {
    const { g, b } = start([['x', [1, 3, 'H', 'W']]]);
    const y = b.op('GlobalAveragePool', [b.op('Conv', ['x', weight(b, [8, 3, 3, 3])], { strides: [2, 2] })]);
    expect(inferShapes(g).get(y)!.shape).toEqual([1, 8, 1, 1]);
    expect(inferShapes(g, { inputShapes: { x: ['B', 3, 32, 32] } }).get(b.graph.nodes[0].outputs[0])!.shape).toEqual(['B', 8, 15, 15]);
    expect(() => inferShapes(g, { inputShapes: { image: [1, 3, 8, 8] } })).toThrow(/not a graph input.*x/);
  });

  it('leaves outputs of unknown ops unknown without throwing, and uses declared shapes when it has them', () => {
    const { g, b } = start([['x', ['N', 3]]]);
    const a = b.op('FancyOp', ['x'], {}, { domain: 'com.example' });
    const c = b.op('Relu', [a]);
    const d = b.op('NotAnOnnxOp', [c]);
    const bad = b.op('Conv', ['x', 'missing']);
    const types = inferShapes(g);
    expect(types.has(a)).toBe(false);
    expect(types.has(c)).toBe(false);
    expect(types.has(d)).toBe(false);
    expect(types.get(bad)!.shape).toEqual(['N', null]);
    g.valueInfo.set(a, { name: a, dtype: 'float32', shape: ['N', 7] });
    expect(inferShapes(g).get(c)).toEqual({ name: c, dtype: 'float32', shape: ['N', 7] });
    expect(inferShapes(g, { useDeclared: false }).has(c)).toBe(false);
  });

  it('annotateShapes stores value_info and output dims that survive a round trip and ORT accepts', async () => {
    const { g, b } = start([['x', ['N', 3, 9, 9]]]);
    const h = b.op('MaxPool', [b.op('Relu', [b.op('Conv', ['x', weight(b, [4, 3, 3, 3])])])], { kernel_shape: [2, 2], strides: [2, 2] });
    b.op('Flatten', [h], {}, { outputs: ['y'] });
    g.outputs = [{ name: 'y', dtype: 'float32' }];
    annotateShapes(g);
    expect(g.outputs[0].shape).toEqual(['N', 36]);
    expect(g.valueInfo.get(h)!.shape).toEqual(['N', 4, 3, 3]);
    const m = modelFromBytes(modelToBytes(modelOf(g)));
    expect(m.graph.valueInfo.get(h)!.shape).toEqual(['N', 4, 3, 3]);
    const out = await runModel(m, feedsFor(m.graph, { N: 2 }));
    expect(out.y.dims).toEqual([2, 36]);
  });

  it('tracks float16 and bool initializers and Cast values', () => {
    const { g, b } = start([['x', ['N', 2]]]);
    const h = b.initializer('h', tensor('float16', [2], Uint16Array.of(0x4000, 0x3c00)));
    const c = b.op('Cast', [h], { to: 7 });
    const { values, types } = inferShapesDetailed(g);
    expect(values.get(c)).toEqual([2, 1]);
    expect(types.get(c)).toEqual({ name: c, dtype: 'int64', shape: [2] });
  });
});

describe('inferShapes on real torchvision exports', () => {
  const models = realModels();
  it.skipIf(models.length === 0)(`every value of ${models.map((m) => m.name).join(', ') || '(none found)'} matches ORT at two batch sizes`, async () => {
    for (const { name, load } of models) {
      const model = load();
      const batch = model.graph.inputs[0].shape![0];
      expect(typeof batch, `${name}: symbolic batch`).toBe('string');
      const r = await checkAgainstOrt(model.graph, { opset: model.opset, envs: [{ [batch as string]: 1 }, { [batch as string]: 2 }] });
      expect(r.unknown, name).toEqual([]);
      expect(r.checked, name).toBe(model.graph.nodes.reduce((s, n) => s + n.outputs.filter((o) => o).length, 0));
      expect(inferShapes(model).get(model.graph.outputs[0].name)!.shape, name).toEqual([batch, expect.any(Number)]);
    }
  });
});
