"""``defocus figures``: every figure type from a cache, as PDF + PNG with a manifest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from analysis.config import AnalysisConfig

HELP = "draw every figure (paper's and ours) from a cache as PDF + PNG, with a manifest"

_D = AnalysisConfig()

DESCRIPTION = """\
Run the analyses on a cache and draw every figure type: RGB vs defocus
attribution overlays, binary masks and the threshold sweep, local-variance
pairs, the t-SNE perplexity sweep, alignment histograms (the paper's), and
the mean-local-variance ECDF, the alignment skill (raw score beside its
no-information floor), the paired defocus-vs-RGB comparison, the
permutation null, localisation scores, deletion curves, the
model-randomisation check and the reliability diagram of each model's
probabilities (ours). Files are named for what they show
(e.g. masks_threshold_sweep.pdf); figures_manifest.json records each
figure's caption, files, the cache fields and analysis functions it was
drawn from, the analysis settings (analysis_config: one AnalysisConfig,
the same object the report and notebooks use) and the cache's
fingerprint. Needs no torch. Figures a cache cannot support (e.g.
deletion curves, which need the models; the randomisation check without
--sanity) are drawn as a marker saying why. Every figure is exactly as
wide as one column (--width single, 3.5 in) or two (--width double, 7 in,
the default) of a two-column paper.

Analysis settings: --config FILE reads an AnalysisConfig (a JSON object of
settings, or a file holding one under "analysis_config", such as another
run's figures_manifest.json or run.json); each option below overrides it;
the rest take the defaults of analysis.config.AnalysisConfig. When the
cache has a 'video' field, intervals and tests resample and test whole
videos (--unit video, the default); --unit frame treats frames as
independent (labelled "frame-level").

example:
  defocus figures --cache runs/demo/cache --out runs/demo/figures
  defocus figures --cache runs/demo/cache --out runs/demo/figures-reflect --only masks variance \\
      --padding reflect
  defocus figures --cache runs/demo/cache --out runs/demo/figures-single --width single \\
      --config runs/demo/figures/figures_manifest.json --sanity runs/demo/sanity
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus figures``."""
    parser.add_argument("--cache", required=True, metavar="PATH", help="cache folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--only", nargs="+", metavar="SECTION",
                        help="sections: attributions masks variance embedding alignment "
                        "localisation sanity detection")  # fmt: skip
    parser.add_argument("--sanity", metavar="DIR",
                        help="folder of 'defocus sanity' (sanity.json) for the randomisation "
                        "check figure")  # fmt: skip
    parser.add_argument("--threshold", type=float, default=0.1,
                        help="binary-mask gallery threshold T (default 0.1)")  # fmt: skip
    parser.add_argument("--formats", nargs="+", default=["pdf", "png"], help="file formats")
    parser.add_argument("--dpi", type=int, default=150)
    parser.add_argument("--width", choices=["single", "double"], default="double",
                        help="paper width: single column (3.5 in) or double (7 in)")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    group = parser.add_argument_group(
        "analysis settings (analysis.config.AnalysisConfig; default: --config, else the class)"
    )
    group.add_argument("--config", metavar="FILE", help="JSON file holding an AnalysisConfig")
    group.add_argument("--thresholds", type=float, nargs="+",
                       help=f"binary-mask sweep (default {list(_D.thresholds)})")  # fmt: skip
    group.add_argument("--window", type=int, help=f"local-variance window (default {_D.window})")
    group.add_argument("--padding", choices=["zeros", "reflect"],
                       help="local-variance border: zeros (the paper's; default) or "
                       "reflect")  # fmt: skip
    group.add_argument("--bins", type=int, help=f"alignment histogram bins (default {_D.bins})")
    group.add_argument("--perplexities", type=float, nargs="+",
                       help=f"t-SNE perplexities (default {list(_D.perplexities)})")  # fmt: skip
    group.add_argument("--n-per-class", type=int,
                       help=f"samples embedded per class (default {_D.n_per_class})")  # fmt: skip
    group.add_argument("--n-boot", type=int,
                       help=f"bootstrap resamples of every CI (default {_D.n_boot})")  # fmt: skip
    group.add_argument("--n-permutations", type=int,
                       help="permutations of every permutation test; the smallest reachable "
                       f"p is 1/(n+1) (default {_D.n_permutations})")  # fmt: skip
    group.add_argument("--null-samples", type=int,
                       help="pairs per group in the shuffled-attribution null (default "
                       f"{_D.null_samples}; 0: none)")  # fmt: skip
    group.add_argument("--confidence", type=float,
                       help=f"level of every interval (default {_D.confidence})")  # fmt: skip
    group.add_argument("--unit", choices=["video", "frame"],
                       help="unit of inference when the cache has videos (default "
                       "video)")  # fmt: skip
    group.add_argument("--seed", type=int, help=f"seed of every random step (default {_D.seed})")


#: Options that set a field of AnalysisConfig of the same name.
_CONFIG_OPTIONS = ("thresholds", "window", "padding", "bins", "perplexities", "n_per_class",
                   "n_boot", "n_permutations", "null_samples", "confidence", "unit",
                   "seed")  # fmt: skip


def read_config_file(path) -> dict:
    """Read an AnalysisConfig dict from a JSON file (itself, or its ``analysis_config`` entry).

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        When it holds no JSON object (or no ``analysis_config`` object).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config: no such file: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"--config: {path} is not JSON ({err})") from None
    if isinstance(data, dict) and isinstance(data.get("analysis_config"), dict):
        data = data["analysis_config"]
    if not isinstance(data, dict):
        raise ValueError(f"--config: {path} holds no JSON object of analysis settings")
    return data


def analysis_config_from_args(args: argparse.Namespace) -> AnalysisConfig:
    """Build the one AnalysisConfig of this run: ``--config`` file, then the options given."""
    from analysis.config import resolve_config

    base = read_config_file(args.config) if getattr(args, "config", None) else None
    overrides = {k: getattr(args, k, None) for k in _CONFIG_OPTIONS}
    for k in ("thresholds", "perplexities"):
        if overrides[k] is not None:
            overrides[k] = tuple(overrides[k])
    return resolve_config(base, **overrides)


def run(args: argparse.Namespace) -> int:
    """Draw the figures; exit status 2 on a missing or unreadable cache or bad settings."""
    from cache import open_cache
    from defocus_forensics.figures import FigureOptions, compute_analyses, draw_figures
    from defocus_forensics.headline import write_summary_json
    from defocus_forensics.logs import start_run_log
    from safeio import check_output_dir

    config = analysis_config_from_args(args)
    options = FigureOptions(gallery_threshold=args.threshold)
    args.out = check_output_dir(args.out)
    start_run_log(args.out)  # first: the log keeps the traceback of a bad cache too
    cache = open_cache(args.cache)
    # the analyses once: the figures and the run's summary (summary.json, summary/summary.csv,
    # what `defocus report` shows as the headline table) come from the same numbers
    table, analyses = compute_analyses(cache, config, sanity=args.sanity,
                                       progress=not args.quiet)  # fmt: skip
    write_summary_json(args.out, table, analyses, cache=cache, config=config)
    manifest = draw_figures(cache, args.out, config=config, options=options,
                            analyses=analyses, formats=args.formats, dpi=args.dpi,
                            only=args.only, progress=not args.quiet,
                            width=args.width)  # fmt: skip
    figs = manifest["figures"]
    unavailable = [f["stem"] for f in figs if f["unavailable"]]
    print(
        f"{len(figs)} figures, {args.width} width, {manifest['level']}-level inference, "
        f"{config.n_permutations} permutations, in {args.out} (figures_manifest.json, "
        "summary.json)"
    )
    for f in figs:
        print(f"  {f['stem']}: {', '.join(f['files'].values())}")
    if unavailable:
        print(f"marked unavailable (see captions): {', '.join(unavailable)}")
    return 0
