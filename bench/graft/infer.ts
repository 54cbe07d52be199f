/**
 * graft's inference measurements (one per process, like bench/torch/infer.py):
 * - `infer`: an ORT session in the Runtime's worker thread fed a preprocessed float batch: the whole
 *   classifier (`predict`) or a backbone cut at a feature value and pooled (`features`, what
 *   src/train/features.ts runs over a data set);
 * - `predict-files`: the end-to-end `predict()` over JPEG files (decode + resize + crop + normalise with
 *   sharp, batched and overlapped with the model), the same files PyTorch reads with PIL;
 * - `check`: the exported models' logits in graft vs PyTorch's (models.json), so both sides run one model.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { modelToBytes, loadModel } from '../../src/graph/serialize.js';
import type { Model } from '../../src/graph/graph.js';
import { resolveModel } from '../../src/models/sources.js';
import { Runtime } from '../../src/runtime/index.js';
import { openClassifier } from '../../src/tasks/classifier.js';
import { predict } from '../../src/tasks/predict.js';
import { chooseFeatureLayer, preparedBackbone } from '../../src/train/train.js';
import { fill } from '../../test/fixtures/prng.js';
import { emit, round, Span, timedLoop, median, type LoopOptions } from '../lib/measure.js';
import { cutBackbone, MOBILENET_BLOCK13_EXPAND, modelsJson, onnxPath, type TorchModel } from '../lib/models.js';

export interface InferArgs extends LoopOptions {
  /** resnet18 | mobilenet_v2 (bench/out exports) | builtin:mobilenet_v2 (graft's nsfwjs import). */
  model: string;
  mode: 'predict' | 'features';
  /** features: 'default' (before the classifier's pooling; for builtins their default feature layer) or 'block13' (mobilenet_v2 block_13_expand_relu). */
  layer?: 'default' | 'block13';
  batch: number;
  threads: number;
  size: number;
}

async function graphFor(a: InferArgs): Promise<{ model: Model; layer: string }> {
  if (a.model.startsWith('builtin:')) {
    const resolved = await resolveModel(a.model.slice('builtin:'.length));
    if (a.mode === 'predict') return { model: resolved.model, layer: '(whole model)' };
    // exactly what `graft train` extracts: the builtin's default feature layer, cut and pooled
    const layer = chooseFeatureLayer(resolved);
    return { model: preparedBackbone(resolved, layer, undefined).backbone, layer };
  }
  const model = loadModel(onnxPath(a.model as TorchModel));
  if (a.mode === 'predict') return { model, layer: '(whole model)' };
  const value = a.layer === 'block13' ? MOBILENET_BLOCK13_EXPAND : undefined;
  const backbone = cutBackbone(model, value);
  return { model: backbone, layer: value ?? 'before pooling' };
}

export async function measureInfer(a: InferArgs): Promise<void> {
  const runtime = await Runtime.create({ threads: a.threads });
  try {
    const { model, layer } = await graphFor(a);
    const session = await runtime.load(modelToBytes(model), { name: a.model });
    const input = session.inputs[0].name;
    const output = session.outputs[0].name;
    const data = fill(0, [a.batch, 3, a.size, a.size], -2, 2);
    const x = { dtype: 'float32' as const, dims: [a.batch, 3, a.size, a.size], data };
    let outDim = 0;
    const step = async () => {
      const out = await session.run({ [input]: x }, { fetches: [output] });
      outDim = out[output].dims[1];
    };
    const r = await timedLoop(step, a.batch, a);
    emit({ bench: 'infer', model: a.model, mode: a.mode, layer, out_dim: outDim, batch: a.batch, size: a.size, threads: a.threads, ...r });
    await session.release();
  } finally {
    await runtime.close();
  }
}

export interface PredictFilesArgs {
  dir: string;
  model: TorchModel;
  batch: number;
  threads: number;
  /** Timed passes over every file; the median pass is reported. */
  passes: number;
  warmupImages: number;
}

export async function measurePredictFiles(a: PredictFilesArgs): Promise<void> {
  const files = readdirSync(a.dir)
    .filter((f) => f.endsWith('.jpg'))
    .sort()
    .map((f) => join(a.dir, f));
  // the classifier's own runtime with `threads` intra-op threads; sharp decodes on libuv's pool meanwhile
  const classifier = await openClassifier(onnxPath(a.model), { threads: a.threads });
  try {
    const pass = async (paths: string[]) => {
      let ok = 0;
      for await (const r of predict(paths, { classifier, batchSize: a.batch, topK: 5 })) if ('predictions' in r) ok++;
      if (ok !== paths.length) throw new Error(`only ${ok} of ${paths.length} images classified`);
    };
    await pass(files.slice(0, a.warmupImages));
    const walls: number[] = [];
    const cpus: number[] = [];
    const spans = [];
    for (let i = 0; i < a.passes; i++) {
      const s = new Span();
      await pass(files);
      const e = s.end();
      spans.push(e);
      walls.push(e.wall_s);
      cpus.push(e.cpu_s);
    }
    const n = files.length;
    const wall = median(walls);
    const cpu = median(cpus);
    emit({
      bench: 'predict-files',
      model: a.model,
      images: n,
      batch: a.batch,
      threads: a.threads,
      passes: a.passes,
      median_s: round(wall, 3),
      img_s: round(n / wall),
      cpu_s_per_img: round(cpu / n, 5),
      img_per_cpu_s: round(n / cpu),
      own_cores: round(median(spans.map((s) => s.own_cores))),
      other_busy_cores: round(median(spans.map((s) => s.other_busy_cores))),
      preprocess: classifier.preprocess,
    });
  } finally {
    await classifier.close();
  }
}

/** graft (ORT) logits of every export vs the PyTorch logits export_models.py stored. */
export async function checkLogits(): Promise<void> {
  const meta = modelsJson();
  const runtime = await Runtime.create({ threads: 2 });
  try {
    for (const [name, m] of Object.entries(meta)) {
      const { seed, dims, lo, hi } = m.check.input;
      const x = { dtype: 'float32' as const, dims, data: fill(seed, dims, lo, hi) };
      for (const file of [m.bn.file, m.bnfolded.file]) {
        const session = await runtime.load(join(onnxPath(name as TorchModel), '..', file));
        const out = (await session.run({ [m.input]: x }))[m.output].data as Float32Array;
        let maxAbs = 0;
        let maxRef = 0;
        for (let i = 0; i < out.length; i++) {
          maxAbs = Math.max(maxAbs, Math.abs(out[i] - m.check.logits[i]));
          maxRef = Math.max(maxRef, Math.abs(m.check.logits[i]));
        }
        const top1 = (a: ArrayLike<number>, r: number) => {
          let best = 0;
          for (let k = 1; k < 1000; k++) if (a[r * 1000 + k] > a[r * 1000 + best]) best = k;
          return best;
        };
        const sameTop1 = [0, 1].every((r) => top1(out, r) === top1(m.check.logits, r));
        emit({ bench: 'check', model: name, file, max_abs_diff: maxAbs, max_abs_logit: round(maxRef, 3), rel: maxAbs / maxRef, same_top1: sameTop1 });
        await session.release();
      }
    }
  } finally {
    await runtime.close();
  }
}
