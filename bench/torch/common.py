"""Shared pieces of the PyTorch benchmarks: the random-weight models, timing, CPU and memory accounting.

Every measurement runs in a fresh subprocess (`run_isolated`), so `peak_rss_mb` belongs to one configuration
and thread settings are fixed before torch starts its thread pools.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

OUT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', 'out'))
MODELS = ('resnet18', 'mobilenet_v2')


def set_thread_env(threads):
    """Before `import torch`: OpenMP / MKL pools sized once, at start-up."""
    for k in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        os.environ[k] = str(threads)


def build_model(name, num_classes=1000):
    """torchvision architecture, deterministic random weights, BN statistics and affine parameters randomised so
    that BN folding is not a no-op. export_models.py writes exactly these weights to bench/out/."""
    import torch
    import torchvision
    torch.manual_seed(0)
    m = getattr(torchvision.models, name)(weights=None)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1, generator=g)
                mod.running_var.uniform_(0.5, 1.5, generator=g)
                mod.weight.uniform_(0.5, 1.5, generator=g)
                mod.bias.uniform_(-0.1, 0.1, generator=g)
    if num_classes != 1000:
        # transfer learning: a new head for the user's classes
        if name == 'resnet18':
            m.fc = torch.nn.Linear(m.fc.in_features, num_classes)
        else:
            m.classifier[-1] = torch.nn.Linear(m.classifier[-1].in_features, num_classes)
    return m.eval()


def proc_stat():
    """(total jiffies, idle jiffies) of the whole machine."""
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]


class Timer:
    """Times iterations: wall clock and this process's CPU time (all threads), plus how busy the rest of the
    machine was while we ran — the numbers only mean something next to that on a shared machine."""

    def __init__(self):
        self.wall, self.cpu = [], []

    def __enter__(self):
        self.s0, self.c0, self.w0 = proc_stat(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s1, self.c1, self.w1 = proc_stat(), time.process_time(), time.perf_counter()

    def step(self, fn):
        w, c = time.perf_counter(), time.process_time()
        fn()
        self.wall.append(time.perf_counter() - w)
        self.cpu.append(time.process_time() - c)

    def result(self, batch):
        wall = self.w1 - self.w0
        own_cores = (self.c1 - self.c0) / wall
        dt, di = self.s1[0] - self.s0[0], self.s1[1] - self.s0[1]
        ncpu = os.cpu_count() or 1
        busy = ncpu * (1 - di / dt) if dt > 0 else float('nan')
        med, cmed = statistics.median(self.wall), statistics.median(self.cpu)
        return dict(
            iters=len(self.wall), median_ms=round(med * 1e3, 2), min_ms=round(min(self.wall) * 1e3, 2),
            img_s=round(batch / med, 2), cpu_s_per_img=round(cmed / batch, 5), img_per_cpu_s=round(batch / cmed, 2),
            own_cores=round(own_cores, 2), other_busy_cores=round(max(0.0, busy - own_cores), 2))


def timed_loop(fn, batch, warmup, iters, max_seconds):
    for _ in range(warmup):
        fn()
    t = Timer()
    end = time.perf_counter() + max_seconds
    with t:
        while len(t.wall) < iters and (len(t.wall) < 3 or time.perf_counter() < end):
            t.step(fn)
    return t.result(batch)


def lockstep_loop(fn, batch, warmup):
    """Warm up, print {"ready": true}, then time one iteration per `step` line on stdin, answering each with
    {"step": i, "wall_ms": ..., "cpu_ms": ...}, until `end` or the end of stdin. bench/finetune/paired.ts drives
    a graft and a PyTorch process this way, step for step (graft's side: bench/lib/measure.ts lockstepLoop)."""
    for _ in range(warmup):
        fn()
    t = Timer()
    print(json.dumps(dict(ready=True)), flush=True)
    with t:
        for line in sys.stdin:
            if line.strip() != 'step':
                break
            t.step(fn)
            print(json.dumps(dict(step=len(t.wall), wall_ms=round(t.wall[-1] * 1e3, 2), cpu_ms=round(t.cpu[-1] * 1e3, 2))), flush=True)
    if not t.wall:
        raise SystemExit('lockstep: no step was asked for')
    return t.result(batch)


def interleave(probes, rounds):
    """Times every probe `rounds` times, interleaved (A B A B ...) after one untimed call each, for probes too
    short for a loop of their own: {name: (median wall ms, median CPU ms)}."""
    for f in probes.values():
        f()
    wall, cpu = {k: [] for k in probes}, {k: [] for k in probes}
    for _ in range(rounds):
        for k, f in probes.items():
            w, c = time.perf_counter(), time.process_time()
            f()
            wall[k].append(time.perf_counter() - w)
            cpu[k].append(time.process_time() - c)
    return {k: (round(statistics.median(wall[k]) * 1e3, 2), round(statistics.median(cpu[k]) * 1e3, 2)) for k in probes}


def peak_rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def emit(record):
    import torch
    record.update(torch=torch.__version__, peak_rss_mb=peak_rss_mb(), loadavg_1m=round(os.getloadavg()[0], 2))
    print(json.dumps(record), flush=True)


def add_timing_args(ap, warmup, iters, max_seconds):
    """Options every benchmark script shares; `timing_args` passes them on to the per-measurement subprocess."""
    ap.add_argument('--size', type=int, default=224, help='input height = width')
    ap.add_argument('--warmup', type=int, default=warmup)
    ap.add_argument('--iters', type=int, default=iters, help='timed iterations (fewer if --max-seconds runs out; at least 3)')
    ap.add_argument('--max-seconds', type=float, default=max_seconds)
    ap.add_argument('--one', action='store_true', help=argparse.SUPPRESS)


def timing_args(a):
    return ['--size', a.size, '--warmup', a.warmup, '--iters', a.iters, '--max-seconds', a.max_seconds]


def run_isolated(script, args, threads):
    """Runs `script --one ARGS` in a fresh interpreter with the thread environment set; forwards its JSON lines."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, script, '--one'] + [str(a) for a in args]
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in r.stdout.splitlines():
        if line.startswith('{'):
            print(line, flush=True)
    if r.returncode != 0:
        print(json.dumps(dict(error=r.stderr.strip().splitlines()[-1:] or ['exit %d' % r.returncode], cmd=cmd[1:])), flush=True)
