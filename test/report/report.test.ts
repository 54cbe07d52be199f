import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderReport, writeReport } from '../../src/report/index.js';
import { classificationMetrics } from '../../src/train/metrics.js';
import { buildMetricsJson } from '../../src/train/metrics-json.js';
import type { EpochRecord, MetricsJson } from '../../src/train/metrics-json.js';

const dir = mkdtempSync(join(tmpdir(), 'graft-report-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HOSTILE = '<script>alert(1)</script>';
const classes = ['cat', HOSTILE, 'dog & "friends"'];
const paths = {
  rotated: join(dir, 'rotated.jpg'),
  quoted: join(dir, `it's "quoted" <b>.png`),
  missing: join(dir, 'gone.jpg'),
  corrupt: join(dir, 'corrupt.jpg'),
};

function history(epochs: number, withVal = true): EpochRecord[] {
  return Array.from({ length: epochs }, (_, e) => ({
    epoch: e + 1,
    trainLoss: 1 / (e + 1),
    trainAccuracy: 0.5 + e * 0.1,
    valLoss: withVal ? 1.2 / (e + 1) : null,
    valAccuracy: withVal ? 0.45 + e * 0.1 : null,
    lr: 1e-3 / (e + 1),
    seconds: 0.25,
  }));
}

/*
 * 6 validation items, hand-checkable: confusion [[2,0,0],[1,1,0],[0,1,1]], accuracy 4/6, and the three
 * mistakes, worst first, are items 4 (0.7), 2 (0.6), and none else.
 */
const probs = new Float32Array([0.9, 0.05, 0.05, 0.8, 0.1, 0.1, 0.6, 0.3, 0.1, 0.2, 0.7, 0.1, 0.1, 0.7, 0.2, 0.1, 0.1, 0.8]);
const labels = [0, 0, 1, 1, 2, 2];
const valPaths = [join(dir, 'v0.jpg'), join(dir, 'v1.jpg'), paths.rotated, join(dir, 'v3.jpg'), paths.quoted, join(dir, 'v5.jpg')];

function metrics(over: Partial<Parameters<typeof buildMetricsJson>[0]> = {}): MetricsJson {
  return buildMetricsJson({
    mode: 'head',
    model: 'builtin:<b>model</b>',
    featureLayer: 'pool"ed',
    classes,
    n: { train: 60, val: 6 },
    val: classificationMetrics(probs, labels, 3),
    valPaths,
    history: history(3),
    bestEpoch: 3,
    seconds: 75,
    skipped: [{ path: join(dir, `bad "one" <i>.jpg`), code: 'IMAGE_UNREADABLE', message: 'truncated <data>' }],
    config: { epochs: 3, lr: 1e-3, optimizer: 'adamw', hidden: null, note: '</script>' },
    createdAt: new Date('2025-05-06T07:08:09Z'),
    ...over,
  });
}

beforeAll(async () => {
  // stored 80 × 40 with EXIF orientation 6: upright it is 40 × 80
  await sharp({ create: { width: 80, height: 40, channels: 3, background: { r: 200, g: 30, b: 30 } } })
    .jpeg()
    .withMetadata({ orientation: 6 })
    .toFile(paths.rotated);
  await sharp({ create: { width: 300, height: 200, channels: 4, background: { r: 0, g: 90, b: 200, alpha: 0.5 } } })
    .png()
    .toFile(paths.quoted);
  writeFileSync(paths.corrupt, Buffer.from('not an image at all'));
});

function attributeUrls(html: string): string[] {
  return [...html.matchAll(/\s(?:src|href|action|formaction|poster|srcset|data|background)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)/gi)].map((m) => m[1].replace(/^["']|["']$/g, ''));
}

function scripts(html: string): string[] {
  return [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]);
}

describe('renderReport', () => {
  let html: string;
  beforeAll(async () => {
    html = await renderReport(metrics(), { worst: [...metrics().worst, { path: paths.missing, trueLabel: 'cat', predLabel: 'dog & "friends"', probability: 0.55 }, { path: paths.corrupt, trueLabel: 'cat', predLabel: HOSTILE, probability: 0.51 }] });
  });

  it('shows the summary numbers, the per-class table and the confusion matrix', () => {
    expect(html).toContain('66.67%'); // accuracy 4/6, two decimals in the summary
    expect(html).toContain('4 of 6 right');
    expect(html).toContain(`>${(-(Math.log(0.9) + Math.log(0.8) + Math.log(0.3) + Math.log(0.7) + Math.log(0.2) + Math.log(0.8)) / 6).toFixed(4)}<`);
    expect(html).toContain('60 / 6');
    expect(html).toContain('1 min 15 s');
    expect(html).toMatch(/Rows are the <b>true<\/b> class/);
    // row "cat": 2 right of 2 → top shade; row hostile: 1 right, 1 as cat
    expect(html).toMatch(/<td class="d8" title="true cat → predicted cat: 2 \(100\.0% of cat\)">2/);
    expect(html).toContain('title="true &lt;script&gt;alert(1)&lt;/script&gt; → predicted cat: 1 (50.0% of &lt;script&gt;alert(1)&lt;/script&gt;)">1');
    // precision of cat = 2/3, recall 1
    expect(html).toMatch(/<th scope="row">cat<\/th><td data-v="0\.666666\d*" class="bar" style="--v:66\.7%">66\.7%<\/td><td data-v="1"/);
    expect(html).toContain('macro average');
  });

  it('makes no request: only data: and # URLs, a strict CSP whose hashes match the inline scripts', () => {
    const urls = attributeUrls(html);
    expect(urls.length).toBeGreaterThan(5);
    for (const u of urls) expect(u.startsWith('data:') || u.startsWith('#'), u.slice(0, 60)).toBe(true);
    expect(html).not.toMatch(/<link|<iframe|<object|<embed|@import|url\((?!data:)/i);
    const csp = /http-equiv="Content-Security-Policy" content="([^"]*)"/.exec(html)?.[1] ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain('img-src data:');
    const code = scripts(html);
    expect(code).toHaveLength(2);
    for (const c of code) expect(csp).toContain(`'sha256-${createHash('sha256').update(c).digest('base64')}'`);
    expect(code[0]).toContain('uPlot');
  });

  it('escapes class names, paths, model names, messages and settings', () => {
    expect(html).not.toContain(HOSTILE);
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html.match(/<script/g)).toHaveLength(3); // the JSON data block and the two scripts
    expect(html).not.toContain('<b>model</b>');
    expect(html).toContain('builtin:&lt;b&gt;model&lt;/b&gt;');
    expect(html).toContain('pool&quot;ed');
    expect(html).toContain('dog &amp; &quot;friends&quot;');
    expect(html).toContain(`title="${join(dir, 'it&#39;s &quot;quoted&quot; &lt;b&gt;.png')}"`);
    expect(html).not.toContain('<b>.png');
    expect(html).toContain('bad &quot;one&quot; &lt;i&gt;.jpg');
    expect(html).toContain('truncated &lt;data&gt;');
    expect(html).toContain('&lt;/script&gt;'); // config value
    expect(html).not.toContain('<i>');
  });

  it('embeds upright WebP thumbnails of the images and a placeholder for unreadable ones', async () => {
    const thumbs = [...html.matchAll(/<img src="data:image\/webp;base64,([A-Za-z0-9+/=]+)"/g)].map((m) => Buffer.from(m[1], 'base64'));
    expect(thumbs).toHaveLength(2);
    const sizes = await Promise.all(thumbs.map(async (b) => sharp(b).metadata()));
    // worst first: the PNG (0.7), then the rotated JPEG (0.6), shown upright and never enlarged
    expect([sizes[0].width, sizes[0].height]).toEqual([96, 64]);
    expect([sizes[1].width, sizes[1].height]).toEqual([40, 80]);
    const { data } = await sharp(thumbs[1]).raw().toBuffer({ resolveWithObject: true });
    expect(data[0]).toBeGreaterThan(150); // red, as drawn
    expect(data[2]).toBeLessThan(90);
    for (const b of thumbs) expect(b.length).toBeLessThan(3000);
    const placeholders = [...html.matchAll(/<div class="ph" title="([^"]*)">no preview<\/div>/g)].map((m) => m[1]);
    expect(placeholders).toHaveLength(2);
    expect(placeholders[0]).toMatch(/does not exist/);
    expect(placeholders[1]).toMatch(/not an image/);
    expect(html).toMatch(/<span class="truth">cat<\/span> → <span class="pred">&lt;script&gt;alert\(1\)&lt;\/script&gt;<\/span><br><b>51\.0%<\/b>/);
  });

  it('lets the page scale tiny images up with crisp pixels instead of storing them larger', async () => {
    const tiny = join(dir, 'tiny.png');
    await sharp({ create: { width: 8, height: 6, channels: 3, background: { r: 0, g: 0, b: 0 } } }).png().toFile(tiny);
    const h = await renderReport(metrics(), { worst: [{ path: tiny, trueLabel: 'cat', predLabel: 'dog', probability: 0.9 }, { path: paths.quoted, trueLabel: 'cat', predLabel: 'dog', probability: 0.8 }] });
    const imgs = [...h.matchAll(/<img src="data:image\/webp;base64,([^"]+)"( class="px")?/g)];
    expect(imgs.map((m) => m[2] !== undefined)).toEqual([true, false]);
    const meta = await sharp(Buffer.from(imgs[0][1], 'base64')).metadata();
    expect([meta.width, meta.height]).toEqual([8, 6]);
  });

  it('carries the per-epoch numbers for the charts', () => {
    const data = JSON.parse(/<script type="application\/json" id="graft-data">([^<]*)<\/script>/.exec(html)?.[1] ?? 'null');
    const h = history(3);
    expect(data).toEqual({
      epochs: [1, 2, 3],
      trainLoss: h.map((e) => e.trainLoss),
      trainAcc: h.map((e) => e.trainAccuracy),
      valLoss: h.map((e) => e.valLoss),
      valAcc: h.map((e) => e.valAccuracy),
      lr: h.map((e) => e.lr),
      hasVal: true,
      bestEpoch: 3,
      lrFind: null,
    });
    expect(data.valLoss[2]).toBeCloseTo(0.4, 12);
    expect(html).toContain('id="chart-loss"');
    expect(html).toContain('id="chart-acc"');
    expect(html).not.toContain('id="chart-lrfind"');
  });

  it('plots the learning-rate range test when the run did one', async () => {
    const lrFind = { lrs: [1e-7, 1e-5, 1e-3, 1e-1], losses: [2.3, 2.2, 1.1, 9.5], suggestion: 1e-4 };
    const h = await renderReport({ ...metrics(), lrFind });
    const data = JSON.parse(/<script type="application\/json" id="graft-data">([^<]*)<\/script>/.exec(h)?.[1] ?? 'null');
    expect(data.lrFind).toEqual(lrFind);
    expect(h).toContain('id="chart-lrfind"');
    expect(h).toContain('suggested 1.00e-4');
  });

  it('says so when there is no validation set, and draws training curves only', async () => {
    const h = await renderReport(metrics({ val: null, n: { train: 66, val: 0 }, history: history(1, false) }));
    expect(h).toContain('This run had no validation set');
    expect(h).toContain('No validation set: the curves show training numbers only.');
    expect(h).toContain('A single epoch');
    expect(h).not.toContain('id="confusion"');
    expect(h).not.toContain('id="worst"');
    expect(h).not.toContain('<img');
    expect(h).not.toContain('Validation accuracy');
    const data = JSON.parse(/id="graft-data">([^<]*)</.exec(h)?.[1] ?? 'null');
    expect(data.hasVal).toBe(false);
    expect(data.bestEpoch).toBeNull();
  });

  it('says there is no history for an evaluation run', async () => {
    const h = await renderReport(metrics({ mode: 'eval', history: [], bestEpoch: null, n: { train: 0, val: 6 } }));
    expect(h).toContain('No training history: this is an evaluation run.');
    expect(h).toContain('id="confusion"');
  });

  it('names the columns for 2 classes and numbers them compactly for 100 classes', async () => {
    const two = await renderReport(
      buildMetricsJson({ mode: 'head', model: 'm', classes: ['ants', 'bees'], n: { train: 8, val: 2 }, val: classificationMetrics(new Float32Array([0.9, 0.1, 0.4, 0.6]), [0, 1], 2), history: history(2), seconds: 1 }),
    );
    expect(two).toMatch(/<th title="ants"><span>ants<\/span><\/th><th title="bees"><span>bees<\/span><\/th>/);
    expect(two).toContain('100.00%');

    const K = 100;
    const n = 1000;
    const p = new Float32Array(n * K);
    const y: number[] = [];
    for (let i = 0; i < n; i++) {
      y.push(i % K);
      // every 7th item is confused with the next class
      p[i * K + ((i % K) + (i % 7 === 0 ? 1 : 0)) % K] = 0.9;
      for (let j = 0; j < K; j++) p[i * K + j] += 0.1 / K;
    }
    const names = Array.from({ length: K }, (_, i) => `class number ${i}`);
    const big = await renderReport(buildMetricsJson({ mode: 'finetune', model: 'm', classes: names, n: { train: 4000, val: n }, val: classificationMetrics(p, y, K), history: history(20), seconds: 100 }));
    expect(big).toContain('scroll matrix compact');
    expect(big).toContain('<th title="class number 99">99</th>');
    const rows = /<table class="confusion">[\s\S]*?<\/table>/.exec(big)?.[0].match(/<th scope="row">/g);
    expect(rows).toHaveLength(K);
    for (const name of names) expect(big).toContain(`>${name}</th>`);
    expect(big).toContain('Top-5 accuracy');
    // the library, the styles and a 100 × 100 matrix; no thumbnails (no paths)
    expect(big.length).toBeLessThan(250_000);
  });

  it('stays modest in size: the library plus a few kB per thumbnail', () => {
    expect(html.length).toBeLessThan(90_000);
  });
});

describe('writeReport', () => {
  it('writes OUT/report.html atomically, creating the directory', async () => {
    const out = join(dir, 'out', 'run1');
    const m = metrics();
    const path = await writeReport(out, m);
    expect(path).toBe(join(out, 'report.html'));
    expect(readdirSync(out)).toEqual(['report.html']);
    expect(readFileSync(path, 'utf8')).toBe(await renderReport(m));
    // overwriting leaves no temp file either
    await writeReport(out, m, { title: 'second' });
    expect(readdirSync(out)).toEqual(['report.html']);
    expect(readFileSync(path, 'utf8')).toContain('<title>second</title>');
  });
});

/*
 * A real browser: every script runs under the CSP, nothing logs to the console, the charts are
 * canvases. Skipped where Debian's chromium is not installed; CI does not depend on it.
 */
const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

describe.skipIf(!chromium)('report in headless Chromium', () => {
  it('renders with no console message and draws the charts', async () => {
    const out = join(dir, 'browser');
    mkdirSync(out, { recursive: true });
    const path = await writeReport(out, metrics(), { worst: [...metrics().worst, { path: paths.missing, trueLabel: 'cat', predLabel: HOSTILE, probability: 0.5 }] });
    const profile = mkdtempSync(join(tmpdir(), 'graft-chromium-'));
    try {
      const r = spawnSync(
        chromium as string,
        ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', `--user-data-dir=${profile}`, '--enable-logging=stderr', '--v=0', '--window-size=1200,900', '--dump-dom', pathToFileURL(path).href],
        { encoding: 'utf8', timeout: 90_000 },
      );
      expect(r.status, r.stderr).toBe(0);
      const consoleLines = r.stderr.split('\n').filter((l) => /CONSOLE/.test(l));
      expect(consoleLines).toEqual([]);
      // uPlot draws each chart in a canvas: loss, accuracy and the varying learning rate
      expect(r.stdout.match(/<canvas/g)?.length).toBe(3);
      expect(r.stdout).toMatch(/<div id="graft-error" class="error" role="alert" hidden=""><\/div>/);
      expect(r.stdout).toContain('class="u-legend');
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
