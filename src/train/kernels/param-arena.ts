/**
 * Float32 arrays carved out of one WebAssembly memory, so the optimizer's SIMD kernels (optim.wat) can
 * update them in place: the trainer keeps weights, gradients and optimizer state here, and the same
 * arrays are what ORT reads the weights from and writes the gradients into — no copies between steps.
 *
 * Why WebAssembly: the update is a handful of float ops per parameter over four arrays; the JS loop runs
 * it in double precision one element at a time (44 ms per step for ResNet-18's 8.4 M last-stage
 * parameters), the SIMD kernel four lanes at a time in float32 like torch (≈ 9 ms).
 */
import { OPTIM_WASM_BASE64 } from './optim-wasm.js';

interface OptimExports {
  adam(w: number, g: number, m: number, v: number, n: number, shrink: number, wdc: number, b1: number, c1: number, b2: number, c2: number, step: number, sb2: number, eps: number): void;
  sgdMomentum(w: number, g: number, buf: number, n: number, lr: number, wd: number, momentum: number, keep: number, nesterov: number): void;
}

const PAGE = 65536;
/** wasm32 memories top out at 4 GiB (65 536 pages). */
const MAX_PAGES = 65536;
const ALIGN_FLOATS = 4;

let compiled: WebAssembly.Module | null | undefined;

function optimModule(): WebAssembly.Module | null {
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(Buffer.from(OPTIM_WASM_BASE64, 'base64'));
    } catch {
      compiled = null; // an engine without WebAssembly SIMD: callers keep the JS loops
    }
  }
  return compiled;
}

export interface AdamArgs {
  /** 1 − lr·wd for AdamW's decoupled decay, 1 for Adam. */
  shrink: number;
  /** Adam's L2 decay folded into the gradient (0 for AdamW). */
  l2: number;
  b1: number;
  b2: number;
  /** lr / (1 − b1^t) */
  stepSize: number;
  /** √(1 − b2^t) */
  sqrtBias2: number;
  eps: number;
}

export class ParamArena {
  private readonly memory: WebAssembly.Memory;
  private readonly kernels: OptimExports;
  private readonly capacity: number;
  private used = 0;

  private constructor(memory: WebAssembly.Memory, kernels: OptimExports, capacity: number) {
    this.memory = memory;
    this.kernels = kernels;
    this.capacity = capacity;
  }

  /**
   * An arena with room for `floats` float32 values (each allocation is rounded up to 16 bytes), or
   * undefined when this engine can't run the kernels or the arena would pass wasm32's 4 GiB.
   */
  static create(floats: number): ParamArena | undefined {
    const mod = optimModule();
    const pages = Math.max(1, Math.ceil((floats * 4) / PAGE));
    if (!mod || pages > MAX_PAGES) return undefined;
    let memory: WebAssembly.Memory;
    try {
      memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    } catch {
      return undefined; // the address space for it is not available
    }
    const instance = new WebAssembly.Instance(mod, { env: { memory } });
    return new ParamArena(memory, instance.exports as unknown as OptimExports, pages * (PAGE / 4));
  }

  /** Room needed for arrays of these lengths, with their alignment padding. */
  static floatsFor(lengths: Iterable<number>): number {
    let n = 0;
    for (const len of lengths) n += Math.ceil(len / ALIGN_FLOATS) * ALIGN_FLOATS;
    return n;
  }

  /** A zeroed array of `n` floats inside the arena. */
  alloc(n: number): Float32Array {
    const size = Math.ceil(n / ALIGN_FLOATS) * ALIGN_FLOATS;
    if (this.used + size > this.capacity) throw new RangeError(`parameter arena full: ${n} more floats do not fit in ${this.capacity}`);
    const view = new Float32Array(this.memory.buffer, this.used * 4, n);
    this.used += size;
    return view;
  }

  /** Whether every array lives in this arena (the kernels can only reach those). */
  owns(...arrays: Float32Array[]): boolean {
    return arrays.every((a) => a.buffer === this.memory.buffer);
  }

  /** One Adam / AdamW step over arena arrays of equal length (see optim.wat for the formula). */
  adam(w: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, a: AdamArgs): void {
    this.kernels.adam(w.byteOffset, g.byteOffset, m.byteOffset, v.byteOffset, w.length, a.shrink, a.l2, a.b1, 1 - a.b1, a.b2, 1 - a.b2, a.stepSize, a.sqrtBias2, a.eps);
  }

  /** One SGD-with-momentum step after the first (buf already initialised). */
  sgdMomentum(w: Float32Array, g: Float32Array, buf: Float32Array, a: { lr: number; wd: number; momentum: number; dampening: number; nesterov: boolean }): void {
    this.kernels.sgdMomentum(w.byteOffset, g.byteOffset, buf.byteOffset, w.length, a.lr, a.wd, a.momentum, 1 - a.dampening, a.nesterov ? 1 : 0);
  }
}
