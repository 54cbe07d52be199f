/**
 * Fine-tuning checkpoints: OUT/checkpoint/state.json + a binary file of every tensor needed to resume
 * exactly (trainable weights, BN statistics, optimizer buffers, the best weights so far). The binary is
 * written under a fresh name first and state.json — the commit point — replaced atomically after, so a
 * kill at any moment leaves the previous complete checkpoint or the new one, never a mix.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraftError } from '../errors.js';
import { atomicWriteFile, removeQuietly } from '../util/fs.js';
import type { EpochRecord } from './metrics-json.js';
import type { TrainerState } from './trainer.task.js';

export const CHECKPOINT_DIR = 'checkpoint';
const STATE = 'state.json';
const FORMAT = 1;

export interface Progress {
  /** Phase the run is in ('finetune' after the head warm-up). */
  phase: string;
  /** Epochs completed in this phase. */
  epoch: number;
  /** Global optimizer step. */
  step: number;
  /** Set when the checkpoint was taken mid-epoch (on interrupt): batches done and running sums. */
  partial?: { batch: number; lossSum: number; correct: number; seen: number; seconds: number };
  history: EpochRecord[];
  best?: { valLoss: number; epoch: number };
  /** Warm-up phase results the next phase starts from (head weights), kept until it is over. */
  extra?: Record<string, unknown>;
}

export interface Checkpoint extends Progress {
  state: TrainerState;
  bestWeights?: Record<string, Float32Array>;
  warmupWeights?: Record<string, Float32Array>;
}

interface TensorEntry {
  group: 'weights' | 'best' | 'warmup' | `opt:${string}`;
  name: string;
  offset: number;
  length: number;
}

interface StateJson extends Progress {
  format: number;
  /** Identity of what is being trained (data listing, model, options): resuming anything else is refused. */
  fingerprint: string;
  file: string;
  sha256: string;
  optimizerStep: number;
  tensors: TensorEntry[];
}

export function fingerprint(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

export function checkpointExists(out: string): boolean {
  return existsSync(join(out, CHECKPOINT_DIR, STATE));
}

export function saveCheckpoint(out: string, fp: string, c: Checkpoint): void {
  const dir = join(out, CHECKPOINT_DIR);
  mkdirSync(dir, { recursive: true });
  const entries: TensorEntry[] = [];
  const chunks: Float32Array[] = [];
  let offset = 0;
  const add = (group: TensorEntry['group'], tensors: Record<string, Float32Array> | undefined) => {
    for (const [name, t] of Object.entries(tensors ?? {})) {
      entries.push({ group, name, offset, length: t.length });
      chunks.push(t);
      offset += t.length;
    }
  };
  add('weights', c.state.weights);
  for (const [name, bufs] of Object.entries(c.state.optimizer.buffers)) for (const [k, t] of Object.entries(bufs)) add(`opt:${k}`, { [name]: t });
  add('best', c.bestWeights);
  add('warmup', c.warmupWeights);
  // the tensors go to the file one after another: joining them first would hold another copy of them all
  const parts = chunks.map((t) => new Uint8Array(t.buffer, t.byteOffset, t.byteLength));
  const hash = createHash('sha256');
  for (const p of parts) hash.update(p);
  const sha256 = hash.digest('hex');
  const file = `tensors-${c.phase}-${c.step}-${sha256.slice(0, 12)}.bin`;
  atomicWriteFile(join(dir, file), parts);
  const json: StateJson = {
    format: FORMAT,
    fingerprint: fp,
    file,
    sha256,
    optimizerStep: c.state.optimizer.step,
    tensors: entries,
    phase: c.phase,
    epoch: c.epoch,
    step: c.step,
    partial: c.partial,
    history: c.history,
    best: c.best,
    extra: c.extra,
  };
  atomicWriteFile(join(dir, STATE), JSON.stringify(json));
  // older tensor files are garbage once state.json points at the new one
  for (const f of readdirSync(dir)) if (f !== file && f !== STATE && f.startsWith('tensors-')) removeQuietly(join(dir, f));
}

export function loadCheckpoint(out: string, fp: string): Checkpoint {
  const dir = join(out, CHECKPOINT_DIR);
  let json: StateJson;
  try {
    json = JSON.parse(readFileSync(join(dir, STATE), 'utf8')) as StateJson;
  } catch (e) {
    throw new GraftError('CHECKPOINT_INVALID', `${join(dir, STATE)} cannot be read (${(e as Error).message}). Start again without --resume.`, { subject: out, cause: e });
  }
  if (json.format !== FORMAT) throw new GraftError('CHECKPOINT_INVALID', `the checkpoint in ${out} has format ${json.format}; this graft reads format ${FORMAT}.`, { subject: out });
  if (json.fingerprint !== fp) {
    throw new GraftError(
      'CHECKPOINT_INVALID',
      `the checkpoint in ${out} was made with other data, model or options. Resume with the same command line, or start again with --overwrite.`,
      { subject: out },
    );
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(join(dir, json.file));
  } catch (e) {
    throw new GraftError('CHECKPOINT_INVALID', `the checkpoint's tensor file ${json.file} is missing. Start again with --overwrite.`, { subject: out, cause: e });
  }
  if (createHash('sha256').update(bytes).digest('hex') !== json.sha256) {
    throw new GraftError('CHECKPOINT_INVALID', `the checkpoint's tensor file ${json.file} is damaged. Start again with --overwrite.`, { subject: out });
  }
  // a view when the bytes are float-aligned (each tensor is copied out below, so the file's buffer is
  // dropped after loading either way)
  const all = bytes.byteOffset % 4 === 0 ? new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4) : new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const weights: Record<string, Float32Array> = {};
  const best: Record<string, Float32Array> = {};
  const warmup: Record<string, Float32Array> = {};
  const buffers: Record<string, Record<string, Float32Array>> = {};
  for (const e of json.tensors) {
    const t = all.slice(e.offset, e.offset + e.length);
    if (e.group === 'weights') weights[e.name] = t;
    else if (e.group === 'best') best[e.name] = t;
    else if (e.group === 'warmup') warmup[e.name] = t;
    else (buffers[e.name] ??= {})[e.group.slice(4)] = t;
  }
  return {
    phase: json.phase,
    epoch: json.epoch,
    step: json.step,
    partial: json.partial,
    history: json.history,
    best: json.best,
    extra: json.extra,
    state: { weights, optimizer: { step: json.optimizerStep, buffers } },
    bestWeights: Object.keys(best).length ? best : undefined,
    warmupWeights: Object.keys(warmup).length ? warmup : undefined,
  };
}

export function removeCheckpoint(out: string): void {
  removeQuietly(join(out, CHECKPOINT_DIR));
}
