/**
 * Thumbnails for the report as data: URIs, so the HTML file needs nothing beside it. Decoding goes
 * through the same path as training (EXIF orientation, alpha flattened, sRGB), so a thumbnail shows
 * what the model saw, only smaller.
 */
import { openImage } from '../data/image.js';

export const DEFAULT_THUMBNAIL_SIZE = 96;

export type Thumbnail = { ok: true; dataUri: string; width: number; height: number } | { ok: false; reason: string };

/*
 * WebP at quality 70 keeps a 96 px photo around 2–4 kB (JPEG at the same look is ~1.5× larger), and
 * every browser that runs the report's charts decodes it.
 */
const WEBP = { quality: 70, effort: 4 } as const;

/** A thumbnail that fits in size × size (never enlarged), or why there is none. */
export async function thumbnail(path: string, size = DEFAULT_THUMBNAIL_SIZE): Promise<Thumbnail> {
  try {
    const img = await openImage(path);
    // small images stay small here (the page scales them up, which costs no bytes)
    const { data, info } = await img.pipeline().resize({ width: size, height: size, fit: 'inside', withoutEnlargement: true }).webp(WEBP).toBuffer({ resolveWithObject: true });
    return { ok: true, dataUri: `data:image/webp;base64,${data.toString('base64')}`, width: info.width, height: info.height };
  } catch (e) {
    // the report still lists the item; the reason shows on hover
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  }
}

/** Thumbnails for many paths, a few decodes at a time (sharp has its own thread pool). */
export async function thumbnails(paths: readonly string[], size = DEFAULT_THUMBNAIL_SIZE, concurrency = 4): Promise<Thumbnail[]> {
  const out = new Array<Thumbnail>(paths.length);
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const i = next++;
      out[i] = await thumbnail(paths[i], size);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, paths.length) }, worker));
  return out;
}
