/**
 * Checkpoints on disk: what saveCheckpoint writes loadCheckpoint reads back exactly, tensors given as
 * views into larger buffers included (they are written part by part, not joined first).
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHECKPOINT_DIR, loadCheckpoint, saveCheckpoint, type Checkpoint } from '../../src/train/checkpoint.js';
import { atomicWriteFile } from '../../src/util/fs.js';

const ramp = (n: number, from: number) => Float32Array.from({ length: n }, (_, i) => from + i / 8);

function checkpoint(): Checkpoint {
  // views at odd float offsets into larger buffers, as the trainer's arena hands out
  const arena = ramp(64, 100);
  return {
    phase: 'finetune',
    epoch: 2,
    step: 17,
    history: [],
    best: { valLoss: 0.5, epoch: 1 },
    extra: { lr: 1e-3 },
    state: {
      weights: { 'conv.weight': arena.subarray(3, 15), 'fc.bias': ramp(3, -1) },
      optimizer: { step: 17, buffers: { 'conv.weight': { m: arena.subarray(21, 33), v: arena.subarray(41, 53) }, 'fc.bias': { m: ramp(3, 7), v: ramp(3, 9) } } },
    },
    bestWeights: { 'conv.weight': ramp(12, 50), 'fc.bias': ramp(3, 60) },
    warmupWeights: { 'head.weight': ramp(5, -20) },
  };
}

describe('checkpoints', () => {
  it('reads back exactly what was saved, views into larger buffers included', () => {
    const out = mkdtempSync(join(tmpdir(), 'graft-ckpt-'));
    const saved = checkpoint();
    saveCheckpoint(out, 'fp', saved);
    const loaded = loadCheckpoint(out, 'fp');
    expect(loaded.state).toEqual({ weights: saved.state.weights, optimizer: saved.state.optimizer });
    expect(loaded.bestWeights).toEqual(saved.bestWeights);
    expect(loaded.warmupWeights).toEqual(saved.warmupWeights);
    expect({ phase: loaded.phase, epoch: loaded.epoch, step: loaded.step, best: loaded.best, extra: loaded.extra }).toEqual({ phase: 'finetune', epoch: 2, step: 17, best: saved.best, extra: saved.extra });
    // every loaded tensor owns its memory (none keeps the file's buffer alive)
    for (const t of Object.values(loaded.state.weights)) expect(t.buffer.byteLength).toBe(t.byteLength);
    // one tensor file and state.json, no temp files
    expect(readdirSync(join(out, CHECKPOINT_DIR)).filter((f) => !f.startsWith('tensors-') && f !== 'state.json')).toEqual([]);
  });

  it('refuses a damaged tensor file', () => {
    const out = mkdtempSync(join(tmpdir(), 'graft-ckpt-'));
    saveCheckpoint(out, 'fp', checkpoint());
    const dir = join(out, CHECKPOINT_DIR);
    const file = join(dir, readdirSync(dir).find((f) => f.startsWith('tensors-'))!);
    const bytes = readFileSync(file);
    bytes[5] ^= 1;
    writeFileSync(file, bytes);
    expect(() => loadCheckpoint(out, 'fp')).toThrow(expect.objectContaining({ code: 'CHECKPOINT_INVALID' }));
  });
});

describe('atomicWriteFile', () => {
  it('writes parts one after another, views at their offsets', () => {
    const dir = mkdtempSync(join(tmpdir(), 'graft-fs-'));
    const big = Uint8Array.from({ length: 40 }, (_, i) => i);
    atomicWriteFile(join(dir, 'f.bin'), [big.subarray(5, 9), new Uint8Array(0), Uint8Array.of(200, 201), big.subarray(30)]);
    expect([...readFileSync(join(dir, 'f.bin'))]).toEqual([5, 6, 7, 8, 200, 201, ...Array.from({ length: 10 }, (_, i) => 30 + i)]);
    expect(readdirSync(dir)).toEqual(['f.bin']);
  });
});
