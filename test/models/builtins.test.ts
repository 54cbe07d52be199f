import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isGraftError } from '../../src/errors.js';
import { loadModel } from '../../src/graph/serialize.js';
import { inferShapes } from '../../src/graph/shapes.js';
import { cutPoints } from '../../src/graph/surgery.js';
import { BUILTIN_MODELS, DEFAULT_BUILTIN, builtinCachePath, ensureBuiltin, getBuiltin, isBuiltin, listBuiltins, type BuiltinProgress } from '../../src/models/builtins.js';
import { META_OUTPUT_KIND, readLabels, readPreprocess } from '../../src/models/metadata.js';
import { evaluateUmdBundle, loadNsfwjsModel, nsfwjsPackage, type NsfwjsModel } from '../../src/models/nsfwjs.js';
import { numel } from '../../src/onnx/tensor.js';
import { removeQuietly } from '../../src/util/fs.js';
import { maxAbsDiff, rng, runOnnxNhwc, tf, useCpuBackend } from './tfjs-helpers.js';

const cacheRoot = mkdtempSync(join(tmpdir(), 'graft-builtins-'));

beforeAll(useCpuBackend);
afterAll(() => removeQuietly(cacheRoot));

/** Smooth random colour fields plus pixel noise, in [0, 1]: structured, unlike white noise. */
function structuredInput(size: number, seed: number): Float32Array {
  const r = rng(seed);
  const waves = Array.from({ length: 3 }, () => Array.from({ length: 4 }, () => ({ fx: r() * 0.1, fy: r() * 0.1, phase: r() * 6.3, amp: 0.1 + r() * 0.15 })));
  const out = new Float32Array(size * size * 3);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++)
      for (let c = 0; c < 3; c++) {
        let v = 0.5;
        for (const w of waves[c]) v += w.amp * Math.sin(w.fx * x + w.fy * y + w.phase);
        out[(y * size + x) * 3 + c] = Math.min(1, Math.max(0, v + (r() - 0.5) * 0.1));
      }
  return out;
}

/** A real picture: a block of Noto emoji from the emoji-datasource sheet, squashed to size×size, /255. */
async function imageInput(size: number): Promise<Float32Array> {
  const dir = dirname(createRequire(import.meta.url).resolve('emoji-datasource-google/package.json'));
  const { data } = await sharp(join(dir, 'img/google/sheets-256/64.png'))
    .extract({ left: 66 * 10, top: 66 * 20, width: 66 * 6, height: 66 * 6 })
    .flatten({ background: '#ffffff' })
    .resize(size, size, { fit: 'fill', kernel: 'linear' })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return Float32Array.from(data, (v) => v / 255);
}

async function tfjsPredict(model: NsfwjsModel, batch: Float32Array, shape: number[]): Promise<Float32Array> {
  const loaded = loadNsfwjsModel(model);
  const tfModel = await tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: loaded.modelJson.modelTopology, weightSpecs: loaded.specs as tf.io.WeightsManifestEntry[], weightData: loaded.weightData.slice().buffer }),
  );
  try {
    const x = tf.tensor(batch, shape);
    const y = tfModel.predict(x) as tf.Tensor;
    const out = y.dataSync() as Float32Array;
    x.dispose();
    y.dispose();
    return out;
  } finally {
    tfModel.dispose();
  }
}

describe('nsfwjs package', () => {
  it('is found on disk despite its exports map', () => {
    const pkg = nsfwjsPackage();
    expect(pkg.version).toBe('4.4.0');
    expect(statSync(join(pkg.dir, 'dist', 'models', 'mobilenet_v2', 'model.min.js')).isFile()).toBe(true);
  });

  it('loads model.json and dequantisable weights for both layers models', () => {
    for (const name of ['mobilenet_v2', 'inception_v3'] as const) {
      const m = loadNsfwjsModel(name);
      const topo = m.modelJson.modelTopology as { keras_version: string; model_config: { class_name: string } };
      expect(topo.keras_version).toBe('2.2.4');
      expect(topo.model_config.class_name).toBe('Model');
      expect(m.specs.every((s) => s.quantization?.dtype === 'uint8')).toBe(true);
      // uint8: one byte per value, shards concatenated in manifest order
      expect(m.weightData.byteLength).toBe(m.specs.reduce((n, s) => n + numel(s.shape), 0));
      expect(m.specs.reduce((n, s) => n + numel(s.shape), 0)).toBe(BUILTIN_MODELS[name].params);
    }
  });

  it('evaluates bundles with no require or process in scope, and stops runaway code', () => {
    expect(evaluateUmdBundle('module.exports = [typeof require, typeof process, typeof globalThis.process].join()', 'probe.js')).toBe('undefined,undefined,undefined');
    expect(evaluateUmdBundle('module.exports = {a: [1, 2]}', 'obj.js')).toEqual({ a: [1, 2] });
    let err: unknown;
    try {
      evaluateUmdBundle('while (true) {}', 'loop.js', 50);
    } catch (e) {
      err = e;
    }
    expect(isGraftError(err, 'MODEL_INVALID')).toBe(true);
  });
});

describe('builtin registry', () => {
  it('lists the nsfwjs models with mobilenet_v2 as default', () => {
    expect(DEFAULT_BUILTIN).toBe('mobilenet_v2');
    expect(listBuiltins().map((b) => b.name)).toEqual(['mobilenet_v2', 'inception_v3']);
    expect(isBuiltin('inception_v3')).toBe(true);
    expect(isBuiltin('toString')).toBe(false);
    expect(getBuiltin('inception_v3').preprocess.inputSize).toEqual([299, 299]);
    for (const b of listBuiltins()) expect(b.labels).toEqual(['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy']);
  });

  it('rejects an unknown name, listing the known ones', async () => {
    let err: unknown;
    try {
      await ensureBuiltin('resnet50', { cacheDir: cacheRoot });
    } catch (e) {
      err = e;
    }
    expect(isGraftError(err, 'MODEL_UNKNOWN_BUILTIN')).toBe(true);
    expect((err as Error).message).toMatch(/mobilenet_v2.*inception_v3/);
  });

  it('caches at <cache>/builtins/<name>-nsfwjs<version>-<importer>.onnx', () => {
    expect(builtinCachePath('mobilenet_v2', '/c')).toMatch(/^\/c\/builtins\/mobilenet_v2-nsfwjs4\.4\.0-imp\d+\.onnx$/);
  });
});

describe('builtins: ONNX in onnxruntime = nsfwjs in TensorFlow.js', () => {
  it('mobilenet_v2: converts once for concurrent callers, carries labels and preprocessing, matches tfjs', async () => {
    const events: BuiltinProgress[] = [];
    const t0 = performance.now();
    const [a, b] = await Promise.all([ensureBuiltin('mobilenet_v2', { cacheDir: cacheRoot, onProgress: (e) => events.push(e) }), ensureBuiltin('mobilenet_v2', { cacheDir: cacheRoot })]);
    const seconds = (performance.now() - t0) / 1000;
    expect(a.path).toBe(b.path);
    expect(a.path).toBe(builtinCachePath('mobilenet_v2', cacheRoot));
    // nothing but the finished file: the temp file was renamed into place
    expect(readdirSync(dirname(a.path))).toEqual([a.path.split('/').pop()]);
    expect(events.map((e) => e.phase)).toEqual(['load', 'convert', 'write', 'done']);

    const mtime = statSync(a.path).mtimeMs;
    const again: BuiltinProgress[] = [];
    await ensureBuiltin('mobilenet_v2', { cacheDir: cacheRoot, onProgress: (e) => again.push(e) });
    expect(again.map((e) => e.phase)).toEqual(['done']);
    expect(statSync(a.path).mtimeMs).toBe(mtime);

    const model = loadModel(a.path);
    expect(readLabels(model)).toEqual(['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy']);
    expect(readPreprocess(model)).toEqual({
      inputSize: [224, 224],
      resize: 'squash',
      cropPct: 1,
      interpolation: 'bilinear',
      rescale: 1 / 255,
      mean: [0, 0, 0],
      std: [1, 1, 1],
      channelOrder: 'RGB',
      layout: 'NCHW',
    });
    expect(model.metadata.get(META_OUTPUT_KIND)).toBe('probabilities');
    expect(model.graph.inputs).toEqual([{ name: 'input_1', dtype: 'float32', shape: ['N', 3, 224, 224] }]);
    expect(model.graph.outputs[0].name).toBe('dense_3');
    expect(model.graph.findNode('block_13_expand_relu')?.opType).toBe('Clip');
    expect(model.graph.findNode('flatten_1')?.outputs).toEqual(['flatten_1']);

    const size = 224;
    const batch = new Float32Array(2 * size * size * 3);
    batch.set(structuredInput(size, 1), 0);
    batch.set(await imageInput(size), size * size * 3);
    const shape = [2, size, size, 3];
    const [onnx] = await runOnnxNhwc(a.path, [{ data: batch, shape }]);
    const ref = await tfjsPredict('mobilenet_v2', batch, shape);
    const delta = maxAbsDiff(onnx.data, ref);
    console.log(`mobilenet_v2: conversion ${seconds.toFixed(2)} s, max |Δp| = ${delta.toExponential(2)}, p = ${Array.from(onnx.data, (v) => v.toFixed(4)).join(' ')}`);
    expect(delta).toBeLessThanOrEqual(1e-3);
    // both rows are distributions, and not the same one
    for (const row of [0, 1]) expect(onnx.data.subarray(row * 5, row * 5 + 5).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
    expect(maxAbsDiff(onnx.data.subarray(0, 5), onnx.data.subarray(5, 10))).toBeGreaterThan(0.01);
  });

  it('inception_v3 matches tfjs on an image', async () => {
    const t0 = performance.now();
    const { path } = await ensureBuiltin('inception_v3', { cacheDir: cacheRoot });
    const seconds = (performance.now() - t0) / 1000;
    const size = 299;
    const image = await imageInput(size);
    const shape = [1, size, size, 3];
    const [onnx] = await runOnnxNhwc(path, [{ data: image, shape }]);
    const ref = await tfjsPredict('inception_v3', image, shape);
    const delta = maxAbsDiff(onnx.data, ref);
    console.log(`inception_v3: conversion ${seconds.toFixed(2)} s, max |Δp| = ${delta.toExponential(2)}, p = ${Array.from(onnx.data, (v) => v.toFixed(4)).join(' ')}`);
    expect(delta).toBeLessThanOrEqual(1e-3);
    const model = loadModel(path);
    expect(readPreprocess(model)?.inputSize).toEqual([299, 299]);
    // the default feature layer (chosen by measurement, table in README.md): the 17×17 Inception-C
    // output, a point every path passes through, so the backbone cuts cleanly there
    const layer = BUILTIN_MODELS.inception_v3.defaultFeatureLayer!;
    expect(layer).toBe('mixed7');
    expect(cutPoints(model)).toContain(layer);
    expect(inferShapes(model).get(layer)?.shape?.slice(1)).toEqual([768, 17, 17]);
  });
});
