/** onnxruntime-node in worker threads (runtime.ts), worker tasks (task.ts), batched streaming (batched.ts). */
export { Runtime, Session, TaskHandle } from './runtime.js';
export type { LoadOptions, LoadTaskOptions, LogLevel, Optimization, RunOptions, RuntimeOptions, UntypedTaskMethods, ValueMeta } from './runtime.js';
export { defineTask, transfer } from './task.js';
export type { TaskContext, TaskFactory, TaskMethods, TaskResult, TaskSessionOptions, Transferred } from './task.js';
export { mapBatched, prepareEach } from './batched.js';
export type { BatchContext, ItemResult, MapBatchedOptions, PrepareFn, PreparedBatch, RunFn } from './batched.js';
