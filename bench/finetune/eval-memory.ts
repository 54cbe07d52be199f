/**
 * What a trainer's evaluation session costs in memory, by images per run: the evaluation graph
 * (buildEvalStep, weights fed as inputs, as src/train/trainer.task.ts runs it) on 2 threads, one process
 * per run size (ORT's arena keeps its largest size, so each size needs a fresh process). Prints the RSS
 * the first run added (the arena that stays for the rest of training) and the time per image over the
 * following runs (median of `--rounds`).
 *
 *   npx tsx bench/finetune/eval-memory.ts [--models nsfw_mobilenet_v2,resnet18] [--chunks 16,8,4,2] [--images 64] [--rounds 3]
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { buildEvalStep } from '../../src/autodiff/train-step.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { nchwcBlockSize } from '../../src/runtime/nchwc-probe.js';
import { args, benchModel, createSession, median, randomFloats, round, trainableOf, type BenchModelName } from './common.js';

const rssMb = () => process.memoryUsage.rss() / 2 ** 20;

/** One process: one model, one run size. */
async function measure(model: BenchModelName, chunk: number, images: number, rounds: number): Promise<Record<string, unknown>> {
  const m = await benchModel(model);
  const ev = buildEvalStep(m.model, { trainable: trainableOf(m, 'full'), nchwcBlock: await nchwcBlockSize() });
  const session = await createSession(modelToBytes(ev.model), { threads: 2 });
  const feeds: Record<string, ort.Tensor> = {};
  for (const p of ev.params) feeds[p.name] = new ort.Tensor('float32', Float32Array.from(m.model.graph.initializers.get(p.name)!.data as Float32Array), p.dims);
  feeds[ev.dataInput] = new ort.Tensor('float32', randomFloats(chunk * m.inputDims.reduce((a, b) => a * b, 1), 7, -2, 2), [chunk, ...m.inputDims]);
  const before = rssMb();
  await session.run(feeds);
  const arenaMb = rssMb() - before;
  const perImage: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let done = 0; done < images; done += chunk) await session.run(feeds);
    perImage.push((performance.now() - t0) / images);
  }
  return { model, chunk, firstRunRssMb: Math.round(arenaMb), msPerImage: round(median(perImage)) };
}

const a = args({ models: 'nsfw_mobilenet_v2,resnet18', chunks: '16,8,4,2', images: '64', rounds: '3', one: '' });
if (a.one) {
  const [model, chunk] = a.one.split(':');
  console.log(JSON.stringify(await measure(model as BenchModelName, Number(chunk), Number(a.images), Number(a.rounds))));
} else {
  const self = fileURLToPath(import.meta.url);
  console.log('model\timages per run\tRSS added by the first run (MB)\tms per image');
  for (const model of a.models.split(',')) {
    for (const chunk of a.chunks.split(',')) {
      const out = execFileSync(process.execPath, ['--import', 'tsx', self, '--one', `${model}:${chunk}`, '--images', a.images, '--rounds', a.rounds], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      const r = JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
      console.log(`${r.model}\t${r.chunk}\t${r.firstRunRssMb}\t${r.msPerImage}`);
    }
  }
}
