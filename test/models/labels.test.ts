import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraftError } from '../../src/errors.js';
import { defaultLabels, imagenetLabels, labelsFromHfConfig, readLabelsFile } from '../../src/models/labels.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'graft-labels-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function error(f: () => unknown): GraftError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(GraftError);
    return e as GraftError;
  }
  throw new Error('expected a GraftError');
}

describe('ImageNet labels', () => {
  it("are torchvision's 1000 names in class order", () => {
    const l = imagenetLabels(1000);
    expect(l).toHaveLength(1000);
    expect([l[0], l[1], l[207], l[281], l[999]]).toEqual(['tench', 'goldfish', 'golden retriever', 'tabby', 'toilet tissue']);
    // torchvision disambiguates ImageNet's repeated names
    expect([l[134], l[517]]).toEqual(['crane bird', 'crane']);
    expect(new Set(l).size).toBe(1000);
  });

  it("1001 puts 'background' at index 0 and shifts every class by one (TF-Hub)", () => {
    const l = imagenetLabels(1001);
    expect(l).toHaveLength(1001);
    expect(l.slice(0, 3)).toEqual(['background', 'tench', 'goldfish']);
    expect(l[1000]).toBe('toilet tissue');
  });

  it('hands out copies', () => {
    imagenetLabels()[0] = 'changed';
    expect(imagenetLabels()[0]).toBe('tench');
  });

  it('load from assets/ relative to the module, which is the same place from src/ and dist/', () => {
    const asset = (from: string) => fileURLToPath(new URL('../../assets/imagenet-1k-labels.json', new URL(from, 'file:///pkg/')));
    expect(asset('src/models/labels.ts')).toBe(asset('dist/models/labels.js'));
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { files: string[] };
    expect(pkg.files).toContain('assets');
  });

  it('defaultLabels: ImageNet for 1000 / 1001 outputs, class_i otherwise', () => {
    expect(defaultLabels(1000)[0]).toBe('tench');
    expect(defaultLabels(1001)[0]).toBe('background');
    expect(defaultLabels(3)).toEqual(['class_0', 'class_1', 'class_2']);
    expect(error(() => defaultLabels(0)).code).toBe('INVALID_ARGUMENT');
  });
});

describe('readLabelsFile', () => {
  it('reads a JSON array, an {index: name} object, {"labels": [...]}, a config.json and Keras class indices', () => {
    expect(readLabelsFile(write('a.json', '["cat", "dog"]'))).toEqual(['cat', 'dog']);
    expect(readLabelsFile(write('b.json', '{"1": "dog", "0": "cat", "2": "bird"}'))).toEqual(['cat', 'dog', 'bird']);
    expect(readLabelsFile(write('c.json', '{"labels": ["x", "y"]}'))).toEqual(['x', 'y']);
    expect(readLabelsFile(write('config.json', JSON.stringify({ model_type: 'vit', id2label: { '0': 'no', '1': 'yes' }, label2id: { no: 0, yes: 1 } })))).toEqual(['no', 'yes']);
    expect(readLabelsFile(write('keras.json', '{"0": ["n01440764", "tench"], "1": ["n01443537", "goldfish"]}'))).toEqual(['tench', 'goldfish']);
  });

  it('reads one label per line (CRLF, BOM, trailing newlines, names with spaces and commas)', () => {
    expect(readLabelsFile(write('l.txt', '\ufeffbackground\r\ngreat white shark, white shark\r\ntench\r\n\r\n'))).toEqual(['background', 'great white shark, white shark', 'tench']);
  });

  it('says what is wrong', () => {
    const missing = join(dir, 'nope.txt');
    expect(error(() => readLabelsFile(missing))).toMatchObject({ code: 'FILE_NOT_FOUND', subject: missing });
    expect(error(() => readLabelsFile(write('e.txt', '\n \n'))).code).toBe('FILE_EMPTY');
    const badJson = error(() => readLabelsFile(write('bad.json', '["cat", ')));
    expect(badJson).toMatchObject({ code: 'LABELS_INVALID' });
    expect(badJson.message).toMatch(/not valid JSON/);
    const gap = error(() => readLabelsFile(write('gap.json', '{"0": "a", "1": "b", "3": "d"}')));
    expect(gap.code).toBe('LABELS_INVALID');
    expect(gap.message).toMatch(/2 is missing/);
    expect(gap.subject).toBe(join(dir, 'gap.json'));
    expect(error(() => readLabelsFile(write('num.json', '["a", 3]'))).message).toMatch(/entry 1 is 3/);
    expect(error(() => readLabelsFile(write('key.json', '{"zero": "a"}'))).message).toMatch(/not a class index/);
    expect(error(() => readLabelsFile(write('blank.txt', 'a\n\nb\n'))).message).toMatch(/line 2 is blank/);
    expect(error(() => readLabelsFile(write('empty.json', '[]'))).code).toBe('LABELS_INVALID');
  });
});

describe('labelsFromHfConfig', () => {
  it('orders id2label by id (numerically, not as strings) and accepts JSON text', () => {
    const id2label = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [String(11 - i), `c${11 - i}`]));
    expect(labelsFromHfConfig({ id2label })).toEqual(Array.from({ length: 12 }, (_, i) => `c${i}`));
    expect(labelsFromHfConfig('{"id2label": {"0": "a", "1": "a"}}')).toEqual(['a', 'a']);
  });

  it('refuses gaps, repeated ids and configs without id2label', () => {
    expect(error(() => labelsFromHfConfig({ id2label: { '1': 'a', '2': 'b' } })).message).toMatch(/0 is missing/);
    expect(error(() => labelsFromHfConfig({ id2label: { '0': 'a', '4': 'e' } })).message).toMatch(/1–3 are missing/);
    expect(error(() => labelsFromHfConfig({ id2label: { '0': 'a', '00': 'b' } })).message).toMatch(/appears twice/);
    expect(error(() => labelsFromHfConfig({ model_type: 'vit' })).code).toBe('LABELS_INVALID');
    expect(error(() => labelsFromHfConfig({ id2label: { '0': 5 } })).message).toMatch(/not a string/);
  });
});
