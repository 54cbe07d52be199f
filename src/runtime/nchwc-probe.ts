/**
 * Worker side: which NCHWc block size this machine's ONNX Runtime uses (graph/nchwc), found by running a
 * lowered conv against a plain one rather than by reading CPU flags — the answer is whatever makes ORT's
 * kernels compute the right numbers here (16 on AVX-512, 8 on AVX2; 0 when neither does, e.g. a build
 * or CPU without the blocked kernels).
 */
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../graph/builder.js';
import { Graph, Model } from '../graph/graph.js';
import { lowerConvsToNchwc } from '../graph/nchwc.js';
import { modelToBytes } from '../graph/serialize.js';

/** Channel count divisible by every candidate block, so a wrong guess stays in bounds and shows as wrong numbers. */
const C = 32;
const HW = 5;
const CANDIDATES = [16, 8];

let answer: Promise<number> | undefined;

export function nchwcBlockSize(): Promise<number> {
  answer ??= probe();
  return answer;
}

/** y = Conv(x, w), 3×3, pads 1, with the weight a graph input as in a training step. */
function convModel(): Model {
  const g = new Graph({
    inputs: [
      { name: 'x', dtype: 'float32', shape: [2, C, HW, HW] },
      { name: 'w', dtype: 'float32', shape: [C, C, 3, 3] },
    ],
    outputs: [{ name: 'y', dtype: 'float32', shape: [2, C, HW, HW] }],
  });
  new GraphBuilder(g).op('Conv', ['x', 'w'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, { outputs: ['y'] });
  return new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }] });
}

async function run(model: Model, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(modelToBytes(model), { graphOptimizationLevel: 'all', intraOpNumThreads: 1, logSeverityLevel: 4 });
  try {
    return (await session.run(feeds)).y.data as Float32Array;
  } finally {
    await session.release();
  }
}

async function probe(): Promise<number> {
  const x = Float32Array.from({ length: 2 * C * HW * HW }, (_, i) => Math.sin(i * 0.37));
  const w = Float32Array.from({ length: C * C * 9 }, (_, i) => Math.cos(i * 0.11) * 0.1);
  const feeds = { x: new ort.Tensor('float32', x, [2, C, HW, HW]), w: new ort.Tensor('float32', w, [C, C, 3, 3]) };
  const reference = await run(convModel(), feeds);
  for (const block of CANDIDATES) {
    const lowered = convModel();
    if (lowerConvsToNchwc(lowered, { block }).lowered !== 1) continue;
    try {
      const y = await run(lowered, feeds);
      if (y.every((v, i) => Math.abs(v - reference[i]) <= 1e-4 * (1 + Math.abs(reference[i])))) return block;
    } catch {
      // this build has no blocked kernels (or not for this block size): try the next candidate
    }
  }
  return 0;
}
