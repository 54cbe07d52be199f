/**
 * Arithmetic on dimensions that may be symbolic. A symbolic dim is a product of names and a coefficient
 * written as a string ("N", "3*N", "N*T"), so a batch dim survives Flatten/Reshape(-1) round trips: the
 * product of [N, 512, 1, 1] divided by 512 is "N" again. Sums of symbols are not represented (→ null).
 */
import type { Dim } from './ir.js';

interface Product {
  k: number;
  syms: string[];
}

function asProduct(d: Dim): Product | null {
  if (d === null) return null;
  if (typeof d === 'number') return { k: d, syms: [] };
  let k = 1;
  const syms: string[] = [];
  for (const part of d.split('*')) {
    const n = Number(part);
    if (part.trim() !== '' && Number.isFinite(n)) k *= n;
    else syms.push(part);
  }
  return { k, syms: syms.sort() };
}

function fromProduct(p: Product): Dim {
  if (p.k === 0 || p.syms.length === 0) return p.k;
  const s = p.syms.join('*');
  return p.k === 1 ? s : `${p.k}*${s}`;
}

export const isNumber = (d: Dim): d is number => typeof d === 'number';

/** True when every dim is a known number. */
export function isStatic(shape: readonly Dim[] | undefined): shape is number[] {
  return !!shape && shape.every(isNumber);
}

export function mulDim(a: Dim, b: Dim): Dim {
  const pa = asProduct(a);
  const pb = asProduct(b);
  if (!pa || !pb) return a === 0 || b === 0 ? 0 : null;
  return fromProduct({ k: pa.k * pb.k, syms: [...pa.syms, ...pb.syms].sort() });
}

export function prodDims(dims: readonly Dim[]): Dim {
  let p: Dim = 1;
  for (const d of dims) p = mulDim(p, d);
  return p;
}

/** a / b when it divides exactly (coefficients and symbols alike); null otherwise. */
export function divDim(a: Dim, b: Dim): Dim {
  const pa = asProduct(a);
  const pb = asProduct(b);
  if (!pa || !pb || pb.k === 0) return null;
  if (pa.k % pb.k !== 0) return null;
  const syms = [...pa.syms];
  for (const s of pb.syms) {
    const i = syms.indexOf(s);
    if (i < 0) return null;
    syms.splice(i, 1);
  }
  return fromProduct({ k: pa.k / pb.k, syms });
}

export function addDim(a: Dim, b: Dim): Dim {
  if (isNumber(a) && isNumber(b)) return a + b;
  if (b === 0) return a;
  if (a === 0) return b;
  return null;
}

export function subDim(a: Dim, b: Dim): Dim {
  if (isNumber(a) && isNumber(b)) return a - b;
  if (b === 0) return a;
  if (typeof a === 'string' && a === b) return 0;
  return null;
}

export function sumDims(dims: readonly Dim[]): Dim {
  let s: Dim = 0;
  for (const d of dims) s = addDim(s, d);
  return s;
}

/**
 * Multidirectional broadcasting of one position: 1 vs x → x; a symbol against a number other than 1 → the
 * number (the symbol must equal it or be 1); equal symbols stay; different symbols or unknowns → null.
 */
export function broadcastDim(a: Dim, b: Dim): Dim {
  if (a === 1) return b;
  if (b === 1) return a;
  if (isNumber(a) && isNumber(b)) return a === b ? a : null;
  if (isNumber(a)) return a;
  if (isNumber(b)) return b;
  return a !== null && a === b ? a : null;
}

/** Numpy-style broadcast of several shapes; undefined when any rank is unknown. */
export function broadcastShapes(...shapes: (readonly Dim[] | undefined)[]): Dim[] | undefined {
  if (shapes.some((s) => !s)) return undefined;
  const rank = Math.max(0, ...shapes.map((s) => s!.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes as (readonly Dim[])[]) {
      const j = s.length - rank + i;
      if (j >= 0) d = broadcastDim(d, s[j]);
    }
    out.push(d);
  }
  return out;
}

/** Two dims that must be equal: keep the more informative one (number, then symbol). */
export function mergeDim(a: Dim, b: Dim): Dim {
  if (isNumber(a)) return a;
  if (isNumber(b)) return b;
  return a ?? b;
}

/** Merges two views of one shape (e.g. inferred and declared); undefined when both are unknown. */
export function mergeShapes(a: readonly Dim[] | undefined, b: readonly Dim[] | undefined): Dim[] | undefined {
  if (!a) return b ? [...b] : undefined;
  if (!b || b.length !== a.length) return [...a];
  return a.map((d, i) => mergeDim(d, b[i]));
}

/** The value of a dim once its symbols are bound, e.g. evalDim('2*N', { N: 8 }) = 16; null if unbound. */
export function evalDim(d: Dim, env: Readonly<Record<string, number>>): number | null {
  const p = asProduct(d);
  if (!p) return null;
  let v = p.k;
  for (const s of p.syms) {
    const x = env[s];
    if (x === undefined) return null;
    v *= x;
  }
  return v;
}
