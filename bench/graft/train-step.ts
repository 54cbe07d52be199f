/**
 * graft's training-step throughput, the way `graft train --mode finetune` runs a step (src/train/finetune.ts):
 * the training-step graph compiled by buildTrainStep from the torchvision export (BatchNormalization nodes
 * kept), run by the trainer worker task (src/train/trainer.task.ts via Runtime.loadTask): ORT session, then
 * the AdamW update in place over the weights in the worker. A fixed synthetic batch of 16, no decoding in
 * the timed loop — as bench/torch/train.py. One configuration per process (peak RSS).
 */
import { buildEvalStep, buildTrainStep } from '../../src/autodiff/train-step.js';
import type { Model } from '../../src/graph/graph.js';
import { tailFrom } from '../../src/graph/surgery.js';
import { Runtime, type TaskHandle } from '../../src/runtime/index.js';
import type { TrainerMethods } from '../../src/train/fit.js';
import { toInt64 } from '../../src/train/fit.js';
import { compiledSteps, TRAINER_TASK, trainerInitTransfer, weightCopies } from '../../src/train/trainer.js';
import type { TrainerInit } from '../../src/train/trainer.task.js';
import { fill } from '../../test/fixtures/prng.js';
import { emit, lockstepLoop, round, timedLoop, type LoopOptions } from '../lib/measure.js';
import { finetuneModel, type TorchModel, type TrainConfig } from '../lib/models.js';

export interface StepArgs extends LoopOptions {
  model: TorchModel;
  config: TrainConfig;
  batchNorm: 'frozen' | 'train';
  batch: number;
  threads: number;
  size: number;
  classes: number;
  /**
   * Probe, not what graft train does: R trainer replicas on R worker threads with threads / R intra-op
   * threads each, every step giving each replica batch / R images at once. Each replica updates its own
   * copy of the weights — an upper bound on data-parallel speed: real data parallelism would also sum the
   * gradients and share the weights every step.
   */
  replicas?: number;
  /** Probe: ORT's intra-op threads spin between parallel sections (Runtime's `spin`), as PyTorch's OpenMP threads do. */
  spin?: boolean;
  /** One timed step per `step` line on stdin (measure.ts lockstepLoop; bench/finetune/paired.ts). */
  lockstep?: boolean;
}

export async function measureStep(a: StepArgs): Promise<void> {
  // the worker threads and the NCHWc probe first, outside compile_s (graft pays them once per process)
  const replicas = a.replicas ?? 1;
  if (a.threads % replicas || a.batch % replicas) throw new Error(`replicas (${replicas}) must divide threads (${a.threads}) and batch (${a.batch})`);
  const runtime = await Runtime.create({ threads: a.threads / replicas, workers: replicas, spin: a.spin });
  try {
    await measureWith(runtime, a);
  } finally {
    await runtime.close();
  }
}

async function measureWith(runtime: Runtime, a: StepArgs): Promise<void> {
  const replicas = a.replicas ?? 1;
  // as src/train/finetune.ts: convs with fed weights on ORT's blocked kernels when this machine has them
  const nchwcBlock = await runtime.nchwcBlock();
  const t0 = performance.now();
  const m = finetuneModel(a.model, a.config, a.classes);
  // last-stage-cached: what src/train/finetune.ts trains without augmentation — the tail after the frozen
  // prefix, fed the prefix's cached output (computed once per image for the whole run, not per step)
  const cached = a.config === 'last-stage-cached';
  const trained = cached ? tailFrom(m.model, m.prefixAt!) : m.model;
  const inDims = inputDims(trained, a);
  const step = buildTrainStep(trained, { trainable: m.trainable, batchNorm: a.batchNorm, nchwcBlock });
  const evalStep = buildEvalStep(trained, { trainable: m.trainable, extraInputs: step.bnStats.map((s) => s.input), nchwcBlock });
  const inits = m.model.graph.initializers;
  const weights = weightCopies(m.model.graph, [...m.trainable, ...step.bnStats.map((s) => s.input)]);
  const trainableParams = m.trainable.reduce((n, p) => n + inits.get(p)!.dims.reduce((x, y) => x * y, 1), 0);
  const init: TrainerInit = {
    ...compiledSteps(step, evalStep),
    weights,
    // torch.optim.AdamW(lr=1e-3, weight_decay=1e-2) on every trainable parameter, constant rate
    optimizer: { name: 'adamw', weightDecay: 1e-2 },
    groups: [{ params: m.trainable }],
    schedule: { name: 'constant', lr: 1e-3, totalSteps: 1_000_000 },
    seed: 0,
  };
  const compiledMs = performance.now() - t0;
  const trainers: TaskHandle<TrainerMethods>[] = [];
  // as src/train/finetune.ts: the worker takes over the initial weights and model bytes (replicas share one init: copied)
  const transfer = replicas === 1 ? trainerInitTransfer(init) : [];
  for (let i = 0; i < replicas; i++) trainers.push((await runtime.loadTask(TRAINER_TASK, init as never, { transfer })) as unknown as TaskHandle<TrainerMethods>);
  const sessionMs = performance.now() - t0 - compiledMs;
  const dims = [inDims[0] / replicas, ...inDims.slice(1)];
  const data = { dtype: 'float32' as const, dims, data: fill(0, dims, -2, 2) };
  const labels = toInt64(Int32Array.from({ length: dims[0] }, (_, i) => i % a.classes));
  let k = 0;
  const losses: number[] = [];
  // As graft's training loop hands batches over (src/train/fit.ts): each step's pixel buffer moves to the
  // worker instead of being copied, and the next batch is made while the worker runs this one, as the
  // loader decodes it.
  const fresh = () => trainers.map(() => ({ ...data, data: data.data.slice() }));
  let next = fresh();
  const loop = a.lockstep ? lockstepLoop : timedLoop;
  const r = await loop(
    async () => {
      const batches = next;
      const pending = Promise.all(trainers.map((t, i) => t.call('step', { data: batches[i], labels, step: k }, [batches[i].data.buffer as ArrayBuffer])));
      next = fresh();
      const outs = await pending;
      k++;
      losses.push(outs[0].loss);
    },
    a.batch,
    a,
  );
  emit({
    bench: 'train',
    model: a.model,
    config: a.config,
    batch_norm: a.batchNorm,
    batch: a.batch,
    size: a.size,
    classes: a.classes,
    threads: a.threads,
    ...(replicas > 1 ? { replicas } : {}),
    ...(a.spin ? { spin: true } : {}),
    trainable_params: trainableParams,
    graph_nodes: step.model.graph.nodes.length,
    step_input: dims.join('×'),
    compile_s: round(compiledMs / 1000),
    session_s: round(sessionMs / 1000),
    first_loss: round(losses[0], 4),
    last_loss: round(losses[losses.length - 1], 4),
    ...r,
  });
  await Promise.all(trainers.map((t) => t.dispose()));
}

/** The step's data input dims at this batch: the image batch, or the cached prefix output's shape. */
function inputDims(model: Model, a: StepArgs): number[] {
  const input = model.graph.inputs[0];
  if (a.config !== 'last-stage-cached') return [a.batch, 3, a.size, a.size];
  const dims = input.shape?.slice(1);
  if (!dims?.every((d): d is number => typeof d === 'number')) throw new Error(`${a.model}: the prefix output ${input.name} has no static shape`);
  return [a.batch, ...dims];
}
