import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraftError } from '../../src/errors.js';
import { modelFromBytes, saveModel } from '../../src/graph/serialize.js';
import { float32, int64, tensor } from '../../src/onnx/tensor.js';
import { Runtime } from '../../src/runtime/index.js';
import { nchwcBlockSize } from '../../src/runtime/nchwc-probe.js';
import { convModel, convRef, gemmModel, gemmRef, int64Model, randoms } from './models.js';

async function failure(p: Promise<unknown>): Promise<GraftError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(GraftError);
    return e as GraftError;
  }
  throw new Error('expected a rejection');
}

describe('Runtime sessions', () => {
  let rt: Runtime;
  beforeAll(async () => {
    rt = await Runtime.create({ threads: 2 });
  });
  afterAll(async () => {
    await rt.close();
  });

  const inF = 5;
  const outF = 4;
  const w = randoms(inF * outF, 1);
  const b = randoms(outF, 2);
  const gemm = gemmModel(inF, outF, w, b, 0.5, 2);

  it('runs a Gemm built in code and matches the JS computation', async () => {
    const s = await rt.load(gemm, { name: 'gemm' });
    expect(s.inputs).toEqual([{ name: 'x', dtype: 'float32', dims: ['N', inF] }]);
    expect(s.outputs).toEqual([{ name: 'y', dtype: 'float32', dims: ['N', outF] }]);
    const x = randoms(3 * inF, 3);
    const out = await s.run({ x: float32([3, inF], x) });
    expect(out.y.dtype).toBe('float32');
    expect(out.y.dims).toEqual([3, outF]);
    expect(out.y.data).toBeInstanceOf(Float32Array);
    const ref = gemmRef(x, 3, inF, outF, w, b, 0.5, 2);
    Array.from(out.y.data as Float32Array).forEach((v, i) => expect(v).toBeCloseTo(ref[i], 5));
    await s.release();
  });

  it('runs a strided, padded Conv + Relu and matches direct convolution', async () => {
    const spec = { cin: 3, cout: 4, k: 3, stride: 2, pad: 1 };
    const cw = randoms(spec.cout * spec.cin * 9, 4);
    const cb = randoms(spec.cout, 5);
    const s = await rt.load(convModel(spec, cw, cb));
    expect(s.inputs[0].dims).toEqual(['N', 3, 'H', 'W']);
    const [n, h, wd] = [2, 7, 6];
    const x = randoms(n * spec.cin * h * wd, 6);
    const out = await s.run({ x: float32([n, spec.cin, h, wd], x) });
    const ref = convRef(x, n, h, wd, spec, cw, cb);
    expect(out.y.dims).toEqual(ref.dims);
    expect(ref.data.some((v) => v === 0) && ref.data.some((v) => v > 0)).toBe(true); // Relu did something
    const got = out.y.data as Float32Array;
    for (let i = 0; i < ref.data.length; i++) expect(Math.abs(got[i] - ref.data[i])).toBeLessThan(1e-5);
    await s.release();
  });

  it('passes int64 as BigInt64Array both ways and computes only the fetched outputs', async () => {
    const s = await rt.load(int64Model());
    const x = int64([3], [-5n, 0n, 2n ** 40n]);
    const all = await s.run({ x });
    expect(all.y.data).toBeInstanceOf(BigInt64Array);
    expect(Array.from(all.y.data as BigInt64Array)).toEqual([2n, 7n, 2n ** 40n + 7n]);
    expect(Array.from(all.twice.data as BigInt64Array)).toEqual([-10n, 0n, 2n ** 41n]);
    const some = await s.run({ x }, ['twice']);
    expect(Object.keys(some)).toEqual(['twice']);
    await s.release();
  });

  it('copies feeds by default and moves them with transfer: true', async () => {
    const s = await rt.load(gemm);
    const x = float32([1, inF], [1, 2, 3, 4, 5]);
    const expected = gemmRef([1, 2, 3, 4, 5], 1, inF, outF, w, b, 0.5, 2);
    const copied = await s.run({ x });
    expect(x.data.length).toBe(inF); // still ours
    const moved = await s.run({ x }, { transfer: true });
    expect(x.data.byteLength).toBe(0); // detached: the worker owns the buffer now
    for (const out of [copied, moved]) Array.from(out.y.data as Float32Array).forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5));

    // a view into a larger buffer: without transfer only the view's bytes travel and the buffer stays ours
    const big = new Float32Array(1000).fill(9);
    big.set([1, 2, 3, 4, 5], 10);
    const view = tensor('float32', [1, inF], big.subarray(10, 15));
    const viaView = await s.run({ x: view });
    expect(big.length).toBe(1000);
    Array.from(viaView.y.data as Float32Array).forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5));
    await s.release();
  });

  it("turns bad feeds into RUNTIME_FAILED with ORT's message and a hint; the session stays usable", async () => {
    const s = await rt.load(gemm, { name: 'gemm' });
    const dims = await failure(s.run({ x: float32([2, inF + 1]) }));
    expect(dims.code).toBe('RUNTIME_FAILED');
    expect(dims.message).toContain('Got invalid dimensions for input: x');
    expect(dims.message).toContain(`expects x: float32 [N, ${inF}]`);
    expect(dims.message).toContain(`given x: float32 [2, ${inF + 1}]`);
    expect((dims.cause as Error).message).toContain('Got invalid dimensions');

    const dtype = await failure(s.run({ x: tensor('int32', [1, inF], new Int32Array(inF)) }));
    expect(dtype.code).toBe('RUNTIME_FAILED');
    expect(dtype.message).toContain('Unexpected input data type');

    const missing = await failure(s.run({ z: float32([1, inF]) }));
    expect(missing.code).toBe('RUNTIME_FAILED');
    expect(missing.message).toContain("input 'x' is missing");

    const unsupported = await failure(s.run({ x: tensor('bfloat16', [1, inF], new Uint16Array(inF)) }));
    expect(unsupported.code).toBe('INVALID_ARGUMENT');

    const ok = await s.run({ x: float32([1, inF]) });
    expect(ok.y.dims).toEqual([1, outF]);
    await s.release();
    expect((await failure(s.run({ x: float32([1, inF]) }))).message).toContain('released');
  });

  it('reports bad models: MODEL_INVALID with ORT\'s message, FILE_NOT_FOUND for a missing path', async () => {
    const bad = await failure(rt.load(new TextEncoder().encode('definitely not an onnx model')));
    expect(bad.code).toBe('MODEL_INVALID');
    expect(bad.message).toContain('protobuf parsing failed');
    const truncated = await failure(rt.load(gemm.subarray(0, gemm.length - 9)));
    expect(truncated.code).toBe('MODEL_INVALID');
    const missing = await failure(rt.load(join(tmpdir(), 'graft-no-such-model.onnx')));
    expect(missing.code).toBe('FILE_NOT_FOUND');
  });

  it('loads from a path (weights in an external data file) and applies freeDimensionOverrides', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'graft-rt-'));
    const path = join(dir, 'wide.onnx');
    const [wi, wo] = [64, 8];
    const ww = randoms(wi * wo, 7);
    const wb = randoms(wo, 8);
    saveModel(modelFromBytes(gemmModel(wi, wo, ww, wb)), path, { externalData: true });
    expect(existsSync(`${path}.data`)).toBe(true);
    const x = randoms(2 * wi, 9);
    const ref = gemmRef(x, 2, wi, wo, ww, wb);
    for (const overrides of [undefined, { N: 2 }]) {
      const s = await rt.load(path, { freeDimensionOverrides: overrides });
      expect(s.name).toBe('wide.onnx');
      expect(s.inputs[0].dims).toEqual([overrides ? 2 : 'N', wi]);
      expect(s.outputs[0].dims).toEqual([overrides ? 2 : 'N', wo]);
      const y = (await s.run({ x: float32([2, wi], x) })).y.data as Float32Array;
      ref.forEach((v, i) => expect(y[i]).toBeCloseTo(v, 4));
      if (overrides) expect((await failure(s.run({ x: float32([3, wi]) }))).message).toContain('Got invalid dimensions');
      await s.release();
    }
    const typo = await failure(rt.load(path, { freeDimensionOverrides: { batch: 2 } }));
    expect(typo.code).toBe('INVALID_ARGUMENT');
    expect(typo.message).toContain('"batch"');
  });

  it('shares one ORT session between loads of the same bytes and options, with independent handles', async () => {
    const a = await rt.load(gemm);
    const b2 = await rt.load(Uint8Array.from(gemm)); // same bytes, different array
    const c = await rt.load(gemm, { optimization: 'basic' });
    expect(b2.id).toBe(a.id);
    expect(c.id).not.toBe(a.id);
    await a.release();
    expect((await b2.run({ x: float32([1, inF]) })).y.dims).toEqual([1, outF]); // b2 unaffected
    await b2.release();
    const d = await rt.load(gemm);
    expect(d.id).not.toBe(a.id); // the shared session went with its last handle
    await Promise.all([c.release(), d.release()]);
  });

  it('rejects runs that were aborted', async () => {
    const s = await rt.load(gemm);
    const ac = new AbortController();
    ac.abort();
    expect((await failure(s.run({ x: float32([1, inF]) }, { signal: ac.signal }))).code).toBe('ABORTED');
    await s.release();
  });

  it("reports the worker's NCHWc block size, the one the in-process probe finds", async () => {
    const block = await rt.nchwcBlock();
    expect([0, 8, 16]).toContain(block);
    expect(block).toBe(await nchwcBlockSize());
    expect(await rt.nchwcBlock()).toBe(block);
  });
});

describe('Runtime worker crashes', () => {
  const taskUrl = new URL('./tasks/linear.task.ts', import.meta.url);
  const gemm = gemmModel(2, 3, [1, 2, -1, 0.5, 0, -3], [0.5, 0, 1]);

  it('rejects every pending call on a dead worker, never reuses it, and keeps other workers going', async () => {
    const rt = await Runtime.create({ threads: 1, workers: 2 });
    try {
      const a = await rt.load(gemm, { name: 'a' });
      const other = await rt.load(gemmModel(2, 1, [1, 1], [0]), { name: 'other' });
      const victim = await rt.loadTask(taskUrl, { dim: 2, lr: 0.1 }, { sameWorkerAs: a });
      const killer = await rt.loadTask(taskUrl, { dim: 2, lr: 0.1 }, { sameWorkerAs: a });
      expect(a.host).toBe(victim.host);
      expect(other.host).not.toBe(a.host);

      const pending = victim.call('hang');
      const exit = killer.call('exit', 7);
      for (const p of [pending, exit]) {
        const e = await failure(p);
        expect(e.code).toBe('RUNTIME_CRASHED');
        expect(e.message).toContain('exited with code 7');
      }
      const afterwards = await failure(a.run({ x: float32([1, 2]) }));
      expect(afterwards.code).toBe('RUNTIME_CRASHED');
      expect(afterwards.message).toContain('session "a"');

      // the other worker is untouched; a new load goes to a fresh worker, not the dead one
      expect((await other.run({ x: float32([1, 2], [3, 4]) })).y.data).toEqual(Float32Array.of(7));
      const again = await rt.load(gemm);
      expect(again.host).not.toBe(a.host);
      expect(Array.from((await again.run({ x: float32([1, 2], [1, 1]) })).y.data as Float32Array)).toEqual([3.5, -0.5, -2]);
    } finally {
      await rt.close();
    }
  });

  it('treats an uncaught exception in a task timer as a crash', async () => {
    const rt = await Runtime.create({ threads: 1 });
    try {
      const s = await rt.load(gemm, { name: 'victim' });
      const task = await rt.loadTask(taskUrl, { dim: 2, lr: 0.1 }, { sameWorkerAs: s });
      expect(await task.call('crashLater')).toBe('scheduled');
      const e = await failure(task.call('hang'));
      expect(e.code).toBe('RUNTIME_CRASHED');
      expect(e.message).toContain('deliberate crash in a timer');
      expect((await failure(s.run({ x: float32([1, 2]) }))).code).toBe('RUNTIME_CRASHED');
    } finally {
      await rt.close();
    }
  });

  it('close() with a timeout ends a worker whose task never finishes and fails its pending call', async () => {
    const rt = await Runtime.create({ threads: 1 });
    const task = await rt.loadTask(taskUrl, { dim: 2, lr: 0.1 });
    const hung = task.call('hang');
    const t0 = Date.now();
    await rt.close({ timeoutMs: 300 });
    expect(Date.now() - t0).toBeLessThan(5000);
    const e = await failure(hung);
    expect(e.code).toBe('RUNTIME_FAILED');
    expect(e.message).toContain('closed before it finished calling hang()');
  });

  it('refuses work after close()', async () => {
    const rt = await Runtime.create({ threads: 1 });
    const s = await rt.load(gemm);
    await rt.close();
    await rt.close(); // idempotent
    expect((await failure(s.run({ x: float32([1, 2]) }))).code).toBe('RUNTIME_FAILED');
    expect((await failure(rt.load(gemm))).message).toContain('closed');
  });
});
