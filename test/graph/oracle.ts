/**
 * onnxruntime as the oracle for graph tests: run a graph with every intermediate value exposed as an
 * output and compare real dims with inferred ones.
 */
import * as ort from 'onnxruntime-node';
import { expect } from 'vitest';
import { evalDim } from '../../src/graph/dims.js';
import { Model, type Graph } from '../../src/graph/graph.js';
import type { Dim, ValueInfo } from '../../src/graph/ir.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { inferShapes } from '../../src/graph/shapes.js';
import { numel, type DType } from '../../src/onnx/tensor.js';

/** Deterministic uniform numbers in [lo, hi). */
export function rand(n: number, seed = 1, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = lo + ((s >>> 0) / 2 ** 32) * (hi - lo);
  }
  return out;
}

export function modelOf(g: Graph, opset = 17): Model {
  return new Model({ graph: g, opsetImports: [{ domain: '', version: opset }], irVersion: opset >= 21 ? 10 : 8 });
}

/** Random feeds for the graph's inputs with every symbolic dim bound from `env`. */
export function feedsFor(g: Graph, env: Record<string, number>, seed = 7): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const inp of g.inputs) {
    const dims = (inp.shape ?? []).map((d) => {
      const v = evalDim(d, env);
      if (v === null) throw new Error(`bind ${String(d)} of input ${inp.name}`);
      return v;
    });
    const n = numel(dims);
    if (inp.dtype === 'float32') feeds[inp.name] = new ort.Tensor('float32', rand(n, seed++), dims);
    else if (inp.dtype === 'int64') feeds[inp.name] = new ort.Tensor('int64', new BigInt64Array(n), dims);
    else throw new Error(`no feed for ${inp.dtype}`);
  }
  return feeds;
}

export async function runModel(m: Model, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const s = await ort.InferenceSession.create(modelToBytes(m), { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}

export interface OracleResult {
  types: Map<string, ValueInfo>;
  /** Values whose inferred shape has a null dim or unknown rank. */
  unknown: string[];
  /** Number of node outputs compared. */
  checked: number;
}

/**
 * Infers shapes, then runs the graph in ORT once per binding of the symbolic dims with every node output
 * exposed, and asserts each inferred dtype and each known dim (symbols evaluated under the binding).
 */
export async function checkAgainstOrt(
  g: Graph,
  opts: { opset?: number; envs?: Record<string, number>[]; inputShapes?: Record<string, Dim[]> } = {},
): Promise<OracleResult> {
  const opset = opts.opset ?? 17;
  const envs = opts.envs ?? [{ N: 2 }, { N: 3 }];
  const types = inferShapes(g, { opset, inputShapes: opts.inputShapes });
  const exposed = g.clone();
  if (opts.inputShapes) exposed.inputs = exposed.inputs.map((i) => ({ ...i, shape: opts.inputShapes![i.name] ?? i.shape }));
  const names = [...new Set(g.nodes.flatMap((n) => n.outputs.filter((o) => o)))];
  for (const name of names) expect(types.get(name)?.dtype, `dtype of ${name}`).toBeDefined();
  exposed.outputs = names.map((name) => ({ name, dtype: types.get(name)!.dtype }));
  const unknown = new Set<string>();
  const session = await ort.InferenceSession.create(modelToBytes(modelOf(exposed, opset)), { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
  for (const env of envs) {
    const out = await session.run(feedsFor(exposed, env));
    for (const name of names) {
      const t = out[name];
      const info = types.get(name)!;
      expect(t.type as DType, `dtype of ${name}`).toBe(info.dtype);
      if (!info.shape) {
        unknown.add(name);
        continue;
      }
      expect(info.shape.length, `rank of ${name}: inferred [${info.shape.join(', ')}], ORT [${t.dims.join(', ')}]`).toBe(t.dims.length);
      info.shape.forEach((d, i) => {
        if (d === null) return void unknown.add(name);
        const v = evalDim(d, env);
        expect(v, `dim ${i} of ${name}: inferred [${info.shape!.join(', ')}], ORT [${t.dims.join(', ')}] with ${JSON.stringify(env)}`).toBe(
          t.dims[i],
        );
      });
    }
  }
  await session.release();
  return { types, unknown: [...unknown].sort(), checked: names.length };
}

export type { DType };
