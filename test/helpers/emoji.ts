/**
 * A real labelled image set made at test time from emoji-datasource-google (a devDependency): 64 × 64 RGBA
 * PNGs of Noto emoji, labelled by their emoji.json category.
 *
 * Categories (distinct images after dropping identical files, e.g. the flags of Norway, Svalbard and
 * Bouvet Island; skin-tone variants are not used):
 *   'Smileys & Emotion' 169   'People & Body' 381   'Animals & Nature' 159   'Food & Drink' 131
 *   'Travel & Places'   218   'Activities'     85   'Objects'          264   'Symbols'      224
 *   'Flags'             261   'Component'       5
 * ('Component' is the five skin-tone swatches: not a usable class.) Category names contain spaces and '&',
 * which also exercises paths that need quoting.
 *
 * Files go to `dir/<category>/<nnn>_<short_name>.png`. Without `augment` (and size 64) they are plain
 * copies, with transparency (~3 KB each; 500 files in ~0.1 s). With `augment`, each file is a new variant
 * drawn from (seed, category, i): brightness × [0.8, 1.2], saturation × [0.7, 1.3] and hue ± 20° applied
 * to the emoji, which is then flattened onto white (half of the time) or a random light colour, cropped to
 * 70–100 % of its side at a random position (bilinear resize to `size`) and flipped horizontally half of
 * the time (~2–4 ms per file on this machine). With augment, `perClass` may exceed the category's size:
 * emoji are reused, their variants differ.
 * Everything depends only on the options: the same call makes byte-identical files.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { createRng, deriveSeed, fork, shuffle } from '../../src/util/random.js';

interface EmojiEntry {
  short_name: string;
  image: string;
  category: string;
  sort_order: number;
  has_img_google: boolean;
}

export interface EmojiImage {
  /** Source PNG in node_modules. */
  source: string;
  shortName: string;
  category: string;
}

export interface EmojiDatasetOptions {
  categories: string[];
  perClass: number;
  seed: number;
  /** Output side in pixels (default 64, the source size). */
  size?: number;
  augment?: boolean;
}

export interface EmojiFile {
  path: string;
  category: string;
  shortName: string;
}

export interface EmojiDataset {
  dir: string;
  /** The categories, in code-point order (= scanImageFolder's class order). */
  classes: string[];
  files: EmojiFile[];
}

const pkgDir = dirname(createRequire(import.meta.url).resolve('emoji-datasource-google/package.json'));
const imgDir = join(pkgDir, 'img', 'google', '64');

let entries: Promise<Map<string, EmojiEntry[]>> | undefined;
const distinct = new Map<string, Promise<EmojiImage[]>>();

/** emoji.json's entries by category, in emoji sort order. */
function byCategory(): Promise<Map<string, EmojiEntry[]>> {
  entries ??= readFile(join(pkgDir, 'emoji.json'), 'utf8').then((text) => {
    const all = (JSON.parse(text) as EmojiEntry[]).filter((e) => e.has_img_google).sort((a, b) => a.sort_order - b.sort_order);
    const map = new Map<string, EmojiEntry[]>();
    for (const e of all) {
      const list = map.get(e.category);
      if (list) list.push(e);
      else map.set(e.category, [e]);
    }
    return map;
  });
  return entries;
}

/** The category names in emoji.json. */
export async function emojiCategories(): Promise<string[]> {
  return [...(await byCategory()).keys()];
}

/**
 * A category's distinct images in emoji sort order (a file identical to an earlier one is left out; no
 * two categories share a file). Only the requested category's files are read.
 */
export function emojiImages(category: string): Promise<EmojiImage[]> {
  let p = distinct.get(category);
  if (!p) {
    p = byCategory().then(async (map) => {
      const list = map.get(category);
      if (!list) throw new RangeError(`unknown emoji category ${JSON.stringify(category)}; known: ${[...map.keys()].join(', ')}`);
      const seen = new Set<string>();
      const out: EmojiImage[] = [];
      for (const e of list) {
        const source = join(imgDir, e.image);
        const digest = createHash('sha256').update(await readFile(source)).digest('hex');
        if (seen.has(digest)) continue;
        seen.add(digest);
        out.push({ source, shortName: e.short_name, category });
      }
      return out;
    });
    distinct.set(category, p);
  }
  return p;
}

const decoded = new Map<string, Promise<Buffer>>();

/** RGBA bytes of a 64 × 64 source PNG, decoded once per process. */
function rgba(src: string): Promise<Buffer> {
  let p = decoded.get(src);
  if (!p) {
    p = sharp(src).ensureAlpha().raw().toBuffer();
    decoded.set(src, p);
  }
  return p;
}

/*
 * The variant is computed in JS on the decoded 64 × 64 pixels and encoded once: for images this small,
 * chaining sharp's extract / resize / modulate / flatten cost ~10 ms per image here, this ~2 ms.
 * Colour: brightness, then the saturate and hue-rotate matrices of the W3C Filter Effects spec.
 */
async function augmented(src: string, size: number, seed: number, category: string, i: number): Promise<Buffer> {
  const rng = fork(seed, 'emoji-augment', category, i);
  const side = 64;
  const crop = side * rng.uniform(0.7, 1);
  const left = rng.uniform(0, side - crop);
  const top = rng.uniform(0, side - crop);
  const flip = rng.bool();
  const brightness = rng.uniform(0.8, 1.2);
  const s = rng.uniform(0.7, 1.3);
  const hue = (rng.uniform(-20, 20) * Math.PI) / 180;
  const bg = rng.bool() ? [255, 255, 255] : [rng.int(128, 256), rng.int(128, 256), rng.int(128, 256)];
  const cos = Math.cos(hue);
  const sin = Math.sin(hue);
  const sat = [
    [0.213 + 0.787 * s, 0.715 - 0.715 * s, 0.072 - 0.072 * s],
    [0.213 - 0.213 * s, 0.715 + 0.285 * s, 0.072 - 0.072 * s],
    [0.213 - 0.213 * s, 0.715 - 0.715 * s, 0.072 + 0.928 * s],
  ];
  const rot = [
    [0.213 + cos * 0.787 - sin * 0.213, 0.715 - cos * 0.715 - sin * 0.715, 0.072 - cos * 0.072 + sin * 0.928],
    [0.213 - cos * 0.213 + sin * 0.143, 0.715 + cos * 0.285 + sin * 0.14, 0.072 - cos * 0.072 - sin * 0.283],
    [0.213 - cos * 0.213 - sin * 0.787, 0.715 - cos * 0.715 + sin * 0.715, 0.072 + cos * 0.928 + sin * 0.072],
  ];
  const m = rot.map((row) => [0, 1, 2].map((k) => brightness * (row[0] * sat[0][k] + row[1] * sat[1][k] + row[2] * sat[2][k])));

  // colour-shift the emoji and flatten it onto the background, at source resolution
  const px = await rgba(src);
  const flat = new Float32Array(side * side * 3);
  for (let p = 0; p < side * side; p++) {
    const a = px[p * 4 + 3] / 255;
    const r = px[p * 4];
    const g = px[p * 4 + 1];
    const b = px[p * 4 + 2];
    for (let c = 0; c < 3; c++) {
      const v = Math.min(255, Math.max(0, m[c][0] * r + m[c][1] * g + m[c][2] * b));
      flat[p * 3 + c] = v * a + bg[c] * (1 - a);
    }
  }
  // crop + bilinear resize + flip
  const out = Buffer.alloc(size * size * 3);
  const scale = crop / size;
  const at = (x: number, y: number, c: number) => flat[(Math.min(side - 1, Math.max(0, y)) * side + Math.min(side - 1, Math.max(0, x))) * 3 + c];
  for (let y = 0; y < size; y++) {
    const sy = top + (y + 0.5) * scale - 0.5;
    const y0 = Math.floor(sy);
    const fy = sy - y0;
    for (let x = 0; x < size; x++) {
      const sx = left + ((flip ? size - 1 - x : x) + 0.5) * scale - 0.5;
      const x0 = Math.floor(sx);
      const fx = sx - x0;
      for (let c = 0; c < 3; c++) {
        const v = (at(x0, y0, c) * (1 - fx) + at(x0 + 1, y0, c) * fx) * (1 - fy) + (at(x0, y0 + 1, c) * (1 - fx) + at(x0 + 1, y0 + 1, c) * fx) * fy;
        out[(y * size + x) * 3 + c] = Math.round(v);
      }
    }
  }
  return sharp(out, { raw: { width: size, height: size, channels: 3 } }).png({ compressionLevel: 1 }).toBuffer();
}

/** Writes the data set (see the file comment) and lists what it wrote. */
export async function makeEmojiDataset(dir: string, opts: EmojiDatasetOptions): Promise<EmojiDataset> {
  const { categories, perClass, seed, augment = false } = opts;
  const size = opts.size ?? 64;
  if (!Number.isInteger(perClass) || perClass < 1) throw new RangeError(`perClass must be a positive integer, got ${perClass}`);
  const files: EmojiFile[] = [];
  const jobs: (() => Promise<void>)[] = [];
  for (const category of categories) {
    const all = await emojiImages(category);
    if (perClass > all.length && !augment) throw new RangeError(`${category} has ${all.length} distinct emoji, fewer than perClass = ${perClass}; pass augment: true to reuse them`);
    const chosen = shuffle(createRng(deriveSeed(seed, 'emoji-pick', category)), [...all]);
    await mkdir(join(dir, category), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const e = chosen[i % chosen.length];
      const path = join(dir, category, `${String(i).padStart(3, '0')}_${e.shortName}.png`);
      files.push({ path, category, shortName: e.shortName });
      jobs.push(async () => {
        if (augment) await writeFile(path, await augmented(e.source, size, seed, category, i));
        else if (size === 64) await copyFile(e.source, path);
        else await writeFile(path, await sharp(e.source).resize(size, size, { kernel: 'lanczos3' }).png({ compressionLevel: 1 }).toBuffer());
      });
    }
  }
  // sharp works on libuv's pool; a few at a time keeps both cores busy without queueing hundreds
  let next = 0;
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (next < jobs.length) await jobs[next++]();
  }));
  const classes = [...categories].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { dir, classes, files };
}
