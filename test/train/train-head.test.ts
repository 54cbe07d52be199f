/**
 * Scenario 2 end to end on real images: emoji of four categories made at test time, the builtin
 * MobileNetV2 as a frozen feature extractor, a new head. It must beat a linear classifier on raw pixels
 * trained the same way in the same test, and the exported model must give the same probabilities in
 * plain onnxruntime as graft's own classifier.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataset } from '../../src/data/dataset.js';
import { splitDataset } from '../../src/data/split.js';
import { Runtime } from '../../src/runtime/index.js';
import { openClassifier } from '../../src/tasks/classifier.js';
import { trainHead } from '../../src/train/head-train.js';
import { readMetricsJson } from '../../src/train/metrics-json.js';
import { train, HEAD_DEFAULTS } from '../../src/train/train.js';
import { makeEmojiDataset } from '../helpers/emoji.js';

const CATEGORIES = ['Animals & Nature', 'Food & Drink', 'Travel & Places', 'Flags'];
let root: string;
let data: string;
let runtime: Runtime;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'graft-train-head-'));
  data = join(root, 'data');
  await makeEmojiDataset(data, { categories: CATEGORIES, perClass: 100, seed: 3, augment: true, size: 96 });
  runtime = await Runtime.create();
}, 120_000);

afterAll(async () => {
  await runtime.close();
});

/** Raw pixels (16×16 RGB, /255) of each image: the baseline's features. */
async function rawPixels(paths: string[]): Promise<Float32Array> {
  const out = new Float32Array(paths.length * 768);
  for (const [i, p] of paths.entries()) {
    const px = await sharp(p).flatten({ background: '#ffffff' }).resize(16, 16, { fit: 'fill' }).removeAlpha().raw().toBuffer();
    for (let j = 0; j < 768; j++) out[i * 768 + j] = px[j] / 255;
  }
  return out;
}

describe('graft train --mode head', () => {
  it('beats a raw-pixel linear baseline, writes OUT, and the exported model predicts the same in plain onnxruntime', async () => {
    const out = join(root, 'out');
    const cacheDir = join(root, 'cache');
    const events: string[] = [];
    await train({ data, out, runtime, cacheDir, seed: 1, onEvent: (e) => events.push(e.type) });
    expect(events).toContain('epoch');
    for (const f of ['model.onnx', 'labels.json', 'metrics.json', 'report.html']) expect(existsSync(join(out, f)), f).toBe(true);
    const metrics = readMetricsJson(out);
    expect(metrics.classes).toEqual([...CATEGORIES].sort());
    expect(metrics.n.train + metrics.n.val).toBe(400);
    expect(metrics.confusion!.flat().reduce((a, b) => a + b, 0)).toBe(metrics.n.val);

    // baseline: the same head trainer on raw pixels of the same split
    const ds = await loadDataset(data);
    const split = splitDataset(ds, { val: HEAD_DEFAULTS.val, seed: 1 });
    const tr = split.train.items;
    const va = split.val!.items;
    const base = await trainHead(
      { features: await rawPixels(tr.map((i) => i.path)), labels: Int32Array.from(tr, (i) => i.label), dim: 768 },
      { features: await rawPixels(va.map((i) => i.path)), labels: Int32Array.from(va, (i) => i.label), dim: 768 },
      4,
      { runtime, epochs: 30, batchSize: 32, lr: 1e-3, optimizer: 'adamw', weightDecay: 1e-4, schedule: 'one-cycle', labelSmoothing: 0, dropout: 0.2, patience: 10, seed: 1 },
    );
    const baseline = base.fit.history[base.fit.best!.epoch - 1].valAccuracy!;
    expect(metrics.featureLayer).toBe('block_13_expand_relu');
    expect(metrics.accuracy!).toBeGreaterThan(baseline + 0.1);

    // plain onnxruntime vs graft's classifier on the exported model
    const classifier = await openClassifier(out, { runtime });
    expect(classifier.labels).toEqual(metrics.classes);
    const images = va.slice(0, 6).map((i) => i.path);
    const { batchToTensor } = await import('../../src/data/preprocess.js');
    const batch = await batchToTensor(images, classifier.preprocess);
    const ours = (await classifier.classify({ dtype: 'float32', dims: [images.length, ...classifier.imageDims], data: batch.slice() })).data;
    const session = await ort.InferenceSession.create(join(out, 'model.onnx'));
    const plain = (await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', batch, [images.length, ...classifier.imageDims]) }))[session.outputNames[0]].data as Float32Array;
    for (let i = 0; i < plain.length; i++) expect(Math.abs(plain[i] - ours[i])).toBeLessThan(1e-6);
    await classifier.close();
    console.log(`head accuracy ${metrics.accuracy} vs raw-pixel baseline ${baseline}; ${metrics.seconds.toFixed(1)} s`);
  }, 300_000);

  it('refuses an existing OUT without --overwrite, leaves it intact, and replaces it with --overwrite', async () => {
    const out = join(root, 'existing');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(out);
    writeFileSync(join(out, 'keep.txt'), 'mine');
    await expect(train({ data, out, runtime, cacheDir: join(root, 'cache'), epochs: 1 })).rejects.toMatchObject({ code: 'OUTPUT_EXISTS' });
    expect(readFileSync(join(out, 'keep.txt'), 'utf8')).toBe('mine');
    await train({ data, out, runtime, cacheDir: join(root, 'cache'), epochs: 1, overwrite: true });
    expect(existsSync(join(out, 'keep.txt'))).toBe(false);
    expect(existsSync(join(out, 'model.onnx'))).toBe(true);
  }, 300_000);
});
