/**
 * Scenario 1: images in, class distributions out. Files and directories are expanded to image files,
 * decoded and preprocessed in batches while earlier batches run (runtime/batched), and results come
 * out one per image in input order, so a folder of 10 000 images streams with flat memory. Images that
 * cannot be read are reported in their place and skipped; the rest are classified.
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { GraftError, isGraftError } from '../errors.js';
import { compareCodePoints, IMAGE_EXTENSIONS, isImagePath } from '../data/dataset.js';
import { batchToTensor, tensorSize } from '../data/preprocess.js';
import { DEFAULT_BUILTIN } from '../models/builtins.js';
import type { Tensor } from '../onnx/tensor.js';
import { mapBatched, type PrepareFn, type RunFn } from '../runtime/index.js';
import { openClassifier, type Classifier, type ClassifierOptions } from './classifier.js';

export interface Prediction {
  label: string;
  /** Output index of the class. */
  index: number;
  probability: number;
}

export type PredictResult =
  | { image: string; predictions: Prediction[] }
  /** An image that could not be classified: a GraftError code (FILE_NOT_FOUND, IMAGE_UNREADABLE, …) and what to do. */
  | { image: string; error: { code: string; message: string } };

export interface PredictProgress {
  /** Images finished so far (classified or failed). */
  done: number;
  total: number;
  failed: number;
}

export interface PredictOptions extends Omit<ClassifierOptions, 'onProgress'> {
  /** Model spec (builtin name, .onnx path, directory, hf:owner/repo, https URL). Default: the default builtin. */
  model?: string;
  /** Use this open classifier instead of opening `model` (it is left open). */
  classifier?: Classifier;
  /** Classes per image, most probable first (default 5, at most the number of classes). */
  topK?: number;
  /** Images per model run (default 8). */
  batchSize?: number;
  /** Refuse images with more pixels than this, before decoding (default 100 megapixels; 0 = no limit). */
  maxPixels?: number;
  onProgress?: (p: PredictProgress) => void;
  /** Download / builtin conversion progress while the model is being prepared. */
  onModelProgress?: ClassifierOptions['onProgress'];
}

function positiveInt(name: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < 1) throw new GraftError('INVALID_ARGUMENT', `${name} must be a whole number ≥ 1, not ${v}.`);
  return v;
}

/** Dot files and macOS's __MACOSX folders (as data sets skip them). */
const isHidden = (name: string) => name.startsWith('.') || name === '__MACOSX';

/** Image files under `dir`, recursively, sorted; hidden entries skipped, symlink loops visited once. */
async function walk(dir: string, seen: Set<string>, out: string[]): Promise<void> {
  const real = await realpath(dir);
  if (seen.has(real)) return;
  seen.add(real);
  const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => !isHidden(e.name));
  entries.sort((a, b) => compareCodePoints(a.name, b.name));
  for (const e of entries) {
    const path = join(dir, e.name);
    let isDir = e.isDirectory();
    let isFile = e.isFile();
    if (e.isSymbolicLink()) {
      const s = await stat(path).catch(() => undefined);
      isDir = !!s?.isDirectory();
      isFile = !!s?.isFile();
    }
    if (isDir) await walk(path, seen, out);
    else if (isFile && isImagePath(e.name)) out.push(path);
  }
}

/**
 * Files and directories → the image files to classify, in argument order; a directory contributes its
 * image files (by extension, IMAGE_EXTENSIONS of data/dataset, recursively, sorted by path). Named files pass through as they are, even
 * missing ones: predict reports those per image. DATASET_EMPTY when nothing is left.
 */
export async function expandImages(inputs: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  const emptyDirs: string[] = [];
  for (const input of inputs) {
    const s = await stat(input).catch(() => undefined);
    if (s?.isDirectory()) {
      const before = out.length;
      await walk(input, new Set(), out);
      if (out.length === before) emptyDirs.push(input);
    } else out.push(input);
  }
  if (!out.length) {
    const where = emptyDirs.length ? ` in ${emptyDirs.join(', ')}` : '';
    throw new GraftError('DATASET_EMPTY', `No image files found${where} (looked for .${IMAGE_EXTENSIONS.join(' .')}). Name image files or directories that contain them.`);
  }
  return out;
}

/** The k most probable classes of one row, by probability descending (ties: lower index first). */
export function topK(probs: Float32Array, labels: readonly string[], k: number): Prediction[] {
  const idx = Array.from({ length: probs.length }, (_, i) => i);
  idx.sort((a, b) => probs[b] - probs[a] || a - b);
  return idx.slice(0, k).map((i) => ({ label: labels[i], index: i, probability: probs[i] }));
}

function errorEntry(image: string, e: unknown): PredictResult {
  const g = e as GraftError;
  return { image, error: { code: g.code, message: g.message } };
}

/**
 * Classifies images (files, or directories expanded recursively), yielding one result per image in
 * input order. Bad images come out as `{ image, error }` and are skipped. Fatal problems (the model,
 * the runtime, an abort) end the iteration with a GraftError.
 */
export async function* predict(images: readonly string[], opts: PredictOptions = {}): AsyncGenerator<PredictResult, void, undefined> {
  const batchSize = positiveInt('batchSize', opts.batchSize, 8);
  const wantK = positiveInt('topK', opts.topK, 5);
  if (opts.maxPixels !== undefined && !(opts.maxPixels >= 0)) throw new GraftError('INVALID_ARGUMENT', `maxPixels must be 0 (no limit) or a positive number, not ${opts.maxPixels}.`);
  const files = await expandImages(images);
  const total = files.length;
  let done = 0;
  let failed = 0;
  opts.onProgress?.({ done, total, failed });

  const classifier = opts.classifier ?? (await openClassifier(opts.model ?? DEFAULT_BUILTIN, { ...opts, onProgress: opts.onModelProgress }));
  try {
    const cfg = classifier.preprocess;
    const per = tensorSize(cfg);
    const k = Math.min(wantK, classifier.numClasses);

    const prepare: PrepareFn<string, Tensor<Float32Array>> = async (batch) => {
      const bad = new Map<number, unknown>();
      let fatal: unknown;
      const data = await batchToTensor(batch, cfg, {
        maxPixels: opts.maxPixels,
        onError: (i, e) => {
          // an image's own problem is reported in its place; anything else (a bug, an abort) ends the run
          if (isGraftError(e) && e.code !== 'ABORTED') bad.set(i, e);
          else fatal ??= e;
        },
      });
      if (fatal !== undefined) throw fatal;
      let n = 0;
      for (let i = 0; i < batch.length; i++) {
        if (bad.has(i)) continue;
        if (i !== n) data.copyWithin(n * per, i * per, (i + 1) * per);
        n++;
      }
      const packed = n === batch.length ? data : data.slice(0, n * per);
      return { value: { dtype: 'float32', dims: [n, ...classifier.imageDims], data: packed }, failed: bad };
    };
    const run: RunFn<string, Tensor<Float32Array>, Float32Array> = async (x, items, ctx) => {
      const probs = await classifier.classify(x, { signal: ctx.signal, transfer: true });
      const K = probs.dims[1];
      return items.map((_, i) => probs.data.subarray(i * K, (i + 1) * K));
    };

    for await (const r of mapBatched(files, { batchSize, signal: opts.signal }, prepare, run)) {
      done++;
      if (!r.ok) failed++;
      const result = r.ok ? { image: r.item, predictions: topK(r.value, classifier.labels, k) } : errorEntry(r.item, r.error);
      opts.onProgress?.({ done, total, failed });
      yield result;
    }
  } finally {
    if (!opts.classifier) await classifier.close();
  }
}

/** predict() collected into an array (fine for a few thousand images; stream with predict() beyond). */
export async function predictAll(images: readonly string[], opts: PredictOptions = {}): Promise<PredictResult[]> {
  const out: PredictResult[] = [];
  for await (const r of predict(images, opts)) out.push(r);
  return out;
}
