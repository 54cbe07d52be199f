/**
 * The blocked (NCHWc) filters a training step builds every step from its fed weights, two ways: the
 * forward filter [O/B, I/B, k, Bi, Bo] and the input-gradient conv's flip(Wᵀ) in the same layout.
 *   transposes     what graph/nchwc emitted before: Transposes (one moving single floats per filter) + a Gather for the flip
 *   reorderInput   what it emits now (graph/nchwc's own builders): ORT's ReorderInput twice for the forward filter, one Gather of B-float rows for flip(Wᵀ)
 * Both must give identical filters (checked); timed interleaved, medians.
 *
 *   npx tsx bench/finetune/filter-reorder.ts [--shape 512,512,9] [--threads 2] [--rounds 31]
 */
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../src/graph/builder.js';
import { Graph, Model } from '../../src/graph/graph.js';
import { blockChannels, blockOutputChannels, NCHWC_DOMAIN, reorderFlippedFilterOIHWBiBo } from '../../src/graph/nchwc.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { nchwcBlockSize } from '../../src/runtime/nchwc-probe.js';
import { args, createSession, interleave, loadavg, randomFloats } from './common.js';

const a = args({ shape: '512,512,9', threads: '2', rounds: '31' });
const [O, I, k] = a.shape.split(',').map(Number);
const B = await nchwcBlockSize();
if (!B) throw new Error('onnxruntime has no NCHWc kernels on this machine');
const size = O * I * k;

const flat = (b: GraphBuilder, v: string) => b.op('Reshape', [v, b.i64([size])]);
const VARIANTS: Record<string, (b: GraphBuilder, w: string) => string[]> = {
  transposes: (b, w) => {
    const first = b.op('Transpose', [b.op('Reshape', [w, b.i64([O / B, B, I / B, B * k])])], { perm: [0, 2, 3, 1] });
    const forward = b.op('Transpose', [b.op('Reshape', [first, b.i64([(O / B) * (I / B), B, k, B])])], { perm: [0, 2, 1, 3] });
    const boInside = b.op('Transpose', [b.op('Reshape', [first, b.i64([(O / B) * (I / B), B, k * B])])], { perm: [0, 2, 1] });
    const outer = b.op('Transpose', [b.op('Reshape', [boInside, b.i64([O / B, I / B, k * B * B])])], { perm: [1, 0, 2] });
    const taps = b.op('Reshape', [outer, b.i64([I / B, O / B, k, B * B])]);
    const flipped = b.op('Gather', [taps, b.i64(Array.from({ length: k }, (_, t) => k - 1 - t))], { axis: 2 });
    return [flat(b, forward), flat(b, flipped)];
  },
  // graft's own builders (graph/nchwc), as the lowering emits them for a fed weight and its input-gradient conv
  reorderInput: (b, w) => {
    const first = blockChannels(b, w, [O, I, k]);
    const forward = blockOutputChannels(b, first, [O, I, k, 1], B);
    return [flat(b, forward), flat(b, reorderFlippedFilterOIHWBiBo(b, first, [I, O, k, 1], B))];
  },
};

const w = new ort.Tensor('float32', randomFloats(size, 3), [O, I, k]);
const variants = [];
let reference: Float32Array[] | undefined;
for (const [name, build] of Object.entries(VARIANTS)) {
  const g = new Graph({ inputs: [{ name: 'w', dtype: 'float32', shape: [O, I, k] }] });
  const b = new GraphBuilder(g);
  b.reserve('w');
  const outs = build(b, 'w');
  g.outputs = outs.map((o) => ({ name: o, dtype: 'float32' as const, shape: [size] }));
  const model = new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }, { domain: NCHWC_DOMAIN, version: 1 }] });
  const session = await createSession(modelToBytes(model), { threads: Number(a.threads) });
  const fetches = Object.fromEntries(outs.map((o) => [o, new ort.Tensor('float32', new Float32Array(size), [size])]));
  await session.run({ w }, fetches);
  const got = outs.map((o) => (fetches[o].data as Float32Array).slice());
  if (!reference) reference = got;
  else if (got.some((f, j) => f.some((v, i) => v !== reference![j][i]))) throw new Error(`${name}: filters differ from ${Object.keys(VARIANTS)[0]}'s`);
  variants.push({ name, run: () => session.run({ w }, fetches) });
}
const r = await interleave(variants, { rounds: Number(a.rounds), warmup: 2 });
console.log(`# forward + input-gradient filters of [${O}, ${I}, ${k}], B=${B}, threads=${a.threads}; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
for (const s of r.stats) console.log(`${s.name.padEnd(14)} wall med ${s.wallMedMs} ms  cpu med ${s.cpuMedMs} ms`);
