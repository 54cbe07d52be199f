import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuiltin } from '../../src/models/builtins.js';
import { removeQuietly } from '../../src/util/fs.js';
import { COFFEE, EMOJI_DIR, saveTo, tinyClassifier, vectorModel } from '../tasks/fixtures.js';
import { runCli, startCli } from './run-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'graft-cli-'));
const emoji = readdirSync(EMOJI_DIR).filter((f) => f.endsWith('.png')).sort().slice(500, 502).map((f) => join(EMOJI_DIR, f));
const NSFW = ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'];

// the children share the default cache (GRAFT_CACHE in CI): convert the builtin once, up front
beforeAll(async () => {
  await ensureBuiltin('mobilenet_v2');
});
afterAll(() => removeQuietly(dir));

describe('graft predict', () => {
  it('--json prints exactly [{image, predictions: [{label, index, probability}]}], bad images as {image, error}', async () => {
    const bad = join(dir, 'bad.jpg');
    writeFileSync(bad, 'not a jpeg');
    const images = [COFFEE, bad, ...emoji];
    const r = await runCli(['predict', '--json', '--top', '3', ...images]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as unknown[];
    expect(out).toHaveLength(images.length);
    out.forEach((entry, i) => {
      const e = entry as Record<string, unknown>;
      expect(e.image).toBe(images[i]);
      if (i === 1) {
        expect(Object.keys(e)).toEqual(['image', 'error']);
        expect(Object.keys(e.error as object)).toEqual(['code', 'message']);
        expect(e.error).toMatchObject({ code: 'IMAGE_UNREADABLE' });
        return;
      }
      expect(Object.keys(e)).toEqual(['image', 'predictions']);
      const preds = e.predictions as Record<string, unknown>[];
      expect(preds).toHaveLength(3);
      for (const p of preds) {
        expect(Object.keys(p)).toEqual(['label', 'index', 'probability']);
        expect(Number.isInteger(p.index)).toBe(true);
        expect(p.label).toBe(NSFW[p.index as number]);
        expect(typeof p.probability).toBe('number');
      }
      const probs = preds.map((p) => p.probability as number);
      expect([...probs].sort((a, b) => b - a)).toEqual(probs);
    });
    expect((out[0] as { predictions: { label: string }[] }).predictions[0].label).toBe('Neutral');
    // the skipped image is reported on stderr; stdout is pure JSON
    expect(r.stderr).toMatch(/graft: skipped .*bad\.jpg: .*not an image/);
    expect(r.stderr).toMatch(/classified 3 images, skipped 1/);
  });

  it('prints a table by default, with the preprocessing and labels flags applied', async () => {
    const model = saveTo(dir, 'tiny.onnx', tinyClassifier({ W: [[1, 0, 0], [0, 1, 0], [0, 0, 1]], b: [0, 0, 0] }));
    const labels = join(dir, 'labels.txt');
    writeFileSync(labels, 'red\ngreen\nblue\n');
    const r = await runCli(['predict', '--model', model, '--labels', labels, '--mean', '0', '--std', '1', '-k', '2', COFFEE]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^IMAGE\s+#\s+LABEL\s+PROBABILITY$/);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(new RegExp(`^${COFFEE.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s+1\\s+(red|green|blue)\\s+\\d+\\.\\d\\d%$`));
    expect(lines[2]).toMatch(/^\s+2\s+(red|green|blue)\s+\d+\.\d\d%$/);
    expect(r.stderr).toBe('');
  });

  it('exits non-zero with one line for fatal problems, by kind', async () => {
    const junk = join(dir, 'junk.onnx');
    writeFileSync(junk, 'garbage');
    const vector = saveTo(dir, 'vector.onnx', vectorModel());
    const emptyCache = mkdtempSync(join(dir, 'cache-'));
    const cases: [string[], number, RegExp][] = [
      [['predict', '--model', 'resnet_9000', COFFEE], 4, /not a builtin model/],
      [['predict', '--model', junk, COFFEE], 4, /is not an ONNX model/],
      [['predict', '--model', vector, COFFEE], 4, /rank 2/],
      [['predict', join(dir, 'missing.jpg')], 3, /does not exist/],
      [['predict', '--top', 'three', COFFEE], 2, /--top must be a whole number/],
      [['predict', '--no-such-flag', COFFEE], 2, /unknown option '--no-such-flag'/],
      [['--offline', '--cache-dir', emptyCache, 'predict', '--model', 'hf:acme/classifier', COFFEE], 5, /Offline mode is on/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args)));
    results.forEach((r, i) => {
      const [args, code, message] = cases[i];
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect(r.stderr).toMatch(/^graft: /);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/^\s+at /m); // no stack trace
    });
  });

  it('shows the stack with GRAFT_DEBUG=1', async () => {
    const r = await runCli(['predict', '--model', 'resnet_9000', COFFEE], { GRAFT_DEBUG: '1' });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/^\s+at /m);
  });

  it('Ctrl-C stops cleanly: exit 130, and the JSON printed so far is still well formed', async () => {
    const many = join(dir, 'many');
    mkdirSync(many);
    for (let i = 0; i < 400; i++) copyFileSync(COFFEE, join(many, `${String(i).padStart(3, '0')}.jpg`));
    const run = startCli(['predict', '--json', '--batch', '4', '--threads', '1', many]);
    await run.firstOutput;
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/interrupted/);
    const out = JSON.parse(r.stdout) as unknown[];
    expect(out.length).toBeGreaterThan(0);
    expect(out.length).toBeLessThan(400);
  });
});

describe('graft inspect', () => {
  it('--json: the report of the default builtin', async () => {
    const r = await runCli(['inspect', 'mobilenet_v2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(report).toMatchObject({
      spec: 'mobilenet_v2',
      source: 'builtin',
      inputs: [{ name: 'input_1', shape: ['N', 3, 224, 224] }],
      params: { total: 2_619_461 },
      classifier: { numClasses: 5, outputKind: 'probabilities' },
      labels: { count: 5 },
    });
    expect((report.featureLayers as unknown[]).length).toBeGreaterThan(50);
  });

  it('prints a readable report', async () => {
    const r = await runCli(['inspect', 'mobilenet_v2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^inputs\n {2}input_1 +float32 +\[N, 3, 224, 224\]$/m);
    expect(r.stdout).toMatch(/^classifier +5 classes from output "dense_3", probabilities/m);
    expect(r.stdout).toMatch(/^parameters +2,619,461 /m);
    expect(r.stdout).toMatch(/flatten_1 +Flatten +\[N, 1280\]/);
  });
});
