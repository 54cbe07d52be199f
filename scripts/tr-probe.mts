import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../src/graph/builder.js';
import { Graph, Model } from '../src/graph/graph.js';
import { modelToBytes } from '../src/graph/serialize.js';
const B = 16, O = 512, I = 512, K = 3;
const forms: Record<string, (b: GraphBuilder) => string> = {
  six: (b) => b.op('Transpose', [b.op('Reshape', ['w', b.i64([O / B, B, I / B, B, K, K])])], { perm: [0, 2, 4, 5, 3, 1] }),
  five: (b) => b.op('Transpose', [b.op('Reshape', ['w', b.i64([O / B, B, I / B, B, K * K])])], { perm: [0, 2, 4, 3, 1] }),
  twoMoves: (b) => {
    const t1 = b.op('Transpose', [b.op('Reshape', ['w', b.i64([O / B, B, I / B, B, K * K])])], { perm: [0, 2, 3, 4, 1] });
    return b.op('Transpose', [t1], { perm: [0, 1, 3, 2, 4] });
  },
  fourMerged: (b) => {
    // [O/B, Bo, (I/B), (Bi*K2)] -> move Bo inwards: [O/B, I/B, Bi*K2, Bo], then [O/B*I/B, Bi, K2, Bo] -> swap Bi,K2
    const t1 = b.op('Transpose', [b.op('Reshape', ['w', b.i64([O / B, B, I / B, B * K * K])])], { perm: [0, 2, 3, 1] });
    return b.op('Transpose', [b.op('Reshape', [t1, b.i64([O / B * I / B, B, K * K, B])])], { perm: [0, 2, 1, 3] });
  },
  copy: (b) => b.op('Mul', ['w', b.f32(1)]),
};
const w = new Float32Array(O * I * K * K).map((_, i) => i);
const sess: Record<string, ort.InferenceSession> = {};
for (const [name, f] of Object.entries(forms)) {
  const g = new Graph({ inputs: [{ name: 'w', dtype: 'float32', shape: [O, I, K, K] }] });
  const b = new GraphBuilder(g); b.reserve('w');
  const y = b.op('Reshape', [f(b), b.i64([-1])]);
  g.outputs = [{ name: y, dtype: 'float32' }];
  sess[name] = await ort.InferenceSession.create(modelToBytes(new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }] })), { intraOpNumThreads: 1, graphOptimizationLevel: 'all' });
}
const times: Record<string, number[]> = {};
let ref: Float32Array | undefined;
for (let r = 0; r < 12; r++) for (const name of Object.keys(forms)) {
  const t0 = performance.now();
  const out = Object.values(await sess[name].run({ w: new ort.Tensor('float32', w, [O, I, K, K]) }))[0].data as Float32Array;
  (times[name] ??= []).push(performance.now() - t0);
  if (r === 0 && name !== 'copy') { if (!ref) ref = out; else console.log(name, 'same', out.every((v, i) => v === ref![i])); }
}
for (const [k, v] of Object.entries(times)) console.log(k, v.sort((a, b) => a - b)[6].toFixed(2));
