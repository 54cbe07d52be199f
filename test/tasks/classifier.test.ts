import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraftError, type GraftErrorCode } from '../../src/errors.js';
import { imageToTensor } from '../../src/data/preprocess.js';
import { saveModel } from '../../src/graph/serialize.js';
import { IMAGENET_DEFAULT, type PreprocessConfig } from '../../src/models/preprocess.js';
import { resolveModel } from '../../src/models/sources.js';
import { Runtime } from '../../src/runtime/index.js';
import { removeQuietly } from '../../src/util/fs.js';
import { openClassifier, planClassifier, softmaxRows, type Classifier } from '../../src/tasks/classifier.js';
import { linear, saveTo, softmax, solidPng, tinyClassifier, vectorModel } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'graft-classifier-'));
const W = [
  [2, -1, 0.5],
  [-1, 3, 0],
  [0.5, 0.5, -2],
];
const B = [0.1, -0.2, 0.3];
/** [0, 1] pixels, no normalisation: features are the colour / 255. */
const UNIT: PreprocessConfig = { ...IMAGENET_DEFAULT, inputSize: [8, 8], resize: 'squash', cropPct: 1, mean: [0, 0, 0], std: [1, 1, 1] };
const RED: [number, number, number] = [200, 40, 10];

async function rejects(p: Promise<unknown>, code: GraftErrorCode): Promise<GraftError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, `expected ${code}`).toBeInstanceOf(GraftError);
  expect((e as GraftError).code, (e as Error).message).toBe(code);
  return e as GraftError;
}

let rt: Runtime;
let redPath: string;
beforeAll(async () => {
  rt = await Runtime.create({ threads: 1 });
  redPath = await solidPng(join(dir, 'red.png'), RED);
});
afterAll(async () => {
  await rt.close();
  removeQuietly(dir);
});

/** Classifies one image file through the classifier's own preprocessing. */
async function classifyFile(c: Classifier, path: string): Promise<number[]> {
  const x = await imageToTensor(path, c.preprocess);
  const p = await c.classify({ dtype: 'float32', dims: [1, ...c.imageDims], data: x });
  return [...p.data];
}

describe('openClassifier: output kinds', () => {
  it('applies softmax to logits and passes probabilities through, exactly', async () => {
    const feats = RED.map((v) => v / 255);
    const expected = softmax(linear(W, B, feats));
    const logits = await openClassifier(saveTo(dir, 'logits.onnx', tinyClassifier({ W, b: B, preprocess: UNIT })), { runtime: rt });
    const probs = await openClassifier(saveTo(dir, 'probs.onnx', tinyClassifier({ W, b: B, preprocess: UNIT, softmax: true })), { runtime: rt });
    try {
      expect(logits.outputKind).toBe('logits');
      expect(probs.outputKind).toBe('probabilities');
      for (const c of [logits, probs]) {
        const p = await classifyFile(c, redPath);
        p.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 6));
      }
    } finally {
      await logits.close();
      await probs.close();
    }
  });

  it('believes graft.output metadata over the graph', async () => {
    // no softmax in the graph, but the metadata says the output already is probabilities: passed through raw
    const c = await openClassifier(saveTo(dir, 'meta-kind.onnx', tinyClassifier({ W, b: B, preprocess: UNIT, outputKind: 'probabilities' })), { runtime: rt });
    try {
      expect(c.plan.outputKindFrom).toBe('metadata');
      const raw = linear(W, B, RED.map((v) => v / 255));
      (await classifyFile(c, redPath)).forEach((v, i) => expect(v).toBeCloseTo(raw[i], 5));
    } finally {
      await c.close();
    }
  });

  it('softmaxRows is a row-wise softmax', () => {
    const d = Float32Array.from([1, 2, 3, -1, -1, 1000]);
    softmaxRows(d, 2, 3);
    const a = softmax([1, 2, 3]);
    [...d.subarray(0, 3)].forEach((v, i) => expect(v).toBeCloseTo(a[i], 7));
    expect([...d.subarray(3)]).toEqual([0, 0, 1]);
  });
});

describe('openClassifier: preprocessing', () => {
  it('guesses ImageNet preprocessing from a bare model and takes the size from its input', async () => {
    const c = await openClassifier(saveTo(dir, 'bare.onnx', tinyClassifier({ W, b: B, size: 12 })), { runtime: rt });
    try {
      expect(c.plan.preprocess.from).toBe('input shape');
      expect(c.preprocess).toMatchObject({ inputSize: [12, 12], mean: IMAGENET_DEFAULT.mean, std: IMAGENET_DEFAULT.std, layout: 'NCHW', resize: 'crop' });
      const feats = RED.map((v, i) => (v / 255 - IMAGENET_DEFAULT.mean[i]) / IMAGENET_DEFAULT.std[i]);
      const expected = softmax(linear(W, B, feats));
      (await classifyFile(c, redPath)).forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5));
    } finally {
      await c.close();
    }
  });

  it('lets flags override metadata: --bgr swaps the channels the model sees', async () => {
    const path = saveTo(dir, 'meta.onnx', tinyClassifier({ W, b: B, preprocess: UNIT }));
    const c = await openClassifier(path, { runtime: rt, preprocess: { bgr: true, mean: [0.1, 0.2, 0.3] } });
    try {
      expect(c.plan.preprocess).toMatchObject({ from: 'metadata', overridden: ['bgr', 'mean'] });
      expect(c.preprocess.channelOrder).toBe('BGR');
      const bgr = [RED[2], RED[1], RED[0]].map((v, i) => v / 255 - [0.1, 0.2, 0.3][i]);
      const expected = softmax(linear(W, B, bgr));
      (await classifyFile(c, redPath)).forEach((v, i) => expect(v).toBeCloseTo(expected[i], 6));
    } finally {
      await c.close();
    }
  });

  it('feeds NHWC models in NHWC (detected from the input shape)', async () => {
    const c = await openClassifier(saveTo(dir, 'nhwc.onnx', tinyClassifier({ W, b: B, layout: 'NHWC', size: 10 })), { runtime: rt, preprocess: { mean: 0, std: 1 } });
    try {
      expect(c.preprocess.layout).toBe('NHWC');
      expect(c.imageDims).toEqual([10, 10, 3]);
      const expected = softmax(linear(W, B, RED.map((v) => v / 255)));
      (await classifyFile(c, redPath)).forEach((v, i) => expect(v).toBeCloseTo(expected[i], 6));
    } finally {
      await c.close();
    }
  });

  it('refuses a --layout or --size that contradicts the model input', async () => {
    const path = saveTo(dir, 'nhwc2.onnx', tinyClassifier({ W, b: B, layout: 'NHWC', size: 10 }));
    const e = await rejects(openClassifier(path, { runtime: rt, preprocess: { layout: 'NCHW' } }), 'INVALID_ARGUMENT');
    expect(e.message).toMatch(/drop --layout NCHW/);
    const s = await rejects(openClassifier(path, { runtime: rt, preprocess: { size: 224 } }), 'INVALID_ARGUMENT');
    expect(s.message).toMatch(/fixed at 10×10.*--size 10/);
  });

  it('runs models with a fixed batch of 1 image by image, padding nothing away', async () => {
    const c = await openClassifier(saveTo(dir, 'batch1.onnx', tinyClassifier({ W, b: B, preprocess: UNIT, batch: 1 })), { runtime: rt });
    try {
      const colours: [number, number, number][] = [RED, [0, 255, 0], [30, 60, 90]];
      const per = 3 * 64;
      const x = new Float32Array(colours.length * per);
      colours.forEach((col, i) => {
        for (let ch = 0; ch < 3; ch++) x.fill(col[ch] / 255, i * per + ch * 64, i * per + (ch + 1) * 64);
      });
      const p = await c.classify({ dtype: 'float32', dims: [3, 3, 8, 8], data: x });
      expect(p.dims).toEqual([3, 3]);
      colours.forEach((col, i) => {
        const expected = softmax(linear(W, B, col.map((v) => v / 255)));
        expected.forEach((v, j) => expect(p.data[i * 3 + j]).toBeCloseTo(v, 6));
      });
    } finally {
      await c.close();
    }
  });
});

describe('openClassifier: labels', () => {
  it('takes metadata labels, lets a labels file override them, and checks the count', async () => {
    const path = saveTo(dir, 'labelled.onnx', tinyClassifier({ W, b: B, preprocess: UNIT, labels: ['red', 'green', 'blue'] }));
    const c = await openClassifier(path, { runtime: rt });
    expect(c.labels).toEqual(['red', 'green', 'blue']);
    expect(c.plan.labelsFrom).toBe('metadata');
    await c.close();

    const file = join(dir, 'labels.txt');
    writeFileSync(file, 'rouge\nvert\nbleu\n');
    const d = await openClassifier(path, { runtime: rt, labelsFile: file });
    expect(d.labels).toEqual(['rouge', 'vert', 'bleu']);
    expect(d.plan.labelsFrom).toBe('labels file');
    await d.close();

    writeFileSync(file, '["only", "two"]');
    const e = await rejects(openClassifier(path, { runtime: rt, labelsFile: file }), 'LABELS_INVALID');
    expect(e.message).toMatch(/names 2 classes but .* has 3 outputs/);
  });

  it('names 1000 outputs with ImageNet classes and other counts class_i', async () => {
    const thousand = Array.from({ length: 1000 }, (_, i) => [(i % 7) / 7, 0, -(i % 3)]);
    const big = planClassifier(await resolveModel(saveTo(dir, 'k1000.onnx', tinyClassifier({ W: thousand, b: new Array<number>(1000).fill(0) }))));
    expect(big.labelsFrom).toBe('imagenet');
    expect(big.labels?.slice(0, 2)).toEqual(['tench', 'goldfish']);
    const small = planClassifier(await resolveModel(saveTo(dir, 'k3.onnx', tinyClassifier({ W, b: B }))));
    expect(small.labels).toEqual(['class_0', 'class_1', 'class_2']);
  });
});

describe('openClassifier: models it cannot use', () => {
  it('a model with an unexpected input rank: MODEL_UNSUPPORTED saying what it found', async () => {
    const e = await rejects(openClassifier(saveTo(dir, 'vector.onnx', vectorModel()), { runtime: rt }), 'MODEL_UNSUPPORTED');
    expect(e.message).toMatch(/"x" float32 \[N, 4\] has rank 2/);
    expect(e.message).toMatch(/\[batch, 3, height, width\]/);
  });

  it('an input without 3 colour channels, or with several inputs', async () => {
    const m = tinyClassifier({ W, b: B });
    m.graph.inputs[0].shape = ['N', 1, 8, 8];
    await rejects(openClassifier(saveTo(dir, 'grey.onnx', m), { runtime: rt }), 'MODEL_UNSUPPORTED');
    const two = tinyClassifier({ W, b: B });
    two.graph.inputs.push({ name: 'extra', dtype: 'float32', shape: ['N', 2] });
    const e = await rejects(openClassifier(saveTo(dir, 'two.onnx', two), { runtime: rt }), 'MODEL_UNSUPPORTED');
    expect(e.message).toMatch(/2 inputs/);
  });

  it('corrupt, truncated, empty and non-ONNX model files: MODEL_INVALID', async () => {
    const good = saveTo(dir, 'good.onnx', tinyClassifier({ W, b: B }));
    const bytes = (await import('node:fs')).readFileSync(good);
    const cases: [string, Uint8Array | string][] = [
      ['truncated.onnx', bytes.subarray(0, Math.floor(bytes.length / 2))],
      ['empty.onnx', new Uint8Array(0)],
      ['text.onnx', 'this is not a model\n'],
      ['random.onnx', Uint8Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) & 0xff)],
    ];
    for (const [name, content] of cases) {
      const path = join(dir, name);
      writeFileSync(path, content);
      const e = await rejects(openClassifier(path, { runtime: rt }), 'MODEL_INVALID');
      expect(e.message).toContain(path);
    }
  });

  it('an unknown builtin and a missing model file', async () => {
    const e = await rejects(openClassifier('resnet_9000', { runtime: rt }), 'MODEL_UNKNOWN_BUILTIN');
    expect(e.message).toMatch(/mobilenet_v2/);
    await rejects(openClassifier(join(dir, 'missing.onnx'), { runtime: rt }), 'FILE_NOT_FOUND');
  });

  it('offline with an empty cache: OFFLINE_CACHE_MISS, and no request is made', async () => {
    const cache = mkdtempSync(join(dir, 'empty-cache-'));
    const e = await rejects(openClassifier('hf:acme/classifier', { runtime: rt, offline: true, cacheDir: cache, hfEndpoint: 'http://127.0.0.1:9' }), 'OFFLINE_CACHE_MISS');
    expect(e.message).toMatch(/Run the same command once with network access/);
    await rejects(openClassifier('https://example.invalid/model.onnx', { runtime: rt, offline: true, cacheDir: cache }), 'OFFLINE_CACHE_MISS');
  });

  it('classify() refuses a batch of the wrong shape', async () => {
    const c = await openClassifier(saveTo(dir, 'shape.onnx', tinyClassifier({ W, b: B, preprocess: UNIT })), { runtime: rt });
    try {
      await rejects(c.classify({ dtype: 'float32', dims: [1, 3, 4, 4], data: new Float32Array(48) }), 'INVALID_ARGUMENT');
    } finally {
      await c.close();
    }
  });
});

describe('openClassifier: its own runtime', () => {
  it('creates one when none is given and closes it with the classifier', async () => {
    const path = join(dir, 'own.onnx');
    saveModel(tinyClassifier({ W, b: B, preprocess: UNIT }), path);
    const c = await openClassifier(path, { threads: 1 });
    const p = await classifyFile(c, redPath);
    expect(p.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 6);
    await c.close();
    await rejects(classifyFile(c, redPath), 'RUNTIME_FAILED');
  });
});
