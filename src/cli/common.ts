/**
 * What every command shares: the context main.ts hands it (streams, the Ctrl-C signal, the global
 * options), option parsers that fail as usage errors, and the preprocessing flags.
 */
import { once } from 'node:events';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { PreprocessFlags } from '../models/preprocess-sources.js';
import type { Interpolation, ResizeMode } from '../models/preprocess.js';
import type { ProgressStream } from './progress.js';

export interface OutStream extends ProgressStream {
  write(s: string): boolean;
  once?(event: 'drain', cb: () => void): unknown;
}

export interface CliContext {
  out: OutStream;
  err: OutStream;
  /** Fires on Ctrl-C (or when stdout is closed under us). */
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
  /** The command's exit code when it returns normally (errors map through cli/errors.ts). */
  exitCode: number;
}

/** Options every command accepts (declared on the program in main.ts). */
export interface GlobalOptions {
  threads?: number;
  offline?: boolean;
  cacheDir?: string;
  quiet?: boolean;
}

/** A command module: main.ts calls `register` once with the program. */
export interface CommandModule {
  register(program: Command, ctx: CliContext): void;
}

/** Writes and waits for 'drain' when the stream asks for it, so a long listing does not pile up in memory. */
export async function write(stream: OutStream, s: string): Promise<void> {
  if (!stream.write(s) && stream.once) await once(stream as unknown as NodeJS.EventEmitter, 'drain');
}

export function positiveIntArg(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a whole number ≥ 1.`);
    return n;
  };
}

export function nonNegativeNumberArg(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} must be a number ≥ 0.`);
    return n;
  };
}

/** "224" or "224,320" (height,width). */
function sizeArg(v: string): number | [number, number] {
  const parts = v.split(/[,x×]/).map((p) => p.trim());
  const nums = parts.map(Number);
  if ((parts.length !== 1 && parts.length !== 2) || !nums.every((n, i) => /^\d+$/.test(parts[i]) && n > 0)) {
    throw new InvalidArgumentError('--size takes N (a square N×N input) or H,W in pixels, e.g. 224 or 256,320.');
  }
  return nums.length === 1 ? nums[0] : [nums[0], nums[1]];
}

function tripleArg(name: string) {
  return (v: string): number[] => {
    const parts = v.split(',').map((p) => p.trim());
    const nums = parts.map(Number);
    if ((parts.length !== 1 && parts.length !== 3) || parts.some((p) => p === '') || !nums.every(Number.isFinite)) {
      throw new InvalidArgumentError(`${name} takes one number or three comma-separated numbers (R,G,B), e.g. 0.485,0.456,0.406.`);
    }
    return nums;
  };
}

function cropPctArg(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n > 0 && n <= 1)) throw new InvalidArgumentError('--crop-pct must be in (0, 1], e.g. 0.875.');
  return n;
}

/** --size --crop-pct --mean --std --bgr --layout --interpolation --resize --rescale */
export function addPreprocessOptions(cmd: Command): Command {
  return cmd
    .option('--size <n|h,w>', 'input size in pixels (overrides the model\'s)', sizeArg)
    .option('--crop-pct <f>', 'resize the shorter side to size/f, then center-crop (timm crop_pct; implies --resize crop)', cropPctArg)
    .option('--mean <r,g,b>', 'per-channel mean subtracted after rescaling', tripleArg('--mean'))
    .option('--std <r,g,b>', 'per-channel std divided by after subtracting the mean', tripleArg('--std'))
    .option('--rescale <f>', 'multiply raw 0..255 pixel values by f first (1/255 = 0.00392156862745098)', nonNegativeNumberArg('--rescale'))
    .option('--bgr', 'feed channels in BGR order (Caffe-style models)')
    .addOption(new Option('--layout <layout>', 'tensor layout the model takes').choices(['NCHW', 'NHWC']))
    .addOption(new Option('--interpolation <kind>', 'resampling filter').choices(['nearest', 'bilinear', 'bicubic', 'lanczos']))
    .addOption(new Option('--resize <mode>', 'crop: shorter side + center crop; squash: straight to size').choices(['crop', 'squash']));
}

export interface PreprocessOptionValues {
  size?: number | [number, number];
  cropPct?: number;
  mean?: number[];
  std?: number[];
  rescale?: number;
  bgr?: boolean;
  layout?: 'NCHW' | 'NHWC';
  interpolation?: Interpolation;
  resize?: ResizeMode;
}

export function preprocessFlags(o: PreprocessOptionValues): PreprocessFlags {
  const flags: PreprocessFlags = {};
  if (o.size !== undefined) flags.size = o.size;
  if (o.cropPct !== undefined) flags.cropPct = o.cropPct;
  if (o.mean !== undefined) flags.mean = o.mean;
  if (o.std !== undefined) flags.std = o.std;
  if (o.rescale !== undefined) flags.rescale = o.rescale;
  if (o.bgr) flags.bgr = true;
  if (o.layout !== undefined) flags.layout = o.layout;
  if (o.interpolation !== undefined) flags.interpolation = o.interpolation;
  if (o.resize !== undefined) flags.resize = o.resize;
  // asking for a crop fraction means asking for the crop (builtins squash by default)
  else if (o.cropPct !== undefined) flags.resize = 'crop';
  return flags;
}

/** The model options every command resolving a model takes, from the global flags. */
export function modelOptions(g: GlobalOptions): { offline?: boolean; cacheDir?: string } {
  return { ...(g.offline ? { offline: true } : {}), ...(g.cacheDir ? { cacheDir: g.cacheDir } : {}) };
}
