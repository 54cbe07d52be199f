/**
 * atomicWriteFile's part-by-part write against a file system that takes fewer bytes than asked: write(2)
 * may, and a regular file on this machine never does, so node:fs's writeSync is replaced by one that
 * writes at most 3 bytes per call.
 */
import type * as NodeFs from 'node:fs';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';

const calls = vi.hoisted(() => ({ n: 0 }));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof NodeFs>();
  const writeSync = (fd: number, buffer: Uint8Array, offset = 0) => {
    calls.n++;
    return fs.writeSync(fd, buffer.subarray(offset, Math.min(buffer.byteLength, offset + 3)));
  };
  return { ...fs, default: { ...fs, writeSync }, writeSync };
});

const { atomicWriteFile } = await import('../../src/util/fs.js');

describe('atomicWriteFile with short writes', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('writes every byte of every part, in order, and leaves no temp file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'graft-fs-'));
    dirs.push(dir);
    const big = Uint8Array.from({ length: 40 }, (_, i) => i);
    const parts = [big.subarray(5, 12), new Uint8Array(0), Uint8Array.of(200, 201), big.subarray(30)];
    calls.n = 0;
    atomicWriteFile(join(dir, 'f.bin'), parts);
    expect(Array.from(readFileSync(join(dir, 'f.bin')))).toEqual([5, 6, 7, 8, 9, 10, 11, 200, 201, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39]);
    expect(calls.n, 'the parts took several writes each').toBeGreaterThanOrEqual(3 + 1 + 4);
    expect(readdirSync(dir)).toEqual(['f.bin']);
  });
});
