import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { modelToBytes } from '../../src/graph/serialize.js';
import { cutAt, cutPoints, tailFrom } from '../../src/graph/surgery.js';
import { loadTorchFixture } from '../fixtures/torch-fixture.js';

describe('tailFrom', () => {
  it('prefix (cutAt) then tail (tailFrom) computes what the whole network computes', async () => {
    const f = loadTorchFixture('resnet18');
    const at = cutPoints(f.model)[5];
    const prefix = cutAt(f.model, at, { pool: 'none' });
    const tail = tailFrom(f.model, at);
    expect(tail.graph.inputs.map((i) => i.name)).toEqual([at]);
    expect(tail.graph.initializers.size).toBeLessThan(f.model.graph.initializers.size);
    const run = async (m: typeof f.model, feeds: Record<string, ort.Tensor>) => {
      const s = await ort.InferenceSession.create(modelToBytes(m));
      const out = await s.run(feeds);
      await s.release();
      return out[s.outputNames[0]];
    };
    const x = new ort.Tensor('float32', f.input, f.inputDims);
    const whole = (await run(f.model, { [f.inputName]: x })).data as Float32Array;
    const mid = await run(prefix, { [f.inputName]: x });
    const split = (await run(tail, { [at]: mid })).data as Float32Array;
    const scale = Math.max(...Array.from(whole, Math.abs));
    for (let i = 0; i < whole.length; i++) expect(Math.abs(split[i] - whole[i]) / scale).toBeLessThan(1e-5);
  });

  it('refuses a value that is not a cut point', () => {
    const f = loadTorchFixture('resnet18');
    // inside a residual block: the skip connection jumps over it
    const inner = f.model.graph.nodes.find((n) => n.name.includes('layer1.0') && n.opType === 'Relu')!.outputs[0];
    expect(() => tailFrom(f.model, inner)).toThrow(/cannot be split there/);
  });
});
