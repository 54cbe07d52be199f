/**
 * How the CLI ends: GraftError codes → exit codes, and one line on stderr (`graft: <message>`) instead
 * of a stack trace. GRAFT_DEBUG=1 adds the stack and the chain of causes.
 *
 *   exit  meaning                      codes
 *   0     success (for predict: at least one image classified; skipped images are reported)
 *   1     unexpected error (a bug: please report it with GRAFT_DEBUG=1 output)
 *   2     usage: a bad option or argument INVALID_ARGUMENT, MODEL_SOURCE_INVALID, OUTPUT_EXISTS, and
 *         commander's own errors (unknown option, missing argument)
 *   3     bad input or data            FILE_NOT_FOUND, FILE_EMPTY, IMAGE_UNREADABLE, IMAGE_TOO_LARGE,
 *                                      LABELS_INVALID, LABEL_MISMATCH, DATASET_EMPTY, DATASET_INVALID,
 *                                      CHECKPOINT_INVALID, METRICS_INVALID
 *   4     the model                    MODEL_INVALID, MODEL_UNSUPPORTED, MODEL_UNKNOWN_BUILTIN,
 *                                      IMPORT_UNSUPPORTED_LAYER, LAYER_NOT_FOUND, NO_GRADIENT_RULE
 *   5     network or cache             OFFLINE_CACHE_MISS, DOWNLOAD_FAILED, CHECKSUM_MISMATCH
 *   6     runtime / computation        RUNTIME_FAILED, RUNTIME_CRASHED, TRAINING_DIVERGED
 *   130   interrupted (Ctrl-C)         ABORTED
 */
import { CommanderError } from 'commander';
import { GraftError, type GraftErrorCode } from '../errors.js';

export const EXIT = {
  OK: 0,
  UNEXPECTED: 1,
  USAGE: 2,
  INPUT: 3,
  MODEL: 4,
  NETWORK: 5,
  RUNTIME: 6,
  ABORTED: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/**
 * Every code should be listed (a test checks); a code added to src/errors.ts without an entry here
 * exits with 1 until it gets one.
 */
export const EXIT_CODES: { readonly [K in GraftErrorCode]?: ExitCode } = {
  INVALID_ARGUMENT: EXIT.USAGE,
  MODEL_SOURCE_INVALID: EXIT.USAGE,
  OUTPUT_EXISTS: EXIT.USAGE,

  FILE_NOT_FOUND: EXIT.INPUT,
  FILE_EMPTY: EXIT.INPUT,
  IMAGE_UNREADABLE: EXIT.INPUT,
  IMAGE_TOO_LARGE: EXIT.INPUT,
  LABELS_INVALID: EXIT.INPUT,
  LABEL_MISMATCH: EXIT.INPUT,
  DATASET_EMPTY: EXIT.INPUT,
  DATASET_INVALID: EXIT.INPUT,
  CHECKPOINT_INVALID: EXIT.INPUT,
  METRICS_INVALID: EXIT.INPUT,

  MODEL_INVALID: EXIT.MODEL,
  MODEL_UNSUPPORTED: EXIT.MODEL,
  MODEL_UNKNOWN_BUILTIN: EXIT.MODEL,
  IMPORT_UNSUPPORTED_LAYER: EXIT.MODEL,
  LAYER_NOT_FOUND: EXIT.MODEL,
  NO_GRADIENT_RULE: EXIT.MODEL,

  OFFLINE_CACHE_MISS: EXIT.NETWORK,
  DOWNLOAD_FAILED: EXIT.NETWORK,
  CHECKSUM_MISMATCH: EXIT.NETWORK,

  RUNTIME_FAILED: EXIT.RUNTIME,
  RUNTIME_CRASHED: EXIT.RUNTIME,
  TRAINING_DIVERGED: EXIT.RUNTIME,

  ABORTED: EXIT.ABORTED,
};

export function exitCodeFor(e: unknown): number {
  if (e instanceof GraftError) return EXIT_CODES[e.code] ?? EXIT.UNEXPECTED;
  if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  return EXIT.UNEXPECTED;
}

export function debugEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.GRAFT_DEBUG;
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

/** The stack and causes, for GRAFT_DEBUG=1. */
function details(e: unknown): string {
  const lines: string[] = [];
  for (let c: unknown = e, depth = 0; c !== undefined && depth < 8; c = (c as { cause?: unknown }).cause, depth++) {
    const text = c instanceof Error ? (c.stack ?? `${c.name}: ${c.message}`) : String(c);
    lines.push(depth === 0 ? text : `caused by: ${text}`);
    if (!(c instanceof Error)) break;
  }
  return lines.join('\n');
}

/**
 * Prints `e` for a person and returns the exit code. Commander has already printed its own usage
 * errors (see main.ts), so those only map to a code here.
 */
export function reportError(e: unknown, write: (s: string) => void, env: NodeJS.ProcessEnv = process.env): number {
  const code = exitCodeFor(e);
  const debug = debugEnabled(env);
  if (e instanceof CommanderError) return code;
  if (e instanceof GraftError) {
    write(`graft: ${e.message}\n`);
  } else {
    const msg = e instanceof Error ? e.message : String(e);
    write(`graft: unexpected error: ${msg}\n${debug ? '' : 'graft: run again with GRAFT_DEBUG=1 for the stack trace, and please report it.\n'}`);
  }
  if (debug) write(`${details(e)}\n`);
  return code;
}
