/**
 * Runs one fine-tuning in its own process (for the kill -9 / SIGINT + --resume tests):
 *   tsx finetune-child.ts <options json>
 * SIGINT aborts the run the way the CLI does, which checkpoints mid-epoch.
 */
import { train, type TrainOptions } from '../../../src/train/train.js';

const opts = JSON.parse(process.argv[2]) as TrainOptions;
const controller = new AbortController();
process.on('SIGINT', () => controller.abort());
try {
  await train({ ...opts, signal: controller.signal, onEvent: (e) => e.type === 'epoch' && process.stdout.write(`epoch ${e.record.epoch}\n`) });
  process.stdout.write('done\n');
} catch (e) {
  process.stdout.write(`error ${(e as { code?: string }).code}\n`);
  process.exitCode = 3;
}
