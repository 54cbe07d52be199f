import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraftError } from '../../src/errors.js';
import { float32, tensor } from '../../src/onnx/tensor.js';
import { Runtime } from '../../src/runtime/index.js';
import { gemmModel, linearStepModel, randoms } from './models.js';
import type linearTask from './tasks/linear.task.js';

const taskUrl = new URL('./tasks/linear.task.ts', import.meta.url);

describe('worker tasks', () => {
  let rt: Runtime;
  beforeAll(async () => {
    rt = await Runtime.create({ threads: 1 });
  });
  afterAll(async () => {
    await rt.close();
  });

  // data from known weights, no noise: SGD must find them
  const dim = 3;
  const n = 16;
  const wTrue = [0.5, -1.25, 2];
  const x = randoms(n * dim, 11);
  const t = Array.from({ length: n }, (_, i) => wTrue.reduce((s, wj, j) => s + wj * x[i * dim + j], 0));

  it('keeps state across calls and runs a session + in-place update per step', async () => {
    const task = await rt.loadTask<typeof linearTask>(taskUrl, { dim, lr: 0.2 });
    expect(await task.call('setup', linearStepModel(dim))).toEqual({ inputs: ['x', 't', 'w'], threads: 1 });

    // first step from w = 0: loss = mean(t²), update = lr · 2/n · (−t)·x, computed here independently
    const batch = { x: float32([n, dim], x), t: float32([n], t) };
    const loss0 = await task.call('step', batch);
    expect(loss0).toBeCloseTo(t.reduce((s, v) => s + v * v, 0) / n, 4);
    const w1 = await task.call('weights');
    expect(w1).toBeInstanceOf(Float32Array);
    for (let j = 0; j < dim; j++) {
      const g = t.reduce((s, ti, i) => s - ti * x[i * dim + j], 0);
      expect(w1[j]).toBeCloseTo((-0.2 * 2 * g) / n, 5);
    }

    let loss = loss0;
    for (let i = 0; i < 300; i++) loss = await task.call('step', batch);
    expect(loss).toBeLessThan(1e-6);
    const w = await task.call('weights');
    wTrue.forEach((v, j) => expect(w[j]).toBeCloseTo(v, 3));
    await task.dispose();
    await expect(task.call('weights')).rejects.toThrow(/disposed/);
  });

  it('serialises calls to one task in call order', async () => {
    const task = await rt.loadTask<typeof linearTask>(taskUrl, { dim, lr: 0.1 });
    const sizes = await Promise.all(Array.from({ length: 20 }, (_, i) => task.call('append', i)));
    expect(sizes).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(await task.call('log')).toEqual(Array.from({ length: 20 }, (_, i) => i));
    await task.dispose();
  });

  it('runs a session the main thread loaded onto the same worker', async () => {
    const w = [1, 2, -1, 0.5, 0, -3];
    const task = await rt.loadTask<typeof linearTask>(taskUrl, { dim, lr: 0.1 });
    const s = await rt.load(gemmModel(2, 3, w, [0.5, 0, 1]), { sameWorkerAs: task });
    const y = await task.call('forwardWith', { session: s.id, x: float32([1, 2], [1, 1]) });
    expect(y.dims).toEqual([1, 3]);
    expect(Array.from(y.data as Float32Array)).toEqual([3.5, -0.5, -2]);
    await s.release();
    await task.dispose();
  });

  it('keeps GraftError codes from task methods; other throws become RUNTIME_FAILED; unknown methods are refused', async () => {
    const task = await rt.loadTask<typeof linearTask>(taskUrl, { dim, lr: 0.1 });
    const fail = await task.call('fail').catch((e: unknown) => e);
    expect(fail).toBeInstanceOf(GraftError);
    expect((fail as GraftError).code).toBe('LABEL_MISMATCH');
    expect((fail as GraftError).message).toBe('a deliberate failure');
    const bug = await task.call('bug').catch((e: unknown) => e);
    expect((bug as GraftError).code).toBe('RUNTIME_FAILED');
    expect((bug as GraftError).message).toContain('a deliberate bug');
    const untyped = await rt.loadTask(taskUrl, { dim, lr: 0.1 });
    const unknown = await untyped.call('nope', 1).catch((e: unknown) => e);
    expect((unknown as GraftError).code).toBe('INVALID_ARGUMENT');
    expect((unknown as GraftError).message).toContain('no method "nope"');
    // still alive after all that
    expect(await task.call('append', 1)).toBe(1);
    await Promise.all([task.dispose(), untyped.dispose()]);
  });

  it('moves buffers listed for transfer into the worker', async () => {
    const task = await rt.loadTask<typeof linearTask>(taskUrl, { dim, lr: 0.2 });
    await task.call('setup', linearStepModel(dim));
    const xs = float32([n, dim], x);
    await task.call('step', { x: xs, t: tensor('float32', [n], Float32Array.from(t)) }, [xs.data.buffer as ArrayBuffer]);
    expect(xs.data.byteLength).toBe(0);
    await task.dispose();
  });
});
