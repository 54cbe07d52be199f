import { describe, expect, it } from 'vitest';
import { GraftError, isGraftError } from '../../src/errors.js';
import { mapBatched, prepareEach, type ItemResult } from '../../src/runtime/index.js';
import { seeded } from './models.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

async function collect<T, R>(it: AsyncIterable<ItemResult<T, R>>): Promise<ItemResult<T, R>[]> {
  const out: ItemResult<T, R>[] = [];
  for await (const r of it) out.push(r);
  return out;
}

/**
 * Instruments a pipeline: a batch is live from the start of its prepare until the consumer has taken its
 * last result. Also records whether a prepare ever started while a run was in progress (overlap).
 */
function tracker(batchSize: number, total: number) {
  const rnd = seeded(7);
  const state = { live: 0, maxLive: 0, running: 0, overlapped: false, prepared: 0, runItems: [] as number[][] };
  return {
    state,
    prepare: async (batch: readonly number[]) => {
      state.live++;
      state.prepared++;
      state.maxLive = Math.max(state.maxLive, state.live);
      if (state.running) state.overlapped = true;
      await sleep(Math.floor(rnd() * 4 + 4)); // uneven: 0..8 ms
      return { value: batch.map((v) => v * 10) };
    },
    run: async (prepared: number[], items: readonly number[]) => {
      state.running++;
      state.runItems.push([...items]);
      await sleep(Math.floor(rnd() * 4 + 4));
      state.running--;
      return prepared.map((v) => v + 1);
    },
    consumed(r: ItemResult<number, number>) {
      // the last item of a batch (or of the stream) leaves the pipeline
      if ((r.index + 1) % batchSize === 0 || r.index === total - 1) state.live--;
    },
  };
}

describe('mapBatched', () => {
  it('yields every item in input order with uneven prepare and run times', async () => {
    const rnd = seeded(3);
    const order: number[] = [];
    const results = await collect(
      mapBatched(
        range(103),
        { batchSize: 8, prefetch: 3 },
        async (batch, ctx) => {
          // later batches often finish preparing first
          await sleep(Math.floor(rnd() * 30));
          order.push(ctx.batch);
          return { value: batch };
        },
        async (p) => {
          await sleep(Math.floor(rnd() * 10));
          return p.map((v) => v * v);
        },
      ),
    );
    expect(order).not.toEqual([...order].sort((a, b) => a - b)); // preparation really finished out of order
    expect(results.map((r) => r.index)).toEqual(range(103));
    expect(results.map((r) => r.item)).toEqual(range(103));
    expect(results.map((r) => (r.ok ? r.value : NaN))).toEqual(range(103).map((v) => v * v));
  });

  for (const prefetch of [0, 1, 3]) {
    it(`never has more than prefetch + 1 = ${prefetch + 1} batches alive, and overlaps when it may`, async () => {
      const t = tracker(5, 200);
      for await (const r of mapBatched(range(200), { batchSize: 5, prefetch }, t.prepare, t.run)) {
        t.consumed(r);
        if (r.index % 17 === 0) await sleep(3); // a consumer that is sometimes slow
      }
      expect(t.state.maxLive).toBeLessThanOrEqual(prefetch + 1);
      expect(t.state.maxLive).toBe(prefetch + 1); // and it does use its window
      expect(t.state.overlapped).toBe(prefetch > 0);
      expect(t.state.runItems.flat()).toEqual(range(200));
    });
  }

  it('does not run ahead of a consumer that stops pulling', async () => {
    const t = tracker(4, 1000);
    const it = mapBatched(range(1000), { batchSize: 4, prefetch: 2 }, t.prepare, t.run)[Symbol.asyncIterator]();
    await it.next();
    await sleep(100);
    expect(t.state.prepared).toBeLessThanOrEqual(3);
    await it.return(undefined);
  });

  it('passes per-item preparation failures through in place; run() only sees the good items', async () => {
    const seen: number[] = [];
    let runs = 0;
    const prepare = prepareEach(
      async (item: number) => {
        await sleep(item % 3);
        if (item % 5 === 3 || (item >= 20 && item < 24)) throw new GraftError('IMAGE_UNREADABLE', `item ${item} is broken`, { subject: String(item) });
        return item * 2;
      },
      (xs: number[]) => Float32Array.from(xs),
    );
    const results = await collect(
      mapBatched(range(40), { batchSize: 4 }, prepare, async (packed: Float32Array, items) => {
        runs++;
        seen.push(...items);
        expect(packed.length).toBe(items.length);
        return Array.from(packed, (v) => v + 0.5);
      }),
    );
    const bad = (i: number) => i % 5 === 3 || (i >= 20 && i < 24);
    expect(results.map((r) => r.index)).toEqual(range(40));
    for (const r of results) {
      if (bad(r.item)) {
        expect(r.ok).toBe(false);
        if (!r.ok) expect(isGraftError(r.error, 'IMAGE_UNREADABLE') && r.error.subject).toBe(String(r.item));
      } else {
        expect(r).toMatchObject({ ok: true, value: r.item * 2 + 0.5 });
      }
    }
    expect(seen).toEqual(range(40).filter((i) => !bad(i)));
    expect(runs).toBe(9); // the batch 20..23 failed entirely and was never run
  });

  it('ends the stream when prepare() or run() fails as a whole, or run() miscounts', async () => {
    const boom = new GraftError('RUNTIME_FAILED', 'run exploded');
    await expect(collect(mapBatched(range(10), { batchSize: 3 }, async (b) => ({ value: b }), async (b, _i, ctx) => (ctx.batch === 2 ? Promise.reject(boom) : b)))).rejects.toBe(boom);
    await expect(
      collect(
        mapBatched(range(10), { batchSize: 3 }, async (b, ctx) => {
          if (ctx.batch === 1) throw new TypeError('bug in prepare');
          return { value: b };
        }, async (b) => b),
      ),
    ).rejects.toThrow('bug in prepare');
    const miscount = await collect(mapBatched(range(10), { batchSize: 3 }, async (b) => ({ value: b }), async (b) => b.slice(1))).catch((e: unknown) => e);
    expect(isGraftError(miscount, 'INVALID_ARGUMENT')).toBe(true);
    // results before the failing batch were delivered
    const got: number[] = [];
    await expect(
      (async () => {
        for await (const r of mapBatched(range(10), { batchSize: 3 }, async (b) => ({ value: b }), async (b, _i, ctx) => (ctx.batch === 2 ? Promise.reject(boom) : b))) got.push(r.index);
      })(),
    ).rejects.toBe(boom);
    expect(got).toEqual(range(6));
  });

  it('reads async sources lazily and closes them when the consumer stops early', async () => {
    let produced = 0;
    let closed = false;
    async function* source() {
      try {
        for (let i = 0; i < 1_000_000; i++) {
          produced++;
          if (i % 10 === 0) await sleep(0);
          yield i;
        }
      } finally {
        closed = true;
      }
    }
    const got: number[] = [];
    for await (const r of mapBatched(source(), { batchSize: 10, prefetch: 2 }, async (b) => ({ value: b }), async (b) => b)) {
      got.push(r.ok ? r.value : -1);
      if (got.length === 25) break;
    }
    expect(got).toEqual(range(25));
    // while batch 2 is being consumed, batches up to 2 + prefetch have been read: 50 items (+1 look-ahead)
    expect(produced).toBeLessThanOrEqual((2 + 2 + 1) * 10 + 1);
    await sleep(10);
    expect(closed).toBe(true);
  });

  it('aborts mid-stream with ABORTED, promptly, and stops preparing', async () => {
    const ac = new AbortController();
    let prepares = 0;
    const got: number[] = [];
    const started = Date.now();
    const err = await (async () => {
      for await (const r of mapBatched(
        range(10_000),
        { batchSize: 10, prefetch: 2, signal: ac.signal },
        async (b, ctx) => {
          prepares++;
          await sleep(2);
          expect(ctx.signal).toBe(ac.signal);
          return { value: b };
        },
        async (b, _items, ctx) => {
          // the batch after the abort is a long run: the stream must not wait for it
          if (ctx.batch === 5) await sleep(5000);
          return b;
        },
      )) {
        got.push(r.index);
        if (r.index === 45) setTimeout(() => ac.abort(new Error('user pressed ^C')), 1);
      }
    })().catch((e: unknown) => e);
    expect(isGraftError(err, 'ABORTED')).toBe(true);
    expect(((err as GraftError).cause as Error).message).toBe('user pressed ^C');
    expect(Date.now() - started).toBeLessThan(2500);
    expect(got).toEqual(range(50));
    const after = prepares;
    await sleep(50);
    expect(prepares).toBe(after);
    expect(prepares).toBeLessThanOrEqual(5 + 3);
  });

  it('rejects an already-aborted signal and bad options before doing anything', async () => {
    const ac = new AbortController();
    ac.abort();
    let called = false;
    const p = collect(
      mapBatched(range(3), { batchSize: 2, signal: ac.signal }, async (b) => {
        called = true;
        return { value: b };
      }, async (b) => b),
    );
    await expect(p).rejects.toMatchObject({ code: 'ABORTED' });
    expect(called).toBe(false);
    await expect(collect(mapBatched(range(3), { batchSize: 0 }, async (b) => ({ value: b }), async (b) => b))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
