/**
 * Real exported models for graph tests, when they exist on this machine: `test/fixtures/models/*.onnx`
 * (written by scripts/export-test-models.py, with weights, not committed) and the weightless torchvision
 * exports under `test/fixtures/torch/<name>/model.onnx`, whose float weights are filled in here (shapes and
 * graph structure do not depend on them).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Model } from '../../src/graph/graph.js';
import { loadModel, modelFromProto } from '../../src/graph/serialize.js';
import { decodeModelProto, int64ToNumber } from '../../src/onnx/proto.js';
import { dtypeFromOnnx } from '../../src/onnx/tensor.js';
import { rand } from './oracle.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures');

export interface RealModel {
  name: string;
  /** Number of float weights (approximate for files with weights). */
  params: number;
  load(): Model;
}

function weightlessParams(path: string): number {
  const proto = decodeModelProto(readFileSync(path), path);
  return (proto.graph!.initializer ?? []).reduce((s, t) => s + (t.dims ?? []).reduce<number>((a, d) => a * int64ToNumber(d), 1), 0);
}

/** Plausible random weights by role (conv/dense fan-in scaling, BN statistics near identity), so activations stay finite. */
function loadWeightless(path: string): Model {
  const proto = decodeModelProto(readFileSync(path), path);
  const role = new Map<string, [string, number]>();
  for (const n of proto.graph!.node ?? []) (n.input ?? []).forEach((i, k) => role.has(i) || role.set(i, [n.opType ?? '', k]));
  let seed = 1;
  for (const t of proto.graph!.initializer ?? []) {
    const hasData = (t.rawData?.length ?? 0) > 0 || t.floatData?.length || t.int64Data?.length || t.int32Data?.length || t.dataLocation;
    if (hasData || dtypeFromOnnx(t.dataType ?? 0) !== 'float32') continue;
    const dims = (t.dims ?? []).map(int64ToNumber);
    const n = dims.reduce((a, d) => a * d, 1);
    const [op, slot] = role.get(t.name ?? '') ?? ['', 0];
    let range: [number, number] = [-0.5, 0.5];
    if (op === 'BatchNormalization') range = ([[0, 0], [0.5, 1.5], [-0.2, 0.2], [-0.1, 0.1], [0.5, 1.5]] as [number, number][])[slot];
    else if (slot === 1 && dims.length >= 2) {
      const bound = 1 / Math.sqrt(n / dims[0]);
      range = [-bound, bound];
    } else if (slot === 2) range = [-0.1, 0.1];
    t.rawData = new Uint8Array(rand(n, seed++, ...range).buffer);
  }
  return modelFromProto(proto);
}

export function realModels(maxParams = 30e6): RealModel[] {
  const out: RealModel[] = [];
  const dir = join(FIXTURES, 'models');
  if (existsSync(dir)) {
    for (const f of readdirSync(dir).sort()) if (f.endsWith('.onnx')) {
      const p = join(dir, f);
      out.push({ name: f.replace(/\.onnx$/, ''), params: statSync(p).size / 4, load: () => loadModel(p) });
    }
  }
  const torch = join(FIXTURES, 'torch');
  if (existsSync(torch)) {
    for (const d of readdirSync(torch).sort()) {
      const p = join(torch, d, 'model.onnx');
      if (existsSync(p) && !out.some((m) => m.name === d)) out.push({ name: `torch/${d}`, params: weightlessParams(p), load: () => loadWeightless(p) });
    }
  }
  return out.filter((m) => m.params <= maxParams);
}
