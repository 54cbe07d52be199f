/**
 * Seeded randomness for training: a small, fast generator (sfc32) and `fork`, which derives an
 * independent stream from a seed and any keys (epoch, image index, purpose...). Deriving a stream per
 * image instead of drawing from one shared stream keeps results independent of batch order,
 * concurrency and which images were skipped.
 */
import { GraftError } from '../errors.js';

export interface Rng {
  /** A uniform float in [0, 1) with 32 random bits. */
  next(): number;
  /** A uniform integer in [0, 2^32). */
  uint32(): number;
  /** Fills `out` with the next `out.length` uint32 outputs: the same values as that many `uint32()` calls, ~20× faster. */
  fillUint32(out: Uint32Array): Uint32Array;
  /** A uniform float in [lo, hi). */
  uniform(lo: number, hi: number): number;
  /** A uniform integer in [lo, hi) (unbiased). */
  int(lo: number, hi: number): number;
  /** true with probability p. */
  bool(p?: number): boolean;
  /** A standard normal sample (Box–Muller). */
  normal(): number;
}

/** MurmurHash3's finaliser: a bijection on uint32 with good avalanche. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function checkSeed(seed: number, what: string): void {
  if (!Number.isSafeInteger(seed)) {
    throw new GraftError('INVALID_ARGUMENT', `${what} must be a whole number (got ${seed}); pass e.g. --seed 42.`);
  }
}

// A safe integer as two uint32 words, so seeds like Date.now() keep all their bits (and -1 ≠ 2^32 − 1).
function words(n: number): [number, number] {
  const lo = n >>> 0;
  const hi = Math.floor(n / 2 ** 32) >>> 0;
  return [lo, hi];
}

function mix(h: number, word: number): number {
  return fmix32((Math.imul(h ^ word, 0x9e3779b1) + 0x7f4a7c15) >>> 0);
}

function hashString(s: string): number {
  // FNV-1a over UTF-16 code units: keys are short labels like "flip" or a file path
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** A uint32 seed derived from `seed` and `keys`; different keys (or key order) give unrelated seeds. */
export function deriveSeed(seed: number, ...keys: readonly (number | string)[]): number {
  checkSeed(seed, 'seed');
  let [lo, hi] = words(seed);
  let h = mix(mix(0x6a09e667, lo), hi);
  for (const k of keys) {
    if (typeof k === 'string') {
      // a tag word keeps the string "3" apart from the number 3
      h = mix(mix(h, 0x5a5a5a5a), hashString(k));
    } else {
      checkSeed(k, 'a random stream key');
      [lo, hi] = words(k);
      h = mix(mix(h, lo), hi);
    }
  }
  return h;
}

/** sfc32 (Chris Doty-Humphrey's Small Fast Counting generator): 128-bit state, passes PractRand. */
export function createRng(seed: number): Rng {
  checkSeed(seed, 'seed');
  const [lo, hi] = words(seed);
  let a = fmix32(lo ^ 0x243f6a88);
  let b = fmix32(hi ^ 0x85a308d3);
  let c = fmix32((lo + 0x13198a2e) >>> 0);
  let d = 1; // the counter: guarantees a period of at least 2^32 whatever the seed
  const uint32 = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t;
  };
  // the first outputs of a freshly seeded sfc32 are poorly mixed; the reference warms it up the same way
  for (let i = 0; i < 12; i++) uint32();
  const fillUint32 = (out: Uint32Array): Uint32Array => {
    // the state in locals and int32 arithmetic (`| 0`, same bits as the `>>> 0` above): the closure's
    // context slots and values ≥ 2^31 (heap numbers in V8) cost ~4× in a tight loop
    let [sa, sb, sc, sd] = [a | 0, b | 0, c | 0, d | 0];
    for (let i = 0; i < out.length; i++) {
      const t = (sa + sb + sd) | 0;
      sd = (sd + 1) | 0;
      sa = sb ^ (sb >>> 9);
      sb = (sc + (sc << 3)) | 0;
      sc = (sc << 21) | (sc >>> 11);
      sc = (sc + t) | 0;
      out[i] = t;
    }
    [a, b, c, d] = [sa >>> 0, sb >>> 0, sc >>> 0, sd >>> 0];
    return out;
  };
  const next = (): number => uint32() / 2 ** 32;
  let spare: number | undefined;
  return {
    next,
    uint32,
    fillUint32,
    uniform: (lo2, hi2) => lo2 + (hi2 - lo2) * next(),
    int(lo2, hi2) {
      const span = hi2 - lo2;
      if (!Number.isInteger(lo2) || !Number.isInteger(hi2) || span <= 0 || span > 2 ** 32) {
        throw new RangeError(`rng.int needs whole numbers lo < hi with hi − lo ≤ 2^32, got [${lo2}, ${hi2})`);
      }
      // rejection sampling: the largest multiple of span below 2^32 makes every value equally likely
      const limit = 2 ** 32 - (2 ** 32 % span);
      let x = uint32();
      while (x >= limit) x = uint32();
      return lo2 + (x % span);
    },
    bool: (p = 0.5) => next() < p,
    normal() {
      if (spare !== undefined) {
        const s = spare;
        spare = undefined;
        return s;
      }
      let u = next();
      while (u === 0) u = next();
      const r = Math.sqrt(-2 * Math.log(u));
      const theta = 2 * Math.PI * next();
      spare = r * Math.sin(theta);
      return r * Math.cos(theta);
    },
  };
}

/** An independent stream for (seed, ...keys), e.g. `fork(seed, epoch, imageIndex)`. */
export function fork(seed: number, ...keys: readonly (number | string)[]): Rng {
  return createRng(deriveSeed(seed, ...keys));
}

/** Fisher–Yates shuffle in place; returns the array. */
export function shuffle<T>(rng: Rng, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(0, i + 1);
    const t = items[i];
    items[i] = items[j];
    items[j] = t;
  }
  return items;
}
