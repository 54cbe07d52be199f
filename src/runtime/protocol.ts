/**
 * The messages between the main thread (runtime.ts) and a runtime worker (worker.ts). Requests carry an
 * id; the worker answers each with exactly one reply, in no particular order across sessions and tasks.
 */
import type { GraftErrorCode } from '../errors.js';
import type { DType, Tensor } from '../onnx/tensor.js';

export type LogLevel = 'verbose' | 'info' | 'warning' | 'error' | 'fatal';
export type Optimization = 'all' | 'basic' | 'disabled';

/** Given to every worker as workerData. */
export interface WorkerConfig {
  /** Default intra-op threads per session. */
  threads: number;
  logLevel: LogLevel;
  /** Let ORT's intra-op threads busy-wait between parallel sections. */
  spin: boolean;
}

/** What a worker needs to create a session. */
export interface SessionConfig {
  optimization: Optimization;
  freeDimensionOverrides?: Record<string, number>;
  threads?: number;
}

/** ORT's description of a model input or output. */
export interface ValueMeta {
  name: string;
  /** null for values that are not tensors (sequences, maps). int4/uint4 have no graft DType. */
  dtype: DType | 'int4' | 'uint4' | null;
  /** Numbers for fixed dims, the symbolic name for free ones (as ORT reports them); null for non-tensors. */
  dims: readonly (number | string)[] | null;
}

export type Request =
  | { op: 'load'; model: Uint8Array | string; config: SessionConfig }
  | { op: 'run'; session: number; feeds: Record<string, Tensor>; fetches?: readonly string[] }
  | { op: 'release'; session: number }
  | { op: 'loadTask'; url: string; init: unknown }
  | { op: 'call'; task: number; method: string; args: unknown }
  | { op: 'disposeTask'; task: number }
  | { op: 'nchwcBlock' }
  | { op: 'close' };

export type RequestEnvelope = Request & { id: number };

export interface LoadReply {
  session: number;
  inputs: ValueMeta[];
  outputs: ValueMeta[];
}

/**
 * A failure as it crosses the thread boundary. `origin` says who raised it: 'ort' (onnxruntime's own
 * message, which the main thread wraps with a hint), 'graft' (a GraftError whose code and message stand),
 * or 'task' (anything else a worker task threw).
 */
export interface WireError {
  origin: 'ort' | 'graft' | 'task';
  code: GraftErrorCode;
  message: string;
  subject?: string;
  stack?: string;
}

export type WorkerMessage =
  | { kind: 'ready' }
  | { kind: 'reply'; id: number; ok: true; value: unknown }
  | { kind: 'reply'; id: number; ok: false; error: WireError };
