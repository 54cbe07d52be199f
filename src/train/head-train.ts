/**
 * Scenario 2's training: a new head on cached backbone features, compiled to a training-step graph
 * and run by the trainer worker. Seconds, not minutes — the backbone never runs here.
 */
import { fileURLToPath } from 'node:url';
import { extname } from 'node:path';
import { buildEvalStep, buildTrainStep } from '../autodiff/train-step.js';
import { modelToBytes } from '../graph/serialize.js';
import type { Runtime, TaskHandle } from '../runtime/index.js';
import { float32 } from '../onnx/tensor.js';
import { featureSource, type FeatureSet } from './feature-source.js';
import { fit, type EpochRecord, type FitResult, type TrainerMethods } from './fit.js';
import { buildHead, type Head } from './head.js';
import type { OptimizerConfig, ParamGroup } from './optim.js';
import type { ScheduleConfig, ScheduleName } from './schedule.js';
import type { TrainerInit } from './trainer.task.js';

/** The trainer task module next to this one (.ts when running from sources, .js when built). */
export const TRAINER_TASK = new URL(`./trainer.task${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

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
  seed: number;
  signal?: AbortSignal;
  onEpoch?: (r: EpochRecord) => void;
}

export interface HeadTrainResult {
  /** The head with its trained (best-epoch) weights in its initializers. */
  head: Head;
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

export async function trainHead(train: FeatureSet, val: FeatureSet | undefined, numClasses: number, o: HeadTrainOptions): Promise<HeadTrainResult> {
  const head = buildHead({ inputDim: train.dim, numClasses, hidden: o.hidden, dropout: o.dropout, seed: o.seed });
  const step = buildTrainStep(head.model, { trainable: head.params, labelSmoothing: o.labelSmoothing, sampleWeights: !!o.classWeights });
  const evalStep = buildEvalStep(head.model, { trainable: head.params });
  const source = featureSource(train, val, { batchSize: o.batchSize, seed: o.seed, classWeights: o.classWeights });
  const dims = new Map(head.params.map((p) => [p, head.model.graph.initializers.get(p)!.dims]));
  const weights = Object.fromEntries(head.params.map((p) => [p, Float32Array.from(head.model.graph.initializers.get(p)!.data as Float32Array)]));
  const schedule: ScheduleConfig = { name: o.schedule, lr: o.lr, totalSteps: o.epochs * source.trainBatches };
  const init: TrainerInit = {
    stepModel: modelToBytes(step.model),
    step,
    evalModel: modelToBytes(evalStep.model),
    evalDataInput: evalStep.dataInput,
    evalLogits: evalStep.logits,
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
    const best = result.best?.state.weights ?? weights;
    for (const p of head.params) head.model.graph.initializers.set(p, float32(dims.get(p)!, best[p]));
    return { head, fit: result };
  } finally {
    await trainer.dispose();
  }
}
