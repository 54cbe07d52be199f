/**
 * Where a training step's time goes: runs a compiled step with ORT's profiler on and aggregates the
 * kernel times by op type (and by forward vs backward node), median over the profiled runs.
 *
 *   npx tsx bench/finetune/step-profile.ts --model resnet18 --set full [--threads 1] [--runs 5] [--batch 16]
 *        [--dx auto|convTranspose|flippedConv] [--dw auto|…] [--top 40] [--json out.json] [--nchwc on|off]
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConvDwMethod, ConvDxMethod } from '../../src/autodiff/rule.js';
import { args, benchModel, compileStep, createSession, kernelRuns, kernelsByNode, loadavg, median, round, stepFeeds, takeProfile, type BenchModelName, type TrainableSet } from './common.js';

const a = args({ model: 'resnet18', set: 'full', threads: '1', runs: '5', batch: '16', dx: 'auto', dw: 'auto', top: '40', json: '', nodes: '0', nchwc: 'on' });
const m = await benchModel(a.model as BenchModelName);
const { step, bytes } = await compileStep(m, a.set as TrainableSet, { convDx: a.dx as ConvDxMethod, convDw: a.dw as ConvDwMethod }, a.nchwc === 'off' ? { nchwcBlock: 0 } : {});
const forwardNames = new Set(m.model.graph.nodes.map((n) => n.name));
const prefix = join(tmpdir(), `graft-profile-${process.pid}`);
const session = await createSession(bytes, { threads: Number(a.threads), profilePrefix: prefix });
const feeds = stepFeeds(m, step, Number(a.batch));
const runs = Number(a.runs);
await session.run(feeds); // warm-up (allocations, first-run kernel choices) — excluded below
for (let r = 0; r < runs; r++) await session.run(feeds);
session.endProfiling();
await session.release();
const timed = kernelRuns(takeProfile(prefix)).slice(1); // the first is the warm-up
const modelRunUs = timed.map((r) => r.runUs);

type Key = string;
const table = new Map<Key, number[]>();
const counts = new Map<Key, number>();
timed.forEach(({ kernels }, r) => {
  const sums = new Map<Key, number>();
  const n = new Map<Key, number>();
  for (const k of kernels) {
    // a forward conv lowered to ORT's NCHWc kernels keeps its name with a suffix (src/graph/nchwc.ts)
    const side = forwardNames.has(k.node.replace(/_nchwc$/, '')) ? 'fwd' : 'bwd';
    const key = `${k.op}\t${side}`;
    sums.set(key, (sums.get(key) ?? 0) + k.us);
    n.set(key, (n.get(key) ?? 0) + 1);
  }
  for (const [key, us] of sums) {
    if (!table.has(key)) table.set(key, Array(timed.length).fill(0));
    table.get(key)![r] = us;
  }
  if (r === 0) for (const [key, c] of n) counts.set(key, c);
});
const rows = [...table.entries()].map(([key, us]) => ({ key, ms: median(us) / 1000, nodes: counts.get(key) ?? 0 }));
rows.sort((x, y) => y.ms - x.ms);
const total = rows.reduce((s, r) => s + r.ms, 0);
const runMs = median(modelRunUs) / 1000;
console.log(`# ${a.model} ${a.set} N=${a.batch} threads=${a.threads} dx=${a.dx} dw=${a.dw}; ${step.model.graph.nodes.length} graph nodes; load ${loadavg().join(' ')}`);
console.log(`# model_run median ${round(runMs)} ms; sum of kernel medians ${round(total)} ms (${runs} runs)`);
console.log(['op', 'side', 'nodes', 'ms', '%'].join('\t'));
for (const r of rows.slice(0, Number(a.top))) console.log([r.key, r.nodes, round(r.ms), round((100 * r.ms) / total)].join('\t'));
const bySide = (s: string) => round(rows.filter((r) => r.key.endsWith(s)).reduce((x, r) => x + r.ms, 0));
console.log(`# forward kernels ${bySide('fwd')} ms, backward kernels ${bySide('bwd')} ms`);
if (Number(a.nodes) > 0) {
  // the slowest individual nodes (median over runs), to see which layer a cost belongs to
  const list = [...kernelsByNode(timed).entries()].map(([node, x]) => ({ node, op: x.op, ms: median(x.us) / 1000 })).sort((p, q) => q.ms - p.ms);
  console.log('# slowest nodes');
  for (const x of list.slice(0, Number(a.nodes))) console.log([round(x.ms), x.op, x.node].join('\t'));
}
if (a.json) writeFileSync(a.json, JSON.stringify({ model: a.model, set: a.set, batch: Number(a.batch), threads: Number(a.threads), runMs, rows, load: loadavg() }, null, 1));
