/** Small ONNX models built in code for the runtime tests, with plain-JS references for their maths. */
import { GraphBuilder } from '../../src/graph/builder.js';
import { Graph, Model } from '../../src/graph/graph.js';
import { attr } from '../../src/graph/ir.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { float32 } from '../../src/onnx/tensor.js';

/** Deterministic pseudo-random numbers in [-1, 1) (a small LCG, so tests don't depend on Math.random). */
export function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

export function randoms(n: number, seed: number): number[] {
  const r = seeded(seed);
  return Array.from({ length: n }, r);
}

/** y = alpha · x·Wᵀ + beta · b with x [N, inF], W [outF, inF]. */
export function gemmModel(inF: number, outF: number, w: number[], b: number[], alpha = 1, beta = 1): Uint8Array {
  const g = new Graph({ inputs: [{ name: 'x', dtype: 'float32', shape: ['N', inF] }] });
  const gb = new GraphBuilder(g);
  const W = gb.initializer('W', float32([outF, inF], w));
  const B = gb.initializer('b', float32([outF], b));
  gb.op('Gemm', ['x', W, B], { transB: 1, alpha: attr.f(alpha), beta: attr.f(beta) }, { outputs: ['y'] });
  g.outputs = [{ name: 'y', dtype: 'float32', shape: ['N', outF] }];
  return modelToBytes(new Model({ graph: g }));
}

export function gemmRef(x: number[], n: number, inF: number, outF: number, w: number[], b: number[], alpha = 1, beta = 1): number[] {
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < outF; o++) {
      let s = 0;
      for (let k = 0; k < inF; k++) s += x[i * inF + k] * w[o * inF + k];
      y.push(alpha * s + beta * b[o]);
    }
  }
  return y;
}

export interface ConvSpec {
  cin: number;
  cout: number;
  k: number;
  stride: number;
  pad: number;
}

/** x [N, cin, H, W] → Conv(W, b; stride, symmetric pads) → Relu → y. */
export function convModel(spec: ConvSpec, w: number[], b: number[]): Uint8Array {
  const g = new Graph({ inputs: [{ name: 'x', dtype: 'float32', shape: ['N', spec.cin, 'H', 'W'] }] });
  const gb = new GraphBuilder(g);
  const W = gb.initializer('W', float32([spec.cout, spec.cin, spec.k, spec.k], w));
  const B = gb.initializer('b', float32([spec.cout], b));
  const c = gb.op('Conv', ['x', W, B], { kernel_shape: [spec.k, spec.k], strides: [spec.stride, spec.stride], pads: [spec.pad, spec.pad, spec.pad, spec.pad] });
  gb.op('Relu', [c], {}, { outputs: ['y'] });
  g.outputs = [{ name: 'y', dtype: 'float32' }];
  return modelToBytes(new Model({ graph: g }));
}

/** Direct NCHW convolution + ReLU, the textbook loops. */
export function convRef(x: number[], n: number, h: number, wd: number, spec: ConvSpec, w: number[], b: number[]): { dims: number[]; data: number[] } {
  const { cin, cout, k, stride, pad } = spec;
  const oh = Math.floor((h + 2 * pad - k) / stride) + 1;
  const ow = Math.floor((wd + 2 * pad - k) / stride) + 1;
  const out: number[] = [];
  for (let ni = 0; ni < n; ni++) {
    for (let co = 0; co < cout; co++) {
      for (let oy = 0; oy < oh; oy++) {
        for (let ox = 0; ox < ow; ox++) {
          let s = b[co];
          for (let ci = 0; ci < cin; ci++) {
            for (let ky = 0; ky < k; ky++) {
              for (let kx = 0; kx < k; kx++) {
                const iy = oy * stride - pad + ky;
                const ix = ox * stride - pad + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                s += x[((ni * cin + ci) * h + iy) * wd + ix] * w[((co * cin + ci) * k + ky) * k + kx];
              }
            }
          }
          out.push(Math.max(0, s));
        }
      }
    }
  }
  return { dims: [n, cout, oh, ow], data: out };
}

/** x [size, size] → `steps` MatMuls by the same [size, size] matrix: ~2·size³·steps FLOPs of pure work. */
export function matmulChainModel(size: number, steps: number): Uint8Array {
  const g = new Graph({ inputs: [{ name: 'x', dtype: 'float32', shape: [size, size] }] });
  const gb = new GraphBuilder(g);
  // entries 1/size keep every step's values where they started (each row sums to the row mean × 1)
  const W = gb.initializer('W', float32([size, size], new Float32Array(size * size).fill(1 / size)));
  let v = 'x';
  for (let i = 0; i < steps; i++) v = gb.op('MatMul', [v, W], {}, i === steps - 1 ? { outputs: ['y'] } : {});
  g.outputs = [{ name: 'y', dtype: 'float32', shape: [size, size] }];
  return modelToBytes(new Model({ graph: g }));
}

/** Linear regression step: x [N, dim], t [N], w [dim] → loss = Σ(x·w − t)², grad = (x·w − t)·x (= ½ ∂loss/∂w). */
export function linearStepModel(dim: number): Uint8Array {
  const g = new Graph({
    inputs: [
      { name: 'x', dtype: 'float32', shape: ['N', dim] },
      { name: 't', dtype: 'float32', shape: ['N'] },
      { name: 'w', dtype: 'float32', shape: [dim] },
    ],
  });
  const gb = new GraphBuilder(g);
  const err = gb.op('Sub', [gb.op('MatMul', ['x', 'w']), 't']);
  gb.op('ReduceSumSquare', [err], { keepdims: 0 }, { outputs: ['loss'] });
  gb.op('MatMul', [err, 'x'], {}, { outputs: ['grad'] });
  g.outputs = [
    { name: 'loss', dtype: 'float32', shape: [] },
    { name: 'grad', dtype: 'float32', shape: [dim] },
  ];
  return modelToBytes(new Model({ graph: g }));
}

/** y = x + 7 for int64 x; `twice` = x · 2 as a second output. */
export function int64Model(): Uint8Array {
  const g = new Graph({ inputs: [{ name: 'x', dtype: 'int64', shape: ['N'] }] });
  const gb = new GraphBuilder(g);
  gb.op('Add', ['x', gb.i64Scalar(7)], {}, { outputs: ['y'] });
  gb.op('Mul', ['x', gb.i64Scalar(2)], {}, { outputs: ['twice'] });
  g.outputs = [
    { name: 'y', dtype: 'int64', shape: ['N'] },
    { name: 'twice', dtype: 'int64', shape: ['N'] },
  ];
  return modelToBytes(new Model({ graph: g }));
}
