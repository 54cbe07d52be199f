/**
 * Classification metrics from a batch of predictions: accuracy, cross-entropy, confusion matrix,
 * per-class precision / recall / F1, macro and weighted averages, top-k accuracy and the most
 * confidently wrong items.
 *
 * Conventions (the same as scikit-learn's where it has one):
 * - confusion[t][p] counts items of true class t predicted as p (rows = true, columns = predicted);
 * - the predicted class is the argmax; ties go to the lowest class index (as numpy's argmax);
 * - a ratio whose denominator is zero is 0: precision of a class never predicted, recall of a class
 *   with no support, F1 when precision + recall = 0 (sklearn's zero_division=0);
 * - macro averages are plain means over the classes that occur in the true labels or in the
 *   predictions; a class absent from both has nothing to measure and would only drag the mean to 0;
 * - weighted averages weight each class by its support (classes without support weigh nothing);
 * - loss is the plain mean cross-entropy (no label smoothing, no class weights), so runs trained with
 *   different options stay comparable.
 */
import { GraftError } from '../errors.js';

export interface ClassMetrics {
  precision: number;
  recall: number;
  f1: number;
  /** How many items have this true class. */
  support: number;
}

export interface AverageMetrics {
  precision: number;
  recall: number;
  f1: number;
}

export interface Misclassified {
  /** Row of the item in the predictions. */
  index: number;
  trueLabel: number;
  predLabel: number;
  /** Probability given to the (wrong) predicted class. */
  probability: number;
  /** Probability given to the true class. */
  trueProbability: number;
}

export interface ClassificationMetrics {
  n: number;
  numClasses: number;
  accuracy: number;
  loss: number;
  /** Top-k accuracy; null when k ≥ numClasses (it would be 1 by definition). */
  topK: { k: number; accuracy: number } | null;
  /** numClasses × numClasses counts, rows = true class, columns = predicted class. */
  confusion: number[][];
  perClass: ClassMetrics[];
  macro: AverageMetrics;
  weighted: AverageMetrics;
  /** Wrong predictions, the most confident first (ties: lower index first). */
  worst: Misclassified[];
}

export interface MetricsOptions {
  /** The rows are logits (softmax is applied here, with an exact log-softmax for the loss). Default false. */
  logits?: boolean;
  /** k for top-k accuracy. Default 5 when there are more than 5 classes, else none. */
  topK?: number;
  /** How many worst-misclassified items to return. Default 32. */
  worst?: number;
}

/*
 * A probability of exactly 0 on the true class (float32 softmax underflows below ~1e-45) would make the
 * mean loss Infinity and hide every other item; clamping keeps one confident mistake at ≈27.6 nats.
 * Logits do not need this: their log-softmax is exact.
 */
const MIN_PROBABILITY = 1e-12;

export const DEFAULT_WORST = 32;

/**
 * Softmax of each row of an [n × k] matrix, computed in float64 and stored as float32; rows are
 * shifted by their max so large logits don't overflow.
 */
export function softmaxRows(logits: Float32Array, numClasses: number): Float32Array {
  const out = new Float32Array(logits.length);
  const n = logits.length / numClasses;
  for (let i = 0; i < n; i++) {
    const o = i * numClasses;
    let max = -Infinity;
    for (let j = 0; j < numClasses; j++) max = Math.max(max, logits[o + j]);
    let sum = 0;
    for (let j = 0; j < numClasses; j++) sum += Math.exp(logits[o + j] - max);
    for (let j = 0; j < numClasses; j++) out[o + j] = Math.exp(logits[o + j] - max) / sum;
  }
  return out;
}

function checkInputs(scores: Float32Array, labels: ArrayLike<number>, numClasses: number): number {
  if (!Number.isInteger(numClasses) || numClasses < 2) {
    throw new GraftError('INVALID_ARGUMENT', `metrics need at least 2 classes, not ${numClasses}.`);
  }
  const n = labels.length;
  if (n === 0) {
    throw new GraftError('INVALID_ARGUMENT', 'metrics need at least one labelled item; with no validation set, report training metrics only.');
  }
  if (scores.length !== n * numClasses) {
    throw new GraftError('INVALID_ARGUMENT', `predictions have ${scores.length} values, but ${n} labels × ${numClasses} classes need ${n * numClasses}.`);
  }
  for (let i = 0; i < n; i++) {
    const t = labels[i];
    if (!Number.isInteger(t) || t < 0 || t >= numClasses) {
      throw new GraftError('INVALID_ARGUMENT', `label ${i} is ${t}, not a class index in 0..${numClasses - 1}.`);
    }
  }
  for (let i = 0; i < scores.length; i++) {
    if (Number.isNaN(scores[i])) {
      throw new GraftError('INVALID_ARGUMENT', `prediction row ${Math.floor(i / numClasses)} contains NaN; the model diverged or was fed bad input.`);
    }
  }
  return n;
}

const ratio = (a: number, b: number): number => (b === 0 ? 0 : a / b);

/** All metrics for n items: `scores` is [n × numClasses] row-major probabilities (or logits). */
export function classificationMetrics(
  scores: Float32Array,
  labels: ArrayLike<number>,
  numClasses: number,
  opts: MetricsOptions = {},
): ClassificationMetrics {
  const n = checkInputs(scores, labels, numClasses);
  const K = numClasses;
  const probs = opts.logits ? softmaxRows(scores, K) : scores;
  const k = opts.topK ?? (K > 5 ? 5 : 0);
  if (!Number.isInteger(k) || k < 0) throw new GraftError('INVALID_ARGUMENT', `top-k needs a whole number k ≥ 1, not ${k}.`);
  const wantWorst = opts.worst ?? DEFAULT_WORST;

  const confusion = Array.from({ length: K }, () => new Array<number>(K).fill(0));
  let correct = 0;
  let inTopK = 0;
  let lossSum = 0;
  const wrong: Misclassified[] = [];

  for (let i = 0; i < n; i++) {
    const o = i * K;
    const t = labels[i];
    let pred = 0;
    for (let j = 1; j < K; j++) if (scores[o + j] > scores[o + pred]) pred = j;
    confusion[t][pred]++;
    if (pred === t) correct++;
    else wrong.push({ index: i, trueLabel: t, predLabel: pred, probability: probs[o + pred], trueProbability: probs[o + t] });

    // rank of the true class under the same tie-break as argmax, so top-1 equals accuracy
    if (k > 0) {
      let rank = 0;
      for (let j = 0; j < K; j++) if (scores[o + j] > scores[o + t] || (scores[o + j] === scores[o + t] && j < t)) rank++;
      if (rank < k) inTopK++;
    }

    if (opts.logits) {
      let max = -Infinity;
      for (let j = 0; j < K; j++) max = Math.max(max, scores[o + j]);
      let sum = 0;
      for (let j = 0; j < K; j++) sum += Math.exp(scores[o + j] - max);
      lossSum += max + Math.log(sum) - scores[o + t];
    } else {
      lossSum -= Math.log(Math.max(probs[o + t], MIN_PROBABILITY));
    }
  }

  const perClass: ClassMetrics[] = [];
  for (let c = 0; c < K; c++) {
    let support = 0;
    let predicted = 0;
    for (let j = 0; j < K; j++) {
      support += confusion[c][j];
      predicted += confusion[j][c];
    }
    const tp = confusion[c][c];
    const precision = ratio(tp, predicted);
    const recall = ratio(tp, support);
    perClass.push({ precision, recall, f1: ratio(2 * precision * recall, precision + recall), support });
  }

  const present = perClass.filter((_, c) => perClass[c].support > 0 || confusion.some((row) => row[c] > 0));
  const mean = (key: keyof AverageMetrics) => ratio(present.reduce((s, m) => s + m[key], 0), present.length);
  const wmean = (key: keyof AverageMetrics) => perClass.reduce((s, m) => s + m[key] * m.support, 0) / n;

  wrong.sort((a, b) => b.probability - a.probability || a.index - b.index);

  return {
    n,
    numClasses: K,
    accuracy: correct / n,
    loss: lossSum / n,
    topK: k > 0 && k < K ? { k, accuracy: inTopK / n } : null,
    confusion,
    perClass,
    macro: { precision: mean('precision'), recall: mean('recall'), f1: mean('f1') },
    weighted: { precision: wmean('precision'), recall: wmean('recall'), f1: wmean('f1') },
    worst: wrong.slice(0, Math.max(0, wantWorst)),
  };
}
