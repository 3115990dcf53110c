"""``defocus make-data``: write the built-in depth-of-field data set as PNG files."""

from __future__ import annotations

import argparse
import sys

HELP = "write the built-in depth-of-field data (PNG images, masks, CSV index)"

DESCRIPTION = """\
Render SyntheticDoF, the built-in data set, to a folder: real scenes rendered
through a thin lens (photo textures at several depths, blur proportional to
|1/d - 1/d_f|) and three kinds of fakes made from the same scenes that break
depth-of-field physics (all_in_focus, inconsistent_blur, pasted_region with
its ground-truth mask). Each fake's pair_id is its real's id.

Layout: DIR/index.csv, DIR/real/<id>.png, DIR/fake/<group>/<id>.png,
DIR/masks/<id>.png, DIR/dataset.json. Scenes are split 70/10/20 into
train/val/test (the index's split column).

example:
  defocus make-data --out runs/syn --n 400 --size 128 --seed 0
  defocus train --dataset index --root runs/syn --backbone resnet10t --image-size 128
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus make-data``."""
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--n", type=int, default=400, help="number of images (default 400)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Write the data set; return the exit status."""
    from pathlib import Path

    from detector.data.synthetic import write_synthetic

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"defocus make-data: --out {args.out!r} exists and is not a folder", file=sys.stderr)
        return 2
    if out.is_dir() and (out / "index.csv").exists():
        print(
            f"defocus make-data: {args.out!r} already holds an index.csv; choose another --out",
            file=sys.stderr,
        )
        return 2
    try:
        index = write_synthetic(
            out, n=args.n, size=args.size, seed=args.seed, progress=not args.no_progress
        )
    except ValueError as err:
        print(f"defocus make-data: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.n} images to {out} (index: {index})")
    return 0
