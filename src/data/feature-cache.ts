/**
 * Features of a frozen backbone, kept on disk and reused across epochs, runs and head hyper-parameters.
 *
 * A store is identified by (model id, feature layer, preprocessing config) and lives in
 * `<cacheDir()>/features/<key>/`; inside, rows are found by the image's content hash, so a renamed file
 * still hits and an edited one misses.
 *
 *   meta.json    the identity and row width, checked on open
 *   rows.bin     64-byte header, then fixed-size records appended in order:
 *                  content hash (32 bytes) | dim × float32 (little-endian) | CRC-32 of both (4 bytes)
 *   index.bin    the hashes of records 0..count−1, so opening does not read the floats; rewritten
 *                atomically (temp + rename) on flush
 *   writer.lock  pid@host of the one process allowed to append
 *
 * Crash safety: records are only ever appended, and each carries its own checksum and key. On open, records
 * past the index are scanned and kept while their checksums hold; a torn record at the end is cut off. An
 * invalid index is rebuilt from rows.bin; an invalid header or meta.json discards the store. Every read
 * checks the record's checksum and key, so a corrupt row is a miss (and is re-extracted), never wrong
 * features. Other processes may read at any time; a second would-be writer opens read-only.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fdatasyncSync, fstatSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import zlib from 'node:zlib';
import { join } from 'node:path';
import { GraftError, isGraftError, type GraftErrorCode } from '../errors.js';
import { cacheDir } from '../models/cache.js';
import { mapBatched, type BatchContext, type PrepareFn, type RunFn } from '../runtime/batched.js';
import { atomicWriteFile, removeQuietly, tempPathFor } from '../util/fs.js';
import { HASH_BYTES, hashFile, isContentHash, mapOrdered } from './content-hash.js';

const FORMAT = 1;
const DATA_MAGIC = 'GRAFTFR1';
const INDEX_MAGIC = 'GRAFTFI1';
const DATA_HEADER = 64;
const INDEX_HEADER = 48;
const GEN_BYTES = 16;

// ------------------------------------------------------------------------------------------------ CRC-32

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** CRC-32 (IEEE, as zlib and PNG) of bytes [start, end), in JS. */
export function crc32js(buf: Uint8Array, start = 0, end = buf.length): number {
  let c = -1;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

// node:zlib has a native one from Node 20.15 (≈10× faster: it bounds how fast cache hits are read)
const nativeCrc = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;

/** CRC-32 of bytes [start, end): native when this Node has it, else crc32js (same values). */
export function crc32(buf: Uint8Array, start = 0, end = buf.length): number {
  if (!nativeCrc) return crc32js(buf, start, end);
  return nativeCrc(start === 0 && end === buf.length ? buf : buf.subarray(start, end)) >>> 0;
}

// --------------------------------------------------------------------------------------------- identity

/** JSON with object keys sorted at every level, so equal configs give equal keys whatever their key order. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') {
    const s = JSON.stringify(v);
    if (s === undefined) throw new GraftError('INVALID_ARGUMENT', `A feature cache key must be plain JSON data; got ${typeof v}.`);
    return s;
  }
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

export interface FeatureCacheOptions {
  /** Changes whenever the weights change, e.g. the SHA-256 of the ONNX file. */
  modelId: string;
  /** The feature layer (value name) the rows come from. */
  layer: string;
  /** The preprocessing config (any JSON data; key order does not matter). */
  preprocess: unknown;
  /** Floats per row. */
  dim: number;
  /** Cache root to use instead of cacheDir(); the store is `<dir>/features/<key>/`. */
  dir?: string;
  /** Never write (default: write unless another live process holds the writer lock). */
  readOnly?: boolean;
  /** Rows are appended to rows.bin once this many bytes are pending (default 8 MB). */
  appendBytes?: number;
}

/** The store directory name for an identity: 128 bits of SHA-256 over its canonical JSON. */
export function featureStoreKey(opts: Pick<FeatureCacheOptions, 'modelId' | 'layer' | 'preprocess'>): string {
  const id = canonicalJson({ format: FORMAT, modelId: opts.modelId, layer: opts.layer, preprocess: opts.preprocess });
  return createHash('sha256').update(id).digest('hex').slice(0, 32);
}

// ----------------------------------------------------------------------------------------------- locking

interface LockOwner {
  pid: number;
  host: string;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readLock(path: string): LockOwner | undefined {
  try {
    const o = JSON.parse(readFileSync(path, 'utf8')) as LockOwner;
    return Number.isInteger(o.pid) && typeof o.host === 'string' ? o : undefined;
  } catch {
    return undefined;
  }
}

// one exit hook for all open caches: pending rows are written and locks released even without close()
const openCaches = new Set<FeatureCache>();
let exitHooked = false;
function onExit(): void {
  for (const c of openCaches) {
    try {
      c.closeSync();
    } catch {
      // exiting anyway: what was appended is recovered by the next open
    }
  }
}

// -------------------------------------------------------------------------------------------- the cache

export class FeatureCache {
  /** The store's directory. */
  readonly dir: string;
  readonly dim: number;
  /** False when another process holds the writer lock, or when opened read-only: put() then does nothing. */
  readonly writable: boolean;
  /** What open() found wrong and repaired; empty for a healthy store. */
  readonly repairs: string[] = [];

  private readonly recordBytes: number;
  private readonly rows = new Map<string, number>();
  private readonly lockPath: string;
  private fd: number | undefined;
  private generation = Buffer.alloc(GEN_BYTES);
  /** Hash bytes of every record, in record order (writer only; what index.bin holds). */
  private keys = Buffer.alloc(0);
  private records = 0;
  private persisted = 0;
  private indexed = 0;
  private pending: Buffer;
  private readonly scratch: Buffer;
  private closed = false;
  private corrupt = 0;

  private constructor(dir: string, dim: number, writable: boolean, appendBytes: number) {
    this.dir = dir;
    this.dim = dim;
    this.writable = writable;
    this.recordBytes = HASH_BYTES + 4 * dim + 4;
    this.lockPath = join(dir, 'writer.lock');
    this.scratch = Buffer.alloc(this.recordBytes);
    this.pending = Buffer.alloc(writable ? Math.max(1, Math.floor(appendBytes / this.recordBytes)) * this.recordBytes : 0);
  }

  /** Opens (creating, validating and repairing as needed) the store for this model, layer and preprocessing. */
  static async open(opts: FeatureCacheOptions): Promise<FeatureCache> {
    if (typeof opts.modelId !== 'string' || !opts.modelId) throw new GraftError('INVALID_ARGUMENT', 'The feature cache needs a modelId (e.g. the SHA-256 of the ONNX file).');
    if (typeof opts.layer !== 'string' || !opts.layer) throw new GraftError('INVALID_ARGUMENT', 'The feature cache needs the feature layer name.');
    if (!Number.isInteger(opts.dim) || opts.dim < 1) throw new GraftError('INVALID_ARGUMENT', `The feature width must be a positive integer, not ${opts.dim}.`);
    const appendBytes = opts.appendBytes ?? 8 << 20;
    if (!(appendBytes > 0)) throw new GraftError('INVALID_ARGUMENT', `appendBytes must be positive, not ${appendBytes}.`);
    const identity = { format: FORMAT, modelId: opts.modelId, layer: opts.layer, preprocess: JSON.parse(canonicalJson(opts.preprocess)) as unknown, dim: opts.dim };
    const dir = join(opts.dir ?? cacheDir(), 'features', featureStoreKey(opts));
    let writable = !opts.readOnly;
    if (writable) {
      try {
        mkdirSync(dir, { recursive: true });
      } catch {
        writable = false; // a read-only or foreign cache dir: run without persisting
      }
    }
    writable &&= acquireLock(join(dir, 'writer.lock'));
    // temp files of an index write that was killed before its rename
    if (writable) for (const f of readdirSync(dir)) if (f.includes('.tmp-')) removeQuietly(join(dir, f));
    const cache = new FeatureCache(dir, opts.dim, writable, appendBytes);
    try {
      cache.load(identity);
    } catch (e) {
      cache.closeSync();
      throw e;
    }
    openCaches.add(cache);
    if (!exitHooked) {
      process.on('exit', onExit);
      exitHooked = true;
    }
    return cache;
  }

  /** Rows found corrupt on read since open (each became a miss). */
  get corruptRows(): number {
    return this.corrupt;
  }

  /** Rows available. */
  get size(): number {
    return this.rows.size;
  }

  has(hash: string): boolean {
    return this.rows.has(hash);
  }

  /** The row for a content hash, or undefined (also when its record turns out corrupt). */
  get(hash: string): Float32Array | undefined {
    const out = new Float32Array(this.dim);
    return this.read(hash, out) ? out : undefined;
  }

  /** Copies the row for `hash` into `out` at `offset` (no allocation); false on a miss. */
  read(hash: string, out: Float32Array, offset = 0): boolean {
    const r = this.rows.get(hash);
    if (r === undefined) return false;
    const R = this.recordBytes;
    let rec: Buffer;
    if (r >= this.persisted) rec = this.pending.subarray((r - this.persisted) * R, (r - this.persisted + 1) * R);
    else {
      const n = this.fd === undefined ? 0 : readFully(this.fd, this.scratch, DATA_HEADER + r * R);
      rec = this.scratch;
      if (n !== R || !recordValid(rec, R) || rec.toString('hex', 0, HASH_BYTES) !== hash) {
        this.rows.delete(hash);
        this.corrupt++;
        return false;
      }
    }
    out.set(new Float32Array(rec.buffer, rec.byteOffset + HASH_BYTES, this.dim), offset);
    return true;
  }

  /** Adds a row (copied). A hash already present is left as is; a read-only cache ignores puts. */
  put(hash: string, row: Float32Array): void {
    if (!isContentHash(hash)) throw new GraftError('INVALID_ARGUMENT', `Feature cache keys are hex SHA-256 content hashes (64 characters), not ${JSON.stringify(hash.slice(0, 80))}.`);
    if (row.length !== this.dim) throw new GraftError('INVALID_ARGUMENT', `A feature row has ${row.length} values but this cache holds rows of ${this.dim}.`);
    if (!this.writable || this.closed || this.rows.has(hash)) return;
    const R = this.recordBytes;
    if ((this.records - this.persisted + 1) * R > this.pending.length) this.append();
    const at = (this.records - this.persisted) * R;
    const rec = this.pending.subarray(at, at + R);
    rec.write(hash, 0, HASH_BYTES, 'hex');
    new Float32Array(rec.buffer, rec.byteOffset + HASH_BYTES, this.dim).set(row);
    rec.writeUInt32LE(crc32(rec, 0, R - 4), R - 4);
    this.addKey(rec, this.records);
    this.rows.set(hash, this.records++);
  }

  /** Writes pending rows and the index (durably: data is synced before the index that points at it). */
  async flush(): Promise<void> {
    this.flushSync();
  }

  flushSync(): void {
    if (!this.writable || this.fd === undefined) return;
    this.append();
    if (this.indexed === this.records) return;
    fdatasyncSync(this.fd);
    this.writeIndex();
  }

  /** Flushes and releases the writer lock. The cache cannot be used afterwards. */
  async close(): Promise<void> {
    this.closeSync();
  }

  closeSync(): void {
    if (this.closed) return;
    try {
      this.flushSync();
    } finally {
      this.closed = true;
      openCaches.delete(this);
      if (this.fd !== undefined) closeSync(this.fd);
      this.fd = undefined;
      if (this.writable) removeQuietly(this.lockPath);
    }
  }

  // ------------------------------------------------------------------------------------------- internals

  private append(): void {
    if (this.fd === undefined || this.records === this.persisted) return;
    const bytes = (this.records - this.persisted) * this.recordBytes;
    let done = 0;
    while (done < bytes) done += writeSync(this.fd, this.pending, done, bytes - done, DATA_HEADER + this.persisted * this.recordBytes + done);
    this.persisted = this.records;
  }

  private addKey(rec: Uint8Array, r: number): void {
    if (!this.writable) return;
    const need = (r + 1) * HASH_BYTES;
    if (need > this.keys.length) {
      const grown = Buffer.alloc(Math.max(need, this.keys.length * 2, 1024 * HASH_BYTES));
      this.keys.copy(grown);
      this.keys = grown;
    }
    this.keys.set(rec.subarray(0, HASH_BYTES), r * HASH_BYTES);
  }

  private writeIndex(): void {
    const body = this.keys.subarray(0, this.records * HASH_BYTES);
    const head = Buffer.alloc(INDEX_HEADER);
    head.write(INDEX_MAGIC, 0, 'latin1');
    head.writeUInt32LE(FORMAT, 8);
    head.writeUInt32LE(this.dim, 12);
    this.generation.copy(head, 16);
    head.writeUInt32LE(this.records, 32);
    head.writeUInt32LE(crc32(body), 36);
    head.writeUInt32LE(crc32(head, 0, 44), 44);
    atomicWriteFile(join(this.dir, 'index.bin'), Buffer.concat([head, body]));
    this.indexed = this.records;
  }

  private load(identity: object): void {
    const metaPath = join(this.dir, 'meta.json');
    const dataPath = join(this.dir, 'rows.bin');
    const expected = canonicalJson(identity);
    let meta: string | undefined;
    try {
      const { created: _created, ...stored } = JSON.parse(readFileSync(metaPath, 'utf8')) as Record<string, unknown>;
      meta = canonicalJson(stored);
    } catch {
      meta = undefined;
    }
    let fresh = meta !== expected;
    if (fresh && (meta !== undefined || existsSync(dataPath))) this.repairs.push(meta === undefined ? 'meta.json was missing or unreadable; the store was discarded' : 'meta.json describes different settings; the store was discarded');

    if (!fresh && existsSync(dataPath)) {
      this.fd = openSync(dataPath, this.writable ? 'r+' : 'r');
      const head = Buffer.alloc(DATA_HEADER);
      if (readFully(this.fd, head, 0) !== DATA_HEADER || !this.headerValid(head)) {
        this.repairs.push('rows.bin has an invalid header; the store was discarded');
        closeSync(this.fd);
        this.fd = undefined;
        fresh = true;
      } else head.copy(this.generation, 0, 20, 20 + GEN_BYTES);
    } else fresh = true;

    if (fresh) {
      if (!this.writable) return; // nothing usable; a reader just misses
      for (const f of ['rows.bin', 'index.bin', 'meta.json']) removeQuietly(join(this.dir, f));
      this.generation = randomBytes(GEN_BYTES);
      const head = Buffer.alloc(DATA_HEADER);
      head.write(DATA_MAGIC, 0, 'latin1');
      head.writeUInt32LE(FORMAT, 8);
      head.writeUInt32LE(this.dim, 12);
      head.writeUInt32LE(HASH_BYTES, 16);
      this.generation.copy(head, 20);
      head.writeUInt32LE(crc32(head, 0, 60), 60);
      // the header appears complete or not at all; meta.json last, so a store without it is known unfinished
      const tmp = tempPathFor(dataPath);
      writeFileSync(tmp, head);
      renameSync(tmp, dataPath);
      atomicWriteFile(metaPath, JSON.stringify({ ...identity, created: new Date().toISOString() }, null, 2));
      this.fd = openSync(dataPath, 'r+');
      return;
    }

    const fd = this.fd as number;
    const size = fstatSync(fd).size;
    const R = this.recordBytes;
    const covered = this.loadIndex(Math.floor((size - DATA_HEADER) / R));
    // records written after the last index update (a run that ended without flushing) or all, without index
    const chunkRecords = Math.max(1, Math.floor((4 << 20) / R));
    const chunk = Buffer.alloc(chunkRecords * R);
    let r = covered;
    scan: for (;;) {
      const got = readFully(fd, chunk, DATA_HEADER + r * R);
      const whole = Math.floor(got / R);
      for (let k = 0; k < whole; k++) {
        const rec = chunk.subarray(k * R, (k + 1) * R);
        if (!recordValid(rec, R)) break scan;
        this.rows.set(rec.toString('hex', 0, HASH_BYTES), r);
        this.addKey(rec, r);
        r++;
      }
      if (whole < chunkRecords) break;
    }
    if (r > covered && covered > 0) this.repairs.push(`recovered ${r - covered} row(s) written after the last index update`);
    this.records = this.persisted = r;
    const end = DATA_HEADER + r * R;
    if (size > end) {
      if (this.writable) {
        ftruncateSync(fd, end);
        this.repairs.push(`cut ${size - end} byte(s) of incomplete or corrupt records from the end of rows.bin`);
      } else this.repairs.push(`ignored ${size - end} byte(s) at the end of rows.bin (incomplete records, or a write in progress)`);
    }
    if (this.writable && this.indexed !== this.records) this.writeIndex();
  }

  /** Loads index.bin if it matches rows.bin; returns the number of records it covers (0 when unusable). */
  private loadIndex(recordsInFile: number): number {
    let buf: Buffer;
    try {
      buf = readFileSync(join(this.dir, 'index.bin'));
    } catch {
      if (recordsInFile > 0) this.repairs.push('index.bin is missing; rebuilt it from rows.bin');
      return 0;
    }
    const count = buf.length >= INDEX_HEADER ? buf.readUInt32LE(32) : -1;
    const ok =
      count >= 0 &&
      buf.toString('latin1', 0, 8) === INDEX_MAGIC &&
      buf.readUInt32LE(8) === FORMAT &&
      buf.readUInt32LE(12) === this.dim &&
      buf.subarray(16, 16 + GEN_BYTES).equals(this.generation) &&
      buf.readUInt32LE(44) === crc32(buf, 0, 44) &&
      buf.length === INDEX_HEADER + count * HASH_BYTES &&
      buf.readUInt32LE(36) === crc32(buf, INDEX_HEADER) &&
      count <= recordsInFile;
    if (!ok) {
      this.repairs.push(count > recordsInFile ? 'rows.bin is shorter than its index (truncated); rebuilt the index from the rows that remain' : 'index.bin is invalid; rebuilt it from rows.bin');
      return 0;
    }
    for (let r = 0; r < count; r++) this.rows.set(buf.toString('hex', INDEX_HEADER + r * HASH_BYTES, INDEX_HEADER + (r + 1) * HASH_BYTES), r);
    if (this.writable) {
      this.keys = Buffer.alloc(Math.max(count * HASH_BYTES, 1024 * HASH_BYTES));
      buf.copy(this.keys, 0, INDEX_HEADER);
    }
    this.indexed = count;
    return count;
  }

  private headerValid(head: Buffer): boolean {
    return (
      head.toString('latin1', 0, 8) === DATA_MAGIC &&
      head.readUInt32LE(8) === FORMAT &&
      head.readUInt32LE(12) === this.dim &&
      head.readUInt32LE(16) === HASH_BYTES &&
      head.readUInt32LE(60) === crc32(head, 0, 60)
    );
  }
}

function recordValid(rec: Uint8Array, R: number): boolean {
  const stored = (rec[R - 4] | (rec[R - 3] << 8) | (rec[R - 2] << 16) | (rec[R - 1] << 24)) >>> 0;
  return stored === crc32(rec, 0, R - 4);
}

function readFully(fd: number, buf: Buffer, position: number): number {
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/**
 * Takes the writer lock: created exclusively; a lock left by a process on this host that no longer exists
 * is taken over. (Two processes taking over the same stale lock at once could both append; each record
 * carries its key and checksum, so that costs rows, never correctness.)
 */
function acquireLock(path: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      try {
        writeSync(fd, JSON.stringify({ pid: process.pid, host: hostname() }));
      } finally {
        closeSync(fd);
      }
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return false;
      const owner = readLock(path);
      const stale = owner ? owner.host === hostname() && !processAlive(owner.pid) : lockAbandoned(path);
      if (!stale) return false;
      try {
        unlinkSync(path);
      } catch {
        return false;
      }
    }
  }
  return false;
}

// an unreadable lock (its writer died between create and write) older than a few seconds
function lockAbandoned(path: string): boolean {
  try {
    const fd = openSync(path, 'r');
    try {
      return Date.now() - fstatSync(fd).mtimeMs > 10_000;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------------------------ extracting features

export interface FeatureItem {
  path: string;
  /** The content hash, if already known (e.g. from scanImageFolder with hashAll). */
  hash?: string;
}

/** One result per path, in order: the feature row, or the error that item failed with. */
export type ExtractFn = (paths: readonly string[], ctx: BatchContext) => Promise<readonly (Float32Array | Error)[]>;

/**
 * Extraction in two stages, mapped onto mapBatched: `prepare` (decode + preprocess; per-item failures in
 * `failed`) runs up to `prefetch` batches ahead of `run` (the backbone).
 */
export interface StagedExtractor<P> {
  prepare: PrepareFn<string, P>;
  run: RunFn<string, P, Float32Array | Error>;
}

export interface FeatureProgress {
  done: number;
  total: number;
  /** Served from the cache (or a copy of an image extracted in this run). */
  hits: number;
  extracted: number;
  failed: number;
}

export interface FeatureFailure {
  /** Index into the items. */
  index: number;
  path: string;
  code: GraftErrorCode | 'UNKNOWN';
  message: string;
}

export interface ExtractFeaturesOptions<P> {
  cache?: FeatureCache;
  /** Row width; taken from the cache when there is one. */
  dim?: number;
  /**
   * A function of a batch of paths (called in mapBatched's prepare stage, so up to prefetch + 1 calls are
   * in flight and one batch's decoding overlaps another's inference), or a two-stage extractor.
   */
  extract: ExtractFn | StagedExtractor<P>;
  /** Images per extract call (default 32). */
  batchSize?: number;
  /** Batches prepared ahead (default 1). */
  prefetch?: number;
  /** Files hashed at once (default 8). */
  hashConcurrency?: number;
  onProgress?: (p: FeatureProgress) => void;
  signal?: AbortSignal;
}

export interface ExtractedFeatures {
  /** kept.length × dim, row k belonging to items[kept[k]]. */
  features: Float32Array;
  dim: number;
  /** Indices of the items that have a row, ascending. */
  kept: number[];
  /** Items skipped, ascending by index, with the reason. */
  failures: FeatureFailure[];
  hits: number;
  extracted: number;
}

interface Miss {
  index: number;
  path: string;
  hash: string;
}

function toFailure(index: number, path: string, e: unknown): FeatureFailure {
  return { index, path, code: e instanceof GraftError ? e.code : 'UNKNOWN', message: e instanceof Error ? e.message : String(e) };
}

const INDEX_EVERY_MS = 30_000;

/**
 * Features for every item: hashes files (streaming, bounded concurrency), serves cache hits, extracts
 * misses in batches (an image that appears twice is extracted once), stores new rows, and skips items that
 * fail (unreadable, not an image...) with their error code. Memory: the result (n × dim floats) plus a few
 * batches; rows are written into the result in place and compacted at the end.
 */
export async function extractFeatures<P = unknown>(items: readonly FeatureItem[], opts: ExtractFeaturesOptions<P>): Promise<ExtractedFeatures> {
  const { cache, signal } = opts;
  const width = cache?.dim ?? opts.dim;
  if (cache && opts.dim !== undefined && opts.dim !== cache.dim) throw new GraftError('INVALID_ARGUMENT', `dim ${opts.dim} differs from the cache's row width ${cache.dim}.`);
  if (width === undefined || !Number.isInteger(width) || width < 1) throw new GraftError('INVALID_ARGUMENT', 'extractFeatures needs the feature width: pass a cache or dim.');
  const dim = width;
  const n = items.length;
  const out = new Float32Array(n * dim);
  const ok = new Uint8Array(n);
  const failures: FeatureFailure[] = [];
  const waiting = new Map<string, number[]>();
  let hits = 0;
  let extracted = 0;
  const report = () => opts.onProgress?.({ done: hits + extracted + failures.length, total: n, hits, extracted, failed: failures.length });
  const fail = (i: number, e: unknown) => {
    if (isGraftError(e, 'ABORTED')) throw e;
    failures.push(toFailure(i, items[i].path, e));
  };

  async function* misses(): AsyncGenerator<Miss, void, undefined> {
    // without a cache there is nothing to look up, so no reason to read every file twice
    const hashOf = (it: FeatureItem) => (it.hash !== undefined || !cache ? Promise.resolve(it.hash ?? '') : hashFile(it.path));
    for await (const r of mapOrdered(items, opts.hashConcurrency ?? 8, hashOf, signal)) {
      const i = r.index;
      if (!r.ok) {
        fail(i, r.error);
        report();
        continue;
      }
      const hash = r.value;
      if (cache && cache.read(hash, out, i * dim)) {
        ok[i] = 1;
        hits++;
        report();
        continue;
      }
      if (hash) {
        const w = waiting.get(hash);
        if (w) {
          w.push(i);
          continue;
        }
        waiting.set(hash, [i]);
      }
      yield { index: i, path: items[i].path, hash };
    }
  }

  let prepare: PrepareFn<Miss, unknown>;
  let run: RunFn<Miss, unknown, Float32Array | Error>;
  const ex = opts.extract;
  if (typeof ex === 'function') {
    prepare = async (batch, ctx) => ({ value: await ex(batch.map((m) => m.path), ctx) });
    run = async (value) => value as readonly (Float32Array | Error)[];
  } else {
    prepare = async (batch, ctx) => ex.prepare(batch.map((m) => m.path), ctx);
    run = async (value, batch, ctx) => ex.run(value as P, batch.map((m) => m.path), ctx);
  }

  let lastIndex = Date.now();
  try {
    for await (const r of mapBatched(misses(), { batchSize: opts.batchSize ?? 32, prefetch: opts.prefetch ?? 1, signal }, prepare, run)) {
      const m = r.item;
      const targets = m.hash ? (waiting.get(m.hash) as number[]) : [m.index];
      waiting.delete(m.hash);
      const value: unknown = r.ok ? r.value : r.error;
      if (r.ok && value instanceof Float32Array) {
        if (value.length !== dim) throw new GraftError('INVALID_ARGUMENT', `extract returned a row of ${value.length} values for ${m.path}; expected ${dim}.`);
        if (m.hash) cache?.put(m.hash, value);
        for (const i of targets) {
          out.set(value, i * dim);
          ok[i] = 1;
        }
        extracted++;
        hits += targets.length - 1;
      } else if (r.ok && !(value instanceof Error)) {
        throw new GraftError('INVALID_ARGUMENT', `extract must return a Float32Array or an Error per path; got ${Object.prototype.toString.call(value)} for ${m.path}.`);
      } else for (const i of targets) fail(i, value);
      report();
      if (cache && Date.now() - lastIndex > INDEX_EVERY_MS) {
        // keeps a crash's recovery scan short; rows themselves are on disk every few MB already
        cache.flushSync();
        lastIndex = Date.now();
      }
    }
  } finally {
    cache?.flushSync();
  }

  // compact in place: no second n × dim buffer
  const kept: number[] = [];
  for (let i = 0; i < n; i++) {
    if (!ok[i]) continue;
    const k = kept.length;
    if (k !== i) out.copyWithin(k * dim, i * dim, (i + 1) * dim);
    kept.push(i);
  }
  failures.sort((a, b) => a.index - b.index);
  if (kept.length + failures.length !== n) throw new Error(`extractFeatures lost track of ${n - kept.length - failures.length} item(s)`);
  return { features: kept.length === n ? out : out.subarray(0, kept.length * dim), dim, kept, failures, hits, extracted };
}
