import { mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { GraftError } from '../../src/errors.js';
import { GraphBuilder } from '../../src/graph/builder.js';
import { Graph, Model } from '../../src/graph/graph.js';
import { attr } from '../../src/graph/ir.js';
import { loadModel, modelFromBytes, modelToBytes, saveModel } from '../../src/graph/serialize.js';
import { float32, tensor } from '../../src/onnx/tensor.js';

/** x[N,2] → Gemm(W[3,2]ᵀ, b) → Relu → y: small enough to check by hand. */
function tinyModel(): Model {
  const g = new Graph({ inputs: [{ name: 'x', dtype: 'float32', shape: ['N', 2] }] });
  const b = new GraphBuilder(g);
  const w = b.initializer('W', float32([3, 2], [1, 2, -1, 0.5, 0, -3]));
  const bias = b.initializer('b', float32([3], [0.5, 0, 1]));
  const h = b.op('Gemm', ['x', w, bias], { transB: 1, alpha: attr.f(1) });
  b.op('Relu', [h], {}, { outputs: ['y'] });
  g.outputs = [{ name: 'y', dtype: 'float32', shape: ['N', 3] }];
  const m = new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }] });
  m.metadata.set('graft.labels', JSON.stringify(['a', 'b', 'c']));
  return m;
}

async function runOrt(bytesOrPath: Uint8Array | string, x: number[][]): Promise<number[]> {
  const s = await ort.InferenceSession.create(bytesOrPath as string);
  const r = await s.run({ x: new ort.Tensor('float32', Float32Array.from(x.flat()), [x.length, 2]) });
  await s.release();
  return Array.from(r.y.data as Float32Array);
}

describe('ONNX round trip', () => {
  const x = [
    [1, 1],
    [-2, 0.5],
  ];
  const expected = [3.5, 0, 0, 0, 2.25, 0]; // relu(x·Wᵀ + b), by hand

  it('serialises a built model that onnxruntime runs correctly', async () => {
    const bytes = modelToBytes(tinyModel());
    expect(await runOrt(bytes, x)).toEqual(expected);
  });

  it('keeps nodes, attributes, metadata, shapes and tensors through decode/encode', () => {
    const m = modelFromBytes(modelToBytes(tinyModel()));
    expect(m.metadata.get('graft.labels')).toBe('["a","b","c"]');
    expect(m.graph.inputs).toEqual([{ name: 'x', dtype: 'float32', shape: ['N', 2] }]);
    const gemm = m.graph.nodes[0];
    expect(gemm.opType).toBe('Gemm');
    expect(gemm.attrs.get('alpha')).toEqual({ kind: 'float', value: 1 });
    expect(gemm.attrs.get('transB')).toEqual({ kind: 'int', value: 1 });
    const w = [...m.graph.initializers.values()][0];
    expect(w.dims).toEqual([3, 2]);
    expect(Array.from(w.data as Float32Array)).toEqual([1, 2, -1, 0.5, 0, -3]);
    // a second trip is byte-identical
    expect(Buffer.from(modelToBytes(m)).equals(Buffer.from(modelToBytes(modelFromBytes(modelToBytes(m)))))).toBe(true);
  });

  it('writes and reads external data next to the model; onnxruntime reads it too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'graft-ext-'));
    const path = join(dir, 'model.onnx');
    const m = tinyModel();
    // a tensor big enough to go external
    m.graph.initializers.set('big', float32([512], Array.from({ length: 512 }, (_, i) => i / 7)));
    saveModel(m, path, { externalData: true });
    expect(readdirSync(dir).sort()).toEqual(['model.onnx', 'model.onnx.data']);
    expect(statSync(join(dir, 'model.onnx')).size).toBeLessThan(1500);
    const back = loadModel(path);
    expect(Array.from(back.graph.initializers.get('big')!.data as Float32Array)).toEqual(Array.from(m.graph.initializers.get('big')!.data as Float32Array));
    expect(await runOrt(path, x)).toEqual(expected);
  });

  it('keeps int64, float16 and string tensors exact', () => {
    const m = tinyModel();
    m.graph.initializers.set('i', tensor('int64', [2], BigInt64Array.of(-5n, 2n ** 40n)));
    m.graph.initializers.set('h', tensor('float16', [2], Uint16Array.of(0x3c00, 0x7bff)));
    m.graph.initializers.set('s', tensor('string', [2], ['ünï', 'code']));
    const back = modelFromBytes(modelToBytes(m)).graph.initializers;
    expect(Array.from(back.get('i')!.data as BigInt64Array)).toEqual([-5n, 2n ** 40n]);
    expect(back.get('h')!.dtype).toBe('float16');
    expect(Array.from(back.get('h')!.data as Uint16Array)).toEqual([0x3c00, 0x7bff]);
    expect(back.get('s')!.data).toEqual(['ünï', 'code']);
  });

  it('rejects files that are not ONNX with MODEL_INVALID', () => {
    const dir = mkdtempSync(join(tmpdir(), 'graft-bad-'));
    const cases: [string, Uint8Array][] = [
      ['text.onnx', Buffer.from('this is not a model at all, just some text\n')],
      ['empty.onnx', new Uint8Array(0)],
      ['truncated.onnx', modelToBytes(tinyModel()).subarray(0, 40)],
    ];
    for (const [name, bytes] of cases) {
      writeFileSync(join(dir, name), bytes);
      let err: unknown;
      try {
        loadModel(join(dir, name));
      } catch (e) {
        err = e;
      }
      expect(err, name).toBeInstanceOf(GraftError);
      expect((err as GraftError).code, name).toBe('MODEL_INVALID');
    }
  });
});
