/**
 * The onnxruntime-node side of a runtime worker: session creation with graft's defaults, tensors in both
 * directions, and ORT's errors as wire errors. Imported only inside workers, so the main thread never
 * loads the native binding.
 */
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ERROR_CODES, GraftError, type GraftErrorCode } from '../errors.js';
import { decodeModelProto, encodeModelProto } from '../onnx/proto.js';
import type { DType, Tensor } from '../onnx/tensor.js';
import type { LogLevel, SessionConfig, ValueMeta, WireError } from './protocol.js';

const SEVERITY: Record<LogLevel, 0 | 1 | 2 | 3 | 4> = { verbose: 0, info: 1, warning: 2, error: 3, fatal: 4 };

export interface Defaults {
  threads: number;
  logLevel: LogLevel;
  spin: boolean;
}

/** Sets ORT's process-wide logging before the first session exists (it is read once, at ORT init). */
export function initOrt(logLevel: LogLevel): void {
  ort.env.logLevel = logLevel;
}

export async function createSession(model: Uint8Array | string, config: SessionConfig, defaults: Defaults): Promise<ort.InferenceSession> {
  const session: Record<string, unknown> = { intra_op: { allow_spinning: defaults.spin ? '1' : '0' } };
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    intraOpNumThreads: config.threads ?? defaults.threads,
    // graft's graphs are chains; inter-op parallelism would only compete with the intra-op pool
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: config.optimization,
    // ORT's memory pattern plans one block per run for the whole graph's activations on top of the
    // arena: measured (bench/): training-step peak RSS 1586 → 1144 MB on ResNet-18, 2339 → 1435 MB on
    // MobileNetV2, inference 756 → 722 MB at batch 32, at unchanged speed
    enableMemPattern: false,
    logSeverityLevel: SEVERITY[defaults.logLevel],
    extra: { session },
  };
  let source: Uint8Array | string = model;
  const overrides = config.freeDimensionOverrides;
  if (overrides && Object.keys(overrides).length) {
    // onnxruntime-node 1.30 accepts `freeDimensionOverrides` but silently ignores it; fixing the dims in
    // the model's declared shapes has the same effect (ORT specialises shapes from the graph inputs)
    const bytes = typeof model === 'string' ? readFileSync(model) : model;
    if (typeof model === 'string') session.model_external_initializers_file_folder_path = dirname(model);
    source = fixFreeDims(bytes, overrides, typeof model === 'string' ? model : 'the model');
  }
  return typeof source === 'string' ? ort.InferenceSession.create(source, options) : ort.InferenceSession.create(source, options);
}

function fixFreeDims(bytes: Uint8Array, overrides: Record<string, number>, source: string): Uint8Array {
  for (const [k, v] of Object.entries(overrides)) {
    if (!Number.isInteger(v) || v <= 0) throw new GraftError('INVALID_ARGUMENT', `freeDimensionOverrides.${k} must be a positive integer, got ${v}.`);
  }
  const proto = decodeModelProto(bytes, source);
  const g = proto.graph!;
  const seen = new Set<string>();
  for (const list of [g.input, g.output, g.valueInfo]) {
    for (const v of list ?? []) {
      for (const d of v.type?.tensorType?.shape?.dim ?? []) {
        const value = d.dimParam ? overrides[d.dimParam] : undefined;
        if (value === undefined) continue;
        seen.add(d.dimParam!);
        // dim_value and dim_param are a oneof: the encoder writes whichever is an own property
        delete d.dimParam;
        d.dimValue = value;
      }
    }
  }
  const unknown = Object.keys(overrides).filter((k) => !seen.has(k));
  if (unknown.length) {
    throw new GraftError(
      'INVALID_ARGUMENT',
      `freeDimensionOverrides names ${unknown.map((k) => `"${k}"`).join(', ')}, which no input or output of ${source} uses. ` +
        `Use the symbolic dims shown in session.inputs / session.outputs.`,
      { subject: unknown[0] },
    );
  }
  return encodeModelProto(proto);
}

export function valueMetas(list: readonly ort.InferenceSession.ValueMetadata[]): ValueMeta[] {
  return list.map((m) => (m.isTensor ? { name: m.name, dtype: m.type as ValueMeta['dtype'], dims: [...m.shape] } : { name: m.name, dtype: null, dims: null }));
}

export function toOrt(t: Tensor): ort.Tensor {
  if (t.dtype === 'bfloat16') {
    throw new GraftError('INVALID_ARGUMENT', 'onnxruntime-node cannot take bfloat16 tensors. Convert the feed to float32 (toFloat32) or float16.');
  }
  return new ort.Tensor(t.dtype as ort.Tensor.Type, t.data as ort.Tensor.DataType, t.dims);
}

export function fromOrt(t: ort.Tensor, name = 'an output'): Tensor {
  if (t.type === 'int4' || t.type === 'uint4') {
    throw new GraftError('MODEL_UNSUPPORTED', `${name} is an ${t.type} tensor, which graft cannot hold. Add a Cast to int8/uint8 at the end of the model.`);
  }
  return { dtype: t.type as DType, dims: [...t.dims], data: t.data as Tensor['data'] };
}

function isGraftErrorLike(e: unknown): e is GraftError {
  // duck-typed: a task may import errors.ts through a different URL (dist vs src) than the worker does
  return !!e && typeof e === 'object' && (e as Error).name === 'GraftError' && (e as GraftError).code in ERROR_CODES;
}

/**
 * Any error as it crosses back to the main thread. GraftErrors keep their code; errors from ORT calls
 * (`during` load or run) get the code that fits; anything else (a task's own bug) is RUNTIME_FAILED.
 */
export function toWireError(e: unknown, during: 'load' | 'run' | 'task'): WireError {
  const err = e instanceof Error ? e : new Error(String(e));
  if (isGraftErrorLike(err)) return { origin: 'graft', code: err.code, message: err.message, subject: err.subject, stack: err.stack };
  if (during === 'task') return { origin: 'task', code: 'RUNTIME_FAILED', message: err.message, stack: err.stack };
  return { origin: 'ort', code: during === 'load' ? loadErrorCode(err.message) : 'RUNTIME_FAILED', message: err.message, stack: err.stack };
}

function loadErrorCode(message: string): GraftErrorCode {
  if (/NOT_IMPLEMENTED|Could not find an implementation|is not a registered function|Unsupported/i.test(message)) return 'MODEL_UNSUPPORTED';
  if (/File doesn't exist|No such file/i.test(message)) return 'FILE_NOT_FOUND';
  return 'MODEL_INVALID';
}
