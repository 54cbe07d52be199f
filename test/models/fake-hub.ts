/**
 * A local stand-in for the Hugging Face Hub and its CDN (two servers, so two hosts): the hub serves
 * `/{owner}/{repo}/resolve/{rev}/{path}`, answering LFS files with a 302 to the CDN plus X-Linked-Etag /
 * X-Linked-Size, small files directly with a git-style ETag. The CDN serves `/blobs/<sha256>` and plain
 * `/files/<name>` with Range support. Every request is logged; faults are switched on per test.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { GraphBuilder } from '../../src/graph/builder.js';
import { Graph, Model } from '../../src/graph/graph.js';
import { modelToBytes } from '../../src/graph/serialize.js';
import { float32 } from '../../src/onnx/tensor.js';

export interface LoggedRequest {
  server: 'hub' | 'cdn';
  path: string;
  range?: string;
  authorization?: string;
}

export interface Faults {
  /** The next N body responses for a CDN path containing `match` send half the bytes, then drop the connection. */
  drop?: { match: string; times: number };
  /** CDN ignores Range headers and always sends the whole file with 200. */
  ignoreRange?: boolean;
  /** Hub publishes a wrong sha256 for these repo paths. */
  lieAbout?: Set<string>;
  /** Paths (hub or cdn) that never answer. */
  stall?: Set<string>;
  /** CDN waits this long before sending a body. */
  delayMs?: number;
}

export interface FakeHub {
  endpoint: string;
  cdn: string;
  requests: LoggedRequest[];
  faults: Faults;
  /** A private repo: only `Bearer <token>` may read it. */
  privateRepos: Map<string, string>;
  addFile(repo: string, revision: string, path: string, bytes: Uint8Array | string): void;
  /** Serves bytes at `${cdn}/files/${name}`. */
  addUrlFile(name: string, bytes: Uint8Array): string;
  count(match: string): number;
  close(): Promise<void>;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const isLfs = (path: string) => /\.onnx(_data|\.data)?$/.test(path);

export async function startFakeHub(): Promise<FakeHub> {
  const repos = new Map<string, Map<string, Map<string, Uint8Array>>>();
  const blobs = new Map<string, Uint8Array>();
  const urlFiles = new Map<string, Uint8Array>();
  const requests: LoggedRequest[] = [];
  const faults: Faults = {};
  const privateRepos = new Map<string, string>();
  const sockets = new Set<Socket>();

  const log = (server: LoggedRequest['server'], req: http.IncomingMessage) => {
    requests.push({ server, path: req.url ?? '', range: req.headers.range, authorization: req.headers.authorization });
  };
  const stalled = (req: http.IncomingMessage) => [...(faults.stall ?? [])].some((m) => (req.url ?? '').includes(m));

  let cdnBase = '';
  const hub = http.createServer((req, res) => {
    log('hub', req);
    if (stalled(req)) return;
    const m = /^\/([^/]+)\/([^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(req.url ?? '');
    const error = (status: number, code: string, message: string) => {
      res.writeHead(status, { 'x-error-code': code, 'x-error-message': message, 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: message }));
    };
    if (!m) return error(404, 'RepoNotFound', 'Not found');
    const repo = `${m[1]}/${m[2]}`;
    const rev = decodeURIComponent(m[3]);
    const path = m[4].split('/').map(decodeURIComponent).join('/');
    const token = privateRepos.get(repo);
    if (token !== undefined && req.headers.authorization !== `Bearer ${token}`) {
      return error(401, 'GatedRepo', `Access to model ${repo} is restricted.`);
    }
    const revs = repos.get(repo);
    if (!revs) return error(404, 'RepoNotFound', 'Repository not found');
    const files = revs.get(rev);
    if (!files) return error(404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
    const bytes = files.get(path);
    if (!bytes) return error(404, 'EntryNotFound', `Entry not found`);
    if (isLfs(path)) {
      const sha = faults.lieAbout?.has(path) ? sha256(Buffer.from('something else')) : sha256(bytes);
      res.writeHead(302, {
        location: `${cdnBase}/blobs/${sha256(bytes)}`,
        'x-linked-etag': `"${sha}"`,
        'x-linked-size': String(bytes.byteLength),
        etag: `"${sha}"`,
      });
      return res.end();
    }
    const gitSha = createHash('sha1').update(`blob ${bytes.byteLength}\0`).update(bytes).digest('hex');
    res.writeHead(200, { etag: `"${gitSha}"`, 'content-length': bytes.byteLength });
    res.end(bytes);
  });

  const cdn = http.createServer((req, res) => {
    log('cdn', req);
    if (stalled(req)) return;
    const url = req.url ?? '';
    const bytes = url.startsWith('/blobs/') ? blobs.get(url.slice(7)) : url.startsWith('/files/') ? urlFiles.get(url.slice(7)) : undefined;
    if (!bytes) {
      res.writeHead(404);
      return res.end();
    }
    const etag = `"${sha256(bytes).slice(0, 16)}"`;
    let start = 0;
    let status = 200;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && !faults.ignoreRange) {
      start = Number(range[1]);
      if (start >= bytes.byteLength) {
        res.writeHead(416, { 'content-range': `bytes */${bytes.byteLength}` });
        return res.end();
      }
      status = 206;
    }
    const body = bytes.subarray(start);
    const headers: http.OutgoingHttpHeaders = { 'content-length': body.byteLength, 'accept-ranges': 'bytes', etag };
    if (status === 206) headers['content-range'] = `bytes ${start}-${bytes.byteLength - 1}/${bytes.byteLength}`;
    if (faults.delayMs) {
      setTimeout(() => (res.writeHead(status, headers), res.end(body)), faults.delayMs);
      return;
    }
    res.writeHead(status, headers);
    const drop = faults.drop;
    if (drop && drop.times > 0 && url.includes(drop.match)) {
      drop.times--;
      // flush half, then cut the connection as a flaky network would
      res.write(body.subarray(0, Math.floor(body.byteLength / 2)), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(body);
  });

  for (const s of [hub, cdn]) s.on('connection', (c) => (sockets.add(c), c.on('close', () => sockets.delete(c))));
  const listen = (s: http.Server) => new Promise<string>((r) => s.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(s.address() as AddressInfo).port}`)));
  const endpoint = await listen(hub);
  cdnBase = await listen(cdn);

  return {
    endpoint,
    cdn: cdnBase,
    requests,
    faults,
    privateRepos,
    addFile(repo, revision, path, data) {
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      let revs = repos.get(repo);
      if (!revs) repos.set(repo, (revs = new Map()));
      let files = revs.get(revision);
      if (!files) revs.set(revision, (files = new Map()));
      files.set(path, bytes);
      if (isLfs(path)) blobs.set(sha256(bytes), bytes);
    },
    addUrlFile(name, bytes) {
      urlFiles.set(name, bytes);
      return `${cdnBase}/files/${name}`;
    },
    count(match) {
      return requests.filter((r) => r.path.includes(match)).length;
    },
    async close() {
      for (const c of sockets) c.destroy();
      await Promise.all([hub, cdn].map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}

/**
 * x[N,3,8,8] → Flatten → Gemm(64) → Relu → Gemm(2) → Softmax: ~50 KB, so a download has several chunks.
 * `seed` changes the weights (and so the bytes and the id).
 */
export function tinyClassifier(seed = 1, metadata: Record<string, string> = {}): Model {
  const g = new Graph({ inputs: [{ name: 'x', dtype: 'float32', shape: ['N', 3, 8, 8] }] });
  const b = new GraphBuilder(g);
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.2;
  const w1 = b.initializer('w1', float32([64, 192], Array.from({ length: 64 * 192 }, rand)));
  const b1 = b.initializer('b1', float32([64], Array.from({ length: 64 }, rand)));
  const w2 = b.initializer('w2', float32([2, 64], Array.from({ length: 128 }, rand)));
  const b2 = b.initializer('b2', float32([2], [0, 0]));
  const flat = b.op('Flatten', ['x'], { axis: 1 });
  const h = b.op('Relu', [b.op('Gemm', [flat, w1, b1], { transB: 1 })]);
  b.op('Softmax', [b.op('Gemm', [h, w2, b2], { transB: 1 })], { axis: -1 }, { outputs: ['probs'] });
  g.outputs = [{ name: 'probs', dtype: 'float32', shape: ['N', 2] }];
  return new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }], metadata: new Map(Object.entries(metadata)) });
}

export const tinyClassifierBytes = (seed = 1, metadata: Record<string, string> = {}) => modelToBytes(tinyClassifier(seed, metadata));

export const HF_CONFIG = { architectures: ['TinyForImageClassification'], id2label: { '0': 'cat', '1': 'dog' }, label2id: { cat: 0, dog: 1 } };
export const HF_PREPROCESSOR = {
  do_resize: true,
  size: { height: 8, width: 8 },
  resample: 3,
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  image_mean: [0.5, 0.5, 0.5],
  image_std: [0.5, 0.5, 0.5],
};

/** Puts a Transformers.js-layout repo on the hub: onnx/model.onnx (+ quantized variant), config, preprocessor. */
export function addTinyRepo(hub: FakeHub, repo: string, revision = 'main', seed = 1, labels = ['cat', 'dog']): Uint8Array {
  const bytes = tinyClassifierBytes(seed);
  hub.addFile(repo, revision, 'onnx/model.onnx', bytes);
  hub.addFile(repo, revision, 'onnx/model_quantized.onnx', tinyClassifierBytes(seed + 100));
  hub.addFile(repo, revision, 'config.json', JSON.stringify({ ...HF_CONFIG, id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])) }));
  hub.addFile(repo, revision, 'preprocessor_config.json', JSON.stringify(HF_PREPROCESSOR));
  return bytes;
}
