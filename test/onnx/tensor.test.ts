import { describe, expect, it } from 'vitest';
import { arrayFromBytes, floatToHalf, halfToFloat, toFloat32, tensor } from '../../src/onnx/tensor.js';

describe('float16 conversion', () => {
  it('matches known bit patterns', () => {
    const cases: [number, number][] = [
      [0x3c00, 1],
      [0xc000, -2],
      [0x7bff, 65504],
      [0x0001, 2 ** -24], // smallest subnormal
      [0x0400, 2 ** -14], // smallest normal
      [0x3555, 0.333251953125],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
    ];
    for (const [bits, value] of cases) {
      expect(halfToFloat(bits)).toBe(value);
      expect(floatToHalf(value)).toBe(bits);
    }
    expect(Number.isNaN(halfToFloat(0x7e00))).toBe(true);
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
  });

  it('rounds to nearest even and survives every half value', () => {
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(floatToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(floatToHalf(70000)).toBe(0x7c00); // overflow → inf
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) continue; // NaN payloads
      expect(floatToHalf(halfToFloat(h))).toBe(h);
    }
  });

  it('widens float16 tensors to float32', () => {
    const t = tensor('float16', [2], Uint16Array.of(0x3c00, 0xc000));
    expect(Array.from(toFloat32(t).data)).toEqual([1, -2]);
  });
});

describe('arrayFromBytes', () => {
  it('copies unaligned bytes and views aligned ones', () => {
    const src = new Float32Array([1.5, -2.25, 3]);
    const raw = new Uint8Array(13);
    raw.set(new Uint8Array(src.buffer), 1);
    const unaligned = arrayFromBytes('float32', raw.subarray(1));
    expect(Array.from(unaligned as Float32Array)).toEqual([1.5, -2.25, 3]);
    const aligned = new Uint8Array(src.buffer);
    const view = arrayFromBytes('float32', aligned);
    expect(view.buffer).toBe(src.buffer);
  });
});
