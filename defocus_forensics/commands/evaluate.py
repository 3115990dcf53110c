"""``defocus evaluate``: metrics of a trained detector on a data split."""

from __future__ import annotations

import argparse
import sys

from defocus_forensics.commands.train import add_data_arguments, add_model_arguments
from safeio import atomic_write, atomic_write_json

HELP = "evaluate a detector checkpoint (accuracy, AUC, AP, EER, video AUC)"

DESCRIPTION = """\
Evaluate a checkpoint on one split of a data set and write OUT/metrics.json,
OUT/metrics.csv (one row per fake group and one for all) and
OUT/predictions.csv (id, group, label, logit). Our checkpoints carry their
model config; for the paper's released files (a state dict with 'module.'
keys, possibly inside {'model_state_dict': ...}) give the model options
(--kind, --backbone, --image-size, --input-range symmetric). Files are read
with torch.load(weights_only=True) or safetensors: code is never unpickled.

example:
  defocus evaluate --checkpoint runs/train-defocus/best.pt --dataset synthetic \\
      --n 400 --split test --out runs/eval-defocus
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus evaluate``."""
    parser.add_argument("--checkpoint", required=True, help="checkpoint file (.pt or .safetensors)")
    parser.add_argument(
        "--split",
        choices=["train", "val", "test"],
        default="test",
        help="split to evaluate (default test)",
    )
    parser.add_argument(
        "--out", default="runs/evaluate", help="output folder (default runs/evaluate)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--workers", type=int, default=0, help="data loader workers (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_data_arguments(parser)
    add_model_arguments(parser)


def _csv_rows(metrics: dict) -> list[dict]:
    keys = (
        "n",
        "n_real",
        "n_fake",
        "accuracy",
        "auc",
        "ap",
        "eer",
        "video_auc",
        "loss",
        "n_skipped",
    )
    rows = [{"group": "all", **{k: metrics.get(k) for k in keys}}]
    for g, m in metrics.get("per_group", {}).items():
        rows.append({"group": g, **{k: m.get(k) for k in keys}})
    return rows


def run(args: argparse.Namespace) -> int:
    """Evaluate; return the exit status."""
    import csv
    import json
    import os
    from pathlib import Path

    from defocus_forensics.commands.train import datasets_from_args, model_from_args
    from detector.checkpoints import load_checkpoint, read_checkpoint
    from detector.device import resolve_device
    from detector.train import _json_safe, evaluate

    try:
        device = resolve_device(args.device)
        ckpt = read_checkpoint(args.checkpoint)
        if ckpt.config:
            model = load_checkpoint(args.checkpoint)
        else:
            model = load_checkpoint(model_from_args(args), args.checkpoint)
        size = model.config.get("image_size", args.image_size)
        ds = datasets_from_args(args, (args.split,), size)[args.split]
        metrics = evaluate(
            model,
            ds,
            batch_size=args.batch_size,
            device=device,
            num_workers=args.workers,
            progress=not args.no_progress,
            return_predictions=True,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"defocus evaluate: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    preds = metrics.pop("predictions")
    report = {
        "checkpoint": os.fspath(args.checkpoint),
        "model": model.config,
        "split": args.split,
        "data": ds.describe() if hasattr(ds, "describe") else {"n": len(ds)},
        "metrics": metrics,
    }
    atomic_write_json(out / "metrics.json", _json_safe(report))
    rows = _csv_rows(_json_safe(metrics))
    with atomic_write(out / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with atomic_write(out / "predictions.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", "group", "label", "logit"])
        w.writeheader()
        w.writerows(preds)
    print(
        json.dumps(
            {k: _json_safe(metrics[k]) for k in ("n", "accuracy", "auc", "ap", "eer", "n_skipped")}
        )
    )
    if metrics["n_skipped"]:
        print(
            f"skipped {metrics['n_skipped']} unreadable images; see {out / 'metrics.json'}",
            file=sys.stderr,
        )
    return 0
