/**
 * OUT/metrics.json: what a training (head or fine-tune) or evaluation run measured, in one versioned
 * document that programs read and the HTML report is rendered from.
 *
 * Validation metrics are top-level (`accuracy`, `loss`, `confusion`, `perClass` …) and null when the
 * run had no validation set (`--val 0`); `history` always has the per-epoch training numbers.
 * Readers check `schemaVersion`: fields are only ever added within a version; a rename or a change of
 * meaning bumps it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraftError } from '../errors.js';
import { atomicWriteFile } from '../util/fs.js';
import type { AverageMetrics, ClassificationMetrics } from './metrics.js';

export const METRICS_SCHEMA_VERSION = 1;
export const METRICS_FILE = 'metrics.json';

/** eval = `graft eval`: no training, `n.train` is 0 and `n.val` counts the evaluated images. */
export type RunMode = 'head' | 'finetune' | 'eval';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface EpochRecord {
  /** 1-based. */
  epoch: number;
  /** Fine-tuning runs in phases (e.g. 'head' warm-up, then 'finetune'); head mode leaves it out. */
  phase?: string;
  trainLoss: number;
  /** Null when the trainer did not measure it (e.g. under mixup-like augmentation). */
  trainAccuracy: number | null;
  /** Null without a validation set. */
  valLoss: number | null;
  valAccuracy: number | null;
  /** Learning rate at the end of the epoch (the head's, when layer groups have different rates). */
  lr: number;
  /** Per layer group, earliest first, when discriminative learning rates are used. */
  lrs?: number[];
  /** Wall time of the epoch, validation included. */
  seconds: number;
}

export interface SkippedFile {
  path: string;
  /** A GraftErrorCode (IMAGE_UNREADABLE, FILE_EMPTY …), kept as a string so old readers accept new codes. */
  code: string;
  message: string;
}

export interface ClassMetricsJson extends AverageMetrics {
  label: string;
  support: number;
}

export interface WorstItem {
  path: string;
  trueLabel: string;
  predLabel: string;
  /** Probability the model gave to the wrong, predicted class. */
  probability: number;
}

/**
 * Hyper-parameters as the run used them (after defaults). The named keys are the ones both modes
 * share or that the report shows; trainers add whatever else they have.
 */
export interface RunConfigJson {
  epochs?: number;
  batchSize?: number;
  lr?: number;
  optimizer?: string;
  weightDecay?: number;
  momentum?: number;
  schedule?: string;
  labelSmoothing?: number;
  seed?: number;
  /** Validation fraction, or the --val-dir path. */
  val?: number | string;
  earlyStopping?: number | null;
  classWeights?: string | number[] | null;
  /** Head: hidden units (null = a single linear layer) and dropout. */
  hidden?: number | null;
  dropout?: number;
  /** Fine-tune: 'all' or the number of trailing stages unfrozen, warm-up epochs, augmentation, clipping. */
  unfreeze?: string | number;
  warmupEpochs?: number;
  augment?: JsonValue;
  gradClip?: number | null;
  [key: string]: JsonValue | undefined;
}

export interface MetricsJson {
  schemaVersion: typeof METRICS_SCHEMA_VERSION;
  /** ISO 8601. */
  createdAt: string;
  graftVersion?: string;
  mode: RunMode;
  /** The model as the user named it (builtin name, path, hf:…). */
  model: string;
  /** Where the backbone was cut; null when the model is used whole (eval of an exported model). */
  featureLayer: string | null;
  classes: string[];
  /** Images used, after skipping unreadable ones. */
  n: { train: number; val: number };
  /** Validation metrics (of the exported weights); null without a validation set. */
  accuracy: number | null;
  loss: number | null;
  topK: { k: number; accuracy: number } | null;
  /** Rows = true class, columns = predicted class, in `classes` order. */
  confusion: number[][] | null;
  /** In `classes` order. */
  perClass: ClassMetricsJson[] | null;
  macro: AverageMetrics | null;
  weighted: AverageMetrics | null;
  /** The epoch whose weights were exported (early stopping keeps the best); null for eval. */
  bestEpoch: number | null;
  history: EpochRecord[];
  /** Wall time of the whole run, feature extraction included. */
  seconds: number;
  skipped: SkippedFile[];
  /** The most confidently wrong validation images, worst first. */
  worst: WorstItem[];
  config: RunConfigJson;
  /** The learning-rate range test, when the run did one (`--lr find`): its curve and suggestion. */
  lrFind?: { lrs: number[]; losses: number[]; suggestion: number };
}

export interface MetricsJsonInput {
  mode: RunMode;
  model: string;
  featureLayer?: string | null;
  classes: readonly string[];
  n: { train: number; val: number };
  /** Metrics on the validation (or evaluated) set; null without one. */
  val: ClassificationMetrics | null;
  /** Paths of the validation items in prediction-row order, to name the worst items. */
  valPaths?: readonly string[];
  history?: EpochRecord[];
  bestEpoch?: number | null;
  seconds: number;
  skipped?: SkippedFile[];
  config?: RunConfigJson;
  lrFind?: { lrs: number[]; losses: number[]; suggestion: number };
  createdAt?: Date;
  graftVersion?: string;
}

/** Assembles metrics.json from a run's facts and its validation metrics. */
export function buildMetricsJson(input: MetricsJsonInput): MetricsJson {
  const { val, classes } = input;
  if (val && val.numClasses !== classes.length) {
    throw new GraftError('INVALID_ARGUMENT', `the metrics have ${val.numClasses} classes but ${classes.length} class names were given.`);
  }
  const worst: WorstItem[] = [];
  if (val && input.valPaths) {
    if (input.valPaths.length !== val.n) {
      throw new GraftError('INVALID_ARGUMENT', `${input.valPaths.length} validation paths were given for ${val.n} predictions; pass them in prediction order.`);
    }
    for (const w of val.worst) {
      worst.push({ path: input.valPaths[w.index], trueLabel: classes[w.trueLabel], predLabel: classes[w.predLabel], probability: w.probability });
    }
  }
  return {
    schemaVersion: METRICS_SCHEMA_VERSION,
    createdAt: (input.createdAt ?? new Date()).toISOString(),
    ...(input.graftVersion === undefined ? {} : { graftVersion: input.graftVersion }),
    mode: input.mode,
    model: input.model,
    featureLayer: input.featureLayer ?? null,
    classes: [...classes],
    n: { train: input.n.train, val: input.n.val },
    accuracy: val?.accuracy ?? null,
    loss: val?.loss ?? null,
    topK: val?.topK ?? null,
    confusion: val ? val.confusion.map((row) => [...row]) : null,
    perClass: val ? val.perClass.map((m, c) => ({ label: classes[c], ...m })) : null,
    macro: val ? { ...val.macro } : null,
    weighted: val ? { ...val.weighted } : null,
    bestEpoch: input.bestEpoch ?? null,
    history: input.history ?? [],
    seconds: input.seconds,
    skipped: input.skipped ?? [],
    worst,
    config: input.config ?? {},
    ...(input.lrFind ? { lrFind: { lrs: input.lrFind.lrs, losses: input.lrFind.losses, suggestion: input.lrFind.suggestion } } : {}),
  };
}

/**
 * Pretty JSON, except that arrays of numbers stay on one line, so a 100-class confusion matrix is 100
 * lines rather than 10 000. JSON strings never contain a raw newline, so the pattern (which needs
 * newlines between elements) cannot touch a class name or path.
 */
export function formatMetricsJson(m: MetricsJson): string {
  const num = '-?\\d+(?:\\.\\d+)?(?:[eE][+-]?\\d+)?|null';
  const flat = new RegExp(`\\[\\n\\s*((?:${num})(?:,\\n\\s*(?:${num}))*)\\n\\s*\\]`, 'g');
  return JSON.stringify(m, null, 2).replace(flat, (_, items: string) => `[${items.split(/,\n\s*/).join(', ')}]`) + '\n';
}

/** Writes OUT/metrics.json atomically; returns its path. */
export function writeMetricsJson(outDir: string, m: MetricsJson): string {
  const path = join(outDir, METRICS_FILE);
  atomicWriteFile(path, formatMetricsJson(m));
  return path;
}

function invalid(subject: string, what: string): GraftError {
  return new GraftError('METRICS_INVALID', `${subject} ${what}. Re-create it with \`graft train\` or \`graft eval\`.`, { subject });
}

const isNum = (v: unknown): v is number => typeof v === 'number';
const isNumOrNull = (v: unknown): boolean => v === null || typeof v === 'number';
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Parses and checks a metrics.json text: the version and the shape of every field the report and the
 * CLI read. `subject` names the file in errors.
 */
export function parseMetricsJson(text: string, subject = METRICS_FILE): MetricsJson {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw invalid(subject, `is not valid JSON (${(e as Error).message})`);
  }
  if (!isObj(v)) throw invalid(subject, 'is not a JSON object');
  if (v.schemaVersion !== METRICS_SCHEMA_VERSION) {
    if (isNum(v.schemaVersion) && v.schemaVersion > METRICS_SCHEMA_VERSION) {
      throw new GraftError('METRICS_INVALID', `${subject} has schemaVersion ${v.schemaVersion}, newer than this graft reads (${METRICS_SCHEMA_VERSION}); upgrade graft.`, { subject });
    }
    throw invalid(subject, `has schemaVersion ${JSON.stringify(v.schemaVersion)}, not ${METRICS_SCHEMA_VERSION}`);
  }
  const need = (ok: boolean, field: string) => {
    if (!ok) throw invalid(subject, `has a missing or malformed "${field}"`);
  };
  need(v.mode === 'head' || v.mode === 'finetune' || v.mode === 'eval', 'mode');
  need(typeof v.model === 'string', 'model');
  need(v.featureLayer === null || typeof v.featureLayer === 'string', 'featureLayer');
  need(Array.isArray(v.classes) && v.classes.every((c) => typeof c === 'string'), 'classes');
  const K = (v.classes as string[]).length;
  need(isObj(v.n) && isNum(v.n.train) && isNum(v.n.val), 'n');
  need(isNumOrNull(v.accuracy), 'accuracy');
  need(isNumOrNull(v.loss), 'loss');
  need(v.topK === null || (isObj(v.topK) && isNum(v.topK.k) && isNum(v.topK.accuracy)), 'topK');
  need(
    v.confusion === null || (Array.isArray(v.confusion) && v.confusion.length === K && v.confusion.every((r) => Array.isArray(r) && r.length === K && r.every(isNum))),
    'confusion',
  );
  const classMetrics = (m: unknown) => isObj(m) && isNum(m.precision) && isNum(m.recall) && isNum(m.f1);
  need(v.perClass === null || (Array.isArray(v.perClass) && v.perClass.length === K && v.perClass.every((m) => classMetrics(m) && isNum(m.support) && typeof m.label === 'string')), 'perClass');
  need(v.macro === null || classMetrics(v.macro), 'macro');
  need(v.weighted === null || classMetrics(v.weighted), 'weighted');
  need(isNumOrNull(v.bestEpoch), 'bestEpoch');
  need(
    Array.isArray(v.history) &&
      v.history.every((h) => isObj(h) && isNum(h.epoch) && isNum(h.trainLoss) && isNumOrNull(h.trainAccuracy) && isNumOrNull(h.valLoss) && isNumOrNull(h.valAccuracy) && isNum(h.lr) && isNum(h.seconds)),
    'history',
  );
  need(isNum(v.seconds), 'seconds');
  need(Array.isArray(v.skipped) && v.skipped.every((s) => isObj(s) && typeof s.path === 'string' && typeof s.code === 'string' && typeof s.message === 'string'), 'skipped');
  need(Array.isArray(v.worst) && v.worst.every((w) => isObj(w) && typeof w.path === 'string' && typeof w.trueLabel === 'string' && typeof w.predLabel === 'string' && isNum(w.probability)), 'worst');
  need(isObj(v.config), 'config');
  return v as unknown as MetricsJson;
}

/** Reads and checks a metrics.json file, or the one in a run's output directory. */
export function readMetricsJson(path: string): MetricsJson {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') return readMetricsJson(join(path, METRICS_FILE));
    if (code === 'ENOENT') throw new GraftError('FILE_NOT_FOUND', `${path} does not exist; train or evaluate first, or point at the run's output directory.`, { subject: path, cause: e });
    throw new GraftError('METRICS_INVALID', `Cannot read ${path}: ${(e as Error).message}.`, { subject: path, cause: e });
  }
  return parseMetricsJson(text, path);
}
