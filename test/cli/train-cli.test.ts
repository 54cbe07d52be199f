/**
 * `graft train` and `graft eval` as a user runs them, on real images made at test time, and every bad
 * input of scenario 2: an empty folder, one class, a class with no readable images, bad files among
 * good ones (skipped and reported; the run goes on), duplicates across classes (warned), eval labels the
 * model does not know, and an existing OUT.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readMetricsJson } from '../../src/train/metrics-json.js';
import { makeEmojiDataset } from '../helpers/emoji.js';
import { runCli } from './run-cli.js';

let root: string;
let data: string;
const env = () => ({ GRAFT_CACHE: join(root, 'cache') });

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'graft-train-cli-'));
  data = join(root, 'data');
  await makeEmojiDataset(data, { categories: ['Flags', 'Smileys & Emotion', 'Food & Drink'], perClass: 16, seed: 2 });
  // bad files among good ones: they must be skipped, counted and listed, and the run go on
  writeFileSync(join(data, 'Flags', 'zz-empty.png'), '');
  writeFileSync(join(data, 'Food & Drink', 'zz-not-an-image.jpg'), 'this is text, not a JPEG');
}, 120_000);

describe('graft train (CLI)', () => {
  it('trains a head, skips and lists bad files, prints a summary; eval on the same folder works', async () => {
    const out = join(root, 'out');
    const r = await runCli(['train', data, '--out', out, '--epochs', '5', '--seed', '1'], env());
    expect(r.stderr).toContain('3 classes');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Validation accuracy \d+\.\d%/);
    expect(r.stdout).toContain(`${out}/model.onnx`);
    const m = readMetricsJson(out);
    expect(m.skipped.map((s) => s.code).sort()).toEqual(['FILE_EMPTY', 'IMAGE_UNREADABLE']);
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('zz-not-an-image.jpg');

    const ev = await runCli(['eval', out, data, '--json'], env());
    expect(ev.code, ev.stderr).toBe(0);
    const em = JSON.parse(ev.stdout);
    expect(em.mode).toBe('eval');
    expect(em.n.val).toBe(48);
    expect(em.skipped).toHaveLength(2);
    expect(em.confusion.flat().reduce((a: number, b: number) => a + b, 0)).toBe(48);
    const text = await runCli(['eval', out, data], env());
    expect(text.stdout).toMatch(/^Accuracy \d+\.\d%/);
    expect(text.stdout).toContain('Smileys & Emotion');
  }, 300_000);

  it('refuses an existing OUT (exit 2) and an empty or one-class folder (exit 3) with clear messages', async () => {
    const existing = join(root, 'existing');
    mkdirSync(existing);
    writeFileSync(join(existing, 'x'), 'x');
    const r1 = await runCli(['train', data, '--out', existing], env());
    expect(r1.code).toBe(2);
    expect(r1.stderr).toMatch(/already exists.*--overwrite/);

    const empty = join(root, 'empty');
    mkdirSync(empty);
    const r2 = await runCli(['train', empty, '--out', join(root, 'o2')], env());
    expect(r2.code).toBe(3);
    expect(r2.stderr).toMatch(/^graft: No images found[\s\S]*\/cats\/001.jpg/);

    const one = join(root, 'one');
    mkdirSync(join(one, 'cats'), { recursive: true });
    copyFileSync(join(data, 'Flags', readdir(join(data, 'Flags'))[0]), join(one, 'cats', 'a.png'));
    const r3 = await runCli(['train', one, '--out', join(root, 'o3')], env());
    expect(r3.code).toBe(3);
    expect(r3.stderr).toMatch(/single class \("cats", 1 image\); a classifier needs at least 2/);
  }, 120_000);

  it('a class whose images are all unreadable stops the run with a message naming it', async () => {
    const bad = join(root, 'badclass');
    await makeEmojiDataset(bad, { categories: ['Flags', 'Food & Drink'], perClass: 6, seed: 4 });
    mkdirSync(join(bad, 'ghosts'));
    for (let i = 0; i < 3; i++) writeFileSync(join(bad, 'ghosts', `g${i}.png`), 'not a png');
    const r = await runCli(['train', bad, '--out', join(root, 'o4'), '--epochs', '1'], env());
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('"ghosts"');
  }, 120_000);

  it('warns about the same image in two classes', async () => {
    const dup = join(root, 'dup');
    await makeEmojiDataset(dup, { categories: ['Flags', 'Food & Drink'], perClass: 6, seed: 4 });
    const f = readdir(join(dup, 'Flags'))[0];
    copyFileSync(join(dup, 'Flags', f), join(dup, 'Food & Drink', `copy-${f}`));
    const r = await runCli(['train', dup, '--out', join(root, 'o5'), '--epochs', '1', '--val', '0'], env());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: .*(identical|duplicate)/i);
    expect(r.stdout).toContain('no validation set');
  }, 120_000);

  it('eval refuses a folder whose classes the model does not know (LABEL_MISMATCH, exit 3)', async () => {
    const other = join(root, 'other');
    await makeEmojiDataset(other, { categories: ['Animals & Nature', 'Flags'], perClass: 3, seed: 4 });
    const r = await runCli(['eval', 'mobilenet_v2', other], env());
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('"Animals & Nature"');
    expect(r.stderr).toContain('Drawing');
  }, 120_000);
});

const readdir = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.png')).sort();
