/**
 * Scenario 2's speed (issue 3), one measurement per process:
 * - `head-synthetic`: head training alone on cached features (src/train/head-train.ts trainHead, as
 *   `graft train --mode head` calls it after extraction): 1 000 × 1 280-d features, 100 epochs, no early stop;
 * - `tta`: time to accuracy from raw image files, `train({ mode: 'head' })` (what `graft train DATA` runs)
 *   end to end — list + split, feature extraction (decode + backbone), head training, export with
 *   report — against a cache directory whose feature store is empty (cold) or filled by an earlier run (warm).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runtime } from '../../src/runtime/index.js';
import { trainHead } from '../../src/train/head-train.js';
import type { FeatureSet } from '../../src/train/feature-source.js';
import { HEAD_DEFAULTS, train, type TrainEvent } from '../../src/train/train.js';
import { createRng } from '../../src/util/random.js';
import { emit, round, Span } from '../lib/measure.js';

export interface HeadSyntheticArgs {
  nTrain: number;
  nVal: number;
  dim: number;
  classes: number;
  epochs: number;
  /** Head dropout (default: graft's head-mode default, 0.2). */
  dropout?: number;
}

/** Gaussian class clusters (unit noise, class means ~N(0, 0.15²) per dimension): separable, not trivially. */
function synthetic(n: number, dim: number, classes: number, means: Float32Array, seed: number): FeatureSet {
  const rng = createRng(seed);
  const features = new Float32Array(n * dim);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const k = i % classes;
    labels[i] = k;
    for (let d = 0; d < dim; d++) {
      // Box–Muller
      const g = Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
      features[i * dim + d] = Math.max(0, means[k * dim + d] + g);
    }
  }
  return { features, labels, dim };
}

export async function measureHeadSynthetic(a: HeadSyntheticArgs): Promise<void> {
  const rng = createRng(7);
  const means = Float32Array.from({ length: a.classes * a.dim }, () => 0.5 + 0.3 * (rng.next() - 0.5));
  const trainSet = synthetic(a.nTrain, a.dim, a.classes, means, 1);
  const valSet = a.nVal ? synthetic(a.nVal, a.dim, a.classes, means, 2) : undefined;
  const runtime = await Runtime.create({ threads: 1 });
  try {
    const d = HEAD_DEFAULTS;
    const span = new Span();
    const r = await trainHead(trainSet, valSet, a.classes, {
      runtime,
      epochs: a.epochs,
      batchSize: d.batchSize,
      lr: d.lr,
      optimizer: d.optimizer,
      weightDecay: d.weightDecay,
      schedule: d.schedule,
      labelSmoothing: d.labelSmoothing,
      dropout: a.dropout ?? d.dropout,
      patience: 0,
      seed: 0,
    });
    const s = span.end();
    const last = r.fit.history[r.fit.history.length - 1];
    emit({
      bench: 'head-synthetic',
      n_train: a.nTrain,
      n_val: a.nVal,
      dim: a.dim,
      classes: a.classes,
      epochs: r.fit.history.length,
      batch: d.batchSize,
      dropout: a.dropout ?? d.dropout,
      seconds: s.wall_s,
      cpu_s: s.cpu_s,
      ms_per_epoch: round((s.wall_s * 1000) / r.fit.history.length, 1),
      own_cores: s.own_cores,
      other_busy_cores: s.other_busy_cores,
      val_accuracy: last?.valAccuracy ?? null,
    });
  } finally {
    await runtime.close();
  }
}

export interface TtaArgs {
  data: string;
  cacheDir: string;
  /** A label for the cache state this run expects ('cold' | 'warm'); the run reports what it found. */
  cache: string;
  threads: number;
  seed: number;
}

export async function measureTta(a: TtaArgs): Promise<void> {
  const out = join(mkdtempSync(join(tmpdir(), 'graft-bench-tta-')), 'out');
  const marks: Record<string, number> = {};
  let hits = 0;
  let extracted = 0;
  let epochs = 0;
  const span = new Span();
  const t0 = performance.now();
  const mark = (k: string) => (marks[k] = round((performance.now() - t0) / 1000, 3));
  try {
    const result = await train({
      data: a.data,
      out,
      mode: 'head',
      cacheDir: a.cacheDir,
      offline: true,
      threads: a.threads,
      seed: a.seed,
      onEvent: (e: TrainEvent) => {
        if (e.type === 'dataset') mark('listed_s');
        else if (e.type === 'features') {
          marks.features_done_s ??= 0;
          mark('features_done_s');
          hits = e.progress.hits;
          extracted = e.progress.extracted;
        } else if (e.type === 'epoch') {
          marks.first_epoch_s ??= round((performance.now() - t0) / 1000, 3);
          mark('last_epoch_s');
          epochs++;
        } else if (e.type === 'exported') mark('exported_s');
      },
    });
    const s = span.end();
    const m = result.metrics;
    emit({
      bench: 'tta',
      cache: a.cache,
      threads: a.threads,
      images: m.n.train + m.n.val,
      n_train: m.n.train,
      n_val: m.n.val,
      classes: m.classes.length,
      feature_layer: m.featureLayer,
      cache_hits: hits,
      extracted,
      epochs,
      best_epoch: m.bestEpoch,
      val_accuracy: m.accuracy,
      seconds: s.wall_s,
      cpu_s: s.cpu_s,
      own_cores: s.own_cores,
      other_busy_cores: s.other_busy_cores,
      // phases: listing + split, extraction (until the last progress event), head training, export + report
      extraction_s: round((marks.features_done_s ?? 0) - (marks.listed_s ?? 0), 3),
      head_s: round((marks.last_epoch_s ?? 0) - (marks.features_done_s ?? 0), 3),
      export_s: round((marks.exported_s ?? 0) - (marks.last_epoch_s ?? 0), 3),
      ...marks,
    });
  } finally {
    rmSync(join(out, '..'), { recursive: true, force: true });
  }
}
