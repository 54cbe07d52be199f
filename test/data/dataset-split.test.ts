import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraftError } from '../../src/errors.js';
import { scanImageFolder, type Dataset } from '../../src/data/dataset.js';
import { classCounts, classWeights, fromValDir, splitDataset, valCount } from '../../src/data/split.js';
import { createRng, shuffle } from '../../src/util/random.js';

const root = mkdtempSync(join(tmpdir(), 'graft-split-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A data set object (no files) with `counts[c]` items in class c. */
function synthetic(counts: number[], base = '/data'): Dataset {
  const classes = counts.map((_, c) => `class${c}`);
  const items = counts.flatMap((n, c) => Array.from({ length: n }, (_, i) => ({ path: `${base}/${classes[c]}/img${String(i).padStart(4, '0')}.jpg`, label: c })));
  return { root: base, classes, items, warnings: [] };
}

const paths = (ds: Dataset | undefined) => (ds ? ds.items.map((it) => it.path) : []);

describe('splitDataset', () => {
  it('holds out round(val × n) of every class, at least one when a class has two or more', () => {
    const ds = synthetic([10, 7, 2, 1, 100]);
    const { train, val } = splitDataset(ds, { val: 0.2, seed: 1 });
    expect(val).toBeDefined();
    expect(classCounts(val as Dataset)).toEqual([2, 1, 1, 0, 20]);
    expect(classCounts(train)).toEqual([8, 6, 1, 1, 80]);
    // a partition of the items, each list in data set order
    expect([...paths(train), ...paths(val)].sort()).toEqual(paths(ds).sort());
    expect(paths(train)).toEqual([...paths(train)].sort());
    expect(val?.classes).toEqual(ds.classes);
    const single = train.warnings.find((w) => w.code === 'NOT_VALIDATED');
    expect(single?.classes).toEqual(['class3']);
    expect([valCount(2, 0.9), valCount(3, 0.99), valCount(1, 0.5), valCount(40, 0.25)]).toEqual([1, 2, 0, 10]);
  });

  it('is deterministic: same seed and files → same split, whatever order the items come in', () => {
    const ds = synthetic([30, 25, 12]);
    const a = splitDataset(ds, { val: 0.3, seed: 42 });
    const shuffled: Dataset = { ...ds, items: shuffle(createRng(5), [...ds.items]) };
    const b = splitDataset(shuffled, { val: 0.3, seed: 42 });
    expect(paths(b.val)).toEqual(paths(a.val));
    expect(paths(b.train)).toEqual(paths(a.train));
    // the data set moved to another folder: same split
    const moved = splitDataset(synthetic([30, 25, 12], '/elsewhere/data'), { val: 0.3, seed: 42 });
    expect(paths(moved.val).map((p) => p.replace('/elsewhere', ''))).toEqual(paths(a.val));
    // another seed: another split
    const c = splitDataset(ds, { val: 0.3, seed: 43 });
    expect(paths(c.val)).not.toEqual(paths(a.val));
    expect(classCounts(c.val as Dataset)).toEqual(classCounts(a.val as Dataset));
  });

  it('keeps the validation set stable when images are added', () => {
    const before = splitDataset(synthetic([100, 100]), { val: 0.2, seed: 7 });
    const after = splitDataset(synthetic([101, 100]), { val: 0.2, seed: 7 });
    const kept = paths(before.val).filter((p) => paths(after.val).includes(p));
    // 20 held out before and after; at most the one displaced by the new image's score changes
    expect(paths(after.val)).toHaveLength(40);
    expect(kept.length).toBeGreaterThanOrEqual(39);
  });

  it('val: 0 trains on everything, with no validation set', () => {
    const ds = synthetic([5, 5]);
    const { train, val } = splitDataset(ds, { val: 0, seed: 1 });
    expect(val).toBeUndefined();
    expect(paths(train)).toEqual(paths(ds));
  });

  it('rejects a fraction outside [0, 1) and a non-integer seed', () => {
    const ds = synthetic([5, 5]);
    for (const val of [1, -0.1, Number.NaN, 1.5]) {
      expect(() => splitDataset(ds, { val, seed: 1 })).toThrow(GraftError);
    }
    expect(() => splitDataset(ds, { val: 1, seed: 1 })).toThrow(/\[0, 1\)/);
    expect(() => splitDataset(ds, { val: 0.2, seed: 1.5 })).toThrow(/whole number/);
  });
});

describe('fromValDir', () => {
  function folder(spec: Record<string, number>, tag: string): string {
    const dir = join(root, tag);
    for (const [cls, count] of Object.entries(spec)) {
      mkdirSync(join(dir, cls), { recursive: true });
      for (let i = 0; i < count; i++) writeFileSync(join(dir, cls, `${i}.png`), `${tag}/${cls}/${i}`);
    }
    return dir;
  }

  it('maps a validation folder with a subset of the classes onto the training labels', async () => {
    const train = await scanImageFolder(folder({ ant: 5, bee: 5, cicada: 5 }, 'train1'));
    const { val } = await fromValDir(train, folder({ cicada: 3, ant: 2 }, 'val1'));
    expect(val?.classes).toEqual(['ant', 'bee', 'cicada']);
    expect(val?.items.map((it) => [val.classes[it.label], it.path.split('/').slice(-2).join('/')])).toEqual([
      ['ant', 'ant/0.png'],
      ['ant', 'ant/1.png'],
      ['cicada', 'cicada/0.png'],
      ['cicada', 'cicada/1.png'],
      ['cicada', 'cicada/2.png'],
    ]);
    expect(val?.warnings.map((w) => [w.code, w.classes])).toEqual([['NOT_VALIDATED', ['bee']]]);
  });

  it('refuses a class the training data does not have, naming it', async () => {
    const train = await scanImageFolder(folder({ ant: 5, bee: 5 }, 'train2'));
    const e = await fromValDir(train, folder({ ant: 2, wasp: 2 }, 'val2')).catch((x: unknown) => x as GraftError);
    expect(e).toBeInstanceOf(GraftError);
    expect((e as GraftError).code).toBe('LABEL_MISMATCH');
    expect((e as GraftError).message).toMatch(/"wasp"/);
    expect((e as GraftError).message).toMatch(/Training classes: "ant", "bee"/);
  });

  it('warns when a validation image is also a training image', async () => {
    const trainDir = folder({ ant: 5, bee: 5 }, 'train3');
    const valDir = folder({ bee: 2 }, 'val3');
    writeFileSync(join(valDir, 'bee', 'copy.png'), 'train3/ant/4');
    const { val } = await fromValDir(await scanImageFolder(trainDir), valDir);
    const w = val?.warnings.find((x) => x.code === 'TRAIN_VAL_OVERLAP');
    expect(w?.groups).toEqual([[join(trainDir, 'ant', '4.png'), join(valDir, 'bee', 'copy.png')]]);
  });

  it('refuses an empty validation folder', async () => {
    const train = await scanImageFolder(folder({ ant: 5, bee: 5 }, 'train4'));
    mkdirSync(join(root, 'val4'));
    await expect(fromValDir(train, join(root, 'val4'))).rejects.toMatchObject({ code: 'DATASET_EMPTY' });
  });
});

describe('classWeights', () => {
  it("'auto' is n / (k · n_c), scikit-learn's balanced weights", () => {
    const w = classWeights(synthetic([10, 5, 1]));
    expect(w[0]).toBeCloseTo(16 / 30, 12);
    expect(w[1]).toBeCloseTo(16 / 15, 12);
    expect(w[2]).toBeCloseTo(16 / 3, 12);
    // every class then weighs the same in the loss: n_c · w_c = n / k
    expect([10 * w[0], 5 * w[1], 1 * w[2]].map((x) => +x.toFixed(9))).toEqual([5.333333333, 5.333333333, 5.333333333]);
    expect(classWeights(synthetic([3, 3]))).toEqual([1, 1]);
    expect(classWeights(synthetic([10, 5, 1]), 'none')).toEqual([1, 1, 1]);
  });

  it('gives 0 to a class without items and counts only present classes', () => {
    expect(classWeights(synthetic([4, 0, 2]))).toEqual([6 / 8, 0, 6 / 4]);
  });
});
