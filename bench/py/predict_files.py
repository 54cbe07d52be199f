#!/usr/bin/python3
"""PyTorch end-to-end classification of image files, the counterpart of graft's `predict()` benchmark:
PIL decode → torchvision Resize(256) + CenterCrop(224) + ToTensor + Normalize(ImageNet) → batches of
`--batch` → the random-weight model (bench/torch/common.build_model, the weights bench/out/<model>.onnx
holds) → softmax → top-5. A plain loop without DataLoader workers: decoding and the model take turns in one
process. One JSON line; run it in its own process per configuration (peak RSS).

usage: predict_files.py --dir DIR [--model resnet18] [--batch 8] [--threads 1] [--passes 3] [--warmup-images 16]
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'torch'))
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--dir', required=True)
    ap.add_argument('--model', default='resnet18', choices=common.MODELS)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--passes', type=int, default=3)
    ap.add_argument('--warmup-images', type=int, default=16)
    a = ap.parse_args()
    common.set_thread_env(a.threads)
    import torch
    from PIL import Image
    from torchvision import transforms
    torch.set_num_threads(a.threads)
    m = common.build_model(a.model)
    tf = transforms.Compose([
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    files = sorted(os.path.join(a.dir, f) for f in os.listdir(a.dir) if f.endswith('.jpg'))

    def run(paths):
        done = 0
        with torch.inference_mode():
            for i in range(0, len(paths), a.batch):
                x = torch.stack([tf(Image.open(p).convert('RGB')) for p in paths[i:i + a.batch]])
                top = torch.softmax(m(x), dim=1).topk(5, dim=1)
                done += len(top.indices)
        assert done == len(paths)

    run(files[:a.warmup_images])
    walls, cpus, spans = [], [], []
    for _ in range(a.passes):
        s0, c0, w0 = common.proc_stat(), time.process_time(), time.perf_counter()
        run(files)
        s1, c1, w1 = common.proc_stat(), time.process_time(), time.perf_counter()
        wall, cpu = w1 - w0, c1 - c0
        dt, di = s1[0] - s0[0], s1[1] - s0[1]
        busy = (os.cpu_count() or 1) * (1 - di / dt) if dt > 0 else float('nan')
        walls.append(wall)
        cpus.append(cpu)
        spans.append((cpu / wall, max(0.0, busy - cpu / wall)))
    n = len(files)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    common.emit(dict(bench='predict-files', framework='torch', model=a.model, images=n, batch=a.batch, threads=a.threads,
                     passes=a.passes, median_s=round(wall, 3), img_s=round(n / wall, 2), cpu_s_per_img=round(cpu / n, 5),
                     img_per_cpu_s=round(n / cpu, 2), own_cores=round(statistics.median(s[0] for s in spans), 2),
                     other_busy_cores=round(statistics.median(s[1] for s in spans), 2)))


if __name__ == '__main__':
    main()
