import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BUILTIN_MODELS } from '../../src/models/builtins.js';
import { inspect } from '../../src/tasks/inspect.js';
import { removeQuietly } from '../../src/util/fs.js';
import { saveTo, tinyClassifier, vectorModel } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'graft-inspect-'));
const W = [
  [1, 0, 0],
  [0, 1, 0],
];
afterAll(() => removeQuietly(dir));

describe('inspect', () => {
  it('describes the default builtin: graph, classifier, preprocessing, labels, layers, trainability', async () => {
    const r = await inspect('mobilenet_v2');
    expect(r.source).toBe('builtin');
    expect(r.id).toMatch(/^[0-9a-f]{64}$/);
    expect(r.opset).toBe(17);
    expect(r.inputs).toEqual([{ name: 'input_1', dtype: 'float32', shape: ['N', 3, 224, 224] }]);
    expect(r.outputs).toEqual([{ name: 'dense_3', dtype: 'float32', shape: ['N', 5] }]);
    // Keras counts the same parameters (BatchNorm moving statistics included)
    expect(r.params.total).toBe(BUILTIN_MODELS.mobilenet_v2.params);
    expect(r.params.bnStats).toBeGreaterThan(0);
    expect(r.ops.find((o) => o.op === 'Conv')?.count).toBe(52);
    expect(r.ops.reduce((a, o) => a + o.count, 0)).toBe(r.nodes);
    expect(r.classifier).toMatchObject({ output: 'dense_3', numClasses: 5, outputKind: 'probabilities', outputKindFrom: 'metadata' });
    expect(r.classifier?.layer).toMatchObject({ kind: 'gemm', stackInput: 'flatten_1', stackDepth: 3 });
    expect(r.preprocess).toMatchObject({ from: 'metadata', config: { inputSize: [224, 224], resize: 'squash', layout: 'NCHW' } });
    expect(r.labels).toEqual({ count: 5, first: ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'], from: 'metadata' });
    const flat = r.featureLayers.find((l) => l.value === 'flatten_1');
    expect(flat).toMatchObject({ op: 'Flatten', shape: ['N', 1280], channels: 1280, blockEnd: true });
    // below the head, every parameter of the backbone is reachable by gradients
    expect(flat?.fineTune).toMatchObject({ unreachableParams: 0, blockedBy: [], unfreezeFrom: 'input' });
    expect(flat!.fineTune.trainableParams).toBeGreaterThan(2_000_000);
    expect(r.featureLayers.filter((l) => l.default)).toHaveLength(BUILTIN_MODELS.mobilenet_v2.defaultFeatureLayer ? 1 : 0);
    expect(r.cutPoints.length).toBeGreaterThan(10);
    expect(r.trainability.missingGradient).toEqual([]);
    expect(r.trainability.differentiableOps).toContain('Conv');
  });

  it('finds where an op without a gradient rule stops fine-tuning', async () => {
    const path = saveTo(dir, 'lrn.onnx', tinyClassifier({ W, b: [0, 0], lrn: true }));
    const r = await inspect(path);
    expect(r.trainability.missingGradient).toEqual([{ op: 'LRN', count: 1, onDataPath: true }]);
    const bn = r.featureLayers.find((l) => l.value === 'bn')!;
    // the BN after the LRN can still be trained (its scale and shift); nothing before the LRN has weights
    expect(bn.fineTune.blockedBy).toEqual(['local_norm (LRN)']);
    expect(bn.fineTune.trainableParams).toBe(6);
    expect(bn.fineTune.unfreezeFrom).toBe('lrn');
    // the guessed preprocessing and generic labels of a bare model
    expect(r.preprocess).toMatchObject({ from: 'input shape', config: { inputSize: [8, 8] } });
    expect(r.labels).toMatchObject({ count: 2, first: ['class_0', 'class_1'], from: 'generic' });
    expect(r.classifier).toMatchObject({ outputKind: 'logits', outputKindFrom: 'graph' });
  });

  it('reports (rather than throws) that a model is no image classifier', async () => {
    const r = await inspect(saveTo(dir, 'vector.onnx', vectorModel()));
    expect(r.classifier).toBeNull();
    expect(r.problem).toMatch(/rank 2/);
    expect(r.preprocess).toBeNull();
    expect(r.params.weights).toBe(8);
  });

  it('still throws for a file that is no model, or overrides that do not fit', async () => {
    const junk = join(dir, 'junk.onnx');
    writeFileSync(junk, 'nope');
    await expect(inspect(junk)).rejects.toMatchObject({ code: 'MODEL_INVALID' });
    await expect(inspect('mobilenet_v2', { preprocess: { size: 100 } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
