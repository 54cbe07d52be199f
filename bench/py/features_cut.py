#!/usr/bin/python3
"""PyTorch frozen-feature throughput of torchvision MobileNetV2 cut where graft's builtin mobilenet_v2 cuts by
default: Keras `block_13_expand_relu` = torchvision `features[14].conv[0]` (the 1×1 expansion 96 → 576 + BN +
ReLU6, at 14 × 14 for a 224² input), global-average-pooled to 576 features. Random weights
(common.build_model, the same as bench/out/mobilenet_v2.onnx), eval mode, torch.inference_mode(). One JSON
line, in the format of infer.py; run it in its own process per configuration (peak RSS).

usage: features_cut.py [--batch 32] [--threads 1] [--size 224] [--warmup 3] [--iters 20] [--max-seconds 30]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'torch'))
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--threads', type=int, default=1)
    common.add_timing_args(ap, warmup=3, iters=20, max_seconds=30)
    a = ap.parse_args()
    common.set_thread_env(a.threads)
    import torch
    torch.set_num_threads(a.threads)
    m = common.build_model('mobilenet_v2')
    cut = torch.nn.Sequential(*m.features[:14], m.features[14].conv[0], torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    x = torch.randn(a.batch, 3, a.size, a.size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out_dim = cut(x).shape[1]

        def step():
            cut(x)

        r = common.timed_loop(step, a.batch, a.warmup, a.iters, a.max_seconds)
    common.emit(dict(bench='infer', framework='torch', model='mobilenet_v2', mode='features', layer='features.14.conv.0',
                     out_dim=out_dim, batch=a.batch, size=a.size, threads=a.threads, **r))


if __name__ == '__main__':
    main()
