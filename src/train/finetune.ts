/**
 * Scenario 3, fastai's fine_tune made of the mid-level pieces: (1) warm the new head up on cached
 * features of the frozen backbone (seconds), (2) unfreeze the last N stages (or all) and train backbone
 * and head together through a compiled training-step graph, with augmentation, discriminative learning
 * rates (earlier stages slower) and a one-cycle schedule. Checkpoints every epoch (and on interrupt) make
 * `--resume` continue exactly; the best epoch by validation loss is exported with BatchNorm folded.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { buildEvalStep, buildTrainStep } from '../autodiff/train-step.js';
import { DEFAULT_AUGMENT, type AugmentConfig } from '../data/augment.js';
import { classWeights as balancedWeights } from '../data/split.js';
import { GraftError, isGraftError } from '../errors.js';
import { GraphBuilder } from '../graph/builder.js';
import { compose } from '../graph/compose.js';
import type { Model } from '../graph/graph.js';
import { inferShapes } from '../graph/shapes.js';
import { cutAt, tailFrom } from '../graph/surgery.js';
import type { PreprocessConfig } from '../models/preprocess.js';
import { writeReport } from '../report/index.js';
import { Runtime, type TaskHandle } from '../runtime/index.js';
import { removeQuietly, atomicWriteFile } from '../util/fs.js';
import { GRAFT_VERSION } from '../version.js';
import { checkpointExists, fingerprint, loadCheckpoint, removeCheckpoint, saveCheckpoint, type Checkpoint } from './checkpoint.js';
import { checkOutputDir, exportClassifier, saveClassifier } from './export.js';
import { backboneFeatures, featureDim } from './features.js';
import { evaluateWith, fit, type BatchSource, type TrainerMethods } from './fit.js';
import { buildHead, STANDARDIZE_INV_STD, STANDARDIZE_MEAN, type Head, type Standardizer } from './head.js';
import { decayGroups, trainHead } from './head-train.js';
import { compiledSteps, restoreTransfer, TRAINER_TASK, trainerInitTransfer, weightCopies } from './trainer.js';
import { featureSource, type FeatureSet } from './feature-source.js';
import { imageSource, type ImageItem } from './image-source.js';
import { lrFind, type LrFindResult } from './lr-find.js';
import { classificationMetrics } from './metrics.js';
import { buildMetricsJson, writeMetricsJson, type EpochRecord, type JsonValue, type SkippedFile } from './metrics-json.js';
import type { ParamGroup } from './optim.js';
import type { ScheduleConfig } from './schedule.js';
import { parseUnfreeze, stagesOf, unfrozenStages, type Unfreeze } from './stages.js';
import type { TrainerInit, TrainerState } from './trainer.task.js';
import { featureExtraction, modelAndData, type TrainEvent, type TrainOptions, type TrainResult } from './train.js';

export interface FinetuneOptions {
  /** 'all' (default) or the number of trailing stages to train (0 = head only, end to end on images). */
  unfreeze?: Unfreeze | string;
  /** Head warm-up epochs on cached features before unfreezing (fastai's freeze_epochs). */
  warmupEpochs?: number;
  /** The earliest unfrozen stage learns lrMult× slower than the head, the last √lrMult× (see stageLrScales). */
  lrMult?: number;
  lrFind?: boolean;
  augment?: AugmentConfig | false;
  clipGrad?: number;
  batchNorm?: 'frozen' | 'train';
  resume?: boolean;
  /**
   * Without augmentation and with frozen stages, compute the frozen prefix's output once per image and
   * train only the rest (default true): the same result, without re-running the prefix every epoch.
   */
  cachePrefix?: boolean;
}

export const FINETUNE_DEFAULTS = {
  epochs: 10,
  batchSize: 16,
  lr: 1e-3,
  weightDecay: 1e-2,
  dropout: 0.2,
  labelSmoothing: 0,
  warmupEpochs: 3,
  lrMult: 100,
  patience: 0,
  seed: 0,
  pctStart: 0.3,
};

/**
 * Learning-rate multipliers of m unfrozen stages, earliest first: geometric from 1/lrMult to 1/√lrMult,
 * the head learning at 1 — fastai's fine_tune, whose slice(lr/lr_mult, lr) gives the body's two halves
 * lr/100 and lr/10 and the head lr. The stage next to the head at lr/√lrMult, not nearly lr: measured on
 * emoji, MobileNetV2 fine-tuned from its pooled features collapsed to chance with that stage at 0.7·lr.
 */
export function stageLrScales(m: number, lrMult: number): number[] {
  return Array.from({ length: m }, (_, k) => lrMult ** (m > 1 ? -1 + k / (2 * (m - 1)) : -0.5));
}

/** Parameter groups: one per unfrozen stage (rates from stageLrScales) and the head. */
function stageGroups(stageParams: string[][], headParams: string[], dims: ReadonlyMap<string, readonly number[]>, lrMult: number): ParamGroup[] {
  const scales = stageLrScales(stageParams.length, lrMult);
  const groups: ParamGroup[] = [];
  stageParams.forEach((params, k) => groups.push(...decayGroups(params, dims, scales[k])));
  groups.push(...decayGroups(headParams, dims, 1));
  return groups;
}

export async function finetune(o: TrainOptions & FinetuneOptions): Promise<TrainResult & { lrFind?: LrFindResult }> {
  const t0 = performance.now();
  const out = resolve(o.out);
  const emit = o.onEvent ?? (() => undefined);
  if (o.resume) {
    if (!checkpointExists(out)) throw new GraftError('CHECKPOINT_INVALID', `there is no checkpoint in ${out} to resume. Run without --resume to start.`, { subject: out });
  } else {
    checkOutputDir(out, !!o.overwrite);
    removeQuietly(out);
  }
  mkdirSync(out, { recursive: true });

  const runtime = o.runtime ?? (await Runtime.create({ threads: o.threads }));
  let trainer: TaskHandle<TrainerMethods> | undefined;
  try {
    const run = await prepareRun(o, out, runtime, emit);
    const { spec, layer, preprocess, classes, K, settings, fp, ckpt, skipped, trainItems, warmupWeights, full, source, init, baseLr } = run;
    const { unfreeze, epochs, warmupEpochs } = settings;
    const schedule = (lr: number) => scheduleOf(o, epochs * source.trainBatches, lr);
    let history = run.history;
    trainer = (await runtime.loadTask(TRAINER_TASK, init as never, { transfer: trainerInitTransfer(init) })) as unknown as TaskHandle<TrainerMethods>;

    let found: LrFindResult | undefined;
    let lr = baseLr;
    if (ckpt?.phase === 'finetune') {
      // moved, not cloned: the checkpoint's tensors (four times the weights under AdamW) would otherwise
      // stay reachable from `ckpt` here for the whole run
      const restored = { ...ckpt.state, best: ckpt.bestWeights };
      await trainer.call('restore', restored as never, restoreTransfer(restored));
      lr = (ckpt.extra?.lr as number | undefined) ?? lr;
      await trainer.call('setSchedule', schedule(lr) as never);
      history = ckpt.history;
    } else if (o.lrFind) {
      found = await lrFind({ trainer, source, schedule: schedule(lr), signal: o.signal });
      lr = found.suggestion;
      await trainer.call('setSchedule', schedule(lr) as never);
    }
    const extra = () => ({ lr, skipped: [...skipped.values()], ...(found ? { lrFind: found } : {}) });
    // the head's warm-up is over: until the first fine-tuning epoch, a resumed run starts from here
    if (!ckpt) saveCheckpoint(out, fp, { phase: 'warmup', epoch: 0, step: 0, history, state: { weights: {}, optimizer: { step: 0, buffers: {} } }, warmupWeights, extra: extra() });
    const resumed = ckpt?.phase === 'finetune' ? ckpt : undefined;
    const worker = trainer; // set for good here: the checkpoint callback below takes it as a const
    const result = await fit({
      trainer,
      source,
      numClasses: K,
      epochs,
      startEpoch: resumed?.epoch ?? 0,
      startStep: resumed?.step ?? 0,
      partial: resumed?.partial,
      history,
      best: resumed?.bestWeights ? resumed.best : undefined,
      patience: settings.patience,
      phase: 'finetune',
      epochOffset: history.filter((r) => r.phase === 'head').length,
      signal: o.signal,
      onEpoch: (record) => emit({ type: 'epoch', record, epochs: warmupEpochs + epochs }),
      // written by the worker, from its own arrays
      checkpoint: async (c) => {
        await worker.call('checkpoint', {
          out,
          fingerprint: fp,
          progress: { phase: 'finetune', epoch: c.epoch, step: c.step, partial: c.partial, history: c.history, best: c.best, extra: extra() },
          warmupWeights,
        } as never);
      },
    });

    // the best epoch's weights (the last's if none was kept): evaluate them on the validation set and export them
    if (result.best) await trainer.call('useBest', undefined as never);
    const val = await evaluateWith(trainer, source, K, o.signal);
    const best = (await trainer.call('bestWeights', undefined as never)) as Record<string, Float32Array> | undefined;
    full.graph.setWeights(best ?? ((await trainer.call('state', undefined as never)) as TrainerState).weights);
    const exported = exportClassifier(full, {
      labels: classes,
      preprocess,
      info: { 'graft.mode': 'finetune', 'graft.source_model': spec, 'graft.feature_layer': layer, 'graft.unfreeze': String(unfreeze), 'graft.version': GRAFT_VERSION },
    });
    const metrics = buildMetricsJson({
      mode: 'finetune',
      model: spec,
      featureLayer: layer,
      classes,
      n: { train: trainItems.filter((i) => !skipped.has(i.path)).length, val: val?.labels.length ?? 0 },
      val: val ? classificationMetrics(val.logits, val.labels, K, { logits: true }) : null,
      valPaths: val?.paths,
      history: result.history,
      bestEpoch: result.best?.epoch ?? null,
      seconds: (performance.now() - t0) / 1000,
      skipped: [...skipped.values()],
      config: { ...settings, lr, unfreeze: String(unfreeze), warmupEpochs, gradClip: settings.clipGrad },
      ...(found ? { lrFind: found } : {}),
      graftVersion: GRAFT_VERSION,
    });
    saveClassifier(out, exported, classes);
    writeMetricsJson(out, metrics);
    await writeReport(out, metrics);
    if (found) atomicWriteFile(resolve(out, 'lr-find.json'), JSON.stringify(found, null, 1));
    removeCheckpoint(out);
    emit({ type: 'exported', out });
    return { out, metrics, ...(found ? { lrFind: found } : {}) };
  } finally {
    await trainer?.dispose();
    if (!o.runtime) await runtime.close();
  }
}

/** The learning-rate schedule over the whole fine-tuning phase, peaking at `lr`. */
function scheduleOf(o: TrainOptions, totalSteps: number, lr: number): ScheduleConfig {
  return { name: o.schedule ?? 'one-cycle', lr, totalSteps, pctStart: FINETUNE_DEFAULTS.pctStart };
}

/** Augmentation as asked for: the default unless turned off. */
function augmentOf(o: FinetuneOptions): AugmentConfig | undefined {
  return o.augment === false ? undefined : (o.augment ?? DEFAULT_AUGMENT);
}

/** The run's settings with defaults filled in, as the checkpoint's fingerprint and metrics.json record them. */
function finetuneSettings(o: TrainOptions & FinetuneOptions) {
  const d = FINETUNE_DEFAULTS;
  const augment = augmentOf(o);
  return {
    unfreeze: parseUnfreeze(o.unfreeze),
    epochs: o.epochs ?? d.epochs,
    warmupEpochs: o.warmupEpochs ?? d.warmupEpochs,
    batchSize: o.batchSize ?? d.batchSize,
    lr: o.lrFind ? 'find' : (o.lr ?? d.lr),
    lrMult: o.lrMult ?? d.lrMult,
    optimizer: o.optimizer ?? 'adamw',
    weightDecay: o.weightDecay ?? d.weightDecay,
    ...(o.momentum !== undefined ? { momentum: o.momentum } : {}),
    labelSmoothing: o.labelSmoothing ?? d.labelSmoothing,
    hidden: o.hidden ?? null,
    dropout: o.dropout ?? d.dropout,
    classWeights: o.classWeights ?? 'none',
    patience: o.patience ?? d.patience,
    seed: o.seed ?? d.seed,
    augment: augment ? (JSON.parse(JSON.stringify(augment)) as JsonValue) : null,
    clipGrad: o.clipGrad ?? null,
    batchNorm: o.batchNorm ?? 'frozen',
  };
}

type FinetuneSettings = ReturnType<typeof finetuneSettings>;

/** What fine-tuning needs once its trainer is set up (the big pieces: the trainer's init, moved to it). */
interface RunPlan {
  spec: string;
  layer: string;
  preprocess: PreprocessConfig;
  classes: string[];
  K: number;
  settings: FinetuneSettings;
  fp: string;
  ckpt?: Checkpoint;
  history: EpochRecord[];
  skipped: Map<string, SkippedFile>;
  trainItems: ImageItem[];
  warmupWeights: Record<string, Float32Array>;
  /** The composed classifier without the values the trainer owns (export writes the best epoch's in). */
  full: Model;
  source: BatchSource;
  init: TrainerInit;
  baseLr: number;
}

/**
 * Everything before the fine-tuning loop: the model and data, the head's warm-up, the compiled training
 * step and the trainer's init. In a function of its own so that what only this needs — the resolved
 * model, the backbone, the compiled steps — is garbage once it returns, rather than held by the caller's
 * frame for the whole run (InceptionV3: 140 MB).
 */
async function prepareRun(o: TrainOptions & FinetuneOptions, out: string, runtime: Runtime, emit: (e: TrainEvent) => void): Promise<RunPlan> {
  const d = FINETUNE_DEFAULTS;
  const { spec, resolved, layer, backbone, preprocess, data, classes } = await modelAndData(o, emit);
  const K = classes.length;

  const settings = finetuneSettings(o);
  const { unfreeze, epochs, warmupEpochs, batchSize, seed } = settings;
  const augment = augmentOf(o);
  const items = (ds: typeof data.train | undefined) => (ds?.items ?? []).map((i) => ({ path: i.path, label: i.label }));
  const fp = fingerprint({ model: resolved.id, layer, preprocess, classes, train: items(data.train), val: items(data.val), settings });
  const ckpt: Checkpoint | undefined = o.resume ? loadCheckpoint(out, fp) : undefined;
  const cw = o.classWeights === 'auto' ? Float32Array.from(balancedWeights(data.train, 'auto')) : undefined;

  // ---- phase 1: the head on cached features of the frozen backbone
  // The warm-up trains the head behind a standardisation of the features; fine-tuning keeps it in the
  // graph (see HeadSpec.standardize), restored from the checkpoint on --resume
  const headSpec = { inputDim: featureDim(backbone), numClasses: K, hidden: o.hidden, dropout: settings.dropout, seed };
  /** The head behind `scaling`, with `weights` (else its seeded initialisation). */
  const headWith = (scaling: Standardizer | undefined, weights?: Record<string, Float32Array>): Head => {
    const h = buildHead({ ...headSpec, ...(scaling ? { standardize: scaling } : {}) });
    if (weights) h.model.graph.setWeights(weights, h.params);
    return h;
  };
  let head: Head;
  let history: EpochRecord[] = [];
  const skipped = new Map<string, SkippedFile>();
  let trainItems: ImageItem[] = items(data.train);
  let valItems: ImageItem[] = items(data.val);
  if (ckpt?.warmupWeights) {
    const w = ckpt.warmupWeights;
    head = headWith(w[STANDARDIZE_MEAN] && { mean: w[STANDARDIZE_MEAN], invStd: w[STANDARDIZE_INV_STD] }, w);
    for (const s of (ckpt.extra?.skipped as SkippedFile[] | undefined) ?? []) skipped.set(s.path, s);
    history = ckpt.history.filter((r) => r.phase === 'head');
  } else if (warmupEpochs > 0) {
    const all = [...trainItems, ...valItems];
    const feats = await backboneFeatures(all, featureExtraction(o, runtime, emit, { backbone, modelId: resolved.id, layer, preprocess }));
    for (const f of feats.failures) skipped.set(f.path, { path: f.path, code: f.code, message: f.message });
    const nTrain = trainItems.length;
    const keptTrain = feats.kept.filter((i) => i < nTrain);
    const keptVal = feats.kept.filter((i) => i >= nTrain);
    const warm = await trainHead(
      { features: feats.features.subarray(0, keptTrain.length * feats.dim), labels: Int32Array.from(keptTrain, (i) => all[i].label), dim: feats.dim },
      keptVal.length ? { features: feats.features.subarray(keptTrain.length * feats.dim), labels: Int32Array.from(keptVal, (i) => all[i].label), dim: feats.dim } : undefined,
      K,
      {
        runtime,
        epochs: warmupEpochs,
        batchSize: 32,
        lr: 3e-3,
        optimizer: 'adamw',
        weightDecay: 1e-4,
        schedule: 'one-cycle',
        labelSmoothing: settings.labelSmoothing,
        hidden: o.hidden,
        dropout: settings.dropout,
        classWeights: cw,
        patience: 0,
        seed,
        signal: o.signal,
        onEpoch: (record) => emit({ type: 'epoch', record: { ...record, phase: 'head' }, epochs: warmupEpochs + epochs }),
      },
    );
    head = headWith(warm.standardizer, warm.weights);
    history = warm.fit.history.map((r) => ({ ...r, phase: 'head' }));
  } else {
    head = headWith(undefined);
  }
  // images that failed to decode once are left out from here on
  trainItems = trainItems.filter((i) => !skipped.has(i.path));
  valItems = valItems.filter((i) => !skipped.has(i.path));
  const warmupWeights = Object.fromEntries([...head.params, ...head.constants].map((p) => [p, head.model.graph.initializers.get(p)!.data as Float32Array]));

  // ---- phase 2: unfreeze and train end to end
  const full = compose(backbone, head.model);
  const stages = unfrozenStages(stagesOf(backbone), unfreeze);
  const stageParams = stages.map((s) => s.params);
  const trainable = [...stageParams.flat(), ...head.params];
  // Without augmentation every epoch sees the same pixels, so the frozen prefix's output is the same
  // too: compute it once (cached like features) and train only the tail on it.
  const prefixAt = o.cachePrefix !== false && !augment && stages.length > 0 && stages[0].input !== backbone.graph.inputs[0].name ? stages[0].input : undefined;
  const prefix = prefixAt ? await prefixActivations(backbone, prefixAt, trainItems, valItems, { runtime, modelId: resolved.id, preprocess, cache: o.noCache ? false : o.cacheDir, signal: o.signal }) : undefined;
  for (const f of prefix?.failures ?? []) skipped.set(f.path, f);
  const trained = prefix ? tailFrom(full, prefixAt!) : full;
  const nchwcBlock = await runtime.nchwcBlock();
  const step = buildTrainStep(trained, { trainable, labelSmoothing: settings.labelSmoothing, sampleWeights: !!cw, batchNorm: settings.batchNorm, nchwcBlock });
  const evalStep = buildEvalStep(trained, { trainable, extraInputs: step.bnStats.map((s) => s.input), nchwcBlock });
  const dims = new Map(trainable.map((p) => [p, full.graph.initializers.get(p)!.dims]));
  const initial = weightCopies(full.graph, [...trainable, ...step.bnStats.map((s) => s.input)]);
  const source = prefix
    ? featureSource(prefix.train, prefix.val, { batchSize, seed, classWeights: cw, rowDims: prefix.rowDims })
    : imageSource(trainItems, valItems, {
        preprocess,
        batchSize,
        seed,
        augment,
        classWeights: cw,
        onSkip: (item, e) => skipped.set(item.path, { path: item.path, code: isGraftError(e) ? e.code : 'UNKNOWN', message: (e as Error).message }),
      });
  const baseLr = typeof settings.lr === 'number' ? settings.lr : d.lr;
  const init: TrainerInit = {
    ...compiledSteps(step, evalStep),
    weights: initial,
    optimizer: { name: settings.optimizer, weightDecay: settings.weightDecay, momentum: o.momentum },
    groups: stageGroups(stageParams, head.params, dims, settings.lrMult),
    schedule: scheduleOf(o, epochs * source.trainBatches, baseLr),
    seed,
    clipNorm: o.clipGrad,
  };
  // the trainer owns these from here on: the classifier kept for export holds no copy of them
  releaseWeights(full, Object.keys(initial));
  return { spec, layer, preprocess, classes, K, settings, fp, ckpt, history, skipped, trainItems, warmupWeights, full, source, init, baseLr };
}

/**
 * Drops `owned`'s values from `model` (their dims stay, for setWeights) and gives every other weight a
 * buffer of its own: one view into the model file's bytes would keep all of them alive.
 */
export function releaseWeights(model: Model, owned: readonly string[]): void {
  const drop = new Set(owned);
  for (const [name, t] of model.graph.initializers) {
    if (drop.has(name)) model.graph.initializers.set(name, { ...t, data: new Float32Array(0) });
    else if (ArrayBuffer.isView(t.data) && t.data.byteLength !== t.data.buffer.byteLength) model.graph.initializers.set(name, { ...t, data: t.data.slice() } as typeof t);
  }
}

interface PrefixActivations {
  train: FeatureSet;
  val: FeatureSet | undefined;
  rowDims: number[];
  failures: SkippedFile[];
}

/** The frozen prefix's output for every image, flattened to one cached row per image. */
async function prefixActivations(
  backbone: Model,
  at: string,
  train: readonly ImageItem[],
  val: readonly ImageItem[],
  o: { runtime: Runtime; modelId: string; preprocess: PreprocessConfig; cache: string | false | undefined; signal?: AbortSignal },
): Promise<PrefixActivations> {
  const prefix = cutAt(backbone, at, { pool: 'none' });
  const out = prefix.graph.outputs[0].name;
  const shape = inferShapes(prefix).get(out)?.shape ?? [];
  const rowDims = shape.slice(1);
  if (!rowDims.every((d): d is number => typeof d === 'number')) throw new GraftError('MODEL_UNSUPPORTED', `the activations at "${at}" have no static shape.`, { subject: at });
  const b = new GraphBuilder(prefix.graph, { opset: prefix.opset });
  const flat = b.op('Flatten', [out], { axis: 1 });
  const dim = rowDims.reduce((a, x) => a * x, 1);
  prefix.graph.outputs = [{ name: flat, dtype: 'float32', shape: ['N', dim] }];
  const all = [...train, ...val];
  const got = await backboneFeatures(all, { runtime: o.runtime, backbone: prefix, modelId: o.modelId, layer: `prefix:${at}`, preprocess: o.preprocess, cache: o.cache, signal: o.signal });
  const nTrain = train.length;
  const keptTrain = got.kept.filter((i) => i < nTrain);
  const keptVal = got.kept.filter((i) => i >= nTrain);
  return {
    train: { features: got.features.subarray(0, keptTrain.length * dim), labels: Int32Array.from(keptTrain, (i) => all[i].label), dim },
    val: keptVal.length ? { features: got.features.subarray(keptTrain.length * dim), labels: Int32Array.from(keptVal, (i) => all[i].label), dim, paths: keptVal.map((i) => all[i].path) } : undefined,
    rowDims,
    failures: got.failures.map((f) => ({ path: f.path, code: f.code, message: f.message })),
  };
}
