import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage, openImage } from '../../src/data/image.js';
import { GraftError } from '../../src/errors.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'graft-image-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A w × h RGB image whose pixel (x, y) is (x, y, 77): positions can be read back after orientation. */
function coordinates(w: number, h: number): Buffer {
  const b = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) b.set([x, y, 77], (y * w + x) * 3);
  return b;
}

const px = (img: { data: Uint8Array; width: number }, x: number, y: number): number[] => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));

async function expectError(p: Promise<unknown>, code: string, subject?: string): Promise<GraftError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(GraftError);
  const g = e as GraftError;
  expect(g.code).toBe(code);
  if (subject !== undefined) expect(g.subject).toBe(subject);
  return g;
}

/** A PNG whose header claims w × h but carries almost no data: decoding it would fail, reading the header does not. */
function pngHeaderOnly(w: number, h: number): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(10))), chunk('IEND', Buffer.alloc(0))]);
}

describe('decodeImage conventions', () => {
  it('decodes RGB pixels exactly (lossless PNG)', async () => {
    const png = await sharp(coordinates(20, 10), { raw: { width: 20, height: 10, channels: 3 } }).png().toBuffer();
    const img = await decodeImage(new Uint8Array(png));
    expect([img.width, img.height]).toEqual([20, 10]);
    expect(img.data.length).toBe(20 * 10 * 3);
    expect(px(img, 13, 7)).toEqual([13, 7, 77]);
  });

  it('applies EXIF orientation 6 (rotate 90° clockwise) before anything else', async () => {
    // stored 40 × 30; orientation 6 means the upright image is 30 × 40 and stored (x, y) lands at (29 − y, x)
    const jpgPath = join(dir, 'rot6.png');
    await sharp(coordinates(40, 30), { raw: { width: 40, height: 30, channels: 3 } })
      .png()
      .withMetadata({ orientation: 6 })
      .toFile(jpgPath);
    const opened = await openImage(jpgPath);
    expect([opened.width, opened.height]).toEqual([30, 40]);
    const img = await decodeImage(jpgPath);
    expect([img.width, img.height]).toEqual([30, 40]);
    for (const [sx, sy] of [
      [0, 0],
      [39, 0],
      [5, 17],
      [39, 29],
    ]) {
      expect(px(img, 29 - sy, sx)).toEqual([sx, sy, 77]);
    }
  });

  it('flattens alpha onto white by default, or onto the given background, rounding to nearest', async () => {
    const rgba = Buffer.from([
      10, 20, 30, 0, // fully transparent: the hidden colour must not show
      200, 100, 50, 255, // opaque
      0, 0, 0, 128, // half-transparent black over white → 127
      200, 0, 0, 64,
    ]);
    const png = await sharp(rgba, { raw: { width: 4, height: 1, channels: 4 } }).png().toBuffer();
    const white = await decodeImage(png);
    expect(Array.from(white.data)).toEqual([255, 255, 255, 200, 100, 50, 127, 127, 127, 241, 191, 191]);
    const onBlue = await decodeImage(png, { background: { r: 0, g: 0, b: 255 } });
    // round((v·a + bg·(255 − a)) / 255)
    expect(Array.from(onBlue.data)).toEqual([0, 0, 255, 200, 100, 50, 0, 0, 127, 50, 0, 191]);
  });

  it('turns grey, 16-bit grey, palette and CMYK images into 8-bit RGB', async () => {
    const grey = await sharp(Buffer.from([0, 100, 255]), { raw: { width: 3, height: 1, channels: 1 } }).png().toBuffer();
    expect(Array.from((await decodeImage(grey)).data)).toEqual([0, 0, 0, 100, 100, 100, 255, 255, 255]);

    // 16-bit: the high byte (v >> 8)
    const g16 = await sharp(Uint16Array.of(0, 0x1234, 0xff00, 0xffff), { raw: { width: 4, height: 1, channels: 1 } })
      .toColourspace('grey16')
      .png()
      .toBuffer();
    expect((await sharp(g16).metadata()).depth).toBe('ushort');
    expect(Array.from((await decodeImage(g16)).data)).toEqual([0, 0, 0, 0x12, 0x12, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

    const colours = Buffer.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]);
    const palette = await sharp(colours, { raw: { width: 4, height: 1, channels: 3 } }).png({ palette: true, colours: 4, dither: 0 }).toBuffer();
    expect((await sharp(palette).metadata()).isPalette).toBe(true);
    expect(Array.from((await decodeImage(palette)).data)).toEqual(Array.from(colours));

    const cmyk = await sharp(Buffer.from([200, 30, 30, 30, 200, 30, 30, 30, 200]), { raw: { width: 3, height: 1, channels: 3 } })
      .toColourspace('cmyk')
      .jpeg({ quality: 100 })
      .toBuffer();
    expect((await sharp(cmyk).metadata()).space).toBe('cmyk');
    const rgb = await decodeImage(cmyk);
    expect(rgb.data.length).toBe(9);
    // colour-managed round trip: each pixel keeps its dominant channel
    for (let i = 0; i < 3; i++) {
      const p = px(rgb, i, 0);
      expect(p.indexOf(Math.max(...p))).toBe(i);
    }
  });
});

describe('decodeImage errors', () => {
  it('FILE_NOT_FOUND for a missing path', async () => {
    const p = join(dir, 'nope.jpg');
    const e = await expectError(decodeImage(p), 'FILE_NOT_FOUND', p);
    expect(e.message).toContain(p);
  });

  it('FILE_EMPTY for a zero-byte file or buffer', async () => {
    const p = join(dir, 'empty.jpg');
    writeFileSync(p, '');
    await expectError(decodeImage(p), 'FILE_EMPTY', p);
    await expectError(decodeImage(new Uint8Array(0), { name: 'upload.jpg' }), 'FILE_EMPTY', 'upload.jpg');
  });

  it('IMAGE_UNREADABLE for a file that is not an image, and for a directory', async () => {
    const p = join(dir, 'notes.jpg');
    writeFileSync(p, 'these are not pixels\n');
    const e = await expectError(decodeImage(p), 'IMAGE_UNREADABLE', p);
    expect(e.message).toMatch(/not an image/);
    const d = join(dir, 'folder.png');
    mkdirSync(d);
    await expectError(decodeImage(d), 'IMAGE_UNREADABLE', d);
  });

  it('IMAGE_UNREADABLE for truncated JPEG and PNG files instead of grey filler', async () => {
    const noise = Buffer.alloc(64 * 48 * 3);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24;
    const raw = { raw: { width: 64, height: 48, channels: 3 as const } };
    for (const [ext, bytes] of [
      ['jpg', await sharp(noise, raw).jpeg({ quality: 90 }).toBuffer()],
      ['png', await sharp(noise, raw).png().toBuffer()],
    ] as const) {
      const p = join(dir, `cut.${ext}`);
      writeFileSync(p, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
      // the header is intact, so opening works; decoding must fail
      await expect(openImage(p)).resolves.toMatchObject({ width: 64, height: 48 });
      const e = await expectError(decodeImage(p), 'IMAGE_UNREADABLE', p);
      expect(e.message).toMatch(/truncated/);
    }
  });

  it('IMAGE_TOO_LARGE from the header alone, with a configurable limit', async () => {
    // 30 000 × 30 000 claimed, ~100 bytes of data: only a header check can call this "too large"
    const p = join(dir, 'bomb.png');
    writeFileSync(p, pngHeaderOnly(30_000, 30_000));
    const e = await expectError(decodeImage(p), 'IMAGE_TOO_LARGE', p);
    expect(e.message).toMatch(/900\.0 megapixels/);

    const small = join(dir, 'small.png');
    await sharp(coordinates(40, 30), { raw: { width: 40, height: 30, channels: 3 } }).png().toFile(small);
    await expectError(decodeImage(small, { maxPixels: 1000 }), 'IMAGE_TOO_LARGE', small);
    await expect(decodeImage(small, { maxPixels: 1200 })).resolves.toMatchObject({ width: 40, height: 30 });
    await expect(decodeImage(small, { maxPixels: 0 })).resolves.toMatchObject({ width: 40, height: 30 });
  });
});
