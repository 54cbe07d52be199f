import { GraftError } from '../errors.js';

export function abortError(signal: AbortSignal): GraftError {
  return new GraftError('ABORTED', 'The operation was cancelled.', { cause: signal.reason });
}

/**
 * Settles like `p`, or rejects with ABORTED as soon as `signal` fires (the work behind `p` goes on; its
 * outcome is dropped). One listener per call, removed when `p` settles, so long loops don't pile up
 * reactions on a shared promise as Promise.race against a single abort promise would.
 */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    // p stays handled by the then() below, so a dropped failure never surfaces as unhandled
    const onAbort = () => reject(abortError(signal));
    if (signal.aborted) {
      p.catch(() => undefined);
      return onAbort();
    }
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
