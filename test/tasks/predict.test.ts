import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraftError } from '../../src/errors.js';
import { imageToTensor } from '../../src/data/preprocess.js';
import { BUILTIN_MODELS, DEFAULT_BUILTIN } from '../../src/models/builtins.js';
import { IMAGENET_DEFAULT, type PreprocessConfig } from '../../src/models/preprocess.js';
import { Runtime } from '../../src/runtime/index.js';
import { removeQuietly } from '../../src/util/fs.js';
import { openClassifier, type Classifier } from '../../src/tasks/classifier.js';
import { expandImages, predict, predictAll, type PredictProgress, type PredictResult } from '../../src/tasks/predict.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { startFakeHub } from '../models/fake-hub.js';
import { COFFEE, EMOJI_DIR, hugePngHeader, linear, noiseJpeg, saveTo, softmax, solidPng, tinyClassifier, truncatedJpeg } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'graft-predict-'));
const W = [
  [4, -2, 0],
  [-2, 4, 0],
  [0, -1, 3],
];
const B = [0, 0.5, -0.5];
const LABELS = ['reddish', 'greenish', 'bluish'];
const UNIT: PreprocessConfig = { ...IMAGENET_DEFAULT, inputSize: [8, 8], resize: 'crop', cropPct: 0.875, mean: [0, 0, 0], std: [1, 1, 1] };
const expectedFor = (rgb: number[]) => softmax(linear(W, B, rgb.map((v) => v / 255)));

const ok = (r: PredictResult) => {
  if (!('predictions' in r)) throw new Error(`${r.image} failed: ${r.error.code} ${r.error.message}`);
  return r.predictions;
};

let rt: Runtime;
let tiny: string;
beforeAll(async () => {
  rt = await Runtime.create({ threads: 1 });
  tiny = saveTo(dir, 'tiny.onnx', tinyClassifier({ W, b: B, labels: LABELS, preprocess: UNIT }));
});
afterAll(async () => {
  await rt.close();
  removeQuietly(dir);
});

describe('predict with the default builtin on real images', () => {
  it(`${DEFAULT_BUILTIN}: distributions over its 5 labels, sorted, top-k, in input order`, async () => {
    const emoji = readdirSync(EMOJI_DIR).filter((f) => f.endsWith('.png')).sort().slice(300, 306).map((f) => join(EMOJI_DIR, f));
    const images = [COFFEE, ...emoji];
    const progress: PredictProgress[] = [];
    const results = await predictAll(images, { runtime: rt, topK: 3, batchSize: 4, onProgress: (p) => progress.push(p) });
    expect(results.map((r) => r.image)).toEqual(images);
    const labels = BUILTIN_MODELS[DEFAULT_BUILTIN].labels;
    for (const r of results) {
      const preds = ok(r);
      expect(preds).toHaveLength(3);
      for (const p of preds) expect(p.label).toBe(labels[p.index]);
      for (let i = 1; i < preds.length; i++) expect(preds[i - 1].probability).toBeGreaterThanOrEqual(preds[i].probability);
    }
    // all five classes: the distribution sums to one
    const all = await predictAll([COFFEE, emoji[0]], { runtime: rt, topK: 50 });
    for (const r of all) {
      const preds = ok(r);
      expect(preds.map((p) => p.index).sort()).toEqual([0, 1, 2, 3, 4]);
      expect(preds.reduce((a, p) => a + p.probability, 0)).toBeCloseTo(1, 5);
    }
    // a plain photo of a coffee cup is what the NSFW model calls Neutral, confidently
    expect(ok(all[0])[0]).toMatchObject({ label: 'Neutral' });
    expect(ok(all[0])[0].probability).toBeGreaterThan(0.9);
    expect(progress.at(-1)).toEqual({ done: images.length, total: images.length, failed: 0 });
  });

  it('gives the numbers the classifier gives for the same tensor', async () => {
    const c = await openClassifier(DEFAULT_BUILTIN, { runtime: rt });
    try {
      const x = await imageToTensor(COFFEE, c.preprocess);
      const direct = await c.classify({ dtype: 'float32', dims: [1, ...c.imageDims], data: x });
      const [r] = await predictAll([COFFEE], { classifier: c, topK: 5 });
      for (const p of ok(r)) expect(p.probability).toBeCloseTo(direct.data[p.index], 6);
    } finally {
      await c.close();
    }
  });
});

describe('predict: exact results with a tiny model', () => {
  it('classifies solid colours to the hand-computed probabilities', async () => {
    const colours: [number, number, number][] = [
      [250, 10, 10],
      [10, 250, 10],
      [20, 30, 240],
      [128, 128, 128],
    ];
    const paths = await Promise.all(colours.map((c, i) => solidPng(join(dir, 'solid', `${i}.png`), c)));
    const results = await predictAll(paths, { model: tiny, runtime: rt, batchSize: 3 });
    results.forEach((r, i) => {
      const expected = expectedFor(colours[i]);
      const preds = ok(r);
      expect(preds).toHaveLength(3); // top 5 capped at 3 classes
      expect(preds[0].label).toBe(LABELS[expected.indexOf(Math.max(...expected))]);
      for (const p of preds) expect(p.probability).toBeCloseTo(expected[p.index], 6);
    });
  });

  it('expands directories recursively, sorted, image extensions only, skipping hidden entries', async () => {
    const root = join(dir, 'tree');
    await solidPng(join(root, 'b', 'z.PNG'), [1, 2, 3]);
    await solidPng(join(root, 'b', 'a.png'), [1, 2, 3]);
    await noiseJpeg(join(root, 'a.jpg'));
    await solidPng(join(root, '.hidden', 'x.png'), [1, 2, 3]);
    writeFileSync(join(root, 'notes.txt'), 'not an image');
    mkdirSync(join(root, 'c'));
    symlinkSync(root, join(root, 'c', 'loop'));
    const files = await expandImages([root, COFFEE]);
    expect(files).toEqual([join(root, 'a.jpg'), join(root, 'b', 'a.png'), join(root, 'b', 'z.PNG'), COFFEE]);
    const empty = mkdtempSync(join(dir, 'empty-'));
    await expect(expandImages([empty])).rejects.toMatchObject({ code: 'DATASET_EMPTY' });
  });

  it('streams a folder in input order, and a consumer may stop early', async () => {
    const src = await solidPng(join(dir, 'stream', 'src.png'), [10, 200, 30]);
    const many = Array.from({ length: 200 }, (_, i) => {
      const p = join(dir, 'stream', `${String(i).padStart(3, '0')}.png`);
      copyFileSync(src, p);
      return p;
    });
    const expected = expectedFor([10, 200, 30]);
    let count = 0;
    for await (const r of predict([join(dir, 'stream')], { model: tiny, runtime: rt, batchSize: 4 })) {
      // src.png sorts after the numbered copies
      expect(r.image).toBe(count < 200 ? many[count] : src);
      expect(ok(r)[0].probability).toBeCloseTo(Math.max(...expected), 6);
      count++;
    }
    expect(count).toBe(201);
    let taken = 0;
    for await (const r of predict(many, { model: tiny, runtime: rt, batchSize: 4 })) {
      ok(r);
      if (++taken === 5) break;
    }
    // the runtime is still healthy after the early stop
    expect((await predictAll([src], { model: tiny, runtime: rt })).length).toBe(1);
  });

  it('stops with ABORTED when the signal fires', async () => {
    const ac = new AbortController();
    const images = Array.from({ length: 40 }, () => COFFEE);
    const seen: PredictResult[] = [];
    const run = (async () => {
      for await (const r of predict(images, { model: tiny, runtime: rt, batchSize: 2, signal: ac.signal })) {
        seen.push(r);
        if (seen.length === 3) ac.abort();
      }
    })();
    await expect(run).rejects.toMatchObject({ code: 'ABORTED' });
    expect(seen.length).toBeLessThan(40);
  });

  it('rejects bad options before touching the model', async () => {
    await expect(predictAll([COFFEE], { model: tiny, runtime: rt, topK: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(predictAll([COFFEE], { model: tiny, runtime: rt, batchSize: 1.5 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('predict from a Hugging Face repo (a local server in its layout)', () => {
  it('takes labels from config.json and preprocessing from preprocessor_config.json', async () => {
    const hub = await startFakeHub();
    try {
      // exporters name every input dim, so nothing can be guessed from the shape alone
      const m = tinyClassifier({ W, b: B, softmax: true });
      m.graph.inputs[0].shape = ['batch_size', 'num_channels', 'height', 'width'];
      hub.addFile('acme/colours', 'main', 'onnx/model.onnx', modelToBytes(m));
      hub.addFile('acme/colours', 'main', 'config.json', JSON.stringify({ id2label: { 0: 'rot', 1: 'grün', 2: 'blau' } }));
      const pre = { do_resize: true, size: { height: 6, width: 6 }, resample: 2, do_rescale: true, rescale_factor: 1 / 255, do_normalize: true, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] };
      hub.addFile('acme/colours', 'main', 'preprocessor_config.json', JSON.stringify(pre));
      const { size: _size, ...sizeless } = pre;
      hub.addFile('acme/sizeless', 'main', 'onnx/model.onnx', modelToBytes(m));
      hub.addFile('acme/sizeless', 'main', 'preprocessor_config.json', JSON.stringify(sizeless));
      const colour: [number, number, number] = [30, 220, 90];
      const img = await solidPng(join(dir, 'hf', 'c.png'), colour);
      const cacheDir = mkdtempSync(join(dir, 'hf-cache-'));

      const c = await openClassifier('hf:acme/colours', { runtime: rt, hfEndpoint: hub.endpoint, cacheDir });
      try {
        expect(c.labels).toEqual(['rot', 'grün', 'blau']);
        expect(c.plan.preprocess.from).toBe('preprocessor_config.json');
        expect(c.preprocess).toMatchObject({ inputSize: [6, 6], mean: [0.5, 0.5, 0.5], layout: 'NCHW' });
        const [r] = await predictAll([img], { classifier: c });
        const expected = softmax(linear(W, B, colour.map((v) => (v / 255 - 0.5) / 0.5)));
        for (const p of ok(r)) expect(p.probability).toBeCloseTo(expected[p.index], 6);
      } finally {
        await c.close();
      }
      // no size anywhere: the layout from the config still places the channels, the size defaults to 224
      const d = await openClassifier('hf:acme/sizeless', { runtime: rt, hfEndpoint: hub.endpoint, cacheDir });
      expect(d.preprocess.inputSize).toEqual([224, 224]);
      expect(d.plan.preprocess.guessed).toContain('inputSize');
      expect(d.labels).toEqual(['class_0', 'class_1', 'class_2']);
      await d.close();
    } finally {
      await hub.close();
    }
  });
});

describe('predict: bad images are reported in place and skipped, the rest classified', () => {
  let c: Classifier;
  beforeAll(async () => {
    c = await openClassifier(tiny, { runtime: rt });
  });
  afterAll(async () => {
    await c.close();
  });

  it('every kind of bad input, in one batch run', async () => {
    const bad = join(dir, 'bad');
    mkdirSync(bad, { recursive: true });
    const good1 = await solidPng(join(bad, 'good1.png'), [250, 10, 10]);
    const good2 = await solidPng(join(bad, 'good2.png'), [20, 30, 240]);
    const empty = join(bad, 'empty.jpg');
    writeFileSync(empty, '');
    const text = join(bad, 'text.png');
    writeFileSync(text, 'hello, I am not a PNG\n');
    const truncated = await truncatedJpeg(join(bad, 'truncated.jpg'));
    const huge = hugePngHeader(join(bad, 'huge.png'));
    const missing = join(bad, 'missing.jpg');
    const images = [good1, missing, empty, text, truncated, huge, good2];
    const results = await predictAll(images, { classifier: c, batchSize: 3 });
    expect(results.map((r) => r.image)).toEqual(images);
    const codes = results.map((r) => ('error' in r ? r.error.code : 'ok'));
    expect(codes).toEqual(['ok', 'FILE_NOT_FOUND', 'FILE_EMPTY', 'IMAGE_UNREADABLE', 'IMAGE_UNREADABLE', 'IMAGE_TOO_LARGE', 'ok']);
    const msg = (i: number) => (results[i] as { error: { message: string } }).error.message;
    expect(msg(1)).toMatch(/does not exist/);
    expect(msg(2)).toMatch(/empty \(0 bytes\)/);
    expect(msg(3)).toMatch(/not an image/);
    // libvips' error text is sometimes lost when several decodes fail at once ("Unknown error"), so only
    // the code and the file are certain here; test/data/image.test.ts checks the wording one at a time
    expect(msg(4)).toContain(truncated);
    expect(msg(5)).toMatch(/100000×100000.*Downscale it/);
    // the good ones are classified exactly, unaffected by the failures around them
    for (const [i, rgb] of [
      [0, [250, 10, 10]],
      [6, [20, 30, 240]],
    ] as const) {
      const expected = expectedFor([...rgb]);
      for (const p of ok(results[i])) expect(p.probability).toBeCloseTo(expected[p.index], 6);
    }
  });

  it('a pixel limit below a real photo: IMAGE_TOO_LARGE for it alone', async () => {
    const small = await solidPng(join(dir, 'small.png'), [1, 2, 3], 10, 10);
    const results = await predictAll([COFFEE, small], { classifier: c, maxPixels: 10_000 });
    expect('error' in results[0] && results[0].error.code).toBe('IMAGE_TOO_LARGE');
    expect('predictions' in results[1]).toBe(true);
  });

  it('a batch where every image fails still yields every failure', async () => {
    const results = await predictAll([join(dir, 'nope1.png'), join(dir, 'nope2.png')], { classifier: c, batchSize: 2 });
    expect(results.map((r) => 'error' in r && r.error.code)).toEqual(['FILE_NOT_FOUND', 'FILE_NOT_FOUND']);
  });

  it('errors are GraftErrors with codes from the table', async () => {
    const [r] = await predictAll([join(dir, 'nope.png')], { classifier: c });
    expect('error' in r && r.error.code in (await import('../../src/errors.js')).ERROR_CODES).toBe(true);
    expect(new GraftError('FILE_NOT_FOUND', 'x')).toBeInstanceOf(Error);
  });
});
