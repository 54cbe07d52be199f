#!/usr/bin/python3
"""PyTorch reference for head training on cached features, the counterpart of graft's `head-synthetic`
measurement: standardised features → Dropout(0.2) → Linear(dim, classes), cross-entropy, AdamW (lr 3e-3, weight
decay 1e-4) with a one-cycle schedule, batch 32, shuffled each epoch, validation loss and accuracy after every
epoch, no early stopping — graft's head-mode defaults. Synthetic Gaussian class clusters of the same shape
as graft's (not the same numbers: different generators). One JSON line.

usage: head_train.py [--n-train 1000] [--n-val 250] [--dim 1280] [--classes 5] [--epochs 100] [--threads 1]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'torch'))
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--n-train', type=int, default=1000)
    ap.add_argument('--n-val', type=int, default=250)
    ap.add_argument('--dim', type=int, default=1280)
    ap.add_argument('--classes', type=int, default=5)
    ap.add_argument('--epochs', type=int, default=100)
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    common.set_thread_env(a.threads)
    import numpy as np
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(7)
    means = 0.5 + 0.3 * (rng.random((a.classes, a.dim)) - 0.5)

    def synthetic(n, seed):
        r = np.random.default_rng(seed)
        y = np.arange(n) % a.classes
        x = np.maximum(0, means[y] + r.standard_normal((n, a.dim)))
        return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)

    s0, c0, w0 = common.proc_stat(), time.process_time(), time.perf_counter()
    xt, yt = synthetic(a.n_train, 1)
    xv, yv = synthetic(a.n_val, 2)
    mu, sd = xt.mean(0), xt.std(0, unbiased=False).clamp_min(1e-6)
    xt, xv = (xt - mu) / sd, (xv - mu) / sd
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(a.dim, a.classes))
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=1e-4)
    batch = 32
    steps = (a.n_train + batch - 1) // batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=a.epochs * steps)
    acc = None
    for _ in range(a.epochs):
        head.train()
        perm = torch.randperm(a.n_train)
        for i in range(0, a.n_train, batch):
            idx = perm[i:i + batch]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(head(xt[idx]), yt[idx]).backward()
            opt.step()
            sched.step()
        head.eval()
        with torch.no_grad():
            logits = head(xv)
            F.cross_entropy(logits, yv)
            acc = (logits.argmax(1) == yv).float().mean().item()
    s1, c1, w1 = common.proc_stat(), time.process_time(), time.perf_counter()
    wall, cpu = w1 - w0, c1 - c0
    dt, di = s1[0] - s0[0], s1[1] - s0[1]
    busy = (os.cpu_count() or 1) * (1 - di / dt) if dt > 0 else float('nan')
    common.emit(dict(bench='head-synthetic', framework='torch', n_train=a.n_train, n_val=a.n_val, dim=a.dim, classes=a.classes,
                     epochs=a.epochs, batch=batch, threads=a.threads, seconds=round(wall, 3), cpu_s=round(cpu, 3),
                     ms_per_epoch=round(wall * 1000 / a.epochs, 1), own_cores=round(cpu / wall, 2),
                     other_busy_cores=round(max(0.0, busy - cpu / wall), 2), val_accuracy=round(acc, 4)))


if __name__ == '__main__':
    main()
