/**
 * Lever 4 micro-benchmarks: alternative op patterns for the memory-bound backward glue (activation masks,
 * max-pool routing, …), each a tiny graph over activation-sized tensors, timed interleaved. Every
 * pattern of a group computes the same values (checked against the group's first pattern).
 *
 *   npx tsx bench/finetune/micro-ops.ts [--group relu|clip|planes|all] [--dims 16,144,56,56] [--rounds 15] [--threads 1]
 */
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../src/graph/builder.js';
import { Graph, Model } from '../../src/graph/graph.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { args, createSession, interleave, randomFloats } from './common.js';

type Build = (b: GraphBuilder, y: string, dy: string) => string;

const GROUPS: Record<string, Record<string, Build>> = {
  relu: {
    'Where(Greater(y,0))': (b, y, dy) => b.op('Where', [b.op('Greater', [y, b.f32(0)]), dy, b.f32(0)]),
    'Mul(dy,Sign(y))': (b, y, dy) => b.op('Mul', [dy, b.op('Sign', [y])]),
    'Where(Equal(y,0)) swapped': (b, y, dy) => b.op('Where', [b.op('Equal', [y, b.f32(0)]), b.f32(0), dy]),
    'Mul(dy,Cast(Greater))': (b, y, dy) => b.op('Mul', [dy, b.op('Cast', [b.op('Greater', [y, b.f32(0)])], { to: 1 })]),
    'Greater only': (b, y) => b.op('Cast', [b.op('Greater', [y, b.f32(0)])], { to: 1 }),
    'Mul(dy,y) (1 pass ref)': (b, y, dy) => b.op('Mul', [dy, y]),
  },
  clip: {
    'Where(And(Greater,Less))': (b, y, dy) => b.op('Where', [b.op('And', [b.op('Greater', [y, b.f32(0)]), b.op('Less', [y, b.f32(6)])]), dy, b.f32(0)]),
    'Mul(dy,Cast(And))': (b, y, dy) => b.op('Mul', [dy, b.op('Cast', [b.op('And', [b.op('Greater', [y, b.f32(0)]), b.op('Less', [y, b.f32(6)])])], { to: 1 })]),
    'Where(Greater,Where(Less))': (b, y, dy) => b.op('Where', [b.op('Greater', [y, b.f32(0)]), b.op('Where', [b.op('Less', [y, b.f32(6)]), dy, b.f32(0)]), b.f32(0)]),
    'Where(Less(Abs(y-3),3))': (b, y, dy) => b.op('Where', [b.op('Less', [b.op('Abs', [b.op('Sub', [y, b.f32(3)])]), b.f32(3)]), dy, b.f32(0)]),
    'Mul(dy,Sign(y*(6-y)))': (b, y, dy) => b.op('Mul', [dy, b.op('Sign', [b.op('Mul', [y, b.op('Sub', [b.f32(6), y])])])]),
  },
};

/** Parity planes of a stride-2 input [N, C, 2h, 2w] → four [N, C, h, w] planes, concatenated on axis 1. */
const PLANES: Record<string, (b: GraphBuilder, x: string, h: number, w: number) => string> = {
  SpaceToDepth: (b, x) => b.op('SpaceToDepth', [x], { blocksize: 2 }),
  'Slice step 2 ×4': (b, x, h, w) => b.op('Concat', [0, 1, 2, 3].map((p) => b.op('Slice', [x, b.i64([p >> 1, p & 1]), b.i64([2 * h, 2 * w]), b.i64([2, 3]), b.i64([2, 2])])), { axis: 1 }),
  'AveragePool k1 s2 ×4': (b, x, h, w) =>
    b.op('Concat', [0, 1, 2, 3].map((p) => b.op('AveragePool', [b.op('Slice', [x, b.i64([p >> 1, p & 1]), b.i64([2 * h, 2 * w]), b.i64([2, 3])])], { kernel_shape: [1, 1], strides: [2, 2] })), { axis: 1 }),
  'MaxPool k1 s2 ×4': (b, x, h, w) =>
    b.op('Concat', [0, 1, 2, 3].map((p) => b.op('MaxPool', [b.op('Slice', [x, b.i64([p >> 1, p & 1]), b.i64([2 * h, 2 * w]), b.i64([2, 3])])], { kernel_shape: [1, 1], strides: [2, 2] })), { axis: 1 }),
  'rows by Reshape, cols Slice step 2': (b, x, h, w) => {
    const rows = b.op('Reshape', [x, b.i64([0, 0, h, 4 * w])]);
    return b.op('Concat', [0, 1, 2, 3].map((p) => b.op('Slice', [rows, b.i64([(p >> 1) * 2 * w + (p & 1)]), b.i64([(p >> 1) * 2 * w + 2 * w]), b.i64([3]), b.i64([2])])), { axis: 1 });
  },
};

const a = args({ group: 'all', dims: '16,144,56,56', rounds: '15', threads: '1' });
if (a.group === 'planes') {
  const [N, C, H2, W2] = a.dims.split(',').map(Number);
  const [h, w] = [H2 / 2, W2 / 2];
  const x = new ort.Tensor('float32', randomFloats(N * C * H2 * W2, 3), [N, C, H2, W2]);
  const variants = [];
  for (const [name, build] of Object.entries(PLANES)) {
    const g = new Graph();
    const b = new GraphBuilder(g);
    b.reserve('x');
    g.inputs.push({ name: 'x', dtype: 'float32', shape: [N, C, H2, W2] });
    const out = build(b, 'x', h, w);
    g.outputs = [{ name: out, dtype: 'float32', shape: [N, 4 * C, h, w] }];
    const session = await createSession(modelToBytes(new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }] })), { threads: Number(a.threads) });
    const fetches = { [out]: new ort.Tensor('float32', new Float32Array(N * 4 * C * h * w), [N, 4 * C, h, w]) };
    variants.push({ name, run: () => session.run({ x }, fetches) });
  }
  const r = await interleave(variants, { rounds: Number(a.rounds), warmup: 1 });
  console.log(`# parity planes of [${a.dims}] threads=${a.threads}; load ${r.load.join(' ')}`);
  for (const s of r.stats) console.log(`${s.name.padEnd(36)} cpu med ${s.cpuMedMs} ms`);
  process.exit(0);
}
const dims = a.dims.split(',').map(Number);
const n = dims.reduce((x, y) => x * y, 1);
// y in [0, 6] with exact 0s and 6s, as a ReLU6 output has
const yData = randomFloats(n, 5, -3, 9).map((v) => Math.min(6, Math.max(0, v)));
const dyData = randomFloats(n, 6);
for (const [group, patterns] of Object.entries(GROUPS)) {
  if (a.group !== 'all' && a.group !== group) continue;
  const variants = [];
  let reference: Float32Array | undefined;
  for (const [name, build] of Object.entries(patterns)) {
    const g = new Graph();
    const b = new GraphBuilder(g);
    b.reserve('y', 'dy');
    g.inputs.push({ name: 'y', dtype: 'float32', shape: dims }, { name: 'dy', dtype: 'float32', shape: dims });
    const out = build(b, 'y', 'dy');
    g.outputs = [{ name: out, dtype: 'float32', shape: dims }];
    const session = await createSession(modelToBytes(new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }] })), { threads: Number(a.threads) });
    const feeds = { y: new ort.Tensor('float32', yData, dims), dy: new ort.Tensor('float32', dyData, dims) };
    const fetches = { [out]: new ort.Tensor('float32', new Float32Array(n), dims) };
    await session.run(feeds, fetches);
    const got = fetches[out].data as Float32Array;
    if (!reference) reference = got.slice();
    else if (!name.includes('ref') && !name.includes('only') && got.some((v, i) => v !== reference![i])) throw new Error(`${name} differs from the first pattern`);
    variants.push({ name, run: () => session.run(feeds, fetches) });
  }
  const r = await interleave(variants, { rounds: Number(a.rounds), warmup: 1 });
  console.log(`# ${group} on [${dims}] threads=${a.threads}; load ${r.load.join(' ')}; other busy ${r.otherBusyCores}`);
  for (const s of r.stats) console.log(`${s.name.padEnd(32)} cpu med ${s.cpuMedMs} ms  wall med ${s.wallMedMs} ms`);
}
