"""``defocus demo``: the whole pipeline on built-in synthetic depth-of-field data."""

from __future__ import annotations

import argparse

HELP = "run the main job on built-in data: train, extract, analyse, figures, notebooks, report"

DESCRIPTION = """\
Generate SyntheticDoF data (thin-lens renderings of photo layers and fakes
that break the lens physics: all-in-focus, inconsistent blur, pasted
regions), train a defocus detector and an RGB detector (timm resnet10t,
random init), extract the cache of the test split with both models and
shap-gradient attributions, check that the attributions depend on the
models (model randomisation), run every analysis with one AnalysisConfig
(the preset's: 999 permutations, 1000 bootstrap resamples), and write:

  OUT/cache/         the cache (manifest.json + shards/*.npz)
  OUT/sanity/        the model-randomisation check (sanity.json, sanity.csv)
  OUT/figures/       every figure as PDF + PNG, figures_manifest.json
  OUT/summary/       every number of every analysis (CSV, Markdown)
  OUT/notebooks/     every notebook executed on the cache (.ipynb + .html)
  OUT/report.html    one self-contained report
  OUT/run.json       settings, the analysis config, stage times

Rerunning with the same settings reuses finished stages. Takes about
4 minutes on 2 quiet CPU cores, 2.5 of them training on 3,200 images
at 96 px (--epochs sets the defocus model's, --rgb-epochs the RGB model's;
--quick: well under a minute, tiny models whose numbers only show that the
pipeline works).

example:
  defocus demo --quick --out runs/quick
  defocus demo                     # writes runs/demo/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus demo``."""
    parser.add_argument("--out", default="runs/demo", metavar="DIR", help="output folder")
    parser.add_argument("--quick", action="store_true", help="tiny settings (under a minute)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, training, analyses")
    parser.add_argument("--backbone", default="resnet10t", help="timm backbone of both models")
    parser.add_argument("--epochs", type=int, help="defocus model's epochs (default: preset)")
    parser.add_argument("--rgb-epochs", type=int, help="RGB model's epochs (default: preset)")
    parser.add_argument("--nsamples", type=int, help="shap-gradient samples (default: preset)")
    parser.add_argument("--no-notebooks", action="store_true", help="do not execute the notebooks")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or stage lines")


def run(args: argparse.Namespace) -> int:
    """Run the demo and print the closing summary."""
    from defocus_forensics.demo import DemoConfig, format_closing_summary, run_demo
    from defocus_forensics.logs import start_run_log
    from safeio import check_output_dir

    # absolute from here on: nothing later depends on the working folder
    args.out = check_output_dir(args.out)
    start_run_log(args.out)
    from detector.device import resolve_device

    resolve_device(args.device)
    config = DemoConfig(
        out=args.out,
        quick=args.quick,
        device=args.device,
        seed=args.seed,
        backbone=args.backbone,
        epochs=args.epochs,
        rgb_epochs=args.rgb_epochs,
        nsamples=args.nsamples,
        notebooks=not args.no_notebooks,
        progress=not args.quiet,
    )
    result = run_demo(config)
    print(format_closing_summary(result))
    return 0
