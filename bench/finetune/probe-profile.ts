/**
 * Kernel-level profile of one tune-conv probe graph (which nodes a formulation spends its time in).
 *
 *   npx tsx bench/finetune/probe-profile.ts --model resnet18 --filter '512x7x7' --probe dX:flippedConv [--runs 10]
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { args, createSession, kernelRuns, median, randomFloats, round, takeProfile, type BenchModelName } from './common.js';
import { convShapes, probeGraph, probesFor, probeName } from './tune-conv.js';

const a = args({ model: 'resnet18', filter: '', probe: 'fwd', runs: '10', batch: '16', threads: '1' });
const s = (await convShapes([a.model as BenchModelName], Number(a.batch))).find((x) => x.key.includes(a.filter));
if (!s) throw new Error('no such shape');
const p = probesFor(s).find((x) => probeName(x) === a.probe);
if (!p) throw new Error(`no probe ${a.probe}; have ${probesFor(s).map(probeName).join(', ')}`);
const { bytes, inputs } = probeGraph(s, p);
const prefix = join(tmpdir(), `graft-probe-${process.pid}`);
const session = await createSession(bytes, { threads: Number(a.threads), profilePrefix: prefix });
const feeds = Object.fromEntries(inputs.map((i, k) => [i.name, new ort.Tensor('float32', randomFloats(i.dims.reduce((x, y) => x * y, 1), k + 1), i.dims)]));
for (let r = 0; r < Number(a.runs); r++) await session.run(feeds);
session.endProfiling();
await session.release();
const per = new Map<string, number[]>();
for (const k of kernelRuns(takeProfile(prefix)).flatMap((r) => r.kernels)) {
  const key = `${k.op}\t${k.node}_kernel_time`;
  let us = per.get(key);
  if (!us) per.set(key, (us = []));
  us.push(k.us);
}
console.log(`# ${s.key} ${a.probe}`);
for (const [k, v] of [...per.entries()].sort((x, y) => median(y[1]) - median(x[1]))) console.log(`${round(median(v) / 1000, 2)}\t${k}`);
