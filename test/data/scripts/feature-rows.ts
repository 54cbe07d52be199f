import { createHash } from 'node:crypto';

/** A content-hash-shaped key for synthetic row i. */
export function testHash(i: number): string {
  return createHash('sha256').update(`row ${i}`).digest('hex');
}

/** Synthetic row i: i + k / 8 at position k. */
export function testRow(i: number, dim: number): Float32Array {
  return Float32Array.from({ length: dim }, (_, k) => i + k / 8);
}
