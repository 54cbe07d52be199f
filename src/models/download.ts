/**
 * Streams one remote file into the cache: resumable (`<file>.part` + HTTP Range), checksummed, safe when
 * several processes fetch the same file (a lock file; the final rename is atomic), and silent on a cache
 * hit — a file that is already in the cache is returned without any network access.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, existsSync, mkdirSync, openSync, readFileSync, renameSync, statSync, utimesSync, writeSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GraftError, throwIfAborted } from '../errors.js';
import { atomicWriteFile, removeQuietly } from '../util/fs.js';

export interface DownloadProgress {
  phase: 'download';
  /** What is being fetched, as a person would name it (repo@revision/path or the URL). */
  file: string;
  /** Bytes on disk so far, including bytes kept from an earlier interrupted attempt. */
  received: number;
  /** Full size when the server says it. */
  total?: number;
}

export interface DownloadOptions {
  url: string;
  /** Final path in the cache; the file appears there complete or not at all. */
  dest: string;
  /** Name used in progress events and messages; defaults to the URL. */
  label?: string;
  /** Expected sha256 (hex) of the whole file, when the source publishes one. */
  sha256?: string;
  /**
   * Trust a sha256 published in `X-Linked-Etag` (else `ETag`) by responses from this host (URL.host, with
   * port): Hugging Face's resolve endpoint reports the LFS object id, which is the content's sha256.
   */
  etagChecksumHost?: string;
  /** Sent as `Authorization: Bearer …` only to requests whose URL.host equals `host` (never to a CDN). */
  auth?: { host: string; token: string };
  /** A 404 is not an error: the call returns undefined and remembers the absence for offline runs. */
  optional?: boolean;
  offline?: boolean;
  onProgress?: (e: DownloadProgress) => void;
  signal?: AbortSignal;
  /** Socket idle time before an attempt fails (connect, headers or body), default 30 s. */
  timeoutMs?: number;
  /** Further attempts after a network error or 5xx/429, each resuming the partial file; default 3. */
  retries?: number;
  /** First pause between attempts, doubling each time; default 500 ms. */
  retryDelayMs?: number;
  /** Extra sentence for HTTP errors, e.g. Hugging Face's gated-repo advice. */
  hint?: (status: number, headers: http.IncomingHttpHeaders) => string | undefined;
  /** What to tell a person who hits a cache miss offline, after the generic advice. */
  offlineHint?: string;
}

/** Marker next to a would-be cache file: the server answered 404, so offline runs know it does not exist. */
export const ABSENT_SUFFIX = '.absent';

/**
 * Returns `dest` once it holds the complete file (or undefined for an optional file the server does not
 * have). Throws OFFLINE_CACHE_MISS, DOWNLOAD_FAILED, CHECKSUM_MISMATCH or ABORTED.
 */
export async function downloadFile(o: DownloadOptions): Promise<string | undefined> {
  const label = o.label ?? stripFragment(o.url);
  if (existsSync(o.dest)) return o.dest;
  if (o.optional && existsSync(o.dest + ABSENT_SUFFIX)) return undefined;
  if (o.offline) {
    throw new GraftError(
      'OFFLINE_CACHE_MISS',
      `Offline mode is on (GRAFT_OFFLINE or --offline) and ${label} is not in the cache. ` +
        `Run the same command once with network access, or download ${stripFragment(o.url)} yourself and copy it to ${o.dest}.` +
        (o.offlineHint ? ` ${o.offlineHint}` : ''),
      { subject: o.dest },
    );
  }
  throwIfAborted(o.signal);
  mkdirSync(dirname(o.dest), { recursive: true });
  const lock = await acquireLock(o.dest, o.signal);
  if (lock === 'done') return o.dest;
  try {
    // another process may have finished while we waited
    if (existsSync(o.dest)) return o.dest;
    if (o.optional && existsSync(o.dest + ABSENT_SUFFIX)) return undefined;
    const retries = o.retries ?? 3;
    for (let attempt = 0; ; attempt++) {
      try {
        return await attemptDownload(o, label);
      } catch (e) {
        if (!RETRYABLE.has(e as Error) || attempt >= retries) throw e;
        await sleep((o.retryDelayMs ?? 500) * 2 ** attempt, o.signal);
      }
    }
  } finally {
    lock.release();
  }
}

// ---------------------------------------------------------------------------------------------------
// one attempt

interface PartMeta {
  url: string;
  /** X-Linked-Etag, ETag or Last-Modified of the response the bytes came from. */
  validator: string | null;
  total: number | null;
}

const RETRYABLE = new WeakSet<Error>();

function downloadFailed(message: string, opts: { url: string; retryable?: boolean; cause?: unknown }): GraftError {
  const e = new GraftError('DOWNLOAD_FAILED', message, { subject: opts.url, cause: opts.cause });
  if (opts.retryable) RETRYABLE.add(e);
  return e;
}

async function attemptDownload(o: DownloadOptions, label: string): Promise<string | undefined> {
  const part = `${o.dest}.part`;
  const metaPath = `${part}.json`;
  const url = stripFragment(o.url);
  const meta = readPartMeta(metaPath);
  let offset = 0;
  if (existsSync(part) && meta?.url === url) offset = statSync(part).size;
  else discardPart(part, metaPath);

  let r = await openResponse(url, offset, o);
  if (offset > 0) {
    // Resume only when the server returns exactly the bytes asked for, of the same file; else restart.
    let restart = false;
    if (r.res.statusCode === 206) {
      const cr = parseContentRange(r.res.headers['content-range']);
      const changed = meta?.validator && r.validator && meta.validator !== r.validator;
      const sizeChanged = meta?.total && cr?.total && meta.total !== cr.total;
      if (!cr || cr.start !== offset || changed || sizeChanged) restart = true;
    } else if (r.res.statusCode === 416 || r.res.statusCode === 200) {
      restart = true;
    }
    if (restart) {
      discardPart(part, metaPath);
      offset = 0;
      if (r.res.statusCode !== 200) {
        r.res.destroy();
        r = await openResponse(url, 0, o);
      }
    }
  }
  const { res } = r;
  const status = res.statusCode ?? 0;
  if (o.optional && status === 404) {
    res.resume();
    atomicWriteFile(o.dest + ABSENT_SUFFIX, `${new Date().toISOString()} ${url}\n`);
    return undefined;
  }
  if (!(status === 200 || (status === 206 && offset > 0))) {
    res.resume();
    throw httpError(status, r.finalUrl, label, res.headers, o);
  }

  const total = status === 206 ? (parseContentRange(res.headers['content-range'])?.total ?? null) : contentLength(res.headers, 0);
  const expectedSize = r.linkedSize ?? total;
  const expectedSha = (o.sha256 ?? r.sha256)?.toLowerCase();
  atomicWriteFile(metaPath, JSON.stringify({ url, validator: r.validator, total: expectedSize } satisfies PartMeta));

  const hash = expectedSha ? createHash('sha256') : undefined;
  if (hash && offset > 0) await hashFile(part, hash);
  let received = offset;
  let lastEmit = 0;
  const emit = (force: boolean) => {
    const now = Date.now();
    if (!o.onProgress || (!force && now - lastEmit < 100)) return;
    lastEmit = now;
    o.onProgress({ phase: 'download', file: label, received, total: expectedSize ?? undefined });
  };
  emit(true);
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      received += chunk.byteLength;
      hash?.update(chunk);
      emit(false);
      done(null, chunk);
    },
  });
  try {
    await pipeline(res, counter, createWriteStream(part, { flags: offset > 0 ? 'a' : 'w' }), { signal: o.signal });
  } catch (e) {
    if (o.signal?.aborted) throw new GraftError('ABORTED', 'The download was cancelled; run again to resume it.', { cause: o.signal.reason });
    const why = r.timedOut() ? `no data for ${timeoutOf(o) / 1000} s` : (e as Error).message;
    throw downloadFailed(`Downloading ${label} from ${r.finalUrl} broke off after ${received} bytes (${why}). Run again to resume.`, {
      url: r.finalUrl,
      retryable: true,
      cause: e,
    });
  }
  if (expectedSize !== null && received !== expectedSize) {
    throw downloadFailed(`Downloading ${label} from ${r.finalUrl} ended after ${received} of ${expectedSize} bytes. Run again to resume.`, {
      url: r.finalUrl,
      retryable: true,
    });
  }
  emit(true);
  if (hash && expectedSha) {
    const actual = hash.digest('hex');
    if (actual !== expectedSha) {
      discardPart(part, metaPath);
      throw new GraftError(
        'CHECKSUM_MISMATCH',
        `${label} downloaded from ${r.finalUrl} has sha256 ${actual}, but the source publishes ${expectedSha}. ` +
          'The bad file was deleted. Run again to retry; if it keeps happening, something between you and the server alters the file (proxy, mirror) or the checksum is wrong.',
        { subject: o.dest },
      );
    }
  }
  renameSync(part, o.dest);
  removeQuietly(metaPath);
  removeQuietly(o.dest + ABSENT_SUFFIX);
  return o.dest;
}

function discardPart(part: string, metaPath: string): void {
  removeQuietly(part);
  removeQuietly(metaPath);
}

function readPartMeta(path: string): PartMeta | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as PartMeta;
  } catch {
    return undefined;
  }
}

function hashFile(path: string, hash: Hash): Promise<void> {
  return new Promise((resolve, reject) => {
    createReadStream(path)
      .on('data', (c) => hash.update(c))
      .on('end', resolve)
      .on('error', reject);
  });
}

function parseContentRange(v: string | undefined): { start: number; end: number; total: number | null } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(v?.trim() ?? '');
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
}

function contentLength(h: http.IncomingHttpHeaders, offset: number): number | null {
  const n = Number(h['content-length']);
  return h['content-length'] !== undefined && Number.isFinite(n) ? offset + n : null;
}

function httpError(status: number, url: string, label: string, headers: http.IncomingHttpHeaders, o: DownloadOptions): GraftError {
  const serverSays = headerValue(headers['x-error-message']);
  let hint = o.hint?.(status, headers);
  if (!hint) {
    if (status === 404) hint = 'Check the address.';
    else if (status === 401 || status === 403) hint = 'The server wants credentials this source does not have.';
    else if (status === 429 || status >= 500) hint = 'The server is busy or failing; try again later.';
  }
  return downloadFailed(`Downloading ${label} failed: HTTP ${status} from ${url}.${serverSays ? ` Server says: ${serverSays}.` : ''}${hint ? ` ${hint}` : ''}`, {
    url,
    retryable: status === 429 || status >= 500,
  });
}

// ---------------------------------------------------------------------------------------------------
// HTTP with redirects, timeouts and per-host credentials

interface OpenedResponse {
  res: http.IncomingMessage;
  finalUrl: string;
  /** sha256 published by a trusted host (see DownloadOptions.etagChecksumHost). */
  sha256?: string;
  /** X-Linked-Size from a trusted host: the real size when the body comes from a CDN. */
  linkedSize: number | null;
  validator: string | null;
  timedOut(): boolean;
}

const MAX_REDIRECTS = 10;
const USER_AGENT = 'graft (+https://www.npmjs.com/package/graft)';

function timeoutOf(o: DownloadOptions): number {
  return o.timeoutMs ?? 30_000;
}

async function openResponse(url: string, offset: number, o: DownloadOptions): Promise<OpenedResponse> {
  let current = new URL(url);
  let sha256: string | undefined;
  let linkedSize: number | null = null;
  let linkedEtag: string | null = null;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    checkProtocol(current, url);
    const headers: http.OutgoingHttpHeaders = { 'user-agent': USER_AGENT, 'accept-encoding': 'identity' };
    if (offset > 0) headers.range = `bytes=${offset}-`;
    if (o.auth && o.auth.token && current.host === o.auth.host) headers.authorization = `Bearer ${o.auth.token}`;
    const { res, timedOut } = await get(current, headers, o);
    const h = res.headers;
    if (o.etagChecksumHost && current.host === o.etagChecksumHost) {
      const linked = unquoteEtag(headerValue(h['x-linked-etag']));
      const plain = unquoteEtag(headerValue(h.etag));
      const candidate = linked ?? plain;
      if (!sha256 && candidate && /^[0-9a-f]{64}$/i.test(candidate)) sha256 = candidate;
      if (linked) linkedEtag = linked;
      const size = Number(headerValue(h['x-linked-size']));
      if (h['x-linked-size'] !== undefined && Number.isFinite(size)) linkedSize = size;
    }
    const status = res.statusCode ?? 0;
    const location = headerValue(h.location);
    if ([301, 302, 303, 307, 308].includes(status) && location) {
      res.resume();
      current = new URL(location, current);
      continue;
    }
    const validator = linkedEtag ?? headerValue(h.etag) ?? headerValue(h['last-modified']) ?? null;
    return { res, finalUrl: current.href, sha256, linkedSize, validator, timedOut };
  }
  throw downloadFailed(`Downloading ${url} failed: more than ${MAX_REDIRECTS} redirects.`, { url });
}

function checkProtocol(u: URL, original: string): void {
  if (u.protocol === 'https:' || (u.protocol === 'http:' && isLoopback(u.hostname))) return;
  throw downloadFailed(`Refusing to download ${original} over ${u.href}: only https (or http to this machine) is allowed.`, { url: u.href });
}

export function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || hostname === '::1' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

function get(u: URL, headers: http.OutgoingHttpHeaders, o: DownloadOptions): Promise<{ res: http.IncomingMessage; timedOut(): boolean }> {
  return new Promise((resolve, reject) => {
    let timedOut = false;
    const lib = u.protocol === 'https:' ? https : http;
    const req = lib.get(u, { headers, signal: o.signal }, (res) => resolve({ res, timedOut: () => timedOut }));
    req.setTimeout(timeoutOf(o), () => {
      timedOut = true;
      req.destroy(new Error('timed out'));
    });
    req.on('error', (e) => {
      if (o.signal?.aborted) {
        reject(new GraftError('ABORTED', 'The download was cancelled; run again to resume it.', { cause: o.signal.reason }));
        return;
      }
      const why = timedOut ? `no answer within ${timeoutOf(o) / 1000} s` : (e as NodeJS.ErrnoException).code ?? e.message;
      reject(downloadFailed(`Downloading ${u.href} failed (${why}). Check the network connection and the address; run again to resume.`, { url: u.href, retryable: true, cause: e }));
    });
  });
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function unquoteEtag(v: string | undefined): string | undefined {
  if (!v) return undefined;
  return v.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

export function stripFragment(url: string): string {
  const i = url.indexOf('#');
  return i < 0 ? url : url.slice(0, i);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(t);
      reject(new GraftError('ABORTED', 'The download was cancelled; run again to resume it.', { cause: signal?.reason }));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

// ---------------------------------------------------------------------------------------------------
// lock: one downloader per cache file across processes

interface LockOwner {
  pid: number;
  host: string;
  token: string;
}

/** A holder refreshes its lock's mtime this often; a lock untouched for LOCK_STALE_MS is abandoned. */
const LOCK_HEARTBEAT_MS = 2_000;
const LOCK_STALE_MS = 30_000;
const LOCK_POLL_MS = 100;
let lockCounter = 0;

/**
 * Takes `<dest>.lock` (O_EXCL create), or waits while a live holder downloads — returning 'done' as soon
 * as the file appears. Locks of dead processes on this host, or not refreshed for 30 s, are broken.
 */
async function acquireLock(dest: string, signal?: AbortSignal): Promise<{ release(): void } | 'done'> {
  const path = `${dest}.lock`;
  const me: LockOwner = { pid: process.pid, host: hostname(), token: `${process.pid}-${Date.now()}-${lockCounter++}` };
  for (;;) {
    throwIfAborted(signal);
    try {
      const fd = openSync(path, 'wx');
      try {
        writeSync(fd, JSON.stringify(me));
      } finally {
        closeSync(fd);
      }
      const beat = setInterval(() => {
        try {
          const t = new Date();
          utimesSync(path, t, t);
        } catch {
          // the lock was broken by someone who judged it stale; the checksum or rename still guards the file
        }
      }, LOCK_HEARTBEAT_MS);
      beat.unref();
      return {
        release() {
          clearInterval(beat);
          if (readLockOwner(path)?.token === me.token) removeQuietly(path);
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (existsSync(dest)) return 'done';
    if (lockIsStale(path)) {
      removeQuietly(path);
      continue;
    }
    await sleep(LOCK_POLL_MS, signal);
  }
}

function readLockOwner(path: string): LockOwner | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as LockOwner;
  } catch {
    return undefined;
  }
}

function lockIsStale(path: string): boolean {
  let mtime: number;
  try {
    mtime = statSync(path).mtimeMs;
  } catch {
    return false; // gone already: the next create attempt will tell
  }
  if (Date.now() - mtime > LOCK_STALE_MS) return true;
  const owner = readLockOwner(path);
  // an unreadable lock is usually one being written this instant; only age can condemn it
  if (!owner || owner.host !== hostname()) return false;
  return !processIsAlive(owner.pid);
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
