/**
 * The four benchmarks: which measurements pair up (graft side, PyTorch side) and how their results read.
 */
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ensureBuiltin } from '../../src/models/builtins.js';
import type { BenchRecord, Job } from './jobs.js';
import { graftSide, torchSide } from './jobs.js';
import { emojiSet, photoSet } from './data.js';
import { OUT_DIR, type TrainConfig } from './models.js';
import { count, med, table, throughputTable } from './summary.js';
import { round } from './measure.js';

export interface SuiteOptions {
  threads: number[];
  quick: boolean;
}

export interface Suite {
  name: string;
  title: string;
  jobs(o: SuiteOptions): Promise<Job[]>;
  report(jobs: Job[], records: BenchRecord[]): string;
}

const timing = (o: SuiteOptions, warmup: number, iters: number, maxSeconds: number) =>
  o.quick ? { warmup: 1, iters: 3, maxSeconds: Math.min(maxSeconds, 15) } : { warmup, iters, maxSeconds };
const pyTiming = (t: { warmup: number; iters: number; maxSeconds: number }) => ['--warmup', t.warmup, '--iters', t.iters, '--max-seconds', t.maxSeconds];

const fmt = (x: number | undefined, digits = 2): string => (x === undefined ? '–' : String(round(x, digits)));

// ---------------------------------------------------------------------------------------------------------

export const inferSuite: Suite = {
  name: 'infer',
  title: 'Inference: ResNet-18 (same ONNX export), 224², graft Session vs PyTorch eval + inference_mode',
  async jobs(o) {
    const t = timing(o, 3, 10, 20);
    const jobs: Job[] = [
      {
        key: 'check',
        label: {},
        once: true,
        graft: graftSide({ kind: 'check' }),
        torch: torchSide('py/check.py', [], 2),
      },
    ];
    for (const threads of o.threads) {
      for (const batch of [1, 8, 32]) {
        jobs.push({
          key: `infer resnet18 b${batch} t${threads}`,
          label: { model: 'resnet18', input: 'tensor', batch, threads },
          graft: graftSide({ kind: 'infer', model: 'resnet18', mode: 'predict', batch, threads, size: 224, ...t }),
          torch: torchSide('torch/infer.py', ['--one', '--model', 'resnet18', '--mode', 'predict', '--batch', batch, '--threads', threads, ...pyTiming(t)], threads),
        });
      }
    }
    const n = o.quick ? 24 : 64;
    const dir = await photoSet(n);
    const passes = o.quick ? 1 : 3;
    for (const threads of o.threads) {
      jobs.push({
        key: `predict-files resnet18 b8 t${threads}`,
        label: { model: 'resnet18', input: `${n} JPEG files`, batch: 8, threads },
        graft: graftSide({ kind: 'predict-files', dir, model: 'resnet18', batch: 8, threads, passes, warmupImages: 16 }),
        torch: torchSide('py/predict_files.py', ['--dir', dir, '--model', 'resnet18', '--batch', 8, '--threads', threads, '--passes', passes], threads),
      });
    }
    return jobs;
  },
  report(jobs, records) {
    const checks = records.filter((r) => r.key === 'check');
    const checkRows = checks.map((r) => [String(r.framework), String(r.model), String(r.file ?? '(torch model rebuilt)'), String(r.max_abs_diff), String(r.same_top1 ?? '–')]);
    const tensor = jobs.filter((j) => j.key.startsWith('infer '));
    const files = jobs.filter((j) => j.key.startsWith('predict-files '));
    const own = files.map((j) => `${j.label.threads} thread(s): graft ${fmt(med(records, j.key, 'graft', 'own_cores'))}, PyTorch ${fmt(med(records, j.key, 'torch', 'own_cores'))}`);
    return [
      'Logits on the check batch vs the PyTorch logits stored at export (max |Δ|):',
      '',
      table(['side', 'model', 'file', 'max abs diff', 'same top-1'], checkRows),
      '',
      'Preprocessed tensors in, logits out (graft: a Session in the Runtime worker; PyTorch: model(x)):',
      '',
      throughputTable(tensor, records),
      '',
      'End to end from JPEG files (decode + resize 256 + center crop 224 + normalise + model + softmax/top-5). graft: `predict()` (sharp, batches prepared while the previous one runs); PyTorch: PIL + torchvision transforms + model in a plain loop:',
      '',
      throughputTable(files, records),
      '',
      `Cores actually used during the file runs (CPU time / wall time): ${own.join('; ')}. graft decodes on libuv's pool in parallel with the model, so its "threads" count ORT's intra-op threads only.`,
    ].join('\n');
  },
};

// ---------------------------------------------------------------------------------------------------------

export const featuresSuite: Suite = {
  name: 'features',
  title: 'Frozen feature extraction (backbone cut + global average pool), 224²',
  async jobs(o) {
    const t = timing(o, 2, 8, 25);
    const jobs: Job[] = [];
    const batch = 32;
    for (const threads of o.threads) {
      const g = (model: string, layer?: string) => graftSide({ kind: 'infer', model, mode: 'features', layer, batch, threads, size: 224, ...t });
      const inferPy = (model: string) =>
        torchSide('torch/infer.py', ['--one', '--model', model, '--mode', 'features', '--batch', batch, '--threads', threads, ...pyTiming(t)], threads);
      const cutPy = torchSide('py/features_cut.py', ['--batch', batch, '--threads', threads, ...pyTiming(t)], threads);
      jobs.push(
        { key: `features resnet18 t${threads}`, label: { backbone: 'resnet18 → 512 (before fc)', graft: 'same export', batch, threads }, graft: g('resnet18'), torch: inferPy('resnet18') },
        {
          key: `features mobilenet_v2-1280 t${threads}`,
          label: { backbone: 'mobilenet_v2 → 1280 (before classifier)', graft: 'same export', batch, threads },
          graft: g('mobilenet_v2'),
          torch: inferPy('mobilenet_v2'),
        },
        {
          key: `features mobilenet_v2-block13 t${threads}`,
          label: { backbone: 'mobilenet_v2 → 576 (block 13 expand)', graft: 'same export', batch, threads },
          graft: g('mobilenet_v2', 'block13'),
          torch: cutPy,
        },
        {
          key: `features builtin-mobilenet_v2 t${threads}`,
          label: { backbone: 'mobilenet_v2 → 576 (block 13 expand)', graft: 'builtin (nsfwjs import), default layer', batch, threads },
          graft: g('builtin:mobilenet_v2'),
          torch: cutPy,
        },
      );
    }
    return jobs;
  },
  report(jobs, records) {
    return [
      'Batch 32, preprocessed tensors in, pooled features out. graft: the cut backbone as `graft train` extracts it (src/graph/surgery cutAt + a Session in the Runtime); PyTorch: the same torchvision model truncated, eval + inference_mode. The builtin row runs graft\'s nsfwjs MobileNetV2 at its default feature layer (`block_13_expand_relu`) against torchvision\'s MobileNetV2 cut at the same block (`features[14].conv[0]`): same architecture and input size, different weights (PyTorch cannot load the Keras model) — speed does not depend on the weight values.',
      '',
      throughputTable(jobs, records),
    ].join('\n');
  },
};

// ---------------------------------------------------------------------------------------------------------

const TTA_CACHE = join(OUT_DIR, 'data', 'tta-cache');

/** A cache directory with the converted builtin in it but no features: a first `graft train` on this data. */
async function coldCache(withBuiltin: boolean): Promise<void> {
  rmSync(TTA_CACHE, { recursive: true, force: true });
  mkdirSync(join(TTA_CACHE, 'builtins'), { recursive: true });
  if (withBuiltin) {
    const { path } = await ensureBuiltin('mobilenet_v2');
    copyFileSync(path, join(TTA_CACHE, 'builtins', basename(path)));
  }
}

export const headSuite: Suite = {
  name: 'head',
  title: 'Scenario 2: head training on cached features, and time to accuracy from image files',
  async jobs(o) {
    const data = await emojiSet(100);
    const epochs = 100;
    const synth = { kind: 'head-synthetic', nTrain: 1000, nVal: 250, dim: 1280, classes: 5, epochs };
    const jobs: Job[] = [
      {
        key: 'head-synthetic dropout 0.2',
        label: { what: '1 000 × 1 280-d, 100 epochs, dropout 0.2 (default)' },
        graft: graftSide({ ...synth, dropout: 0.2 }),
        torch: torchSide('py/head_train.py', ['--n-train', 1000, '--n-val', 250, '--dim', 1280, '--classes', 5, '--epochs', epochs, '--threads', 1], 1),
      },
      { key: 'head-synthetic dropout 0', label: { what: '1 000 × 1 280-d, 100 epochs, dropout 0' }, graft: graftSide({ ...synth, dropout: 0 }) },
    ];
    jobs.push({
      key: 'tta first-run t2',
      label: { cache: 'empty (builtin conversion included)', threads: 2 },
      once: true,
      before: () => coldCache(false),
      graft: graftSide({ kind: 'tta', data, cacheDir: TTA_CACHE, cache: 'first', threads: 2, seed: 1 }),
    });
    for (const threads of o.threads) {
      jobs.push(
        {
          key: `tta cold t${threads}`,
          label: { cache: 'cold (no features cached)', threads },
          before: () => coldCache(true),
          graft: graftSide({ kind: 'tta', data, cacheDir: TTA_CACHE, cache: 'cold', threads, seed: 1 }),
        },
        { key: `tta warm t${threads}`, label: { cache: 'warm (features cached)', threads }, graft: graftSide({ kind: 'tta', data, cacheDir: TTA_CACHE, cache: 'warm', threads, seed: 1 }) },
      );
    }
    return jobs;
  },
  report(jobs, records) {
    const synth = jobs.filter((j) => j.key.startsWith('head-synthetic'));
    const synthRows = synth.map((j) => [
      String(j.label.what),
      fmt(med(records, j.key, 'graft', 'seconds')),
      fmt(med(records, j.key, 'graft', 'cpu_s')),
      fmt(med(records, j.key, 'graft', 'val_accuracy'), 3),
      fmt(med(records, j.key, 'torch', 'seconds')),
      fmt(med(records, j.key, 'torch', 'cpu_s')),
      fmt(med(records, j.key, 'torch', 'val_accuracy'), 3),
      `${count(records, j.key, 'graft')} / ${count(records, j.key, 'torch')}`,
    ]);
    const tta = jobs.filter((j) => j.key.startsWith('tta'));
    const g = (j: Job, f: string, d = 2) => fmt(med(records, j.key, 'graft', f), d);
    const ttaRows = tta.map((j) => [
      String(j.label.cache),
      String(j.label.threads),
      g(j, 'seconds'),
      g(j, 'cpu_s'),
      g(j, 'extraction_s'),
      g(j, 'head_s'),
      g(j, 'export_s'),
      g(j, 'val_accuracy', 3),
      g(j, 'epochs', 0),
      `${g(j, 'cache_hits', 0)} / ${g(j, 'extracted', 0)}`,
      g(j, 'loadavg_1m', 1),
      String(count(records, j.key, 'graft')),
    ]);
    const images = records.find((r) => r.bench === 'tta');
    return [
      'Head training alone (src/train/head-train.ts `trainHead`, the trainer worker, AdamW + one-cycle, batch 32, validation every epoch, no early stop) on synthetic features (Gaussian class clusters): 1 000 training rows + 250 validation rows of 1 280 dims, 5 classes. The PyTorch column is a reference loop with the same recipe (Dropout + Linear, AdamW, OneCycleLR), 1 thread.',
      '',
      table(['features', 'graft s', 'graft CPU-s', 'graft val acc', 'PyTorch s', 'PyTorch CPU-s', 'PyTorch val acc', 'n g / t'], synthRows),
      '',
      `Time to accuracy from image files: \`train({ mode: 'head' })\` (= \`graft train DATA --mode head\`, builtin mobilenet_v2 at its default layer, head defaults: 30 epochs max, early stopping patience 10) on ${images ? `${String(images.images)} images (${String(images.n_train)} train / ${String(images.n_val)} val)` : 'the emoji set'}, 4 emoji categories × 100 augmented 96 px PNGs made by test/helpers/emoji.ts. Whole run: listing, extraction, head training, export of model.onnx + metrics + report.html.`,
      '',
      table(['feature cache', 'threads', 'total s', 'CPU-s', 'extraction s', 'head s', 'export s', 'val accuracy', 'epochs', 'cache hits / extracted', 'load 1m', 'n'], ttaRows),
    ].join('\n');
  },
};

// ---------------------------------------------------------------------------------------------------------

export interface TrainRow {
  model: 'resnet18' | 'mobilenet_v2';
  config: TrainConfig;
  bn: 'frozen' | 'train';
  torchConfig: string;
  target?: string;
}

export const TRAIN_ROWS: readonly TrainRow[] = [
  { model: 'resnet18', config: 'full', bn: 'frozen', torchConfig: 'full-bneval', target: '≥ 1.0×' },
  { model: 'resnet18', config: 'last-stage', bn: 'frozen', torchConfig: 'last-stage', target: '≥ 2×' },
  { model: 'resnet18', config: 'last-stage-cached', bn: 'frozen', torchConfig: 'last-stage', target: '≥ 2×' },
  { model: 'resnet18', config: 'head', bn: 'frozen', torchConfig: 'head' },
  { model: 'resnet18', config: 'full', bn: 'train', torchConfig: 'full-bntrain' },
  { model: 'mobilenet_v2', config: 'full', bn: 'frozen', torchConfig: 'full-bneval', target: '≥ 1.0×' },
];

/** A fine-tuning row's name, as in its job key (`--only`) and paired.ts's `--row`: "resnet18 full bn-frozen". */
export const trainRowName = (r: TrainRow): string => `${r.model} ${r.config} bn-${r.bn}`;

/** Both sides of a fine-tuning row; `lockstep`: one step per `step` line on stdin (bench/finetune/paired.ts). */
export function trainSides(r: TrainRow, threads: number, t: { warmup: number; iters: number; maxSeconds: number }, lockstep = false): Required<Pick<Job, 'graft' | 'torch'>> {
  return {
    graft: graftSide({ kind: 'train', model: r.model, config: r.config, batchNorm: r.bn, batch: 16, threads, size: 224, classes: 10, ...t, ...(lockstep ? { lockstep } : {}) }),
    torch: torchSide(
      'torch/train.py',
      ['--one', '--model', r.model, '--config', r.torchConfig, '--batch', 16, '--threads', threads, '--classes', 10, '--optimizer', 'adamw', ...pyTiming(t), ...(lockstep ? ['--lockstep'] : [])],
      threads,
    ),
  };
}

export const finetuneSuite: Suite = {
  name: 'finetune',
  title: 'Fine-tuning: training steps, batch 16, 224², AdamW, same weights and batch',
  async jobs(o) {
    const t = timing(o, 2, 6, 40);
    const jobs: Job[] = [];
    for (const threads of o.threads) {
      for (const r of TRAIN_ROWS) {
        jobs.push({
          key: `train ${trainRowName(r)} t${threads}`,
          label: { model: r.model, trainable: r.config === 'last-stage-cached' ? 'last-stage, prefix cached' : r.config, BN: r.bn === 'frozen' ? 'frozen (eval)' : 'batch stats (train)', threads, target: r.target ?? '' },
          ...trainSides(r, threads, t),
        });
      }
    }
    return jobs;
  },
  report(jobs, records) {
    const params = jobs.map((j) => {
      const g = med(records, j.key, 'graft', 'trainable_params');
      const tp = med(records, j.key, 'torch', 'trainable_params');
      return `${String(j.label.model)} ${String(j.label.trainable)}: ${g ?? '?'} / ${tp ?? '?'}`;
    });
    const setup = jobs
      .filter((j) => j.label.threads === jobs[0]?.label.threads)
      .map((j) => `${String(j.label.model)} ${String(j.label.trainable)} BN ${String(j.label.BN).split(' ')[0]}: compile ${fmt(med(records, j.key, 'graft', 'compile_s'))} s + sessions ${fmt(med(records, j.key, 'graft', 'session_s'))} s, ${fmt(med(records, j.key, 'graft', 'graph_nodes'), 0)} nodes`);
    return [
      'One step = forward + backward + AdamW update (lr 1e-3, weight decay 1e-2) of the trainable parameters on a fixed batch of 16 (fixture PRNG, identical on both sides), new 10-class head. graft: `buildTrainStep` on bench/out/<model>.onnx (BN nodes kept) cut before its classifier + a new head (as `graft train --mode finetune` builds it), run by the trainer worker task (ORT session + in-place AdamW in the worker), each batch transferred to it as `graft train` sends batches; PyTorch 1.13: bench/torch/train.py (BN frozen = `model.eval()` with gradients on; BN train = BN layers in `train()`). Median step time over the timed steps of each process, median over rounds.',
      '',
      throughputTable(jobs, records),
      '',
      `Trainable parameters (graft / PyTorch): ${[...new Set(params)].join('; ')}.`,
      '',
      `graft setup per process (not in the step times): ${setup.join('; ')}.`,
    ].join('\n');
  },
};

export const SUITES: Record<string, Suite> = { infer: inferSuite, features: featuresSuite, head: headSuite, finetune: finetuneSuite };
