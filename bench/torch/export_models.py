#!/usr/bin/python3
"""Exports the benchmarks' random-weight models to bench/out/ (git-ignored) for graft's side of the benchmarks:

  <model>.onnx           weights inline, BatchNormalization kept as its own node (TrainingMode.PRESERVE,
                         no constant folding): what graft's BN folding / BN-train compilation starts from
  <model>_bnfolded.onnx  BN folded into the convs by torch's exporter (eval mode, constant folding)
  models.json            files, input/output names, op counts, and a check: logits for a PRNG input batch
                         (fill(seed, dims, lo, hi) from scripts/fixtures/prng.py = test/fixtures/prng.ts)

Opset 17, 224x224 input, dynamic batch axis 'N', 1000 classes, parameter names = state_dict keys. The weights
are common.build_model's, the same the PyTorch benchmarks time.

usage: export_models.py [--model resnet18 mobilenet_v2] [--out bench/out]
"""
import argparse
import io
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', '..', 'scripts', 'fixtures'))
import common  # noqa: E402
import prng  # noqa: E402

CHECK = dict(seed=1, dims=[2, 3, 224, 224], lo=-2.0, hi=2.0)


def export(m, x, fold):
    import onnx
    import torch
    f = io.BytesIO()
    torch.onnx.export(m, x, f, opset_version=17, input_names=['input'], output_names=['logits'],
                      dynamic_axes={'input': {0: 'N'}, 'logits': {0: 'N'}}, export_params=True,
                      keep_initializers_as_inputs=False, do_constant_folding=fold,
                      training=torch.onnx.TrainingMode.EVAL if fold else torch.onnx.TrainingMode.PRESERVE)
    mo = onnx.load_from_string(f.getvalue())
    ops = {}
    for n in mo.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    n_bn = sum(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.modules())
    if ops.get('BatchNormalization', 0) != (0 if fold else n_bn):
        raise RuntimeError(f'expected {0 if fold else n_bn} BatchNormalization nodes, got {ops.get("BatchNormalization", 0)}')
    return f.getvalue(), dict(sorted(ops.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', nargs='+', default=list(common.MODELS), choices=common.MODELS)
    ap.add_argument('--out', default=common.OUT_DIR)
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    common.set_thread_env(a.threads)
    import torch
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    meta_path = os.path.join(a.out, 'models.json')
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    x = torch.from_numpy(prng.fill(CHECK['seed'], CHECK['dims'], CHECK['lo'], CHECK['hi']))
    for name in a.model:
        m = common.build_model(name)
        with torch.no_grad():
            logits = m(x)
        entry = dict(input='input', output='logits', size=224, numClasses=1000, torch=torch.__version__,
                     check=dict(input=CHECK, logits=[float(f'{v:.9g}') for v in logits.reshape(-1).tolist()]))
        for fold, suffix in ((False, ''), (True, '_bnfolded')):
            data, ops = export(m, x, fold)
            fname = f'{name}{suffix}.onnx'
            with open(os.path.join(a.out, fname), 'wb') as fh:
                fh.write(data)
            entry['bnfolded' if fold else 'bn'] = dict(file=fname, bytes=len(data), ops=ops)
            print(f'{fname}: {len(data) / 1e6:.1f} MB, {sum(ops.values())} nodes', flush=True)
        meta[name] = entry
    with open(meta_path, 'w') as fh:
        json.dump(meta, fh, indent=1)


if __name__ == '__main__':
    main()
