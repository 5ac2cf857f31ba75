"""Images/s of `archdsl train`'s input pipeline alone (no model): JPEG photos in an
ImageNet-layout folder (decode, random-resized crop, flip, normalise, at 224x224), with
0 and N workers, and the built-in shapes data. Each configuration runs the same batches.

    python bench/loader_speed.py [--images 512] [--workers 0,2] [--batch 64] [--side 500]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from archdsl.runtime.data import open_source  # noqa: E402
from archdsl.runtime.loader import Loader  # noqa: E402
from archdsl.runtime.transforms import policy  # noqa: E402


def make_folder(root: Path, count: int, side: int) -> None:
    """`count` JPEGs of about side x 3/4 side (photo-like sizes), in 10 classes."""
    from PIL import Image, ImageDraw
    generator = torch.Generator().manual_seed(0)
    for i in range(count):
        for split in ("train", "val") if i < 10 else ("train",):
            folder = root / split / f"class{i % 10}"
            folder.mkdir(parents=True, exist_ok=True)
            colours = [tuple(torch.randint(0, 256, (3,), generator=generator).tolist()) for _ in range(2)]
            image = Image.new("RGB", (side, side * 3 // 4), colours[0])
            ImageDraw.Draw(image).ellipse((side // 4, side // 8, side * 3 // 4, side // 2), fill=colours[1])
            noise = Image.effect_noise((side, side * 3 // 4), 40).convert("RGB")
            Image.blend(image, noise, 0.2).save(folder / f"{i}.jpg", quality=90)


def rate(split, augment: str, workers: int, batch: int) -> float:
    loader = Loader(split, policy(augment, split.crop_scale), split.preprocess, seed=0,
                    batch_size=batch, rank=0, world=1, workers=workers, pin_memory=False)
    for _ in loader.epoch(0, loader.steps - 1):  # start the workers
        pass
    start = time.perf_counter()
    seen = sum(len(y) for _, (x, y) in loader.epoch(1, 0))
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--side", type=int, default=500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", default="0,2")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        make_folder(Path(folder), args.images, args.side)
        split, _ = open_source(f"folder:{folder}", (3, 224, 224), 0)
        for augment in ("basic", "none"):
            for count in workers:
                print(f"folder of {args.images} JPEGs {args.side}x{args.side * 3 // 4} -> 224x224, "
                      f"--augment {augment}, {count} workers, batch {args.batch}: "
                      f"{rate(split, augment, count, args.batch):.0f} images/s", flush=True)
    split, _ = open_source(f"shapes:{args.images * 4}", (3, 32, 32), 0)
    for count in workers:
        print(f"shapes at 3x32x32, --augment basic, {count} workers, batch {args.batch}: "
              f"{rate(split, 'basic', count, args.batch):.0f} images/s", flush=True)
    print(f"(this machine: {torch.get_num_threads()} torch threads)")


if __name__ == "__main__":
    main()
