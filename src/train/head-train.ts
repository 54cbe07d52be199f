/**
 * Scenario 2's training: a new head on cached backbone features, compiled to a training-step graph
 * and run by the trainer worker. Seconds, not minutes — the backbone never runs here.
 */
import { buildEvalStep, buildTrainStep } from '../autodiff/train-step.js';
import type { Runtime, TaskHandle } from '../runtime/index.js';
import { featureSource, type FeatureSet } from './feature-source.js';
import { fit, type EpochRecord, type FitResult, type TrainerMethods } from './fit.js';
import { buildHead, foldIntoLinear, type Head, type Standardizer } from './head.js';
import type { OptimizerConfig, ParamGroup } from './optim.js';
import type { ScheduleConfig, ScheduleName } from './schedule.js';
import type { TrainerInit } from './trainer.task.js';
import { compiledSteps, TRAINER_TASK, weightCopies } from './trainer.js';

export interface HeadTrainOptions {
  runtime: Runtime;
  epochs: number;
  batchSize: number;
  lr: number;
  optimizer: OptimizerConfig['name'];
  weightDecay: number;
  momentum?: number;
  schedule: ScheduleName;
  labelSmoothing: number;
  hidden?: number;
  dropout: number;
  /** Per-class loss weights (sklearn "balanced"), or undefined. */
  classWeights?: Float32Array;
  patience: number;
  /**
   * Standardise features (per dimension, train-set mean and std) before the head, folded into the
   * first linear layer afterwards — as sklearn's StandardScaler + LogisticRegression, but exported as
   * one Gemm. Default true: layers differ wildly in scale and Adam's defaults assume O(1) inputs.
   */
  standardize?: boolean;
  seed: number;
  signal?: AbortSignal;
  onEpoch?: (r: EpochRecord) => void;
}

export interface HeadTrainResult {
  /** The head with its trained (best-epoch) weights in its initializers, the standardisation folded in. */
  head: Head;
  /** The standardisation the head was trained behind (undefined with `standardize: false`)… */
  standardizer?: Standardizer;
  /** …and the best-epoch weights as trained, on standardised features: buildHead({ standardize }) + these
   * computes what `head` does, and trains on as the warm-up did (fine-tuning continues from here). */
  weights: Record<string, Float32Array>;
  fit: FitResult;
}

/** Parameter groups: weights decay, biases don't (fastai / timm practice). */
export function decayGroups(params: readonly string[], dims: ReadonlyMap<string, readonly number[]>, lrScale = 1): ParamGroup[] {
  const decay = params.filter((p) => (dims.get(p)?.length ?? 0) > 1);
  const noDecay = params.filter((p) => (dims.get(p)?.length ?? 0) <= 1);
  return [
    { params: decay, lrScale },
    { params: noDecay, lrScale, weightDecay: 0 },
  ].filter((g) => g.params.length > 0);
}

/** Per-dimension mean and inverse std of a feature set. */
export function fitStandardizer(set: FeatureSet): Standardizer {
  const { dim, features } = set;
  const n = features.length / dim;
  const mean = new Float64Array(dim);
  const sq = new Float64Array(dim);
  for (let r = 0; r < n; r++) {
    const o = r * dim;
    for (let d = 0; d < dim; d++) mean[d] += features[o + d];
  }
  for (let d = 0; d < dim; d++) mean[d] /= Math.max(1, n);
  for (let r = 0; r < n; r++) {
    const o = r * dim;
    for (let d = 0; d < dim; d++) sq[d] += (features[o + d] - mean[d]) ** 2;
  }
  const std = Array.from(sq, (s) => Math.sqrt(s / Math.max(1, n)));
  // A feature (almost) constant on the training set — a ReLU channel that never fires there — would get
  // a huge scale, and its slightest activation on a validation image, or once fine-tuning moves the
  // backbone, would read as thousands of standard deviations: the std is floored at a tenth of the
  // median feature's
  const sorted = [...std].sort((a, b) => a - b);
  const floor = Math.max(1e-6, 0.1 * sorted[sorted.length >> 1]);
  return { mean: Float32Array.from(mean), invStd: Float32Array.from(std, (s) => 1 / Math.max(s, floor)) };
}

function standardized(set: FeatureSet, s: Standardizer): FeatureSet {
  const out = new Float32Array(set.features.length);
  const { dim } = set;
  for (let i = 0; i < out.length; i++) {
    const d = i % dim;
    out[i] = (set.features[i] - s.mean[d]) * s.invStd[d];
  }
  return { ...set, features: out };
}

export async function trainHead(rawTrain: FeatureSet, rawVal: FeatureSet | undefined, numClasses: number, o: HeadTrainOptions): Promise<HeadTrainResult> {
  const scaler = o.standardize === false ? undefined : fitStandardizer(rawTrain);
  const train = scaler ? standardized(rawTrain, scaler) : rawTrain;
  const val = scaler && rawVal ? standardized(rawVal, scaler) : rawVal;
  const head = buildHead({ inputDim: train.dim, numClasses, hidden: o.hidden, dropout: o.dropout, seed: o.seed });
  const step = buildTrainStep(head.model, { trainable: head.params, labelSmoothing: o.labelSmoothing, sampleWeights: !!o.classWeights });
  const evalStep = buildEvalStep(head.model, { trainable: head.params });
  const source = featureSource(train, val, { batchSize: o.batchSize, seed: o.seed, classWeights: o.classWeights });
  const dims = new Map(head.params.map((p) => [p, head.model.graph.initializers.get(p)!.dims]));
  const weights = weightCopies(head.model.graph, head.params);
  const schedule: ScheduleConfig = { name: o.schedule, lr: o.lr, totalSteps: o.epochs * source.trainBatches };
  const init: TrainerInit = {
    ...compiledSteps(step, evalStep),
    weights,
    optimizer: { name: o.optimizer, weightDecay: o.weightDecay, momentum: o.momentum },
    groups: decayGroups(head.params, dims),
    schedule,
    seed: o.seed,
    // a head step is a few tiny ops: a second intra-op thread only adds synchronisation
    threads: 1,
  };
  const trainer = (await o.runtime.loadTask(TRAINER_TASK, init as never)) as unknown as TaskHandle<TrainerMethods>;
  try {
    const result = await fit({ trainer, source, numClasses, epochs: o.epochs, patience: o.patience, signal: o.signal, onEpoch: o.onEpoch });
    const best = (result.best && ((await trainer.call('bestWeights', undefined as never)) as Record<string, Float32Array> | undefined)) || weights;
    head.model.graph.setWeights(best, head.params);
    // the exported head reads raw features: the standardisation folded into its first linear layer
    // (params[0] and [1], that layer's weight and bias)
    if (scaler) foldIntoLinear(head.model.graph, head.params[0], head.params[1], scaler);
    return { head, ...(scaler ? { standardizer: scaler } : {}), weights: Object.fromEntries(head.params.map((p) => [p, Float32Array.from(best[p])])), fit: result };
  } finally {
    await trainer.dispose();
  }
}
