/**
 * Fixtures for the scenario-1 tests, all made at test time: tiny ONNX classifiers whose outputs follow
 * from the image by hand (mean colour → linear layer → optional softmax), solid-colour and real images,
 * and broken files of every kind predict must survive.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { GraphBuilder } from '../../src/graph/builder.js';
import { Graph, Model } from '../../src/graph/graph.js';
import { attr, type Dim } from '../../src/graph/ir.js';
import { saveModel } from '../../src/graph/serialize.js';
import { META_OUTPUT_KIND, writeLabels, writePreprocess } from '../../src/models/metadata.js';
import type { PreprocessConfig } from '../../src/models/preprocess.js';
import { float32 } from '../../src/onnx/tensor.js';

export const EMOJI_DIR = join(dirname(createRequire(import.meta.url).resolve('emoji-datasource-google/package.json')), 'img', 'google', '64');
export const COFFEE = join(import.meta.dirname, '..', '..', 'examples', 'coffee.jpg');

export interface TinyOptions {
  /** Classes (rows of W). */
  W: number[][];
  b: number[];
  layout?: 'NCHW' | 'NHWC';
  /** Static spatial size (default 8); null for symbolic H, W. */
  size?: number | null;
  /** First input dim (default 'N'). */
  batch?: Dim;
  softmax?: boolean;
  labels?: string[];
  preprocess?: PreprocessConfig;
  outputKind?: 'probabilities' | 'logits';
  /** Insert an LRN (no gradient rule) after the input, for trainability reports. */
  lrn?: boolean;
}

/**
 * x → [LRN] → BatchNormalization (identity; NCHW only) → mean over the spatial axes (the image's mean
 * colour, [N, 3]) → Gemm(W, b) → [Softmax]. For a solid image of colour c the logits are W·c' + b,
 * where c' is c after preprocessing.
 */
export function tinyClassifier(o: TinyOptions): Model {
  const layout = o.layout ?? 'NCHW';
  const s: Dim = o.size === null ? 'S' : (o.size ?? 8);
  const batch = o.batch ?? 'N';
  const shape: Dim[] = layout === 'NCHW' ? [batch, 3, s, s] : [batch, s, s, 3];
  const g = new Graph({ inputs: [{ name: 'pixels', dtype: 'float32', shape }] });
  const b = new GraphBuilder(g);
  const k = o.W.length;
  let x = 'pixels';
  if (o.lrn) x = b.op('LRN', [x], { size: 1 }, { name: 'local_norm', outputs: ['lrn'] });
  if (layout === 'NCHW') {
    const c = (v: number[]) => b.initializer('bn_param', float32([3], v));
    x = b.op('BatchNormalization', [x, c([1, 1, 1]), c([0, 0, 0]), c([0, 0, 0]), c([1, 1, 1])], { epsilon: attr.f(0) }, { name: 'bn', outputs: ['bn'] });
  }
  const pooled = b.reduce('ReduceMean', x, layout === 'NCHW' ? [2, 3] : [1, 2], false);
  const logits = b.op('Gemm', [pooled, b.initializer('W', float32([k, 3], o.W.flat())), b.initializer('b', float32([k], o.b))], { transB: 1 }, { name: 'fc', outputs: [o.softmax ? 'logits' : 'scores'] });
  if (o.softmax) b.op('Softmax', [logits], { axis: 1 }, { name: 'softmax', outputs: ['scores'] });
  g.outputs = [{ name: 'scores', dtype: 'float32', shape: [batch, k] }];
  const m = new Model({ graph: g, opsetImports: [{ domain: '', version: 17 }] });
  if (o.labels) writeLabels(m, o.labels);
  if (o.preprocess) writePreprocess(m, o.preprocess);
  if (o.outputKind) m.metadata.set(META_OUTPUT_KIND, o.outputKind);
  return m;
}

export function saveTo(dir: string, name: string, m: Model): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  saveModel(m, path);
  return path;
}

/** Softmax in float64 (the reference). */
export function softmax(v: number[]): number[] {
  const max = Math.max(...v);
  const e = v.map((x) => Math.exp(x - max));
  const s = e.reduce((a, x) => a + x, 0);
  return e.map((x) => x / s);
}

/** W·f + b. */
export function linear(W: number[][], b: number[], f: number[]): number[] {
  return W.map((row, i) => row.reduce((a, w, j) => a + w * f[j], b[i]));
}

/** A solid-colour PNG (resizing and cropping keep it exactly that colour). */
export async function solidPng(path: string, rgb: [number, number, number], w = 20, h = 14): Promise<string> {
  mkdirSync(dirname(path), { recursive: true });
  await sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
    .png()
    .toFile(path);
  return path;
}

export async function noiseJpeg(path: string, w = 64, h = 48, seed = 1): Promise<string> {
  let s = seed;
  const px = Buffer.alloc(w * h * 3);
  for (let i = 0; i < px.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    px[i] = s >>> 24;
  }
  mkdirSync(dirname(path), { recursive: true });
  await sharp(px, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toFile(path);
  return path;
}

/** The first half of a real JPEG: decoding must fail, not pad with grey. */
export async function truncatedJpeg(path: string): Promise<string> {
  const full = await sharp(COFFEE).jpeg({ quality: 90 }).toBuffer();
  writeFileSync(path, full.subarray(0, Math.floor(full.length / 2)));
  return path;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A valid PNG header claiming width × height (RGB, 8-bit) with almost no pixel data: a decompression bomb's shape. */
export function hugePngHeader(path: string, width = 100_000, height = 100_000): string {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(width * 3 + 1))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
  writeFileSync(path, png);
  return path;
}

/** y = x·Wᵀ on a rank-2 input: a valid model that is no image classifier. */
export function vectorModel(): Model {
  const g = new Graph({ inputs: [{ name: 'x', dtype: 'float32', shape: ['N', 4] }] });
  const b = new GraphBuilder(g);
  b.op('Gemm', ['x', b.initializer('W', float32([2, 4], [1, 0, 0, 0, 0, 1, 0, 0]))], { transB: 1 }, { outputs: ['y'] });
  g.outputs = [{ name: 'y', dtype: 'float32', shape: ['N', 2] }];
  return new Model({ graph: g });
}
