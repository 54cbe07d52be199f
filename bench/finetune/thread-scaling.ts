/**
 * Where a training step loses time on two threads: the step is profiled with 1 and with 2 intra-op
 * threads, and each node's 2-thread kernel time is compared with half its 1-thread time. A node that
 * onnxruntime runs on one thread loses half its time; a well-split one loses nothing. The sum of the
 * losses is what keeps the 2-thread step from being twice as fast.
 *
 *   npx tsx bench/finetune/thread-scaling.ts --model resnet18 --set full [--runs 5] [--batch 16] [--top 25]
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { args, benchModel, compileStep, createSession, kernelRuns, kernelsByNode, loadavg, median, round, stepFeeds, takeProfile, type BenchModelName, type TrainableSet } from './common.js';

const a = args({ model: 'resnet18', set: 'full', runs: '5', batch: '16', top: '25' });
const m = await benchModel(a.model as BenchModelName);
const { step, bytes } = await compileStep(m, a.set as TrainableSet);
const feeds = stepFeeds(m, step, Number(a.batch));

interface NodeTime {
  op: string;
  ms: number;
  /** the input shapes the profiler recorded, to tell layers apart */
  shapes: string;
}

/** Median kernel time per node over `runs` profiled runs after a warm-up run, and the median run time. */
async function profile(threads: number): Promise<{ nodes: Map<string, NodeTime>; runMs: number }> {
  const prefix = join(tmpdir(), `graft-scaling-${process.pid}-${threads}`);
  const session = await createSession(bytes, { threads, profilePrefix: prefix });
  for (let r = 0; r <= Number(a.runs); r++) await session.run(feeds);
  session.endProfiling();
  await session.release();
  const timed = kernelRuns(takeProfile(prefix)).slice(1); // the first is the warm-up
  const runUs = timed.map((r) => r.runUs);
  return { nodes: new Map([...kernelsByNode(timed)].map(([k, x]) => [k, { op: x.op, ms: median(x.us) / 1000, shapes: x.shapes }])), runMs: median(runUs) / 1000 };
}

const one = await profile(1);
const two = await profile(2);
const rows = [...two.nodes].map(([node, t]) => {
  const single = one.nodes.get(node)?.ms ?? 0;
  return { node, op: t.op, ms1: single, ms2: t.ms, lost: t.ms - single / 2, shapes: t.shapes };
});
const total = (f: (r: (typeof rows)[number]) => number) => round(rows.reduce((s, r) => s + f(r), 0));
console.log(`# ${a.model} ${a.set} N=${a.batch}; ${rows.length} kernels; load ${loadavg().join(' ')}`);
console.log(`# run: 1 thread ${round(one.runMs)} ms, 2 threads ${round(two.runMs)} ms (${round(one.runMs / two.runMs, 2)}×); kernels ${total((r) => r.ms1)} → ${total((r) => r.ms2)} ms; lost on 2 threads ${total((r) => r.lost)} ms`);
const byOp = new Map<string, { lost: number; ms1: number; ms2: number; n: number }>();
for (const r of rows) {
  const x = byOp.get(r.op) ?? { lost: 0, ms1: 0, ms2: 0, n: 0 };
  byOp.set(r.op, { lost: x.lost + r.lost, ms1: x.ms1 + r.ms1, ms2: x.ms2 + r.ms2, n: x.n + 1 });
}
console.log(['op', 'nodes', 'ms 1t', 'ms 2t', 'lost ms'].join('\t'));
for (const [op, x] of [...byOp].sort((p, q) => q[1].lost - p[1].lost).slice(0, Number(a.top))) console.log([op, x.n, round(x.ms1), round(x.ms2), round(x.lost)].join('\t'));
console.log('# nodes losing most');
console.log(['lost ms', 'ms 1t', 'ms 2t', 'op', 'node', 'inputs'].join('\t'));
for (const r of rows.sort((p, q) => q.lost - p.lost).slice(0, Number(a.top))) console.log([round(r.lost, 2), round(r.ms1), round(r.ms2), r.op, r.node, r.shapes].join('\t'));
