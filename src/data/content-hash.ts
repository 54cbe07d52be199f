/**
 * Content hashes of files: an image's identity for duplicate detection and the feature cache, so a renamed
 * or copied file keeps its identity and an edited one gets a new one.
 *
 * SHA-256 rather than a non-cryptographic hash: on this class of CPU (SHA extensions) OpenSSL hashes it as
 * fast as SHA-1 (≈450 MB/s per core measured here), reading the file costs more than hashing it, and a
 * cache key nobody can collide on purpose never serves one image's features for another.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { GraftError, throwIfAborted } from '../errors.js';
import { untilAborted } from '../runtime/abort.js';

export const HASH_ALGORITHM = 'sha256';
/** Bytes of a digest; hex strings are twice as long. */
export const HASH_BYTES = 32;

const CHUNK = 1 << 20;

/** The hex SHA-256 of a file's bytes, read in chunks (memory stays ≤ 1 MB whatever the file size). */
export async function hashFile(path: string): Promise<string> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw fileError(path, e);
  }
  try {
    const { size } = await fh.stat();
    const buf = Buffer.allocUnsafe(Math.max(1, Math.min(size, CHUNK)));
    const h = createHash(HASH_ALGORITHM);
    // read until EOF rather than to `size`: the file may grow or shrink while we read it
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead));
    }
    return h.digest('hex');
  } catch (e) {
    throw fileError(path, e);
  } finally {
    await fh.close();
  }
}

/** ENOENT etc. as the GraftErrors image decoding uses, so a consumer reports them the same way. */
export function fileError(path: string, e: unknown): GraftError {
  if (e instanceof GraftError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new GraftError('FILE_NOT_FOUND', `${path} does not exist (it was removed or renamed after the data set was listed). List the data set again.`, { subject: path, cause: e });
  }
  if (code === 'EISDIR') return new GraftError('IMAGE_UNREADABLE', `${path} is a directory, not an image file.`, { subject: path, cause: e });
  return new GraftError('IMAGE_UNREADABLE', `Cannot read ${path}: ${(e as Error).message}. Check its permissions.`, { subject: path, cause: e });
}

export type Settled<R> = { index: number; ok: true; value: R } | { index: number; ok: false; error: unknown };

/**
 * Applies `fn` to every item with at most `concurrency` calls in flight, yielding results in input order
 * (an item's failure is yielded, not thrown). Lookahead is bounded by `concurrency`, so a slow consumer
 * stops the reads.
 */
export async function* mapOrdered<T, R>(items: Iterable<T>, concurrency: number, fn: (item: T, index: number) => Promise<R>, signal?: AbortSignal): AsyncGenerator<Settled<R>, void, undefined> {
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new GraftError('INVALID_ARGUMENT', `concurrency must be an integer ≥ 1, got ${concurrency}.`);
  const it = items[Symbol.iterator]();
  const window: Promise<Settled<R>>[] = [];
  let index = 0;
  let done = false;
  const fill = () => {
    while (!done && window.length < concurrency) {
      const r = it.next();
      if (r.done) {
        done = true;
        break;
      }
      const i = index++;
      window.push(fn(r.value, i).then((value): Settled<R> => ({ index: i, ok: true, value }), (error: unknown): Settled<R> => ({ index: i, ok: false, error })));
    }
  };
  fill();
  while (window.length) {
    throwIfAborted(signal);
    const r = await untilAborted(window[0], signal);
    window.shift();
    fill();
    yield r;
  }
}

/** Hashes `paths` (8 files read at once by default), yielding { index, value: hex } or { index, error } in order. */
export function hashFiles(paths: Iterable<string>, opts: { concurrency?: number; signal?: AbortSignal } = {}): AsyncGenerator<Settled<string>, void, undefined> {
  return mapOrdered(paths, opts.concurrency ?? 8, (p) => hashFile(p), opts.signal);
}

/** True for a lowercase hex digest of the right length. */
export function isContentHash(h: string): boolean {
  return h.length === HASH_BYTES * 2 && /^[0-9a-f]+$/.test(h);
}
