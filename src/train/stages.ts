/**
 * A backbone's blocks and stages, found from the graph: a block runs between two consecutive cut
 * points (values every path passes through — the end of a residual block, a Keras layer boundary), and
 * a stage groups consecutive blocks at one spatial resolution (ResNet's layer1…layer4). `--unfreeze N`
 * trains the last N stages; discriminative learning rates give each stage its own rate.
 */
import type { Model } from '../graph/graph.js';
import type { Node } from '../graph/ir.js';
import { inferShapes } from '../graph/shapes.js';
import { cutPoints } from '../graph/surgery.js';

export interface Block {
  /** The cut point that ends the block. */
  end: string;
  /** Trainable parameters (float initializers read by its nodes; BN running statistics excluded). */
  params: string[];
  /** Spatial size of its output (height), or 0 for vectors. */
  resolution: number;
}

export interface Stage {
  name: string;
  blocks: Block[];
  params: string[];
  /** The value feeding the stage (the previous stage's end; the model input for the first). */
  input: string;
}

/** Inputs of a node that are learnable weights (not BatchNorm's running mean/var, not shape vectors). */
function weightInputs(n: Node, isFloatInit: (v: string) => boolean): string[] {
  const ins = n.opType === 'BatchNormalization' ? n.inputs.slice(1, 3) : n.inputs.slice(1);
  return ins.filter((v) => v && isFloatInit(v));
}

export function blocksOf(model: Model): Block[] {
  const g = model.graph;
  const shapes = inferShapes(model);
  const cuts = new Set(cutPoints(model));
  const isFloatInit = (v: string) => g.initializers.get(v)?.dtype === 'float32';
  const blocks: Block[] = [];
  let params: string[] = [];
  const seen = new Set<string>();
  const sorted = [...g.nodes];
  for (const n of sorted) {
    for (const w of weightInputs(n, isFloatInit)) {
      if (!seen.has(w)) {
        seen.add(w);
        params.push(w);
      }
    }
    const end = n.outputs.find((o) => cuts.has(o));
    if (end !== undefined && params.length > 0) {
      const shape = shapes.get(end)?.shape;
      const resolution = shape && shape.length === 4 && typeof shape[2] === 'number' ? shape[2] : 0;
      blocks.push({ end, params, resolution });
      params = [];
    }
  }
  if (params.length && blocks.length) blocks[blocks.length - 1].params.push(...params);
  return blocks;
}

/** Stages: runs of blocks with the same output resolution, in order. */
export function stagesOf(model: Model): Stage[] {
  const blocks = blocksOf(model);
  const stages: Stage[] = [];
  let input = model.graph.inputs[0].name;
  for (const b of blocks) {
    const last = stages[stages.length - 1];
    if (last && last.blocks[last.blocks.length - 1].resolution === b.resolution) {
      last.blocks.push(b);
      last.params.push(...b.params);
    } else {
      if (last) input = last.blocks[last.blocks.length - 1].end;
      stages.push({ name: `stage${stages.length + 1}`, blocks: [b], params: [...b.params], input });
    }
  }
  return stages;
}

export type Unfreeze = 'all' | number;

export function parseUnfreeze(v: string | number | undefined): Unfreeze {
  if (v === undefined || v === 'all') return 'all';
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`--unfreeze takes "all" or a whole number of stages, not ${JSON.stringify(v)}`);
  return n;
}

/** The stages `--unfreeze` trains (the last N, or all), earliest first. */
export function unfrozenStages(stages: readonly Stage[], u: Unfreeze): Stage[] {
  if (u === 'all') return [...stages];
  return u === 0 ? [] : stages.slice(-u);
}
