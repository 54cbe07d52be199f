/**
 * Image sets the benchmarks read, made at run time into bench/out/data/ (git-ignored), deterministic:
 * - photos/: JPEG photographs (quality 90, 640 × 480 or 480 × 640) cropped, flipped and resized from
 *   scikit-image's sample photographs (Debian python3-skimage; examples/coffee.jpg when it is missing),
 *   for end-to-end classification from files;
 * - emoji/: test/helpers/emoji.ts's real labelled set (4 categories × 100 augmented 96 px PNGs, as the
 *   head-mode end-to-end test uses) for time-to-accuracy.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { createRng } from '../../src/util/random.js';
import { makeEmojiDataset } from '../../test/helpers/emoji.js';
import { OUT_DIR, ROOT } from './models.js';

const SKIMAGE = '/usr/lib/python3/dist-packages/skimage/data';
const PHOTOS = ['astronaut.png', 'chelsea.png', 'coffee.png', 'motorcycle_left.png', 'rocket.jpg', 'hubble_deep_field.jpg'];

export const EMOJI_CATEGORIES = ['Animals & Nature', 'Food & Drink', 'Travel & Places', 'Flags'];

export async function photoSet(n: number): Promise<string> {
  const dir = join(OUT_DIR, 'data', `photos-${n}`);
  if (existsSync(dir) && readdirSync(dir).filter((f) => f.endsWith('.jpg')).length === n) return dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  let sources = PHOTOS.map((f) => join(SKIMAGE, f)).filter((p) => existsSync(p));
  if (!sources.length) sources = [join(ROOT, 'examples', 'coffee.jpg')];
  const rng = createRng(11);
  for (let i = 0; i < n; i++) {
    const src = sources[i % sources.length];
    const meta = await sharp(src).metadata();
    const W = meta.width!;
    const H = meta.height!;
    const f = rng.uniform(0.6, 1);
    const w = Math.max(16, Math.round(W * f));
    const h = Math.max(16, Math.round(H * f));
    const left = Math.floor(rng.uniform(0, W - w + 1));
    const top = Math.floor(rng.uniform(0, H - h + 1));
    const portrait = rng.bool(0.25);
    let img = sharp(src).removeAlpha().extract({ left, top, width: w, height: h });
    if (rng.bool()) img = img.flop();
    const buf = await img
      .resize(portrait ? 480 : 640, portrait ? 640 : 480, { fit: 'fill' })
      .jpeg({ quality: 90 })
      .toBuffer();
    writeFileSync(join(dir, `${String(i).padStart(3, '0')}.jpg`), buf);
  }
  return dir;
}

export async function emojiSet(perClass = 100): Promise<string> {
  const dir = join(OUT_DIR, 'data', `emoji-4x${perClass}`);
  const done = `${dir}.complete`;
  if (existsSync(done)) return dir;
  rmSync(dir, { recursive: true, force: true });
  await makeEmojiDataset(dir, { categories: EMOJI_CATEGORIES, perClass, seed: 3, augment: true, size: 96 });
  writeFileSync(done, '');
  return dir;
}
