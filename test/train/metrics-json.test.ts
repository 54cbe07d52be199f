import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isGraftError } from '../../src/errors.js';
import { classificationMetrics } from '../../src/train/metrics.js';
import { buildMetricsJson, formatMetricsJson, parseMetricsJson, readMetricsJson, writeMetricsJson } from '../../src/train/metrics-json.js';
import type { MetricsJson } from '../../src/train/metrics-json.js';

const dir = mkdtempSync(join(tmpdir(), 'graft-metrics-json-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// a class name with a real newline and brackets, so the compact formatter would corrupt it if it could
const classes = ['cat', 'dog', '[1,\n 2]'];
const probs = new Float32Array([0.8, 0.1, 0.1, 0.3, 0.6, 0.1, 0.7, 0.2, 0.1, 0.2, 0.2, 0.6]);
const labels = [0, 1, 1, 2];
const val = classificationMetrics(probs, labels, 3);

function sample(over: Partial<Parameters<typeof buildMetricsJson>[0]> = {}): MetricsJson {
  return buildMetricsJson({
    mode: 'head',
    model: 'builtin:mobilenet_v2',
    featureLayer: 'pool',
    classes,
    n: { train: 40, val: 4 },
    val,
    valPaths: ['a.jpg', 'b.jpg', 'c "q".jpg', 'd.jpg'],
    history: [
      { epoch: 1, trainLoss: 1.2, trainAccuracy: 0.5, valLoss: 1.1, valAccuracy: 0.5, lr: 1e-3, seconds: 0.4 },
      { epoch: 2, trainLoss: 0.7, trainAccuracy: 0.8, valLoss: 0.9, valAccuracy: 0.75, lr: 5e-4, seconds: 0.4 },
    ],
    bestEpoch: 2,
    seconds: 3.5,
    skipped: [{ path: 'bad.jpg', code: 'IMAGE_UNREADABLE', message: 'truncated' }],
    config: { epochs: 2, lr: 1e-3, optimizer: 'adamw', hidden: null },
    createdAt: new Date('2025-01-02T03:04:05Z'),
    ...over,
  });
}

describe('metrics.json', () => {
  it('puts validation metrics at the top level, per class in class order, worst items named by path', () => {
    const m = sample();
    expect(m.schemaVersion).toBe(1);
    expect(m.createdAt).toBe('2025-01-02T03:04:05.000Z');
    expect(m.accuracy).toBe(0.75);
    expect(m.confusion).toEqual([
      [1, 0, 0],
      [1, 1, 0],
      [0, 0, 1],
    ]);
    expect(m.perClass?.map((c) => [c.label, c.support])).toEqual([
      ['cat', 1],
      ['dog', 2],
      ['[1,\n 2]', 1],
    ]);
    expect(m.perClass?.[0]).toMatchObject({ precision: 0.5, recall: 1 });
    expect(m.worst).toEqual([{ path: 'c "q".jpg', trueLabel: 'dog', predLabel: 'cat', probability: Math.fround(0.7) }]);
    expect(m.n).toEqual({ train: 40, val: 4 });
  });

  it('has nulls, not numbers, when there is no validation set', () => {
    const m = sample({ val: null, n: { train: 44, val: 0 } });
    expect([m.accuracy, m.loss, m.confusion, m.perClass, m.macro, m.weighted, m.topK]).toEqual([null, null, null, null, null, null, null]);
    expect(m.worst).toEqual([]);
    expect(parseMetricsJson(formatMetricsJson(m))).toEqual(m);
  });

  it('keeps number arrays on one line and round-trips exactly', () => {
    const m = sample();
    const text = formatMetricsJson(m);
    expect(text).toContain('[1, 0, 0]');
    expect(text.split('\n').length).toBeLessThan(JSON.stringify(m, null, 2).split('\n').length);
    expect(parseMetricsJson(text)).toEqual(m);
  });

  it('writes atomically and reads back from the file or its directory', () => {
    const m = sample();
    const path = writeMetricsJson(dir, m);
    expect(path).toBe(join(dir, 'metrics.json'));
    expect(readdirSync(dir)).toEqual(['metrics.json']);
    expect(readMetricsJson(path)).toEqual(m);
    expect(readMetricsJson(dir)).toEqual(m);
  });

  it('refuses malformed files with METRICS_INVALID and says what is wrong', () => {
    const good = JSON.parse(formatMetricsJson(sample()));
    const cases: [string, RegExp][] = [
      ['{nope', /not valid JSON/],
      ['[]', /not a JSON object/],
      [JSON.stringify({ ...good, schemaVersion: 2 }), /newer.*upgrade graft/],
      [JSON.stringify({ ...good, schemaVersion: undefined }), /schemaVersion undefined/],
      [JSON.stringify({ ...good, mode: 'train' }), /"mode"/],
      [JSON.stringify({ ...good, confusion: [[1, 0], [0, 1]] }), /"confusion"/],
      [JSON.stringify({ ...good, perClass: good.perClass.slice(1) }), /"perClass"/],
      [JSON.stringify({ ...good, history: [{ epoch: 1 }] }), /"history"/],
      [JSON.stringify({ ...good, skipped: [{ path: 'x' }] }), /"skipped"/],
    ];
    for (const [text, msg] of cases) {
      let err: unknown;
      try {
        parseMetricsJson(text, 'OUT/metrics.json');
      } catch (e) {
        err = e;
      }
      expect(isGraftError(err, 'METRICS_INVALID'), text.slice(0, 40)).toBe(true);
      expect((err as Error).message).toMatch(msg);
      expect((err as Error).message).toContain('OUT/metrics.json');
    }
    const missing = join(dir, 'nowhere', 'metrics.json');
    expect(() => readMetricsJson(missing)).toThrow(/does not exist/);
    writeFileSync(join(dir, 'broken.json'), '{"schemaVersion":1}');
    expect(() => readMetricsJson(join(dir, 'broken.json'))).toThrow(/missing or malformed "mode"/);
    expect(readFileSync(join(dir, 'broken.json'), 'utf8')).toBe('{"schemaVersion":1}');
  });

  it('refuses class names that do not match the metrics, and paths out of prediction order', () => {
    expect(() => sample({ classes: ['a', 'b'] })).toThrow(/3 classes but 2 class names/);
    expect(() => sample({ valPaths: ['a.jpg'] })).toThrow(/1 validation paths were given for 4 predictions/);
  });
});
