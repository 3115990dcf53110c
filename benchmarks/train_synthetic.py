"""Time and test AUC of defocus vs RGB detectors trained on SyntheticDoF.

Trains each model with :func:`detector.train.train` on a SyntheticDoF
training set, picks the best epoch on a validation set and reports the test
AUC (overall and per fake group), the training time, and the time relative
to the RGB model measured in the same run (the cores are shared, so ratios
are the figures to compare). Also prints the data generation time per
sample.

    .venv/bin/python benchmarks/train_synthetic.py                # all three models
    .venv/bin/python benchmarks/train_synthetic.py --models defocus-accurate rgb --epochs 6
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch

from detector.data import SyntheticDoF
from detector.defocus import DefocusConfig
from detector.models import build_detector
from detector.train import evaluate, seed_everything, train

MODELS = ("defocus-reference", "defocus-accurate", "rgb")
FAKES = ("all_in_focus", "inconsistent_blur", "pasted_region")


def _build(name: str, backbone: str, size: int):
    if name == "rgb":
        return build_detector("rgb", backbone=backbone, image_size=size)
    mode = name.split("-", 1)[1]
    return build_detector(
        "defocus",
        backbone=backbone,
        image_size=size,
        defocus_config=DefocusConfig(mode=mode, size=size),
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--n-train", type=int, default=800)
    p.add_argument("--n-val", type=int, default=200)
    p.add_argument("--n-test", type=int, default=400)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--backbone", default="resnet10t")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args()
    if args.json:
        from safeio import check_output_file

        args.json = check_output_file(args.json, "--json")
    if args.threads:
        torch.set_num_threads(args.threads)

    train_ds = SyntheticDoF(args.n_train, size=args.size, seed=3 * args.seed)
    val_ds = SyntheticDoF(args.n_val, size=args.size, seed=3 * args.seed + 1)
    test_ds = SyntheticDoF(args.n_test, size=args.size, seed=3 * args.seed + 2)
    t0 = time.perf_counter()
    for ds in (train_ds, val_ds, test_ds):
        for i in range(len(ds)):
            ds[i]  # render once; the datasets keep the samples in memory
    n_all = len(train_ds) + len(val_ds) + len(test_ds)
    gen = (time.perf_counter() - t0) / n_all
    print(
        f"SyntheticDoF generation: {gen * 1000:.1f} ms per {args.size}px sample ({n_all} samples)"
    )
    print(
        f"torch threads: {torch.get_num_threads()}; backbone {args.backbone}; epochs {args.epochs}"
    )

    rows = []
    for name in args.models:
        seed_everything(args.seed)
        model = _build(name, args.backbone, args.size)
        with tempfile.TemporaryDirectory() as out:
            t = time.perf_counter()
            result = train(
                model,
                train_ds,
                val_ds,
                out,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                seed=args.seed,
                device="auto",
                progress=False,
                callback=lambda row, name=name: print(
                    f"  {name} epoch {row['epoch']}: val AUC {row.get('val_auc', float('nan')):.3f}"
                    f" ({row['seconds']:.0f} s)",
                    flush=True,
                ),
            )
            seconds = time.perf_counter() - t
            from detector.checkpoints import load_checkpoint

            best = load_checkpoint(result.best_checkpoint)
        test = evaluate(best, test_ds, device="auto", progress=False)
        rows.append(
            {
                "model": name,
                "train_seconds": seconds,
                "best_epoch": result.best_epoch,
                "val_auc": result.best_val.get("auc"),
                "test_auc": test["auc"],
                "test_accuracy": test["accuracy"],
                "per_group_auc": {g: m["auc"] for g, m in test["per_group"].items()},
                "val_auc_by_epoch": [h.get("val_auc") for h in result.history],
            }
        )
        print(json.dumps(rows[-1]), flush=True)

    base = next((r["train_seconds"] for r in rows if r["model"] == "rgb"), None)
    print()
    print(
        f"baseline of 'time / RGB': the RGB model trained in this run; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(
        "| model | test AUC | test acc | AUC all_in_focus | AUC inconsistent_blur | "
        "AUC pasted_region | train time (s) | time / RGB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        g = r["per_group_auc"]
        aif, inc, pas = (g.get(k, float("nan")) for k in FAKES)
        ratio = f"{r['train_seconds'] / base:.2f}" if base else "n/a"
        print(
            f"| {r['model']} | {r['test_auc']:.3f} | {r['test_accuracy']:.3f} | "
            f"{aif:.3f} | {inc:.3f} | {pas:.3f} | {r['train_seconds']:.0f} | {ratio} |"
        )
    if args.json:
        from safeio import atomic_write_json

        atomic_write_json(args.json, {"generation_seconds_per_sample": gen, "rows": rows})


if __name__ == "__main__":
    main()
