import { beforeAll, describe, expect, it } from 'vitest';
import { isGraftError } from '../../src/errors.js';
import { floatToHalf } from '../../src/onnx/tensor.js';
import { decodeWeights, specsOfManifest, type WeightSpec } from '../../src/models/tfjs/weights.js';
import { rng, tf, useCpuBackend } from './tfjs-helpers.js';

beforeAll(useCpuBackend);

/** Bytes for a manifest mixing every encoding tfjs writes, the float32 tensor deliberately unaligned. */
function mixedWeights(): { specs: WeightSpec[]; bytes: Uint8Array } {
  const r = rng(11);
  const specs: WeightSpec[] = [
    { name: 'q8/kernel', shape: [3, 5], dtype: 'float32', quantization: { dtype: 'uint8', min: -0.87334511607301, scale: 0.006666756611244351 } },
    { name: 'f32/bias', shape: [4], dtype: 'float32' },
    { name: 'q16/kernel', shape: [2, 3], dtype: 'float32', quantization: { dtype: 'uint16', min: -2.5, scale: 7.62939453125e-5 } },
    { name: 'f16/gamma', shape: [5], dtype: 'float32', quantization: { dtype: 'float16' } },
    { name: 'i32/ids', shape: [3], dtype: 'int32' },
    { name: 'q8int/ids', shape: [2], dtype: 'int32', quantization: { dtype: 'uint8', min: -3, scale: 0.5 } },
  ];
  const parts: Uint8Array[] = [];
  parts.push(Uint8Array.from({ length: 15 }, () => Math.floor(r() * 256)));
  parts.push(new Uint8Array(Float32Array.from([0.1, -2, 3.5, 1e-8]).buffer));
  parts.push(new Uint8Array(Uint16Array.from({ length: 6 }, () => Math.floor(r() * 65536)).buffer));
  parts.push(new Uint8Array(Uint16Array.from([1, -0.5, 65504, 6e-8, 0.333].map(floatToHalf)).buffer));
  parts.push(new Uint8Array(Int32Array.from([7, -3, 123456]).buffer));
  parts.push(Uint8Array.from([0, 255]));
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return { specs, bytes };
}

describe('decodeWeights', () => {
  it('decodes uint8 / uint16 / float16 quantisation and plain tensors bit-exactly as tf.io.decodeWeights does', () => {
    const { specs, bytes } = mixedWeights();
    const ours = decodeWeights(bytes, specs);
    const theirs = tf.io.decodeWeights(bytes.slice().buffer, specs as tf.io.WeightsManifestEntry[]);
    expect([...ours.keys()]).toEqual(specs.map((s) => s.name));
    for (const s of specs) {
      const t = ours.get(s.name)!;
      expect(t.dims).toEqual(s.shape);
      expect(t.dtype).toBe(s.dtype);
      expect(Array.from(t.data as Float32Array | Int32Array)).toEqual(Array.from(theirs[s.name].dataSync()));
    }
    // the affine rule itself, on the first byte
    const q0 = bytes[0];
    expect((ours.get('q8/kernel')!.data as Float32Array)[0]).toBe(Math.fround(q0 * 0.006666756611244351 + -0.87334511607301));
    expect(Array.from(ours.get('q8int/ids')!.data as Int32Array)).toEqual([-3, 125]);
  });

  it('concatenates shards in order', () => {
    const { specs, bytes } = mixedWeights();
    const shards = [bytes.slice(0, 10).buffer, bytes.slice(10, 40), bytes.slice(40).buffer];
    const whole = decodeWeights(bytes, specs);
    const split = decodeWeights(shards, specsOfManifest([{ paths: ['a', 'b', 'c'], weights: specs }]));
    for (const s of specs) expect(Array.from(split.get(s.name)!.data as Float32Array)).toEqual(Array.from(whole.get(s.name)!.data as Float32Array));
  });

  it('says so when the bytes do not match the manifest', () => {
    const { specs, bytes } = mixedWeights();
    for (const data of [bytes.slice(0, bytes.length - 1), Uint8Array.from([...bytes, 0])]) {
      let err: unknown;
      try {
        decodeWeights(data, specs);
      } catch (e) {
        err = e;
      }
      expect(isGraftError(err, 'MODEL_INVALID')).toBe(true);
    }
    expect(() => decodeWeights(new Uint8Array(4), [{ name: 'w', shape: [4], dtype: 'float32', quantization: { dtype: 'uint8' } }])).toThrow(/no min \/ scale/);
  });
});
