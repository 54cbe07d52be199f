/**
 * A worker task for the runtime tests: linear regression trained inside the worker. Weights live in the
 * worker across calls; each step runs an ORT session (forward + gradient) and updates them in place.
 */
import type { InferenceSession } from 'onnxruntime-node';
import { GraftError } from '../../../src/errors.js';
import type { Tensor } from '../../../src/onnx/tensor.js';
import { defineTask, transfer } from '../../../src/runtime/task.js';

export default defineTask((init: { dim: number; lr: number }, ctx) => {
  const w = new Float32Array(init.dim);
  let session: InferenceSession | undefined;
  const log: number[] = [];

  return {
    async setup(model: Uint8Array) {
      session = await ctx.createSession(model);
      return { inputs: session.inputNames, threads: ctx.threads };
    },
    /** One SGD step on (x [N, dim], t [N]); returns the loss before the update. */
    async step(batch: { x: Tensor; t: Tensor }) {
      if (!session) throw new GraftError('INVALID_ARGUMENT', 'call setup() first');
      const n = batch.x.dims[0];
      const out = await session.run({ x: ctx.toOrt(batch.x), t: ctx.toOrt(batch.t), w: ctx.toOrt({ dtype: 'float32', dims: [init.dim], data: w }) });
      const grad = ctx.fromOrt(out.grad).data as Float32Array;
      for (let i = 0; i < w.length; i++) w[i] -= (init.lr * 2 * grad[i]) / n;
      return (out.loss.data as Float32Array)[0] / n;
    },
    weights() {
      const copy = w.slice();
      return transfer(copy, [copy.buffer]);
    },
    /** Runs a session the main thread loaded onto this worker. */
    async forwardWith(args: { session: number; x: Tensor }) {
      const out = await ctx.session(args.session).run({ x: ctx.toOrt(args.x) });
      return ctx.fromOrt(out.y);
    },
    /** Appends after a random delay: calls must still land in call order. */
    async append(v: number) {
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 8)));
      log.push(v);
      return log.length;
    },
    log: () => [...log],
    fail() {
      throw new GraftError('LABEL_MISMATCH', 'a deliberate failure');
    },
    bug() {
      throw new TypeError('a deliberate bug');
    },
    /** Throws from a timer, after the reply has had ample time to reach the main thread. */
    crashLater() {
      setTimeout(() => {
        throw new Error('deliberate crash in a timer');
      }, 300);
      return 'scheduled';
    },
    exit(code: number) {
      process.exit(code);
    },
    async hang() {
      await new Promise(() => undefined);
    },
  };
});
