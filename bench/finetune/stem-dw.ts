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
import { args, interleave, loadavg, tinySession } from './common.js';

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
const variants = [];
for (const [name, f] of Object.entries(forms)) {
  const { run } = await tinySession({ x: f.x, w: f.w }, (b) => b.op('Conv', ['x', 'w'], f.attrs), { threads: Number(a.threads) });
  variants.push({ name, run });
}
const r = await interleave(variants, { rounds: Number(a.rounds), warmup: 1 });
console.log(`# stem weight-gradient Conv, batch ${N}, threads=${a.threads}; load ${loadavg().join(' ')}; other busy ${r.otherBusyCores}`);
for (const s of r.stats) console.log(`${s.name.padEnd(14)} wall med ${s.wallMedMs} ms  cpu med ${s.cpuMedMs} ms`);
