"""``defocus report``: the self-contained HTML report of a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write RUN/report.html: figures, summary table, run config and fingerprints"

DESCRIPTION = """\
Assemble one HTML file from what a run left on disk: the figures listed in
RUN/figures/figures_manifest.json (or every PNG there), the headline numbers
and analysis summary of RUN/summary.json, the run config (RUN/run.json), the
extraction config and model/shard fingerprints of RUN/cache/manifest.json,
and links to the executed notebooks in RUN/notebooks/. Figures are embedded
as base64, so the report is a single self-contained file (use --link to
reference the PNGs beside it instead).

example:
  defocus report --run runs/demo                 # writes runs/demo/report.html
  defocus report --run runs/demo --out runs/demo/report-single.html \\
      --figures runs/demo/figures-single
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus report``."""
    parser.add_argument("--run", required=True, metavar="DIR", help="run folder (e.g. runs/demo)")
    parser.add_argument("--out", metavar="FILE", help="report file (default RUN/report.html)")
    parser.add_argument("--figures", metavar="DIR", help="figures folder (default RUN/figures)")
    parser.add_argument("--cache", metavar="DIR", help="cache folder (default RUN/cache)")
    parser.add_argument(
        "--link",
        action="store_true",
        help="link the PNG files instead of embedding them (smaller report, not self-contained)",
    )


def run(args: argparse.Namespace) -> int:
    """Write the report; exit status 2 when the run folder holds no figures."""
    from defocus_forensics.report import build_report

    out = build_report(
        args.run, args.out, inline=not args.link, figures_dir=args.figures, cache_dir=args.cache
    )
    size = Path(out).stat().st_size / 1e6
    print(f"report: {out} ({size:.1f} MB)")
    return 0
