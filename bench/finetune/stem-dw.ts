/**
 * The weight gradient of ResNet's 7 × 7 stride-2 stem (3 → 64 channels) as one batch-as-channels Conv,
 * Conv(Xᵀ, dYᵀ): Xᵀ's 3 "images" are X's colour channels. onnxruntime splits a plain Conv's threads over
 * (image, group) pairs, so how the same products are cut into pairs decides how busy both threads are:
 *
 *   plain            Xᵀ [3, N, 224, 224] ⊛ dYᵀ [64, N, 112, 112]                 3 pairs
 *   batch halves     2 groups, each over half the batch: [128, N/2, 112, 112]      6 pairs (graft)
 *   row halves       2 groups, each over half of dY's rows (X's rows each reads)   6 pairs
 *   row quarters     4 groups over quarters of dY's rows                           12 pairs
 *
 * Only the Conv is timed (its operands are fed), interleaved, median wall and CPU time per run.
 *
 *   npx tsx bench/finetune/stem-dw.ts [--threads 2] [--batch 16] [--rounds 15]
 */
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../src/graph/builder.js';
import { Graph, Model } from '../../src/graph/graph.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { args, createSession, interleave, loadavg, randomFloats } from './common.js';

const a = args({ threads: '2', batch: '16', rounds: '15' });
const N = Number(a.batch);
if (N % 4 !== 0) throw new Error('--batch must be a multiple of 4 (the quarters form splits it)');
const stem = { dilations: [2, 2] };
const forms: Record<string, { x: number[]; w: number[]; attrs: Record<string, number[] | number> }> = {
  plain: { x: [3, N, 224, 224], w: [64, N, 112, 112], attrs: { ...stem, kernel_shape: [112, 112], pads: [3, 3, 3, 3] } },
  'batch halves': { x: [3, N, 224, 224], w: [128, N / 2, 112, 112], attrs: { ...stem, kernel_shape: [112, 112], pads: [3, 3, 3, 3], group: 2 } },
  // each half reads 2·55 + 7 = 117 of X's rows; the columns are padded as the stem's
  'row halves': { x: [3, 2 * N, 117, 224], w: [128, N, 56, 112], attrs: { ...stem, kernel_shape: [56, 112], pads: [0, 3, 0, 2], group: 2 } },
  'row quarters': { x: [3, 4 * N, 61, 224], w: [256, N, 28, 112], attrs: { ...stem, kernel_shape: [28, 112], pads: [0, 3, 0, 2], group: 4 } },
};
const size = (d: number[]) => d.reduce((p, q) => p * q, 1);
const variants = [];
for (const [name, f] of Object.entries(forms)) {
  const g = new Graph();
  const b = new GraphBuilder(g);
  b.reserve('x', 'w');
  g.inputs.push({ name: 'x', dtype: 'float32', shape: f.x }, { name: 'w', dtype: 'float32', shape: f.w });
  const out = b.op('Conv', ['x', 'w'], f.attrs);
  g.outputs = [{ name: out, dtype: 'float32' }];
  const session = await createSession(modelToBytes(new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }] })), { threads: Number(a.threads) });
  const feeds = { x: new ort.Tensor('float32', randomFloats(size(f.x), 1), f.x), w: new ort.Tensor('float32', randomFloats(size(f.w), 2), f.w) };
  variants.push({ name, run: () => session.run(feeds) });
}
const r = await interleave(variants, { rounds: Number(a.rounds), warmup: 1 });
console.log(`# stem weight-gradient Conv, batch ${N}, threads=${a.threads}; load ${loadavg().join(' ')}; other busy ${r.otherBusyCores}`);
for (const s of r.stats) console.log(`${s.name.padEnd(14)} wall med ${s.wallMedMs} ms  cpu med ${s.cpuMedMs} ms`);
