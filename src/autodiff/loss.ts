/**
 * Softmax cross-entropy with optional label smoothing and per-sample weights, emitted together with
 * its gradient w.r.t. the logits in closed form — (softmax − target)·wₙ/Σw — which is both cheaper and
 * more accurate than differentiating LogSoftmax/OneHot/ReduceMean node by node.
 *
 *   targetₙ = (1 − ε)·onehot(yₙ) + ε/K
 *   lossₙ   = −Σₖ targetₙₖ · log softmax(zₙ)ₖ
 *   loss    = Σₙ wₙ·lossₙ / Σₙ wₙ        (wₙ = 1 when no weights are fed: the batch mean)
 *
 * With ε = 0 and wₙ = classWeight[yₙ] this is exactly torch.nn.CrossEntropyLoss(weight=...); with
 * weights and ε > 0 the weight scales each sample's whole smoothed loss.
 */
import type { GraphBuilder } from '../graph/builder.js';
import { float32 } from '../onnx/tensor.js';

export interface LossSpec {
  logits: string;
  labels: string;
  numClasses: number;
  labelSmoothing?: number;
  /** Name of a float [N] input with per-sample weights; undefined = plain mean. */
  sampleWeight?: string;
}

export interface LossOutputs {
  loss: string;
  dLogits: string;
}

export function softmaxCrossEntropy(b: GraphBuilder, spec: LossSpec, lossName = 'loss'): LossOutputs {
  const { logits, labels, numClasses: K } = spec;
  const eps = spec.labelSmoothing ?? 0;
  const logProbs = b.op('LogSoftmax', [logits], { axis: 1 });
  const onehot = b.op('OneHot', [labels, b.i64Scalar(K), b.initializer('onehot_values', float32([2], [0, 1]))], { axis: -1 });
  const target = eps > 0 ? b.op('Add', [b.op('Mul', [onehot, b.f32(1 - eps)]), b.f32(eps / K)]) : onehot;
  const perSample = b.op('Neg', [b.op('ReduceSum', [b.op('Mul', [target, logProbs]), b.i64([1])], { keepdims: 0 })]);
  const residual = b.op('Sub', [b.op('Exp', [logProbs]), target]);
  let loss: string;
  let dLogits: string;
  if (spec.sampleWeight) {
    const total = b.op('ReduceSum', [spec.sampleWeight, b.i64([0])], { keepdims: 0 });
    loss = b.op('Div', [b.op('ReduceSum', [b.op('Mul', [perSample, spec.sampleWeight]), b.i64([0])], { keepdims: 0 }), total], {}, { outputs: [lossName] });
    const coef = b.op('Unsqueeze', [b.op('Div', [spec.sampleWeight, total]), b.i64([1])]);
    dLogits = b.op('Mul', [residual, coef]);
  } else {
    loss = b.op('ReduceMean', [perSample], { keepdims: 0 }, { outputs: [lossName] });
    // the batch size from the labels input: a Shape of the logits would be a forward value read late
    const n = b.op('Cast', [b.op('Shape', [spec.labels], { start: 0, end: 1 })], { to: 1 });
    dLogits = b.op('Div', [residual, n]);
  }
  return { loss, dLogits };
}
