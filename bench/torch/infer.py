#!/usr/bin/python3
"""PyTorch inference throughput: whole classifier (`predict`) or frozen backbone up to the pooled features
(`features`, what head training on cached features needs). Random weights, eval mode, torch.inference_mode().
One JSON line per (model, mode, batch, threads), each measured in its own subprocess.

usage: infer.py [--model resnet18] [--mode predict features] [--batch 1 8 32] [--threads 2 1] [--size 224]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def measure(a):
    common.set_thread_env(a.threads)
    import torch
    torch.set_num_threads(a.threads)
    m = common.build_model(a.model)
    if a.mode == 'features':
        if a.model == 'resnet18':
            m.fc = torch.nn.Identity()
        else:
            m.classifier = torch.nn.Identity()
    x = torch.randn(a.batch, 3, a.size, a.size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out_dim = m(x).shape[1]

        def step():
            m(x)

        r = common.timed_loop(step, a.batch, a.warmup, a.iters, a.max_seconds)
    common.emit(dict(bench='infer', framework='torch', model=a.model, mode=a.mode, out_dim=out_dim, batch=a.batch,
                     size=a.size, threads=a.threads, **r))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', nargs='+', default=['resnet18'], choices=common.MODELS)
    ap.add_argument('--mode', nargs='+', default=['predict', 'features'], choices=['predict', 'features'])
    ap.add_argument('--batch', nargs='+', type=int, default=[1, 8, 32])
    ap.add_argument('--threads', nargs='+', type=int, default=[2, 1])
    common.add_timing_args(ap, warmup=3, iters=20, max_seconds=30)
    a = ap.parse_args()
    if a.one:
        a.model, a.mode, a.batch, a.threads = a.model[0], a.mode[0], a.batch[0], a.threads[0]
        return measure(a)
    for t in a.threads:
        for model in a.model:
            for mode in a.mode:
                for b in a.batch:
                    common.run_isolated(__file__, ['--model', model, '--mode', mode, '--batch', b, '--threads', t]
                                        + common.timing_args(a), t)


if __name__ == '__main__':
    main()
