#!/usr/bin/python3
"""Reference outputs for test/data/preprocess.test.ts, computed with torchvision + PIL.

Writes synthetic source images and what torchvision's eval transform makes of them:

    Resize(floor(size / crop_pct), interpolation) -> CenterCrop(size) -> ToTensor -> Normalize

into test/fixtures/preprocess/ (CI has no python: the test reads the committed files).

Conventions graft applies before the transform, reproduced here explicitly because torchvision's own
loader (PIL `convert('RGB')`) does not do them: EXIF orientation is applied (ImageOps.exif_transpose),
alpha is composited onto white (rounded to nearest), 16-bit samples are reduced to 8 bits by v >> 8 (PIL would clip them at
255 instead).

The outputs of Resize + CenterCrop + ToTensor are exactly uint8 / 255, so they are stored as uint8
HWC RGB (gzip'd, concatenated in manifest order); Normalize is checked with a few float32 samples.

Run with Debian's python (torch 1.13 / torchvision 0.14): /usr/bin/python3 scripts/gen-preprocess-fixture.py
"""
import gzip
import io
import json
import math
import os
import sys

import numpy as np
import torch
import torchvision
from PIL import Image, ImageOps
from torchvision import transforms as T

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'preprocess')
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
INTERP = {
    'nearest': T.InterpolationMode.NEAREST,
    'bilinear': T.InterpolationMode.BILINEAR,
    'bicubic': T.InterpolationMode.BICUBIC,
    'lanczos': T.InterpolationMode.LANCZOS,
}


def grid(w, h):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return x, y


def u8(a):
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def gradient(w, h):
    x, y = grid(w, h)
    return np.dstack([x * 255 / (w - 1), y * 255 / (h - 1), 128 + 100 * np.sin(x / 17 + y / 23)])


def checker(w, h, cell):
    x, y = grid(w, h)
    on = ((x // cell + y // cell) % 2)[..., None]
    return on * np.array([230, 30, 60]) + (1 - on) * np.array([20, 200, 240])


def stripes(w, h):
    x, y = grid(w, h)
    s = ((x + y) // 6 % 2) * 120
    return np.dstack([s + 60 * x / w, 200 - s + 40 * y / h, 90 + 80 * np.cos(y / 9)])


def coords(w, h):
    # every pixel names its own position, so a crop or a nearest resize shows exactly where it sampled
    x, y = grid(w, h)
    return np.dstack([x, y, (x * 7 + y * 13) % 256])


def save(name, img, **kw):
    img.save(os.path.join(OUT, name), **kw)


def make_sources():
    save('gradient.png', Image.fromarray(u8(gradient(320, 240)), 'RGB'))
    save('checker.png', Image.fromarray(u8(checker(256, 256, 7)), 'RGB'))
    save('tall.png', Image.fromarray(u8(stripes(150, 400)), 'RGB'))
    save('small.png', Image.fromarray(u8(checker(24, 18, 3) * 0.5 + gradient(24, 18) * 0.5), 'RGB'))
    save('coords-100x80.png', Image.fromarray(u8(coords(100, 80)), 'RGB'))
    save('coords-36x41.png', Image.fromarray(u8(coords(36, 41)), 'RGB'))

    # stored 240x160 with a red block at the stored top-left; orientation 6 shows it at the top-right
    a = gradient(240, 160)
    a[:40, :60] = [255, 0, 0]
    exif = Image.Exif()
    exif[0x0112] = 6
    save('exif6.jpg', Image.fromarray(u8(a), 'RGB'), quality=95, subsampling=0, exif=exif.tobytes())
    # the common camera layout: 4:2:0 chroma, so the decoders' chroma upsampling must agree too
    save('stripes420.jpg', Image.fromarray(u8(stripes(200, 150)), 'RGB'), quality=85, subsampling=2)

    # colour under fully transparent pixels is black, so dropping alpha instead of flattening shows
    x, y = grid(200, 150)
    alpha = np.clip(255 - np.hypot(x - 100, y - 75) * 3, 0, 255)
    rgb = stripes(200, 150) * (alpha > 0)[..., None]
    save('rgba.png', Image.fromarray(np.dstack([u8(rgb), u8(alpha)]), 'RGBA'))

    g16 = np.clip(np.rint(x / 199 * 65535 * 0.8 + y * 97 + np.sin(x / 5) * 3000), 0, 65535).astype(np.uint16)
    g16 = g16[:120, :160]
    im = Image.fromarray(g16.astype(np.uint16), 'I;16')
    save('gray16.png', im)


def load(name):
    """The image as graft decodes it: oriented, flattened on white, 8-bit RGB."""
    im = Image.open(os.path.join(OUT, name))
    im = ImageOps.exif_transpose(im)
    if im.mode in ('I;16', 'I;16B', 'I'):
        a = np.asarray(im).astype(np.uint32) >> 8
        return Image.fromarray(a.astype(np.uint8), 'L').convert('RGB')
    if im.mode in ('RGBA', 'LA', 'PA') or (im.mode == 'P' and 'transparency' in im.info):
        a = np.asarray(im.convert('RGBA')).astype(np.int64)
        alpha = a[..., 3:]
        # round((v * alpha + 255 * (255 - alpha)) / 255); PIL's alpha_composite rounds differently by ±1
        rgb = (2 * (a[..., :3] * alpha + 255 * (255 - alpha)) + 255) // 510
        return Image.fromarray(rgb.astype(np.uint8), 'RGB')
    return im.convert('RGB')


CASES = [
    # (image, size, crop_pct, interpolations)
    ('gradient.png', 32, 0.875, list(INTERP)),
    ('gradient.png', 32, 0.9, ['bilinear', 'bicubic']),
    ('checker.png', 32, 0.875, list(INTERP)),
    ('tall.png', 32, 0.875, list(INTERP)),
    ('small.png', 32, 0.875, list(INTERP)),
    ('exif6.jpg', 32, 0.875, list(INTERP)),
    ('stripes420.jpg', 32, 0.875, ['bilinear', 'bicubic']),
    ('rgba.png', 32, 0.875, list(INTERP)),
    ('gray16.png', 32, 0.875, list(INTERP)),
    ('coords-100x80.png', 32, 0.875, ['nearest']),
    ('coords-36x41.png', 32, 0.875, list(INTERP)),  # resize is a no-op: only the crop acts
    ('checker.png', 128, 1.0, list(INTERP)),  # exact factor 2 downscale, no crop
]


def main():
    os.makedirs(OUT, exist_ok=True)
    make_sources()
    manifest = {
        'generator': 'scripts/gen-preprocess-fixture.py',
        'torch': torch.__version__,
        'torchvision': torchvision.__version__,
        'pil': Image.__version__,
        'mean': MEAN,
        'std': STD,
        'cases': [],
        'normalized': [],
    }
    blob = io.BytesIO()
    offset = 0
    for name, size, crop_pct, interps in CASES:
        src = load(name)
        for interp in interps:
            scale = int(math.floor(size / crop_pct))
            resized = T.Resize(scale, interpolation=INTERP[interp])(src)
            cropped = T.CenterCrop(size)(resized)
            t = T.ToTensor()(cropped)
            hwc = (t * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
            assert np.array_equal(hwc, np.asarray(cropped)), 'ToTensor is not exactly uint8 / 255'
            data = hwc.tobytes()
            blob.write(data)
            manifest['cases'].append({
                'image': name, 'size': size, 'cropPct': crop_pct, 'interpolation': interp,
                'source': list(src.size), 'resized': list(resized.size), 'offset': offset, 'bytes': len(data),
            })
            offset += len(data)
            if interp == 'bilinear' and name in ('gradient.png', 'tall.png') and crop_pct == 0.875:
                norm = T.Normalize(MEAN, STD)(t)  # CHW float32
                manifest['normalized'].append({
                    'image': name, 'size': size, 'cropPct': crop_pct, 'interpolation': interp,
                    # a few (c, y, x, value) samples of the full torchvision chain
                    'samples': [[c, yy, xx, float(norm[c, yy, xx])] for c in range(3) for yy, xx in ((0, 0), (5, 17), (31, 31))],
                })
    # mtime=0 keeps the file byte-identical across runs
    with open(os.path.join(OUT, 'expected.u8.gz'), 'wb') as f:
        f.write(gzip.compress(blob.getvalue(), 9, mtime=0))
    with open(os.path.join(OUT, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()
