"""Localisation of attributions against a reference region, and a deletion faithfulness curve.

Beyond the paper. Given a reference region (the ground-truth manipulation
mask when the cache holds one, else the binary defocus mask
``|fake - real| > T`` of :mod:`analysis.masks`), three standard scores ask
whether ``|attribution|`` concentrates in it (Arras et al., "CLEVR-XAI", 2022;
Zhang et al., "Top-down neural attention by excitation backprop", 2018):

- relevance mass accuracy: share of the total ``|attr|`` inside the region;
- relevance rank accuracy: with ``K`` the region's pixel count, share of the
  ``K`` highest-``|attr|`` pixels that lie inside it;
- pointing game: 1 when the pixel of largest ``|attr|`` lies in the region.

Each is NaN for an empty region (nothing to point at), never 0 or 1 by fiat.
For the RGB model, ``|attr|`` is summed over channels (as in
:mod:`analysis.alignment`).

The deletion curve (:func:`deletion_curve`) removes pixels in decreasing
``|attr|`` order and records the model's evidence for its decision. Its
removal operator is NOT blur: blurring a region adds exactly the cue a
defocus detector reads (a smoother, more defocused region), so a blur-based
curve would measure the model's response to injected defocus rather than to
lost information. Removed pixels are set to a constant instead (the sample's
mean by default, or zero). A deletion curve needs the model evaluated on every
perturbed input; a cache holds one logit per sample (of the intact input), so
:func:`deletion_from_cache` computes curves only when given a ``predict``
callable (e.g. a numpy wrapper of the cached model, built by the caller:
``analysis`` never imports torch) and otherwise reports them as unavailable;
when both are there, it checks the callable against the cached logits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis._validation import check_choice
from analysis.config import AnalysisConfig, resolve_config

#: Default removed fractions of a deletion curve: 0, 0.1, ..., 1.
_FRACTIONS: tuple[float, ...] = tuple(i / 10 for i in range(11))

__all__ = [
    "DeletionResult",
    "LocalisationAnalysis",
    "deletion_curve",
    "deletion_from_cache",
    "localisation_from_cache",
    "localisation_scores",
    "plot_deletion_curves",
    "plot_localisation_bars",
    "pointing_game",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
]


def _prepare(attribution, region) -> tuple[np.ndarray, np.ndarray, bool]:
    region = np.asarray(region).astype(bool)
    a = np.abs(np.asarray(attribution, dtype=np.float64))
    if a.ndim == region.ndim + 1:
        a = a.sum(axis=-3)
    if a.shape != region.shape:
        raise ValueError(
            f"attribution {np.shape(attribution)} does not match region {region.shape} "
            "(one extra channel axis is allowed)"
        )
    single = region.ndim == 2
    if single:
        a, region = a[None], region[None]
    if region.ndim != 3:
        raise ValueError(f"region must have shape (N, H, W) or (H, W), got {region.shape}")
    n = region.shape[0]
    return a.reshape(n, -1), region.reshape(n, -1), single


def _out(values: np.ndarray, single: bool):
    return float(values[0]) if single else values


def relevance_mass_accuracy(attribution, region):
    """Share of total ``|attr|`` inside ``region``, per sample.

    Parameters
    ----------
    attribution : ndarray of shape (N, H, W) or (N, C, H, W)
    region : ndarray of bool, shape (N, H, W)

    Returns
    -------
    ndarray of float64, shape (N,)
        In [0, 1]; NaN for an empty region or an all-zero attribution.
    """
    a, r, single = _prepare(attribution, region)
    inside = np.where(r, a, 0.0).sum(axis=1)
    total = a.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where((r.sum(axis=1) > 0) & (total > 0), inside / total, np.nan)
    return _out(out, single)


def relevance_rank_accuracy(attribution, region):
    """Share of the ``K`` highest-``|attr|`` pixels inside ``region`` (``K`` = region size).

    Ties at the K-th largest value are resolved by their expectation over a
    random tie-break: of the ``m`` pixels needed from the ``T`` tied ones,
    ``m * (tied pixels in region) / T`` count as inside. The score is thus
    deterministic and does not depend on pixel order. Computed with a
    partial sort (O(pixels) per sample).

    Returns
    -------
    ndarray of float64, shape (N,)
        In [0, 1]; NaN for an empty region.
    """
    a, r, single = _prepare(attribution, region)
    out = np.full(a.shape[0], np.nan)
    p = a.shape[1]
    for i in range(a.shape[0]):
        k = int(r[i].sum())
        if k == 0:
            continue
        kth = np.partition(a[i], p - k)[p - k]  # the K-th largest value
        above = a[i] > kth
        tied = a[i] == kth
        need = k - int(above.sum())
        inside = float(np.sum(r[i] & above))
        inside += need * float(np.sum(r[i] & tied)) / float(tied.sum())
        out[i] = inside / k
    return _out(out, single)


def pointing_game(attribution, region):
    """1.0 when the pixel of largest ``|attr|`` (first in pixel order on ties) is in ``region``.

    Returns
    -------
    ndarray of float64, shape (N,)
        1.0 (hit), 0.0 (miss), NaN for an empty region.
    """
    a, r, single = _prepare(attribution, region)
    top = np.argmax(a, axis=1)
    hit = r[np.arange(a.shape[0]), top].astype(np.float64)
    out = np.where(r.sum(axis=1) > 0, hit, np.nan)
    return _out(out, single)


def localisation_scores(attribution, region) -> dict[str, np.ndarray]:
    """All three scores, ``{"mass", "rank", "pointing"}``, arrays of shape (N,)."""
    return {
        "mass": relevance_mass_accuracy(attribution, region),
        "rank": relevance_rank_accuracy(attribution, region),
        "pointing": pointing_game(attribution, region),
    }


@dataclass(frozen=True)
class DeletionResult:
    """Deletion curves: evidence for the decision as the top-``|attr|`` pixels are removed.

    Attributes
    ----------
    fractions : ndarray of shape (K,)
        Fraction of pixels removed at each step.
    curves : ndarray of shape (N, K)
        Evidence at each step, ``s = logit`` for fakes and ``-logit`` for reals
        (so every curve starts at the evidence for the true class).
    random_curves : ndarray of shape (N, K)
        The same with pixels removed in a seeded random order (the baseline).
    auc, random_auc : ndarray of shape (N,)
        Trapezoid area under each curve over ``fractions`` (lower = the
        attribution found the evidence faster).
    fill : str
        Removal operator (``"mean"`` or ``"zero"``).
    """

    fractions: np.ndarray
    curves: np.ndarray
    random_curves: np.ndarray
    auc: np.ndarray
    random_auc: np.ndarray
    fill: str


def _removal_orders(weights: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    n, p = weights.shape
    by_attr = np.argsort(-weights, axis=1, kind="stable")
    rand = np.argsort(rng.random((n, p)), axis=1)
    return by_attr, rand


def deletion_curve(
    predict: Callable[[np.ndarray], np.ndarray],
    inputs,
    attribution,
    labels=None,
    fractions: Sequence[float] = _FRACTIONS,
    fill: str = "mean",
    seed: int = AnalysisConfig.seed,
    batch_size: int = 32,
) -> DeletionResult:
    """Remove pixels by decreasing ``|attr|`` and record the model's evidence (deletion curve).

    The removal operator sets a removed pixel (all its channels) to a constant
    (``fill="mean"``: the sample's mean per channel; ``"zero"``: 0). It is
    deliberately not blur: blurring injects the very cue a defocus detector
    reads, so a blur-based curve would confound lost evidence with added
    defocus.

    Parameters
    ----------
    predict : callable
        ``predict(x) -> logits`` with ``x`` an ndarray shaped like a batch of
        ``inputs`` (float32) and logits of shape (B,) or (B, 1); fake > 0.
    inputs : ndarray of shape (N, H, W) or (N, C, H, W)
        The model's inputs (defocus maps, or images).
    attribution : ndarray of shape (N, H, W) or (N, C, H, W)
        ``|attr|`` (summed over channels when present) ranks the pixels.
    labels : ndarray of shape (N,), optional
        0 real, 1 fake; evidence is ``logit`` for fakes and ``-logit`` for
        reals (default: every sample a fake).
    fractions : sequence of float
        Removed fractions in [0, 1], increasing.
    fill : {"mean", "zero"}
    seed : int
        Seed of the random-order baseline.
    batch_size : int
        Inputs per ``predict`` call.

    Returns
    -------
    DeletionResult
    """
    check_choice(fill, ("mean", "zero"), "fill")
    x = np.asarray(inputs, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None]
        squeeze = True
    elif x.ndim == 4:
        squeeze = False
    else:
        raise ValueError(f"inputs must have shape (N, H, W) or (N, C, H, W), got {x.shape}")
    n, c, h, w = x.shape
    a = np.abs(np.asarray(attribution, dtype=np.float64))
    if a.ndim == 4:
        a = a.sum(axis=1)
    if a.shape != (n, h, w):
        raise ValueError(
            f"attribution must have spatial shape {(n, h, w)}, got {np.shape(attribution)}"
        )
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.ndim != 1 or fr.size < 2 or np.any(np.diff(fr) <= 0) or fr[0] < 0 or fr[-1] > 1:
        raise ValueError(f"fractions must be increasing values in [0, 1], got {fractions}")
    sign = np.ones(n) if labels is None else np.where(np.asarray(labels) == 1, 1.0, -1.0)
    fill_value = x.mean(axis=(2, 3), keepdims=True) if fill == "mean" else np.zeros((n, c, 1, 1))
    rng = np.random.default_rng(seed)
    orders = _removal_orders(a.reshape(n, -1), rng)
    counts = np.round(fr * h * w).astype(np.int64)
    curves = []
    for order in orders:
        evid = np.empty((n, fr.size))
        for start in range(0, n, batch_size):
            sl = slice(start, min(n, start + batch_size))
            for j, k in enumerate(counts):
                xb = x[sl].copy().reshape(sl.stop - sl.start, c, h * w)
                rows = np.arange(sl.stop - sl.start)[:, None]
                removed = order[sl, :k]
                xb[rows, :, removed] = np.broadcast_to(
                    fill_value[sl].reshape(-1, 1, c), (xb.shape[0], k, c)
                )
                xb = xb.reshape(-1, c, h, w)
                out = np.asarray(predict(xb[:, 0] if squeeze else xb), dtype=np.float64)
                evid[sl, j] = out.reshape(-1) * sign[sl]
        curves.append(evid)
    auc = np.trapezoid(curves[0], fr, axis=1)
    random_auc = np.trapezoid(curves[1], fr, axis=1)
    return DeletionResult(fr, curves[0], curves[1], auc, random_auc, fill)


# --------------------------------------------------------------------------- over a cache

#: Attribution field of each model in a cache.
MODEL_FIELDS = {"defocus": "attr_defocus", "rgb": "attr_rgb"}
#: Attribution fields scored per model, in order of preference (a cache imported from the
#: paper's files holds only channel 0 of the RGB attributions, ``attr_rgb_c0``).
ATTRIBUTION_FIELDS = {"defocus": ("attr_defocus",), "rgb": ("attr_rgb", "attr_rgb_c0")}
_METRICS = ("mass", "rank", "pointing")


@dataclass
class LocalisationAnalysis:
    """Localisation results over a cache.

    Attributes
    ----------
    per_sample : pandas.DataFrame
        ``group, id, model, region, mass, rank, pointing, region_fraction``
        per paired fake, model and reference region (``"truth"``: the
        ground-truth mask; ``"defocus_mask"``: ``|fake - real| > threshold``).
    summary : pandas.DataFrame
        Per group, model and region: NaN-skipping means of the three scores,
        their counts ``n``, and ``chance`` (mean region fraction: the expected
        mass and pointing score of an attribution spread at random).
    deletion : dict of str to DeletionResult
        Deletion curves per model (only when a ``predict`` callable was given).
    deletion_check : dict of str to float
        Max |predict(x) - cached logit| per model on the intact inputs.
    threshold : float
    unavailable : dict of str to str
    sources : dict of str to str
        Cache field each model's attributions came from.
    config : dict
        The :class:`analysis.config.AnalysisConfig` used, as a dict.
    """

    per_sample: pd.DataFrame
    summary: pd.DataFrame
    deletion: dict = field(default_factory=dict)
    deletion_check: dict = field(default_factory=dict)
    threshold: float = AnalysisConfig.localisation_threshold
    unavailable: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    config: dict = field(default_factory=dict)


class LocalisationAccumulator:
    """Streaming accumulator behind :func:`localisation_from_cache`."""

    real_fields = ("defocus",)

    def __init__(
        self,
        threshold: float = AnalysisConfig.localisation_threshold,
        models: tuple[str, ...] = ("defocus", "rgb"),
    ):
        from analysis._validation import check_threshold

        self.threshold = check_threshold(threshold)
        for m in models:
            if m not in MODEL_FIELDS:
                raise ValueError(f"models must be among {list(MODEL_FIELDS)}, got {m!r}")
        self.models = tuple(models)
        fields = [f for m in self.models for f in ATTRIBUTION_FIELDS[m]]
        self.fake_fields = ("defocus", "mask", *fields)
        self._rows: list[pd.DataFrame] = []
        self.present: set[str] = set()
        self.sources: dict[str, str] = {}
        self.has_truth = False
        self.has_maps = False
        self.n_blocks = 0

    def update(self, block) -> None:
        """Add the pairs of one :class:`analysis.pairing.PairedBlock`."""
        self.n_blocks += 1
        regions = {}
        if "mask" in block.fake:
            self.has_truth = True
            regions["truth"] = block.fake["mask"].astype(bool)
        if "defocus" in block.fake and "defocus" in block.real:
            self.has_maps = True
            diff = np.abs(
                block.fake["defocus"].astype(np.float32) - block.real["defocus"].astype(np.float32)
            )
            regions["defocus_mask"] = diff > self.threshold
        for m in self.models:
            f = next((name for name in ATTRIBUTION_FIELDS[m] if name in block.fake), None)
            if f is None:
                continue
            self.present.add(m)
            self.sources[m] = f
            attr = block.fake[f]
            for name, region in regions.items():
                if attr.shape[-2:] != region.shape[-2:]:
                    from analysis.alignment import attribution_weights

                    attr_m = attribution_weights(attr, region.shape)
                else:
                    attr_m = attr
                scores = localisation_scores(attr_m, region)
                self._rows.append(
                    pd.DataFrame(
                        {
                            "group": block.group,
                            "id": block.fake["id"],
                            "model": m,
                            "region": name,
                            **scores,
                            "region_fraction": region.reshape(len(region), -1).mean(axis=1),
                        }
                    )
                )

    def finalize(self) -> LocalisationAnalysis:
        """Return the :class:`LocalisationAnalysis` of everything seen (without deletion)."""
        cols = ["group", "id", "model", "region", *_METRICS, "region_fraction"]
        per = pd.concat(self._rows, ignore_index=True) if self._rows else pd.DataFrame(columns=cols)
        unavailable = {}
        if self.n_blocks == 0:  # no pairs: say so, not that a field is missing
            from analysis.pairing import NO_PAIRS

            unavailable.update({m: NO_PAIRS for m in self.models})
            unavailable["defocus_mask"] = NO_PAIRS
        for m in self.models:
            if m not in self.present and m not in unavailable:
                fields = " or ".join(f"'{f}'" for f in ATTRIBUTION_FIELDS[m])
                unavailable[m] = f"the cache has no {fields} field"
        if not self.has_truth:
            unavailable["truth"] = "the cache has no ground-truth 'mask' field"
        if not self.has_maps and "defocus_mask" not in unavailable:
            unavailable["defocus_mask"] = "no paired 'defocus' maps"
        rows = []
        for (g, m, r), sub in per.groupby(["group", "model", "region"], sort=False):
            row = {"group": g, "model": m, "region": r}
            for k in _METRICS:
                row[k] = float(sub[k].mean())  # pandas skips NaN (empty regions)
            row["n"] = int(sub["mass"].count())
            valid = sub["region_fraction"][sub["region_fraction"] > 0]
            row["chance"] = float(valid.mean()) if len(valid) else float("nan")
            rows.append(row)
        summary = pd.DataFrame(rows, columns=["group", "model", "region", *_METRICS, "n", "chance"])
        return LocalisationAnalysis(
            per,
            summary,
            threshold=self.threshold,
            unavailable=unavailable,
            sources=dict(self.sources),
        )


def deletion_from_cache(
    cache,
    predict: dict | None = None,
    groups=None,
    max_samples: int = 64,
    fractions: Sequence[float] = _FRACTIONS,
    fill: str = "mean",
    seed: int = AnalysisConfig.seed,
) -> tuple[dict, dict, dict]:
    """Compute deletion curves from a cache and model callables (unavailable without them).

    Parameters
    ----------
    cache : cache reader
    predict : dict of str to callable, optional
        ``{"defocus": f, "rgb": g}``: ``f`` maps defocus maps (B, S, S)
        float32 to logits, ``g`` maps images (B, 3, R, R) float32 in [0, 1]
        to logits. The cache itself holds only the logits of the intact
        inputs, which cannot give a curve.
    groups : sequence of str, optional
        Groups to use (default: all, reals included: their evidence is ``-logit``).
    max_samples : int
        First samples per group used (each step calls the model on all of them).
    fractions, fill, seed
        See :func:`deletion_curve`.

    Returns
    -------
    curves : dict of str to DeletionResult
    check : dict of str to float
        Max |predict(intact input) - cached logit| per model (NaN when the
        cache has no logit field for it).
    unavailable : dict of str to str
    """
    from analysis.pairing import iter_group

    curves, check, unavailable = {}, {}, {}
    predict = dict(predict or {})
    for m in MODEL_FIELDS:
        if m not in predict:
            unavailable[f"deletion_{m}"] = (
                "a deletion curve needs the model evaluated on perturbed inputs; the cache holds "
                "only the logit of each intact input. Pass predict={'" + m + "': callable}"
            )
            continue
        need = [MODEL_FIELDS[m], "defocus" if m == "defocus" else "image"]
        missing = [f for f in need if f not in cache.fields]
        if missing:
            unavailable[f"deletion_{m}"] = f"the cache has no {missing} field"
            continue
        logit_field = f"logit_{m}"
        fields = ["label", *need] + ([logit_field] if logit_field in cache.fields else [])
        parts: dict[str, list] = {f: [] for f in fields}
        for g in cache.groups:
            if groups is not None and g not in groups:
                continue
            got = 0
            for shard in iter_group(cache, g, fields):
                take = min(max_samples - got, len(shard["label"]))
                for f in fields:
                    parts[f].append(shard[f][:take])
                got += take
                if got >= max_samples:
                    break
        arrays = {f: np.concatenate(p) for f, p in parts.items() if p}
        if not arrays:
            unavailable[f"deletion_{m}"] = "no samples"
            continue
        x = arrays[need[1]].astype(np.float32)
        if m == "rgb":
            x = x / 255.0
        res = deletion_curve(predict[m], x, arrays[need[0]], arrays["label"], fractions, fill, seed)
        curves[m] = res
        if logit_field in arrays:
            intact = np.asarray(predict[m](x), dtype=np.float64).reshape(-1)
            check[m] = float(np.max(np.abs(intact - arrays[logit_field])))
        else:
            check[m] = float("nan")
    return curves, check, unavailable


def localisation_from_cache(
    cache,
    threshold: float | None = None,
    models: tuple[str, ...] = ("defocus", "rgb"),
    groups=None,
    by_position: bool = False,
    predict: dict | None = None,
    deletion_samples: int = 64,
    seed: int | None = None,
    progress: bool = False,
    *,
    config: AnalysisConfig | None = None,
) -> LocalisationAnalysis:
    """Relevance mass / rank accuracy and pointing game per model, plus deletion when possible.

    Parameters
    ----------
    cache : cache reader
        From :func:`cache.open_cache`.
    threshold : float, optional
        ``T`` of the binary defocus mask used as the second reference region
        (default ``config.localisation_threshold``).
    models : tuple of {"defocus", "rgb"}
    groups : sequence of str, optional
        Fake groups (default: all groups holding fakes).
    by_position : bool
        Pair by position instead of pair id (warns).
    predict : dict of str to callable, optional
        Model callables for the deletion curves (see :func:`deletion_from_cache`);
        without them the curves are marked unavailable.
    deletion_samples : int
        Samples per group for the deletion curves.
    seed : int, optional
        Seed of the deletion curves' random baseline (default ``config.seed``).
    progress : bool
    config : AnalysisConfig, optional
        Every setting at once; the keyword arguments above override it.

    Returns
    -------
    LocalisationAnalysis
    """
    from analysis.pairing import run_paired

    cfg = resolve_config(config, localisation_threshold=threshold, seed=seed)
    acc = LocalisationAccumulator(cfg.localisation_threshold, models)
    run_paired(cache, [acc], groups=groups, by_position=by_position, progress=progress)
    out = acc.finalize()
    out.config = cfg.to_dict()
    curves, check, unavailable = deletion_from_cache(
        cache, predict, groups=None, max_samples=deletion_samples, seed=cfg.seed
    )
    out.deletion, out.deletion_check = curves, check
    out.unavailable.update(unavailable)
    return out


# --------------------------------------------------------------------------- figures


def _boot_ci(
    values: np.ndarray, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean of ``values`` (NaN-free), seeded."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, (n_boot, v.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _boot_settings(analysis, n_boot, seed) -> tuple[int, int, float]:
    """``n_boot, seed, confidence``: given values first, else the analysis's config."""
    cfg = resolve_config(getattr(analysis, "config", None) or None)
    return (
        cfg.n_boot if n_boot is None else n_boot,
        cfg.seed if seed is None else seed,
        cfg.confidence,
    )


#: What the localisation figures say about their unit of inference.
_FRAME_LEVEL = (
    "Frame-level: every image is taken as independent (frames of one video are not grouped here)."
)


def _signed(value: float, digits: int = 3) -> str:
    """``+0.012`` / ``-0.012`` / ``0.000`` (never ``-0.000``)."""
    text = f"{value:+.{digits}f}"
    return text[1:] if float(text) == 0 else text


_METRIC_LABELS = {"mass": "mass acc.", "rank": "rank acc.", "pointing": "pointing"}


def plot_localisation_bars(
    analysis: LocalisationAnalysis,
    *,
    width="double",
    model_names: dict | None = None,
    n_boot: int | None = None,
    seed: int | None = None,
):
    """Bars of mass accuracy, rank accuracy and pointing game per group and model, per region.

    Only groups and models with scores in a region get a bar there (no empty
    slots), centred on their metric's tick. Each bar carries its
    bootstrap CI (95 % by default) and, above it, n (samples with a non-empty region); a black
    tick marks chance, the mean share of the image the region covers.
    Colour: manipulation; plain bars: defocus model, hatched: RGB model.

    Parameters
    ----------
    analysis : LocalisationAnalysis
    width : {"single", "double"}
        Paper width: regions stacked (single) or side by side (double).
    model_names : dict of str to str, optional
        Display names of the models (``"defocus"``, ``"rgb"``).
    n_boot, seed : int, optional
        Bootstrap resamples and seed of the CIs (default: the analysis's
        config, see :class:`analysis.config.AnalysisConfig`).

    Returns
    -------
    matplotlib.figure.Figure
        Its caption (:func:`analysis.style.caption_of`) says what is drawn.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from analysis.style import (
        column_width,
        figure,
        group_colors,
        model_name,
        publication_style,
        set_caption,
        unavailable_figure,
    )

    column_width(width)
    n_boot, seed, confidence = _boot_settings(analysis, n_boot, seed)
    s = analysis.summary
    s = s[s["n"] > 0] if not s.empty else s
    if s.empty:
        reason = "; ".join(f"{k}: {v}" for k, v in analysis.unavailable.items())
        return unavailable_figure(reason or "no fake has a real partner", "localisation", width)
    per = analysis.per_sample
    regions = [r for r in ("truth", "defocus_mask") if r in set(s["region"])]
    groups = list(dict.fromkeys(s["group"]))
    colors = group_colors(["real", *groups])
    titles = {
        "truth": "region: ground-truth mask",
        "defocus_mask": f"region: defocus mask |fake − real| > {analysis.threshold:g}",
    }
    with publication_style():
        if width == "single":
            fig = figure(width, 1.75 * len(regions) + 0.75)
            axes = fig.subplots(len(regions), 1, squeeze=False, sharey=True)[:, 0]
        else:
            fig = figure(width, 2.5)
            axes = fig.subplots(1, len(regions), squeeze=False, sharey=True)[0]
        for ax, r in zip(axes, regions, strict=False):
            sub = s[s["region"] == r]
            series = list(dict.fromkeys(zip(sub["group"], sub["model"], strict=False)))
            bw = 0.84 / len(series)
            for j, (g, m) in enumerate(series):
                row = sub[(sub["group"] == g) & (sub["model"] == m)].iloc[0]
                xs = np.arange(len(_METRICS)) + (j - (len(series) - 1) / 2) * bw
                cell = per[(per["group"] == g) & (per["model"] == m) & (per["region"] == r)]
                for x, k in zip(xs, _METRICS, strict=True):
                    vals = cell[k].to_numpy(np.float64)
                    vals = vals[np.isfinite(vals)]
                    if vals.size == 0:
                        continue
                    mean = float(vals.mean())
                    lo, hi = _boot_ci(vals, n_boot, seed, confidence)
                    ax.bar(x, mean, bw * 0.92, color=colors[g], edgecolor="white", lw=0.4,
                           hatch="/////" if m == "rgb" else None)  # fmt: skip
                    top = mean
                    if np.isfinite(lo):
                        ax.errorbar(x, mean, yerr=[[mean - lo], [hi - mean]], color="black",
                                    lw=0.7, capsize=1.2, capthick=0.7)  # fmt: skip
                        top = hi
                    ax.text(x, top + 0.02, str(vals.size), ha="center", va="bottom",
                            fontsize=5.5, rotation=90)  # fmt: skip
                    ax.hlines(row["chance"], x - bw * 0.46, x + bw * 0.46, color="black",
                              lw=1.4)  # fmt: skip
            ax.set_xticks(np.arange(len(_METRICS)), [_METRIC_LABELS[k] for k in _METRICS])
            ax.set_ylim(0, 1.18)
            ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
            ax.set_title(titles.get(r, r), fontsize=7)
            ax.set_ylabel("score")
        handles = [Patch(facecolor=colors[g], label=g) for g in groups]
        present = [m for m in MODEL_FIELDS if m in set(s["model"])]
        for m in present:
            handles.append(Patch(facecolor="#BBBBBB", edgecolor="white",
                                 hatch="/////" if m == "rgb" else None,
                                 label=model_name(m, model_names)))  # fmt: skip
        handles.append(Line2D([], [], color="black", lw=1.4, label="chance"))
        fig.legend(handles=handles, loc="outside lower center",
                   ncols=2 if width == "single" else min(len(handles), 4))  # fmt: skip
    missing = {
        "truth": analysis.unavailable.get("truth"),
        "defocus_mask": analysis.unavailable.get("defocus_mask"),
    }
    caption = (
        "How much of each model's |attribution| falls in the manipulated region, per "
        f"manipulation and model ({', '.join(model_name(m, model_names) for m in present)}). "
        "mass acc.: share of the total |attribution| inside the region; rank acc.: share of "
        "the K most-attributed pixels inside it (K = region size); pointing: share of samples "
        f"whose most-attributed pixel is inside it. Bars: means with {100 * confidence:g} % "
        f"bootstrap CIs ({n_boot} resamples); numbers: n samples (fakes with a non-empty "
        "region); black "
        "ticks: chance, the mean share of the image the region covers (what an attribution "
        "spread at random scores). Only manipulations with a non-empty region appear in a panel. "
        + _FRAME_LEVEL
    )
    for r, why in missing.items():
        if why and r not in regions:
            caption += f" No {titles[r].removeprefix('region: ')} panel: {why}."
    set_caption(fig, caption)
    return fig


def plot_deletion_curves(
    analysis: LocalisationAnalysis,
    *,
    width="double",
    model_names: dict | None = None,
    n_boot: int | None = None,
    seed: int | None = None,
):
    """Plot deletion curves (most-attributed pixels first vs a random order) per model.

    Mean evidence for the true class at each removed fraction with 95 %
    bootstrap CIs as error bars (no shaded bands: nothing overlaps
    translucently); the two orders are offset slightly along x. Both models
    share the y scale. Each title gives the paired difference of the areas
    under the curves, ΔAUC = AUC(by |attr|) − AUC(random), with its CI.

    Parameters
    ----------
    analysis : LocalisationAnalysis
    width : {"single", "double"}
    model_names : dict of str to str, optional
        Display names of the models (``"defocus"``, ``"rgb"``).
    n_boot, seed : int, optional
        Bootstrap resamples and seed of the CIs (default: the analysis's
        config, see :class:`analysis.config.AnalysisConfig`).

    Returns
    -------
    matplotlib.figure.Figure
        Its caption (:func:`analysis.style.caption_of`) says what is drawn.
    """
    from analysis.style import (
        OKABE_ITO,
        column_width,
        figure,
        model_name,
        publication_style,
        set_caption,
        unavailable_figure,
    )

    column_width(width)
    n_boot, seed, confidence = _boot_settings(analysis, n_boot, seed)
    if not analysis.deletion:
        reasons = [v for k, v in analysis.unavailable.items() if k.startswith("deletion")]
        return unavailable_figure(
            reasons[0] if reasons else "no deletion curves were computed",
            "deletion curves",
            width,
        )
    models = [m for m in MODEL_FIELDS if m in analysis.deletion]
    orders = (
        ("curves", "auc", "most-attributed first", OKABE_ITO[5], "-", "o"),
        ("random_curves", "random_auc", "random order", OKABE_ITO[0], "--", "s"),
    )
    with publication_style():
        if width == "single":
            fig = figure(width, 1.75 * len(models) + 0.7)
            axes = fig.subplots(len(models), 1, squeeze=False, sharey=True)[:, 0]
        else:
            fig = figure(width, 2.5)
            axes = fig.subplots(1, len(models), squeeze=False, sharey=True)[0]
        for ax, m in zip(axes, models, strict=False):
            d = analysis.deletion[m]
            dx = 0.012 * (d.fractions[-1] - d.fractions[0])
            for j, (key, _auc_key, name, color, ls, marker) in enumerate(orders):
                curves = getattr(d, key)
                mean = curves.mean(axis=0)
                ci = np.array(
                    [_boot_ci(curves[:, t], n_boot, seed, confidence) for t in range(mean.size)]
                )
                yerr = None
                if np.all(np.isfinite(ci)):
                    yerr = [mean - ci[:, 0], ci[:, 1] - mean]
                ax.errorbar(d.fractions + (2 * j - 1) * dx, mean, yerr=yerr, color=color, ls=ls,
                            marker=marker, ms=3, lw=1.0, elinewidth=0.7, capsize=1.5,
                            label=name)  # fmt: skip
            diff = d.auc - d.random_auc
            lo, hi = _boot_ci(diff, n_boot, seed, confidence)
            ci_text = f" [{_signed(lo)}, {_signed(hi)}]" if np.isfinite(lo) else ""
            ax.set_title(
                f"{model_name(m, model_names)} (n={len(d.auc)})\n"
                f"AUC {_signed(d.auc.mean())} vs random {_signed(d.random_auc.mean())}; "
                f"ΔAUC {_signed(diff.mean())}{ci_text}",
                fontsize=6.5,
            )
            ax.axhline(0.0, color="#999999", lw=0.5, zorder=0)
            ax.set_xlabel(f"fraction of pixels removed (set to the {d.fill})")
            ax.set_ylabel("evidence for true class (logit)")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=2)
    fills = sorted({analysis.deletion[m].fill for m in models})
    steps = len(analysis.deletion[models[0]].fractions)
    set_caption(
        fig,
        "Deletion curves of "
        + " and ".join(
            f"the {model_name(m, model_names)} (n={len(analysis.deletion[m].auc)} samples)"
            for m in models
        )
        + ": the model's evidence for the true class (the logit for fakes, the negated logit "
        f"for reals) as a growing fraction of pixels ({steps} steps) is removed (set to the "
        f"sample's {' or '.join(fills)}), most-attributed pixels first (vermillion, solid) or "
        "in a random order (blue, dashed; offset slightly along x). Points: means; bars: "
        f"{100 * confidence:g} % bootstrap CIs ({n_boot} resamples). Both panels share the y "
        "scale. AUC: area under "
        "the mean curve over the removed fraction 0 to 1, in logit; it is negative when the "
        "model's evidence for the true class is below 0 on average (the model leans to the "
        "wrong class on these samples). ΔAUC = AUC(most-attributed first) − AUC(random), "
        f"paired per sample, with its {100 * confidence:g} % bootstrap CI: below 0 means "
        "removing the "
        "most-attributed pixels destroys the evidence faster than removing random ones, as a "
        "faithful attribution should. " + _FRAME_LEVEL,
    )
    return fig
