import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, readSync, renameSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraftError } from '../../src/errors.js';
import { decodeImage } from '../../src/data/image.js';
import { canonicalJson, crc32, crc32js, extractFeatures, FeatureCache, featureStoreKey, type ExtractFn, type FeatureCacheOptions, type FeatureProgress } from '../../src/data/feature-cache.js';
import { makeEmojiDataset } from '../helpers/emoji.js';
import { testHash, testRow } from './scripts/feature-rows.js';

const root = mkdtempSync(join(tmpdir(), 'graft-features-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (tag = 't') => {
  const d = join(root, `${tag}${n++}`);
  mkdirSync(d, { recursive: true });
  return d;
};

const DIM = 8;
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const settings = (dir: string, over: Partial<FeatureCacheOptions> = {}): FeatureCacheOptions => ({ modelId: 'model-sha', layer: 'pool', preprocess: { size: 224, mean: [0.5, 0.5, 0.5] }, dim: DIM, dir, ...over });

/** A stand-in backbone: the row is a function of the file's bytes; counts what it is asked to do. */
function fakeExtractor() {
  const stats = { calls: 0, paths: [] as string[] };
  const extract: ExtractFn = async (paths) => {
    stats.calls++;
    stats.paths.push(...paths);
    return paths.map((p) => {
      const bytes = readFileSync(p);
      if (!bytes.length) return new GraftError('FILE_EMPTY', `${p} is empty`);
      if (!bytes.subarray(0, 8).equals(PNG)) return new GraftError('IMAGE_UNREADABLE', `${p} is not a PNG`);
      return expectedRow(bytes);
    });
  };
  return { extract, stats };
}

function expectedRow(bytes: Buffer): Float32Array {
  const d = createHash('sha256').update(bytes).digest();
  return Float32Array.from({ length: DIM }, (_, k) => d[k] / 255 + k);
}

let images: string[];
beforeAll(async () => {
  const made = await makeEmojiDataset(join(root, 'emoji'), { categories: ['Animals & Nature', 'Food & Drink'], perClass: 12, seed: 9 });
  images = made.files.map((f) => f.path);
});

/** A private copy of the first k emoji images. */
function copyImages(k: number): string[] {
  const dir = fresh('img');
  return images.slice(0, k).map((p, i) => {
    const to = join(dir, `${i}.png`);
    copyFileSync(p, to);
    return to;
  });
}

const rowsOf = (f: Float32Array, dim = DIM) => Array.from({ length: f.length / dim }, (_, k) => Array.from(f.subarray(k * dim, (k + 1) * dim)));
const expectedRows = (paths: string[]) => paths.map((p) => Array.from(expectedRow(readFileSync(p))));

describe('extractFeatures with a FeatureCache', () => {
  it('extracts every image once; a second run (new process-like open) calls extract zero times', async () => {
    const dir = fresh();
    const paths = copyImages(20);
    const items = paths.map((path) => ({ path }));
    const a = fakeExtractor();
    let cache = await FeatureCache.open(settings(dir));
    const first = await extractFeatures(items, { cache, extract: a.extract, batchSize: 6 });
    await cache.close();
    expect(a.stats.calls).toBe(4);
    expect(a.stats.paths).toEqual(paths);
    expect(first.extracted).toBe(20);
    expect(first.hits).toBe(0);
    expect(first.kept).toEqual(paths.map((_, i) => i));
    expect(rowsOf(first.features)).toEqual(expectedRows(paths));

    const b = fakeExtractor();
    cache = await FeatureCache.open(settings(dir));
    expect(cache.size).toBe(20);
    expect(cache.repairs).toEqual([]);
    const progress: FeatureProgress[] = [];
    const second = await extractFeatures(items, { cache, extract: b.extract, batchSize: 6, onProgress: (p) => progress.push(p) });
    await cache.close();
    expect(b.stats.calls).toBe(0);
    expect(second.hits).toBe(20);
    expect(second.features).toEqual(first.features);
    expect(progress.map((p) => p.done)).toEqual(paths.map((_, i) => i + 1));
    expect(progress.at(-1)).toEqual({ done: 20, total: 20, hits: 20, extracted: 0, failed: 0 });
  });

  it('misses everything when the layer or preprocessing changes; the key ignores JSON key order', async () => {
    const dir = fresh();
    const items = copyImages(6).map((path) => ({ path }));
    const run = async (over: Partial<FeatureCacheOptions>) => {
      const f = fakeExtractor();
      const cache = await FeatureCache.open(settings(dir, over));
      await extractFeatures(items, { cache, extract: f.extract });
      await cache.close();
      return f.stats.paths.length;
    };
    expect(await run({})).toBe(6);
    expect(await run({})).toBe(0);
    expect(await run({ layer: 'block5' })).toBe(6);
    expect(await run({ preprocess: { size: 224, mean: [0.5, 0.5, 0.4] } })).toBe(6);
    expect(await run({ modelId: 'other-model' })).toBe(6);
    expect(await run({ preprocess: { mean: [0.5, 0.5, 0.5], size: 224 } })).toBe(0);
    expect(featureStoreKey(settings(dir))).toBe(featureStoreKey(settings(dir, { preprocess: { mean: [0.5, 0.5, 0.5], size: 224, unused: undefined } })));
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] })).toBe('{"a":[{"c":3,"d":2}],"b":1}');
  });

  it('keys rows by content: a renamed file hits, an edited file misses, a copy in the same run is extracted once', async () => {
    const dir = fresh();
    const paths = copyImages(8);
    let f = fakeExtractor();
    const cache = await FeatureCache.open(settings(dir));
    await extractFeatures(paths.map((path) => ({ path })), { cache, extract: f.extract });
    renameSync(paths[0], `${paths[0]}.renamed.png`);
    paths[0] = `${paths[0]}.renamed.png`;
    copyFileSync(images[20], paths[1]); // edited: new content under the old name
    const copy = join(dir, 'copy-of-1.png');
    copyFileSync(images[20], copy);
    f = fakeExtractor();
    const r = await extractFeatures([...paths, copy].map((path) => ({ path })), { cache, extract: f.extract });
    await cache.close();
    expect(f.stats.paths).toEqual([paths[1]]);
    expect(r.extracted).toBe(1);
    expect(r.hits).toBe(8);
    expect(rowsOf(r.features)).toEqual(expectedRows([...paths, copy]));
  });

  it('uses hashes given with the items instead of reading the files again', async () => {
    const dir = fresh();
    const paths = copyImages(3);
    const cache = await FeatureCache.open(settings(dir));
    const hash = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
    await extractFeatures(paths.map((path) => ({ path })), { cache, extract: fakeExtractor().extract });
    expect(paths.every((p) => cache.has(hash(p)))).toBe(true);
    // a stale hash (the file changed since it was listed) is trusted: the caller vouched for it
    const r = await extractFeatures([{ path: join(dir, 'does-not-exist.png'), hash: hash(paths[2]) }], { cache, extract: fakeExtractor().extract });
    await cache.close();
    expect(r.hits).toBe(1);
    expect(rowsOf(r.features)).toEqual(expectedRows([paths[2]]));
  });

  it('skips bad images (zero bytes, not an image, truncated, missing) with their error codes; the rest are extracted', async () => {
    const dir = fresh();
    const good = copyImages(5);
    writeFileSync(join(dir, 'empty.png'), '');
    writeFileSync(join(dir, 'text.png'), 'this is not an image\n');
    const png = readFileSync(good[0]);
    writeFileSync(join(dir, 'truncated.png'), png.subarray(0, png.length >> 1));
    const list = [good[0], join(dir, 'empty.png'), good[1], join(dir, 'text.png'), good[2], join(dir, 'truncated.png'), join(dir, 'missing.png'), good[3], good[4]];
    // a real decoder: mean R, G, B and the size of the decoded image
    let calls = 0;
    const extract: ExtractFn = (paths) => {
      calls++;
      return Promise.all(
        paths.map(async (p) => {
          try {
            const img = await decodeImage(p);
            const row = new Float32Array(4);
            for (let i = 0; i < img.width * img.height; i++) for (let c = 0; c < 3; c++) row[c] += img.data[i * 3 + c];
            for (let c = 0; c < 3; c++) row[c] /= img.width * img.height;
            row[3] = img.width;
            return row;
          } catch (e) {
            return e as Error;
          }
        }),
      );
    };
    const cache = await FeatureCache.open(settings(dir, { dim: 4 }));
    const r = await extractFeatures(list.map((path) => ({ path })), { cache, extract, batchSize: 4 });
    expect(r.kept).toEqual([0, 2, 4, 7, 8]);
    expect(r.failures.map((f) => [f.index, f.code])).toEqual([
      [1, 'FILE_EMPTY'],
      [3, 'IMAGE_UNREADABLE'],
      [5, 'IMAGE_UNREADABLE'],
      [6, 'FILE_NOT_FOUND'],
    ]);
    expect(r.failures[2].message).toMatch(/truncated\.png/);
    expect(r.features).toHaveLength(5 * 4);
    expect(rowsOf(r.features, 4).map((row) => row[3])).toEqual([64, 64, 64, 64, 64]);
    // failures are not cached: a fixed file is picked up next time
    writeFileSync(join(dir, 'truncated.png'), png);
    calls = 0;
    const again = await extractFeatures(list.map((path) => ({ path })), { cache, extract });
    await cache.close();
    expect(again.kept).toEqual([0, 2, 4, 5, 7, 8]);
    expect(again.hits).toBe(6); // truncated.png now equals good[0]
    expect(calls).toBe(1); // the three still-bad files were tried again
  });

  it('supports a two-stage extractor whose prepare stage reports per-item failures', async () => {
    const paths = copyImages(7);
    const runs: number[] = [];
    const r = await extractFeatures(paths.map((path) => ({ path })), {
      dim: DIM,
      batchSize: 3,
      extract: {
        prepare: async (batch) => ({
          value: batch.filter((p) => p !== paths[4]).map((p) => readFileSync(p)),
          failed: new Map(batch.flatMap((p, i) => (p === paths[4] ? [[i, new GraftError('IMAGE_TOO_LARGE', 'too big')] as const] : []))),
        }),
        run: async (buffers: Buffer[], batch) => {
          runs.push(batch.length);
          return buffers.map((b) => expectedRow(b));
        },
      },
    });
    expect(runs).toEqual([3, 2, 1]);
    expect(r.failures.map((f) => [f.index, f.code, f.message])).toEqual([[4, 'IMAGE_TOO_LARGE', 'too big']]);
    expect(rowsOf(r.features)).toEqual(expectedRows(paths.filter((_, i) => i !== 4)));
  });

  it('stops on abort with ABORTED, keeping what was extracted for the next run', async () => {
    const dir = fresh();
    const paths = copyImages(12);
    const ac = new AbortController();
    const f = fakeExtractor();
    let cache = await FeatureCache.open(settings(dir));
    const run = extractFeatures(
      paths.map((path) => ({ path })),
      {
        cache,
        batchSize: 2,
        prefetch: 0,
        signal: ac.signal,
        extract: f.extract,
        onProgress: (p) => {
          if (p.extracted === 6) ac.abort();
        },
      },
    );
    await expect(run).rejects.toMatchObject({ code: 'ABORTED' });
    await cache.close();
    const g = fakeExtractor();
    cache = await FeatureCache.open(settings(dir));
    const r = await extractFeatures(paths.map((path) => ({ path })), { cache, extract: g.extract });
    await cache.close();
    expect(g.stats.paths.length).toBeLessThanOrEqual(6);
    expect(r.hits + r.extracted).toBe(12);
    expect(rowsOf(r.features)).toEqual(expectedRows(paths));
  });

  it('ends the run when extract throws for a whole batch, after saving the rows it had', async () => {
    const dir = fresh();
    const paths = copyImages(6);
    const f = fakeExtractor();
    let calls = 0;
    const cache = await FeatureCache.open(settings(dir));
    const run = extractFeatures(paths.map((path) => ({ path })), {
      cache,
      batchSize: 2,
      prefetch: 0,
      extract: async (ps, ctx) => {
        if (calls++ === 2) throw new GraftError('RUNTIME_CRASHED', 'worker died');
        return f.extract(ps, ctx);
      },
    });
    await expect(run).rejects.toMatchObject({ code: 'RUNTIME_CRASHED' });
    expect(cache.size).toBe(4);
    await cache.close();
  });

  it('without a cache needs dim and does not hash', async () => {
    const paths = copyImages(3);
    const f = fakeExtractor();
    const r = await extractFeatures(paths.map((path) => ({ path })), { dim: DIM, extract: f.extract });
    expect(rowsOf(r.features)).toEqual(expectedRows(paths));
    await expect(extractFeatures([], { extract: f.extract })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const wrong: ExtractFn = async (ps) => ps.map(() => new Float32Array(3));
    await expect(extractFeatures(paths.map((path) => ({ path })), { dim: DIM, extract: wrong })).rejects.toThrow(/row of 3 values/);
  });
});

describe('FeatureCache storage', () => {
  const files = (c: FeatureCache) => ({ rows: join(c.dir, 'rows.bin'), index: join(c.dir, 'index.bin'), meta: join(c.dir, 'meta.json'), lock: join(c.dir, 'writer.lock') });

  async function filled(dir: string, count: number, dim = 16, appendBytes?: number): Promise<FeatureCache> {
    const cache = await FeatureCache.open({ ...settings(dir), dim, appendBytes });
    for (let i = 0; i < count; i++) cache.put(testHash(i), testRow(i, dim));
    return cache;
  }

  it('round-trips 1 000 rows of 1 280 floats through disk, bit for bit', async () => {
    const dir = fresh();
    const dim = 1280;
    const cache = await filled(dir, 1000, dim);
    expect(cache.get(testHash(999))).toEqual(testRow(999, dim)); // still pending in memory
    await cache.close();
    const layout = files(cache);
    expect(statSync(layout.rows).size).toBe(64 + 1000 * (32 + 4 * dim + 4));
    expect(statSync(layout.index).size).toBe(48 + 1000 * 32);
    expect(existsSync(layout.lock)).toBe(false);
    const again = await FeatureCache.open({ ...settings(dir), dim });
    expect(again.size).toBe(1000);
    const out = new Float32Array(2 * dim);
    expect(again.read(testHash(123), out, dim)).toBe(true);
    expect(out.subarray(dim)).toEqual(testRow(123, dim));
    for (const i of [0, 500, 999]) expect(again.get(testHash(i))).toEqual(testRow(i, dim));
    expect(again.get(testHash(1000))).toBeUndefined();
    await again.close();
  });

  it('checksums with CRC-32 (the native one when Node has it, else the JS one: same values)', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32js(Buffer.from('123456789'))).toBe(0xcbf43926);
    const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) & 0xff));
    expect(crc32(data, 17, 4321)).toBe(crc32js(data, 17, 4321));
    expect(crc32js(data, 17, 4321)).toBe(crc32js(data.subarray(17, 4321)));
  });

  it('rejects rows of the wrong width and keys that are not content hashes', async () => {
    const cache = await FeatureCache.open(settings(fresh()));
    expect(() => cache.put(testHash(1), new Float32Array(DIM + 1))).toThrow(/9 values but this cache holds rows of 8/);
    expect(() => cache.put('photo.jpg', new Float32Array(DIM))).toThrow(/SHA-256/);
    await cache.close();
    await expect(FeatureCache.open(settings(fresh(), { dim: 0 }))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('cuts a torn record off a truncated rows.bin and keeps the rest', async () => {
    const dir = fresh();
    const first = await filled(dir, 10);
    await first.close();
    const { rows } = files(first);
    truncateSync(rows, statSync(rows).size - 7);
    const c = await FeatureCache.open({ ...settings(dir), dim: 16 });
    expect(c.repairs.join('\n')).toMatch(/shorter than its index/);
    expect(c.repairs.join('\n')).toMatch(/cut \d+ byte/);
    expect(c.size).toBe(9);
    for (let i = 0; i < 9; i++) expect(c.get(testHash(i))).toEqual(testRow(i, 16));
    expect(c.get(testHash(9))).toBeUndefined();
    c.put(testHash(9), testRow(9, 16));
    await c.close();
    const d = await FeatureCache.open({ ...settings(dir), dim: 16 });
    expect(d.repairs).toEqual([]);
    expect(d.get(testHash(9))).toEqual(testRow(9, 16));
    await d.close();
  });

  it('detects a corrupted row on read (a miss, never wrong numbers) and re-extracts just that image', async () => {
    const dir = fresh();
    const paths = copyImages(6);
    let cache = await FeatureCache.open(settings(dir));
    await extractFeatures(paths.map((path) => ({ path })), { cache, extract: fakeExtractor().extract });
    await cache.close();
    // flip one bit in the floats of record 3
    const R = 32 + 4 * DIM + 4;
    const fd = openSync(files(cache).rows, 'r+');
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, 64 + 3 * R + 40);
    b[0] ^= 0x10;
    writeSync(fd, b, 0, 1, 64 + 3 * R + 40);
    closeSync(fd);

    cache = await FeatureCache.open(settings(dir));
    const f = fakeExtractor();
    const r = await extractFeatures(paths.map((path) => ({ path })), { cache, extract: f.extract });
    expect(cache.corruptRows).toBe(1);
    expect(f.stats.paths).toEqual([paths[3]]);
    expect(rowsOf(r.features)).toEqual(expectedRows(paths));
    await cache.close();
    cache = await FeatureCache.open(settings(dir));
    const g = fakeExtractor();
    await extractFeatures(paths.map((path) => ({ path })), { cache, extract: g.extract });
    expect(g.stats.calls).toBe(0);
    await cache.close();
  });

  it('rebuilds a corrupt or missing index from rows.bin, and drops garbage appended to rows.bin', async () => {
    const dir = fresh();
    const first = await filled(dir, 12);
    await first.close();
    const { rows, index } = files(first);
    const idx = readFileSync(index);
    idx[60] ^= 1;
    writeFileSync(index, idx);
    appendFileSync(rows, Buffer.from('garbage that is not a whole record'));
    let c = await FeatureCache.open({ ...settings(dir), dim: 16 });
    expect(c.repairs.join('\n')).toMatch(/index\.bin is invalid/);
    expect(c.repairs.join('\n')).toMatch(/cut 34 byte/);
    expect(c.size).toBe(12);
    expect(c.get(testHash(11))).toEqual(testRow(11, 16));
    await c.close();
    rmSync(index);
    c = await FeatureCache.open({ ...settings(dir), dim: 16 });
    expect(c.repairs.join('\n')).toMatch(/index\.bin is missing/);
    expect(c.size).toBe(12);
    await c.close();
  });

  it('discards the store when the header of rows.bin or meta.json is damaged', async () => {
    const dir = fresh();
    let c = await filled(dir, 5);
    await c.close();
    const { rows, meta } = files(c);
    const head = readFileSync(rows);
    head[12] ^= 1; // the stored row width
    writeFileSync(rows, head);
    c = await FeatureCache.open({ ...settings(dir), dim: 16 });
    expect(c.repairs).toEqual(['rows.bin has an invalid header; the store was discarded']);
    expect(c.size).toBe(0);
    c.put(testHash(1), testRow(1, 16));
    await c.close();
    writeFileSync(meta, '{"modelId": "trunc');
    c = await FeatureCache.open({ ...settings(dir), dim: 16 });
    expect(c.repairs).toEqual(['meta.json was missing or unreadable; the store was discarded']);
    expect(c.size).toBe(0);
    await c.close();
    // the same identity with another width (a caller bug, or a reused model id): start over
    c = await filled(dir, 2);
    await c.close();
    c = await FeatureCache.open({ ...settings(dir), dim: 32 });
    expect(c.repairs).toEqual(['meta.json describes different settings; the store was discarded']);
    await c.close();
  });

  it('lets one process write; a second opener reads what was flushed and writes nothing', async () => {
    const dir = fresh();
    const writer = await filled(dir, 4);
    await writer.flush();
    writer.put(testHash(4), testRow(4, 16)); // pending, not yet visible to others
    const reader = await FeatureCache.open({ ...settings(dir), dim: 16 });
    expect(writer.writable).toBe(true);
    expect(reader.writable).toBe(false);
    expect(reader.size).toBe(4);
    expect(reader.get(testHash(2))).toEqual(testRow(2, 16));
    reader.put(testHash(50), testRow(50, 16));
    expect(reader.has(testHash(50))).toBe(false);
    await reader.close();
    await writer.close();
    expect(existsSync(files(writer).lock)).toBe(false);
    const next = await FeatureCache.open({ ...settings(dir), dim: 16 });
    expect(next.writable).toBe(true);
    expect(next.size).toBe(5);
    await next.close();
  });

  it('recovers after a writer is killed: stale lock taken over, rows appended after the last index kept', async () => {
    const dir = fresh();
    const script = fileURLToPath(new URL('./scripts/feature-cache-crash.ts', import.meta.url));
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    const out = await new Promise<{ signal: string | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', tsx, script, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (_code, signal) => resolve({ signal, stdout, stderr }));
    });
    expect(out.stderr).toBe('');
    expect(out.stdout).toBe('writable true\n');
    expect(out.signal).toBe('SIGKILL');
    const opts = { modelId: 'crash-model', layer: 'pool', preprocess: { size: 8 }, dim: 16, dir };
    const c = await FeatureCache.open(opts);
    expect(c.writable).toBe(true); // the dead writer's lock was taken over
    expect(c.repairs).toEqual(['recovered 9 row(s) written after the last index update']);
    expect(c.size).toBe(14); // the 15th row was still in the killed process's memory
    for (let i = 0; i < 14; i++) expect(c.get(testHash(i))).toEqual(testRow(i, 16));
    await c.close();
  });
});
