/**
 * Lever 3 check: does ORT's NCHWc layout transformer rewrite a Conv whose weight is not an initializer
 * but computed by a cheap op from one (Mul by 1, Identity, Reshape)? Saves each session's optimized
 * graph and lists the op types ORT ended up with.
 *
 *   npx tsx bench/finetune/nchwc-check.ts
 */
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../src/graph/builder.js';
import { Graph, Model } from '../../src/graph/graph.js';
import { modelFromBytes, modelToBytes } from '../../src/graph/serialize.js';
import { float32 } from '../../src/onnx/tensor.js';
import { randomFloats } from './common.js';

const cases: Record<string, (b: GraphBuilder, g: Graph) => string> = {
  'weight initializer': (b, g) => (g.initializers.set('w', float32([64, 64, 3, 3], randomFloats(64 * 64 * 9))), 'w'),
  'weight input': (_b, g) => (g.inputs.push({ name: 'w', dtype: 'float32', shape: [64, 64, 3, 3] }), 'w'),
  'input · 1': (b, g) => (g.inputs.push({ name: 'w', dtype: 'float32', shape: [64, 64, 3, 3] }), b.op('Mul', ['w', b.f32(1)])),
  'Identity(input)': (b, g) => (g.inputs.push({ name: 'w', dtype: 'float32', shape: [64, 64, 3, 3] }), b.op('Identity', ['w'])),
  'initializer · input scale': (b, g) => {
    g.initializers.set('w0', float32([64, 64, 3, 3], randomFloats(64 * 64 * 9)));
    g.inputs.push({ name: 's', dtype: 'float32', shape: [64, 1, 1, 1] });
    return b.op('Mul', ['w0', 's']);
  },
};
for (const [name, weight] of Object.entries(cases)) {
  const g = new Graph({ inputs: [{ name: 'x', dtype: 'float32', shape: [1, 64, 28, 28] }] });
  const b = new GraphBuilder(g);
  b.reserve('x', 'w', 'w0', 's');
  const y = b.op('Conv', ['x', weight(b, g)], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  g.outputs = [{ name: y, dtype: 'float32', shape: [1, 64, 28, 28] }];
  const file = join(tmpdir(), `nchwc-check-${process.pid}.onnx`);
  const s = await ort.InferenceSession.create(modelToBytes(new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }] })), { graphOptimizationLevel: 'all', optimizedModelFilePath: file });
  await s.release();
  const opt = modelFromBytes(readFileSync(file));
  rmSync(file);
  console.log(`${name.padEnd(28)} → ${opt.graph.nodes.map((n) => (n.domain ? `${n.domain}.` : '') + n.opType).join(', ')}`);
}
