#!/usr/bin/python3
"""Exports small random-weight torchvision models (BatchNorm kept) to ONNX for graft's shape and surgery tests.

usage: /usr/bin/python3 scripts/export-test-models.py [--out DIR] [--only NAME ...]
Writes DIR/NAME.onnx (default DIR: test/fixtures/models), input 1x3x64x64, opset 17, batch axis "N".
Files with weights are 1-45 MB: do not commit them; tests skip models that are missing.
Needs Debian's python3-torch, python3-torchvision and python3-onnx.
"""
import argparse
import os

import torch
import torch.nn as nn
import torchvision

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
TV = torchvision.models


class TinyView(nn.Module):
    """conv-bn-relu and torch's `x.view(x.size(0), -1)`, which exports as Shape→Gather→Unsqueeze→Concat→Reshape."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.fc = nn.Linear(8 * 16 * 16, 5)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        return torch.softmax(self.fc(x.view(x.size(0), -1)), dim=1)


MODELS = {
    'resnet18': lambda: TV.resnet18(weights=None),
    'mobilenet_v2': lambda: TV.mobilenet_v2(weights=None),
    'squeezenet1_1': lambda: TV.squeezenet1_1(weights=None),
    'tiny_view': TinyView,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default=os.path.join(ROOT, 'test', 'fixtures', 'models'))
    ap.add_argument('--only', nargs='*', choices=sorted(MODELS))
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    for name in args.only or MODELS:
        model = MODELS[name]().eval()
        # random BN statistics, so folding BN is not a no-op
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        path = os.path.join(args.out, name + '.onnx')
        # PRESERVE keeps BatchNormalization nodes (EVAL would fold them into the convolutions)
        torch.onnx.export(model, torch.randn(1, 3, 64, 64), path, opset_version=17, input_names=['input'],
                          output_names=['output'], dynamic_axes={'input': {0: 'N'}, 'output': {0: 'N'}},
                          training=torch.onnx.TrainingMode.PRESERVE)
        print(f'{path}: {os.path.getsize(path) / 1e6:.1f} MB')


if __name__ == '__main__':
    main()
