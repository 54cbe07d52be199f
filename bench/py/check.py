#!/usr/bin/python3
"""Checks that the models the PyTorch benchmarks build (common.build_model, rebuilt in every process) are the
ones exported to bench/out/: their logits on models.json's check batch must equal the logits stored at
export time. graft's side of the check (bench/graft/infer.ts checkLogits) compares ORT's logits on the
exported files with the same numbers. One JSON line per model.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'torch'))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'scripts', 'fixtures'))
import common  # noqa: E402
import prng  # noqa: E402


def main():
    common.set_thread_env(2)
    import torch
    meta = json.load(open(os.path.join(common.OUT_DIR, 'models.json')))
    for name, m in meta.items():
        c = m['check']['input']
        x = torch.from_numpy(prng.fill(c['seed'], c['dims'], c['lo'], c['hi']))
        with torch.inference_mode():
            logits = common.build_model(name)(x).reshape(-1)
        ref = torch.tensor(m['check']['logits'])
        diff = (logits - ref).abs().max().item()
        common.emit(dict(bench='check', framework='torch', model=name, max_abs_diff=diff,
                         max_abs_logit=round(ref.abs().max().item(), 3)))


if __name__ == '__main__':
    main()
