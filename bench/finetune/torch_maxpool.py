#!/usr/bin/python3
"""PyTorch's max pool at ResNet's stem (3 x 3, stride 2, pad 1 over [16, 64, 112, 112]), for the maxpool
group of micro-ops.ts: the forward with and without the indices autograd keeps, and the backward that routes
dY by them (aten.max_pool2d_with_indices_backward). Medians of wall and process CPU time per call,
interleaved.

usage: /usr/bin/python3 bench/finetune/torch_maxpool.py [--threads 1] [--rounds 15] [--dims 16,64,112,112]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'torch'))
from common import interleave, set_thread_env  # noqa: E402  (bench/torch/common.py)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--rounds', type=int, default=15)
    ap.add_argument('--dims', default='16,64,112,112')
    a = ap.parse_args()
    set_thread_env(a.threads)
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.rand(*map(int, a.dims.split(','))) * 2 - 1
    y, idx = F.max_pool2d_with_indices(x, 3, 2, 1)
    dy = torch.rand_like(y) * 2 - 1
    probes = {
        'values': lambda: F.max_pool2d(x, 3, 2, 1),
        'values + indices': lambda: F.max_pool2d_with_indices(x, 3, 2, 1),
        'backward (scatter by indices)': lambda: torch.ops.aten.max_pool2d_with_indices_backward(dy, x, [3, 3], [2, 2], [1, 1], [1, 1], False, idx),
    }
    with torch.no_grad():
        times = interleave(probes, a.rounds)
    print(f'# torch {torch.__version__} max pool on [{a.dims}] threads={a.threads}; load {os.getloadavg()[0]:.2f}')
    for k, (wall, cpu) in times.items():
        print(f'{k:36} cpu med {cpu:.1f} ms  wall med {wall:.1f} ms')


if __name__ == '__main__':
    main()
