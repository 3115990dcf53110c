"""``defocus train``: train a defocus, RGB or fusion detector on any supported data set."""

from __future__ import annotations

import argparse
import sys

#: Data set names (as detector.data.select.DATASETS; repeated so --help needs no torch).
DATASETS = ("synthetic", "index", "folders", "ffpp", "cifake")

HELP = "train a defocus, RGB or fusion detector (seeded, resumable)"

DESCRIPTION = """\
Train a detector with BCE-with-logits and Adam. After each epoch the model is
evaluated on the validation split; OUT/best.pt keeps the best epoch (by
validation AUC unless --select says otherwise) and OUT/last.pt the last one,
from which a rerun with the same OUT resumes. OUT/history.csv and
OUT/metrics.json hold the per-epoch metrics; unreadable images are skipped
and listed there with their paths.

data sets (--dataset):
  synthetic  built-in depth-of-field data rendered on the fly (--n images)
  index      a CSV index such as `defocus make-data` writes (--root DIR or CSV)
  folders    --real-dir and --fake-dir, cut 7:1:2 by a hash of each file name
  ffpp       FaceForensics++ face frames (--root, --manipulations, --compression)
  cifake     CIFAKE (--root holding train/ and test/)

The paper's setting is --backbone legacy_xception --image-size 299 (the
defaults); a laptop-sized run uses a small backbone:

example:
  defocus train --dataset synthetic --n 400 --kind defocus --backbone resnet10t \\
      --image-size 128 --epochs 8 --lr 1e-3 --out runs/train-defocus
"""


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that choose a data set (shared with ``defocus evaluate``)."""
    g = parser.add_argument_group("data")
    g.add_argument(
        "--dataset", choices=DATASETS, default="synthetic", help="data set (default synthetic)"
    )
    g.add_argument("--root", help="index CSV or folder (index), or data set root (ffpp, cifake)")
    g.add_argument("--real-dir", help="folder of real images (folders)")
    g.add_argument("--fake-dir", help="folder of fake images (folders)")
    g.add_argument(
        "--manipulations",
        nargs="+",
        default=["Deepfakes"],
        help="FaceForensics++ manipulations (default Deepfakes)",
    )
    g.add_argument(
        "--compression",
        default="c0",
        choices=["c0", "raw", "c23", "c40"],
        help="FaceForensics++ compression level (default c0)",
    )
    g.add_argument(
        "--n",
        type=int,
        default=400,
        help="synthetic: training images (validation and test get half; default 400)",
    )
    g.add_argument("--data-seed", type=int, default=0, help="synthetic: data seed (default 0)")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that build a detector (shared with ``defocus evaluate``)."""
    g = parser.add_argument_group("model")
    g.add_argument(
        "--kind",
        choices=["defocus", "rgb", "fusion"],
        default="defocus",
        help="detector kind (default defocus)",
    )
    g.add_argument(
        "--backbone",
        default="legacy_xception",
        help="timm backbone (default legacy_xception, the paper's)",
    )
    g.add_argument("--image-size", type=int, default=299, help="backbone input side (default 299)")
    g.add_argument(
        "--defocus-mode",
        choices=["reference", "accurate"],
        default="reference",
        help="defocus estimator (default reference, the paper's)",
    )
    g.add_argument(
        "--input-range",
        choices=["unit", "symmetric"],
        default="unit",
        help="images the estimator sees: unit [0,1] or symmetric [-1,1] (the paper's "
        "loader; use it with the paper's checkpoints)",
    )
    g.add_argument("--pretrained", help="local backbone weights file (nothing is downloaded)")


def datasets_from_args(args: argparse.Namespace, splits, image_size: int):
    """Open the requested splits; return a dict split -> dataset."""
    from detector.data.select import open_dataset

    opts = dict(
        root=args.root,
        real_dir=args.real_dir,
        fake_dir=args.fake_dir,
        manipulations=args.manipulations,
        compression=args.compression,
        n=args.n,
        seed=args.data_seed,
    )
    return {s: open_dataset(args.dataset, s, image_size=image_size, **opts) for s in splits}


def model_from_args(args: argparse.Namespace):
    """Build the detector the model options describe."""
    from detector.defocus import DefocusConfig
    from detector.models import build_detector

    cfg = None
    if args.kind != "rgb":
        cfg = DefocusConfig(
            mode=args.defocus_mode, size=args.image_size, input_range=args.input_range
        )
    return build_detector(
        args.kind,
        backbone=args.backbone,
        pretrained=args.pretrained or False,
        image_size=args.image_size,
        defocus_config=cfg,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus train``."""
    add_data_arguments(parser)
    add_model_arguments(parser)
    g = parser.add_argument_group("training")
    g.add_argument("--out", default="runs/train", help="output folder (default runs/train)")
    g.add_argument("--epochs", type=int, default=10, help="total epochs (default 10)")
    g.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    g.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4)")
    g.add_argument("--weight-decay", type=float, default=0.0, help="Adam weight decay (default 0)")
    g.add_argument("--seed", type=int, default=0, help="seed of weights and shuffling (default 0)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    g.add_argument("--workers", type=int, default=0, help="data loader workers (default 0)")
    g.add_argument(
        "--select",
        choices=["auc", "accuracy", "ap", "loss"],
        default="auc",
        help="validation metric choosing best.pt (default auc; the paper: accuracy)",
    )
    g.add_argument("--no-resume", action="store_true", help="start over even if OUT/last.pt exists")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    """Train; return the exit status."""
    import json
    from pathlib import Path

    from detector.device import resolve_device
    from detector.train import seed_everything, train

    try:
        device = resolve_device(args.device)
        seed_everything(args.seed)
        model = model_from_args(args)
        data = datasets_from_args(args, ("train", "val"), args.image_size)
        result = train(
            model,
            data["train"],
            data["val"],
            args.out,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            device=device,
            num_workers=args.workers,
            weight_decay=args.weight_decay,
            select=args.select,
            resume=not args.no_resume,
            progress=not args.no_progress,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"defocus train: {err}", file=sys.stderr)
        return 2
    best = result.best_val
    summary = {
        "best_epoch": result.best_epoch,
        "val_auc": best.get("auc"),
        "val_accuracy": best.get("accuracy"),
        "n_skipped": result.n_skipped,
        "best_checkpoint": result.best_checkpoint,
        "seconds": round(result.seconds, 1),
    }
    print(json.dumps(summary, default=str))
    if result.n_skipped:
        print(
            f"skipped {result.n_skipped} unreadable images; see {Path(args.out) / 'metrics.json'}",
            file=sys.stderr,
        )
    return 0
