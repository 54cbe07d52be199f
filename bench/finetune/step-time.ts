/**
 * Whole training steps (forward + backward, the ORT session run) of one model and trainable set, for
 * several named variants (graph-building options × session options), interleaved A B C A B C … in one
 * process so they see the same machine load. Prints per-variant medians of wall and process CPU time and
 * images per CPU-second.
 *
 *   npx tsx bench/finetune/step-time.ts --model resnet18 --set full --variants base,spin [--threads 1]
 *        [--batch 16] [--rounds 8] [--warmup 1] [--out bench/out/step-time.jsonl]
 *
 * Variants (comma-separated; see VARIANTS below): each is a GradOptions / train-step option / session
 * option override of the default build.
 */
import { appendFileSync } from 'node:fs';
import type { InferenceSession } from 'onnxruntime-node';
import type { GradOptions } from '../../src/autodiff/rule.js';
import type { TrainStepOptions } from '../../src/autodiff/train-step.js';
import { args, benchModel, compileStep, createSession, interleave, round, stepFeeds, type BenchModelName, type SessionKnobs, type TrainableSet } from './common.js';

interface Variant {
  grad?: Partial<GradOptions>;
  step?: Partial<TrainStepOptions>;
  session?: SessionKnobs;
}

export const VARIANTS: Record<string, Variant> = {
  base: {},
  noFold: { step: { foldBatchNorm: false } },
  activationBeforePool: { step: { poolBeforeActivation: false } },
  plainConv: { step: { nchwcBlock: 0 } },
  spin: { session: { spin: true } },
  parallel: { session: { interOp: 2 } },
  parallel1: { session: { interOp: 2, threads: 1 } },
  memPattern: { session: { memPattern: true } },
  noArena: { session: { cpuArena: false } },
  extended: { session: { optimization: 'extended' } },
  basic: { session: { optimization: 'basic' } },
  dxConvT: { grad: { convDx: 'convTranspose' } },
  dwBatch: { grad: { convDw: 'batchAsChannels' } },
  dwTapGemm: { grad: { convDw: 'tapGemm' } },
  dwIm2col: { grad: { convDw: 'im2col' } },
  dwTapReduce: { grad: { convDw: 'tapReduce' } },
  dwTapMatMul: { grad: { convDw: 'tapMatMul' } },
  // the RGB stems' weight gradients as before dwImageIm2col: ResNet-18's batch-as-channels Conv, MobileNetV2's per-tap Gemms
  stemBatch: { grad: { perNode: { '/conv1/Conv': { convDw: 'batchAsChannels' } } } },
  stemTaps: { grad: { perNode: { '/features/features.0/features.0.0/Conv': { convDw: 'tapGemm' } } } },
};

const a = args({ model: 'resnet18', set: 'full', variants: 'base', threads: '1', batch: '16', rounds: '8', warmup: '1', out: '' });
const m = await benchModel(a.model as BenchModelName);
const N = Number(a.batch);
const runs: { name: string; session: InferenceSession; run: () => Promise<unknown>; nodes: number }[] = [];
for (const name of a.variants.split(',')) {
  const v = VARIANTS[name];
  if (!v) throw new Error(`unknown variant ${name}; known: ${Object.keys(VARIANTS).join(', ')}`);
  const grad: GradOptions = { convDx: 'auto', convDw: 'auto', ...(v.grad ?? {}) };
  const { step, bytes } = await compileStep(m, a.set as TrainableSet, grad, v.step ?? {});
  const session = await createSession(bytes, { threads: Number(a.threads), ...(v.session ?? {}) });
  const feeds = stepFeeds(m, step, N);
  runs.push({ name, session, run: () => session.run(feeds), nodes: step.model.graph.nodes.length });
}
const r = await interleave(runs, { rounds: Number(a.rounds), warmup: Number(a.warmup) });
console.log(`# ${a.model} ${a.set} N=${N} threads=${a.threads}; load ${r.load.join(' ')}; other busy cores ${r.otherBusyCores}`);
for (const s of r.stats) {
  const nodes = runs.find((x) => x.name === s.name)!.nodes;
  const ips = round((N * 1000) / s.cpuMedMs, 2);
  console.log(`${s.name.padEnd(16)} cpu med ${String(s.cpuMedMs).padStart(7)} ms (min ${s.cpuMinMs})  wall med ${String(s.wallMedMs).padStart(7)} ms  ${ips} img/cpu-s  ${round((N * 1000) / s.wallMedMs, 2)} img/s  n=${s.n}  nodes=${nodes}`);
  if (a.out) appendFileSync(a.out, JSON.stringify({ bench: 'step', framework: 'graft', model: a.model, set: a.set, variant: s.name, batch: N, threads: Number(a.threads), ...s, img_per_cpu_s: ips, load: r.load, otherBusyCores: r.otherBusyCores }) + '\n');
}
for (const x of runs) await x.session.release();
