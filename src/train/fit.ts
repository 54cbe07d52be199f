/**
 * The epoch loop shared by head training and fine-tuning: feed batches to the trainer worker, track
 * running train metrics from the step logits, evaluate on the validation set after every epoch, have
 * the worker keep the best weights (by validation loss), stop early, checkpoint, and stop cleanly on NaN
 * or abort. The weights stay in the worker throughout: callers ask it for the best ones at the end.
 */
import { GraftError, isGraftError, throwIfAborted } from '../errors.js';
import type { Tensor } from '../onnx/tensor.js';
import type { TaskHandle } from '../runtime/index.js';
import type { EpochRecord } from './metrics-json.js';
import type { Progress } from './checkpoint.js';
import type { RestoreArgs, StepResult, TrainerState } from './trainer.task.js';

export interface TrainBatch {
  data: Tensor;
  labels: Int32Array;
  sampleWeight?: Float32Array;
  /** Image paths of the rows (validation batches), so predictions can be traced back to files. */
  paths?: string[];
}

export interface BatchSource {
  /**
   * Training batches of one epoch (shuffled / augmented by the source, deterministically per epoch),
   * from batch `fromBatch` on (a resumed epoch skips what it already did without decoding it).
   */
  train(epoch: number, fromBatch?: number): AsyncIterable<TrainBatch>;
  /** Validation batches in a fixed order; empty when there is no validation set. */
  val(): AsyncIterable<TrainBatch>;
  readonly trainBatches: number;
  readonly hasVal: boolean;
}

export type { EpochRecord };

/** The methods of trainer.task.ts as seen from the main thread. */
export interface TrainerMethods {
  step(args: { data: Tensor; labels: Tensor; sampleWeight?: Tensor; step: number }): StepResult;
  evaluate(args: { data: Tensor }): Float32Array;
  state(): TrainerState;
  /** Without `optimizer`, only the weights are replaced; `best` sets the best weights. Returns the optimizer's step count. */
  restore(s: RestoreArgs): number;
  /** The current weights become the best so far (kept in the worker). */
  keepBest(): void;
  /** The best weights become the current ones. */
  useBest(): void;
  /** Copies of the best weights; undefined before any keepBest(). */
  bestWeights(): Record<string, Float32Array> | undefined;
  /** Writes a checkpoint (src/train/checkpoint.ts) of the worker's state with the run's progress. */
  checkpoint(c: { out: string; fingerprint: string; progress: Progress; warmupWeights?: Record<string, Float32Array> }): void;
  setSchedule(s: unknown): void;
  [method: string]: (args: never) => unknown;
}

export interface FitOptions {
  trainer: TaskHandle<TrainerMethods>;
  source: BatchSource;
  numClasses: number;
  epochs: number;
  /** Epoch to start at (resume) and the global step of its first batch. */
  startEpoch?: number;
  startStep?: number;
  /** Resuming mid-epoch: batches of startEpoch already done, and the running sums at that point. */
  partial?: PartialEpoch;
  /** Stop when validation loss has not improved by minDelta for this many epochs (0 = never). */
  patience?: number;
  minDelta?: number;
  /** History so far (resume) and the best epoch so far (its weights already the worker's best). */
  history?: EpochRecord[];
  best?: BestEpoch;
  phase?: string;
  /** Added to epoch numbers in the records (epochs of an earlier phase). */
  epochOffset?: number;
  signal?: AbortSignal;
  onStep?: (e: { epoch: number; batch: number; batches: number; loss: number; lr: number }) => void;
  onEpoch?: (r: EpochRecord) => void;
  /**
   * Called after each epoch — and when aborted mid-epoch, with `partial` — with the progress needed to
   * resume from that point; the worker's state goes with it (TrainerMethods.checkpoint).
   */
  checkpoint?: (c: { epoch: number; step: number; history: EpochRecord[]; best?: BestEpoch; partial?: PartialEpoch }) => Promise<void>;
}

export interface PartialEpoch {
  batch: number;
  lossSum: number;
  correct: number;
  seen: number;
  seconds: number;
}

/**
 * Best epoch by validation loss (the last epoch when there is no validation set). Its weights — what is
 * exported — are the worker's best weights (TrainerMethods.bestWeights); not its optimizer state:
 * nothing resumes from the best epoch.
 */
export interface BestEpoch {
  valLoss: number;
  epoch: number;
}

export interface FitResult {
  history: EpochRecord[];
  best?: BestEpoch;
  step: number;
  stoppedEarly: boolean;
}

export interface EvalOutcome {
  loss: number;
  accuracy: number;
  logits: Float32Array;
  labels: Int32Array;
  /** Paths of the rows, when the source gives them. */
  paths: string[];
}

function crossEntropyRows(logits: Float32Array, labels: Int32Array, K: number): { loss: number; correct: number } {
  let loss = 0;
  let correct = 0;
  for (let n = 0; n < labels.length; n++) {
    let max = -Infinity;
    let arg = 0;
    for (let k = 0; k < K; k++) {
      const v = logits[n * K + k];
      if (v > max) {
        max = v;
        arg = k;
      }
    }
    let sum = 0;
    for (let k = 0; k < K; k++) sum += Math.exp(logits[n * K + k] - max);
    loss += Math.log(sum) + max - logits[n * K + labels[n]];
    if (arg === labels[n]) correct++;
  }
  return { loss, correct };
}

export const toInt64 = (labels: Int32Array): Tensor => ({ dtype: 'int64', dims: [labels.length], data: BigInt64Array.from(labels, (v) => BigInt(v)) });

/** Runs the validation set through the trainer's evaluation graph. */
export async function evaluateWith(trainer: TaskHandle<TrainerMethods>, source: BatchSource, K: number, signal?: AbortSignal): Promise<EvalOutcome | undefined> {
  if (!source.hasVal) return undefined;
  const parts: Float32Array[] = [];
  const labelParts: Int32Array[] = [];
  const paths: string[] = [];
  for await (const b of source.val()) {
    throwIfAborted(signal);
    parts.push((await trainer.call('evaluate', { data: b.data })) as Float32Array);
    labelParts.push(b.labels);
    paths.push(...(b.paths ?? []));
  }
  const n = labelParts.reduce((a, l) => a + l.length, 0);
  const logits = new Float32Array(n * K);
  const labels = new Int32Array(n);
  let off = 0;
  parts.forEach((p, i) => {
    logits.set(p, off * K);
    labels.set(labelParts[i], off);
    off += labelParts[i].length;
  });
  const { loss, correct } = crossEntropyRows(logits, labels, K);
  return { loss: loss / Math.max(1, n), accuracy: correct / Math.max(1, n), logits, labels, paths };
}

export async function fit(o: FitOptions): Promise<FitResult> {
  const K = o.numClasses;
  const history = [...(o.history ?? [])];
  let best = o.best;
  let step = o.startStep ?? 0;
  let sinceBest = 0;
  const patience = o.patience ?? 0;
  const minDelta = o.minDelta ?? 0;
  for (let epoch = o.startEpoch ?? 0; epoch < o.epochs; epoch++) {
    const resumed = epoch === (o.startEpoch ?? 0) ? o.partial : undefined;
    const t0 = performance.now() - (resumed?.seconds ?? 0) * 1000;
    let lossSum = resumed?.lossSum ?? 0;
    let correct = resumed?.correct ?? 0;
    let seen = resumed?.seen ?? 0;
    let batch = resumed?.batch ?? 0;
    let lr = 0;
    try {
      for await (const b of o.source.train(epoch, batch)) {
        throwIfAborted(o.signal);
        const n = b.labels.length;
        // the batch's pixel/feature buffer moves to the worker instead of being copied
        const r = (await o.trainer.call(
          'step',
          { data: b.data, labels: toInt64(b.labels), sampleWeight: b.sampleWeight ? { dtype: 'float32', dims: [n], data: b.sampleWeight } : undefined, step },
          [(b.data.data as Float32Array).buffer as ArrayBuffer],
        )) as StepResult;
        if (!Number.isFinite(r.loss)) {
          throw new GraftError(
            'TRAINING_DIVERGED',
            `the training loss became ${r.loss} at epoch ${epoch + 1}, step ${step}. Lower the learning rate (try --lr find) or clip gradients (--clip-grad 1); the last good checkpoint was kept.`,
          );
        }
        step++;
        batch++;
        lr = r.lr;
        lossSum += r.loss * n;
        correct += crossEntropyRows(r.logits, b.labels, K).correct;
        seen += n;
        o.onStep?.({ epoch, batch, batches: o.source.trainBatches, loss: r.loss, lr });
      }
      throwIfAborted(o.signal);
    } catch (e) {
      if (o.checkpoint && isGraftError(e, 'ABORTED') && batch > 0) {
        const partial = { batch, lossSum, correct, seen, seconds: (performance.now() - t0) / 1000 };
        await o.checkpoint({ epoch, step, history, best, partial });
      }
      throw e;
    }
    const val = await evaluateWith(o.trainer, o.source, K, o.signal);
    const record: EpochRecord = {
      epoch: (o.epochOffset ?? 0) + epoch + 1,
      trainLoss: lossSum / Math.max(1, seen),
      trainAccuracy: correct / Math.max(1, seen),
      valLoss: val?.loss ?? null,
      valAccuracy: val?.accuracy ?? null,
      lr,
      seconds: (performance.now() - t0) / 1000,
      ...(o.phase ? { phase: o.phase } : {}),
    };
    history.push(record);
    o.onEpoch?.(record);
    const score = val ? val.loss : record.trainLoss;
    const improved = !best || score < best.valLoss - minDelta || !val;
    if (improved) {
      await o.trainer.call('keepBest', undefined as never);
      best = { valLoss: score, epoch: record.epoch };
      sinceBest = 0;
    } else {
      sinceBest++;
    }
    if (o.checkpoint) await o.checkpoint({ epoch: epoch + 1, step, history, best });
    if (patience > 0 && sinceBest >= patience && epoch + 1 < o.epochs) return { history, best, step, stoppedEarly: true };
  }
  return { history, best, step, stoppedEarly: false };
}
