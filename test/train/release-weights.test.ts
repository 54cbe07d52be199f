/**
 * What fine-tuning's main thread keeps of the classifier while the trainer worker owns the weights: no
 * values for those, and no view into a larger buffer (the model file's bytes) for any other.
 */
import { describe, expect, it } from 'vitest';
import { Graph, Model } from '../../src/graph/graph.js';
import { tensor } from '../../src/onnx/tensor.js';
import { releaseWeights } from '../../src/train/finetune.js';

describe('releaseWeights', () => {
  it('drops the owned weights’ values, keeps their dims for setWeights, and copies views out of a shared buffer', () => {
    const file = new Float32Array(10).map((_, i) => i);
    const g = new Graph();
    g.initializers.set('conv.w', tensor('float32', [2, 2], file.subarray(0, 4)));
    g.initializers.set('frozen.w', tensor('float32', [3], file.subarray(4, 7)));
    const own = Float32Array.from([7, 8, 9]);
    g.initializers.set('own.b', tensor('float32', [3], own));
    const model = new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }] });

    releaseWeights(model, ['conv.w']);
    const conv = g.initializers.get('conv.w')!;
    expect(conv.dims).toEqual([2, 2]);
    expect(conv.data).toHaveLength(0);
    const frozen = g.initializers.get('frozen.w')!.data as Float32Array;
    expect(frozen).toEqual(Float32Array.from([4, 5, 6]));
    expect(frozen.buffer).not.toBe(file.buffer);
    expect(frozen.buffer.byteLength).toBe(frozen.byteLength);
    // an array that owns its buffer is left as it is
    expect(g.initializers.get('own.b')!.data).toBe(own);
    // the dropped values come back through setWeights, checked against the dims kept
    g.setWeights({ 'conv.w': Float32Array.from([1, 2, 3, 4]) });
    expect(g.initializers.get('conv.w')!.data).toEqual(Float32Array.from([1, 2, 3, 4]));
    expect(() => g.setWeights({ 'conv.w': new Float32Array(3) })).toThrow(/holds 4 values/);
  });
});
