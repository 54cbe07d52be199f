/**
 * Finite-difference checking of gradient rules. For a forward graph y = f(params) and a fixed random
 * projection R, the scalar L = Σ y·R has gradient ∂L/∂p from graft's backward graph; along random
 * directions v it must equal the central difference (L(p + hv) − L(p − hv)) / 2h, evaluated by
 * onnxruntime on the forward graph. Everything runs in float32, so tolerances are relative to the
 * size of the terms involved, not to machine epsilon.
 */
import * as ort from 'onnxruntime-node';
import { buildBackward } from '../../src/autodiff/sweep.js';
import type { GradOptions } from '../../src/autodiff/rule.js';
import { GraphBuilder } from '../../src/graph/builder.js';
import { Graph, Model } from '../../src/graph/graph.js';
import type { Dim } from '../../src/graph/ir.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { inferShapes } from '../../src/graph/shapes.js';
import { float32 } from '../../src/onnx/tensor.js';
import { fill } from '../fixtures/prng.js';

export interface GradCheckInput {
  dims: number[];
  /** Values; default: PRNG uniform in [lo, hi]. */
  data?: Float32Array;
  lo?: number;
  hi?: number;
  /** Differentiate w.r.t. this input (default true). Non-float inputs are given via `constants`. */
  wrt?: boolean;
}

export interface GradCheckCase {
  /** Builds the forward node(s) from named inputs; returns the output value. */
  build: (b: GraphBuilder, inputs: Record<string, string>) => string;
  inputs: Record<string, GradCheckInput>;
  opset?: number;
  options?: GradOptions;
  /** Finite-difference step (relative to the input's scale). */
  h?: number;
  seed?: number;
  /**
   * Declare axis 0 of the differentiated inputs as a symbol, so rules take their run-time-shape paths:
   * one symbol per size ("N2", "N3"), as ONNX reads equal symbols as equal sizes.
   */
  symbolicBatch?: boolean;
}

export interface GradCheckReport {
  /** Worst |analytic − numeric| / max(|analytic|, |numeric|, floor) over all directions and inputs. */
  worstRelErr: number;
  details: { input: string; analytic: number; numeric: number }[];
}

function forwardModel(c: GradCheckCase, names: string[], wrt: Set<string>): { model: Model; out: string } {
  const g = new Graph();
  const b = new GraphBuilder(g);
  b.reserve(...names);
  for (const n of names) {
    const spec = c.inputs[n];
    const dims: Dim[] = spec.dims.map((d, k) => (c.symbolicBatch && k === 0 ? `N${d}` : d));
    if (wrt.has(n)) g.inputs.push({ name: n, dtype: 'float32', shape: dims });
    else g.initializers.set(n, float32(spec.dims, spec.data!));
  }
  const out = c.build(b, Object.fromEntries(names.map((n) => [n, n])));
  const model = new Model({ graph: g, opsetImports: [{ domain: '', version: c.opset ?? 17 }] });
  return { model, out };
}

/** The forward model as a session, and its output's dims for the inputs' data (symbolic dims resolved by running it). */
async function forwardSession(c: GradCheckCase, names: string[], wrt: Set<string>) {
  const fwd = forwardModel(c, names, wrt);
  fwd.model.graph.outputs = [{ name: fwd.out, dtype: 'float32' }];
  const session = await ort.InferenceSession.create(modelToBytes(fwd.model));
  const y = (await session.run(Object.fromEntries([...wrt].map((n) => [n, new ort.Tensor('float32', c.inputs[n].data!, c.inputs[n].dims)]))))[fwd.out];
  return { session, out: fwd.out, yShape: [...y.dims] };
}

/** A session computing graft's gradients of Σ y·seed with respect to `wrt` (seed = the upstream gradient dy). */
async function backwardSession(c: GradCheckCase, names: string[], wrt: Set<string>, yShape: number[], seed: Float32Array) {
  const bwd = forwardModel(c, names, wrt);
  const bshapes = inferShapes(bwd.model);
  const bb = new GraphBuilder(bwd.model.graph, { opset: bwd.model.opset });
  const seedR = bb.initializer('R', float32(yShape, seed));
  const { grads } = buildBackward({ graph: bwd.model.graph, seeds: new Map([[bwd.out, seedR]]), wrt: [...wrt], shapes: bshapes, opset: bwd.model.opset, options: c.options, builder: bb });
  bwd.model.graph.outputs = [...wrt].map((n) => ({ name: grads.get(n)!, dtype: 'float32' as const }));
  bwd.model.graph.prune();
  return { session: await ort.InferenceSession.create(modelToBytes(bwd.model)), grads };
}

/**
 * graft's gradient of one input for a given upstream gradient dy — for exact checks where finite
 * differences say nothing (ties, where the derivative is a convention).
 */
export async function analyticGrad(c: GradCheckCase, dy: Float32Array): Promise<Float32Array> {
  const names = Object.keys(c.inputs);
  const wrt = new Set(names.filter((n) => c.inputs[n].wrt !== false));
  if (wrt.size !== 1) throw new Error('analyticGrad differentiates exactly one input');
  const fwd = await forwardSession(c, names, wrt);
  await fwd.session.release();
  const yShape = fwd.yShape;
  const { session, grads } = await backwardSession(c, names, wrt, yShape, dy);
  const [n] = wrt;
  try {
    const out = await session.run({ [n]: new ort.Tensor('float32', c.inputs[n].data!, c.inputs[n].dims) });
    return out[grads.get(n)!].data as Float32Array;
  } finally {
    await session.release();
  }
}

export async function gradCheck(c: GradCheckCase): Promise<GradCheckReport> {
  const seed = c.seed ?? 7;
  const names = Object.keys(c.inputs);
  names.forEach((n, i) => {
    const spec = c.inputs[n];
    spec.data ??= fill(seed * 31 + i, spec.dims, spec.lo ?? -1, spec.hi ?? 1);
  });
  const wrt = new Set(names.filter((n) => c.inputs[n].wrt !== false));

  // forward + L = Σ y·R as an evaluable model with the wrt values as inputs
  const { session: evalSession, out, yShape } = await forwardSession(c, names, wrt);
  const R = fill(seed + 1000, yShape, -1, 1);
  const { session: gradSession, grads } = await backwardSession(c, names, wrt, yShape, R);

  const feeds = (override: Record<string, Float32Array> = {}) =>
    Object.fromEntries([...wrt].map((n) => [n, new ort.Tensor('float32', override[n] ?? c.inputs[n].data!, c.inputs[n].dims)]));
  const gradOut = await gradSession.run(feeds());
  // y is read back and L = Σ y·R summed in float64 here: summing in float32 inside the graph would add
  // rounding noise that the finite difference then divides by 2h
  const evalL = async (o: Record<string, Float32Array>) => {
    const y = (await evalSession.run(feeds(o)))[out].data as Float32Array;
    let sum = 0;
    for (let i = 0; i < y.length; i++) sum += y[i] * R[i];
    return sum;
  };

  const details: GradCheckReport['details'] = [];
  let worst = 0;
  for (const n of wrt) {
    const g = gradOut[grads.get(n)!].data as Float32Array;
    const x = c.inputs[n].data!;
    for (let k = 0; k < 3; k++) {
      const v = fill(seed * 7 + k * 13 + n.length, [x.length], -1, 1);
      const scale = x.reduce((m, xi) => Math.max(m, Math.abs(xi)), 1e-3); // no spread: inputs can exceed the argument limit
      const h = (c.h ?? 1e-2) * scale;
      const plus = x.map((xi, i) => xi + h * v[i]);
      const minus = x.map((xi, i) => xi - h * v[i]);
      const numeric = ((await evalL({ [n]: plus })) - (await evalL({ [n]: minus }))) / (2 * h);
      let analytic = 0;
      for (let i = 0; i < x.length; i++) analytic += g[i] * v[i];
      const rel = Math.abs(analytic - numeric) / Math.max(Math.abs(analytic), Math.abs(numeric), 1e-2);
      worst = Math.max(worst, rel);
      details.push({ input: n, analytic, numeric });
    }
  }
  await evalSession.release();
  await gradSession.release();
  return { worstRelErr: worst, details };
}
