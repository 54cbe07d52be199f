type Joinable = Float32Array | Uint8Array;

/** Typed arrays end to end, in one new array that `make` allocates. */
export function concatArrays<T extends Joinable>(parts: readonly T[], make: (length: number) => T): T {
  const out = make(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const concatFloat32 = (parts: readonly Float32Array[]): Float32Array => concatArrays(parts, (n) => new Float32Array(n));
