/**
 * `graft train`: a labelled image folder in, OUT/{model.onnx, labels.json, metrics.json, report.html}
 * out. Scenario 2 (--mode head): cut the pretrained model at its feature layer, extract features once
 * (cached), train a new head on them. Scenario 3 (--mode finetune) lives in finetune.ts and shares the
 * data, export and reporting here.
 */
import { loadDataset, type Dataset, type DatasetWarning } from '../data/dataset.js';
import { fromValDir, splitDataset, classWeights as balancedWeights } from '../data/split.js';
import type { FeatureProgress } from '../data/feature-cache.js';
import { GraftError, throwIfAborted } from '../errors.js';
import { compose } from '../graph/compose.js';
import type { Model } from '../graph/graph.js';
import { modelToBytes } from '../graph/serialize.js';
import { cutAt, findClassifier, resolveValue } from '../graph/surgery.js';
import { BUILTIN_MODELS, DEFAULT_BUILTIN } from '../models/builtins.js';
import { resolveModel, type ResolvedModel } from '../models/sources.js';
import { preprocessFromFlags, type PreprocessFlags } from '../models/preprocess-sources.js';
import type { PreprocessConfig } from '../models/preprocess.js';
import { Runtime } from '../runtime/index.js';
import { planClassifier } from '../tasks/classifier.js';
import { writeReport } from '../report/index.js';
import { GRAFT_VERSION } from '../version.js';
import { exportClassifier, saveClassifier, checkOutputDir, writeOutputDir } from './export.js';
import { backboneFeatures, featureDim, type ExtractOptions } from './features.js';
import type { FeatureSet } from './feature-source.js';
import { trainHead } from './head-train.js';
import { classificationMetrics } from './metrics.js';
import { buildMetricsJson, writeMetricsJson, type EpochRecord, type MetricsJson, type RunConfigJson, type SkippedFile } from './metrics-json.js';
import type { OptimizerName } from './optim.js';
import type { ScheduleName } from './schedule.js';
import type { FinetuneOptions } from './finetune.js';

export interface TrainOptions extends FinetuneOptions {
  /** ImageFolder directory (DATA/<class>/…) or a CSV/JSON manifest. */
  data: string;
  out: string;
  mode?: 'head' | 'finetune';
  /** Model spec (builtin name, file, dir, hf:…, URL); default the builtin mobilenet_v2. */
  model?: string;
  /** Feature layer (a value or node name); default: the builtin's measured choice, else the classifier's input. */
  layer?: string;
  /** Validation fraction (default 0.2; 0 = train on everything) or a separate folder. */
  val?: number;
  valDir?: string;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  optimizer?: OptimizerName;
  weightDecay?: number;
  momentum?: number;
  schedule?: ScheduleName;
  labelSmoothing?: number;
  hidden?: number;
  dropout?: number;
  classWeights?: 'auto' | 'none';
  /** Early-stopping patience in epochs (0 = off). */
  patience?: number;
  seed?: number;
  overwrite?: boolean;
  preprocess?: PreprocessFlags;
  threads?: number;
  offline?: boolean;
  cacheDir?: string;
  /** Disable the feature cache. */
  noCache?: boolean;
  signal?: AbortSignal;
  onEvent?: (e: TrainEvent) => void;
  /** Use this runtime instead of making one (it stays open). */
  runtime?: Runtime;
}

export type TrainEvent =
  | { type: 'model'; spec: string; id: string; layer: string; featureDim: number }
  | { type: 'dataset'; classes: string[]; train: number; val: number; warnings: DatasetWarning[] }
  | { type: 'features'; progress: FeatureProgress }
  | { type: 'epoch'; record: EpochRecord; epochs: number }
  | { type: 'exported'; out: string };

export interface TrainResult {
  out: string;
  metrics: MetricsJson;
}

export const HEAD_DEFAULTS = {
  epochs: 30,
  batchSize: 32,
  lr: 3e-3,
  optimizer: 'adamw' as OptimizerName,
  weightDecay: 1e-4,
  schedule: 'one-cycle' as ScheduleName,
  labelSmoothing: 0,
  dropout: 0.2,
  patience: 10,
  val: 0.2,
  seed: 0,
};

export interface PreparedData {
  dataset: Dataset;
  train: Dataset;
  val: Dataset | undefined;
  warnings: DatasetWarning[];
}

/** Lists the data set and splits it (or reads the validation folder). */
export async function prepareData(o: Pick<TrainOptions, 'data' | 'val' | 'valDir' | 'seed' | 'signal'>): Promise<PreparedData> {
  const dataset = await loadDataset(o.data, { duplicates: true, signal: o.signal });
  const seed = o.seed ?? HEAD_DEFAULTS.seed;
  if (o.valDir) {
    const split = await fromValDir(dataset, o.valDir, { signal: o.signal });
    return { dataset, train: split.train, val: split.val, warnings: dataset.warnings };
  }
  const val = o.val ?? HEAD_DEFAULTS.val;
  if (!(val >= 0 && val < 1)) throw new GraftError('INVALID_ARGUMENT', `--val must be a fraction in [0, 1), not ${val}.`);
  const split = splitDataset(dataset, { val, seed });
  return { dataset, train: split.train, val: split.val, warnings: dataset.warnings };
}

/** How both training modes start: the model cut at its feature layer, and the data (announced with a 'dataset' event). */
export async function modelAndData(o: TrainOptions, emit: (e: TrainEvent) => void) {
  const spec = o.model ?? DEFAULT_BUILTIN;
  const resolved = await resolveModel(spec, { offline: o.offline, cacheDir: o.cacheDir, signal: o.signal });
  const layer = chooseFeatureLayer(resolved, o.layer);
  const { backbone, preprocess } = preparedBackbone(resolved, layer, o.preprocess);
  const data = await prepareData(o);
  const classes = data.dataset.classes;
  emit({ type: 'dataset', classes, train: data.train.items.length, val: data.val?.items.length ?? 0, warnings: data.warnings });
  return { spec, resolved, layer, backbone, preprocess, data, classes };
}

/** How `graft train` extracts the feature layer: through the feature cache unless --no-cache, with progress as 'features' events. */
export function featureExtraction(
  o: TrainOptions,
  runtime: Runtime,
  emit: (e: TrainEvent) => void,
  at: Pick<ExtractOptions, 'backbone' | 'modelId' | 'layer' | 'preprocess'>,
): ExtractOptions {
  return { runtime, ...at, cache: o.noCache ? false : o.cacheDir, onProgress: (progress) => emit({ type: 'features', progress }), signal: o.signal };
}

/**
 * The preprocessing for training, and the backbone cut at the feature layer. A cut backbone ends in
 * global pooling, so it runs at any image size: `--size` may differ from the size the model was
 * exported with (train at 128 px for speed, say), and the backbone's input is re-declared to match.
 */
export function preparedBackbone(resolved: ResolvedModel, layer: string, flags: PreprocessFlags | undefined): { backbone: Model; preprocess: PreprocessConfig } {
  const { size, ...rest } = flags ?? {};
  const base = planClassifier(resolved, { preprocess: rest }).preprocess.config;
  const preprocess = size === undefined ? base : preprocessFromFlags(base, { size });
  const backbone = cutAt(resolved.model, layer, { pool: 'avg' });
  const input = backbone.graph.inputs[0];
  const [h, w] = preprocess.inputSize;
  if (input.shape?.length === 4) input.shape = preprocess.layout === 'NCHW' ? [input.shape[0], input.shape[1], h, w] : [input.shape[0], h, w, input.shape[3]];
  featureDim(backbone);
  return { backbone, preprocess };
}

/** The feature layer to cut at: the user's, the builtin's measured default, or the final classifier's input. */
export function chooseFeatureLayer(resolved: ResolvedModel, requested?: string): string {
  if (requested) return resolveValue(resolved.model.graph, requested);
  if (resolved.kind === 'builtin') {
    const name = resolved.spec as keyof typeof BUILTIN_MODELS;
    const layer = BUILTIN_MODELS[name]?.defaultFeatureLayer;
    if (layer) return layer;
  }
  const c = findClassifier(resolved.model);
  // the map before pooling when there is one: cutAt pools it, and the cut then keeps no classifier-side ops
  return c.spatialValue ?? c.featureValue;
}

function skippedOf(failures: { path: string; code: string; message: string }[]): SkippedFile[] {
  return failures.map((f) => ({ path: f.path, code: f.code, message: f.message }));
}

function configOf(o: TrainOptions, d: typeof HEAD_DEFAULTS): RunConfigJson {
  return {
    epochs: o.epochs ?? d.epochs,
    batchSize: o.batchSize ?? d.batchSize,
    lr: o.lr ?? d.lr,
    optimizer: o.optimizer ?? d.optimizer,
    weightDecay: o.weightDecay ?? d.weightDecay,
    ...(o.momentum !== undefined ? { momentum: o.momentum } : {}),
    schedule: o.schedule ?? d.schedule,
    labelSmoothing: o.labelSmoothing ?? d.labelSmoothing,
    seed: o.seed ?? d.seed,
    val: o.valDir ?? o.val ?? d.val,
    earlyStopping: (o.patience ?? d.patience) || null,
    classWeights: o.classWeights ?? 'none',
    hidden: o.hidden ?? null,
    dropout: o.dropout ?? d.dropout,
  };
}

export async function train(o: TrainOptions): Promise<TrainResult> {
  if ((o.mode ?? 'head') === 'finetune') {
    // loaded on demand: fine-tuning pulls in the autodiff compiler and image pipeline
    const { finetune } = await import('./finetune.js');
    return finetune(o);
  }
  return trainHeadMode(o);
}

async function trainHeadMode(o: TrainOptions): Promise<TrainResult> {
  const t0 = performance.now();
  checkOutputDir(o.out, !!o.overwrite);
  const d = HEAD_DEFAULTS;
  const emit = o.onEvent ?? (() => undefined);
  const runtime = o.runtime ?? (await Runtime.create({ threads: o.threads }));
  try {
    const { spec, resolved, layer, backbone, preprocess, data, classes } = await modelAndData(o, emit);

    const items = [...data.train.items, ...(data.val?.items ?? [])];
    const extracted = await backboneFeatures(items, featureExtraction(o, runtime, emit, { backbone, modelId: resolved.id, layer, preprocess }));
    emit({ type: 'model', spec, id: resolved.id, layer, featureDim: extracted.dim });
    throwIfAborted(o.signal);

    const nTrain = data.train.items.length;
    const { trainSet, valSet, valPaths } = splitFeatures(extracted.features, extracted.dim, extracted.kept, items, nTrain);
    if (trainSet.labels.length === 0) throw new GraftError('DATASET_EMPTY', `none of the ${nTrain} training images could be read; see the skipped files.`);
    const present = new Set(trainSet.labels);
    const missing = classes.filter((_, k) => !present.has(k));
    if (missing.length) throw new GraftError('DATASET_INVALID', `no readable training images for class ${missing.map((c) => JSON.stringify(c)).join(', ')}. Add images or remove the folder.`);

    const cw = o.classWeights === 'auto' ? Float32Array.from(balancedWeights(data.train, 'auto')) : undefined;
    const epochs = o.epochs ?? d.epochs;
    const trained = await trainHead(trainSet, valSet, classes.length, {
      runtime,
      epochs,
      batchSize: o.batchSize ?? d.batchSize,
      lr: o.lr ?? d.lr,
      optimizer: o.optimizer ?? d.optimizer,
      weightDecay: o.weightDecay ?? d.weightDecay,
      momentum: o.momentum,
      schedule: o.schedule ?? d.schedule,
      labelSmoothing: o.labelSmoothing ?? d.labelSmoothing,
      hidden: o.hidden,
      dropout: o.dropout ?? d.dropout,
      classWeights: cw,
      patience: valSet ? (o.patience ?? d.patience) : 0,
      seed: o.seed ?? d.seed,
      signal: o.signal,
      onEpoch: (record) => emit({ type: 'epoch', record, epochs }),
    });

    const val = valSet ? classificationMetrics(await headLogits(runtime, trained.head.model, valSet), valSet.labels, classes.length, { logits: true }) : null;
    const exported = exportClassifier(compose(backbone, trained.head.model), {
      labels: classes,
      preprocess,
      info: { 'graft.mode': 'head', 'graft.source_model': spec, 'graft.feature_layer': layer, 'graft.version': GRAFT_VERSION },
    });
    const metrics = buildMetricsJson({
      mode: 'head',
      model: spec,
      featureLayer: layer,
      classes,
      n: { train: trainSet.labels.length, val: valSet?.labels.length ?? 0 },
      val,
      valPaths,
      history: trained.fit.history,
      bestEpoch: trained.fit.best?.epoch ?? null,
      seconds: (performance.now() - t0) / 1000,
      skipped: skippedOf(extracted.failures),
      config: configOf(o, d),
      graftVersion: GRAFT_VERSION,
    });
    const out = await writeOutputDir(o.out, !!o.overwrite, async (dir) => {
      saveClassifier(dir, exported, classes);
      writeMetricsJson(dir, metrics);
      await writeReport(dir, metrics);
    });
    emit({ type: 'exported', out });
    return { out, metrics };
  } finally {
    if (!o.runtime) await runtime.close();
  }
}

/** Splits extracted rows into train/val feature sets (items = train items, then val items). */
function splitFeatures(features: Float32Array, dim: number, kept: readonly number[], items: readonly { path: string; label: number }[], nTrain: number) {
  const trainRows = kept.filter((i) => i < nTrain);
  const valRows = kept.filter((i) => i >= nTrain);
  const gather = (rows: number[], startRow: number): FeatureSet => ({
    features: features.subarray(startRow * dim, (startRow + rows.length) * dim),
    labels: Int32Array.from(rows, (i) => items[i].label),
    dim,
  });
  // kept is ascending, so train rows come first in `features`
  const trainSet = gather(trainRows, 0);
  const valSet = valRows.length ? gather(valRows, trainRows.length) : undefined;
  return { trainSet, valSet, valPaths: valRows.map((i) => items[i].path) };
}

/** Logits of the trained head on a feature set (runs in the runtime like everything else). */
async function headLogits(runtime: Runtime, head: Model, set: FeatureSet): Promise<Float32Array> {
  const session = await runtime.load(modelToBytes(head), { name: 'head' });
  try {
    const input = head.graph.inputs[0].name;
    const output = head.graph.outputs[0].name;
    const out = await session.run({ [input]: { dtype: 'float32', dims: [set.labels.length, set.dim], data: set.features } });
    return out[output].data as Float32Array;
  } finally {
    await session.release();
  }
}

