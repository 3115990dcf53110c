"""``defocus evaluate``: metrics of a trained detector on a data split."""

from __future__ import annotations

import argparse
import sys

from defocus_forensics.commands._options import (
    DATA_SPECS,
    add_data_option,
    add_loader_workers_option,
    add_quiet_option,
)
from defocus_forensics.commands.train import DEFAULT_DATA, add_model_arguments
from safeio import atomic_write, atomic_write_json

HELP = "evaluate a detector checkpoint (accuracy, AUC, AP, EER, video AUC)"

DESCRIPTION = f"""\
Evaluate a checkpoint on one split of --data (the test split unless the spec
names another) and write OUT/metrics.json, OUT/metrics.csv (one row per fake
group and one for all) and OUT/predictions.csv (id, group, label, logit).
Our checkpoints carry their model config; for the paper's released files
convert them first with 'defocus import-checkpoint SRC --kind defocus|rgb
--out DST' (or give the model options: --kind, --backbone, --image-size,
--input-range symmetric). Files are read with torch.load(weights_only=True)
or safetensors: code is never unpickled.

{DATA_SPECS}

example (after the example of 'defocus train --help'):
  defocus evaluate --checkpoint runs/train-defocus/best.pt \\
      --data index:runs/syn/index.csv --out runs/eval-defocus
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus evaluate``."""
    parser.add_argument("--checkpoint", required=True, help="checkpoint file (.pt or .safetensors)")
    add_data_option(parser, DEFAULT_DATA, "the data (its test split unless the spec names one)")
    parser.add_argument(
        "--out", default="runs/evaluate", help="output folder (default runs/evaluate)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    add_loader_workers_option(parser)
    add_quiet_option(parser)
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

    from defocus_forensics.commands.train import model_from_args
    from defocus_forensics.logs import start_run_log
    from detector.checkpoints import load_checkpoint, read_checkpoint
    from detector.data import open_data, parse_data_spec
    from detector.device import resolve_device
    from detector.train import _json_safe, evaluate
    from safeio import check_output_dir

    device = resolve_device(args.device)
    spec = parse_data_spec(args.data)
    ckpt = read_checkpoint(args.checkpoint)
    if ckpt.config:
        model = load_checkpoint(args.checkpoint)
    else:
        model = load_checkpoint(model_from_args(args), args.checkpoint)
    size = model.config.get("image_size", args.image_size)
    ds = open_data(spec, spec.split or "test", image_size=size)
    out = check_output_dir(args.out)
    start_run_log(out)
    metrics = evaluate(
        model,
        ds,
        batch_size=args.batch_size,
        device=device,
        num_workers=args.loader_workers,
        progress=not args.quiet,
        return_predictions=True,
    )
    preds = metrics.pop("predictions")
    report = {
        "checkpoint": os.fspath(args.checkpoint),
        "model": model.config,
        "split": ds.split,
        "data_spec": ds.spec,
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
            | {"split": ds.split}
        )
    )
    if metrics["n_skipped"]:
        print(
            f"skipped {metrics['n_skipped']} unreadable images; see {out / 'metrics.json'}",
            file=sys.stderr,
        )
    return 0
