/**
 * Resizing interleaved RGB bytes the way PIL's Image.resize does (and so torchvision, timm and Hugging
 * Face image processors): separable convolution with the filter stretched by the downscale factor
 * (antialiasing), horizontal pass first, 22-bit fixed-point weights, rounding to uint8 after each pass.
 * NEAREST samples the source pixel under each output pixel's centre. Following the same arithmetic makes
 * the results equal PIL's to the byte, which a general-purpose resizer (libvips) does not: it aligns
 * upscaling differently and box-shrinks before filtering large reductions.
 */
import type { Interpolation } from '../models/preprocess.js';
import type { DecodedImage } from './image.js';

export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

interface Filter {
  support: number;
  fn: (x: number) => number;
}

const sinc = (x: number): number => {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
};

const FILTERS: Record<Exclude<Interpolation, 'nearest'>, Filter> = {
  bilinear: {
    support: 1,
    fn: (x) => {
      if (x < 0) x = -x;
      return x < 1 ? 1 - x : 0;
    },
  },
  // Keys' cubic with a = −0.5 (Catmull-Rom)
  bicubic: {
    support: 2,
    fn: (x) => {
      const a = -0.5;
      if (x < 0) x = -x;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  lanczos: { support: 3, fn: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);
const SATURATE = ONE * 256;

interface Coeffs {
  /** Per output index: first input index and tap count. */
  start: Int32Array;
  count: Int32Array;
  /** ksize fixed-point weights per output index. */
  weights: Int32Array;
  ksize: number;
}

function coefficients(inSize: number, outSize: number, filter: Filter): Coeffs {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const inv = 1 / filterScale;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    // C's (int) truncation; negatives are clamped to 0 right after, so trunc vs floor cannot differ here
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - lo;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      w[i] = filter.fn((i + lo - center + 0.5) * inv);
      sum += w[i];
    }
    for (let i = 0; i < n; i++) {
      const v = sum !== 0 ? w[i] / sum : w[i];
      weights[o * ksize + i] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    start[o] = lo;
    count[o] = n;
  }
  return { start, count, weights, ksize };
}

function clip8(acc: number): number {
  if (acc >= SATURATE) return 255;
  if (acc <= 0) return 0;
  return acc >> PRECISION_BITS;
}

/**
 * Crops `box` out of `src`, resizes it to outW × outH with `interp` exactly as PIL does
 * (`img.crop(box).resize((outW, outH))`), and returns only the `window` of that result (default: all).
 */
export function resizeRGB(src: DecodedImage, box: Box, outW: number, outH: number, interp: Interpolation, window?: Box): DecodedImage {
  const win = window ?? { left: 0, top: 0, width: outW, height: outH };
  checkBox(box, src.width, src.height, 'source box');
  checkBox(win, outW, outH, 'output window');
  return interp === 'nearest' ? nearest(src, box, outW, outH, win) : filtered(src, box, outW, outH, FILTERS[interp], win);
}

function checkBox(b: Box, w: number, h: number, what: string): void {
  const ok = [b.left, b.top, b.width, b.height].every(Number.isInteger) && b.left >= 0 && b.top >= 0 && b.width > 0 && b.height > 0 && b.left + b.width <= w && b.top + b.height <= h;
  if (!ok) throw new RangeError(`${what} ${JSON.stringify(b)} does not fit in ${w}×${h}`);
}

// PIL resizes NEAREST through an affine scale whose source position is accumulated step by step
// (x0 = s/2, x += s); doing the same additions keeps the rare boundary cases identical.
function nearestIndex(inSize: number, outSize: number, first: number, n: number): Int32Array {
  const idx = new Int32Array(n);
  const s = inSize / outSize;
  let pos = s * 0.5;
  for (let o = 0; o < first + n; o++) {
    if (o >= first) idx[o - first] = Math.min(Math.trunc(pos), inSize - 1);
    pos += s;
  }
  return idx;
}

function nearest(src: DecodedImage, box: Box, outW: number, outH: number, win: Box): DecodedImage {
  const xs = nearestIndex(box.width, outW, win.left, win.width);
  const ys = nearestIndex(box.height, outH, win.top, win.height);
  const out = new Uint8Array(win.width * win.height * 3);
  const stride = src.width * 3;
  let o = 0;
  for (let y = 0; y < win.height; y++) {
    const row = (box.top + ys[y]) * stride + box.left * 3;
    for (let x = 0; x < win.width; x++) {
      const p = row + xs[x] * 3;
      out[o++] = src.data[p];
      out[o++] = src.data[p + 1];
      out[o++] = src.data[p + 2];
    }
  }
  return { data: out, width: win.width, height: win.height };
}

function filtered(src: DecodedImage, box: Box, outW: number, outH: number, filter: Filter, win: Box): DecodedImage {
  const needH = outW !== box.width;
  const needV = outH !== box.height;
  const cv = needV ? coefficients(box.height, outH, filter) : null;
  // source rows (relative to box.top) the output window needs
  let rowFirst = win.top;
  let rowEnd = win.top + win.height;
  if (cv) {
    rowFirst = cv.start[win.top];
    rowEnd = 0;
    for (let y = win.top; y < win.top + win.height; y++) rowEnd = Math.max(rowEnd, cv.start[y] + cv.count[y]);
  }
  const rows = rowEnd - rowFirst;
  const sd = src.data;
  const stride = src.width * 3;

  // horizontal pass → `tmp`: `rows` rows of the window's columns
  const tw = win.width;
  const tmp = new Uint8Array(rows * tw * 3);
  if (needH) {
    const ch = coefficients(box.width, outW, filter);
    const k = ch.weights;
    for (let r = 0; r < rows; r++) {
      const rowBase = (box.top + rowFirst + r) * stride + box.left * 3;
      let t = r * tw * 3;
      for (let x = win.left; x < win.left + tw; x++) {
        const n = ch.count[x];
        const kb = x * ch.ksize;
        let p = rowBase + ch.start[x] * 3;
        let a0 = HALF;
        let a1 = HALF;
        let a2 = HALF;
        for (let i = 0; i < n; i++, p += 3) {
          const w = k[kb + i];
          // int32 maths like PIL's INT32 accumulators: |sum| < 2^31 for every filter here
          a0 = (a0 + Math.imul(sd[p], w)) | 0;
          a1 = (a1 + Math.imul(sd[p + 1], w)) | 0;
          a2 = (a2 + Math.imul(sd[p + 2], w)) | 0;
        }
        tmp[t++] = clip8(a0);
        tmp[t++] = clip8(a1);
        tmp[t++] = clip8(a2);
      }
    }
  } else {
    for (let r = 0; r < rows; r++) {
      const from = (box.top + rowFirst + r) * stride + (box.left + win.left) * 3;
      tmp.set(sd.subarray(from, from + tw * 3), r * tw * 3);
    }
  }
  if (!cv) return { data: tmp, width: tw, height: rows };

  // vertical pass
  const out = new Uint8Array(win.width * win.height * 3);
  const k = cv.weights;
  const ts = tw * 3;
  let o = 0;
  for (let y = win.top; y < win.top + win.height; y++) {
    const n = cv.count[y];
    const kb = y * cv.ksize;
    const base = (cv.start[y] - rowFirst) * ts;
    for (let c = 0; c < ts; c++) {
      let acc = HALF;
      let p = base + c;
      for (let i = 0; i < n; i++, p += ts) acc = (acc + Math.imul(tmp[p], k[kb + i])) | 0;
      out[o++] = clip8(acc);
    }
  }
  return { data: out, width: win.width, height: win.height };
}
