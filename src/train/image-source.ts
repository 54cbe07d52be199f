/**
 * Batches of preprocessed images for fine-tuning. Training batches are shuffled and augmented from
 * (seed, epoch, image): the same run, resumed or not, sees the same pixels. The next batch is decoded
 * (sharp, off the event loop) while the trainer worker runs the current step. Images that fail to
 * decode are dropped from their batch and reported once.
 */
import { augmentSampler, type AugmentConfig } from '../data/augment.js';
import { batchToTensor, tensorSize } from '../data/preprocess.js';
import type { PreprocessConfig } from '../models/preprocess.js';
import { fork, shuffle } from '../util/random.js';
import type { BatchSource, TrainBatch } from './fit.js';
import { imageDims } from './features.js';

export interface ImageItem {
  path: string;
  label: number;
}

export interface ImageSourceOptions {
  preprocess: PreprocessConfig;
  batchSize: number;
  seed: number;
  /** Training augmentation; undefined = none. */
  augment?: AugmentConfig;
  classWeights?: Float32Array;
  /** Called once per image that fails to decode. */
  onSkip?: (item: ImageItem, error: unknown) => void;
}

/** Yields from `make(k)` for k = 0..count-1, always with the next one already under way. */
async function* prefetched<T>(count: number, make: (k: number) => Promise<T>): AsyncGenerator<T> {
  let next = count > 0 ? make(0) : undefined;
  for (let k = 0; k < count; k++) {
    const current = next!;
    next = k + 1 < count ? make(k + 1) : undefined;
    // keep a rejection of the prefetched batch from going unhandled while this one is consumed
    next?.catch(() => undefined);
    yield await current;
  }
}

export function imageSource(train: readonly ImageItem[], val: readonly ImageItem[] | undefined, o: ImageSourceOptions): BatchSource & { skipped: Map<string, unknown> } {
  const per = tensorSize(o.preprocess);
  const dims = imageDims(o.preprocess);
  const skipped = new Map<string, unknown>();
  const load = async (items: readonly ImageItem[], augment?: (i: number) => ReturnType<typeof augmentSampler> | undefined): Promise<TrainBatch | undefined> => {
    const failed = new Set<number>();
    const data = await batchToTensor(
      items.map((i) => i.path),
      o.preprocess,
      {
        augment,
        onError: (i, e) => {
          failed.add(i);
          if (!skipped.has(items[i].path)) {
            skipped.set(items[i].path, e);
            o.onSkip?.(items[i], e);
          }
        },
      },
    );
    const good = items.map((_, i) => i).filter((i) => !failed.has(i));
    if (good.length === 0) return undefined;
    const packed = failed.size === 0 ? data : new Float32Array(good.length * per);
    if (failed.size) good.forEach((i, k) => packed.set(data.subarray(i * per, (i + 1) * per), k * per));
    const labels = Int32Array.from(good, (i) => items[i].label);
    return {
      data: { dtype: 'float32', dims: [good.length, ...dims], data: packed },
      labels,
      paths: good.map((i) => items[i].path),
      sampleWeight: o.classWeights ? Float32Array.from(labels, (l) => o.classWeights![l]) : undefined,
    };
  };
  const B = Math.max(1, o.batchSize);
  const trainBatches = Math.ceil(train.length / B);
  return {
    skipped,
    trainBatches,
    hasVal: !!val && val.length > 0,
    async *train(epoch, fromBatch = 0) {
      const order = shuffle(fork(o.seed, 'epoch', epoch), train.map((_, i) => i));
      const batchItems = (k: number) => order.slice((k + fromBatch) * B, (k + fromBatch + 1) * B);
      for await (const b of prefetched(Math.max(0, trainBatches - fromBatch), (k) => {
        const idx = batchItems(k);
        const aug = o.augment;
        return load(
          idx.map((i) => train[i]),
          aug ? (j) => augmentSampler(fork(o.seed, 'augment', epoch, idx[j]), aug) : undefined,
        );
      })) {
        if (b) yield b;
      }
    },
    async *val() {
      if (!val?.length) return;
      // no backward pass to keep memory for: bigger batches, fewer worker round trips
      const VB = Math.max(B, 32);
      const count = Math.ceil(val.length / VB);
      for await (const b of prefetched(count, (k) => load(val.slice(k * VB, (k + 1) * VB)))) if (b) yield b;
    },
  };
}
