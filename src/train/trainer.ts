/**
 * The main thread's side of the trainer worker (trainer.task.ts): where its module is, and what it is
 * sent — only what its steps need, with buffers moved rather than copied where the caller allows.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EvalStep, TrainStep } from '../autodiff/train-step.js';
import type { Graph } from '../graph/graph.js';
import { modelToBytes } from '../graph/serialize.js';
import type { RestoreArgs, TrainerInit, TrainerStepSpec } from './trainer.task.js';

/** The trainer task module next to this one (.ts when running from sources, .js when built). */
export const TRAINER_TASK = new URL(`./trainer.task${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/** What the trainer worker needs of a compiled step (names and shapes): the step's Model stays here. */
export function trainerStepSpec(step: TrainStep): TrainerStepSpec {
  const { dataInput, labels, sampleWeight, loss, logits, params, dropout, bnStats } = step;
  return { dataInput, labels, ...(sampleWeight ? { sampleWeight } : {}), loss, logits, params, dropout, bnStats };
}

/** The compiled training and evaluation steps as the trainer's init carries them: model bytes and the names it feeds and reads. */
export function compiledSteps(step: TrainStep, evalStep: EvalStep): Pick<TrainerInit, 'stepModel' | 'step' | 'evalModel' | 'evalDataInput' | 'evalLogits'> {
  return { stepModel: modelToBytes(step.model), step: trainerStepSpec(step), evalModel: modelToBytes(evalStep.model), evalDataInput: evalStep.dataInput, evalLogits: evalStep.logits };
}

/** Copies of `names`' current values, each in a buffer of its own (so that the init can move them to the worker). */
export function weightCopies(graph: Graph, names: readonly string[]): Record<string, Float32Array> {
  return Object.fromEntries(names.map((p) => [p, Float32Array.from(graph.initializers.get(p)!.data as Float32Array)]));
}

/**
 * The buffers of a trainer's init that its worker can take over rather than copy: the initial weights
 * and both models' bytes. Only for an init made for that trainer alone — the buffers are detached here.
 * Copied, fine-tuning ResNet-18 would keep its 45 MB of initial weights on both threads.
 */
export function trainerInitTransfer(init: TrainerInit): ArrayBuffer[] {
  // the others (views into a larger buffer, shared memory) are copied
  return ownBuffers([init.stepModel, init.evalModel, ...Object.values(init.weights)]);
}

/**
 * The buffers of a state sent back to the trainer (restore) to move rather than clone — the sender's
 * copies are garbage then, and moved they are gone at once instead of waiting for the collector. Only
 * buffers an array owns whole, as trainerInitTransfer.
 */
export function restoreTransfer(s: RestoreArgs): ArrayBuffer[] {
  return ownBuffers([...Object.values(s.weights ?? {}), ...Object.values(s.optimizer?.buffers ?? {}).flatMap((b) => Object.values(b)), ...Object.values(s.best ?? {})]);
}

/** The buffers of `arrays` that each one spans whole, once each: a view's buffer holds more than it, and shared memory is shared, not moved. */
function ownBuffers(arrays: readonly ArrayBufferView[]): ArrayBuffer[] {
  const own = arrays.filter((a) => a.buffer instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength);
  return [...new Set(own.map((a) => a.buffer as ArrayBuffer))];
}
