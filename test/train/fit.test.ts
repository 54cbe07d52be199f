/**
 * fit()'s bookkeeping around the trainer: what it asks the worker for each epoch and which epoch it
 * keeps as the best — checked against a scripted trainer, so only the loop's own logic is under test.
 */
import { describe, expect, it } from 'vitest';
import type { TaskHandle } from '../../src/runtime/index.js';
import { fit, type BatchSource, type TrainBatch, type TrainerMethods } from '../../src/train/fit.js';

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

/**
 * A trainer whose validation logits get better, then worse (val losses fall for two epochs, then rise);
 * `kept` records the step count at each keepBest.
 */
function scriptedTrainer(): { handle: TaskHandle<TrainerMethods>; calls: string[]; kept: number[] } {
  const calls: string[] = [];
  const kept: number[] = [];
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
      if (method === 'keepBest') return void kept.push(steps);
      throw new Error(`unexpected call ${method}`);
    },
  };
  return { handle: handle as unknown as TaskHandle<TrainerMethods>, calls, kept };
}

describe('fit', () => {
  it('has the worker keep each better epoch’s weights and checkpoints the progress after every epoch', async () => {
    const { handle, calls, kept } = scriptedTrainer();
    const checkpoints: { epoch: number; step: number; best?: number }[] = [];
    const r = await fit({
      trainer: handle,
      source: source(true),
      numClasses: K,
      epochs: 4,
      checkpoint: async (c) => void checkpoints.push({ epoch: c.epoch, step: c.step, best: c.best?.epoch }),
    });
    expect(r.best).toEqual({ valLoss: r.history[1].valLoss, epoch: 2 });
    // epochs 1 and 2 improve (after steps 1 and 2); 3 and 4 do not
    expect(kept).toEqual([1, 2]);
    // the weights never come to this thread
    expect(new Set(calls)).toEqual(new Set(['step', 'evaluate', 'keepBest']));
    expect(checkpoints).toEqual([
      { epoch: 1, step: 1, best: 1 },
      { epoch: 2, step: 2, best: 2 },
      { epoch: 3, step: 3, best: 2 },
      { epoch: 4, step: 4, best: 2 },
    ]);
  });

  it('without a validation set keeps every epoch, so the last', async () => {
    const { handle, kept } = scriptedTrainer();
    const r = await fit({ trainer: handle, source: source(false), numClasses: K, epochs: 3 });
    expect(r.best?.epoch).toBe(3);
    expect(kept).toEqual([1, 2, 3]);
  });

  it('resumed with a best epoch, keeps it until a later epoch beats its loss', async () => {
    const { handle, kept } = scriptedTrainer();
    // the scripted losses: epoch 1 (margin 1) is worse than a resumed best of 0.2, epoch 2 (margin 2) better
    const r = await fit({ trainer: handle, source: source(true), numClasses: K, epochs: 2, best: { valLoss: 0.2, epoch: 7 } });
    expect(r.history[0].valLoss).toBeGreaterThan(0.2);
    expect(r.history[1].valLoss).toBeLessThan(0.2);
    expect(kept).toEqual([2]);
    expect(r.best).toEqual({ valLoss: r.history[1].valLoss, epoch: 2 });
  });
});
