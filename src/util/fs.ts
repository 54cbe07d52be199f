import { closeSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

let counter = 0;

/** A temp name in the same directory, so the final rename is atomic on one filesystem. */
export function tempPathFor(path: string): string {
  return `${path}.tmp-${process.pid}-${Date.now().toString(36)}-${counter++}`;
}

/**
 * Writes `bytes` to `path` so that readers see either the old file or the complete new one, never a
 * half-written file. `bytes` may come in parts, written one after another (no joined copy).
 * `alsoRename` moves companion temp files into place just before the main file.
 */
export function atomicWriteFile(path: string, bytes: Uint8Array | string | readonly Uint8Array[], opts: { alsoRename?: [string, string][] } = {}): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  try {
    if (Array.isArray(bytes)) writeParts(tmp, bytes);
    else writeFileSync(tmp, bytes as Uint8Array | string);
    for (const [from, to] of opts.alsoRename ?? []) renameSync(from, to);
    renameSync(tmp, path);
  } catch (e) {
    removeQuietly(tmp);
    throw e;
  }
}

function writeParts(path: string, parts: readonly Uint8Array[]): void {
  const fd = openSync(path, 'w');
  try {
    for (const p of parts) {
      for (let done = 0; done < p.byteLength; ) done += writeSync(fd, p, done);
    }
  } finally {
    closeSync(fd);
  }
}

export function removeQuietly(path: string): void {
  try {
    rmSync(path, { recursive: true, force: true });
  } catch {
    // best effort: a leftover temp file is harmless
  }
}
