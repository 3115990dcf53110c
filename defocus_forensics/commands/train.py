"""``defocus train``: train a defocus, RGB or fusion detector on any supported data set."""

from __future__ import annotations

import argparse
import sys

from defocus_forensics.commands._options import (
    DATA_SPECS,
    add_data_option,
    add_loader_workers_option,
    add_quiet_option,
)

#: The data used when --data is not given.
DEFAULT_DATA = "synthetic:n=400"

HELP = "train a defocus, RGB or fusion detector (seeded, resumable)"

DESCRIPTION = f"""\
Train a detector with BCE-with-logits and Adam on the train split of --data,
choosing the best epoch on its val split. After each epoch the model is
evaluated on the validation split; OUT/best.pt keeps the best epoch (by
validation AUC unless --select says otherwise) and OUT/last.pt the last one,
from which a rerun with the same OUT resumes. OUT/history.csv and
OUT/metrics.json hold the per-epoch metrics; unreadable images are skipped
and listed there with their paths. The test split is left for 'defocus
evaluate' and 'defocus extract' with the same --data.

{DATA_SPECS}

The paper's setting is --backbone legacy_xception --image-size 299 (the
defaults; slow on a CPU); a laptop-sized run uses a small backbone:

example:
  defocus make-data --data synthetic:n=120,size=64,seed=0 --out runs/syn
  defocus train --data index:runs/syn/index.csv --kind defocus --backbone resnet10t \\
      --image-size 64 --epochs 2 --lr 1e-3 --out runs/train-defocus
"""


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
    """Open the requested splits of ``args.data``; return a dict split -> dataset."""
    from detector.data import open_data, parse_data_spec

    spec = parse_data_spec(args.data)
    if len(splits) > 1 and spec.split is not None:
        raise ValueError(
            f"--data names split={spec.split}, but this command uses the "
            f"{' and '.join(splits)} splits; remove split= from the spec"
        )
    return {s: open_data(spec, s if spec.split is None else None, image_size=image_size)
            for s in splits}  # fmt: skip


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
    g = parser.add_argument_group("data")
    add_data_option(g, DEFAULT_DATA, "the data (its train and val splits)")
    add_model_arguments(parser)
    g = parser.add_argument_group("training")
    g.add_argument("--out", default="runs/train", help="output folder (default runs/train)")
    g.add_argument("--epochs", type=int, default=10, help="total epochs (default 10)")
    g.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    g.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4)")
    g.add_argument("--weight-decay", type=float, default=0.0, help="Adam weight decay (default 0)")
    g.add_argument("--seed", type=int, default=0, help="seed of weights and shuffling (default 0)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    add_loader_workers_option(g)
    g.add_argument(
        "--select",
        choices=["auc", "accuracy", "ap", "loss"],
        default="auc",
        help="validation metric choosing best.pt (default auc; the paper: accuracy)",
    )
    g.add_argument("--no-resume", action="store_true", help="start over even if OUT/last.pt exists")
    add_quiet_option(g)


def run(args: argparse.Namespace) -> int:
    """Train; return the exit status."""
    import json
    from pathlib import Path

    from defocus_forensics.logs import start_run_log
    from detector.device import resolve_device
    from detector.train import seed_everything, train
    from safeio import check_output_dir

    device = resolve_device(args.device)
    seed_everything(args.seed)
    data = datasets_from_args(args, ("train", "val"), args.image_size)
    model = model_from_args(args)
    out = check_output_dir(args.out)
    start_run_log(out)
    result = train(
        model,
        data["train"],
        data["val"],
        out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=device,
        num_workers=args.loader_workers,
        weight_decay=args.weight_decay,
        select=args.select,
        resume=not args.no_resume,
        progress=not args.quiet,
    )
    best = result.best_val
    summary = {
        "best_epoch": result.best_epoch,
        "val_auc": best.get("auc"),
        "val_accuracy": best.get("accuracy"),
        "n_train": len(data["train"]),
        "n_val": len(data["val"]),
        "n_skipped": result.n_skipped,
        "best_checkpoint": result.best_checkpoint,
        "data": args.data,
        "seconds": round(result.seconds, 1),
    }
    print(json.dumps(summary, default=str))
    if result.n_skipped:
        print(
            f"skipped {result.n_skipped} unreadable images; see {Path(out) / 'metrics.json'}",
            file=sys.stderr,
        )
    return 0
