import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GraftError } from '../../src/errors.js';
import { ABSENT_SUFFIX, downloadFile, type DownloadProgress } from '../../src/models/download.js';
import { startFakeHub, type FakeHub } from './fake-hub.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function caught(p: Promise<unknown>): Promise<GraftError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(GraftError);
    return e as GraftError;
  }
  throw new Error('expected the promise to reject');
}

describe('downloadFile', () => {
  let hub: FakeHub;
  let dir: string;
  const data = randomBytes(200_000);
  let url: string;

  beforeAll(async () => {
    hub = await startFakeHub();
    url = hub.addUrlFile('weights.bin', data);
  });
  afterAll(() => hub.close());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'graft-dl-'));
    hub.requests.length = 0;
    for (const k of Object.keys(hub.faults)) delete hub.faults[k as keyof typeof hub.faults];
  });

  it('streams to the cache with progress, then serves the cached file without the network', async () => {
    const dest = join(dir, 'a', 'weights.bin');
    const events: DownloadProgress[] = [];
    expect(await downloadFile({ url, dest, sha256: sha(data), onProgress: (e) => events.push(e) })).toBe(dest);
    expect(sha(readFileSync(dest))).toBe(sha(data));
    expect(readdirSync(dirname(dest))).toEqual(['weights.bin']); // no .part, .json or .lock left
    expect(events.at(-1)).toEqual({ phase: 'download', file: url, received: data.byteLength, total: data.byteLength });
    expect(events.every((e, i) => i === 0 || e.received >= events[i - 1].received)).toBe(true);
    expect(hub.count('/files/weights.bin')).toBe(1);
    // cache hit: no request, even with an unreachable URL
    expect(await downloadFile({ url: 'http://127.0.0.1:1/nothing', dest })).toBe(dest);
    expect(hub.requests).toHaveLength(1);
  });

  it('resumes a dropped download with a Range request in the next call', async () => {
    const dest = join(dir, 'weights.bin');
    hub.faults.drop = { match: 'weights.bin', times: 1 };
    const e = await caught(downloadFile({ url, dest, retries: 0 }));
    expect(e.code).toBe('DOWNLOAD_FAILED');
    expect(e.message).toMatch(/broke off after \d+ bytes.*Run again to resume/);
    expect(existsSync(dest)).toBe(false);
    const kept = statSync(`${dest}.part`).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(data.byteLength);

    await downloadFile({ url, dest, sha256: sha(data), retries: 0 });
    const ranges = hub.requests.map((r) => r.range);
    expect(ranges).toEqual([undefined, `bytes=${kept}-`]);
    expect(Buffer.compare(readFileSync(dest), data)).toBe(0);
    expect(existsSync(`${dest}.part`)).toBe(false);
  });

  it('retries on its own, resuming where the connection dropped', async () => {
    const dest = join(dir, 'weights.bin');
    hub.faults.drop = { match: 'weights.bin', times: 2 };
    await downloadFile({ url, dest, retries: 2, retryDelayMs: 1, sha256: sha(data) });
    const ranges = hub.requests.map((r) => r.range);
    expect(ranges).toHaveLength(3);
    expect(ranges[0]).toBeUndefined();
    const offsets = ranges.slice(1).map((r) => Number(/^bytes=(\d+)-$/.exec(r ?? '')?.[1]));
    // each resume asks for the bytes after what it already has: half, then half of the rest
    expect(offsets[0]).toBeGreaterThan(0);
    expect(offsets[1]).toBeGreaterThan(offsets[0]);
    expect(Buffer.compare(readFileSync(dest), data)).toBe(0);
  });

  it('starts over when the server ignores Range, and still produces the right file', async () => {
    const dest = join(dir, 'weights.bin');
    hub.faults.drop = { match: 'weights.bin', times: 1 };
    await caught(downloadFile({ url, dest, retries: 0 }));
    hub.faults.ignoreRange = true;
    await downloadFile({ url, dest, retries: 0, sha256: sha(data) });
    expect(hub.requests[1].range).toMatch(/^bytes=\d+-$/);
    expect(Buffer.compare(readFileSync(dest), data)).toBe(0);
  });

  it('deletes the file and fails with CHECKSUM_MISMATCH when the bytes do not match', async () => {
    const dest = join(dir, 'weights.bin');
    const e = await caught(downloadFile({ url, dest, sha256: 'ab'.repeat(32) }));
    expect(e.code).toBe('CHECKSUM_MISMATCH');
    expect(e.message).toContain(sha(data));
    expect(e.message).toContain('ab'.repeat(32));
    expect(readdirSync(dir)).toEqual([]);
  });

  it('reports HTTP errors with the status and URL; an optional 404 is remembered for offline runs', async () => {
    const missing = `${hub.cdn}/files/nope.bin`;
    const e = await caught(downloadFile({ url: missing, dest: join(dir, 'nope.bin') }));
    expect(e.code).toBe('DOWNLOAD_FAILED');
    expect(e.message).toContain('HTTP 404');
    expect(e.message).toContain(missing);
    expect(hub.count('nope.bin')).toBe(1); // 4xx is not retried

    expect(await downloadFile({ url: missing, dest: join(dir, 'opt.bin'), optional: true })).toBeUndefined();
    expect(existsSync(join(dir, `opt.bin${ABSENT_SUFFIX}`))).toBe(true);
    const before = hub.requests.length;
    expect(await downloadFile({ url: missing, dest: join(dir, 'opt.bin'), optional: true, offline: true })).toBeUndefined();
    expect(hub.requests.length).toBe(before);
  });

  it('offline, a cache miss names the file, the URL and the cache path, and sends nothing', async () => {
    const dest = join(dir, 'weights.bin');
    const e = await caught(downloadFile({ url, dest, offline: true, label: 'owner/repo@main/onnx/model.onnx' }));
    expect(e.code).toBe('OFFLINE_CACHE_MISS');
    expect(e.message).toContain('owner/repo@main/onnx/model.onnx');
    expect(e.message).toContain(url);
    expect(e.message).toContain(dest);
    expect(hub.requests).toHaveLength(0);
  });

  it('times out a server that never answers', async () => {
    hub.faults.stall = new Set(['weights.bin']);
    const t0 = Date.now();
    const e = await caught(downloadFile({ url, dest: join(dir, 'w.bin'), timeoutMs: 200, retries: 0 }));
    expect(e.code).toBe('DOWNLOAD_FAILED');
    expect(e.message).toContain('no answer within 0.2 s');
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('stops with ABORTED when the signal fires', async () => {
    hub.faults.stall = new Set(['weights.bin']);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const e = await caught(downloadFile({ url, dest: join(dir, 'w.bin'), signal: ac.signal, retries: 0 }));
    expect(e.code).toBe('ABORTED');
  });

  it('lets concurrent callers share one download (the lock), each getting the complete file', async () => {
    hub.faults.delayMs = 300;
    const dest = join(dir, 'weights.bin');
    const results = await Promise.all([downloadFile({ url, dest }), downloadFile({ url, dest }), downloadFile({ url, dest })]);
    expect(results).toEqual([dest, dest, dest]);
    expect(hub.count('weights.bin')).toBe(1);
    expect(Buffer.compare(readFileSync(dest), data)).toBe(0);
  });

  it('breaks the lock of a process that died', async () => {
    const dest = join(dir, 'weights.bin');
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dest}.lock`, JSON.stringify({ pid: dead, host: hostname(), token: 'x' }));
    await downloadFile({ url, dest });
    expect(Buffer.compare(readFileSync(dest), data)).toBe(0);
    expect(existsSync(`${dest}.lock`)).toBe(false);
  });

  it('two processes fetching the same file: one downloads, the other waits, both see the whole file', async () => {
    hub.faults.delayMs = 1500;
    const dest = join(dir, 'weights.bin');
    const module = fileURLToPath(new URL('../../src/models/download.ts', import.meta.url));
    const script = `const { downloadFile } = await import(${JSON.stringify(module)});
      const p = await downloadFile({ url: ${JSON.stringify(url)}, dest: ${JSON.stringify(dest)} });
      process.stdout.write(p);`;
    const run = () =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const c = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: fileURLToPath(new URL('../..', import.meta.url)) });
        let out = '';
        let err = '';
        c.stdout.on('data', (d) => (out += d));
        c.stderr.on('data', (d) => (err += d));
        c.on('close', (code) => resolve({ code, out, err }));
      });
    const [a, b] = await Promise.all([run(), run()]);
    expect(a.err).toBe('');
    expect([a.code, b.code]).toEqual([0, 0]);
    expect([a.out, b.out]).toEqual([dest, dest]);
    expect(hub.count('weights.bin')).toBe(1);
    expect(Buffer.compare(readFileSync(dest), data)).toBe(0);
    expect(readdirSync(dir)).toEqual(['weights.bin']);
  });
});
