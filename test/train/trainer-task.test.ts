/**
 * The trainer worker's hand-over: what the main thread sends it (the step's names and shapes, not its
 * Model; buffers moved, not copied) and what it keeps for the run (not the initial weights it copied
 * into its arena, nor the models' bytes once the sessions exist).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { buildEvalStep, buildTrainStep } from '../../src/autodiff/train-step.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { int64 } from '../../src/onnx/tensor.js';
import { fromOrt, toOrt } from '../../src/runtime/ort.js';
import { unwrapTransfer, type TaskContext } from '../../src/runtime/task.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import { buildHead } from '../../src/train/head.js';
import { restoreTransfer, trainerInitTransfer, trainerStepSpec } from '../../src/train/trainer.js';
import trainerTask, { EVAL_CHUNK, type StepResult, type TrainerInit, type TrainerState } from '../../src/train/trainer.task.js';

const D = 64;
const K = 3;

function headInit(): TrainerInit {
  const head = buildHead({ inputDim: D, numClasses: K, seed: 0 });
  const step = buildTrainStep(head.model, { trainable: head.params });
  const evalStep = buildEvalStep(head.model, { trainable: head.params });
  return {
    stepModel: modelToBytes(step.model),
    step: trainerStepSpec(step),
    evalModel: modelToBytes(evalStep.model),
    evalDataInput: evalStep.dataInput,
    evalLogits: evalStep.logits,
    weights: Object.fromEntries(head.params.map((p) => [p, Float32Array.from(head.model.graph.initializers.get(p)!.data as Float32Array)])),
    optimizer: { name: 'adamw' },
    groups: [{ params: head.params }],
    schedule: { name: 'constant', lr: 1e-3, totalSteps: 10 },
    seed: 0,
    threads: 1,
  };
}

/** The task's context as a worker gives it, in this thread (sessions made directly). */
const context: TaskContext = {
  threads: 1,
  session: () => {
    throw new Error('no runtime sessions here');
  },
  createSession: (model, opts) => ort.InferenceSession.create(model as Uint8Array, { intraOpNumThreads: opts?.threads ?? 1 }),
  toOrt,
  fromOrt,
};

/** A full garbage collection, after the current job has let go of its WeakRef targets. */
async function collectGarbage(): Promise<void> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  for (let i = 0; i < 2; i++) {
    await new Promise((r) => setTimeout(r, 0));
    gc();
  }
}

describe('trainer worker hand-over', () => {
  it('sends the step spec without the step Model', () => {
    const head = buildHead({ inputDim: D, numClasses: K, seed: 0 });
    const step = buildTrainStep(head.model, { trainable: head.params, sampleWeights: true });
    const spec = trainerStepSpec(step);
    expect(spec).not.toHaveProperty('model');
    expect(spec).toEqual({ dataInput: step.dataInput, labels: step.labels, sampleWeight: step.sampleWeight, loss: step.loss, logits: step.logits, params: step.params, dropout: step.dropout, bnStats: step.bnStats });
    expect(trainerStepSpec(buildTrainStep(head.model, { trainable: head.params }))).not.toHaveProperty('sampleWeight');
  });

  it('moves whole buffers once and copies views into larger or shared memory', () => {
    const init = headInit();
    const whole = Object.values(init.weights);
    init.stepModel = Uint8Array.from(init.stepModel);
    // a small Buffer is a view into Node's shared pool (as modelToBytes gives for a small model)
    init.evalModel = Buffer.from(init.evalModel);
    expect(init.evalModel.byteLength).toBeLessThan(init.evalModel.buffer.byteLength);
    init.weights.view = new Float32Array(100).subarray(10, 20);
    init.weights.shared = new Float32Array(new SharedArrayBuffer(16));
    init.weights.again = whole[0];
    const list = trainerInitTransfer(init);
    expect(list).toHaveLength(1 + whole.length);
    expect(new Set(list)).toEqual(new Set([init.stepModel.buffer, ...whole.map((w) => w.buffer)]));
  });

  it('moves a restored state\'s own buffers, each once, and copies views and shared memory', () => {
    const w = Float32Array.from([1, 2]);
    const m = new Float32Array(2);
    const best = Float32Array.from([3, 4]);
    const view = new Float32Array(8).subarray(2, 4);
    const shared = new Float32Array(new SharedArrayBuffer(8));
    const list = restoreTransfer({ weights: { w, again: w, view }, optimizer: { step: 1, buffers: { w: { m, shared } } }, best: { w: best } });
    expect(list).toHaveLength(3);
    expect(new Set(list)).toEqual(new Set([w.buffer, m.buffer, best.buffer]));
    expect(restoreTransfer({ weights: {} })).toEqual([]);
  });

  it('keeps neither the initial weights nor the model bytes once set up, and still trains', async () => {
    const held: WeakRef<object>[] = [];
    const setUp = async () => {
      const init = headInit();
      for (const w of Object.values(init.weights)) held.push(new WeakRef(w));
      held.push(new WeakRef(init.stepModel), new WeakRef(init.evalModel), new WeakRef(init));
      return trainerTask(init, context);
    };
    const trainer = await setUp();
    await collectGarbage();
    expect(held.map((r) => r.deref() !== undefined)).toEqual(held.map(() => false));

    const data = { dtype: 'float32' as const, dims: [4, D], data: Float32Array.from({ length: 4 * D }, (_, i) => Math.sin(i)) };
    const labels = int64([4], [0, 1, 2, 0]);
    const losses: number[] = [];
    for (let s = 0; s < 20; s++) losses.push((unwrapTransfer(await trainer.step({ data, labels, step: s })).value as StepResult).loss);
    expect(losses.at(-1)).toBeLessThan(losses[0]);
  });

  it('restores weights alone without touching the optimizer state', async () => {
    const trainer = await trainerTask(headInit(), context);
    const data = { dtype: 'float32' as const, dims: [4, D], data: Float32Array.from({ length: 4 * D }, (_, i) => Math.cos(i)) };
    for (let s = 0; s < 3; s++) await trainer.step({ data, labels: int64([4], [0, 1, 2, 0]), step: s });
    const before = unwrapTransfer(trainer.state()).value as TrainerState;
    const zeros = Object.fromEntries(Object.entries(before.weights).map(([k, w]) => [k, new Float32Array(w.length)]));
    expect(trainer.restore({ weights: zeros })).toBe(3);
    const after = unwrapTransfer(trainer.state()).value as TrainerState;
    expect(after.weights).toEqual(zeros);
    expect(after.optimizer).toEqual(before.optimizer);
    expect(Object.keys(after.optimizer.buffers).length).toBeGreaterThan(0);
  });

  it('evaluates a batch in runs of EVAL_CHUNK images, each a view into the batch, with the logits of one image at a time', async () => {
    const init = headInit();
    const evalBatches: number[] = [];
    // the evaluation session is the one made from the evaluation model: record the batch of each run
    const spying: TaskContext = {
      ...context,
      async createSession(model, opts) {
        const s = await context.createSession(model, opts);
        if (model !== init.evalModel) return s;
        const run = s.run.bind(s);
        s.run = ((feeds: Record<string, ort.Tensor>, ...rest: unknown[]) => {
          evalBatches.push(feeds[init.evalDataInput].dims[0]);
          return (run as (...a: unknown[]) => ReturnType<typeof s.run>)(feeds, ...rest);
        }) as typeof s.run;
        return s;
      },
    };
    const trainer = await trainerTask(init, spying);
    const n = 2 * EVAL_CHUNK + 2;
    const data = Float32Array.from({ length: n * D }, (_, i) => Math.sin(i / 7));
    const logits = unwrapTransfer(await trainer.evaluate({ data: { dtype: 'float32', dims: [n, D], data } })).value as Float32Array;
    expect(evalBatches).toEqual([EVAL_CHUNK, EVAL_CHUNK, 2]);
    expect(logits.length).toBe(n * K);
    for (let i = 0; i < n; i++) {
      const one = unwrapTransfer(await trainer.evaluate({ data: { dtype: 'float32', dims: [1, D], data: data.slice(i * D, (i + 1) * D) } })).value as Float32Array;
      // to float rounding: a Gemm over 4 rows may sum in another order than over 1
      one.forEach((v, c) => expect(logits[i * K + c], `image ${i} class ${c}`).toBeCloseTo(v, 5));
    }
    expect(unwrapTransfer(await trainer.evaluate({ data: { dtype: 'float32', dims: [0, D], data: new Float32Array(0) } })).value).toEqual(new Float32Array(0));
  });

  it('hands over its state as copies in buffers of their own, moved rather than cloned', async () => {
    const trainer = await trainerTask(headInit(), context);
    const data = { dtype: 'float32' as const, dims: [4, D], data: Float32Array.from({ length: 4 * D }, (_, i) => Math.cos(i)) };
    for (let s = 0; s < 2; s++) await trainer.step({ data, labels: int64([4], [0, 1, 2, 0]), step: s });
    const { value, transfer } = unwrapTransfer(trainer.state());
    const state = value as TrainerState;
    const arrays = [...Object.values(state.weights), ...Object.values(state.optimizer.buffers).flatMap((b) => Object.values(b))];
    expect(arrays.length).toBe(3 * Object.keys(state.weights).length); // weights, Adam's m and v
    // a view into the parameter arena would drag the whole arena along when posted
    for (const a of arrays) expect(a.buffer.byteLength).toBe(a.byteLength);
    expect(new Set(transfer)).toEqual(new Set(arrays.map((a) => a.buffer)));
    // copies: the next step leaves them as they were
    const kept = arrays.map((a) => a.slice());
    await trainer.step({ data, labels: int64([4], [0, 1, 2, 0]), step: 2 });
    arrays.forEach((a, i) => expect(a).toEqual(kept[i]));
    const later = unwrapTransfer(trainer.state()).value as TrainerState;
    expect(later.optimizer.step).toBe(state.optimizer.step + 1);
    expect(Object.values(later.weights)[0]).not.toEqual(Object.values(state.weights)[0]);
  });

  it('keeps the best weights itself, writes checkpoints from its own arrays and restores both', async () => {
    const trainer = await trainerTask(headInit(), context);
    const data = { dtype: 'float32' as const, dims: [4, D], data: Float32Array.from({ length: 4 * D }, (_, i) => Math.sin(i / 3)) };
    const labels = int64([4], [0, 1, 2, 0]);
    const stateNow = () => unwrapTransfer(trainer.state()).value as TrainerState;
    const bestNow = () => unwrapTransfer(trainer.bestWeights()).value as Record<string, Float32Array> | undefined;
    expect(bestNow()).toBeUndefined();
    for (let s = 0; s < 2; s++) await trainer.step({ data, labels, step: s });
    trainer.keepBest();
    const atBest = stateNow();
    for (let s = 2; s < 4; s++) await trainer.step({ data, labels, step: s });
    const current = stateNow();
    expect(current.weights).not.toEqual(atBest.weights);
    // copies of the kept weights, not views of the live ones
    const best = bestNow()!;
    expect(best).toEqual(atBest.weights);
    await trainer.step({ data, labels, step: 4 });
    expect(best).toEqual(atBest.weights);
    expect(bestNow()).toEqual(atBest.weights);

    const out = mkdtempSync(join(tmpdir(), 'graft-trainer-ckpt-'));
    try {
      const now = stateNow();
      const warmupWeights = { 'head.w': Float32Array.from([1, 2, 3]) };
      trainer.checkpoint({ out, fingerprint: 'fp', progress: { phase: 'finetune', epoch: 3, step: 5, history: [], best: { valLoss: 0.5, epoch: 1 }, extra: { lr: 0.1 } }, warmupWeights });
      const ckpt = loadCheckpoint(out, 'fp');
      expect(ckpt.state).toEqual(now);
      expect(ckpt.bestWeights).toEqual(atBest.weights);
      expect(ckpt.warmupWeights).toEqual(warmupWeights);
      expect({ phase: ckpt.phase, epoch: ckpt.epoch, step: ckpt.step, best: ckpt.best, extra: ckpt.extra }).toEqual({ phase: 'finetune', epoch: 3, step: 5, best: { valLoss: 0.5, epoch: 1 }, extra: { lr: 0.1 } });

      // a fresh trainer restored from it continues from the same state with the same best weights
      const resumed = await trainerTask(headInit(), context);
      expect(resumed.restore({ ...ckpt.state, best: ckpt.bestWeights })).toBe(5);
      expect(unwrapTransfer(resumed.state()).value).toEqual(now);
      expect(unwrapTransfer(resumed.bestWeights()).value).toEqual(atBest.weights);
      resumed.useBest();
      expect((unwrapTransfer(resumed.state()).value as TrainerState).weights).toEqual(atBest.weights);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }

    // a later keepBest replaces the best weights; useBest makes them current
    trainer.keepBest();
    const kept = stateNow().weights;
    await trainer.step({ data, labels, step: 5 });
    expect(stateNow().weights).not.toEqual(kept);
    trainer.useBest();
    expect(stateNow().weights).toEqual(kept);
  });

  it('refuses best weights that do not fit the model', async () => {
    const trainer = await trainerTask(headInit(), context);
    const weights = (unwrapTransfer(trainer.state()).value as TrainerState).weights;
    const [name] = Object.keys(weights);
    expect(() => trainer.restore({ weights, best: { ...weights, [name]: new Float32Array(1) } })).toThrow(/does not fit/);
    expect(() => trainer.restore({ weights, best: { nope: new Float32Array(1) } })).toThrow(/nope does not fit/);
    // refused whole: the current weights are left as they were
    const zeros = Object.fromEntries(Object.entries(weights).map(([k, w]) => [k, new Float32Array(w.length)]));
    expect(() => trainer.restore({ weights: zeros, best: { nope: new Float32Array(1) } })).toThrow(/does not fit/);
    expect((unwrapTransfer(trainer.state()).value as TrainerState).weights).toEqual(weights);
    expect(unwrapTransfer(trainer.bestWeights()).value).toBeUndefined();
  });
});
