/**
 * Shared pieces of graft's fine-tuning benchmarks: the bench models (bench/out/*.onnx from
 * bench/torch/export_models.py, or the nsfwjs builtin) cut at their features with a new 10-class head as
 * fine-tuning builds them, trainable sets matching bench/torch/train.py's configurations, ORT sessions,
 * and interleaved CPU-time measurement (the machine is shared: compare per-CPU-second medians of
 * variants timed A B A B … in one process, never single wall-clock numbers).
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg as osLoadavg } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import type { GradOptions } from '../../src/autodiff/rule.js';
import { buildTrainStep, type TrainStep, type TrainStepOptions } from '../../src/autodiff/train-step.js';
import { GraphBuilder } from '../../src/graph/builder.js';
import { compose } from '../../src/graph/compose.js';
import { Graph, Model } from '../../src/graph/graph.js';
import { loadModel, modelToBytes } from '../../src/graph/serialize.js';
import { tailFrom } from '../../src/graph/surgery.js';
import { numel } from '../../src/onnx/tensor.js';
import { ensureBuiltin } from '../../src/models/builtins.js';
import { nchwcBlockSize } from '../../src/runtime/nchwc-probe.js';
import { buildHead } from '../../src/train/head.js';
import { stagesOf, unfrozenStages } from '../../src/train/stages.js';
import { median, procStat } from '../lib/measure.js';
import { cutBackbone } from '../lib/models.js';

export { median, procStat };
export const loadavg = () => osLoadavg();

export const BENCH_OUT = join(dirname(fileURLToPath(import.meta.url)), '..', 'out');

export type BenchModelName = 'resnet18' | 'mobilenet_v2' | 'nsfw_mobilenet_v2';
/** tail: the last stage + head trained on the frozen prefix's cached output (graft without augmentation). */
export type TrainableSet = 'full' | 'last' | 'tail' | 'head';

export interface BenchModel {
  name: BenchModelName;
  /** backbone + new head, BN nodes kept (frozen statistics, as graft fine-tunes by default). */
  model: Model;
  backbone: Model;
  headParams: string[];
  /** [C, H, W] of the image input. */
  inputDims: number[];
}

export async function benchModel(name: BenchModelName, classes = 10): Promise<BenchModel> {
  const source = name === 'nsfw_mobilenet_v2' ? loadModel((await ensureBuiltin('mobilenet_v2')).path) : loadModel(join(BENCH_OUT, `${name}.onnx`));
  const backbone = cutBackbone(source);
  const dims = backbone.graph.inputs[0].shape!.slice(1).map((d, i) => (typeof d === 'number' ? d : i === 0 ? 3 : 224)) as number[];
  const featDim = backbone.graph.outputs[0].shape?.[1];
  const head = buildHead({ inputDim: featDim as number, numClasses: classes, dropout: 0, seed: 0 });
  return { name, model: compose(backbone, head.model), backbone, headParams: head.params, inputDims: dims };
}

/** full = every stage + head; last = the last stage (resnet18 layer4, mobilenet_v2 the 7×7 stage) + head. */
export function trainableOf(m: BenchModel, set: TrainableSet): string[] {
  const stages = set === 'head' ? [] : unfrozenStages(stagesOf(m.backbone), set === 'full' ? 'all' : 1);
  return [...stages.flatMap((s) => s.params), ...m.headParams];
}

/** The graph a set trains: the whole model, or for 'tail' the part after the frozen prefix. */
export function trainedModel(m: BenchModel, set: TrainableSet): Model {
  return set === 'tail' ? tailFrom(m.model, unfrozenStages(stagesOf(m.backbone), 1)[0].input) : m.model;
}

/** As graft train compiles it: convs with fed weights on ORT's NCHWc kernels unless `extra.nchwcBlock` is 0. */
export async function compileStep(m: BenchModel, set: TrainableSet, grad?: GradOptions, extra: Partial<TrainStepOptions> = {}): Promise<{ step: TrainStep; bytes: Uint8Array }> {
  const step = buildTrainStep(trainedModel(m, set), { trainable: trainableOf(m, set), grad, nchwcBlock: await nchwcBlockSize(), ...extra });
  return { step, bytes: modelToBytes(step.model) };
}

export interface SessionKnobs {
  threads?: number;
  spin?: boolean;
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  memPattern?: boolean;
  cpuArena?: boolean;
  /** > 1: ORT's parallel executor with this many inter-op threads (independent branches run concurrently). */
  interOp?: number;
  profilePrefix?: string;
  extraConfig?: Record<string, string>;
}

export function createSession(model: Uint8Array | string, k: SessionKnobs = {}): Promise<ort.InferenceSession> {
  const session: Record<string, unknown> = { intra_op: { allow_spinning: k.spin ? '1' : '0' }, ...(k.extraConfig ?? {}) };
  return ort.InferenceSession.create(model as Uint8Array, {
    executionProviders: ['cpu'],
    intraOpNumThreads: k.threads ?? 1,
    interOpNumThreads: k.interOp ?? 1,
    executionMode: (k.interOp ?? 1) > 1 ? 'parallel' : 'sequential',
    graphOptimizationLevel: k.optimization ?? 'all',
    // off as in graft's runtime (src/runtime/ort.ts); on, 2-thread steps ran 40 % slower here
    enableMemPattern: k.memPattern ?? false,
    enableCpuMemArena: k.cpuArena ?? true,
    ...(k.profilePrefix ? { enableProfiling: true, profileFilePrefix: k.profilePrefix } : {}),
    extra: { session },
  });
}

/** Float32 feeds for a probe's inputs: `data` where given, else uniform in [-1, 1) seeded 1, 2, … in input order. */
export function randomFeeds(inputs: readonly { name: string; dims: readonly number[] }[], data: Record<string, Float32Array> = {}): Record<string, ort.Tensor> {
  return Object.fromEntries(inputs.map((i, k) => [i.name, new ort.Tensor('float32', data[i.name] ?? randomFloats(numel(i.dims), k + 1), [...i.dims])]));
}

/**
 * A probe's one-off graph: float32 inputs (name → dims) and the outputs `build` returns, their shapes left
 * to onnxruntime, at opset 17. A Model rather than bytes, so that a probe can still rewrite it.
 */
export function tinyModel(inputs: Record<string, readonly number[]>, build: (b: GraphBuilder) => string | readonly string[]): Model {
  const g = new Graph();
  const b = new GraphBuilder(g);
  for (const [name, shape] of Object.entries(inputs)) {
    b.reserve(name);
    g.inputs.push({ name, dtype: 'float32', shape: [...shape] });
  }
  const outs = build(b);
  g.outputs = (typeof outs === 'string' ? [outs] : outs).map((name) => ({ name, dtype: 'float32' as const }));
  return new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }] });
}

/**
 * A session over tinyModel's graph, feeds for its inputs (`data`, else random, seeded 1, 2, … in order) and outputs
 * preallocated once a first run has shown their shapes (timed runs copy nothing back), holding a run's
 * results when this returns.
 */
export async function tinySession(
  inputs: Record<string, readonly number[]>,
  build: (b: GraphBuilder) => string | readonly string[],
  k: SessionKnobs = {},
  data: Record<string, Float32Array> = {},
): Promise<{ session: ort.InferenceSession; feeds: Record<string, ort.Tensor>; fetches: Record<string, ort.Tensor>; run: () => Promise<unknown> }> {
  const session = await createSession(modelToBytes(tinyModel(inputs, build)), k);
  const feeds = randomFeeds(Object.entries(inputs).map(([name, dims]) => ({ name, dims })), data);
  const first = await session.run(feeds);
  const fetches = Object.fromEntries(session.outputNames.map((name) => [name, new ort.Tensor('float32', new Float32Array(numel(first[name].dims)), first[name].dims)]));
  await session.run(feeds, fetches);
  return { session, feeds, fetches, run: () => session.run(feeds, fetches) };
}

/** One event of ORT's profiler (chrome-trace JSON). */
export interface ProfileEvent {
  cat: string;
  name: string;
  dur: number;
  args?: { op_name?: string; provider?: string; output_size?: string; input_type_shape?: unknown };
}

/** One node's kernel in one profiled run. */
export interface KernelTime {
  node: string;
  op: string;
  us: number;
  /** the input shapes the profiler recorded, to tell layers apart */
  shapes: string;
}

/**
 * A profile split into its session runs: each run's kernels in order and its wall time (the
 * "model_run" event ORT writes when a run ends, so the kernels before it are that run's).
 */
export function kernelRuns(events: readonly ProfileEvent[]): { runUs: number; kernels: KernelTime[] }[] {
  const runs: { runUs: number; kernels: KernelTime[] }[] = [];
  let kernels: KernelTime[] = [];
  for (const e of events) {
    if (e.cat === 'Session' && e.name === 'model_run') {
      runs.push({ runUs: e.dur, kernels });
      kernels = [];
    } else if (e.cat === 'Node' && e.name.endsWith('_kernel_time')) {
      kernels.push({ node: e.name.slice(0, -'_kernel_time'.length), op: e.args?.op_name ?? '?', us: e.dur, shapes: JSON.stringify(e.args?.input_type_shape ?? []) });
    }
  }
  return runs;
}

/** Each node's kernel times over `runs`, with its op and input shapes (the first run's), in first-seen order. */
export function kernelsByNode(runs: readonly { kernels: KernelTime[] }[]): Map<string, { op: string; shapes: string; us: number[] }> {
  const byNode = new Map<string, { op: string; shapes: string; us: number[] }>();
  for (const k of runs.flatMap((r) => r.kernels)) {
    let x = byNode.get(k.node);
    if (!x) byNode.set(k.node, (x = { op: k.op, shapes: k.shapes, us: [] }));
    x.us.push(k.us);
  }
  return byNode;
}

/**
 * The profile of a session made with `profilePrefix`, read after its endProfiling(), and its file removed.
 * The binding does not return the file name: it is the prefix plus a timestamp.
 */
export function takeProfile(prefix: string): ProfileEvent[] {
  const file = readdirSync(dirname(prefix)).filter((f) => f.startsWith(basename(prefix)) && f.endsWith('.json')).map((f) => join(dirname(prefix), f))[0];
  if (!file) throw new Error(`no ORT profile written under ${prefix}`);
  const events = JSON.parse(readFileSync(file, 'utf8')) as ProfileEvent[];
  rmSync(file, { force: true });
  return events;
}

/** Deterministic pseudo-random floats in [lo, hi) (xorshift; no need for quality here). */
export function randomFloats(n: number, seed = 1, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = lo + ((s >>> 0) / 4294967296) * (hi - lo);
  }
  return out;
}

/** Feeds for one training step: a random batch, labels, and the model's current trainable weights. */
export function stepFeeds(m: BenchModel, step: TrainStep, N: number): Record<string, ort.Tensor> {
  // the image batch, or for a tail the prefix output's shape
  const declared = step.model.graph.inputs.find((i) => i.name === step.dataInput)?.shape?.slice(1);
  const dims = declared?.every((d): d is number => typeof d === 'number') ? declared : m.inputDims;
  const feeds: Record<string, ort.Tensor> = {
    [step.dataInput]: new ort.Tensor('float32', randomFloats(N * dims.reduce((a, b) => a * b, 1), 7, -2, 2), [N, ...dims]),
    [step.labels]: new ort.Tensor('int64', BigInt64Array.from({ length: N }, (_, i) => BigInt(i % step.numClasses)), [N]),
  };
  for (const p of step.params) feeds[p.name] = new ort.Tensor('float32', Float32Array.from(m.model.graph.initializers.get(p.name)!.data as Float32Array), p.dims);
  return feeds;
}

export interface Sample {
  wallMs: number;
  cpuMs: number;
}

export async function sample(fn: () => Promise<unknown> | unknown): Promise<Sample> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const wallMs = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { wallMs, cpuMs: (c.user + c.system) / 1000 };
}

export interface VariantStats {
  name: string;
  n: number;
  wallMedMs: number;
  wallMinMs: number;
  cpuMedMs: number;
  cpuMinMs: number;
}

/**
 * Runs every variant `rounds` times, interleaved (A B C A B C …) after `warmup` untimed rounds, and returns
 * per-variant medians of wall and process CPU time, plus the machine's load over the whole measurement.
 */
export async function interleave(
  variants: { name: string; run: () => Promise<unknown> | unknown }[],
  opts: { rounds: number; warmup?: number; maxSeconds?: number },
): Promise<{ stats: VariantStats[]; load: number[]; otherBusyCores: number }> {
  for (let w = 0; w < (opts.warmup ?? 1); w++) for (const v of variants) await v.run();
  const samples = variants.map(() => [] as Sample[]);
  const s0 = procStat();
  const own0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + 1000 * (opts.maxSeconds ?? Infinity);
  for (let r = 0; r < opts.rounds; r++) {
    for (let k = 0; k < variants.length; k++) samples[k].push(await sample(variants[k].run));
    if (r >= 2 && performance.now() > end) break;
  }
  const s1 = procStat();
  const wall = performance.now() - t0;
  const own = process.cpuUsage(own0);
  const ncpu = 2;
  const busy = ncpu * (1 - (s1[1] - s0[1]) / Math.max(1, s1[0] - s0[0]));
  const ownCores = (own.user + own.system) / 1000 / wall;
  const stats = variants.map((v, k) => ({
    name: v.name,
    n: samples[k].length,
    wallMedMs: round(median(samples[k].map((s) => s.wallMs))),
    wallMinMs: round(Math.min(...samples[k].map((s) => s.wallMs))),
    cpuMedMs: round(median(samples[k].map((s) => s.cpuMs))),
    cpuMinMs: round(Math.min(...samples[k].map((s) => s.cpuMs))),
  }));
  return { stats, load: loadavg(), otherBusyCores: round(Math.max(0, busy - ownCores), 2) };
}

export const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

/** Parses `--key value` / `--flag` arguments into a record (bench scripts only). */
export function args(defaults: Record<string, string>): Record<string, string> {
  const out = { ...defaults };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const key = a.slice(2);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out[key] = 'true';
    else {
      out[key] = next;
      i++;
    }
  }
  return out;
}
