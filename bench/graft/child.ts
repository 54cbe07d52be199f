/**
 * One graft measurement in this process (bench/run.ts starts one process per measurement so peak RSS is
 * that configuration's alone): `node --import tsx bench/graft/child.ts '<json>'` with `{ "kind": …, …args }`.
 * Prints JSON lines on stdout.
 */
import { checkLogits, measureInfer, measurePredictFiles, type InferArgs, type PredictFilesArgs } from './infer.js';
import { measureHeadSynthetic, measureTta, type HeadSyntheticArgs, type TtaArgs } from './head.js';
import { measureStep, type StepArgs } from './train-step.js';

const arg = process.argv[2];
if (!arg) {
  console.error('usage: node --import tsx bench/graft/child.ts \'{"kind":"infer",...}\'');
  process.exit(2);
}
const job = JSON.parse(arg) as { kind: string } & Record<string, unknown>;
switch (job.kind) {
  case 'infer':
    await measureInfer(job as unknown as InferArgs);
    break;
  case 'predict-files':
    await measurePredictFiles(job as unknown as PredictFilesArgs);
    break;
  case 'check':
    await checkLogits();
    break;
  case 'head-synthetic':
    await measureHeadSynthetic(job as unknown as HeadSyntheticArgs);
    break;
  case 'tta':
    await measureTta(job as unknown as TtaArgs);
    break;
  case 'train':
    await measureStep(job as unknown as StepArgs);
    break;
  default:
    console.error(`unknown kind ${job.kind}`);
    process.exit(2);
}
