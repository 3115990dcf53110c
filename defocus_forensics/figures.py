"""Every figure of the paper (and ours) from a cache, as PDF + PNG with a manifest.

Torch-free: this module reads caches through :func:`cache.open_cache` and
draws with the figure functions of :mod:`analysis`; it holds no analysis of
its own. :func:`compute_analyses` runs the analyses once
(:func:`analysis.summary.summarise_cache`), :func:`draw_figures` draws every
figure type from them and writes ``figures_manifest.json``, which records for
each figure what it shows, the files, the cache fields and functions it was
drawn from, the parameters, and the cache's fingerprint.

Every figure is drawn at one paper width, ``"single"`` (3.5 in) or
``"double"`` (7 in) (:data:`FIGURE_WIDTHS`), and carries the caption its
drawing function wrote from what it drew; a figure the cache cannot support
is a marker that says precisely why (in the figure and in the manifest).

Figure types (file stems):

========================================  ===========================================
``overlays_rgb_vs_defocus_attributions``  image, defocus map, each model's attribution (paper)
``masks_binary_gallery_T{T}``             binary masks ``|fake - real| > T`` (paper)
``masks_threshold_sweep``                 activated share of pixels vs threshold (paper)
``variance_local_variance_pairs``         local-variance heatmaps, real/fake/diff. (paper)
``variance_mean_local_variance_ecdf``     per-image mean local variance + KS (ours)
``embedding_tsne_perplexity_sweep_*``     t-SNE of penultimate features (paper: defocus)
``alignment_histograms_by_model``         Shapley alignment score histograms (paper)
``alignment_skill_by_model``              raw score beside its floor, and the skill (ours)
``alignment_paired_difference``           defocus minus RGB model on the same fakes (ours)
``alignment_permutation_null``            score vs a shuffled-pairs null (ours)
``localisation_scores_by_model``          mass/rank accuracy, pointing game (ours)
``localisation_deletion_curves``          deletion curves vs random order (ours)
``sanity_randomisation_cascade``          attributions vs re-initialised models (ours)
``detection_reliability_diagram``         calibration of each model's probabilities (ours)
========================================  ===========================================

What is computed is set by ONE :class:`analysis.config.AnalysisConfig`
(recorded as ``analysis_config`` in the manifest); what is drawn by
:class:`FigureOptions` and the width.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from analysis.config import AnalysisConfig, resolve_config
from analysis.pairing import NO_PAIRS
from safeio import atomic_write_json

__all__ = [
    "FIGURE_TYPES",
    "FIGURE_WIDTHS",
    "FigureOptions",
    "FigureStyle",
    "FigureType",
    "compute_analyses",
    "draw_figures",
]


@dataclass(frozen=True)
class FigureOptions:
    """What the figures show (not what is computed: that is :class:`AnalysisConfig`).

    Parameters
    ----------
    gallery_threshold : float
        ``T`` of the binary-mask gallery, in (0, 1).
    n_overlay : int
        Samples per group in the attribution overlays.
    """

    gallery_threshold: float = 0.1
    n_overlay: int = 2

    def __post_init__(self):
        if isinstance(self.gallery_threshold, bool) or not 0 < self.gallery_threshold < 1:
            raise ValueError(f"gallery_threshold must be in (0, 1), got {self.gallery_threshold}")
        n = self.n_overlay
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n_overlay must be a positive integer, got {n!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return the options as a JSON-ready dict."""
        return asdict(self)


#: Paper widths a figure can be drawn at (3.5 in and 7 in).
FIGURE_WIDTHS: tuple[str, ...] = ("single", "double")


@dataclass(frozen=True)
class FigureType:
    """One kind of figure: how to draw it and what it is drawn from.

    Attributes
    ----------
    stem : str
        File name without extension.
    section : str
        Analysis it belongs to.
    title : str
        Text for the report.
    caption : str
        What the figure shows, in general; the manifest records the caption
        the drawing function wrote for the figure actually drawn.
    fields : tuple of str
        Cache fields it reads.
    functions : tuple of str
        Dotted names of the analysis functions used.
    draw : callable
        ``draw(analyses, cache, options, style) -> matplotlib Figure``, with
        ``options`` a :class:`FigureOptions` and ``style`` a :class:`FigureStyle`.
    paper : bool
        Whether the paper shows this figure type.
    required : tuple of str
        Fields without which it cannot be drawn at all.
    paired : bool
        Whether it needs fakes paired with their real source.
    needs : tuple of str
        Entries of the analyses dict it draws from that a cache alone does
        not give (``"sanity"``: the model-randomisation check).
    """

    stem: str
    section: str
    title: str
    caption: str
    fields: tuple[str, ...]
    functions: tuple[str, ...]
    draw: Callable[[dict, Any, FigureOptions, Any], Any] = field(repr=False)
    paper: bool = True
    required: tuple[str, ...] = ()
    paired: bool = False
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class FigureStyle:
    """How figures are drawn (not what is computed).

    Parameters
    ----------
    width : {"single", "double"}
        Paper width: one column (3.5 in) or two (7 in).
    model_names : dict of str to str
        Display name of each model (``"defocus"``, ``"rgb"``), e.g. with its backbone.
    """

    width: str = "double"
    model_names: dict = field(default_factory=dict)

    def __post_init__(self):
        from analysis.style import column_width

        column_width(self.width)


#: What brings each field into a cache (for "not drawn" messages).
_FIELD_HINTS = {
    "defocus": "extract the cache with 'defocus extract'",
    "image": "extract without --no-image",
    "attr_defocus": "extract with --defocus-model CKPT",
    "features_defocus": "extract with --defocus-model CKPT",
    "attr_rgb": "extract with --rgb-model CKPT",
    "features_rgb": "extract with --rgb-model CKPT",
    "mask": "use data with ground-truth manipulation masks",
    "pair_id": "give pairs with pair=stem or an index CSV pair_id column",
}
#: Why an entry of :attr:`FigureType.needs` is missing.
_NEEDS_HINTS = {
    "sanity": "no model-randomisation check was given: run 'defocus sanity --defocus-model "
    "CKPT [--rgb-model CKPT] --data SPEC --out RUN/sanity' and pass its folder with "
    "'defocus figures --sanity RUN/sanity' (the demo does both)",
}


def _has_pairs(cache) -> bool:
    """Whether any fake's pair id names a real sample of the cache (small fields only)."""
    import numpy as np

    if "pair_id" not in cache.fields:
        return False
    real_ids, pair_ids = set(), set()
    for g in cache.groups:
        label = cache.load("label", g)
        if np.any(label == 0):
            real_ids.update(map(str, cache.load("id", g)[label == 0]))
        if np.any(label == 1):
            pair_ids.update(map(str, cache.load("pair_id", g)[label == 1]))
    return bool(real_ids & (pair_ids - {""}))


def _not_drawable(ftype: FigureType, cache, memo: dict | None = None) -> str | None:
    """Return why a figure type cannot be drawn from this cache, precisely, or None.

    ``memo`` keeps the (cache-wide) answer of :func:`_has_pairs` between calls.
    """
    memo = {} if memo is None else memo
    absent = [k for k in ftype.needs if not memo.get(f"has:{k}")]
    if absent:
        return "; ".join(_NEEDS_HINTS.get(k, f"no {k!r} was given") for k in absent)
    missing = [f for f in ftype.required if f not in cache.fields]
    if missing:
        hints = sorted({_FIELD_HINTS[f] for f in missing if f in _FIELD_HINTS})
        text = "the cache has no " + " or ".join(repr(f) for f in missing) + " field"
        return text + (f" ({'; '.join(hints)})" if hints else "")
    if ftype.paired:
        if "pairs" not in memo:
            memo["pairs"] = _has_pairs(cache)
        if not memo["pairs"]:
            return NO_PAIRS
    return None


def _model_names(cache) -> dict[str, str]:
    """``{"defocus": "defocus model (resnet10t)", ...}`` from the cache's manifest."""
    from analysis.style import MODEL_NAMES

    out = dict(MODEL_NAMES)
    models = (cache.config or {}).get("models") or {}
    for kind, entry in models.items():
        conf = (entry or {}).get("config") or {}
        backbone = conf.get("backbone")
        if kind in out and backbone:
            out[kind] = f"{out[kind]} ({backbone})"
    return out


def _overlays(analyses, cache, options, style):
    from analysis.overlays import overlays_from_cache, plot_attribution_overlays

    return plot_attribution_overlays(
        overlays_from_cache(cache, n=options.n_overlay),
        width=style.width,
        model_names=style.model_names,
    )


def _mask_gallery(analyses, cache, options, style):
    from analysis.masks import plot_mask_gallery

    return plot_mask_gallery(
        analyses["masks"], threshold=options.gallery_threshold, n=2, width=style.width
    )


def _mask_sweep(analyses, cache, options, style):
    from analysis.masks import plot_threshold_sweep

    return plot_threshold_sweep(analyses["masks"], width=style.width)


def _variance_pairs(analyses, cache, options, style):
    from analysis.variance import plot_variance_heatmaps

    n = 1 if style.width == "single" else 2
    return plot_variance_heatmaps(analyses["variance"], n=n, width=style.width)


def _variance_ecdf(analyses, cache, options, style):
    from analysis.variance import plot_variance_ecdf

    return plot_variance_ecdf(analyses["variance"], width=style.width)


def _embedding(field_name):
    def draw(analyses, cache, options, style):
        from analysis.embedding import plot_embedding_sweep
        from analysis.style import unavailable_figure

        key = "embedding" if field_name == "features_defocus" else f"embedding_{field_name}"
        if key not in analyses:
            return unavailable_figure(
                f"the cache has no {field_name!r} field", "t-SNE", style.width
            )
        return plot_embedding_sweep(analyses[key], width=style.width, model_names=style.model_names)

    return draw


def _alignment_hist(analyses, cache, options, style):
    from analysis.alignment import plot_alignment_histograms

    a = analyses["alignment"]
    return plot_alignment_histograms(
        a, bins=a.bins, width=style.width, model_names=style.model_names
    )


def _plain(plot: str, analysis: str):
    """Return a drawer that calls ``plot`` (``"module.function"``) on ``analyses[analysis]``.

    The plotting module is imported when the figure is drawn, not when this
    module is imported.
    """

    def draw(analyses, cache, options, style):
        import importlib

        module, name = plot.rsplit(".", 1)
        function = getattr(importlib.import_module(module), name)
        return function(analyses[analysis], width=style.width, model_names=style.model_names)

    return draw


_alignment_skill = _plain("analysis.alignment.plot_alignment_skill", "alignment")
_alignment_paired = _plain("analysis.comparison.plot_model_comparison", "alignment")
_sanity = _plain("analysis.sanity.plot_sanity_cascade", "sanity")
_alignment_null = _plain("analysis.alignment.plot_permutation_null", "alignment")
_localisation_bars = _plain("analysis.localisation.plot_localisation_bars", "localisation")
_deletion = _plain("analysis.localisation.plot_deletion_curves", "localisation")


def _reliability(analyses, cache, options, style):
    from analysis.detection import detection_from_cache, plot_reliability

    det = analyses.get("detection")
    if det is None:  # analyses computed elsewhere (e.g. by hand): the cache's logits
        det = detection_from_cache(cache, getattr(analyses.get("alignment"), "config", None))
    return plot_reliability(det, width=style.width, model_names=style.model_names)


def _gallery_stem(options: FigureOptions) -> str:
    return f"masks_binary_gallery_T{options.gallery_threshold:g}"


#: Every figure type, in the order of the paper's sections.
FIGURE_TYPES: tuple[FigureType, ...] = (
    FigureType(
        "overlays_rgb_vs_defocus_attributions",
        "attributions",
        "RGB vs defocus attributions",
        "Per sample: the image, its normalised defocus map, and the signed Shapley "
        "attributions of the defocus model and of the RGB model (summed over channels) as "
        "separate panels on one diverging colour scale centred on 0.",
        ("image", "defocus", "attr_defocus", "attr_rgb"),
        ("analysis.overlays.overlays_from_cache", "analysis.overlays.plot_attribution_overlays"),
        _overlays,
    ),
    FigureType(
        "masks_binary_gallery",  # stem completed with the threshold at draw time
        "masks",
        "Binary masks",
        "Paired real and fake defocus maps and the binary mask |fake - real| > T with its "
        "activated share of pixels; the ground-truth manipulation mask where the cache holds "
        "one (n/a where a fake has no localised mask).",
        ("defocus", "pair_id", "mask"),
        ("analysis.masks.masks_from_cache", "analysis.masks.plot_mask_gallery"),
        _mask_gallery,
        required=("defocus",),
        paired=True,
    ),
    FigureType(
        "masks_threshold_sweep",
        "masks",
        "Binary-mask threshold sweep",
        "Fraction of pixels activated in |fake - real| > T per fake/real pair (mean and "
        "interquartile range) against the threshold T, per manipulation.",
        ("defocus", "pair_id"),
        ("analysis.masks.masks_from_cache", "analysis.masks.plot_threshold_sweep"),
        _mask_sweep,
        required=("defocus",),
        paired=True,
    ),
    FigureType(
        "variance_local_variance_pairs",
        "variance",
        "Local-variance heatmaps",
        "Local variance of paired real and fake defocus maps on one colour scale, and their "
        "difference; the border band affected by the padding is marked and left out of the "
        "colour scale.",
        ("defocus", "pair_id"),
        ("analysis.variance.variance_from_cache", "analysis.variance.plot_variance_heatmaps"),
        _variance_pairs,
        required=("defocus",),
        paired=True,
    ),
    FigureType(
        "variance_mean_local_variance_ecdf",
        "variance",
        "Mean local variance, real vs fake",
        "Empirical distribution of the per-image mean local variance per group, with the "
        "two-sample KS statistic and its (Holm-corrected) p-value.",
        ("defocus", "label", "group"),
        ("analysis.variance.variance_from_cache", "analysis.variance.plot_variance_ecdf"),
        _variance_ecdf,
        paper=False,
        required=("defocus",),
    ),
    FigureType(
        "embedding_tsne_perplexity_sweep_features_defocus",
        "embedding",
        "t-SNE of defocus-model features",
        "t-SNE of the defocus model's penultimate features, one panel per perplexity, "
        "coloured by group, with trustworthiness and silhouette.",
        ("features_defocus", "label", "group"),
        ("analysis.embedding.embedding_from_cache", "analysis.embedding.plot_embedding_sweep"),
        _embedding("features_defocus"),
        required=("features_defocus",),
    ),
    FigureType(
        "embedding_tsne_perplexity_sweep_features_rgb",
        "embedding",
        "t-SNE of RGB-model features",
        "The same sweep on the RGB model's penultimate features, for comparison.",
        ("features_rgb", "label", "group"),
        ("analysis.embedding.embedding_from_cache", "analysis.embedding.plot_embedding_sweep"),
        _embedding("features_rgb"),
        paper=False,
        required=("features_rgb",),
    ),
    FigureType(
        "alignment_histograms_by_model",
        "alignment",
        "Shapley alignment scores",
        "Per fake sample, the overlap of the |fake - real| histogram over defocus levels with "
        "the |attribution| histogram (1 = attribution sits where the maps differ), "
        "for the defocus and the RGB model.",
        ("defocus", "pair_id", "attr_defocus", "attr_rgb"),
        (
            "analysis.alignment.alignment_from_cache",
            "analysis.alignment.plot_alignment_histograms",
        ),
        _alignment_hist,
        required=("defocus",),
        paired=True,
    ),
    FigureType(
        "alignment_skill_by_model",
        "alignment",
        "Alignment skill: raw score, floor and skill",
        "Per manipulation and model: the mean raw alignment score beside the score of a "
        "constant attribution (the no-information floor), and the skill (score - floor) / "
        "(1 - floor) with its CI and the p-value of skill > 0.",
        ("defocus", "pair_id", "attr_defocus", "attr_rgb"),
        ("analysis.alignment.alignment_from_cache", "analysis.alignment.plot_alignment_skill"),
        _alignment_skill,
        paper=False,
        required=("defocus",),
        paired=True,
    ),
    FigureType(
        "alignment_paired_difference",
        "alignment",
        "Defocus vs RGB model on the same fakes",
        "Per fake, the difference defocus model - RGB model of the skill and of the raw score, "
        "with the mean difference, its CI and a paired sign-flip test, per manipulation.",
        ("defocus", "pair_id", "attr_defocus", "attr_rgb"),
        ("analysis.comparison.compare_models", "analysis.comparison.plot_model_comparison"),
        _alignment_paired,
        paper=False,
        required=("defocus",),
        paired=True,
    ),
    FigureType(
        "alignment_permutation_null",
        "alignment",
        "Alignment against a permutation null",
        "Mean alignment score against its distribution when attributions are paired with "
        "the wrong samples.",
        ("defocus", "pair_id", "attr_defocus", "attr_rgb"),
        ("analysis.alignment.alignment_from_cache", "analysis.alignment.plot_permutation_null"),
        _alignment_null,
        paper=False,
        required=("defocus",),
        paired=True,
    ),
    FigureType(
        "localisation_scores_by_model",
        "localisation",
        "Localisation of the manipulation",
        "Relevance mass and rank accuracy and pointing game of each model's attributions "
        "against the ground-truth mask and the binary defocus mask, with chance levels.",
        ("attr_defocus", "attr_rgb", "mask", "defocus", "pair_id"),
        (
            "analysis.localisation.localisation_from_cache",
            "analysis.localisation.plot_localisation_bars",
        ),
        _localisation_bars,
        paper=False,
    ),
    FigureType(
        "localisation_deletion_curves",
        "localisation",
        "Deletion curves",
        "Model evidence for the true class as the most-attributed pixels are removed, "
        "against a random removal order.",
        ("attr_defocus", "attr_rgb", "defocus", "image"),
        ("analysis.localisation.deletion_from_cache", "analysis.localisation.plot_deletion_curves"),
        _deletion,
        paper=False,
    ),
    FigureType(
        "sanity_randomisation_cascade",
        "sanity",
        "Model-randomisation sanity check",
        "Spearman rank correlation of |attribution| between the trained model and copies "
        "re-initialised from the top layer down (median and interquartile range per stage).",
        (),
        ("analysis.sanity.read_sanity", "analysis.sanity.plot_sanity_cascade"),
        _sanity,
        paper=False,
        needs=("sanity",),
    ),
    FigureType(
        "detection_reliability_diagram",
        "detection",
        "Reliability diagram",
        "Per model, the observed fraction of fakes against the mean predicted probability "
        "sigmoid(logit) in 15 equal-width bins, with the diagonal of perfect calibration, the "
        "samples per bin, the ECE, and the same after cross-fitted temperature scaling.",
        ("label", "logit_defocus", "logit_rgb"),
        ("analysis.detection.detection_from_cache", "analysis.detection.plot_reliability"),
        _reliability,
        paper=False,
        required=("label",),
    ),
)


def compute_analyses(
    cache,
    config: AnalysisConfig | dict | None = None,
    *,
    predict: dict | None = None,
    deletion_samples: int = 64,
    deletion_steps: int = 11,
    sanity=None,
    progress: bool = False,
):
    """Run every analysis the figures need (:func:`analysis.summary.summarise_cache`).

    Parameters
    ----------
    cache : cache reader
        From :func:`cache.open_cache`.
    config : AnalysisConfig or dict, optional
        Every analysis setting (default ``AnalysisConfig()``); the same object
        the report, the notebooks and the demo use.
    predict : dict of str to callable, optional
        Model callables for the deletion curves (see
        :func:`analysis.localisation.deletion_from_cache`); without them the
        curves are marked unavailable.
    deletion_samples : int
        Samples per group in the deletion curves (each step runs the model on all).
    deletion_steps : int
        Removed fractions ``linspace(0, 1, deletion_steps)``.
    sanity : str, Path or sequence of SanityResult, optional
        The model-randomisation check: a folder (or ``sanity.json``) written
        by ``defocus sanity``, or its results; added as ``analyses["sanity"]``
        and to the table.
    progress : bool
        Show progress bars.

    Returns
    -------
    table : pandas.DataFrame
        The long summary table (``analysis, group, model, metric, value, note``),
        with the config as rows of ``analysis = "config"``.
    analyses : dict
        The analysis objects by name (``masks``, ``variance``, ``alignment``,
        ``localisation``, ``embedding`` and, with RGB features,
        ``embedding_features_rgb``; ``sanity`` when given).
    """
    import numpy as np

    from analysis.embedding import embedding_from_cache
    from analysis.localisation import deletion_from_cache
    from analysis.summary import summarise_cache, summary_frames

    cfg = resolve_config(config)
    if (
        isinstance(deletion_steps, bool)
        or not isinstance(deletion_steps, int)
        or deletion_steps < 2
    ):
        raise ValueError(f"deletion_steps must be an integer >= 2, got {deletion_steps!r}")
    sanity_results = _read_sanity(sanity)
    table, analyses = summarise_cache(
        cache,
        config=cfg,
        embedding="features_defocus" in cache.fields,
        predict=None,  # deletion below, with a sample budget
        progress=progress,
        return_analyses=True,
    )
    if predict:
        loc = analyses["localisation"]
        curves, check, unavailable = deletion_from_cache(
            cache,
            predict,
            max_samples=deletion_samples,
            fractions=tuple(np.linspace(0.0, 1.0, deletion_steps)),
            seed=cfg.seed,
        )
        loc.deletion, loc.deletion_check = curves, check
        loc.unavailable = {
            k: v for k, v in loc.unavailable.items() if not k.startswith("deletion")
        } | unavailable
    if sanity_results is not None:
        analyses["sanity"] = sanity_results
    if predict or sanity_results is not None:
        table = summary_frames(analyses, config=cfg)
        table.attrs["config"] = cfg.to_dict()
    if "features_rgb" in cache.fields:
        analyses["embedding_features_rgb"] = embedding_from_cache(
            cache,
            "features_rgb",
            perplexities=cfg.perplexities,
            n_per_class=cfg.n_per_class,
            seed=cfg.seed,
        )
    return table, analyses


def _read_sanity(sanity):
    """``None``, or the list of SanityResult of a folder, a ``sanity.json`` or a sequence."""
    if sanity is None:
        return None
    if isinstance(sanity, (str, Path)):
        from analysis.sanity import read_sanity

        path = Path(sanity)
        if not (path / "sanity.json").is_file() and not path.is_file():
            raise FileNotFoundError(
                f"no model-randomisation check at {path} (no sanity.json): run 'defocus sanity "
                f"... --out {path}'"
            )
        return read_sanity(path)
    return list(sanity)


def _cache_fingerprint(cache) -> str:
    return hashlib.sha256((Path(cache.path) / "manifest.json").read_bytes()).hexdigest()


def draw_figures(
    cache,
    out_dir: str | Path,
    *,
    config: AnalysisConfig | dict | None = None,
    options: FigureOptions | None = None,
    analyses: dict | None = None,
    sanity=None,
    formats: Sequence[str] = ("pdf", "png"),
    dpi: int = 150,
    only: Sequence[str] | None = None,
    progress: bool = True,
    width: str = "double",
) -> dict[str, Any]:
    """Draw every figure type from a cache and write ``figures_manifest.json``.

    Parameters
    ----------
    cache : str, Path or cache reader
        The cache (opened with :func:`cache.open_cache` when a path).
    out_dir : str or Path
        Output folder (created).
    config : AnalysisConfig or dict, optional
        Every analysis setting (default ``AnalysisConfig()``). With
        ``analyses`` given, the config they were computed with (taken from
        them when omitted).
    options : FigureOptions, optional
        What the figures show (gallery threshold, overlay samples).
    analyses : dict, optional
        Analysis objects by name, as :func:`compute_analyses` returns them;
        computed here when not given.
    sanity : str, Path or sequence of SanityResult, optional
        The model-randomisation check for its figure (see :func:`compute_analyses`);
        ignored when ``analyses`` holds ``"sanity"``.
    formats : sequence of str
        File formats; ``"png"`` is always included (the report needs it).
    dpi : int
        Raster resolution.
    only : sequence of str, optional
        Sections to draw (default: all).
    progress : bool
        Show a tqdm bar on stderr.
    width : {"single", "double"}
        Paper width of every figure: one column (3.5 in) or two (7 in).

    Returns
    -------
    dict
        The manifest: ``cache``, ``cache_manifest_sha256``, ``analysis_config``
        (the :class:`AnalysisConfig` as a dict), ``options``, ``level`` (the
        unit of inference: "video" or "frame"), ``width``, ``width_inches``,
        ``figures`` (one entry per figure with ``stem``, ``section``,
        ``title``, ``caption`` (what the drawn figure shows, or why it was
        not drawn), ``png``, ``pdf``, ``files``, ``fields``, ``functions``,
        ``paper``, ``unavailable``, ``seconds``).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    from analysis.style import caption_of, column_width, save_figure, unavailable_figure
    from cache import open_cache

    if isinstance(cache, (str, Path)):
        cache = open_cache(cache)
    if config is None and analyses is not None:
        recorded = getattr(analyses.get("alignment"), "config", None)
        config = recorded or None
    cfg = resolve_config(config)
    options = options or FigureOptions()
    style = FigureStyle(width=width, model_names=_model_names(cache))
    formats = list(dict.fromkeys([*formats, "png"]))
    sections = {t.section for t in FIGURE_TYPES}
    if only is not None:
        unknown = sorted(set(only) - sections)
        if unknown:
            raise ValueError(f"unknown figure section(s) {unknown}; choose from {sorted(sections)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if analyses is None:
        _, analyses = compute_analyses(cache, cfg, sanity=sanity, progress=progress)
    elif sanity is not None and "sanity" not in analyses:
        analyses = {**analyses, "sanity": _read_sanity(sanity)}

    types = [t for t in FIGURE_TYPES if only is None or t.section in only]
    entries = []
    memo: dict[str, bool] = {f"has:{k}": bool(analyses.get(k)) for k in ("sanity",)}
    for ftype in tqdm(types, desc="figures", unit="fig", disable=not progress):
        start = time.perf_counter()
        stem = _gallery_stem(options) if ftype.stem == "masks_binary_gallery" else ftype.stem
        reason = _not_drawable(ftype, cache, memo)
        if reason is not None:
            fig = unavailable_figure(reason, ftype.title, style.width)
        else:
            fig = ftype.draw(analyses, cache, options, style)
        files = save_figure(fig, out_dir / stem, formats=formats, dpi=dpi)
        unavailable = getattr(fig, "_analysis_unavailable", None)
        caption = caption_of(fig, ftype.caption)
        plt.close(fig)
        by_ext = {p.suffix.lstrip("."): p.name for p in files}
        entries.append(
            {
                "stem": stem,
                "section": ftype.section,
                "title": ftype.title,
                "caption": caption,
                "png": by_ext["png"],
                "pdf": by_ext.get("pdf"),
                "files": by_ext,
                "fields": [f for f in ftype.fields if f in cache.fields],
                "missing_fields": [f for f in ftype.fields if f not in cache.fields],
                "functions": list(ftype.functions),
                "paper": ftype.paper,
                "unavailable": unavailable,
                "seconds": round(time.perf_counter() - start, 3),
            }
        )
    level = getattr(analyses.get("alignment"), "level", None) or getattr(
        analyses.get("variance"), "level", "frame"
    )
    manifest = {
        "cache": str(Path(cache.path).resolve()),
        "cache_manifest_sha256": _cache_fingerprint(cache),
        "groups": list(cache.groups),
        "n_samples": int(cache.n_samples()),
        "analysis_config": cfg.to_dict(),
        "options": options.to_dict(),
        "level": level,
        "width": style.width,
        "width_inches": column_width(style.width),
        "formats": formats,
        "figures": entries,
    }
    atomic_write_json(out_dir / "figures_manifest.json", manifest)
    return manifest
