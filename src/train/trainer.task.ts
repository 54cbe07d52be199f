/**
 * The training worker: holds the trainable weights, optimizer state and BN statistics, and runs one
 * compiled training step per call — ORT session, then the optimizer update in place — so the weights
 * never cross to the main thread between steps. The main thread only sends batches and reads metrics.
 *
 * Everything random (dropout masks) derives from (seed, step), so a resumed run continues exactly.
 */
import type { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import { GraftError } from '../errors.js';
import type { Tensor } from '../onnx/tensor.js';
import { defineTask, transfer, type TaskContext } from '../runtime/task.js';
import { concatFloat32 } from '../util/arrays.js';
import { fork } from '../util/random.js';
import { saveCheckpoint, type Progress } from './checkpoint.js';
import { ParamArena } from './kernels/param-arena.js';
import { clipGradNorm, Optimizer, type OptimizerConfig, type OptimizerState, type ParamGroup } from './optim.js';
import { scheduleAt, type ScheduleConfig } from './schedule.js';

export interface TrainerStepSpec {
  dataInput: string;
  labels: string;
  sampleWeight?: string;
  loss: string;
  logits: string;
  params: { name: string; dims: number[]; grad: string }[];
  dropout: { input: string; shape: (number | string | null)[]; ratio: number }[];
  bnStats: { input: string; dims: number[]; updated: string }[];
}

export interface TrainerInit {
  stepModel: Uint8Array;
  step: TrainerStepSpec;
  evalModel: Uint8Array;
  evalDataInput: string;
  evalLogits: string;
  /** Initial values of the trainable weights and running statistics, by name. */
  weights: Record<string, Float32Array>;
  optimizer: OptimizerConfig;
  groups: ParamGroup[];
  schedule: ScheduleConfig;
  seed: number;
  /** Clip the global gradient norm to this value (undefined = no clipping). */
  clipNorm?: number;
  threads?: number;
}

export interface StepResult {
  loss: number;
  lr: number;
  gradNorm: number;
  /** Logits of the batch (before the update), for running accuracy. */
  logits: Float32Array;
}

/**
 * Images per evaluation run. ORT's arena keeps the largest size its session ever needed, and the
 * evaluation session lives beside the step's for the whole run: a batch of 16 evaluated in one run left
 * 251 MB (MobileNetV2) and 163 MB (ResNet-18) of arena behind for the rest of training, runs of 4 left
 * 69 and 73 MB, at the same time per image (bench/finetune/eval-memory.ts).
 */
export const EVAL_CHUNK = 4;

export interface TrainerState {
  weights: Record<string, Float32Array>;
  optimizer: OptimizerState;
}

/** What restore takes: the weights, and when given the optimizer's state and the best weights so far. */
export type RestoreArgs = Pick<TrainerState, 'weights'> & Partial<Pick<TrainerState, 'optimizer'>> & { best?: Record<string, Float32Array> };

/**
 * Trainable weights, their gradients and the optimizer's state share one WebAssembly memory, where the
 * SIMD kernels update them in place (room for weight, gradient and two moment buffers each): the
 * trainable initial weights are copied there; the others (BN statistics) are kept as given.
 */
function placeWeights(spec: TrainerStepSpec, initial: Record<string, Float32Array>): { arena: ParamArena | undefined; weights: Map<string, Float32Array> } {
  for (const p of spec.params) if (!initial[p.name]) throw new GraftError('INVALID_ARGUMENT', `no initial value for weight ${p.name}`);
  const arena = ParamArena.create(4 * ParamArena.floatsFor(spec.params.map((p) => initial[p.name].length)));
  const trained = new Set(spec.params.map((p) => p.name));
  const weights = new Map<string, Float32Array>();
  for (const [k, v] of Object.entries(initial)) {
    const w = arena && trained.has(k) ? arena.alloc(v.length) : v;
    if (w !== v) w.set(v);
    weights.set(k, w);
  }
  return { arena, weights };
}

export default defineTask(async (init: TrainerInit, ctx: TaskContext) => {
  // No function created in this scope may mention `init`: V8 would keep it in the scope's context,
  // which the methods below hold for the whole run — and with it the initial weights (45 MB for
  // ResNet-18, copied into the arena) and both models' bytes (in the sessions once created).
  const { step: spec, seed, clipNorm, evalDataInput, evalLogits } = init;
  const { arena, weights } = placeWeights(spec, init.weights);
  const optimizer = new Optimizer(init.optimizer, init.groups, { arena });
  let schedule = init.schedule;
  const sessionOpts = init.threads ? { threads: init.threads } : {};
  const stepSession: InferenceSession = await ctx.createSession(init.stepModel, sessionOpts);
  const evalSession: InferenceSession = await ctx.createSession(init.evalModel, sessionOpts);
  // The weights live in fixed Float32Arrays updated in place (restore() copies into them too), so their
  // ORT tensors are made once. Gradients are fetched into preallocated buffers: ORT writes them in place
  // instead of allocating (and page-faulting in) fresh output memory every step.
  const weightTensors = new Map<string, OrtTensor>();
  const weightFeeds = (names: Iterable<{ name: string; dims: number[] }>): Record<string, OrtTensor> => {
    const feeds: Record<string, OrtTensor> = {};
    for (const p of names) {
      let t = weightTensors.get(p.name);
      if (!t) weightTensors.set(p.name, (t = ctx.toOrt({ dtype: 'float32', dims: p.dims, data: weights.get(p.name)! })));
      feeds[p.name] = t;
    }
    return feeds;
  };
  const grads = new Map(spec.params.map((p) => [p.name, arena ? arena.alloc(weights.get(p.name)!.length) : new Float32Array(weights.get(p.name)!.length)]));
  const fetches: Record<string, OrtTensor | null> = { [spec.loss]: null, [spec.logits]: null };
  for (const p of spec.params) fetches[p.grad] = ctx.toOrt({ dtype: 'float32', dims: p.dims, data: grads.get(p.name)! });
  for (const s of spec.bnStats) fetches[s.updated] = null;

  const dropoutMask = (d: TrainerStepSpec['dropout'][number], batch: number, step: number, k: number): OrtTensor => {
    const dims = d.shape.map((x, i) => (i === 0 ? batch : x));
    if (!dims.every((x): x is number => typeof x === 'number')) throw new GraftError('MODEL_UNSUPPORTED', `dropout input ${d.input} has a non-static shape.`);
    const n = dims.reduce((a, b) => a * b, 1);
    const rng = fork(seed, 'dropout', step, k);
    const keep = 1 / (1 - d.ratio);
    // drop where u < ratio·2^32 for uniform uint32 u: rng.next() < ratio without a float per element
    const bits = rng.fillUint32(new Uint32Array(n));
    const threshold = d.ratio * 2 ** 32;
    const mask = new Float32Array(n);
    for (let i = 0; i < n; i++) mask[i] = bits[i] < threshold ? 0 : keep;
    return ctx.toOrt({ dtype: 'float32', dims, data: mask });
  };

  /** The best epoch's weights (keepBest), allocated at the first and overwritten in place after. */
  const best = new Map<string, Float32Array>();
  const keepAsBest = (from: Iterable<[string, Float32Array]>) => {
    for (const [k, w] of from) {
      let b = best.get(k);
      if (!b) best.set(k, (b = new Float32Array(w.length)));
      b.set(w);
    }
  };

  const evalParams = spec.params.map((p) => ({ name: p.name, dims: p.dims })).concat(spec.bnStats.map((s) => ({ name: s.input, dims: s.dims })));

  return {
    /** One optimisation step on a batch; `step` is the global step index (drives schedule and masks). */
    async step(args: { data: Tensor; labels: Tensor; sampleWeight?: Tensor; step: number }) {
      const batch = args.data.dims[0];
      const feeds: Record<string, OrtTensor> = {
        [spec.dataInput]: ctx.toOrt(args.data),
        [spec.labels]: ctx.toOrt(args.labels),
        ...weightFeeds(spec.params),
        ...weightFeeds(spec.bnStats.map((s) => ({ name: s.input, dims: s.dims }))),
      };
      if (spec.sampleWeight) {
        if (!args.sampleWeight) throw new GraftError('INVALID_ARGUMENT', 'this training step expects per-sample weights.');
        feeds[spec.sampleWeight] = ctx.toOrt(args.sampleWeight);
      }
      spec.dropout.forEach((d, k) => (feeds[d.input] = dropoutMask(d, batch, args.step, k)));
      const out = await stepSession.run(feeds, fetches);
      const loss = (out[spec.loss].data as Float32Array)[0];
      const logits = ctx.fromOrt(out[spec.logits]).data as Float32Array;
      const { lr, momentum } = scheduleAt(schedule, args.step);
      if (!Number.isFinite(loss)) return transfer({ loss, lr, gradNorm: NaN, logits }, [logits.buffer as ArrayBuffer]);
      const gradNorm = clipNorm ? clipGradNorm(grads.values(), clipNorm) : NaN;
      optimizer.step(weights, grads, lr, momentum);
      for (const s of spec.bnStats) weights.get(s.input)!.set(out[s.updated].data as Float32Array);
      return transfer({ loss, lr, gradNorm, logits }, [logits.buffer as ArrayBuffer]);
    },

    /** Logits for a batch with the current weights (dropout off). */
    async evaluate(args: { data: Tensor }) {
      // images: float32 (imageSource and featureSource make nothing else)
      const { dtype, dims } = args.data;
      const data = args.data.data as Float32Array;
      const n = dims[0];
      const per = n > 0 ? data.length / n : 0;
      const parts: Float32Array[] = [];
      for (let i = 0; i < n; i += EVAL_CHUNK) {
        const k = Math.min(EVAL_CHUNK, n - i);
        const chunk: Tensor = { dtype, dims: [k, ...dims.slice(1)], data: data.subarray(i * per, (i + k) * per) };
        const out = await evalSession.run({ [evalDataInput]: ctx.toOrt(chunk), ...weightFeeds(evalParams) });
        parts.push(ctx.fromOrt(out[evalLogits]).data as Float32Array);
      }
      const logits = parts.length === 1 ? parts[0] : concatFloat32(parts);
      return transfer(logits, [logits.buffer as ArrayBuffer]);
    },

    /**
     * Copies of the weights and optimizer state (for checkpoints and export), each in a buffer of its
     * own and moved to the caller. Cloning the state instead would copy the whole parameter arena that
     * its arrays view (weights, gradients and moments: four times the weights), and posting it would
     * copy that again.
     */
    state() {
      const w: Record<string, Float32Array> = {};
      for (const [k, v] of weights) w[k] = v.slice();
      const { step, buffers } = optimizer.exportState();
      const copies: OptimizerState['buffers'] = {};
      for (const [name, bufs] of Object.entries(buffers)) copies[name] = Object.fromEntries(Object.entries(bufs).map(([k, b]) => [k, b.slice()]));
      const state: TrainerState = { weights: w, optimizer: { step, buffers: copies } };
      const arrays = [...Object.values(w), ...Object.values(copies).flatMap((b) => Object.values(b))];
      return transfer(state, arrays.map((a) => a.buffer as ArrayBuffer));
    },

    /**
     * Restores a checkpoint taken with state(), or only weights (the optimizer state left as is), and
     * the best weights so far when given.
     */
    restore(s: RestoreArgs) {
      const fits = (k: string, v: Float32Array) => {
        const w = weights.get(k);
        if (!w || w.length !== v.length) throw new GraftError('CHECKPOINT_INVALID', `the checkpoint's weight ${k} does not fit this model.`);
        return w;
      };
      // everything checked before anything is overwritten
      const targets = Object.entries(s.weights).map(([k, v]) => [fits(k, v), v] as const);
      for (const [k, v] of Object.entries(s.best ?? {})) fits(k, v);
      for (const [w, v] of targets) w.set(v);
      if (s.best) keepAsBest(Object.entries(s.best));
      if (s.optimizer) optimizer.importState(s.optimizer);
      return optimizer.stepCount;
    },

    /**
     * The current weights become the best so far, copied within the worker: an improving epoch costs
     * one pass over the weights instead of a copy of them posted to the main thread and left there for
     * the collector (a 4-epoch InceptionV3 run peaked 80–100 MB higher that way).
     */
    keepBest() {
      keepAsBest(weights);
    },

    /** The best weights become the current ones (the final evaluation and export use them). */
    useBest() {
      for (const [k, b] of best) weights.get(k)!.set(b);
    },

    /** Copies of the best weights, moved to the caller; undefined before any keepBest(). */
    bestWeights() {
      if (!best.size) return undefined;
      const copies = Object.fromEntries([...best].map(([k, b]) => [k, b.slice()]));
      return transfer(copies, Object.values(copies).map((a) => a.buffer as ArrayBuffer));
    },

    /**
     * Writes a checkpoint of the trainer straight from its arrays (weights, optimizer state, best
     * weights), with the run's progress and warm-up weights from the main thread, which never holds them.
     */
    checkpoint(c: { out: string; fingerprint: string; progress: Progress; warmupWeights?: Record<string, Float32Array> }) {
      const state: TrainerState = { weights: Object.fromEntries(weights), optimizer: optimizer.exportState() };
      saveCheckpoint(c.out, c.fingerprint, { ...c.progress, state, bestWeights: best.size ? Object.fromEntries(best) : undefined, warmupWeights: c.warmupWeights });
    },

    setSchedule(s: ScheduleConfig) {
      schedule = s;
    },
  };
});
