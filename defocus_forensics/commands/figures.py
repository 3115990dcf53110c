"""``defocus figures``: every figure type from a cache, as PDF + PNG with a manifest."""

from __future__ import annotations

import argparse

HELP = "draw every figure (paper's and ours) from a cache as PDF + PNG, with a manifest"

DESCRIPTION = """\
Run the analyses on a cache and draw every figure type: RGB vs defocus
attribution overlays, binary masks and the threshold sweep, local-variance
pairs, the t-SNE perplexity sweep, alignment histograms (the paper's), and
the mean-local-variance ECDF, permutation null, localisation scores and
deletion curves (ours). Files are named for what they show
(e.g. masks_threshold_sweep.pdf); figures_manifest.json records each
figure's files, the cache fields and analysis functions it was drawn from,
the parameters and the cache's fingerprint. Needs no torch. Figures a
cache cannot support (e.g. deletion curves, which need the models) are
drawn as a marker saying why. Every figure is exactly as wide as one
column (--width single, 3.5 in) or two (--width double, 7 in, the default)
of a two-column paper; its caption in the manifest describes what was drawn.

example:
  defocus figures --cache runs/demo/cache --out runs/demo/figures
  defocus figures --cache runs/demo/cache --out /tmp/f --only masks variance --perplexities 5 10
  defocus figures --cache runs/demo/cache --out /tmp/f1 --width single
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus figures``."""
    parser.add_argument("--cache", required=True, metavar="PATH", help="cache folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--only", nargs="+", metavar="SECTION",
                        help="sections: attributions masks variance embedding alignment "
                        "localisation")  # fmt: skip
    parser.add_argument("--threshold", type=float, default=0.1,
                        help="binary-mask gallery threshold T (default 0.1)")  # fmt: skip
    parser.add_argument("--perplexities", type=float, nargs="+", default=[5, 10, 20, 40])
    parser.add_argument("--window", type=int, default=15, help="local-variance window")
    parser.add_argument("--bins", type=int, default=20, help="alignment histogram bins")
    parser.add_argument("--n-per-class", type=int, default=1000, help="samples embedded per class")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--n-permutations", type=int, default=100, help="permutation-null draws")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--formats", nargs="+", default=["pdf", "png"], help="file formats")
    parser.add_argument("--dpi", type=int, default=150)
    parser.add_argument("--width", choices=["single", "double"], default="double",
                        help="paper width: single column (3.5 in) or double (7 in)")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Draw the figures; exit status 2 on a missing or unreadable cache or bad settings."""
    from cache import open_cache
    from defocus_forensics.figures import FigureParams, draw_figures
    from defocus_forensics.logs import start_run_log
    from safeio import check_output_dir

    args.out = check_output_dir(args.out)
    start_run_log(args.out)
    params = FigureParams(
        gallery_threshold=args.threshold,
        window=args.window,
        bins=args.bins,
        perplexities=tuple(args.perplexities),
        n_per_class=args.n_per_class,
        n_boot=args.n_boot,
        n_permutations=args.n_permutations,
        seed=args.seed,
    )
    cache = open_cache(args.cache)
    manifest = draw_figures(cache, args.out, params=params, formats=args.formats,
                            dpi=args.dpi, only=args.only, progress=not args.quiet,
                            width=args.width)  # fmt: skip
    figs = manifest["figures"]
    unavailable = [f["stem"] for f in figs if f["unavailable"]]
    print(f"{len(figs)} figures, {args.width} width, in {args.out} (figures_manifest.json)")
    for f in figs:
        print(f"  {f['stem']}: {', '.join(f['files'].values())}")
    if unavailable:
        print(f"marked unavailable (see captions): {', '.join(unavailable)}")
    return 0
