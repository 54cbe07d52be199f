import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraftError, type GraftErrorCode } from '../../src/errors.js';
import { compareCodePoints, loadDataset, parseCsv, readManifest, scanImageFolder, type Dataset } from '../../src/data/dataset.js';
import sharp from 'sharp';
import { makeEmojiDataset } from '../helpers/emoji.js';

const root = mkdtempSync(join(tmpdir(), 'graft-dataset-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const d = join(root, `t${n++}`);
  mkdirSync(d, { recursive: true });
  return d;
};

let unique = 0;
/** Writes files under dir: the given text, or for a number a content whose size no other file has. */
function files(dir: string, spec: Record<string, string | number>): void {
  for (const [rel, v] of Object.entries(spec)) {
    const p = join(dir, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, typeof v === 'string' ? v : `${rel}:${'.'.repeat(unique++)}`);
  }
}

/** n files named 000.png.. in dir/cls, distinct contents. */
function classOf(dir: string, cls: string, count: number, ext = 'png'): void {
  for (let i = 0; i < count; i++) files(dir, { [`${cls}/${String(i).padStart(3, '0')}.${ext}`]: i });
}

async function rejects(p: Promise<unknown>, code: GraftErrorCode): Promise<GraftError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(GraftError);
  expect((e as GraftError).code).toBe(code);
  return e as GraftError;
}

const rel = (ds: Dataset) => ds.items.map((it) => `${ds.classes[it.label]}|${it.path.slice(ds.root.length + 1)}`);
const warning = (ds: Dataset, code: string) => ds.warnings.find((w) => w.code === code);

describe('scanImageFolder', () => {
  it('lists a real emoji image set by folder, classes sorted, labels from the folder', async () => {
    const dir = fresh();
    const made = await makeEmojiDataset(dir, { categories: ['Food & Drink', 'Animals & Nature', 'Flags'], perClass: 6, seed: 3 });
    const ds = await scanImageFolder(dir);
    expect(ds.classes).toEqual(['Animals & Nature', 'Flags', 'Food & Drink']);
    expect(ds.items).toHaveLength(18);
    for (const it of ds.items) expect(it.path.startsWith(join(dir, ds.classes[it.label]) + '/')).toBe(true);
    expect(new Set(ds.items.map((it) => it.path))).toEqual(new Set(made.files.map((f) => f.path)));
    expect(ds.warnings).toEqual([]);
    expect(ds.root).toBe(dir);
  });

  it('finds images at any depth and in any extension case; skips hidden files, hidden folders and non-images', async () => {
    const dir = fresh();
    files(dir, {
      'cat/a.jpg': 1,
      'cat/deep/er/b.JPEG': 2,
      'cat/c.Png': 3,
      'cat/.hidden.png': 4,
      'cat/.thumbs/d.png': 5,
      'cat/notes.txt': 6,
      'cat/e.webp': 7,
      'dog/f.GIF': 8,
      'dog/g.tiff': 9,
      'dog/h.tif': 10,
      'dog/i.bmp': 11,
      'dog/j.avif': 12,
      'dog/k.HEIC': 13,
      'dog/Thumbs.db': 14,
      'dog/l.jpg.part': 15,
      '.git/x/y.png': 16,
      '__MACOSX/cat/._a.jpg': 17,
    });
    const ds = await scanImageFolder(dir);
    expect(ds.classes).toEqual(['cat', 'dog']);
    expect(rel(ds)).toEqual(['cat|cat/a.jpg', 'cat|cat/c.Png', 'cat|cat/deep/er/b.JPEG', 'cat|cat/e.webp', 'dog|dog/f.GIF', 'dog|dog/g.tiff', 'dog|dog/h.tif', 'dog|dog/i.bmp', 'dog|dog/j.avif', 'dog|dog/k.HEIC']);
    const ignored = warning(ds, 'IGNORED_FILES');
    expect(ignored?.level).toBe('note');
    expect(ignored?.message).toMatch(/3 files/);
    expect(ignored?.message).toMatch(/\.txt/);
  });

  it('follows symlinks to folders and files, each real folder once (no loop)', async () => {
    const dir = fresh();
    const outside = fresh();
    classOf(outside, 'shared', 3);
    files(dir, { 'a/1.png': 100, 'b/1.png': 101 });
    symlinkSync(join(outside, 'shared'), join(dir, 'a', 'linked')); // a folder link inside a class
    symlinkSync(join(dir, 'a'), join(dir, 'a', 'loop')); // a cycle
    symlinkSync(join(outside, 'shared', '000.png'), join(dir, 'b', 'file-link.png'));
    symlinkSync(join(outside, 'nowhere'), join(dir, 'b', 'dangling.png'));
    symlinkSync(join(outside, 'shared'), join(dir, 'c')); // a class folder that is a link
    const ds = await scanImageFolder(dir, { duplicates: false });
    expect(ds.classes).toEqual(['a', 'b', 'c']);
    expect(rel(ds)).toEqual(['a|a/1.png', 'a|a/linked/000.png', 'a|a/linked/001.png', 'a|a/linked/002.png', 'b|b/1.png', 'b|b/file-link.png', 'c|c/000.png', 'c|c/001.png', 'c|c/002.png']);
    expect(warning(ds, 'UNREADABLE_PATHS')?.files).toEqual([join(dir, 'b', 'dangling.png')]);
  });

  it('orders classes by code point, whatever the locale, and normalises names to NFC', async () => {
    const dir = fresh();
    const names = ['b', 'B', 'a', 'e\u0301', '\u{1F600}', '\uFF21', '10', '9'];
    for (const c of names) classOf(dir, c, 1);
    const ds = await scanImageFolder(dir, { duplicates: false, minClassSize: 1 });
    // UTF-16 order would put the emoji (a surrogate pair) before U+FF21; locale order would put "a" before "B"
    expect(ds.classes).toEqual(['10', '9', 'B', 'a', 'b', '\u00e9', '\uFF21', '\u{1F600}']);
    expect(ds.items.map((it) => it.label)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect([...names].sort(compareCodePoints)).toEqual(['10', '9', 'B', 'a', 'b', 'e\u0301', '\uFF21', '\u{1F600}']);
  });

  it('gives the same items in the same order whatever order the files were created in', async () => {
    const a = fresh();
    const b = fresh();
    const names = Array.from({ length: 12 }, (_, i) => `c${i % 3}/img${(i * 7) % 12}.png`);
    files(a, Object.fromEntries(names.map((p) => [p, p])));
    files(b, Object.fromEntries([...names].reverse().map((p) => [p, p])));
    const [da, db] = [await scanImageFolder(a), await scanImageFolder(b)];
    expect(rel(da)).toEqual(rel(db));
  });

  it('refuses an empty folder, a folder of loose images, a missing folder and a file, saying what is expected', async () => {
    const empty = fresh();
    let e = await rejects(scanImageFolder(empty), 'DATASET_EMPTY');
    expect(e.message).toMatch(/one folder per class/);
    expect(e.message).toContain(join(empty, 'cats', '001.jpg'));

    const loose = fresh();
    files(loose, { 'a.jpg': 1, 'b.png': 2, 'empty-class/readme.txt': 3 });
    e = await rejects(scanImageFolder(loose), 'DATASET_EMPTY');
    expect(e.message).toMatch(/Found 2 images directly in/);
    expect(e.message).toMatch(/"empty-class" contain no images/);

    await rejects(scanImageFolder(join(empty, 'nope')), 'FILE_NOT_FOUND');
    files(empty, { 'file.csv': 'path,label\n' });
    e = await rejects(scanImageFolder(join(empty, 'file.csv')), 'DATASET_INVALID');
    expect(e.message).toMatch(/manifest/);
  });

  it('refuses a single class, also when the other class folders are empty', async () => {
    const dir = fresh();
    classOf(dir, 'only', 7);
    let e = await rejects(scanImageFolder(dir), 'DATASET_INVALID');
    expect(e.message).toMatch(/single class \("only", 7 images\).*at least 2/);
    mkdirSync(join(dir, 'empty'));
    e = await rejects(scanImageFolder(dir), 'DATASET_INVALID');
    expect(e.message).toMatch(/at least 2/);
  });

  it('drops class folders without images, with a warning that lists them', async () => {
    const dir = fresh();
    classOf(dir, 'a', 5);
    classOf(dir, 'b', 5);
    files(dir, { 'c/readme.txt': 1, 'c/.hidden.jpg': 2 });
    mkdirSync(join(dir, 'd'));
    files(dir, { 'stray.jpg': 3 });
    const ds = await scanImageFolder(dir);
    expect(ds.classes).toEqual(['a', 'b']);
    expect(ds.items).toHaveLength(10);
    const w = warning(ds, 'EMPTY_CLASS');
    expect(w?.classes).toEqual(['c', 'd']);
    expect(w?.message).toMatch(/2 class folders without images were dropped: "c", "d"/);
    expect(warning(ds, 'LOOSE_FILES')?.files).toEqual([join(dir, 'stray.jpg')]);
  });

  it('warns about tiny classes and strong imbalance, with the numbers', async () => {
    const dir = fresh();
    classOf(dir, 'big', 60);
    classOf(dir, 'small', 5);
    classOf(dir, 'tiny', 3);
    let ds = await scanImageFolder(dir);
    const tiny = warning(ds, 'TINY_CLASS');
    expect(tiny?.counts).toEqual({ tiny: 3 });
    expect(tiny?.message).toMatch(/"tiny" \(3\)/);
    const imb = warning(ds, 'IMBALANCED');
    expect(imb?.classes).toEqual(['big', 'tiny']);
    expect(imb?.counts).toEqual({ big: 60, small: 5, tiny: 3 });
    expect(imb?.message).toMatch(/"big", has 60 images, the smallest, "tiny", 3 \(20\.0×\)/);

    // exactly 10× is not "more than 10×"; 5 images is not "fewer than 5"
    rmSync(join(dir, 'tiny'), { recursive: true });
    for (let i = 50; i < 60; i++) rmSync(join(dir, 'big', `0${i}.png`));
    ds = await scanImageFolder(dir);
    expect(ds.warnings).toEqual([]);
    ds = await scanImageFolder(dir, { maxImbalance: 5, minClassSize: 6 });
    expect(ds.warnings.map((w) => w.code).sort()).toEqual(['IMBALANCED', 'TINY_CLASS']);
  });

  it('finds identical files across classes (warning) and within a class (note), not same-size different files', async () => {
    const dir = fresh();
    const emoji = fresh();
    const made = await makeEmojiDataset(emoji, { categories: ['Objects'], perClass: 3, seed: 1 });
    const png = made.files.map((f) => readFileSync(f.path));
    classOf(dir, 'a', 5);
    classOf(dir, 'b', 5);
    writeFileSync(join(dir, 'a', 'dup.png'), png[0]);
    writeFileSync(join(dir, 'b', 'dup-too.png'), png[0]);
    writeFileSync(join(dir, 'b', 'copy1.png'), png[1]);
    writeFileSync(join(dir, 'b', 'copy2.png'), png[1]);
    // same size, one byte different: not a duplicate
    const other = Buffer.from(png[2]);
    writeFileSync(join(dir, 'a', 'same-size.png'), other);
    other[other.length - 1] ^= 1;
    writeFileSync(join(dir, 'b', 'same-size.png'), other);

    const ds = await scanImageFolder(dir);
    const across = warning(ds, 'DUPLICATES_ACROSS_CLASSES');
    expect(across?.level).toBe('warning');
    expect(across?.groups).toEqual([[join(dir, 'a', 'dup.png'), join(dir, 'b', 'dup-too.png')]]);
    expect(across?.classes).toEqual(['a', 'b']);
    expect(across?.message).toMatch(/a\/dup\.png = b\/dup-too\.png/);
    const within = warning(ds, 'DUPLICATES_WITHIN_CLASS');
    expect(within?.level).toBe('note');
    expect(within?.groups).toEqual([[join(dir, 'b', 'copy1.png'), join(dir, 'b', 'copy2.png')]]);
    // only files whose size collides were hashed
    const hashed = ds.items.filter((it) => it.hash).map((it) => it.path.slice(dir.length + 1));
    expect(hashed.sort()).toEqual(['a/dup.png', 'a/same-size.png', 'b/copy1.png', 'b/copy2.png', 'b/dup-too.png', 'b/same-size.png']);

    const none = await scanImageFolder(dir, { duplicates: false });
    expect(none.warnings.filter((w) => w.code.startsWith('DUPLICATES'))).toEqual([]);
  });

  it('with hashAll, keeps the SHA-256 of every file on its item', async () => {
    const dir = fresh();
    classOf(dir, 'a', 5);
    classOf(dir, 'b', 5);
    const ds = await scanImageFolder(dir, { hashAll: true });
    for (const it of ds.items) expect(it.hash).toBe(createHash('sha256').update(readFileSync(it.path)).digest('hex'));
  });
});

describe('parseCsv', () => {
  it('reads quoted fields with delimiters, quotes and newlines, CRLF, and skips blank lines', () => {
    const rows = parseCsv('path,label\r\n"a, b.jpg",cat\n\n"say ""hi"".png" , "dog"\n"multi\nline.png",x\nplain , spaced \n');
    expect(rows).toEqual([
      { fields: ['path', 'label'], line: 1 },
      { fields: ['a, b.jpg', 'cat'], line: 2 },
      { fields: ['say "hi".png', 'dog'], line: 4 },
      { fields: ['multi\nline.png', 'x'], line: 5 },
      { fields: ['plain', 'spaced'], line: 7 },
    ]);
    expect(parseCsv('a;b\n1;"2;3"', ';')).toEqual([
      { fields: ['a', 'b'], line: 1 },
      { fields: ['1', '2;3'], line: 2 },
    ]);
  });

  it('rejects an unclosed quote and text after a closing quote, naming the line', () => {
    expect(() => parseCsv('path,label\n"open.jpg,cat\n')).toThrow(/line 2: a quoted field is never closed/);
    expect(() => parseCsv('path,label\n"a"b,cat\n')).toThrow(/line 2: unexpected text after a closing quote/);
  });
});

describe('readManifest', () => {
  function layout(): string {
    const dir = fresh();
    classOf(dir, 'imgs/cats', 5);
    classOf(dir, 'imgs/dogs', 5);
    files(dir, { 'imgs/odd, "name".png': 99 });
    return dir;
  }

  it('reads a CSV manifest: header, quoted fields, paths relative to the manifest, absolute paths, BOM', async () => {
    const dir = layout();
    const lines = ['\uFEFFlabel,path,notes'];
    for (let i = 0; i < 5; i++) lines.push(`cat,imgs/cats/00${i}.png,x`);
    for (let i = 0; i < 4; i++) lines.push(`dog,imgs/dogs/00${i}.png,`);
    lines.push(`dog,${join(dir, 'imgs/dogs/004.png')},absolute`);
    lines.push('"dog","imgs/odd, ""name"".png","quoted"');
    writeFileSync(join(dir, 'list.csv'), lines.join('\r\n'));
    const ds = await readManifest(join(dir, 'list.csv'));
    expect(ds.root).toBe(dir);
    expect(ds.classes).toEqual(['cat', 'dog']);
    expect(ds.items).toHaveLength(11);
    expect(ds.items.filter((it) => it.label === 1).map((it) => it.path.slice(dir.length + 1))).toEqual(['imgs/dogs/000.png', 'imgs/dogs/001.png', 'imgs/dogs/002.png', 'imgs/dogs/003.png', 'imgs/dogs/004.png', 'imgs/odd, "name".png']);
    expect(ds.warnings).toEqual([]);
    // loadDataset dispatches on file vs folder
    expect((await loadDataset(join(dir, 'list.csv'))).items).toEqual(ds.items);
  });

  it('reads a JSON manifest, number labels as names; missing files are dropped with a warning', async () => {
    const dir = layout();
    const list = [...Array.from({ length: 5 }, (_, i) => ({ path: `imgs/cats/00${i}.png`, label: 0 })), ...Array.from({ length: 5 }, (_, i) => ({ path: `imgs/dogs/00${i}.png`, label: 1 })), { path: 'imgs/gone.png', label: 1 }];
    writeFileSync(join(dir, 'list.json'), JSON.stringify(list));
    const ds = await readManifest(join(dir, 'list.json'));
    expect(ds.classes).toEqual(['0', '1']);
    expect(ds.items.map((it) => it.label)).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    const w = warning(ds, 'MISSING_FILES');
    expect(w?.files).toEqual([join(dir, 'imgs/gone.png')]);
  });

  it('says what is wrong with a bad manifest', async () => {
    const dir = layout();
    const write = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    let e = await rejects(readManifest(write('noheader.csv', 'imgs/cats/000.png,cat\n')), 'DATASET_INVALID');
    expect(e.message).toMatch(/first line must be a header/);
    e = await rejects(readManifest(write('quote.csv', 'path,label\nimgs/cats/000.png,cat\n"imgs/dogs/000.png,dog\n')), 'DATASET_INVALID');
    expect(e.message).toMatch(/quote\.csv: line 3: a quoted field is never closed/);
    e = await rejects(readManifest(write('nolabel.csv', 'path,label\nimgs/cats/000.png,\n')), 'DATASET_INVALID');
    expect(e.message).toMatch(/line 2 \(imgs\/cats\/000\.png\) has an empty label/);
    e = await rejects(readManifest(write('short.csv', 'path,label\nimgs/cats/000.png\n')), 'DATASET_INVALID');
    expect(e.message).toMatch(/line 2 has 1 field/);
    e = await rejects(readManifest(write('bad.json', '[{"path": "imgs/cats/000.png"}]')), 'DATASET_INVALID');
    expect(e.message).toMatch(/item 0 must be an object/);
    e = await rejects(readManifest(write('one.csv', 'path,label\nimgs/cats/000.png,cat\nimgs/cats/001.png,cat\n')), 'DATASET_INVALID');
    expect(e.message).toMatch(/single label \("cat", 2 images\)/);
    e = await rejects(readManifest(write('gone.csv', 'path,label\nnope/1.png,cat\nnope/2.png,dog\n')), 'DATASET_EMPTY');
    expect(e.message).toMatch(/relative to the manifest's folder/);
    await rejects(readManifest(write('empty.csv', 'path,label\n')), 'DATASET_EMPTY');
    await rejects(readManifest(join(dir, 'absent.csv')), 'FILE_NOT_FOUND');
  });

  it('finds the same picture under two labels in a manifest', async () => {
    const dir = layout();
    const lines = ['path,label', ...Array.from({ length: 5 }, (_, i) => `imgs/cats/00${i}.png,cat`), ...Array.from({ length: 5 }, (_, i) => `imgs/dogs/00${i}.png,dog`), 'imgs/cats/000.png,dog'];
    writeFileSync(join(dir, 'twice.csv'), lines.join('\n'));
    const ds = await readManifest(join(dir, 'twice.csv'));
    expect(warning(ds, 'DUPLICATES_ACROSS_CLASSES')?.groups).toEqual([[join(dir, 'imgs/cats/000.png'), join(dir, 'imgs/cats/000.png')]]);
  });
});

describe('makeEmojiDataset (test helper)', () => {
  it('makes the same files for the same options; augmented variants are opaque, sized, and differ by seed', async () => {
    const opts = { categories: ['Flags', 'Symbols'], perClass: 3, seed: 4, augment: true, size: 40 };
    const [a, b, c] = [await makeEmojiDataset(fresh(), opts), await makeEmojiDataset(fresh(), opts), await makeEmojiDataset(fresh(), { ...opts, seed: 5 })];
    const bytes = (f: { path: string }) => readFileSync(f.path).toString('base64');
    expect(a.files.map(bytes)).toEqual(b.files.map(bytes));
    expect(a.files.map(bytes)).not.toEqual(c.files.map(bytes));
    expect(a.classes).toEqual(['Flags', 'Symbols']);
    for (const f of a.files) {
      const meta = await sharp(f.path).metadata();
      expect([meta.width, meta.height, meta.channels, meta.hasAlpha]).toEqual([40, 40, 3, false]);
    }
    // plain copies keep the source PNG (with transparency); too many without augment is an error
    const plain = await makeEmojiDataset(fresh(), { categories: ['Component'], perClass: 5, seed: 1 });
    expect((await sharp(plain.files[0].path).metadata()).hasAlpha).toBe(true);
    await expect(makeEmojiDataset(fresh(), { categories: ['Component'], perClass: 6, seed: 1 })).rejects.toThrow(/5 distinct emoji/);
    expect((await makeEmojiDataset(fresh(), { categories: ['Component'], perClass: 6, seed: 1, augment: true })).files).toHaveLength(6);
  });
});
