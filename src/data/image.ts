/**
 * Decoding images with sharp into what every model here expects: 8-bit sRGB RGB, interleaved, upright
 * (EXIF orientation applied), with transparency flattened onto a background.
 *
 * `openImage` reads only the header (size and orientation) so callers can plan crops and refuse huge
 * images before any pixel is decoded; `pipeline()` then continues with the same decode settings.
 */
import { stat } from 'node:fs/promises';
import sharp from 'sharp';
import type { Metadata, OutputInfo, Sharp } from 'sharp';
import { GraftError } from '../errors.js';

export interface RGB {
  r: number;
  g: number;
  b: number;
}

/** Interleaved 8-bit RGB pixels, row-major: data[(y × width + x) × 3 + c]. */
export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface DecodeOptions {
  /** Refuse images with more pixels than this (checked from the header, before decoding). 0 = no limit. */
  maxPixels?: number;
  /** What transparent pixels become. Default white. */
  background?: RGB;
  /** How to name a buffer source in errors (a path names itself). */
  name?: string;
}

export type ImageSource = string | Uint8Array;

/** 100 megapixels: a 12 000 × 8 000 scan still decodes, a decompression bomb does not (≈300 MB of RGB). */
export const DEFAULT_MAX_PIXELS = 100_000_000;

/*
 * White, because transparent images in the wild (product shots, logos, icons, screenshots) are made to be
 * seen on white pages; the colour hidden under alpha = 0 is arbitrary (often black, sometimes leftovers of
 * an edit), so dropping alpha as PIL's convert('RGB') does shows the model pictures no person ever saw.
 */
const WHITE: RGB = { r: 255, g: 255, b: 255 };

/*
 * 'truncated' makes a cut-off JPEG/PNG an error instead of an image padded with grey. Stricter levels
 * ('warning') would also reject many complete, harmless camera JPEGs (e.g. "extraneous bytes before
 * marker"), which would drop real training images for no gain.
 */
const FAIL_ON = 'truncated' as const;

export interface OpenedImage {
  /** Upright size (after EXIF orientation). */
  width: number;
  height: number;
  /** The path, or the buffer's name, for error messages. */
  subject: string;
  /** Whether the image has an alpha channel. */
  hasAlpha: boolean;
  /** What transparent pixels become. */
  background: RGB;
  /** The container format libvips read from the header ('jpeg', 'png', …). */
  format: string | undefined;
  /**
   * A fresh sharp pipeline that decodes, orients, flattens and converts to 8-bit sRGB; add resize /
   * extract steps and run it with `readRaw`. With `keepAlpha`, alpha stays (RGBA) for `readRaw` to
   * flatten itself: libvips truncates the blend, which darkens half-transparent pixels by up to a level.
   */
  pipeline(opts?: { keepAlpha?: boolean }): Sharp;
}

function describe(source: ImageSource, name: string | undefined): string {
  return typeof source === 'string' ? source : (name ?? 'image buffer');
}

/** Reads the header, checks the file exists, is not empty and is not too large. */
export async function openImage(source: ImageSource, opts: DecodeOptions = {}): Promise<OpenedImage> {
  const subject = describe(source, opts.name);
  if (typeof source === 'string') {
    let size: number;
    try {
      const s = await stat(source);
      if (s.isDirectory()) {
        throw new GraftError('IMAGE_UNREADABLE', `${source} is a directory, not an image file.`, { subject });
      }
      size = s.size;
    } catch (e) {
      if (e instanceof GraftError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        throw new GraftError('FILE_NOT_FOUND', `Image ${source} does not exist. Check the path (relative paths start at ${process.cwd()}).`, { subject, cause: e });
      }
      throw new GraftError('IMAGE_UNREADABLE', `Cannot read ${source}: ${(e as Error).message}. Check its permissions.`, { subject, cause: e });
    }
    if (size === 0) throw new GraftError('FILE_EMPTY', `Image ${source} is empty (0 bytes); an interrupted copy or download leaves files like this. Replace or delete it.`, { subject });
  } else if (source.byteLength === 0) {
    throw new GraftError('FILE_EMPTY', `${subject} is empty (0 bytes); pass the bytes of an encoded image (JPEG, PNG, WebP...).`, { subject });
  }

  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!(maxPixels >= 0)) throw new GraftError('INVALID_ARGUMENT', `maxPixels must be 0 (no limit) or a positive number, not ${maxPixels}.`);
  const background = opts.background ?? WHITE;
  const make = (limit: number | false): Sharp => sharp(source, { failOn: FAIL_ON, limitInputPixels: limit, autoOrient: true });

  let meta: Metadata;
  try {
    // header only, without sharp's limit, so the check below can say how large the image is
    meta = await make(false).metadata();
  } catch (e) {
    throw unreadable(subject, e);
  }
  if (!meta.width || !meta.height) throw new GraftError('IMAGE_UNREADABLE', `${subject} has no pixel size in its header; it is not an image graft can read. Convert it to JPEG or PNG.`, { subject });
  if (maxPixels > 0 && meta.width * meta.height > maxPixels) {
    throw new GraftError(
      'IMAGE_TOO_LARGE',
      `${subject} is ${meta.width}×${meta.height} (${(meta.width * meta.height / 1e6).toFixed(1)} megapixels), more than the limit of ${(maxPixels / 1e6).toFixed(1)}. ` +
        'Downscale it, or raise the limit (maxPixels) if it is a real photo.',
      { subject },
    );
  }
  const upright = meta.autoOrient ?? { width: meta.width, height: meta.height };
  // the backstop for formats whose header understates what decoding produces
  const limit = maxPixels === 0 || maxPixels === Infinity ? false : Math.ceil(maxPixels);
  const hasAlpha = meta.hasAlpha;
  return {
    width: upright.width,
    height: upright.height,
    subject,
    hasAlpha,
    background,
    format: meta.format,
    pipeline: ({ keepAlpha = false } = {}) =>
      keepAlpha && hasAlpha
        ? make(limit).toColourspace('srgb').ensureAlpha()
        : // grey, CMYK, palette, 16-bit, ICC-tagged inputs all end up as 8-bit sRGB with three bands
          make(limit).flatten({ background }).toColourspace('srgb').removeAlpha(),
  };
}

/** Runs a pipeline to raw RGB, turning libvips failures (truncation, corrupt data) into IMAGE_UNREADABLE. */
export async function readRaw(img: OpenedImage, pipeline: Sharp): Promise<DecodedImage> {
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw unreadable(img.subject, e);
  }
  const { data, info } = out;
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (info.channels === 4) return { data: flatten(bytes, img.background), width: info.width, height: info.height };
  if (info.channels !== 3) throw new GraftError('IMAGE_UNREADABLE', `${img.subject} decoded to ${info.channels} channels instead of 3; convert it to an RGB JPEG or PNG.`, { subject: img.subject });
  return { data: bytes, width: info.width, height: info.height };
}

/** Resizes decoded RGB pixels to width × height (no aspect kept) with a libvips kernel. */
export async function resizeRaw(pixels: DecodedImage, width: number, height: number, kernel: 'nearest' | 'linear' | 'cubic' | 'lanczos3'): Promise<DecodedImage> {
  const raw = { width: pixels.width, height: pixels.height, channels: 3 as const };
  const data = await sharp(pixels.data, { raw }).resize(width, height, { fit: 'fill', kernel }).raw().toBuffer();
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height };
}

/** RGBA → RGB over `bg`, each value round((v·a + bg·(255 − a)) / 255). */
function flatten(rgba: Uint8Array, bg: RGB): Uint8Array {
  const n = rgba.length / 4;
  const out = new Uint8Array(n * 3);
  const b = [bg.r, bg.g, bg.b];
  for (let i = 0; i < n; i++) {
    const a = rgba[i * 4 + 3];
    for (let c = 0; c < 3; c++) {
      // round(x / 255) = floor((2x + 255) / 510); x / 255 never ends in exactly .5
      out[i * 3 + c] = Math.floor((2 * (rgba[i * 4 + c] * a + b[c] * (255 - a)) + 255) / 510);
    }
  }
  return out;
}

/** Decodes a whole image: upright, alpha flattened, 8-bit sRGB RGB. */
export async function decodeImage(source: ImageSource, opts: DecodeOptions = {}): Promise<DecodedImage> {
  const img = await openImage(source, opts);
  return readRaw(img, img.pipeline({ keepAlpha: true }));
}

function unreadable(subject: string, e: unknown): GraftError {
  const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
  if (/exceeds pixel limit/i.test(msg)) {
    return new GraftError('IMAGE_TOO_LARGE', `${subject} has more pixels than the limit (${msg}). Downscale it, or raise maxPixels.`, { subject, cause: e });
  }
  const truncated = /premature end|truncat|read error|unexpected end|short read/i.test(msg);
  const what = truncated ? 'is truncated or corrupt' : 'is not an image graft can read';
  const todo = truncated ? 'Re-download or re-export it, or remove it from the data set.' : 'Supported: JPEG, PNG, WebP, GIF, TIFF, AVIF, SVG. Convert it or remove it from the data set.';
  return new GraftError('IMAGE_UNREADABLE', `${subject} ${what} (${msg}). ${todo}`, { subject, cause: e });
}
