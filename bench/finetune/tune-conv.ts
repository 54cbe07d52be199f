/**
 * Lever 1: which conv-gradient formulation is fastest for each conv shape? For every distinct Conv of the
 * chosen models (at batch N), builds one small graph per dX / dW formulation with graft's own rules
 * (buildBackward on a one-conv graph), times them in ORT interleaved, and prints the fastest per shape.
 * The forward conv (weights as an input, as in training) is timed alongside for scale.
 *
 *   npx tsx bench/finetune/tune-conv.ts [--models resnet18,mobilenet_v2,nsfw_mobilenet_v2] [--batch 16]
 *        [--threads 1] [--rounds 7] [--only dW|dX] [--filter substring] [--out bench/out/tune-conv.jsonl]
 *        [--shapes-out bench/out/conv-shapes.json]   (the shapes list, for bench/finetune/torch_conv.py)
 *
 * Times are medians of process CPU time per run (the machine is shared); wall medians are printed too.
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import type { ConvDwMethod, ConvDxMethod, GradOptions, RuleContext } from '../../src/autodiff/rule.js';
import { chooseDw, chooseDx, convGeometry, type ConvGeometry } from '../../src/autodiff/rules/conv.js';
import { buildBackward } from '../../src/autodiff/sweep.js';
import { GraphBuilder } from '../../src/graph/builder.js';
import { Graph, Model } from '../../src/graph/graph.js';
import type { AttrInput, AttrValue, Node } from '../../src/graph/ir.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { inferShapes } from '../../src/graph/shapes.js';
import { numel } from '../../src/onnx/tensor.js';
import { args, benchModel, createSession, interleave, loadavg, randomFeeds, round, type BenchModelName } from './common.js';

export const DX_METHODS: Exclude<ConvDxMethod, 'auto'>[] = ['convTranspose', 'flippedConv'];
export const DW_METHODS: Exclude<ConvDwMethod, 'auto'>[] = ['batchAsChannels', 'tapGemm', 'im2col', 'tapReduce', 'tapMatMul', 'tapGather', 'imageIm2col'];

export interface ConvShape {
  key: string;
  x: number[];
  w: number[];
  attrs: Map<string, AttrValue>;
  geom: ConvGeometry;
  /** Nodes of each model with this shape. */
  count: Record<string, number>;
  /** Whether some instance takes the graph input (its dX is never needed). */
  first: boolean;
}

/** A RuleContext just rich enough for convGeometry. */
function geometryOf(node: Node, shapes: Map<string, number[]>): ConvGeometry {
  const get = (v: string) => shapes.get(v)!;
  const ctx = {
    node,
    shape: get,
    staticAxes: (v: string, axes: number[]) => axes.map((a) => get(v)[a]),
    staticDims: (v: string) => get(v),
  } as unknown as RuleContext;
  return convGeometry(ctx);
}

export function keyOf(g: ConvGeometry): string {
  const pads = g.pt === g.pb && g.pl === g.pr && g.pt === g.pl ? `p${g.pt}` : `p${g.pt}${g.pl}${g.pb}${g.pr}`;
  return `${g.C}x${g.H}x${g.W}>${g.O} k${g.kh}${g.kw === g.kh ? '' : 'x' + g.kw} s${g.sh} ${pads}${g.dh > 1 ? ` d${g.dh}` : ''}${g.group > 1 ? ` g${g.group}` : ''}`;
}

/** The ConvShape of one conv given by hand (x and w dims, ONNX attributes), for probes outside a model. */
export function convShape(x: number[], w: number[], attrs: Record<string, AttrInput>): ConvShape {
  const g = new Graph();
  const b = new GraphBuilder(g, { opset: 17 });
  b.reserve('x', 'w');
  b.op('Conv', ['x', 'w'], attrs);
  const node = g.nodes[0];
  const geom = geometryOf(node, new Map([['x', x], ['w', w]]));
  return { key: keyOf(geom), x, w, attrs: node.attrs, geom, count: {}, first: false };
}

export async function convShapes(models: BenchModelName[], N: number): Promise<ConvShape[]> {
  const out = new Map<string, ConvShape>();
  for (const name of models) {
    const m = await benchModel(name);
    const input = m.model.graph.inputs[0].name;
    const info = inferShapes(m.model, { inputShapes: { [input]: [N, ...m.inputDims] } });
    const shapes = new Map<string, number[]>();
    for (const [k, v] of info) if (v.shape?.every((d) => typeof d === 'number')) shapes.set(k, v.shape as number[]);
    for (const [k, t] of m.model.graph.initializers) shapes.set(k, [...t.dims]);
    for (const n of m.model.graph.nodes) {
      if (n.opType !== 'Conv') continue;
      const geom = geometryOf(n, shapes);
      const key = keyOf(geom);
      let s = out.get(key);
      if (!s) out.set(key, (s = { key, x: shapes.get(n.inputs[0])!, w: shapes.get(n.inputs[1])!, attrs: n.attrs, geom, count: {}, first: false }));
      s.count[name] = (s.count[name] ?? 0) + 1;
      if (n.inputs[0] === input) s.first = true;
    }
  }
  return [...out.values()];
}

export type Probe = { what: 'fwd' } | { what: 'dX'; method: Exclude<ConvDxMethod, 'auto'> } | { what: 'dW'; method: Exclude<ConvDwMethod, 'auto'> };

/** One-conv graph computing the forward output, or one gradient with one formulation. */
export function probeGraph(s: ConvShape, p: Probe): { bytes: Uint8Array; inputs: { name: string; dims: number[] }[] } {
  const g = new Graph();
  const b = new GraphBuilder(g, { opset: 17 });
  b.reserve('x', 'w', 'dy');
  g.inputs.push({ name: 'x', dtype: 'float32', shape: s.x }, { name: 'w', dtype: 'float32', shape: s.w });
  const y = b.op('Conv', ['x', 'w'], Object.fromEntries(s.attrs));
  const model = new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }] });
  const ys = [s.x[0], s.geom.O, s.geom.OH, s.geom.OW];
  if (p.what === 'fwd') {
    g.outputs = [{ name: y, dtype: 'float32', shape: ys }];
    return { bytes: modelToBytes(model), inputs: [{ name: 'x', dims: s.x }, { name: 'w', dims: s.w }] };
  }
  g.inputs.push({ name: 'dy', dtype: 'float32', shape: ys });
  const shapes = inferShapes(model);
  const options: GradOptions = p.what === 'dX' ? { convDx: p.method, convDw: 'auto' } : { convDx: 'auto', convDw: p.method };
  const wrt = p.what === 'dX' ? 'x' : 'w';
  const { grads } = buildBackward({ graph: g, seeds: new Map([[y, 'dy']]), wrt: [wrt], shapes, opset: 17, options, builder: b });
  g.outputs = [{ name: grads.get(wrt)!, dtype: 'float32', shape: wrt === 'x' ? s.x : s.w }];
  g.prune();
  const used = new Set(g.nodes.flatMap((n) => n.inputs));
  g.inputs = g.inputs.filter((i) => used.has(i.name));
  return { bytes: modelToBytes(model), inputs: g.inputs.map((i) => ({ name: i.name, dims: i.shape as number[] })) };
}

/** Probes worth timing for a shape: every formulation the rule would actually use when asked for it. */
export function probesFor(s: ConvShape, only?: string): Probe[] {
  const out: Probe[] = [{ what: 'fwd' }];
  if (!s.first && only !== 'dW') for (const m of DX_METHODS) if (chooseDx(s.geom, m) === m) out.push({ what: 'dX', method: m });
  if (only !== 'dX') for (const m of DW_METHODS) if (chooseDw(s.geom, m) === m) out.push({ what: 'dW', method: m });
  return out;
}

export const probeName = (p: Probe) => (p.what === 'fwd' ? 'fwd' : `${p.what}:${p.method}`);

async function main() {
  const a = args({ models: 'resnet18,mobilenet_v2,nsfw_mobilenet_v2', batch: '16', threads: '1', rounds: '7', only: '', filter: '', out: '', 'shapes-out': '' });
  const models = a.models.split(',') as BenchModelName[];
  const N = Number(a.batch);
  const threads = Number(a.threads);
  const shapes = (await convShapes(models, N)).filter((s) => !a.filter || s.key.includes(a.filter));
  if (a['shapes-out']) {
    writeFileSync(a['shapes-out'], JSON.stringify(shapes.map((s) => ({ key: s.key, x: s.x, w: s.w, geom: s.geom, count: s.count, first: s.first })), null, 1));
  }
  console.log(`# tune-conv N=${N} threads=${threads} rounds=${a.rounds}; ${shapes.length} shapes; load at start ${loadavg().join(' ')}`);
  for (const s of shapes) {
    const probes = probesFor(s, a.only);
    const variants = [];
    for (const p of probes) {
      const { bytes, inputs } = probeGraph(s, p);
      const session = await createSession(bytes, { threads });
      const feeds = randomFeeds(inputs);
      // the probe's output is preallocated: in a training graph it is an arena buffer, not a fresh
      // allocation whose page faults would be charged to the formulation
      const od = p.what === 'fwd' ? [s.x[0], s.geom.O, s.geom.OH, s.geom.OW] : p.what === 'dX' ? s.x : s.w;
      const fetches = { [session.outputNames[0]]: new ort.Tensor('float32', new Float32Array(numel(od)), od) };
      variants.push({ p, session, run: () => session.run(feeds, fetches), name: probeName(p) });
    }
    const r = await interleave(variants, { rounds: Number(a.rounds), warmup: 1 });
    for (const v of variants) await v.session.release();
    const best = (what: string) => r.stats.filter((x) => x.name.startsWith(what)).sort((x, y) => x.cpuMedMs - y.cpuMedMs)[0]?.name ?? '-';
    const line = r.stats.map((x) => `${x.name} ${x.cpuMedMs}`).join(' | ');
    console.log(`${s.key.padEnd(30)} ×${JSON.stringify(s.count)}  ${line}  → ${best('dX')} ${best('dW')}  [load ${r.load[0]}, other ${r.otherBusyCores}]`);
    if (a.out) {
      for (const x of r.stats) {
        appendFileSync(a.out, JSON.stringify({ key: s.key, count: s.count, first: s.first, geom: s.geom, probe: x.name, N, threads, cpuMedMs: x.cpuMedMs, cpuMinMs: x.cpuMinMs, wallMedMs: x.wallMedMs, n: x.n, load: r.load, otherBusyCores: r.otherBusyCores }) + '\n');
      }
    }
  }
}

if (process.argv[1]?.endsWith('tune-conv.ts')) await main();
void round;
