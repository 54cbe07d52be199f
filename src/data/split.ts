/**
 * Train / validation sets: a seeded stratified split of one data set, or a separate validation folder
 * mapped onto the training classes; and class weights for imbalanced data.
 */
import { relative, sep } from 'node:path';
import { GraftError } from '../errors.js';
import { deriveSeed } from '../util/random.js';
import { compareCodePoints, groupByContent, scanValidationFolder, type Dataset, type DatasetItem, type DatasetWarning, type ScanOptions } from './dataset.js';

export interface SplitOptions {
  /** Fraction of each class held out for validation, in [0, 1). 0 = no validation set. */
  val: number;
  seed: number;
}

export interface DatasetSplit {
  train: Dataset;
  /** undefined when there is nothing to validate on (val: 0). */
  val: Dataset | undefined;
}

/** Items of a class held out: round(val × n), at least 1 and at most n − 1 when the class has ≥ 2 items. */
export function valCount(n: number, val: number): number {
  if (n < 2 || val === 0) return 0;
  return Math.min(n - 1, Math.max(1, Math.round(val * n)));
}

// the same key on every machine and for a moved data set: the path below the root, with '/'
function itemKey(root: string, path: string): string {
  const rel = relative(root, path);
  return sep === '/' ? rel : rel.split(sep).join('/');
}

/**
 * Stratified split: in each class every item gets a pseudo-random score from (seed, class name, path
 * below the root) and the lowest-scoring valCount items go to validation. The result depends on neither
 * the order items were listed in nor on other classes, and adding images to a folder moves few existing
 * ones across the split.
 */
export function splitDataset(ds: Dataset, opts: SplitOptions): DatasetSplit {
  const { val, seed } = opts;
  if (typeof val !== 'number' || !(val >= 0 && val < 1)) {
    throw new GraftError('INVALID_ARGUMENT', `The validation fraction must be a number in [0, 1), e.g. 0.2, not ${val}; use 0 to train on everything.`);
  }
  deriveSeed(seed); // rejects a non-integer seed with a clear message
  if (val === 0) return { train: ds, val: undefined };

  const byClass: DatasetItem[][] = ds.classes.map(() => []);
  for (const it of ds.items) byClass[it.label].push(it);
  const held = new Set<DatasetItem>();
  const single: string[] = [];
  byClass.forEach((items, c) => {
    const k = valCount(items.length, val);
    if (items.length === 1) single.push(ds.classes[c]);
    if (!k) return;
    const scored = items.map((it) => {
      const key = itemKey(ds.root, it.path);
      return { it, key, score: deriveSeed(seed, 'val-split', ds.classes[c], key) };
    });
    scored.sort((a, b) => a.score - b.score || compareCodePoints(a.key, b.key));
    for (let i = 0; i < k; i++) held.add(scored[i].it);
  });
  const order = (a: DatasetItem, b: DatasetItem) => a.label - b.label || compareCodePoints(a.path, b.path);
  const trainItems = ds.items.filter((it) => !held.has(it)).sort(order);
  const valItems = ds.items.filter((it) => held.has(it)).sort(order);
  const warnings: DatasetWarning[] = [...ds.warnings];
  if (single.length) {
    warnings.push({
      code: 'NOT_VALIDATED',
      level: 'warning',
      message: `${single.length === 1 ? 'Class' : 'Classes'} ${single.map((c) => JSON.stringify(c)).join(', ')} ${single.length === 1 ? 'has' : 'have'} a single image, used for training; validation cannot measure ${single.length === 1 ? 'it' : 'them'}.`,
      classes: single,
    });
  }
  const train: Dataset = { root: ds.root, classes: [...ds.classes], items: trainItems, warnings };
  if (!valItems.length) return { train, val: undefined };
  return { train, val: { root: ds.root, classes: [...ds.classes], items: valItems, warnings: [] } };
}

/**
 * Uses the ImageFolder at `valDir` as the validation set of `train`: its classes must be training
 * classes (an unknown one is a LABEL_MISMATCH naming it); labels follow the training class order.
 * Warns when a file is in both sets (it makes validation accuracy meaningless for that image).
 */
export async function fromValDir(train: Dataset, valDir: string, opts: ScanOptions = {}): Promise<DatasetSplit> {
  const scanned = await scanValidationFolder(valDir, opts);
  const index = new Map(train.classes.map((c, i) => [c, i]));
  const unknown = scanned.classes.filter((c) => !index.has(c));
  if (unknown.length) {
    const names = unknown.map((c) => JSON.stringify(c)).join(', ');
    throw new GraftError(
      'LABEL_MISMATCH',
      `Validation folder ${scanned.root} has ${unknown.length === 1 ? 'a class' : 'classes'} the training data does not: ${names}. ` +
        `Training classes: ${train.classes.map((c) => JSON.stringify(c)).join(', ')}. Rename or remove ${unknown.length === 1 ? 'that folder' : 'those folders'}, or add training images for ${unknown.length === 1 ? 'it' : 'them'}.`,
      { subject: unknown[0] },
    );
  }
  const items: DatasetItem[] = scanned.items
    .map((it) => ({ ...it, label: index.get(scanned.classes[it.label]) as number }))
    .sort((a, b) => a.label - b.label || compareCodePoints(a.path, b.path));
  const warnings: DatasetWarning[] = [...scanned.warnings];

  const absent = train.classes.filter((c) => !scanned.classes.includes(c));
  if (absent.length) {
    warnings.push({
      code: 'NOT_VALIDATED',
      level: 'warning',
      message: `The validation folder has no images of ${absent.map((c) => JSON.stringify(c)).join(', ')}; validation cannot measure ${absent.length === 1 ? 'that class' : 'those classes'}.`,
      classes: absent,
    });
  }
  if (opts.duplicates ?? true) {
    const all = [...train.items, ...items];
    const { groups } = await groupByContent(
      all.map((it) => it.path),
      { concurrency: opts.concurrency, signal: opts.signal, hashes: all.map((it) => it.hash) },
    );
    const nTrain = train.items.length;
    const shared = groups.filter((g) => g.some((i) => i < nTrain) && g.some((i) => i >= nTrain));
    if (shared.length) {
      const show = (g: number[]) => g.map((i) => all[i].path).join(' = ');
      warnings.push({
        code: 'TRAIN_VAL_OVERLAP',
        level: 'warning',
        message: `${shared.length} validation image${shared.length === 1 ? ' is' : 's are'} also in the training data (identical files), e.g. ${show(shared[0])}. Validation accuracy on ${shared.length === 1 ? 'it' : 'them'} measures memory, not generalisation; remove them from one side.`,
        groups: shared.map((g) => g.map((i) => all[i].path)),
      });
    }
  }
  return { train, val: { root: scanned.root, classes: [...train.classes], items, warnings } };
}

export function classCounts(ds: Dataset): number[] {
  const counts = ds.classes.map(() => 0);
  for (const it of ds.items) counts[it.label]++;
  return counts;
}

/**
 * Per-class loss weights. 'auto' is scikit-learn's "balanced": n_total / (n_classes × n_c), so every class
 * contributes equally and the weights average to 1 over the items; n_classes counts the classes that have
 * items, and a class without items gets 0. 'none' is all ones.
 */
export function classWeights(ds: Dataset, mode: 'auto' | 'none' = 'auto'): number[] {
  if (mode === 'none') return ds.classes.map(() => 1);
  if (mode !== 'auto') throw new GraftError('INVALID_ARGUMENT', `Class weights must be "auto" or "none", not ${JSON.stringify(mode)}.`);
  const counts = classCounts(ds);
  const present = counts.filter((n) => n > 0).length;
  const total = ds.items.length;
  return counts.map((n) => (n > 0 ? total / (present * n) : 0));
}
