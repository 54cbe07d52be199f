#!/usr/bin/python3
"""PyTorch's per-layer conv times for the shapes tune-conv.ts measures (its --shapes-out JSON): forward,
input gradient and weight gradient (aten.convolution_backward with one output mask each, what autograd
runs), 1 thread by default. Medians of process CPU time per call, interleaved like graft's side.

usage: /usr/bin/python3 bench/finetune/torch_conv.py bench/out/conv-shapes.json [--threads 1] [--rounds 7]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'torch'))
from common import interleave, set_thread_env  # noqa: E402  (bench/torch/common.py)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('shapes')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--rounds', type=int, default=7)
    a = ap.parse_args()
    set_thread_env(a.threads)
    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for s in json.load(open(a.shapes)):
        g = s['geom']
        x = torch.randn(*s['x'])
        w = torch.randn(*s['w'])
        stride, pad, dil, groups = [g['sh'], g['sw']], [g['pt'], g['pl']], [g['dh'], g['dw']], g['group']
        if g['pt'] != g['pb'] or g['pl'] != g['pr']:
            # asymmetric padding (Keras 'same' with stride 2): pad explicitly, as torch users would
            x = torch.nn.functional.pad(x, (g['pl'], g['pr'], g['pt'], g['pb']))
            pad = [0, 0]
        y = torch.nn.functional.conv2d(x, w, None, stride, pad, dil, groups)
        dy = torch.randn_like(y)

        def bwd(mask):
            return lambda: torch.ops.aten.convolution_backward(dy, x, w, None, stride, pad, dil, False, [0, 0], groups, mask)

        probes = {'fwd': lambda: torch.nn.functional.conv2d(x, w, None, stride, pad, dil, groups), 'dW': bwd([False, True, False])}
        if not s['first']:
            probes['dX'] = bwd([True, False, False])
        with torch.no_grad():
            times = interleave(probes, a.rounds)
        rec = dict(key=s['key'], count=s['count'], threads=a.threads, load=os.getloadavg()[0],
                   **{f'{k}_cpu_ms': cpu for k, (_, cpu) in times.items()})
        print(json.dumps(rec), flush=True)


if __name__ == '__main__':
    main()
