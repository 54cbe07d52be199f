import { CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { preprocessFlags } from '../../src/cli/common.js';
import { EXIT, EXIT_CODES, exitCodeFor, reportError } from '../../src/cli/errors.js';
import { PredictTable, percent } from '../../src/cli/predict.js';
import { itemProgress } from '../../src/cli/progress.js';
import { summary } from '../../src/cli/train.js';
import { buildMetricsJson, type EpochRecord } from '../../src/train/metrics-json.js';
import { classificationMetrics } from '../../src/train/metrics.js';
import { ERROR_CODES, GraftError, type GraftErrorCode } from '../../src/errors.js';

describe('exit codes', () => {
  it('maps every GraftError code explicitly', () => {
    const missing = (Object.keys(ERROR_CODES) as GraftErrorCode[]).filter((c) => EXIT_CODES[c] === undefined);
    expect(missing, 'add these codes to EXIT_CODES in src/cli/errors.ts (and its table)').toEqual([]);
  });

  it('groups codes by kind', () => {
    expect(exitCodeFor(new GraftError('INVALID_ARGUMENT', 'x'))).toBe(2);
    expect(exitCodeFor(new GraftError('IMAGE_UNREADABLE', 'x'))).toBe(3);
    expect(exitCodeFor(new GraftError('MODEL_UNSUPPORTED', 'x'))).toBe(4);
    expect(exitCodeFor(new GraftError('OFFLINE_CACHE_MISS', 'x'))).toBe(5);
    expect(exitCodeFor(new GraftError('RUNTIME_CRASHED', 'x'))).toBe(6);
    expect(exitCodeFor(new GraftError('ABORTED', 'x'))).toBe(130);
    expect(exitCodeFor(new CommanderError(1, 'commander.unknownOption', 'x'))).toBe(EXIT.USAGE);
    expect(exitCodeFor(new TypeError('bug'))).toBe(1);
  });

  it('prints one line, a stack only with GRAFT_DEBUG', () => {
    let out = '';
    const w = (s: string) => void (out += s);
    expect(reportError(new GraftError('FILE_EMPTY', 'Image a.jpg is empty.'), w, {})).toBe(3);
    expect(out).toBe('graft: Image a.jpg is empty.\n');
    out = '';
    expect(reportError(new TypeError('x is undefined'), w, {})).toBe(1);
    expect(out).toMatch(/^graft: unexpected error: x is undefined\ngraft: run again with GRAFT_DEBUG=1/);
    out = '';
    reportError(new GraftError('FILE_EMPTY', 'empty', { cause: new Error('inner') }), w, { GRAFT_DEBUG: '1' });
    expect(out).toMatch(/^graft: empty\nGraftError: empty\n\s+at /);
    expect(out).toMatch(/caused by: Error: inner/);
  });
});

describe('predict table', () => {
  it('aligns rows and marks skipped images', () => {
    const t = new PredictTable(['a.jpg', 'photos/b.png'], 7);
    expect(t.header()).toBe('IMAGE          #  LABEL    PROBABILITY');
    const rows = t.rows({ image: 'a.jpg', predictions: [{ label: 'Neutral', index: 2, probability: 0.9876 }, { label: 'Porn', index: 3, probability: 0.0004 }] });
    expect(rows).toEqual(['a.jpg          1  Neutral       98.76%', '               2  Porn           0.04%']);
    expect(t.rows({ image: 'photos/b.png', error: { code: 'FILE_EMPTY', message: 'm' } })).toEqual(['photos/b.png   -  skipped: FILE_EMPTY']);
    expect(percent(1)).toBe('100.00%');
  });
});

describe('progress', () => {
  const sink = (isTTY: boolean) => {
    const s = { text: '', isTTY, write: (x: string) => ((s.text += x), true) };
    return s;
  };

  it('is silent for a handful of items and with quiet', () => {
    for (const opts of [{ total: 5 }, { total: 500, quiet: true }]) {
      const err = sink(false);
      const p = itemProgress({ ...opts, unit: 'images', stream: err, intervalSeconds: 0 });
      for (let i = 1; i <= opts.total; i++) p.update(i, 0);
      p.stop();
      expect(err.text).toBe('');
    }
  });

  it('prints plain periodic lines when stderr is not a terminal', () => {
    const err = sink(false);
    const out = sink(false);
    const p = itemProgress({ total: 50, unit: 'images', stream: err, intervalSeconds: 0 });
    p.update(10, 1);
    p.print('row', out);
    p.stop();
    expect(out.text).toBe('row\n');
    expect(err.text).toMatch(/^graft: 10\/50 images, 1 failed, [\d.]+\/s, ETA \S+\n/);
  });
});

describe('preprocessing flags', () => {
  it('passes what was given, and --crop-pct implies the crop', () => {
    expect(preprocessFlags({})).toEqual({});
    expect(preprocessFlags({ size: [256, 320], mean: [1, 2, 3], bgr: true, layout: 'NHWC' })).toEqual({ size: [256, 320], mean: [1, 2, 3], bgr: true, layout: 'NHWC' });
    expect(preprocessFlags({ cropPct: 0.9 })).toEqual({ cropPct: 0.9, resize: 'crop' });
    expect(preprocessFlags({ cropPct: 0.9, resize: 'squash' })).toEqual({ cropPct: 0.9, resize: 'squash' });
  });
});

describe('train summary', () => {
  // two validation images, both right: a real (if tiny) metrics object
  const val = classificationMetrics(Float32Array.of(2, 0, 0, 2), [0, 1], 2, { logits: true });
  const epoch = (n: number, phase: string, valLoss: number): EpochRecord => ({ epoch: n, phase, trainLoss: 1, trainAccuracy: 0.5, valLoss, valAccuracy: 0.5, lr: 1e-3, seconds: 1 });
  const run = (history: EpochRecord[], mode: 'finetune' | 'head' = 'finetune') =>
    summary(buildMetricsJson({ mode, model: 'm', classes: ['a', 'b'], n: { train: 4, val: 2 }, val, history, bestEpoch: history.length, seconds: 1 }), 'out');
  const note = (lines: string[]) => lines.find((l) => l.startsWith('Note: fine-tuning'));

  it('says when the head warm-up had a lower validation loss than the exported fine-tuned weights', () => {
    expect(val.loss).toBeGreaterThan(0.05);
    const lines = run([epoch(1, 'head', 0.05), epoch(2, 'head', 0.04), epoch(3, 'head', 0.045), epoch(4, 'finetune', 0.9)]);
    expect(note(lines)).toContain('(0.0400 at epoch 2)');
  });

  it('stays quiet when fine-tuning did better, and in head mode', () => {
    expect(note(run([epoch(1, 'head', 5), epoch(2, 'finetune', 0.01)]))).toBeUndefined();
    expect(note(run([epoch(1, 'head', 0.01)], 'head'))).toBeUndefined();
  });
});
