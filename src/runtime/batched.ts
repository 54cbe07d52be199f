/**
 * Batched streaming inference with bounded memory: items are grouped into batches, each batch is prepared
 * (decoded, resized, packed: main thread + libuv pool) while earlier batches run in a worker, and
 * results come out one per item, in input order.
 *
 * Memory: a batch counts from the moment its preparation starts until its last result has been taken by
 * the consumer, and at most `prefetch + 1` batches exist at once: one running (or waiting to be consumed)
 * and up to `prefetch` being prepared. A consumer that stops pulling stops the pipeline.
 *
 * Bad items: prepare() reports items it could not prepare in `failed` instead of throwing; they come out
 * as `{ ok: false, error }` in their place and run() never sees them. An error thrown by prepare() or run()
 * as a whole ends the stream with that error.
 */
import { GraftError, isGraftError, throwIfAborted } from '../errors.js';
import { untilAborted } from './abort.js';

export interface MapBatchedOptions {
  batchSize: number;
  /** Batches prepared ahead of the one running (default 2). */
  prefetch?: number;
  /** Ends the stream with GraftError ABORTED; prepare() and run() get it to stop their own work early. */
  signal?: AbortSignal;
}

export interface BatchContext {
  /** Position of the batch in the stream, from 0. */
  readonly batch: number;
  /** Stream index of the batch's first item. */
  readonly offset: number;
  readonly signal: AbortSignal | undefined;
}

export interface PreparedBatch<P> {
  /** What run() receives, built from the items that prepared successfully. */
  value: P;
  /** Items that could not be prepared, by position in the batch, with the reason. run() never sees them. */
  failed?: ReadonlyMap<number, unknown>;
}

export type ItemResult<T, R> = { readonly index: number; readonly item: T } & ({ readonly ok: true; readonly value: R } | { readonly ok: false; readonly error: unknown });

export type PrepareFn<T, P> = (batch: readonly T[], ctx: BatchContext) => Promise<PreparedBatch<P>>;
/** Gets the prepared value and the items it was built from (the batch minus failed ones); one result per item. */
export type RunFn<T, P, R> = (prepared: P, items: readonly T[], ctx: BatchContext) => Promise<readonly R[]>;

const noop = () => undefined;

function intOption(name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new GraftError('INVALID_ARGUMENT', `${name} must be an integer ≥ ${min}, got ${v}.`);
  return v;
}

/**
 * Streams `items` through prepare → run in batches, yielding one ItemResult per item in input order.
 * Runs happen one at a time, in order; prepares overlap with them (up to `prefetch` batches ahead).
 * When run() is not called for a batch (all its items failed) its items still come out, as failures.
 */
export async function* mapBatched<T, P, R>(
  items: Iterable<T> | AsyncIterable<T>,
  opts: MapBatchedOptions,
  prepare: PrepareFn<T, P>,
  run: RunFn<T, P, R>,
): AsyncGenerator<ItemResult<T, R>, void, undefined> {
  const batchSize = intOption('batchSize', opts.batchSize, 1);
  const window = intOption('prefetch', opts.prefetch ?? 2, 0) + 1;
  const signal = opts.signal;
  throwIfAborted(signal);
  const source: Iterator<T> | AsyncIterator<T> = Symbol.asyncIterator in items ? items[Symbol.asyncIterator]() : items[Symbol.iterator]();
  const slots: Promise<ItemResult<T, R>[]>[] = [];
  let lastRun: Promise<unknown> = Promise.resolve();
  let exhausted = false;
  let batchNo = 0;
  let offset = 0;

  const execute = async (prepared: PreparedBatch<P>, batch: readonly T[], ctx: BatchContext): Promise<ItemResult<T, R>[]> => {
    const failed = prepared.failed ?? new Map<number, unknown>();
    const good = failed.size ? batch.filter((_, i) => !failed.has(i)) : batch;
    const values = good.length ? await run(prepared.value, good, ctx) : [];
    if (values.length !== good.length) {
      throw new GraftError('INVALID_ARGUMENT', `run() returned ${values.length} results for a batch of ${good.length} prepared items; it must return one per item, in order.`);
    }
    let j = 0;
    return batch.map((item, i) =>
      failed.has(i) ? { index: ctx.offset + i, item, ok: false as const, error: failed.get(i) } : { index: ctx.offset + i, item, ok: true as const, value: values[j++] },
    );
  };

  /** Reads the next batch from the source and starts preparing it; false when the source is empty. */
  const startBatch = async (): Promise<boolean> => {
    const batch: T[] = [];
    while (batch.length < batchSize) {
      const r = await untilAborted(Promise.resolve(source.next()), signal);
      if (r.done) {
        exhausted = true;
        break;
      }
      batch.push(r.value);
    }
    if (!batch.length) return false;
    const ctx: BatchContext = { batch: batchNo++, offset, signal };
    offset += batch.length;
    const prepared = Promise.resolve().then(() => prepare(batch, ctx));
    // runs go one after another, in stream order; a failed run stops the ones behind it
    const results = Promise.all([prepared, lastRun]).then(([p]) => execute(p, batch, ctx));
    results.catch(noop); // awaited when its turn comes; until then a rejection must not count as unhandled
    lastRun = results;
    slots.push(results);
    return true;
  };

  try {
    while (!exhausted && slots.length < window && (await startBatch()));
    while (slots.length) {
      const results = await untilAborted(slots[0], signal);
      for (const r of results) {
        yield r;
        throwIfAborted(signal);
      }
      slots.shift();
      while (!exhausted && slots.length < window && (await startBatch()));
    }
  } finally {
    // stopped early (break, abort, error): let the source clean up; work already started finishes unobserved
    if (!exhausted) void Promise.resolve(source.return?.()).catch(noop);
  }
}

/**
 * Builds a batch-level prepare() from a per-item one: items are prepared concurrently, failures become
 * per-item failures, and `collate` packs the successful ones (e.g. stacks images into one tensor).
 * `isItemError` decides which errors are an item's fault (default: all but ABORTED); others end the stream.
 */
export function prepareEach<T, X, P>(
  prepareItem: (item: T, ctx: BatchContext) => Promise<X> | X,
  collate: (prepared: X[], items: readonly T[]) => P | Promise<P>,
  opts: { isItemError?: (e: unknown) => boolean } = {},
): PrepareFn<T, P> {
  const isItemError = opts.isItemError ?? ((e: unknown) => !isGraftError(e, 'ABORTED'));
  return async (batch, ctx) => {
    const settled = await Promise.allSettled(batch.map(async (item) => prepareItem(item, ctx)));
    const failed = new Map<number, unknown>();
    const good: X[] = [];
    const goodItems: T[] = [];
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') {
        good.push(s.value);
        goodItems.push(batch[i]);
      } else if (isItemError(s.reason)) failed.set(i, s.reason);
      else throw s.reason;
    });
    // with nothing to pack, run() is not called; the value is never read
    return { value: good.length ? await collate(good, goodItems) : (undefined as P), failed };
  };
}
