/**
 * Lever 2 experiment: a depthwise conv as one batched MatMul with per-channel banded (Toeplitz) matrices,
 * vs ORT's grouped Conv (im2col + a one-row GEMM per channel and image). Forward only; checks values.
 *
 *   Y[c] = concat_i(rows_i(Xpad[c]))  [N·OH, kh·Wp]  ×  T[c]  [kh·Wp, OW],   T[c][i·Wp + w·s + j, w] = W[c,i,j]
 *
 *   npx tsx bench/finetune/dw-banded.ts [--shapes 960x7,576x14,384x14,192x28,144x56] [--stride 1] [--rounds 15]
 */
import type { GraphBuilder } from '../../src/graph/builder.js';
import { float32 } from '../../src/onnx/tensor.js';
import { args, interleave, tinySession } from './common.js';

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
  const Wp = W + 2 * p;
  const conv = (b: GraphBuilder) => b.op('Conv', ['x', 'w'], { kernel_shape: [k, k], pads: [p, p, p, p], strides: [s, s], group: C });
  const banded = (b: GraphBuilder) => {
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
  };
  const variants = [];
  let ref: Float32Array | undefined;
  for (const [name, build] of [
    ['Conv group=C', conv],
    ['banded MatMul', banded],
  ] as const) {
    const { fetches, run } = await tinySession({ x: [N, C, H, W], w: [C, 1, k, k] }, build, { threads: 1 });
    const got = Object.values(fetches)[0].data as Float32Array;
    if (!ref) ref = got.slice();
    else {
      let e = 0;
      for (let i = 0; i < got.length; i++) e = Math.max(e, Math.abs(got[i] - ref[i]));
      if (e > 1e-4) throw new Error(`${name}: max abs diff ${e}`);
    }
    variants.push({ name, run });
  }
  const r = await interleave(variants, { rounds: Number(a.rounds), warmup: 1 });
  console.log(`${spec} s${s}: ` + r.stats.map((x) => `${x.name} ${x.cpuMedMs} ms`).join(' | ') + `  [load ${r.load[0]}]`);
}
