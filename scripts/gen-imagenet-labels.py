#!/usr/bin/python3
"""Writes assets/imagenet-1k-labels.json: the 1000 ImageNet-1k class names in class-index order, as
torchvision ships them (torchvision/models/_meta.py, _IMAGENET_CATEGORIES).

Run with Debian's python3-torchvision: /usr/bin/python3 scripts/gen-imagenet-labels.py
"""
import json
import os

from torchvision.models._meta import _IMAGENET_CATEGORIES as CATEGORIES

assert len(CATEGORIES) == 1000 and all(isinstance(c, str) and c for c in CATEGORIES)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'assets', 'imagenet-1k-labels.json')
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, 'w', encoding='utf-8') as f:
    # one name per line keeps diffs readable
    f.write('[\n' + ',\n'.join(json.dumps(c, ensure_ascii=False) for c in CATEGORIES) + '\n]\n')
