/**
 * Lever 3: how much forward speed do trainable convolutions lose because their weights are graph inputs
 * (ORT's NCHWc transformer only rewrites convs whose weight is an initializer)? Times the forward
 * (inference) graph with the weights as initializers vs as inputs, interleaved in one process.
 *
 *   npx tsx bench/finetune/fwd-weights.ts --model resnet18 [--batch 16] [--threads 1] [--rounds 15]
 */
import * as ort from 'onnxruntime-node';
import { buildEvalStep } from '../../src/autodiff/train-step.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { args, benchModel, createSession, interleave, randomFloats, round, trainableOf, type BenchModelName, type TrainableSet } from './common.js';

const a = args({ model: 'resnet18', batch: '16', threads: '1', rounds: '15', set: 'full', rebuild: 'false' });
const m = await benchModel(a.model as BenchModelName);
const N = Number(a.batch);
const threads = Number(a.threads);
const trainable = trainableOf(m, a.set as TrainableSet);
const asInputs = buildEvalStep(m.model, { trainable });
const asInits = buildEvalStep(m.model, { trainable: [] });
const x = new ort.Tensor('float32', randomFloats(N * 3 * 224 * 224, 3), [N, ...m.inputDims]);
const wFeeds: Record<string, ort.Tensor> = {};
for (const p of asInputs.params) wFeeds[p.name] = new ort.Tensor('float32', Float32Array.from(m.model.graph.initializers.get(p.name)!.data as Float32Array), p.dims);
const sInit = await createSession(modelToBytes(asInits.model), { threads });
const sInput = await createSession(modelToBytes(asInputs.model), { threads });
const r = await interleave(
  [
    { name: 'weights as initializers', run: () => sInit.run({ [asInits.dataInput]: x }) },
    { name: 'weights as inputs', run: () => sInput.run({ [asInputs.dataInput]: x, ...wFeeds }) },
  ],
  { rounds: Number(a.rounds), warmup: 2 },
);
console.log(`# ${a.model} forward N=${N} threads=${threads}; load ${r.load.join(' ')}; other busy cores ${r.otherBusyCores}`);
for (const s of r.stats) console.log(`${s.name.padEnd(26)} wall med ${s.wallMedMs} ms  cpu med ${s.cpuMedMs} ms  (${round((N * 1000) / s.cpuMedMs, 2)} img/cpu-s)  n=${s.n}`);

// Is a per-step rebuild of a forward session (current weights as initializers, so ORT pre-packs them)
// affordable? Time serialising the model with fresh weights plus creating the session.
if (a.rebuild === 'true') {
  const creates: number[] = [];
  for (let k = 0; k < 3; k++) {
    const t0 = performance.now();
    const bytes = modelToBytes(asInits.model);
    const s = await createSession(bytes, { threads });
    creates.push(performance.now() - t0);
    await s.release();
  }
  console.log(`per-step rebuild of the forward session: serialise + create ${creates.map((c) => round(c)).join(', ')} ms`);
}
