/**
 * Worker tasks: code that lives inside a runtime worker next to its ORT sessions and keeps state across
 * calls (training keeps weights and optimizer state there and runs a session plus an in-place update per
 * step, with no copies to the main thread in between).
 *
 * A task is a module whose default export is a factory made with `defineTask`:
 *
 *   export default defineTask((init: { lr: number }, ctx) => {
 *     let session: InferenceSession;
 *     return {
 *       async setup(model: Uint8Array) { session = await ctx.createSession(model); },
 *       async step(batch: Tensor) { ...; return transfer(result, [result.data.buffer]); },
 *       dispose() { ... },
 *     };
 *   });
 *
 * and the main thread drives it with `runtime.loadTask(url, init)` → `handle.call('step', batch)`.
 * Calls to one task run one at a time, in the order they were made. `dispose` (when present) runs on
 * `handle.dispose()` and on `runtime.close()`; sessions made with `ctx.createSession` are released after it.
 * An exception a method throws fails that call only; an uncaught exception in a task's own timers or
 * callbacks kills the worker (every pending call on it fails with RUNTIME_CRASHED).
 */
import type { TransferListItem } from 'node:worker_threads';
import type { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import type { Tensor } from '../onnx/tensor.js';
import type { Optimization } from './protocol.js';

export interface TaskSessionOptions {
  optimization?: Optimization;
  freeDimensionOverrides?: Record<string, number>;
  /** Intra-op threads; defaults to the runtime's `threads`. */
  threads?: number;
}

export interface TaskContext {
  /** Intra-op threads a session gets by default in this runtime. */
  readonly threads: number;
  /**
   * A session loaded with `runtime.load()` on this worker, by its `Session.id` (load it with
   * `{ sameWorkerAs: taskHandle }`). Released by its owner on the main thread, not by the task.
   */
  session(id: number): InferenceSession;
  /** A session owned by this task, made with the runtime's defaults (threads, logging, spinning). */
  createSession(model: Uint8Array | string, opts?: TaskSessionOptions): Promise<InferenceSession>;
  /** graft tensor → ORT tensor (no copy). */
  toOrt(t: Tensor): OrtTensor;
  /** ORT tensor → graft tensor (no copy). */
  fromOrt(t: OrtTensor): Tensor;
}

/** A task's methods: each takes one structured-cloneable argument and returns a cloneable value. */
export type TaskMethods = { [method: string]: (args: never) => unknown };

export type TaskFactory<I = never, M extends TaskMethods = TaskMethods> = (init: I, ctx: TaskContext) => M | Promise<M>;

/** Identity, for typing: lets `runtime.loadTask<typeof factory>()` type `init`, method names and results. */
export function defineTask<I, M extends TaskMethods>(factory: (init: I, ctx: TaskContext) => M | Promise<M>): TaskFactory<I, M> {
  return factory;
}

const TRANSFER = Symbol.for('graft.runtime.transfer');

/** A method result whose listed buffers move to the caller instead of being copied. */
export interface Transferred<T> {
  readonly [TRANSFER]: readonly TransferListItem[];
  readonly value: T;
}

/** Wraps a method's result so `list` (e.g. output buffers) is transferred to the main thread, not copied. */
export function transfer<T>(value: T, list: readonly TransferListItem[]): Transferred<T> {
  return { [TRANSFER]: list, value };
}

export function unwrapTransfer(result: unknown): { value: unknown; transfer: readonly TransferListItem[] } {
  if (result && typeof result === 'object' && TRANSFER in result) {
    const t = result as Transferred<unknown>;
    return { value: t.value, transfer: t[TRANSFER] };
  }
  return { value: result, transfer: [] };
}

/** What `handle.call(method)` resolves to: the method's result without the transfer wrapper. */
export type TaskResult<R> = Awaited<R> extends Transferred<infer V> ? V : Awaited<R>;
