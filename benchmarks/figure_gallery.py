"""Draw every figure of the quick demo at both paper widths: the gallery in docs/figures.md.

Usage::

    .venv/bin/python benchmarks/figure_gallery.py [--run runs/quick] [--docs docs]

Runs (or reuses) ``defocus demo --quick --no-notebooks --out RUN``, loads its
two trained models for the deletion curves, runs the analyses once with the
demo's settings, draws every figure type at ``--width single`` (3.5 in) and
``--width double`` (7 in), and writes:

  DOCS/img/gallery/single/<stem>.png   one-column figures
  DOCS/img/gallery/double/<stem>.png   two-column figures
  DOCS/figures.md                      every figure at both widths with its caption

It prints the time spent drawing each width (the analyses excluded), so a
change that slows the figures down shows.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
WIDTH_TEXT = {"single": "single column, 3.5 in", "double": "double column, 7 in"}


def _png_bytes(path: Path) -> bytes:
    """Return the PNG re-encoded small: 256 colours for plots, lossless for colour-map images.

    Plots hold a few hundred colours, so a 256-colour palette changes nothing
    visible and a third of the size; pictures with photos or smooth colour
    bars would show bands, so they stay as they are (optimised).
    """
    import numpy as np
    from PIL import Image

    with Image.open(path) as img:
        rgb = img.convert("RGB")
    n_colours = len(np.unique(np.asarray(rgb).reshape(-1, 3), axis=0))
    if n_colours <= 2000:
        rgb = rgb.quantize(256, method=Image.Quantize.MEDIANCUT)
    buf = io.BytesIO()
    rgb.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _analyses(run: Path, quick: bool, device: str):
    """Run (or reuse) the demo, then the analyses with its models and its one AnalysisConfig."""
    import torch

    from cache import open_cache
    from defocus_forensics.demo import DemoConfig, _predictors, run_demo
    from defocus_forensics.figures import compute_analyses
    from detector.models import build_detector, load_checkpoint

    config = DemoConfig(out=run, quick=quick, notebooks=False, progress=False, device=device)
    run_demo(config)
    models = {}
    for kind in ("defocus", "rgb"):
        model = build_detector(kind, backbone=config.backbone, image_size=config.image_size)
        load_checkpoint(model, run / "models" / kind / "best.pt")
        models[kind] = model.eval()
    torch.manual_seed(config.seed)
    analysis = config.analysis
    cache = open_cache(run / "cache")
    sanity = run / "sanity"
    _, analyses = compute_analyses(
        cache,
        analysis.config,
        predict=_predictors(models, config.device),
        deletion_samples=analysis.deletion_samples,
        deletion_steps=analysis.deletion_steps,
        sanity=sanity if (sanity / "sanity.json").is_file() else None,
    )
    return cache, analysis.config, analyses


def _markdown(manifests: dict[str, dict], command: str) -> str:
    first = manifests["double"]
    lines = [
        "# Figures",
        "",
        "Every figure type of `defocus figures`, drawn from the quick demo "
        "(`defocus demo --quick`: tiny models trained for seconds on synthetic data, so the "
        "numbers only show that the pipeline works), at the two widths of a two-column paper: "
        "`--width single` (one column, 3.5 in) and `--width double` (both columns, 7 in, the "
        "default). The captions are the ones `figures_manifest.json` records: each is written "
        "by the function that drew the figure, from what it drew.",
        "",
        f"This page and its pictures are made by `{command}` (it runs or reuses the quick demo "
        "in `runs/quick`, then draws every figure at both widths; about 5 minutes on 2 CPU "
        "cores the first time).",
        "",
        "## Drawing the figures",
        "",
        "```bash",
        "defocus figures --cache runs/demo/cache --out runs/demo/figures          # 7 in wide",
        "defocus figures --cache runs/demo/cache --out runs/demo/figures-1col --width single",
        "defocus figures --cache runs/demo/cache --out /tmp/f --only masks alignment",
        "defocus figures --cache runs/demo/cache --out /tmp/f --padding reflect --unit frame",
        "defocus figures --cache runs/demo/cache --out /tmp/f --sanity runs/demo/sanity \\",
        "    --config runs/demo/figures/figures_manifest.json   # the run's own analysis settings",
        "```",
        "",
        "What is computed is set by one `analysis.config.AnalysisConfig` (the options "
        "`--window`, `--padding`, `--bins`, `--perplexities`, `--n-per-class`, `--n-boot`, "
        "`--n-permutations` (default 999, so a p-value can reach 0.001), `--null-samples`, "
        "`--confidence`, `--unit`, `--seed`, `--thresholds`, or `--config FILE` with such a "
        "config); `figures_manifest.json` records it as `analysis_config`, so the figures, the "
        "summary, the report and the notebooks of a run can be checked to use the same one. The "
        "randomisation-check figure needs the folder written by `defocus sanity` (`--sanity`); "
        "the deletion curves need the models (the demo and the Python API pass them).",
        "",
        "Each figure is written as vector PDF and PNG at exactly the chosen width (the files "
        "are not cropped: a single-column PDF is 252 pt wide), next to `figures_manifest.json`, "
        "which records per figure its caption, files, the cache fields and functions it was "
        "drawn from, the analysis settings and the figure options. In Python every `plot_*` "
        "function takes `width=` and returns a figure that carries its caption:",
        "",
        "```python",
        "from analysis.masks import masks_from_cache, plot_mask_gallery",
        "from analysis.style import caption_of, save_figure",
        "from cache import open_cache",
        "",
        'result = masks_from_cache(open_cache("runs/demo/cache"))',
        'fig = plot_mask_gallery(result, threshold=0.1, width="single")',
        'save_figure(fig, "runs/demo/mask_gallery")  # .pdf and .png, 3.5 in wide',
        "print(caption_of(fig))",
        "```",
        "",
        "## Conventions",
        "",
        "- Text of 6.5-8 pt at both widths, so a figure needs no scaling in the paper.",
        "- One colour map per quantity, in every figure: defocus maps grey (0 = sharpest, 1 = "
        "most blurred in that image); non-negative magnitudes (|attribution|, local variance) "
        "viridis; signed values (Shapley values, differences) red-blue with 0 at the neutral "
        "centre; binary masks light grey / vermillion. Every map has a colour bar with its unit; "
        "an arrow at the end of a bar means values beyond it take the end colour.",
        "- Wherever two models or groups are compared they share one scale: both models' "
        "attributions, real and fake local variance, the histogram panels (x and y).",
        "- Groups take Okabe-Ito colours (readable with the common colour-vision "
        "deficiencies) and, in scatter plots, their own marker; nothing is drawn translucently "
        "over something else, so every colour on the page is one the legend shows.",
        "- Every per-model figure names the model (with its backbone, from the cache manifest).",
        "- A figure the cache cannot support is drawn as a short notice that says why and what "
        'would make it possible (e.g. "no fake has a real partner: give pairs with pair=stem '
        "...\"); the manifest's `unavailable` and caption say the same.",
        "",
        "## Limits",
        "",
        "- What a figure holds adapts to the width: the local-variance pairs show one pair per "
        "manipulation at single width and two at double width; image galleries show the first "
        "samples of each group in cache order (not picked).",
        "- Sample ids are shortened to two lines (the group name is dropped from the id; a "
        "longer id keeps its start and end around an ellipsis).",
        "- Attribution colour bars are in logit units: the explainers explain the detector's "
        "logit.",
        "- With more than seven manipulations, colours repeat (markers after eight).",
        "- Every interval and test names its unit of inference in the caption: video-level "
        "(whole videos resampled and tested, when the cache has a `video` field and the unit is "
        "`video`) or frame-level (every image independent). The localisation scores and the "
        "deletion curves are frame-level only. The demo's synthetic data has no videos, so the "
        "gallery below is frame-level throughout.",
        "- The alignment figures show the paper's raw score beside its floor (what a constant "
        "attribution scores on the same pairs) and the skill (score − floor) / (1 − floor): 0 = "
        "no better than a constant attribution, 1 = attribution proportional to |fake − real|.",
        "- The local-variance captions name the padding and how much of the local-variance mass "
        "the border band holds.",
        "- The deletion curves need the models themselves (the demo and the Python API pass "
        "them); from a cache alone that figure is the notice saying so.",
        "",
        "## Gallery",
        "",
        "| figure | file stem | paper |",
        "|---|---|---|",
    ]
    for entry in first["figures"]:
        anchor = entry["stem"].replace(".", "")
        paper = "yes" if entry["paper"] else "ours"
        lines.append(f"| [{entry['title']}](#{anchor}) | `{entry['stem']}` | {paper} |")
    lines.append("")
    singles = {e["stem"]: e for e in manifests["single"]["figures"]}
    for entry in first["figures"]:
        stem = entry["stem"]
        lines += [f"### {entry['title']}", "", f'<a id="{stem.replace(".", "")}"></a>', ""]
        lines += [f"`{stem}.pdf` / `.png`, drawn by `{entry['functions'][-1]}`.", ""]
        for width in ("double", "single"):
            e = entry if width == "double" else singles[stem]
            lines += [
                f"**{WIDTH_TEXT[width]}**",
                "",
                f"![{entry['title']}, {WIDTH_TEXT[width]}](img/gallery/{width}/{stem}.png)",
                "",
                f"*Caption:* {e['caption']}",
                "",
            ]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Draw the gallery; print one line per width and one on success."""
    from defocus_forensics.figures import draw_figures
    from safeio import atomic_write_bytes, atomic_write_text, check_output_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=str(ROOT / "runs" / "quick"), help="demo run folder")
    parser.add_argument("--docs", default=str(ROOT / "docs"), help="docs folder")
    parser.add_argument("--dpi", type=int, default=110, help="PNG resolution")
    parser.add_argument("--full", action="store_true", help="the full demo instead of --quick")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    docs = check_output_dir(args.docs, "--docs")
    run = check_output_dir(args.run, "--run")
    cache, config, analyses = _analyses(run, not args.full, args.device)
    manifests = {}
    with tempfile.TemporaryDirectory() as tmp:
        for width in ("single", "double"):
            start = time.perf_counter()
            manifest = draw_figures(cache, Path(tmp) / width, config=config, analyses=analyses,
                                    formats=("pdf", "png"), dpi=args.dpi, progress=False,
                                    width=width)  # fmt: skip
            seconds = time.perf_counter() - start
            print(f"{width}: {len(manifest['figures'])} figures (PDF + PNG) in {seconds:.1f} s")
            for entry in manifest["figures"]:
                png = Path(tmp) / width / entry["png"]
                atomic_write_bytes(docs / "img" / "gallery" / width / entry["png"],
                                   _png_bytes(png))  # fmt: skip
            manifests[width] = manifest
    command = "python benchmarks/figure_gallery.py" + (" --full" if args.full else "")
    atomic_write_text(docs / "figures.md", _markdown(manifests, command) + "\n")
    n = len(manifests["double"]["figures"])
    print(f"gallery of {n} figures x 2 widths in {docs / 'figures.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
