/**
 * Kernel-level profile of one tune-conv probe graph (which nodes a formulation spends its time in).
 *
 *   npx tsx bench/finetune/probe-profile.ts --model resnet18 --filter '512x7x7' --probe dX:flippedConv [--runs 10]
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { args, createSession, kernelRuns, kernelsByNode, median, randomFeeds, round, takeProfile, type BenchModelName } from './common.js';
import { convShapes, probeGraph, probesFor, probeName } from './tune-conv.js';

const a = args({ model: 'resnet18', filter: '', probe: 'fwd', runs: '10', batch: '16', threads: '1' });
const s = (await convShapes([a.model as BenchModelName], Number(a.batch))).find((x) => x.key.includes(a.filter));
if (!s) throw new Error('no such shape');
const p = probesFor(s).find((x) => probeName(x) === a.probe);
if (!p) throw new Error(`no probe ${a.probe}; have ${probesFor(s).map(probeName).join(', ')}`);
const { bytes, inputs } = probeGraph(s, p);
const prefix = join(tmpdir(), `graft-probe-${process.pid}`);
const session = await createSession(bytes, { threads: Number(a.threads), profilePrefix: prefix });
const feeds = randomFeeds(inputs);
for (let r = 0; r < Number(a.runs); r++) await session.run(feeds);
session.endProfiling();
await session.release();
const per = [...kernelsByNode(kernelRuns(takeProfile(prefix)))].map(([node, x]) => ({ key: `${x.op}\t${node}_kernel_time`, ms: median(x.us) / 1000 }));
console.log(`# ${s.key} ${a.probe}`);
for (const { key, ms } of per.sort((x, y) => y.ms - x.ms)) console.log(`${round(ms, 2)}\t${key}`);
