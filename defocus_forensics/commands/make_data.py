"""``defocus make-data``: write the built-in depth-of-field data set as PNG files."""

from __future__ import annotations

import argparse

from defocus_forensics.commands._options import (
    add_data_option,
    add_quiet_option,
    add_replaced_option,
)

HELP = "write the built-in depth-of-field data (PNG images, masks, CSV index)"

DESCRIPTION = """\
Render SyntheticDoF, the built-in data set, to a folder: real scenes rendered
through a thin lens (photo textures at several depths, blur proportional to
|1/d - 1/d_f|) and three kinds of fakes made from the same scenes that break
depth-of-field physics (all_in_focus, inconsistent_blur, pasted_region with
its ground-truth mask). Each fake's pair_id is its real's id.

Layout: DIR/index.csv, DIR/real/<id>.png, DIR/fake/<group>/<id>.png,
DIR/masks/<id>.png, DIR/dataset.json. The index's split column cuts the
scenes exactly as the spec does, so --data index:DIR/index.csv,split=test
holds the same images as the synthetic spec with split=test. The folder is
written whole or not at all; sizes that cannot fit in memory are refused
before anything is written.

--data takes a synthetic spec only (keys n, size, seed, val, test,
fake_groups, noise; see docs/data-spec.md).

example:
  defocus make-data --data synthetic:n=120,size=64,seed=0 --out runs/syn
  defocus train --data index:runs/syn/index.csv --kind defocus --backbone resnet10t \\
      --image-size 64 --epochs 2 --lr 1e-3 --out runs/train-defocus
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus make-data``."""
    add_data_option(parser, "synthetic:n=400,size=128,seed=0", "the synthetic data to write")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder (created; must not exist or be empty)")  # fmt: skip
    for key in ("n", "size", "seed"):
        add_replaced_option(
            parser, f"--{key}", "put it in the spec, e.g. --data synthetic:n=400,size=128,seed=0"
        )
    add_quiet_option(parser)


def run(args: argparse.Namespace) -> int:
    """Write the data set; return the exit status."""
    from pathlib import Path

    from detector.data import parse_data_spec
    from detector.data.spec import synthetic_settings
    from detector.data.synthetic import write_synthetic

    spec = parse_data_spec(args.data)
    if spec.kind != "synthetic":
        raise ValueError(
            f"make-data writes the built-in synthetic data only, got a {spec.kind} spec; "
            "other data is read as it is with --data in train, evaluate and extract"
        )
    if spec.split is not None:
        raise ValueError("make-data writes every split (the index's split column); remove split=")
    out = Path(args.out).expanduser().absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {args.out!r} exists and is not an empty folder; choose another")
    settings = synthetic_settings(spec)
    settings["size"] = settings["size"] or 128
    index = write_synthetic(out, progress=not args.quiet, **settings)
    print(f"wrote {settings['n']} images to {out} (index: {index})")
    return 0
