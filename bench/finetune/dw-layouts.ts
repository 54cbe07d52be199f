/**
 * Weight-gradient layouts for one stride-1 3×3 conv (pads 1, C → C channels, batch N, H × H maps), as
 * small ORT graphs from NCHW X and dY — graft's own forms built by the conv rule (bench/finetune/tune-conv's
 * probe graphs), the others by hand — so that the data-movement ops can be
 * compared with ORT's profiler (time per op type) on one and on two threads:
 *
 *   slices      the conv rule's per-tap Gemm form (tapGemm): Xᵀ and dYᵀ by Transpose, a Pad, nine 2-D tap slices
 *   gather      the conv rule's row-gather form (tapGather), what graft uses for stride-1 convs
 *   rows        taps as contiguous runs of X's padded rows; dY zero-padded to the padded width
 *   nhwc        X and dY transposed to NHWC; Gemm with a transposed A over [N·H·W, C]
 *   nchwcBatch  one conv over the batch (Xᵀ as input, dYᵀ as filter; static batch) on ORT's NCHWc kernels
 *
 *   npx tsx bench/finetune/dw-layouts.ts --variant gather [--channels 64] [--size 56] [--batch 16] [--threads 2]
 *
 * One variant per process (two sessions in one process skew two-thread timings on this machine). Every
 * variant's result is checked against `slices` on the same data before its time is printed.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GraphBuilder } from '../../src/graph/builder.js';
import { lowerConvsToNchwc } from '../../src/graph/nchwc.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { nchwcBlockSize } from '../../src/runtime/nchwc-probe.js';
import type { ConvDwMethod } from '../../src/autodiff/rule.js';
import { args, createSession, kernelRuns, median, randomFeeds, round, takeProfile, tinyModel } from './common.js';
import { convShape, probeGraph } from './tune-conv.js';

const a = args({ variant: 'gather', channels: '64', size: '56', batch: '16', threads: '2', runs: '10' });
const [C, H, N] = [Number(a.channels), Number(a.size), Number(a.batch)];
const W = H;
const O = C;
type Build = (b: GraphBuilder) => string; // returns dW as [O, C, 9] (tap-major last axis)

const stack = (b: GraphBuilder, parts: string[]) => b.op('Concat', parts.map((p) => b.op('Unsqueeze', [p, b.i64([2])])), { axis: 2 });

/** The layouts the conv rule does not have, built by hand. */
const BY_HAND: Record<string, Build> = {
  rows: (b) => {
    const wp = W + 2;
    const rows = b.op('Reshape', [b.op('Pad', [b.op('Transpose', ['x'], { perm: [1, 0, 2, 3] }), b.i64([0, 0, 1, 1, 0, 0, 2, 1])]), b.i64([C, N, -1])]);
    const dYm = b.op('Reshape', [b.op('Pad', [b.op('Transpose', ['dy'], { perm: [1, 0, 2, 3] }), b.i64([0, 0, 0, 0, 0, 0, 0, 2])]), b.i64([O, -1])]);
    const parts: string[] = [];
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        const tap = b.op('Slice', [rows, b.i64([i * wp + j]), b.i64([i * wp + j + H * wp]), b.i64([2])]);
        parts.push(b.op('Gemm', [dYm, b.op('Reshape', [tap, b.i64([C, -1])])], { transB: 1 }));
      }
    }
    return stack(b, parts);
  },
  nhwc: (b) => {
    const xp = b.op('Pad', [b.op('Transpose', ['x'], { perm: [0, 2, 3, 1] }), b.i64([0, 1, 1, 0, 0, 1, 1, 0])]);
    const dYm = b.op('Reshape', [b.op('Transpose', ['dy'], { perm: [0, 2, 3, 1] }), b.i64([-1, O])]);
    const parts: string[] = [];
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        const tap = b.op('Slice', [xp, b.i64([i, j]), b.i64([i + H, j + W]), b.i64([1, 2])]);
        parts.push(b.op('Gemm', [dYm, b.op('Reshape', [tap, b.i64([-1, C])])], { transA: 1 }));
      }
    }
    return stack(b, parts);
  },
  nchwcBatch: (b) => {
    const xt = b.op('Transpose', ['x'], { perm: [1, 0, 2, 3] });
    const dYt = b.op('Transpose', ['dy'], { perm: [1, 0, 2, 3] });
    const r = b.op('Conv', [xt, dYt], { kernel_shape: [H, W], pads: [1, 1, 1, 1] }); // [C, O, 3, 3]
    return b.op('Reshape', [b.op('Transpose', [r], { perm: [1, 0, 2, 3] }), b.i64([O, C, 9])]);
  },
};

const RULE_FORMS: Record<string, Exclude<ConvDwMethod, 'auto'>> = { slices: 'tapGemm', gather: 'tapGather' };
const VARIANTS = [...Object.keys(RULE_FORMS), ...Object.keys(BY_HAND)];

async function build(variant: string): Promise<Uint8Array> {
  if (RULE_FORMS[variant]) return probeGraph(convShape([N, C, H, W], [O, C, 3, 3], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }), { what: 'dW', method: RULE_FORMS[variant] }).bytes;
  const make = BY_HAND[variant];
  if (!make) throw new Error(`unknown variant ${variant}; one of ${VARIANTS.join(', ')}`);
  const model = tinyModel({ x: [N, C, H, W], dy: [N, O, H, W] }, make);
  if (variant === 'nchwcBatch') {
    const block = await nchwcBlockSize();
    if (!block || N % block !== 0) throw new Error(`nchwcBatch needs ORT's NCHWc kernels and a batch that is a multiple of the block (${block})`);
    lowerConvsToNchwc(model, { block });
  }
  return modelToBytes(model);
}

const feeds = randomFeeds([
  { name: 'x', dims: [N, C, H, W] },
  { name: 'dy', dims: [N, O, H, W] },
]);
// the reference first, on one thread, without the profiler
const ref = await createSession(await build('slices'), { threads: 1 });
const want = Object.values(await ref.run(feeds))[0].data as Float32Array;
await ref.release();

const prefix = join(tmpdir(), `graft-dw-layouts-${process.pid}`);
const session = await createSession(await build(a.variant), { threads: Number(a.threads), profilePrefix: prefix });
const runs = Number(a.runs);
const wall: number[] = [];
let got: Float32Array = new Float32Array();
for (let r = 0; r <= runs; r++) {
  const t = performance.now();
  got = Object.values(await session.run(feeds))[0].data as Float32Array;
  if (r > 0) wall.push(performance.now() - t); // run 0 is the warm-up
}
session.endProfiling();
await session.release();
let scale = 0;
let worst = 0;
for (let i = 0; i < want.length; i++) {
  scale = Math.max(scale, Math.abs(want[i]));
  worst = Math.max(worst, Math.abs(want[i] - got[i]));
}
const err = worst / scale;
if (!(err < 1e-4)) throw new Error(`${a.variant} differs from slices: max relative error ${err}`);

const byOp = new Map<string, number>();
for (const k of kernelRuns(takeProfile(prefix)).slice(1).flatMap((r) => r.kernels)) byOp.set(k.op, (byOp.get(k.op) ?? 0) + k.us); // after the warm-up run
const perRun = [...byOp.entries()].map(([op, us]) => `${op} ${round(us / 1000 / runs)}`).join('  ');
console.log(`${a.variant.padEnd(11)} C=${C} ${H}² N=${N} threads=${a.threads}: median ${round(median(wall))} ms per run | ms per op type: ${perRun}`);
