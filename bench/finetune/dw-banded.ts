/**
 * Lever 2 experiment: a depthwise conv as one batched MatMul with per-channel banded (Toeplitz) matrices,
 * vs ORT's grouped Conv (im2col + a one-row GEMM per channel and image). Forward only; checks values.
 *
 *   Y[c] = concat_i(rows_i(Xpad[c]))  [N·OH, kh·Wp]  ×  T[c]  [kh·Wp, OW],   T[c][i·Wp + w·s + j, w] = W[c,i,j]
 *
 *   npx tsx bench/finetune/dw-banded.ts [--shapes 960x7,576x14,384x14,192x28,144x56] [--stride 1] [--rounds 15]
 */
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../src/graph/builder.js';
import { Graph, Model } from '../../src/graph/graph.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { float32 } from '../../src/onnx/tensor.js';
import { args, createSession, interleave, randomFloats } from './common.js';

const a = args({ shapes: '960x7,576x14,384x14,192x28,144x56,32x112', stride: '1', rounds: '15', batch: '16' });
const N = Number(a.batch);
const s = Number(a.stride);
const k = 3;
for (const spec of a.shapes.split(',')) {
  const [C, H] = spec.split('x').map(Number);
  const W = H;
  const p = 1;
  const OH = Math.floor((H + 2 * p - k) / s) + 1;
  const OW = OH;
  const Hp = H + 2 * p;
  const Wp = W + 2 * p;
  const mk = (build: (b: GraphBuilder) => string) => {
    const g = new Graph();
    const b = new GraphBuilder(g);
    b.reserve('x', 'w');
    g.inputs.push({ name: 'x', dtype: 'float32', shape: [N, C, H, W] }, { name: 'w', dtype: 'float32', shape: [C, 1, k, k] });
    const out = build(b);
    g.outputs = [{ name: out, dtype: 'float32', shape: [N, C, OH, OW] }];
    return modelToBytes(new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }] }));
  };
  const conv = mk((b) => b.op('Conv', ['x', 'w'], { kernel_shape: [k, k], pads: [p, p, p, p], strides: [s, s], group: C }));
  const banded = mk((b) => {
    // band pattern E [k·k, k·Wp·OW]: tap (i, j) of output column w reads padded column w·s + j of row tap i
    const E = new Float32Array(k * k * k * Wp * OW);
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) for (let w = 0; w < OW; w++) E[(i * k + j) * k * Wp * OW + (i * Wp + w * s + j) * OW + w] = 1;
    const e = b.initializer('band', float32([k * k, k * Wp * OW], E));
    const T = b.op('Reshape', [b.op('MatMul', [b.op('Reshape', ['w', b.i64([C, k * k])]), e]), b.i64([C, k * Wp, OW])]);
    const xt = b.op('Pad', [b.op('Transpose', ['x'], { perm: [1, 0, 2, 3] }), b.i64([0, 0, p, p, 0, 0, p, p])]); // [C, N, Hp, Wp]
    const rows = Array.from({ length: k }, (_, i) => b.op('Slice', [xt, b.i64([i]), b.i64([i + s * (OH - 1) + 1]), b.i64([2]), b.i64([s])])); // [C, N, OH, Wp]
    const v = b.op('Reshape', [b.op('Concat', rows, { axis: 3 }), b.i64([C, N * OH, k * Wp])]);
    const y = b.op('MatMul', [v, T]); // [C, N·OH, OW]
    return b.op('Transpose', [b.op('Reshape', [y, b.i64([C, N, OH, OW])])], { perm: [1, 0, 2, 3] });
  });
  void Hp;
  const x = new ort.Tensor('float32', randomFloats(N * C * H * W, 1), [N, C, H, W]);
  const w = new ort.Tensor('float32', randomFloats(C * k * k, 2), [C, 1, k, k]);
  const variants = [];
  let ref: Float32Array | undefined;
  for (const [name, bytes] of [
    ['Conv group=C', conv],
    ['banded MatMul', banded],
  ] as const) {
    const session = await createSession(bytes, { threads: 1 });
    const out = new ort.Tensor('float32', new Float32Array(N * C * OH * OW), [N, C, OH, OW]);
    const fetches = { [session.outputNames[0]]: out };
    await session.run({ x, w }, fetches);
    const got = out.data as Float32Array;
    if (!ref) ref = got.slice();
    else {
      let e = 0;
      for (let i = 0; i < got.length; i++) e = Math.max(e, Math.abs(got[i] - ref[i]));
      if (e > 1e-4) throw new Error(`${name}: max abs diff ${e}`);
    }
    variants.push({ name, run: () => session.run({ x, w }, fetches) });
  }
  const r = await interleave(variants, { rounds: Number(a.rounds), warmup: 1 });
  console.log(`${spec} s${s}: ` + r.stats.map((x) => `${x.name} ${x.cpuMedMs} ms`).join(' | ') + `  [load ${r.load[0]}]`);
}
