/**
 * Child-process script for exit.test.ts: loads a model, runs it, optionally closes the runtime, then
 * returns from the top level. The process must end by itself; the test watches its exit code and output.
 * argv: <close|no-close> <logLevel>
 */
import { GraphBuilder } from '../../../src/graph/builder.js';
import { Graph, Model } from '../../../src/graph/graph.js';
import { modelToBytes } from '../../../src/graph/serialize.js';
import { float32 } from '../../../src/onnx/tensor.js';
import { Runtime, type LogLevel } from '../../../src/runtime/index.js';

const [mode, logLevel] = process.argv.slice(2) as ['close' | 'no-close', LogLevel];

// y = x·Wᵀ, plus an initializer no node reads: ORT warns about it at log level 'warning'
const g = new Graph({ inputs: [{ name: 'x', dtype: 'float32', shape: ['N', 2] }] });
const b = new GraphBuilder(g);
b.op('Gemm', ['x', b.initializer('W', float32([1, 2], [2, 3]))], { transB: 1 }, { outputs: ['y'] });
b.initializer('unused_weights', float32([4], [1, 2, 3, 4]));
g.outputs = [{ name: 'y', dtype: 'float32', shape: ['N', 1] }];

const rt = await Runtime.create({ threads: 1, logLevel });
const s = await rt.load(modelToBytes(new Model({ graph: g })));
const { y } = await s.run({ x: float32([1, 2], [1, 1]) });
console.log(`result ${Array.from(y.data as Float32Array).join(',')}`);
if (mode === 'close') {
  await rt.close();
  console.log(`resources ${JSON.stringify(process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'PipeWrap'))}`);
}
