import { beforeAll, describe, expect, it } from 'vitest';
import { isGraftError } from '../../src/errors.js';
import type { Model } from '../../src/graph/graph.js';
import { importLayersModel, supportedLayerClasses } from '../../src/models/tfjs/index.js';
import { importFromTfjs, maxAbsDiff, randomArray, randomizeWeights, runOnnxNhwc, saveToMemory, std, tf, useCpuBackend } from './tfjs-helpers.js';

beforeAll(useCpuBackend);

type Build = () => tf.LayersModel;

/** A Sequential on one image input of shape [h, w, c] (batch added). */
function seq(inputShape: number[], layers: tf.layers.Layer[]): tf.LayersModel {
  const m = tf.sequential();
  m.add(tf.layers.inputLayer({ inputShape }));
  for (const l of layers) m.add(l);
  return m;
}

/**
 * The core check: same weights, same input, tfjs (reference) vs the imported graph in onnxruntime.
 * Returns the imported model for structural assertions.
 */
async function expectSameAsTfjs(build: Build, opts: { batch?: number; seed?: number; tol?: number } = {}): Promise<Model> {
  const model = build();
  randomizeWeights(model, opts.seed ?? 7);
  const batch = opts.batch ?? 2;
  const inputs = model.inputs.map((t, i) => {
    const shape = [batch, ...(t.shape.slice(1) as number[])];
    return { data: randomArray(shape.reduce((a, b) => a * b, 1), 100 + i), shape };
  });
  const xs = inputs.map((x) => tf.tensor(x.data, x.shape));
  const ys = model.predict(xs.length === 1 ? xs[0] : xs);
  const expected = (Array.isArray(ys) ? ys : [ys]).map((y) => ({ data: y.dataSync() as Float32Array, shape: y.shape as number[] }));
  const onnx = await importFromTfjs(model);
  const got = await runOnnxNhwc(onnx, inputs);
  expect(got.length).toBe(expected.length);
  got.forEach((g, i) => {
    expect(g.shape).toEqual(expected[i].shape);
    // a comparison of near-constant outputs would prove little
    expect(std(expected[i].data)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(g.data, expected[i].data)).toBeLessThanOrEqual(opts.tol ?? 1e-4);
  });
  return onnx;
}

describe('importLayersModel vs TensorFlow.js, layer by layer', () => {
  const cases: [string, Build][] = [
    ['conv2d same, stride 2, odd sizes, relu6', () => seq([9, 10, 3], [tf.layers.conv2d({ filters: 5, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu6' })])],
    ['conv2d valid, stride 2, 1×4 kernel, no bias', () => seq([9, 11, 3], [tf.layers.conv2d({ filters: 4, kernelSize: [1, 4], strides: 2, padding: 'valid', useBias: false })])],
    ['conv2d same, stride 1, even kernel', () => seq([7, 8, 2], [tf.layers.conv2d({ filters: 3, kernelSize: 4, padding: 'same' })])],
    ['conv2d same, dilation 2', () => seq([9, 9, 3], [tf.layers.conv2d({ filters: 4, kernelSize: 3, dilationRate: 2, padding: 'same', activation: 'tanh' })])],
    ['depthwise same, stride 2, depth multiplier 2', () => seq([9, 10, 3], [tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', depthMultiplier: 2 })])],
    ['depthwise valid, no bias', () => seq([8, 7, 4], [tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'valid', useBias: false })])],
    ['separable same, depth multiplier 2, relu', () => seq([9, 10, 3], [tf.layers.separableConv2d({ filters: 5, kernelSize: 3, padding: 'same', depthMultiplier: 2, activation: 'relu' })])],
    ['separable valid, stride 2', () => seq([9, 10, 3], [tf.layers.separableConv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'valid' })])],
    ['conv2dTranspose same, stride 2', () => seq([5, 6, 3], [tf.layers.conv2dTranspose({ filters: 4, kernelSize: 3, strides: 2, padding: 'same' })])],
    ['conv2dTranspose valid, stride 2, kernel < stride', () => seq([5, 4, 3], [tf.layers.conv2dTranspose({ filters: 2, kernelSize: 1, strides: 2, padding: 'valid' })])],
    ['conv2dTranspose valid, stride 2, kernel 3', () => seq([4, 5, 2], [tf.layers.conv2dTranspose({ filters: 3, kernelSize: 3, strides: 2, padding: 'valid' })])],
    ['batch norm with non-trivial statistics', () => seq([5, 6, 4], [tf.layers.batchNormalization({ epsilon: 0.01 })])],
    ['batch norm without scale / center', () => seq([5, 6, 4], [tf.layers.batchNormalization({ scale: false }), tf.layers.batchNormalization({ center: false })])],
    ['batch norm on dense features', () => seq([6], [tf.layers.dense({ units: 4 }), tf.layers.batchNormalization()])],
    ['zero padding asymmetric, then cropping', () => seq([5, 6, 2], [tf.layers.zeroPadding2d({ padding: [[1, 2], [0, 3]] }), tf.layers.conv2d({ filters: 2, kernelSize: 2 }), tf.layers.cropping2D({ cropping: [[1, 0], [2, 1]] })])],
    ['max pool same, stride 2, odd', () => seq([9, 10, 3], [tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' })])],
    ['max pool valid 2×2', () => seq([9, 10, 3], [tf.layers.maxPooling2d({ poolSize: 2 })])],
    ['avg pool same, stride 2 (padding not counted)', () => seq([9, 10, 3], [tf.layers.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same' })])],
    ['avg pool same, stride 1', () => seq([7, 7, 2], [tf.layers.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same' })])],
    ['avg pool valid, 3×3 stride 2', () => seq([9, 10, 3], [tf.layers.averagePooling2d({ poolSize: 3, strides: 2, padding: 'valid' })])],
    ['global average pool', () => seq([5, 6, 3], [tf.layers.globalAveragePooling2d({})])],
    ['global max pool', () => seq([5, 6, 3], [tf.layers.globalMaxPooling2d({})])],
    ['dense after flatten of a 3×3 map (NHWC order)', () => seq([3, 3, 4], [tf.layers.flatten(), tf.layers.dense({ units: 6, activation: 'softmax' })])],
    ['dense after flatten of a 1×1 map', () => seq([5, 5, 4], [tf.layers.averagePooling2d({ poolSize: 5 }), tf.layers.flatten(), tf.layers.dropout({ rate: 0.5 }), tf.layers.dense({ units: 3 })])],
    ['dense on an image (per pixel)', () => seq([3, 4, 5], [tf.layers.dense({ units: 2, activation: 'sigmoid' })])],
    ['reshape 4-D → 4-D, then conv', () => seq([4, 6, 2], [tf.layers.reshape({ targetShape: [6, 2, 4] }), tf.layers.conv2d({ filters: 3, kernelSize: 2 })])],
    ['reshape with -1 to rank 3, permute', () => seq([4, 6, 2], [tf.layers.reshape({ targetShape: [-1, 4] }), tf.layers.permute({ dims: [2, 1] })])],
    ['permute an image', () => seq([3, 4, 5], [tf.layers.permute({ dims: [2, 3, 1] }), tf.layers.conv2d({ filters: 2, kernelSize: 1 })])],
    ['upsampling nearest', () => seq([3, 4, 2], [tf.layers.upSampling2d({ size: [2, 3] })])],
    ['upsampling bilinear', () => seq([3, 4, 2], [tf.layers.upSampling2d({ size: [2, 2], interpolation: 'bilinear' })])],
    ['rescaling', () => seq([3, 4, 2], [tf.layers.rescaling({ scale: 1 / 127.5, offset: -1 })])],
    ['ReLU max_value, LeakyReLU, ELU', () => seq([4, 5, 3], [tf.layers.reLU({ maxValue: 0.3 }), tf.layers.conv2d({ filters: 3, kernelSize: 1 }), tf.layers.leakyReLU({ alpha: 0.2 }), tf.layers.conv2d({ filters: 3, kernelSize: 1 }), tf.layers.elu()])],
    ['PReLU with a per-pixel slope', () => seq([4, 5, 3], [tf.layers.prelu({})])],
    ['PReLU shared over H, W', () => seq([4, 5, 3], [tf.layers.prelu({ sharedAxes: [1, 2] })])],
    ['Softmax layer and thresholded ReLU', () => seq([4, 5, 3], [tf.layers.thresholdedReLU({ theta: 0.2 }), tf.layers.softmax({ axis: -1 })])],
    ['noise and dropout layers are identities', () => seq([4, 5, 3], [tf.layers.gaussianNoise({ stddev: 1 }), tf.layers.gaussianDropout({ rate: 0.3 }), tf.layers.alphaDropout({ rate: 0.3 }), tf.layers.conv2d({ filters: 2, kernelSize: 1 })])],
  ];
  for (const act of ['relu', 'relu6', 'sigmoid', 'tanh', 'softmax', 'linear', 'elu', 'selu', 'swish', 'hardSigmoid', 'gelu', 'gelu_new', 'softplus', 'softsign', 'mish'] as const) {
    cases.push([`activation ${act}`, () => seq([3, 4, 5], [tf.layers.conv2d({ filters: 4, kernelSize: 1 }), tf.layers.activation({ activation: act })])]);
  }
  cases.push(['softmax on 2-D', () => seq([7], [tf.layers.dense({ units: 5 }), tf.layers.activation({ activation: 'softmax' })])]);

  for (const [name, build] of cases) it(name, () => expectSameAsTfjs(build));

  /** Two branches on one input, merged. */
  function branches(merge: (a: tf.SymbolicTensor, b: tf.SymbolicTensor) => tf.SymbolicTensor): Build {
    return () => {
      const x = tf.input({ shape: [7, 9, 3] });
      const a = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'branch_a' }).apply(x) as tf.SymbolicTensor;
      const b = tf.layers.conv2d({ filters: 4, kernelSize: 1, name: 'branch_b' }).apply(x) as tf.SymbolicTensor;
      return tf.model({ inputs: x, outputs: merge(a, b) });
    };
  }
  const merges: [string, (a: tf.SymbolicTensor, b: tf.SymbolicTensor) => tf.SymbolicTensor][] = [
    ['concatenate on channels', (a, b) => tf.layers.concatenate({ name: 'mixed' }).apply([a, b]) as tf.SymbolicTensor],
    ['concatenate on width (axis 2)', (a, b) => tf.layers.concatenate({ axis: 2 }).apply([a, b]) as tf.SymbolicTensor],
    ['add', (a, b) => tf.layers.add({}).apply([a, b]) as tf.SymbolicTensor],
    ['multiply', (a, b) => tf.layers.multiply({}).apply([a, b]) as tf.SymbolicTensor],
    ['average', (a, b) => tf.layers.average({}).apply([a, b]) as tf.SymbolicTensor],
    ['maximum', (a, b) => tf.layers.maximum({}).apply([a, b]) as tf.SymbolicTensor],
    ['minimum', (a, b) => tf.layers.minimum({}).apply([a, b]) as tf.SymbolicTensor],
    ['add of three', (a, b) => tf.layers.add({}).apply([a, b, tf.layers.activation({ activation: 'relu' }).apply(a) as tf.SymbolicTensor]) as tf.SymbolicTensor],
  ];
  for (const [name, merge] of merges) it(`merge: ${name}`, () => expectSameAsTfjs(branches(merge)));

  it('a functional model with two inputs and two outputs', () =>
    expectSameAsTfjs(() => {
      const x = tf.input({ shape: [6, 5, 3], name: 'img' });
      const y = tf.input({ shape: [6, 5, 3], name: 'img2' });
      const s = tf.layers.add({}).apply([x, y]) as tf.SymbolicTensor;
      const c = tf.layers.conv2d({ filters: 2, kernelSize: 3, name: 'head_conv' }).apply(s) as tf.SymbolicTensor;
      const d = tf.layers.dense({ units: 3, name: 'head_dense' }).apply(tf.layers.globalAveragePooling2d({}).apply(s)) as tf.SymbolicTensor;
      return tf.model({ inputs: [x, y], outputs: [c, d] });
    }));

  it('a layer shared by two calls', () =>
    expectSameAsTfjs(() => {
      const x = tf.input({ shape: [5, 5, 3] });
      const conv = tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', name: 'shared' });
      const once = conv.apply(x) as tf.SymbolicTensor;
      const twice = conv.apply(once) as tf.SymbolicTensor;
      return tf.model({ inputs: x, outputs: twice });
    }));

  it('a model nested in a model is inlined', async () => {
    const inner = tf.sequential({ name: 'inner' });
    inner.add(tf.layers.conv2d({ inputShape: [6, 6, 3], filters: 4, kernelSize: 3, name: 'inner_conv' }));
    inner.add(tf.layers.reLU({ name: 'inner_relu' }));
    const x = tf.input({ shape: [6, 6, 3] });
    const y = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(inner.apply(x) as tf.SymbolicTensor) as tf.SymbolicTensor;
    const outer = tf.model({ inputs: x, outputs: y });
    const onnx = await expectSameAsTfjs(() => outer);
    expect(onnx.graph.findNode('inner_conv')?.opType).toBe('Conv');
  });
});

describe('importLayersModel: graph structure', () => {
  it('names nodes and values after the Keras layers, NCHW input with a symbolic batch', async () => {
    const onnx = await importFromTfjs(
      seq([9, 10, 3], [
        tf.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'stem' }),
        tf.layers.dropout({ rate: 0.2, name: 'drop' }),
        tf.layers.flatten({ name: 'flat' }),
        tf.layers.dense({ units: 2, name: 'logits' }),
      ]),
    );
    const g = onnx.graph;
    expect(onnx.opset).toBe(17);
    expect(onnx.irVersion).toBe(8);
    expect(g.inputs).toHaveLength(1);
    expect(g.inputs[0].shape).toEqual(['N', 3, 9, 10]);
    expect(g.outputs).toEqual([{ name: 'logits', dtype: 'float32', shape: ['N', 2] }]);
    for (const layer of ['stem', 'drop', 'flat', 'logits']) {
      const node = g.findNode(layer);
      expect(node, layer).toBeDefined();
      expect(node!.outputs).toEqual([layer]);
    }
    expect(g.findNode('stem')!.opType).toBe('Relu');
    expect(g.findNode('drop')!.opType).toBe('Identity');
    expect(g.valueInfo.get('stem')?.shape).toEqual(['N', 4, 5, 5]);
    // TF "same", stride 2: H 9 → pads 1 / 1, W 10 → 0 / 1 (the odd pixel at the end)
    const conv = g.nodesOfType('Conv')[0];
    expect(conv.ints('pads')).toEqual([1, 0, 1, 1]);
    // a 5×5 map is put back in NHWC order before flattening
    const flatten = g.findNode('flat')!;
    expect(g.index().producer.get(flatten.inputs[0])?.opType).toBe('Transpose');
  });

  it('skips the transpose when flattening a 1×1 map', async () => {
    const onnx = await importFromTfjs(seq([4, 4, 3], [tf.layers.averagePooling2d({ poolSize: 4 }), tf.layers.flatten({ name: 'flat' })]));
    expect(onnx.graph.nodesOfType('Transpose')).toHaveLength(0);
  });

  it('names the implicit input of a Sequential without an InputLayer as Keras does', async () => {
    const m = tf.sequential();
    m.add(tf.layers.dense({ inputShape: [4], units: 2, name: 'only' }));
    const onnx = await importFromTfjs(m);
    expect(onnx.graph.inputs[0]).toEqual({ name: 'only_input', dtype: 'float32', shape: ['N', 4] });
  });

  it('rejects a layer it cannot convert, naming class and layer', async () => {
    const m = seq([4, 5, 3], [tf.layers.layerNormalization({ name: 'my_norm' })]);
    const a = await saveToMemory(m);
    let err: unknown;
    try {
      importLayersModel(a.modelTopology, { data: a.weightData, specs: a.weightSpecs });
    } catch (e) {
      err = e;
    }
    expect(isGraftError(err, 'IMPORT_UNSUPPORTED_LAYER')).toBe(true);
    expect((err as Error).message).toContain('LayerNormalization');
    expect((err as Error).message).toContain('my_norm');
    expect(supportedLayerClasses()).toContain('DepthwiseConv2D');
  });

  it('takes extra converters for classes it does not know', async () => {
    const a = await saveToMemory(seq([4, 5, 3], [tf.layers.layerNormalization({ name: 'my_norm' })]));
    const onnx = importLayersModel(a.modelTopology, { data: a.weightData, specs: a.weightSpecs }, { converters: { LayerNormalization: { convert: (ctx, [x]) => ({ name: ctx.op('Neg', [x.name]), shape: x.shape }) } } });
    expect(onnx.graph.findNode('my_norm')?.opType).toBe('Neg');
  });

  it('reports a weight missing from the manifest', async () => {
    const a = await saveToMemory(seq([4, 5, 3], [tf.layers.conv2d({ filters: 2, kernelSize: 1, name: 'c' })]));
    const specs = a.weightSpecs.map((s) => (s.name === 'c/bias' ? { ...s, name: 'other/bias' } : s));
    expect(() => importLayersModel(a.modelTopology, { data: a.weightData, specs })).toThrow(/needs weight "c\/bias"/);
  });

  it('reads Keras 3 configs ({args, kwargs} inbound nodes, batch_shape, bare output refs)', async () => {
    const x = tf.input({ shape: [5, 6, 3], name: 'inp' });
    const a = tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', name: 'ca' }).apply(x) as tf.SymbolicTensor;
    const y = tf.layers.add({ name: 'sum' }).apply([a, x]) as tf.SymbolicTensor;
    const model = tf.model({ inputs: x, outputs: y });
    randomizeWeights(model, 3);
    const art = await saveToMemory(model);
    const keras2 = importLayersModel(art.modelTopology, { data: art.weightData, specs: art.weightSpecs });
    // rewrite the same topology the way Keras 3 serialises it
    const topo = JSON.parse(JSON.stringify(art.modelTopology)) as { config: { layers: Record<string, unknown>[]; input_layers: unknown; output_layers: unknown[] } };
    const tensorOf = (ref: unknown[]) => ({ class_name: '__keras_tensor__', config: { shape: null, dtype: 'float32', keras_history: ref.slice(0, 3) } });
    for (const l of topo.config.layers) {
      const cfg = l.config as Record<string, unknown>;
      if (cfg.batch_input_shape) {
        cfg.batch_shape = cfg.batch_input_shape;
        delete cfg.batch_input_shape;
      }
      l.inbound_nodes = (l.inbound_nodes as unknown[][][]).map((node) => ({ args: node.length === 1 ? [tensorOf(node[0])] : [node.map(tensorOf)], kwargs: {} }));
    }
    topo.config.output_layers = topo.config.output_layers[0] as unknown[];
    const keras3 = importLayersModel(topo, { data: art.weightData, specs: art.weightSpecs });
    const input = { data: randomArray(2 * 5 * 6 * 3, 5), shape: [2, 5, 6, 3] };
    const [r2] = await runOnnxNhwc(keras2, [input]);
    const [r3] = await runOnnxNhwc(keras3, [input]);
    expect(maxAbsDiff(r2.data, r3.data)).toBe(0);
    const ref = (model.predict(tf.tensor(input.data, input.shape)) as tf.Tensor).dataSync();
    expect(maxAbsDiff(r3.data, ref)).toBeLessThanOrEqual(1e-4);
  });

  it('reads TF 2.x Keras configs (Functional, list axes, module / registered_name fields)', async () => {
    const x = tf.input({ shape: [5, 6, 3], name: 'inp' });
    const c = tf.layers.conv2d({ filters: 4, kernelSize: 3, name: 'c' }).apply(x) as tf.SymbolicTensor;
    const model = tf.model({ inputs: x, outputs: tf.layers.batchNormalization({ name: 'bn' }).apply(c) as tf.SymbolicTensor });
    randomizeWeights(model, 9);
    const art = await saveToMemory(model);
    const topo = JSON.parse(JSON.stringify(art.modelTopology)) as { class_name: string; config: { layers: Record<string, unknown>[] } };
    topo.class_name = 'Functional';
    for (const l of topo.config.layers) Object.assign(l, { module: 'keras.layers', registered_name: null });
    (topo.config.layers[2].config as Record<string, unknown>).axis = [3];
    const onnx = importLayersModel({ modelTopology: { model_config: topo, keras_version: '2.13.1', backend: 'tensorflow' } }, { data: art.weightData, specs: art.weightSpecs });
    const input = { data: randomArray(5 * 6 * 3, 4), shape: [1, 5, 6, 3] };
    const [out] = await runOnnxNhwc(onnx, [input]);
    const ref = (model.predict(tf.tensor(input.data, input.shape)) as tf.Tensor).dataSync();
    expect(maxAbsDiff(out.data, ref)).toBeLessThanOrEqual(1e-4);
    expect(onnx.graph.findNode('bn')?.opType).toBe('BatchNormalization');
  });

  it('orders calls itself when a config lists layers out of order, and reports dangling references', async () => {
    const x = tf.input({ shape: [4, 4, 2], name: 'inp' });
    const a = tf.layers.conv2d({ filters: 2, kernelSize: 1, name: 'first' }).apply(x) as tf.SymbolicTensor;
    const model = tf.model({ inputs: x, outputs: tf.layers.conv2d({ filters: 2, kernelSize: 3, name: 'second' }).apply(a) as tf.SymbolicTensor });
    const art = await saveToMemory(model);
    const topo = JSON.parse(JSON.stringify(art.modelTopology)) as { config: { layers: { name: string; inbound_nodes: unknown[][][] }[] } };
    topo.config.layers.reverse();
    const onnx = importLayersModel(topo, { data: art.weightData, specs: art.weightSpecs });
    expect(onnx.graph.nodes.map((n) => n.name)).toEqual(['first', 'second']);
    topo.config.layers.find((l) => l.name === 'second')!.inbound_nodes[0][0][0] = 'ghost';
    expect(() => importLayersModel(topo, { data: art.weightData, specs: art.weightSpecs })).toThrow(/"second" reads .* of "ghost"/);
  });

  it('converts Subtract (a Keras layer tfjs lacks) as a − b', async () => {
    const x = tf.input({ shape: [3, 4, 2], name: 'a' });
    const y = tf.input({ shape: [3, 4, 2], name: 'b' });
    const art = await saveToMemory(tf.model({ inputs: [x, y], outputs: tf.layers.add({ name: 'diff' }).apply([x, y]) as tf.SymbolicTensor }));
    const topo = JSON.parse(JSON.stringify(art.modelTopology).replace('"class_name":"Add"', '"class_name":"Subtract"')) as object;
    const onnx = importLayersModel(topo, new Map());
    const a = { data: randomArray(24, 1), shape: [1, 3, 4, 2] };
    const b = { data: randomArray(24, 2), shape: [1, 3, 4, 2] };
    const [out] = await runOnnxNhwc(onnx, [a, b]);
    expect(maxAbsDiff(out.data, a.data.map((v, i) => v - b.data[i]))).toBeLessThan(1e-7);
  });
});
