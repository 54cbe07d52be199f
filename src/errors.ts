/**
 * Every failure graft reports on purpose is a GraftError: a stable `code` that programs can switch on,
 * and a message that tells a person what to do next.
 */
export const ERROR_CODES = {
  // input files
  FILE_NOT_FOUND: 'a file or directory that was named does not exist',
  FILE_EMPTY: 'a file has zero bytes',
  IMAGE_UNREADABLE: 'a file is not an image sharp can decode, or is truncated',
  IMAGE_TOO_LARGE: 'an image has more pixels than the configured limit',
  // models
  MODEL_INVALID: 'a model file is not a valid ONNX model',
  MODEL_UNSUPPORTED: 'a model is valid ONNX but has a shape or layout graft cannot use',
  MODEL_UNKNOWN_BUILTIN: 'a builtin model name is not known',
  MODEL_SOURCE_INVALID: 'a --model specification cannot be parsed',
  IMPORT_UNSUPPORTED_LAYER: 'a Keras / tfjs layer has no ONNX conversion',
  LAYER_NOT_FOUND: 'a named layer / value does not exist in the model',
  // network and cache
  OFFLINE_CACHE_MISS: 'offline mode is on and the file is not in the cache',
  DOWNLOAD_FAILED: 'a download failed',
  CHECKSUM_MISMATCH: 'a downloaded file does not match its published checksum',
  // arguments and configuration
  INVALID_ARGUMENT: 'an option or argument has an invalid value',
  // data sets and training
  DATASET_EMPTY: 'a data set has no usable images',
  DATASET_INVALID: 'a data set is laid out in a way graft cannot use',
  LABEL_MISMATCH: 'labels in a data set are not labels the model knows',
  LABELS_INVALID: 'a labels file or id2label map cannot be read as a list of class names',
  OUTPUT_EXISTS: 'an output directory exists and --overwrite was not given',
  NO_GRADIENT_RULE: 'an operator has no gradient rule, so the model cannot be fine-tuned through it',
  TRAINING_DIVERGED: 'the loss became NaN or infinite',
  CHECKPOINT_INVALID: 'a checkpoint cannot be resumed',
  METRICS_INVALID: 'a metrics.json file is not valid JSON, has an unknown schemaVersion or misses fields',
  ABORTED: 'the operation was cancelled',
  // runtime
  RUNTIME_FAILED: 'onnxruntime refused or failed to run a graph',
  RUNTIME_CRASHED: 'a runtime worker thread died; the sessions and tasks on it are gone',
} as const;

export type GraftErrorCode = keyof typeof ERROR_CODES;

export class GraftError extends Error {
  override readonly name = 'GraftError';
  readonly code: GraftErrorCode;
  /** The file, image, layer... the error is about, when there is one. */
  readonly subject?: string;

  constructor(code: GraftErrorCode, message: string, options: { subject?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.subject = options.subject;
  }
}

export function isGraftError(e: unknown, code?: GraftErrorCode): e is GraftError {
  return e instanceof GraftError && (code === undefined || e.code === code);
}

/** Throws ABORTED when the signal has fired; long loops call this between units of work. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new GraftError('ABORTED', 'The operation was cancelled.', { cause: signal.reason });
}
