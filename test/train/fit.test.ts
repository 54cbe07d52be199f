/**
 * fit()'s bookkeeping around the trainer: what it asks the worker for each epoch and what it keeps of
 * the best epoch — checked against a scripted trainer, so only the loop's own logic is under test.
 */
import { describe, expect, it } from 'vitest';
import type { TaskHandle } from '../../src/runtime/index.js';
import { fit, type BatchSource, type TrainBatch, type TrainerMethods } from '../../src/train/fit.js';
import type { TrainerState } from '../../src/train/trainer.task.js';

const K = 2;
const batch = (): TrainBatch => ({ data: { dtype: 'float32', dims: [2, 1], data: new Float32Array(2) }, labels: Int32Array.from([0, 1]) });
const source = (hasVal: boolean): BatchSource => ({
  async *train() {
    yield batch();
  },
  async *val() {
    if (hasVal) yield batch();
  },
  trainBatches: 1,
  hasVal,
});

/** A trainer whose validation logits get better, then worse (val losses fall for two epochs, then rise). */
function scriptedTrainer(): { handle: TaskHandle<TrainerMethods>; calls: string[] } {
  const calls: string[] = [];
  let evaluations = 0;
  let steps = 0;
  const margins = [1, 2, 0.5, 0.2];
  const handle = {
    async call(method: string) {
      calls.push(method);
      if (method === 'step') return { loss: 0.5, lr: 1e-3, gradNorm: NaN, logits: Float32Array.from([1, 0, 0, 1]), step: ++steps };
      if (method === 'evaluate') {
        const m = margins[evaluations++];
        return Float32Array.from([m, 0, 0, m]);
      }
      if (method === 'state') return { weights: { w: Float32Array.from([steps]) }, optimizer: { step: steps, buffers: { w: { m: new Float32Array(1), v: new Float32Array(1) } } } } satisfies TrainerState;
      throw new Error(`unexpected call ${method}`);
    },
  };
  return { handle: handle as unknown as TaskHandle<TrainerMethods>, calls };
}

describe('fit', () => {
  it('keeps the best epoch’s weights without its optimizer state, asking for the state once per epoch', async () => {
    const { handle, calls } = scriptedTrainer();
    const checkpoints: { epoch: number; best?: number; state: TrainerState }[] = [];
    const r = await fit({
      trainer: handle,
      source: source(true),
      numClasses: K,
      epochs: 4,
      checkpoint: async (c) => void checkpoints.push({ epoch: c.epoch, best: c.best?.epoch, state: c.state }),
    });
    expect(r.best?.epoch).toBe(2);
    expect(r.best).toEqual({ valLoss: r.history[1].valLoss, epoch: 2, weights: { w: Float32Array.from([2]) } });
    expect(calls.filter((c) => c === 'state')).toHaveLength(4);
    expect(checkpoints.map((c) => [c.epoch, c.best, c.state.optimizer.step])).toEqual([
      [1, 1, 1],
      [2, 2, 2],
      [3, 2, 3],
      [4, 2, 4],
    ]);
  });

  it('asks for no state when neither a better epoch nor a checkpoint needs it', async () => {
    const { handle, calls } = scriptedTrainer();
    const r = await fit({ trainer: handle, source: source(true), numClasses: K, epochs: 4 });
    // epochs 1 and 2 improve; 3 and 4 do not
    expect(calls.filter((c) => c === 'state')).toHaveLength(2);
    expect(r.best?.weights).toEqual({ w: Float32Array.from([2]) });
  });

  it('without a validation set keeps the last epoch', async () => {
    const { handle } = scriptedTrainer();
    const r = await fit({ trainer: handle, source: source(false), numClasses: K, epochs: 3 });
    expect(r.best?.epoch).toBe(3);
    expect(r.best?.weights).toEqual({ w: Float32Array.from([3]) });
  });
});
