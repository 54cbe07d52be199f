/**
 * The contract between the reverse sweep and the per-op gradient rules. A rule sees one forward node,
 * the gradients flowing into its outputs, and emits ONNX nodes computing the gradients of the inputs
 * that need one. Rules are small and declarative in spirit (tinygrad's gradient table, ORT's
 * gradient_builder): all bookkeeping — accumulation, zero gradients, naming — lives in the sweep.
 */
import type { GraphBuilder } from '../graph/builder.js';
import type { Dim } from '../graph/ir.js';
import type { Node } from '../graph/ir.js';

export interface RuleContext {
  readonly node: Node;
  readonly b: GraphBuilder;
  readonly opset: number;
  /** Gradient flowing into output `i`; undefined when nothing downstream depends on that output. */
  dY(i?: number): string | undefined;
  /** Gradient of output `i`, materialising zeros when nothing flows in (for rules that need all). */
  dYOrZeros(i: number): string;
  /** Whether input `i` needs a gradient (it leads to a trainable value). */
  needs(i: number): boolean;
  /** Contributes a gradient for input `i` (summed with other contributions by the sweep). */
  grad(i: number, value: string): void;
  /** Shape of a value as inferred statically; symbolic dims are strings, unknown dims null. */
  shape(value: string): Dim[];
  /** Like shape() but every dim must be a known number (spatial sizes etc.). */
  staticDims(value: string, what: string): number[];
  /** Like shape() but only the listed axes must be static; returns them as numbers. */
  staticAxes(value: string, axes: readonly number[], what: string): number[];
  /** A runtime Shape(value) — batch sizes stay symbolic, so one graph serves every batch size. */
  shapeOf(value: string): string;
  /** Sums `grad` over the axes along which `input` was broadcast to make `output`, then reshapes. */
  unbroadcast(grad: string, input: string, output: string): string;
  /** Constant value of an initializer (or Constant node output), when it is one. */
  constantValue(value: string): number[] | undefined;
  /** Engine-level choices (e.g. which conv-gradient formulation) made per node. */
  readonly options: GradOptions;
}

export interface GradRule {
  /**
   * Inputs that carry differentiable data. Shape vectors, axes, indices and the like are not listed,
   * so values computed from them never "require grad". Default: every input.
   */
  differentiable?: (node: Node) => readonly number[];
  /**
   * Called on the forward node (already copied into the training graph) before any backward node is
   * emitted, so a rule can request extra forward outputs (e.g. MaxPool's Indices).
   */
  prepareForward?: (node: Node, b: GraphBuilder) => void;
  backward: (ctx: RuleContext) => void;
}

/** Formulation choices for convolution gradients; 'auto' picks by measured speed on this engine. */
export type ConvDxMethod = 'auto' | 'convTranspose' | 'flippedConv';
export type ConvDwMethod = 'auto' | 'batchAsChannels' | 'tapGemm' | 'im2col' | 'tapReduce' | 'tapMatMul' | 'tapGather' | 'imageIm2col';

export interface GradOptions {
  convDx: ConvDxMethod;
  convDw: ConvDwMethod;
  /** Per-node overrides, by forward node name (tuning tables). */
  perNode?: Record<string, { convDx?: ConvDxMethod; convDw?: ConvDwMethod }>;
}

export const DEFAULT_GRAD_OPTIONS: GradOptions = { convDx: 'auto', convDw: 'auto' };

export type Dims = readonly Dim[];
