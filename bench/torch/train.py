#!/usr/bin/python3
"""PyTorch training-step throughput for the transfer-learning configurations graft compiles. A step is
zero_grad → forward → mean cross-entropy → backward → optimizer update on the trainable parameters:
AdamW (lr 1e-3, weight decay 1e-2, graft's fine-tuning default; `--optimizer adamw`, the default) or SGD
(lr 0.01, momentum 0.9, weight decay 1e-4; `--optimizer sgd`). The model gets a new `--classes`-way head, as
in transfer learning. Configurations:

  full-bneval   every parameter trainable, BatchNorm frozen (running statistics)
  full-bntrain  every parameter trainable, BatchNorm on batch statistics (running stats updated)
  last-stage    resnet18: layer4 + fc; mobilenet_v2: features.14-18 (the 7x7 stage) + classifier; BN frozen
  head          only the new classifier; the frozen backbone runs without autograd

Dropout stays off in every configuration (graft's training graphs have none). One JSON line per
(model, config, threads), each measured in its own subprocess so peak_rss_mb is that configuration's.

The batch is the fixture PRNG's fill(0, [batch, 3, size, size], -2, 2) with labels i % classes: the batch
graft's side (bench/graft/train-step.ts) feeds.

usage: train.py [--model resnet18 mobilenet_v2] [--config ...] [--batch 16] [--threads 2] [--size 224] [--optimizer adamw]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'scripts', 'fixtures'))
import prng  # noqa: E402

CONFIGS = ('full-bneval', 'full-bntrain', 'last-stage', 'head')
LAST_STAGE = {'resnet18': ('layer4.', 'fc.'), 'mobilenet_v2': tuple(f'features.{i}.' for i in range(14, 19)) + ('classifier.',)}
HEAD = {'resnet18': ('fc.',), 'mobilenet_v2': ('classifier.',)}


def measure(a):
    common.set_thread_env(a.threads)
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    m = common.build_model(a.model, num_classes=a.classes)
    m.eval()
    if a.config == 'full-bntrain':
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.train()
    prefixes = LAST_STAGE[a.model] if a.config == 'last-stage' else HEAD[a.model] if a.config == 'head' else None
    for n, p in m.named_parameters():
        p.requires_grad_(prefixes is None or n.startswith(prefixes))
    params = [p for p in m.parameters() if p.requires_grad]
    if a.optimizer == 'adamw':
        opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-2)
    else:
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.from_numpy(prng.fill(0, [a.batch, 3, a.size, a.size], -2.0, 2.0))
    y = torch.arange(a.batch, dtype=torch.int64) % a.classes
    losses = []

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())

    r = common.lockstep_loop(step, a.batch, a.warmup) if a.lockstep else common.timed_loop(step, a.batch, a.warmup, a.iters, a.max_seconds)
    common.emit(dict(bench='train', framework='torch', model=a.model, config=a.config, batch=a.batch, size=a.size,
                     classes=a.classes, threads=a.threads, optimizer=a.optimizer, trainable_params=sum(p.numel() for p in params),
                     first_loss=round(losses[0], 4), last_loss=round(losses[-1], 4), **r))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', nargs='+', default=list(common.MODELS), choices=common.MODELS)
    ap.add_argument('--config', nargs='+', default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--threads', nargs='+', type=int, default=[2])
    ap.add_argument('--classes', type=int, default=10)
    ap.add_argument('--optimizer', default='adamw', choices=['adamw', 'sgd'])
    common.add_timing_args(ap, warmup=2, iters=10, max_seconds=60)
    ap.add_argument('--lockstep', action='store_true', help='with --one: one timed step per "step" line on stdin (bench/finetune/paired.ts)')
    a = ap.parse_args()
    if a.one:
        a.model, a.config, a.threads = a.model[0], a.config[0], a.threads[0]
        return measure(a)
    for t in a.threads:
        for model in a.model:
            for config in a.config:
                common.run_isolated(__file__, ['--model', model, '--config', config, '--batch', a.batch, '--threads', t,
                                               '--classes', a.classes, '--optimizer', a.optimizer] + common.timing_args(a), t)


if __name__ == '__main__':
    main()
