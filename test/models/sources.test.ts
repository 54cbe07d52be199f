import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeEach, describe, expect, it } from 'vitest';
import { GraftError, type GraftErrorCode } from '../../src/errors.js';
import { saveModel } from '../../src/graph/serialize.js';
import { writeLabels, writePreprocess } from '../../src/models/metadata.js';
import { IMAGENET_DEFAULT } from '../../src/models/preprocess.js';
import { parseModelSpec, resolveModel, type BuiltinResolver } from '../../src/models/sources.js';
import { HF_CONFIG, HF_PREPROCESSOR, tinyClassifier } from './fake-hub.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function fakeBuiltins(root: string): BuiltinResolver & { calls: { name: string; cacheDir?: string }[] } {
  const calls: { name: string; cacheDir?: string }[] = [];
  const names = [
    { name: 'mobilenet_v2', description: 'MobileNetV2' },
    { name: 'inception_v3', description: 'InceptionV3' },
  ];
  return {
    calls,
    isBuiltin: (n) => names.some((b) => b.name === n),
    listBuiltins: () => names,
    async ensureBuiltin(name, opts) {
      calls.push({ name, cacheDir: opts?.cacheDir });
      opts?.onProgress?.({ phase: 'convert', fraction: 1 });
      const m = tinyClassifier(7);
      writeLabels(m, ['drawing', 'neutral']);
      const path = join(root, `${name}.onnx`);
      saveModel(m, path);
      return { path };
    },
  };
}

function expectError(fn: () => unknown, code: GraftErrorCode): GraftError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(GraftError);
    expect((e as GraftError).code, (e as Error).message).toBe(code);
    return e as GraftError;
  }
  throw new Error(`expected ${code}`);
}

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

describe('parseModelSpec', () => {
  let dir: string;
  let builtins: ReturnType<typeof fakeBuiltins>;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'graft-spec-'));
    builtins = fakeBuiltins(dir);
  });
  const parse = (s: string) => parseModelSpec(s, { builtinResolver: builtins, cwd: dir });

  it('recognises builtins, hf: repos with revisions and variants, and URLs', () => {
    expect(parse('mobilenet_v2')).toEqual({ kind: 'builtin', name: 'mobilenet_v2' });
    expect(parse('hf:Xenova/vit-base')).toEqual({ kind: 'hf', repo: 'Xenova/vit-base', revision: 'main', variant: 'model', file: 'onnx/model.onnx' });
    expect(parse('hf:acme/tiny@v1.0#model_quantized')).toEqual({
      kind: 'hf',
      repo: 'acme/tiny',
      revision: 'v1.0',
      variant: 'model_quantized',
      file: 'onnx/model_quantized.onnx',
    });
    expect(parse('hf:acme/tiny@refs/pr/3#fp16')).toMatchObject({ revision: 'refs/pr/3', file: 'onnx/model_fp16.onnx' });
    expect(parse('hf:acme/tiny#model_fp16.onnx')).toMatchObject({ revision: 'main', file: 'onnx/model_fp16.onnx' });
    const hex = 'AB'.repeat(32);
    expect(parse(`https://example.com/models/m.onnx#sha256=${hex}`)).toEqual({ kind: 'url', url: 'https://example.com/models/m.onnx', sha256: hex.toLowerCase() });
    expect(parse('http://127.0.0.1:8080/m.onnx')).toEqual({ kind: 'url', url: 'http://127.0.0.1:8080/m.onnx', sha256: undefined });
  });

  it('resolves existing files and directories to absolute paths (relative to cwd, or file: URLs)', () => {
    mkdirSync(join(dir, 'out'));
    writeFileSync(join(dir, 'm.onnx'), 'x');
    expect(parse('m.onnx')).toEqual({ kind: 'file', path: join(dir, 'm.onnx') });
    expect(parse('./out')).toEqual({ kind: 'dir', path: join(dir, 'out') });
    expect(parse(pathToFileURL(join(dir, 'm.onnx')).href)).toEqual({ kind: 'file', path: join(dir, 'm.onnx') });
  });

  it('rejects malformed specs with MODEL_SOURCE_INVALID and says what is accepted', () => {
    for (const s of ['', '  ', 'hf:', 'hf:owner', 'hf:a/b/c', 'hf:a/b@', 'hf:a/b#', 'hf:a/b@../x', 'hf:a b/c', 'hf:-a/b']) {
      const e = expectError(() => parse(s), 'MODEL_SOURCE_INVALID');
      expect(e.message, s).toMatch(/hf:owner\/repo/);
    }
    const plain = expectError(() => parse('http://example.com/m.onnx'), 'MODEL_SOURCE_INVALID');
    expect(plain.message).toContain('use https');
    expect(expectError(() => parse('https://example.com/m.onnx#md5=00'), 'MODEL_SOURCE_INVALID').message).toContain('#sha256=');
    expect(expectError(() => parse('s3://bucket/m.onnx'), 'MODEL_SOURCE_INVALID').message).toContain('"s3://"');
  });

  it('an unknown bare name is MODEL_UNKNOWN_BUILTIN listing the builtins; a missing path is FILE_NOT_FOUND', () => {
    const e = expectError(() => parse('resnet9000'), 'MODEL_UNKNOWN_BUILTIN');
    expect(e.message).toContain('mobilenet_v2, inception_v3');
    expect(e.message).toContain('hf:owner/repo');
    expect(e.message).toContain('.onnx');
    const f = expectError(() => parse('./missing.onnx'), 'FILE_NOT_FOUND');
    expect(f.message).toContain(join(dir, 'missing.onnx'));
    const r = expectError(() => parse('google/vit-base'), 'FILE_NOT_FOUND');
    expect(r.message).toContain('hf:google/vit-base');
  });
});

describe('resolveModel (local sources)', () => {
  let dir: string;
  let cache: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'graft-src-'));
    cache = join(dir, 'cache');
  });

  it('loads an .onnx file; the id is the sha256 of its bytes', async () => {
    const path = join(dir, 'm.onnx');
    saveModel(tinyClassifier(3), path);
    const r = await resolveModel(path, { cacheDir: cache, offline: true });
    expect(r.kind).toBe('file');
    expect(r.modelPath).toBe(path);
    expect(r.id).toBe(sha(readFileSync(path)));
    expect(r.model.graph.initializers.size).toBe(4);
    expect(r.labels).toBeUndefined();
    expect(r.preprocess).toBeUndefined();
  });

  it('loads an .onnx file with external data; new weights in the data file give a new id', async () => {
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    // saveModel does not create the directory for its external data temp file
    mkdirSync(a);
    mkdirSync(b);
    saveModel(tinyClassifier(1), join(a, 'model.onnx'), { externalData: true });
    // only w1 (the one tensor ≥ 1 KiB) goes external: change just it
    const other = tinyClassifier(1);
    other.graph.initializers.set('w1', tinyClassifier(2).graph.initializers.get('w1')!);
    saveModel(other, join(b, 'model.onnx'), { externalData: true });
    // identical .onnx bytes; only model.onnx.data differs
    expect(sha(readFileSync(join(a, 'model.onnx')))).toBe(sha(readFileSync(join(b, 'model.onnx'))));
    const ra = await resolveModel(join(a, 'model.onnx'), { cacheDir: cache });
    const rb = await resolveModel(join(b, 'model.onnx'), { cacheDir: cache });
    const w1 = (r: typeof ra) => Array.from(r.model.graph.initializers.get('w1')!.data as Float32Array);
    expect(w1(ra)).toEqual(Array.from(tinyClassifier(1).graph.initializers.get('w1')!.data as Float32Array));
    expect(w1(ra)).not.toEqual(w1(rb));
    expect(ra.id).not.toBe(rb.id);
    expect(ra.id).toMatch(/^[0-9a-f]{64}$/);
    // and stable
    expect((await resolveModel(join(a, 'model.onnx'), { cacheDir: cache })).id).toBe(ra.id);
  });

  it('a graft output directory: ONNX metadata beats labels.json', async () => {
    const out = join(dir, 'run1');
    const m = tinyClassifier(1);
    writeLabels(m, ['from-metadata-0', 'from-metadata-1']);
    writePreprocess(m, { ...IMAGENET_DEFAULT, inputSize: [8, 8] });
    saveModel(m, join(out, 'model.onnx'));
    writeFileSync(join(out, 'labels.json'), JSON.stringify(['x', 'y']));
    writeFileSync(join(out, 'metrics.json'), '{}');
    const r = await resolveModel(out, { cacheDir: cache });
    expect(r.kind).toBe('dir');
    expect(r.modelPath).toBe(join(out, 'model.onnx'));
    expect(r.labels).toEqual(['from-metadata-0', 'from-metadata-1']);
    expect(r.preprocess).toEqual({ ...IMAGENET_DEFAULT, inputSize: [8, 8] });
  });

  it('a graft output directory without metadata falls back to labels.json', async () => {
    const out = join(dir, 'run2');
    saveModel(tinyClassifier(1), join(out, 'model.onnx'));
    writeFileSync(join(out, 'labels.json'), JSON.stringify(['x', 'y']));
    const r = await resolveModel(out, { cacheDir: cache });
    expect(r.labels).toEqual(['x', 'y']);
    expect(r.preprocess).toBeUndefined();
  });

  it('a local clone of a Hugging Face repo: onnx/model.onnx + config.json + preprocessor_config.json', async () => {
    const clone = join(dir, 'clone');
    saveModel(tinyClassifier(1), join(clone, 'onnx', 'model.onnx'));
    writeFileSync(join(clone, 'config.json'), JSON.stringify(HF_CONFIG));
    writeFileSync(join(clone, 'preprocessor_config.json'), JSON.stringify(HF_PREPROCESSOR));
    writeFileSync(join(clone, 'labels.json'), JSON.stringify(['lower', 'precedence']));
    const r = await resolveModel(clone, { cacheDir: cache });
    expect(r.modelPath).toBe(join(clone, 'onnx', 'model.onnx'));
    expect(r.labels).toEqual(['cat', 'dog']);
    expect(r.preprocess).toMatchObject({ inputSize: [8, 8], resize: 'squash', interpolation: 'bicubic', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    expect(r.preprocess!.rescale).toBeCloseTo(1 / 255, 12);
  });

  it('a config.json without id2label says nothing about labels; labels.json still counts', async () => {
    const clone = join(dir, 'clone2');
    saveModel(tinyClassifier(1), join(clone, 'model.onnx'));
    writeFileSync(join(clone, 'config.json'), JSON.stringify({ architectures: ['X'] }));
    writeFileSync(join(clone, 'labels.json'), JSON.stringify(['x', 'y']));
    expect((await resolveModel(clone, { cacheDir: cache })).labels).toEqual(['x', 'y']);
  });

  it('a directory without a model is FILE_NOT_FOUND saying what it looked for', async () => {
    mkdirSync(join(dir, 'empty'));
    const e = await expectRejects(resolveModel(join(dir, 'empty'), { cacheDir: cache }), 'FILE_NOT_FOUND');
    expect(e.message).toContain('model.onnx');
    expect(e.message).toContain('onnx/model.onnx');
  });

  it('a file that is not ONNX is MODEL_INVALID', async () => {
    writeFileSync(join(dir, 'labels.onnx'), JSON.stringify(['a']));
    await expectRejects(resolveModel(join(dir, 'labels.onnx'), { cacheDir: cache }), 'MODEL_INVALID');
  });

  it('a builtin goes through the resolver with the cache dir, and passes its progress on', async () => {
    const builtins = fakeBuiltins(dir);
    const events: unknown[] = [];
    const r = await resolveModel('inception_v3', { builtinResolver: builtins, cacheDir: cache, onProgress: (e) => events.push(e) });
    expect(builtins.calls).toEqual([{ name: 'inception_v3', cacheDir: cache }]);
    expect(r.kind).toBe('builtin');
    expect(r.modelPath).toBe(join(dir, 'inception_v3.onnx'));
    expect(r.labels).toEqual(['drawing', 'neutral']);
    expect(events).toEqual([{ phase: 'convert', fraction: 1 }]);
  });
});

describe('resolveModel (the real builtins)', () => {
  it('mobilenet_v2 converts once into the cache and carries its labels and preprocessing', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'graft-builtin-'));
    const phases: string[] = [];
    const r = await resolveModel('mobilenet_v2', { cacheDir: cache, offline: true, onProgress: (e) => phases.push(e.phase) });
    expect(r.kind).toBe('builtin');
    expect(r.modelPath.startsWith(join(cache, 'builtins'))).toBe(true);
    expect(r.labels).toEqual(['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy']);
    expect(r.preprocess).toMatchObject({ inputSize: [224, 224], resize: 'squash' });
    expect(r.id).toBe(sha(readFileSync(r.modelPath)));
    expect(phases).toContain('convert');
    const again = await resolveModel('mobilenet_v2', { cacheDir: cache, offline: true });
    expect(again.id).toBe(r.id);
  });
});
