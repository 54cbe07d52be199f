/**
 * Micro-benchmarks of alternative op patterns for the backward's memory-bound glue (activation masks,
 * parity planes, max-pool routing, dY's column shifts), each a tiny graph over activation-sized tensors,
 * timed interleaved. Every pattern of a group computes the same values as the group's first (checked),
 * except those named "(ref)": a same-sized copy or pass, timed for scale.
 *
 *   npx tsx bench/finetune/micro-ops.ts [--group relu|clip|planes|maxpool|shift|all] [--dims …] [--rounds 15] [--threads 1]
 *
 * --dims overrides the group's default shape (given with each group below).
 */
import type { GraphBuilder } from '../../src/graph/builder.js';
import { float32, numel } from '../../src/onnx/tensor.js';
import { args, interleave, randomFloats, tinySession } from './common.js';

interface Group {
  /** The default shape, as --dims takes it. */
  dims: number[];
  /** The inputs (name → dims) for a shape. */
  inputs: (d: number[]) => Record<string, number[]>;
  /** Input values other than tinySession's uniform [-1, 1). */
  data?: (d: number[]) => Record<string, Float32Array>;
  patterns: Record<string, (b: GraphBuilder, d: number[]) => string>;
}

const gradientInputs = (d: number[]) => ({ y: d, dy: d });
// y in [0, 6] with exact 0s and 6s, as a ReLU6 output has
const activationData = (d: number[]) => ({ y: randomFloats(numel(d), 5, -3, 9).map((v) => Math.min(6, Math.max(0, v))) });
/** ResNet's stem max pool, as torchvision has it. */
const stemPool = { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] };

const GROUPS: Record<string, Group> = {
  relu: {
    dims: [16, 144, 56, 56],
    inputs: gradientInputs,
    data: activationData,
    patterns: {
      'Where(Greater(y,0))': (b) => b.op('Where', [b.op('Greater', ['y', b.f32(0)]), 'dy', b.f32(0)]),
      'Mul(dy,Sign(y))': (b) => b.op('Mul', ['dy', b.op('Sign', ['y'])]),
      'Where(Equal(y,0)) swapped': (b) => b.op('Where', [b.op('Equal', ['y', b.f32(0)]), b.f32(0), 'dy']),
      'Mul(dy,Cast(Greater))': (b) => b.op('Mul', ['dy', b.op('Cast', [b.op('Greater', ['y', b.f32(0)])], { to: 1 })]),
      'Greater only (ref)': (b) => b.op('Cast', [b.op('Greater', ['y', b.f32(0)])], { to: 1 }),
      'Mul(dy,y) (ref)': (b) => b.op('Mul', ['dy', 'y']),
    },
  },
  clip: {
    dims: [16, 144, 56, 56],
    inputs: gradientInputs,
    data: activationData,
    patterns: {
      'Where(And(Greater,Less))': (b) => b.op('Where', [b.op('And', [b.op('Greater', ['y', b.f32(0)]), b.op('Less', ['y', b.f32(6)])]), 'dy', b.f32(0)]),
      'Mul(dy,Cast(And))': (b) => b.op('Mul', ['dy', b.op('Cast', [b.op('And', [b.op('Greater', ['y', b.f32(0)]), b.op('Less', ['y', b.f32(6)])])], { to: 1 })]),
      'Where(Greater,Where(Less))': (b) => b.op('Where', [b.op('Greater', ['y', b.f32(0)]), b.op('Where', [b.op('Less', ['y', b.f32(6)]), 'dy', b.f32(0)]), b.f32(0)]),
      'Where(Less(Abs(y-3),3))': (b) => b.op('Where', [b.op('Less', [b.op('Abs', [b.op('Sub', ['y', b.f32(3)])]), b.f32(3)]), 'dy', b.f32(0)]),
      'Mul(dy,Sign(y*(6-y)))': (b) => b.op('Mul', ['dy', b.op('Sign', [b.op('Mul', ['y', b.op('Sub', [b.f32(6), 'y'])])])]),
    },
  },
  // parity planes of a stride-2 input [N, C, 2h, 2w] → four [N, C, h, w] planes, concatenated on axis 1
  planes: {
    dims: [16, 144, 56, 56],
    inputs: (d) => ({ x: d }),
    patterns: {
      SpaceToDepth: (b) => b.op('SpaceToDepth', ['x'], { blocksize: 2 }),
      'Slice step 2 ×4': (b, [, , H, W]) => b.op('Concat', [0, 1, 2, 3].map((p) => b.op('Slice', ['x', b.i64([p >> 1, p & 1]), b.i64([H, W]), b.i64([2, 3]), b.i64([2, 2])])), { axis: 1 }),
      'AveragePool k1 s2 ×4': (b, [, , H, W]) =>
        b.op('Concat', [0, 1, 2, 3].map((p) => b.op('AveragePool', [b.op('Slice', ['x', b.i64([p >> 1, p & 1]), b.i64([H, W]), b.i64([2, 3])])], { kernel_shape: [1, 1], strides: [2, 2] })), { axis: 1 }),
      'MaxPool k1 s2 ×4': (b, [, , H, W]) =>
        b.op('Concat', [0, 1, 2, 3].map((p) => b.op('MaxPool', [b.op('Slice', ['x', b.i64([p >> 1, p & 1]), b.i64([H, W]), b.i64([2, 3])])], { kernel_shape: [1, 1], strides: [2, 2] })), { axis: 1 }),
      'rows by Reshape, cols Slice step 2': (b, [, , H, W]) => {
        const rows = b.op('Reshape', ['x', b.i64([0, 0, H / 2, 2 * W])]);
        return b.op('Concat', [0, 1, 2, 3].map((p) => b.op('Slice', [rows, b.i64([(p >> 1) * W + (p & 1)]), b.i64([(p >> 1) * W + W]), b.i64([3]), b.i64([2])])), { axis: 1 });
      },
    },
  },
  // what the max pool's gradient needs from the forward: its indices output (the argmax of each window,
  // which the backward's ScatterElements routes dY by) costs far more than the pooled values alone
  maxpool: {
    dims: [16, 64, 112, 112],
    inputs: (d) => ({ x: d }),
    patterns: {
      'MaxPool values': (b) => b.op('MaxPool', ['x'], stemPool),
      'MaxPool values + indices': (b) => b.node('MaxPool', ['x'], stemPool, { outputs: 2 })[0],
    },
  },
  // dY's rows [.., W] shifted one column right with a zero in front, as the weight gradients' row-gather
  // form needs per kernel column (default: ResNet's first stage, O = 64 rows of N·OH = 16 · 56)
  shift: {
    dims: [64, 896, 56],
    inputs: (d) => ({ x: d }),
    patterns: {
      Pad: (b) => b.op('Pad', ['x', b.i64([0, 0, 1, 0, 0, -1])]),
      'depthwise Conv 1×3, one-hot': (b, [O, R, W]) => {
        const k = new Float32Array(O * 3);
        for (let o = 0; o < O; o++) k[o * 3] = 1;
        const conv = b.op('Conv', [b.op('Reshape', ['x', b.i64([1, O, R, W])]), b.initializer('one_hot', float32([O, 1, 1, 3], k))], { group: O, kernel_shape: [1, 3], pads: [0, 1, 0, 1] });
        return b.op('Reshape', [conv, b.i64([O, R, W])]);
      },
      'MatMul by a shift matrix': (b, [, , W]) => {
        const m = new Float32Array(W * W);
        for (let j = 0; j + 1 < W; j++) m[j * W + j + 1] = 1;
        return b.op('MatMul', ['x', b.initializer('shift', float32([W, W], m))]);
      },
      'row Gather, same size (ref)': (b, [, R]) => b.op('Gather', ['x', b.i64(Array.from({ length: R }, (_, i) => i))], { axis: 1 }),
    },
  },
};

const a = args({ group: 'all', dims: '', rounds: '15', threads: '1' });
for (const [name, group] of Object.entries(GROUPS)) {
  if (a.group !== 'all' && a.group !== name) continue;
  const dims = a.dims ? a.dims.split(',').map(Number) : group.dims;
  const variants = [];
  let reference: Float32Array | undefined;
  for (const [pattern, build] of Object.entries(group.patterns)) {
    const { fetches, run } = await tinySession(group.inputs(dims), (b) => build(b, dims), { threads: Number(a.threads) }, group.data?.(dims));
    const got = Object.values(fetches)[0].data as Float32Array;
    if (!reference) reference = got.slice();
    else if (!pattern.endsWith('(ref)') && (got.length !== reference.length || got.some((v, i) => v !== reference![i]))) throw new Error(`${pattern} differs from ${Object.keys(group.patterns)[0]}`);
    variants.push({ name: pattern, run });
  }
  const r = await interleave(variants, { rounds: Number(a.rounds), warmup: 1 });
  console.log(`# ${name} on [${dims}] threads=${a.threads}; load ${r.load.join(' ')}; other busy ${r.otherBusyCores}`);
  for (const s of r.stats) console.log(`${s.name.padEnd(36)} cpu med ${s.cpuMedMs} ms  wall med ${s.wallMedMs} ms`);
}
