/**
 * Does splitting a 2-thread training step into two 1-thread halves pay? Three ways of running the same
 * ResNet-18 full step (batch 16), each in its own process (thread pools, niceness and glibc state are
 * per process), alternated A B C A B C …:
 *
 *   seq     — graft's step: one session, 2 intra-op threads, the whole batch
 *   graph   — the compiled step copied twice into one graph (each copy its own half batch and its own
 *             copy of the weight inputs, fed the same buffers), joined only by the loss and gradient
 *             averages; ORT's parallel executor with one logic stream per copy (a node-partition config
 *             written from the ORT-optimised graph), 1 intra-op thread, 3 inter-op threads
 *   workers — two 1-thread sessions of the step in two threads (this one and a worker), half a batch
 *             each; the worker gets a copy of the weights every step and transfers its gradients back,
 *             which are averaged here (what a data-parallel trainer would have to do)
 *
 *   npx tsx bench/finetune/data-parallel.ts [--rounds 3] [--steps 10] [--variants seq,graph,workers]
 *
 * Prints per-process medians of the step's wall time, process CPU per step and peak RSS (read before the
 * check), and checks that each variant's gradients equal the sequential step's (to float rounding).
 */
import { execFileSync } from 'node:child_process';
import { readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { TrainStep } from '../../src/autodiff/train-step.js';
import { Graph, Model } from '../../src/graph/graph.js';
import { Node } from '../../src/graph/ir.js';
import { loadModel, modelToBytes } from '../../src/graph/serialize.js';
import { float32 } from '../../src/onnx/tensor.js';
import { tsWorkerBootstrap } from '../../src/runtime/worker-host.js';
import { peakRssMb } from '../lib/measure.js';
import { args, benchModel, compileStep, createSession, median, round, stepFeeds } from './common.js';

const N = 16;
const HALVES = 2;
const self = fileURLToPath(import.meta.url);

/** The step graph twice: copy k reads `name__bk` for the batch, labels and weights; loss and gradients are the copies' mean. */
function dataParallelGraph(s: TrainStep): Model {
  const g = s.model.graph;
  const nodes: Node[] = [];
  const initializers = new Map(g.initializers);
  const perCopy = new Set([s.dataInput, s.labels, ...s.params.map((p) => p.name)]);
  const shared = new Set(g.initializers.keys());
  const inputs = g.inputs.flatMap((i) => (perCopy.has(i.name) ? Array.from({ length: HALVES }, (_, k) => ({ ...i, name: `${i.name}__b${k}` })) : [i]));
  for (let k = 0; k < HALVES; k++) {
    const copy = (v: string) => (!v || shared.has(v) ? v : `${v}__b${k}`);
    for (const n of g.nodes) nodes.push(new Node({ name: `${n.name}__b${k}`, opType: n.opType, domain: n.domain, inputs: n.inputs.map(copy), outputs: n.outputs.map(copy), attrs: n.attrs }));
  }
  initializers.set('dp/one_over_halves', float32([], [1 / HALVES]));
  const mean = (v: string) => {
    nodes.push(new Node({ name: `dp/sum/${v}`, opType: 'Sum', inputs: Array.from({ length: HALVES }, (_, k) => `${v}__b${k}`), outputs: [`${v}__sum`] }));
    nodes.push(new Node({ name: `dp/mean/${v}`, opType: 'Mul', inputs: [`${v}__sum`, 'dp/one_over_halves'], outputs: [v] }));
  };
  mean(s.loss);
  for (const p of s.params) mean(p.grad);
  nodes.push(new Node({ name: 'dp/logits', opType: 'Concat', inputs: Array.from({ length: HALVES }, (_, k) => `${s.logits}__b${k}`), outputs: [s.logits], attrs: new Map([['axis', { kind: 'int', value: 0 }]]) }));
  return new Model({ ...s.model, graph: new Graph({ name: g.name, nodes, inputs, outputs: g.outputs, initializers }) });
}

/**
 * ORT's DeviceBasedPartitioner config: copy k's nodes in stream k, the averages in a last stream. Node names
 * are those of ORT's optimised graph (its fusions and layout nodes get new names), so the graph is
 * optimised once with the same options and read back.
 */
async function partitionConfig(bytes: Uint8Array, file: string): Promise<void> {
  const optimised = join(tmpdir(), `graft-dp-${process.pid}.onnx`);
  const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: HALVES + 1, executionMode: 'parallel', graphOptimizationLevel: 'all', enableMemPattern: false, optimizedModelFilePath: optimised, logSeverityLevel: 3 });
  await s.release();
  const g = loadModel(optimised).graph;
  rmSync(optimised, { force: true });
  g.sortTopologically();
  const streamOf = new Map<string, number>();
  const streams: string[][] = Array.from({ length: HALVES + 1 }, () => []);
  for (const n of g.nodes) {
    const copies = new Set<number>();
    for (const v of [n.name, ...n.inputs, ...n.outputs]) {
      const m = /__b(\d+)$/.exec(v);
      if (m) copies.add(Number(m[1]));
    }
    for (const v of n.inputs) if (streamOf.has(v)) copies.add(streamOf.get(v)!);
    const stream = copies.size === 1 && !n.name.startsWith('dp/') ? [...copies][0] : HALVES;
    for (const o of n.outputs) streamOf.set(o, stream);
    streams[stream].push(n.name);
  }
  writeFileSync(file, JSON.stringify({ type: 'DeviceBasedPartitioner', devices: streams.map(() => '0'), streams }));
}

function halfOf(t: ort.Tensor, k: number): ort.Tensor {
  const n = t.dims[0] / HALVES;
  const per = t.size / t.dims[0];
  const data = (t.data as Float32Array | BigInt64Array).subarray(k * n * per, (k + 1) * n * per);
  return new ort.Tensor(t.type, data, [n, ...t.dims.slice(1)]);
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(a[i]));
  }
  return num / (den || 1);
}

interface WorkerInit {
  bytes: Uint8Array;
  step: Pick<TrainStep, 'dataInput' | 'labels' | 'params'>;
}

/** The worker half of `workers`: runs its session on the half batch and weights it is sent, transfers the gradients back. */
async function workerMain(): Promise<void> {
  const { bytes, step } = workerData as WorkerInit;
  const session = await createSession(bytes, { threads: 1 });
  parentPort!.on('message', async (m: { x: Float32Array; xDims: number[]; y: BigInt64Array; weights: Float32Array[] }) => {
    const feeds: Record<string, ort.Tensor> = { [step.dataInput]: new ort.Tensor('float32', m.x, m.xDims), [step.labels]: new ort.Tensor('int64', m.y, [m.y.length]) };
    step.params.forEach((p, i) => (feeds[p.name] = new ort.Tensor('float32', m.weights[i], p.dims)));
    const out = await session.run(feeds);
    const grads = step.params.map((p) => out[p.grad].data as Float32Array);
    parentPort!.postMessage(grads, grads.map((g) => g.buffer as ArrayBuffer));
  });
  parentPort!.postMessage('ready');
}

/** One process, one variant: times `steps` steps after a warm-up, checks gradients against the sequential step. */
async function measure(variant: string, steps: number): Promise<Record<string, unknown>> {
  const m = await benchModel('resnet18');
  const { step, bytes } = await compileStep(m, 'full');
  const feeds = stepFeeds(m, step, N);
  let run: () => Promise<Record<string, Float32Array>>;
  let release = async () => {};
  if (variant === 'seq') {
    const s = await createSession(bytes, { threads: 2 });
    run = async () => Object.fromEntries(Object.entries(await s.run(feeds)).map(([k, v]) => [k, v.data as Float32Array]));
  } else if (variant === 'graph') {
    const dpBytes = modelToBytes(dataParallelGraph(step));
    const config = join(tmpdir(), `graft-dp-${process.pid}.json`);
    await partitionConfig(dpBytes, config);
    const s = await createSession(dpBytes, {
      threads: 1,
      interOp: HALVES + 1,
      // idle inter-op workers must steal: ORT queues each stream on a random worker, so both can land on one
      extraConfig: { 'inter_op.allow_spinning': '1', force_spinning_stop: '1', node_partition_config_file: config },
    });
    rmSync(config, { force: true });
    // ORT's Run hands every stream to the inter-op pool and busy-waits; keep that thread off the workers' cores
    setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), 19);
    const dpFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      for (let k = 0; k < HALVES; k++) dpFeeds[`${name}__b${k}`] = name === step.dataInput || name === step.labels ? halfOf(t, k) : t;
    }
    run = async () => Object.fromEntries(Object.entries(await s.run(dpFeeds)).map(([k, v]) => [k, v.data as Float32Array]));
  } else {
    const s = await createSession(bytes, { threads: 1 });
    // tsx's hooks don't reach worker threads: the worker registers them first
    const w = new Worker(tsWorkerBootstrap(import.meta.url), { eval: true, workerData: { bytes, step: { dataInput: step.dataInput, labels: step.labels, params: step.params } } satisfies WorkerInit });
    await new Promise((r) => w.once('message', r));
    release = async () => void (await w.terminate());
    const own = { ...feeds, [step.dataInput]: halfOf(feeds[step.dataInput], 0), [step.labels]: halfOf(feeds[step.labels], 0) };
    const other = { x: halfOf(feeds[step.dataInput], 1), y: halfOf(feeds[step.labels], 1) };
    run = async () => {
      const weights = step.params.map((p) => (feeds[p.name].data as Float32Array).slice());
      const x = (other.x.data as Float32Array).slice();
      const y = (other.y.data as BigInt64Array).slice();
      const theirs = new Promise<Float32Array[]>((r) => w.once('message', r));
      w.postMessage({ x, xDims: other.x.dims, y, weights }, [x.buffer, y.buffer, ...weights.map((a) => a.buffer)]);
      const out = await s.run(own);
      const grads = await theirs;
      const result: Record<string, Float32Array> = {};
      step.params.forEach((p, i) => {
        const a = out[p.grad].data as Float32Array;
        const b = grads[i];
        for (let j = 0; j < a.length; j++) a[j] = (a[j] + b[j]) / HALVES;
        result[p.grad] = a;
      });
      return result;
    };
  }
  const first = await run();
  const wall: number[] = [];
  const c0 = process.cpuUsage();
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    await run();
    wall.push(performance.now() - t0);
  }
  const cpu = process.cpuUsage(c0);
  await release();
  const peakMb = peakRssMb();
  // after the peak is read: the reference session would count in it
  const reference = await (await createSession(bytes, { threads: 2 })).run(feeds);
  const gradDiff = Math.max(...step.params.map((p) => maxRelDiff(reference[p.grad].data as Float32Array, first[p.grad])));
  return { variant, stepMs: round(median(wall)), minMs: round(Math.min(...wall)), cpuMsPerStep: round((cpu.user + cpu.system) / 1000 / steps), peakRssMb: Math.round(peakMb), gradMaxRelDiff: gradDiff };
}

if (!isMainThread) await workerMain();
else {
  const a = args({ rounds: '3', steps: '10', variants: 'seq,graph,workers', variant: '' });
  if (a.variant) console.log(JSON.stringify(await measure(a.variant, Number(a.steps))));
  else {
    const rows: Record<string, unknown>[] = [];
    for (let r = 0; r < Number(a.rounds); r++) {
      for (const v of a.variants.split(',')) {
        const out = execFileSync(process.execPath, ['--import', 'tsx', self, '--variant', v, '--steps', a.steps], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        const row = JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
        rows.push({ round: r, ...row });
        console.log(JSON.stringify(rows[rows.length - 1]));
      }
    }
    for (const v of a.variants.split(',')) {
      const mine = rows.filter((r) => r.variant === v);
      console.log(`${v}: step ${mine.map((r) => r.stepMs).join(' / ')} ms (median ${round(median(mine.map((r) => r.stepMs as number)))}), CPU ${round(median(mine.map((r) => r.cpuMsPerStep as number)))} ms/step, peak RSS ${median(mine.map((r) => r.peakRssMb as number))} MB`);
    }
  }
}
