import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, type Dirent } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GraftError, type GraftErrorCode } from '../../src/errors.js';
import { modelToBytes, saveModel } from '../../src/graph/serialize.js';
import type { DownloadProgress } from '../../src/models/download.js';
import { resolveModel, type ResolveOptions } from '../../src/models/sources.js';
import { addTinyRepo, HF_PREPROCESSOR, startFakeHub, tinyClassifier, tinyClassifierBytes, type FakeHub } from './fake-hub.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function expectRejects(p: Promise<unknown>, code: GraftErrorCode): Promise<GraftError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(GraftError);
    expect((e as GraftError).code, (e as Error).message).toBe(code);
    return e as GraftError;
  }
  throw new Error(`expected ${code}`);
}

/** Every file under dir, relative, sorted. */
function tree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as Dirent[])
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath ?? d.path, d.name).slice(dir.length + 1))
    .sort();
}

describe('resolveModel: hf: and URL sources against a local hub', () => {
  let hub: FakeHub;
  let cache: string;
  let opts: ResolveOptions;
  const mainBytes = () => tinyClassifierBytes(1);
  const ENV_KEYS = ['HF_ENDPOINT', 'HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'GRAFT_OFFLINE'] as const;
  const savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));

  beforeAll(async () => {
    hub = await startFakeHub();
    addTinyRepo(hub, 'acme/tiny', 'main', 1, ['cat', 'dog']);
    addTinyRepo(hub, 'acme/tiny', 'v2', 2, ['ant', 'bee']);
    addTinyRepo(hub, 'acme/secret', 'main', 3);
    hub.privateRepos.set('acme/secret', 'hf_test_token');
    // a larger model whose weights live in onnx/model.onnx.data
    const dir = mkdtempSync(join(tmpdir(), 'graft-ext-'));
    saveModel(tinyClassifier(9), join(dir, 'model.onnx'), { externalData: true });
    hub.addFile('acme/big', 'main', 'onnx/model.onnx', readFileSync(join(dir, 'model.onnx')));
    hub.addFile('acme/big', 'main', 'onnx/model.onnx.data', readFileSync(join(dir, 'model.onnx.data')));
    hub.addFile('acme/big', 'main', 'config.json', JSON.stringify({ id2label: { 0: 'a', 1: 'b' } }));
    // no preprocessor_config.json in acme/big
  });
  afterAll(() => hub.close());
  beforeEach(() => {
    cache = mkdtempSync(join(tmpdir(), 'graft-cache-'));
    opts = { cacheDir: cache, hfEndpoint: hub.endpoint, offline: false, retries: 0 };
    hub.requests.length = 0;
    for (const k of ENV_KEYS) delete process.env[k];
    for (const k of Object.keys(hub.faults)) delete hub.faults[k as keyof typeof hub.faults];
  });
  afterEach(() => {
    for (const k of ENV_KEYS) {
      if (savedEnv[k] === undefined) delete process.env[k];
      else process.env[k] = savedEnv[k];
    }
  });

  const repoCache = (repo: string, rev = 'main') => join(cache, 'downloads', `hf@${new URL(hub.endpoint).host.replace(':', '_')}`, ...repo.split('/'), rev);

  it('downloads model, config and preprocessor once; then serves them from the cache without the network', async () => {
    const events: DownloadProgress[] = [];
    const r = await resolveModel('hf:acme/tiny', { ...opts, onProgress: (e) => events.push(e as DownloadProgress) });
    expect(r.kind).toBe('hf');
    expect(r.modelPath).toBe(join(repoCache('acme/tiny'), 'onnx', 'model.onnx'));
    expect(Buffer.compare(readFileSync(r.modelPath), mainBytes())).toBe(0);
    expect(r.id).toBe(sha(mainBytes()));
    expect(r.labels).toEqual(['cat', 'dog']);
    expect(r.preprocess).toMatchObject({ inputSize: [8, 8], interpolation: 'bicubic', mean: HF_PREPROCESSOR.image_mean });
    expect(tree(repoCache('acme/tiny'))).toEqual(['config.json', 'onnx/model.onnx', 'preprocessor_config.json']);
    // the resolve request is redirected to the CDN for the LFS file
    expect(hub.requests.map((q) => `${q.server} ${q.path}`)).toEqual([
      'hub /acme/tiny/resolve/main/onnx/model.onnx',
      `cdn /blobs/${sha(mainBytes())}`,
      'hub /acme/tiny/resolve/main/config.json',
      'hub /acme/tiny/resolve/main/preprocessor_config.json',
    ]);
    const modelEvents = events.filter((e) => e.file === 'acme/tiny@main/onnx/model.onnx');
    expect(modelEvents.at(-1)).toMatchObject({ received: mainBytes().byteLength, total: mainBytes().byteLength });

    // the file is a working model
    const s = await ort.InferenceSession.create(r.modelPath);
    const out = await s.run({ x: new ort.Tensor('float32', new Float32Array(192).fill(0.5), [1, 3, 8, 8]) });
    await s.release();
    const p = out.probs.data as Float32Array;
    expect(p[0] + p[1]).toBeCloseTo(1, 5);

    const n = hub.requests.length;
    const again = await resolveModel('hf:acme/tiny', opts);
    const offline = await resolveModel('hf:acme/tiny', { ...opts, offline: true });
    expect(hub.requests.length).toBe(n);
    expect(again.id).toBe(r.id);
    expect(offline.labels).toEqual(['cat', 'dog']);
  });

  it('takes the endpoint from HF_ENDPOINT when no option is given', async () => {
    process.env.HF_ENDPOINT = hub.endpoint;
    const r = await resolveModel('hf:acme/tiny', { cacheDir: cache, offline: false });
    expect(r.labels).toEqual(['cat', 'dog']);
    expect(hub.count('/acme/tiny/resolve/main/onnx/model.onnx')).toBe(1);
  });

  it('offline (option or GRAFT_OFFLINE=1) with an empty cache fails with OFFLINE_CACHE_MISS and sends nothing', async () => {
    const e = await expectRejects(resolveModel('hf:acme/tiny', { ...opts, offline: true }), 'OFFLINE_CACHE_MISS');
    expect(e.message).toContain('acme/tiny@main/onnx/model.onnx');
    expect(e.message).toContain(join(repoCache('acme/tiny'), 'onnx', 'model.onnx'));
    expect(e.message).toContain(`${hub.endpoint}/acme/tiny/resolve/main/onnx/model.onnx`);
    expect(e.message).toMatch(/once with network access/);
    process.env.GRAFT_OFFLINE = '1';
    const { offline: _omit, ...rest } = opts;
    await expectRejects(resolveModel('hf:acme/tiny', rest), 'OFFLINE_CACHE_MISS');
    expect(hub.requests).toHaveLength(0);
  });

  it('resumes an LFS download that broke off, asking the CDN for the remaining bytes only', async () => {
    hub.faults.drop = { match: '/blobs/', times: 1 };
    const e = await expectRejects(resolveModel('hf:acme/tiny', opts), 'DOWNLOAD_FAILED');
    const part = join(repoCache('acme/tiny'), 'onnx', 'model.onnx.part');
    const kept = readFileSync(part).byteLength;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(mainBytes().byteLength);
    expect(e.message).toContain('Run again to resume');

    hub.requests.length = 0;
    const r = await resolveModel('hf:acme/tiny', opts);
    const cdn = hub.requests.filter((q) => q.server === 'cdn');
    expect(cdn).toEqual([{ server: 'cdn', path: `/blobs/${sha(mainBytes())}`, range: `bytes=${kept}-`, authorization: undefined }]);
    expect(Buffer.compare(readFileSync(r.modelPath), mainBytes())).toBe(0);
    expect(r.id).toBe(sha(mainBytes()));
    expect(existsSync(part)).toBe(false);
  });

  it('checks the sha256 the hub publishes (X-Linked-Etag) and leaves nothing behind when it differs', async () => {
    hub.faults.lieAbout = new Set(['onnx/model.onnx']);
    const e = await expectRejects(resolveModel('hf:acme/tiny', opts), 'CHECKSUM_MISMATCH');
    expect(e.message).toContain(sha(mainBytes()));
    expect(e.message).toContain('acme/tiny@main/onnx/model.onnx');
    expect(tree(cache).filter((f) => !f.endsWith('.lock'))).toEqual([]);
    expect(tree(cache)).toEqual([]);
  });

  it('404s say which of repo, revision or file is wrong', async () => {
    const repo = await expectRejects(resolveModel('hf:acme/nothing', opts), 'DOWNLOAD_FAILED');
    expect(repo.message).toContain('HTTP 404');
    expect(repo.message).toContain(`${hub.endpoint}/acme/nothing/resolve/main/onnx/model.onnx`);
    expect(repo.message).toContain('Check the repo name (acme/nothing)');
    const rev = await expectRejects(resolveModel('hf:acme/tiny@nope', opts), 'DOWNLOAD_FAILED');
    expect(rev.message).toContain('Revision "nope" does not exist');
    const variant = await expectRejects(resolveModel('hf:acme/tiny#model_int4', opts), 'DOWNLOAD_FAILED');
    expect(variant.message).toContain('no file onnx/model_int4.onnx');
    expect(variant.message).toContain('variant');
    expect(tree(cache)).toEqual([]);
  });

  it('401 on a gated/private repo says to set HF_TOKEN; the token is sent to the hub only, never the CDN', async () => {
    const e = await expectRejects(resolveModel('hf:acme/secret', opts), 'DOWNLOAD_FAILED');
    expect(e.message).toContain('HTTP 401');
    expect(e.message).toContain(`${hub.endpoint}/acme/secret/resolve/main/onnx/model.onnx`);
    expect(e.message).toContain('set HF_TOKEN');

    const wrong = await expectRejects(resolveModel('hf:acme/secret', { ...opts, hfToken: 'hf_wrong' }), 'DOWNLOAD_FAILED');
    expect(wrong.message).toContain('HF_TOKEN was refused');

    hub.requests.length = 0;
    process.env.HF_TOKEN = 'hf_test_token';
    const r = await resolveModel('hf:acme/secret', opts);
    expect(r.labels).toEqual(['cat', 'dog']);
    const hubAuth = hub.requests.filter((q) => q.server === 'hub').map((q) => q.authorization);
    const cdnAuth = hub.requests.filter((q) => q.server === 'cdn').map((q) => q.authorization);
    expect(hubAuth).toEqual(['Bearer hf_test_token', 'Bearer hf_test_token', 'Bearer hf_test_token']);
    expect(cdnAuth).toEqual([undefined]);
  });

  it('caches revisions separately', async () => {
    const main = await resolveModel('hf:acme/tiny', opts);
    const v2 = await resolveModel('hf:acme/tiny@v2', opts);
    expect(v2.modelPath).toBe(join(repoCache('acme/tiny', 'v2'), 'onnx', 'model.onnx'));
    expect(v2.modelPath).not.toBe(main.modelPath);
    expect(v2.id).toBe(sha(tinyClassifierBytes(2)));
    expect(v2.id).not.toBe(main.id);
    expect([main.labels, v2.labels]).toEqual([
      ['cat', 'dog'],
      ['ant', 'bee'],
    ]);
    const n = hub.requests.length;
    expect((await resolveModel('hf:acme/tiny@v2', { ...opts, offline: true })).labels).toEqual(['ant', 'bee']);
    expect((await resolveModel('hf:acme/tiny@main', { ...opts, offline: true })).id).toBe(main.id);
    expect(hub.requests.length).toBe(n);
  });

  it('picks a variant with #', async () => {
    const q = await resolveModel('hf:acme/tiny#model_quantized', opts);
    expect(q.modelPath).toBe(join(repoCache('acme/tiny'), 'onnx', 'model_quantized.onnx'));
    expect(q.id).toBe(sha(tinyClassifierBytes(101)));
  });

  it('fetches external data next to the model; a missing optional file is remembered for offline use', async () => {
    const r = await resolveModel('hf:acme/big', opts);
    expect(tree(repoCache('acme/big'))).toEqual(['config.json', 'onnx/model.onnx', 'onnx/model.onnx.data', `preprocessor_config.json.absent`]);
    expect(Array.from(r.model.graph.initializers.get('w1')!.data as Float32Array)).toEqual(
      Array.from(tinyClassifier(9).graph.initializers.get('w1')!.data as Float32Array),
    );
    expect(r.labels).toEqual(['a', 'b']);
    expect(r.preprocess).toBeUndefined();
    const n = hub.requests.length;
    const off = await resolveModel('hf:acme/big', { ...opts, offline: true });
    expect(off.id).toBe(r.id);
    expect(hub.requests.length).toBe(n);
  });

  it('URL sources: downloads once, honours #sha256=, and fails on a wrong one', async () => {
    const bytes = modelToBytes(tinyClassifier(5));
    const url = hub.addUrlFile('m.onnx', bytes);
    const r = await resolveModel(`${url}#sha256=${sha(bytes)}`, opts);
    expect(r.kind).toBe('url');
    expect(Buffer.compare(readFileSync(r.modelPath), bytes)).toBe(0);
    expect(r.modelPath.startsWith(join(cache, 'downloads', 'url'))).toBe(true);
    expect(r.id).toBe(sha(bytes));
    await resolveModel(url, { ...opts, offline: true });
    expect(hub.count('/files/m.onnx')).toBe(1);

    const other = hub.addUrlFile('other.onnx', bytes);
    const e = await expectRejects(resolveModel(`${other}#sha256=${'0'.repeat(64)}`, opts), 'CHECKSUM_MISMATCH');
    expect(e.message).toContain(sha(bytes));
    expect(tree(join(cache, 'downloads', 'url')).filter((f) => f.includes('other'))).toEqual([]);
  });
});
