"""Binary masks of where a fake's defocus map departs from its real source's map.

The paper's mask (ALGORITHM.md section 4) is ``|fake_map - real_map| > T`` on
paired, per-sample min-max normalised maps; per manipulation it reports the
mean, max, min and median of the activated pixel count, and sweeps ``T`` over
:data:`PAPER_THRESHOLDS`. When the cache holds a ground-truth manipulation
mask, :func:`mask_agreement` scores the defocus mask against it (IoU,
precision, recall).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis._validation import check_same_shape, check_threshold
from analysis.config import PAPER_THRESHOLDS, AnalysisConfig, resolve_config
from analysis.pairing import NO_PAIRS

__all__ = [
    "PAPER_THRESHOLDS",
    "MaskAnalysis",
    "MaskAccumulator",
    "binary_mask",
    "mask_area",
    "mask_area_stats",
    "mask_agreement",
    "threshold_sweep",
    "masks_from_cache",
    "plot_mask_gallery",
    "plot_threshold_sweep",
]


def _pair(fake, real) -> tuple[np.ndarray, np.ndarray]:
    fake = np.asarray(fake)
    real = np.asarray(real)
    check_same_shape(fake, real, ("fake", "real"))
    if fake.ndim not in (2, 3):
        raise ValueError(f"fake and real must have shape (N, H, W) or (H, W), got {fake.shape}")
    return fake.astype(np.float64, copy=False), real.astype(np.float64, copy=False)


def binary_mask(fake, real, threshold: float) -> np.ndarray:
    """Pixels where the fake map differs from its paired real map by more than ``threshold``.

    Parameters
    ----------
    fake, real : ndarray of shape (N, H, W) or (H, W)
        Paired, per-sample min-max normalised defocus maps (values in [0, 1]).
    threshold : float
        ``T`` in (0, 1); the mask is ``|fake - real| > T`` (strict).

    Returns
    -------
    ndarray of bool, same shape as ``fake``
        True where the pixel is activated.

    Raises
    ------
    ValueError
        When the shapes differ or ``threshold`` is outside (0, 1).
    """
    t = check_threshold(threshold)
    fake, real = _pair(fake, real)
    return np.abs(fake - real) > t


def mask_area(fake, real, threshold: float) -> np.ndarray:
    """Activated pixel count of :func:`binary_mask` per pair.

    Returns
    -------
    ndarray of int64, shape (N,)
        Counts per pair (N = 1 for a single (H, W) pair).
    """
    mask = binary_mask(fake, real, threshold)
    if mask.ndim == 2:
        mask = mask[None]
    return mask.reshape(mask.shape[0], -1).sum(axis=1).astype(np.int64)


def _stats(counts: np.ndarray) -> dict[str, float]:
    counts = np.asarray(counts, dtype=np.float64)
    if counts.size == 0:
        nan = float("nan")
        return {"mean": nan, "max": nan, "min": nan, "median": nan, "n": 0}
    return {
        "mean": float(counts.mean()),
        "max": float(counts.max()),
        "min": float(counts.min()),
        "median": float(np.median(counts)),
        "n": int(counts.size),
    }


def mask_area_stats(fake, real, threshold: float) -> dict[str, float]:
    """Mean, max, min and median over pairs of the activated pixel count.

    Parameters
    ----------
    fake, real : ndarray of shape (N, H, W)
        Paired normalised defocus maps.
    threshold : float
        ``T`` in (0, 1).

    Returns
    -------
    dict
        ``{"mean", "max", "min", "median"}`` as floats, plus ``"n"`` (pairs).
    """
    return _stats(mask_area(fake, real, threshold))


def _counts_for_thresholds(diff: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Count ``diff > t`` per sample (rows) and threshold (columns)."""
    flat = diff.reshape(diff.shape[0], -1)
    return np.stack([np.count_nonzero(flat > t, axis=1) for t in thresholds], axis=1).astype(
        np.int64
    )


def threshold_sweep(
    fake, real, thresholds: Sequence[float] = AnalysisConfig.thresholds
) -> pd.DataFrame:
    """Activated-pixel statistics for every threshold of a sweep.

    Parameters
    ----------
    fake, real : ndarray of shape (N, H, W)
        Paired normalised defocus maps.
    thresholds : sequence of float
        Values of ``T``, each in (0, 1).

    Returns
    -------
    pandas.DataFrame
        One row per threshold, columns ``threshold, mean, max, min, median, n``.
    """
    ts = [check_threshold(t) for t in thresholds]
    fake, real = _pair(fake, real)
    if fake.ndim == 2:
        fake, real = fake[None], real[None]
    counts = _counts_for_thresholds(np.abs(fake - real), ts)
    rows = [{"threshold": t, **_stats(counts[:, j])} for j, t in enumerate(ts)]
    return pd.DataFrame(rows)


def mask_agreement(predicted, truth) -> dict[str, np.ndarray]:
    """IoU, precision and recall of a predicted mask against a ground-truth mask, per sample.

    Parameters
    ----------
    predicted, truth : ndarray of shape (N, H, W) or (H, W)
        Boolean (or 0/1) masks; 1 = manipulated.

    Returns
    -------
    dict of str to ndarray of shape (N,)
        ``"iou"``, ``"precision"``, ``"recall"``. A ratio whose denominator is
        zero is NaN (e.g. recall for an empty ground truth), never a made-up 0 or 1.
    """
    p = np.asarray(predicted)
    t = np.asarray(truth)
    check_same_shape(p, t, ("predicted", "truth"))
    if p.ndim == 2:
        p, t = p[None], t[None]
    if p.ndim != 3:
        raise ValueError(f"masks must have shape (N, H, W) or (H, W), got {p.shape}")
    p = p.reshape(p.shape[0], -1).astype(bool)
    t = t.reshape(t.shape[0], -1).astype(bool)
    tp = np.sum(p & t, axis=1).astype(np.float64)
    fp = np.sum(p & ~t, axis=1).astype(np.float64)
    fn = np.sum(~p & t, axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
    return {"iou": iou, "precision": precision, "recall": recall}


# --------------------------------------------------------------------------- over a cache


@dataclass
class MaskAnalysis:
    """Binary-mask results over a cache.

    Attributes
    ----------
    thresholds : tuple of float
        The swept values of ``T``.
    counts : pandas.DataFrame
        One row per pair and threshold: ``group, id, pair_id, threshold, count``.
    stats : pandas.DataFrame
        Per group and threshold: ``mean, max, min, median, n`` of the counts.
    agreement : pandas.DataFrame or None
        Per group and threshold: mean ``iou, precision, recall`` of the binary
        defocus mask against the ground-truth mask (NaN-skipping means, with
        the counts ``n_iou`` etc.); None when the cache has no ``mask`` field.
    gallery : dict of str to dict
        Per group, the first pairs: ``"id"``, ``"fake"``, ``"real"`` (float32
        (k, S, S)) and ``"truth"`` (uint8 (k, S, S) or None).
    n_unpaired : dict of str to int
        Fakes per group left out for lack of a real partner.
    unavailable : dict of str to str
        Parts that could not be computed, with the reason.
    config : dict
        The :class:`analysis.config.AnalysisConfig` used, as a dict.
    """

    thresholds: tuple[float, ...]
    counts: pd.DataFrame
    stats: pd.DataFrame
    agreement: pd.DataFrame | None
    gallery: dict[str, dict]
    n_unpaired: dict[str, int] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    config: dict = field(default_factory=dict)


class MaskAccumulator:
    """Streaming accumulator behind :func:`masks_from_cache`.

    It needs the fake fields ``fake_fields`` and real fields ``real_fields``
    and takes one :class:`~analysis.pairing.PairedBlock` at a time (see
    :func:`~analysis.pairing.run_paired`).
    """

    fake_fields = ("defocus", "mask")
    real_fields = ("defocus",)

    def __init__(self, thresholds: Sequence[float] = AnalysisConfig.thresholds, n_gallery: int = 4):
        self.thresholds = tuple(check_threshold(t) for t in thresholds)
        self.n_gallery = int(n_gallery)
        self._counts: list[pd.DataFrame] = []
        self._agree: list[pd.DataFrame] = []
        self.gallery: dict[str, dict] = {}
        self.has_maps = True
        self.has_truth = False

    def update(self, block) -> None:
        """Add the pairs of one :class:`analysis.pairing.PairedBlock`."""
        if "defocus" not in block.fake or "defocus" not in block.real:
            self.has_maps = False
            return
        fake = block.fake["defocus"].astype(np.float32)
        real = block.real["defocus"].astype(np.float32)
        diff = np.abs(fake - real)
        counts = _counts_for_thresholds(diff, self.thresholds)
        n = len(block)
        self._counts.append(
            pd.DataFrame(
                {
                    "group": np.repeat(block.group, n * len(self.thresholds)),
                    "id": np.repeat(block.fake["id"], len(self.thresholds)),
                    "pair_id": np.repeat(block.fake["pair_id"], len(self.thresholds)),
                    "threshold": np.tile(self.thresholds, n),
                    "count": counts.reshape(-1),
                }
            )
        )
        truth = block.fake.get("mask")
        if truth is not None:
            self.has_truth = True
            for t in self.thresholds:
                ag = mask_agreement(diff > t, truth)
                self._agree.append(pd.DataFrame({"group": block.group, "threshold": t, **ag}))
        g = self.gallery.setdefault(
            block.group,
            {"id": [], "fake": [], "real": [], "truth": [] if truth is not None else None},
        )
        take = max(0, self.n_gallery - len(g["id"]))
        if take:
            g["id"].extend(block.fake["id"][:take].tolist())
            g["fake"].extend(fake[:take])
            g["real"].extend(real[:take])
            if truth is not None:
                g["truth"].extend(truth[:take])

    def finalize(self, n_unpaired: dict[str, int] | None = None) -> MaskAnalysis:
        """Return the :class:`MaskAnalysis` of everything seen."""
        unavailable: dict[str, str] = {}
        cols = ["group", "id", "pair_id", "threshold", "count"]
        counts = (
            pd.concat(self._counts, ignore_index=True)
            if self._counts
            else pd.DataFrame(columns=cols)
        )
        if not self.has_maps:
            unavailable["masks"] = "the cache has no 'defocus' field"
        elif counts.empty:
            unavailable["masks"] = NO_PAIRS
        rows = []
        for (g, t), sub in counts.groupby(["group", "threshold"], sort=False):
            rows.append({"group": g, "threshold": t, **_stats(sub["count"].to_numpy())})
        stats = pd.DataFrame(
            rows, columns=["group", "threshold", "mean", "max", "min", "median", "n"]
        )
        agreement = None
        if self._agree:
            ag = pd.concat(self._agree, ignore_index=True)
            agg = ag.groupby(["group", "threshold"], sort=False).agg(
                iou=("iou", "mean"),
                precision=("precision", "mean"),
                recall=("recall", "mean"),
                n_iou=("iou", "count"),
                n_precision=("precision", "count"),
                n_recall=("recall", "count"),
            )
            agreement = agg.reset_index()
        else:
            unavailable["agreement"] = "the cache has no ground-truth 'mask' field"
        gallery = {}
        for g, v in self.gallery.items():
            gallery[g] = {
                "id": list(v["id"]),
                "fake": np.asarray(v["fake"], np.float32),
                "real": np.asarray(v["real"], np.float32),
                "truth": None if v["truth"] is None else np.asarray(v["truth"], np.uint8),
            }
        return MaskAnalysis(
            self.thresholds, counts, stats, agreement, gallery, dict(n_unpaired or {}), unavailable
        )


def masks_from_cache(
    cache,
    thresholds: Sequence[float] | None = None,
    groups: Sequence[str] | None = None,
    by_position: bool = False,
    n_gallery: int = 4,
    progress: bool = False,
    *,
    config: AnalysisConfig | None = None,
) -> MaskAnalysis:
    """Binary-mask statistics, threshold sweep and ground-truth agreement over a whole cache.

    Streams the cache (one real and one fake shard in memory at a time).

    Parameters
    ----------
    cache : cache reader
        From :func:`cache.open_cache`.
    thresholds : sequence of float, optional
        Values of ``T`` (default: ``config.thresholds``, the paper's sweep).
    groups : sequence of str, optional
        Fake groups to analyse (default: every group holding fakes).
    by_position : bool
        Pair by position instead of pair id (warns; the paper's behaviour).
    n_gallery : int
        Pairs per group kept for :func:`plot_mask_gallery`.
    progress : bool
        Show a progress bar.
    config : AnalysisConfig, optional
        Every setting at once; ``thresholds`` overrides it.

    Returns
    -------
    MaskAnalysis
    """
    from analysis.pairing import run_paired

    cfg = resolve_config(config, thresholds=thresholds)
    acc = MaskAccumulator(cfg.thresholds, n_gallery)
    plan = run_paired(cache, [acc], groups=groups, by_position=by_position, progress=progress)
    out = acc.finalize(plan.n_unpaired)
    out.config = cfg.to_dict()
    return out


# --------------------------------------------------------------------------- figures


def _share(count: int, total: int, sep: str = " ") -> str:
    """``"1414 of 4096 px (35 %)"`` (``sep`` before the percentage)."""
    pct = 100.0 * count / total if total else float("nan")
    digits = 0 if pct >= 10 or pct == 0 else 1
    return f"{count} of {total} px{sep}({pct:.{digits}f} %)"


def plot_mask_gallery(
    analysis: MaskAnalysis, threshold: float = 0.1, n: int = 3, *, width="double"
):
    """Gallery of fake map, real map, binary mask (and ground truth) for a few pairs per group.

    Defocus maps share one grey scale (0 = sharpest, 1 = most blurred) and
    both masks one two-colour map, each with a colour bar. Under each mask:
    its activated pixels as "k of N px (p %)". A fake whose ground-truth mask
    is empty (a global manipulation) or that has none gets an "n/a" panel.

    Parameters
    ----------
    analysis : MaskAnalysis
    threshold : float
        ``T`` of the shown mask.
    n : int
        Pairs per group.
    width : {"single", "double"}
        Paper width: one pair per row (single) or two (double).

    Returns
    -------
    matplotlib.figure.Figure
        Its caption (:func:`analysis.style.caption_of`) says what is drawn.
    """
    from analysis.style import (
        DEFOCUS_CMAP,
        MASK_CMAP,
        blank_panel,
        colorbar,
        column_width,
        image_grid,
        label_sample,
        publication_style,
        set_caption,
        unavailable_figure,
    )

    column_width(width)
    t = check_threshold(threshold)
    rows = [(g, i) for g, v in analysis.gallery.items() for i in range(min(n, len(v["id"])))]
    if not rows:
        reason = analysis.unavailable.get("masks", "no fake has a real partner")
        return unavailable_figure(reason, "binary masks", width)
    with_truth = any(v["truth"] is not None for v in analysis.gallery.values())
    cols = ["fake map", "real map", f"|fake − real|\n> {t:g}"] + (
        ["ground-truth\nmask"] if with_truth else []
    )
    n_na = 0
    with publication_style():
        fig, axes, bars = image_grid(
            width, len(rows), cols, n_bars=2, title_height=0.3, row_extra=0.16
        )
        im_map = im_mask = None
        for r, (g, i) in enumerate(rows):
            v = analysis.gallery[g]
            row = axes[r]
            mask = np.abs(v["fake"][i].astype(np.float64) - v["real"][i]) > t
            total = mask.size
            for c, m in enumerate((v["fake"][i], v["real"][i])):
                im_map = row[c].imshow(m, cmap=DEFOCUS_CMAP, vmin=0.0, vmax=1.0)
            im_mask = row[2].imshow(mask.astype(np.uint8), cmap=MASK_CMAP, vmin=0, vmax=1)
            row[2].set_xlabel(_share(int(mask.sum()), total, "\n"), fontsize=5.5, labelpad=1.5)
            if with_truth:
                truth = None if v["truth"] is None else v["truth"][i]
                if truth is None:
                    blank_panel(row[3], "n/a\nno mask\nfor this\ngroup", 5.5)
                    n_na += 1
                elif not truth.any():
                    blank_panel(row[3], "n/a\nno localised\nmask\n(all 0)", 5.5)
                    n_na += 1
                else:
                    row[3].imshow(truth.astype(np.uint8), cmap=MASK_CMAP, vmin=0, vmax=1)
                    row[3].set_xlabel(_share(int(truth.sum()), truth.size, "\n"), fontsize=5.5,
                                      labelpad=1.5)  # fmt: skip
            label_sample(row[0], v["id"][i], g)
        colorbar(fig, im_map, cax=bars[0], orientation="horizontal", ticks=[0, 0.5, 1],
                 label="defocus (normalised):\n0 sharpest, 1 most blurred")  # fmt: skip
        cb = colorbar(fig, im_mask, cax=bars[1], orientation="horizontal", label="mask",
                      ticks=[0.25, 0.75])  # fmt: skip
        cb.set_ticklabels(["0", "1"])
        cb.set_label("mask: 1 = |fake − real| > T\n(or manipulated, ground truth)", fontsize=7)
    groups = list(dict.fromkeys(g for g, _ in rows))
    per_group = {g: sum(1 for h, _ in rows if h == g) for g in groups}
    counts = ", ".join(f"{per_group[g]} {g}" for g in groups)
    caption = (
        f"{len(rows)} fake/real pairs ({counts}; the first pairs of each group in the cache). "
        "Per pair: the fake's and the real source's normalised defocus maps (grey: 0 = "
        f"sharpest, 1 = most blurred in that image), and the binary mask |fake − real| > {t:g} "
        "(vermillion = activated) with its activated pixels."
    )
    if with_truth:
        caption += " Last column: the ground-truth manipulation mask"
        caption += (
            f"; n/a ({n_na} panels) where the fake has no localised mask (an all-zero mask: a "
            "global manipulation, or none given)."
            if n_na
            else "."
        )
    else:
        caption += " The cache has no ground-truth 'mask' field."
    set_caption(fig, caption)
    return fig


def plot_threshold_sweep(analysis: MaskAnalysis, *, width="double"):
    """Plot the fraction of pixels activated per pair against the threshold, one line per group.

    Each point is the median over pairs; the vertical bars span the
    interquartile range (25th to 75th percentile) of the per-pair fractions.
    Groups are offset slightly along x so that no bars overlap. The y axis
    turns logarithmic when the medians span more than a factor 20.

    Parameters
    ----------
    analysis : MaskAnalysis
    width : {"single", "double"}

    Returns
    -------
    matplotlib.figure.Figure
        Its caption (:func:`analysis.style.caption_of`) says what is drawn.
    """
    from analysis.style import (
        column_width,
        figure,
        group_colors,
        group_markers,
        publication_style,
        set_caption,
        unavailable_figure,
    )

    column_width(width)
    if analysis.counts.empty:
        return unavailable_figure(
            analysis.unavailable.get("masks", "no fake has a real partner"),
            "threshold sweep",
            width,
        )
    total = None
    for v in analysis.gallery.values():
        if len(v["id"]):
            total = int(np.prod(np.shape(v["fake"])[1:]))
            break
    counts = analysis.counts.copy()
    counts["value"] = counts["count"].astype(np.float64) / (total or 1)
    groups = list(counts["group"].unique())
    colors = group_colors(["real", *groups])
    markers = group_markers(["real", *groups])
    offsets = np.linspace(-0.06, 0.06, len(groups)) if len(groups) > 1 else [0.0]
    stats = {}
    for g, sub in counts.groupby("group", sort=False):
        stats[g] = sub.groupby("threshold")["value"].agg(
            mid="median", q1=lambda s: s.quantile(0.25), q3=lambda s: s.quantile(0.75), n="count"
        )
    means = np.concatenate([q["mid"].to_numpy() for q in stats.values()])
    positive = means[means > 0]
    log_y = positive.size == means.size and means.max() > 20 * positive.min()
    with publication_style():
        fig = figure(width, 2.4 if width == "single" else 2.6)
        ax = fig.add_subplot()
        for j, g in enumerate(groups):
            q = stats[g]
            x = q.index.to_numpy() * 10 ** offsets[j]
            ax.errorbar(
                x, q["mid"], yerr=[q["mid"] - q["q1"], q["q3"] - q["mid"]], color=colors[g],
                marker=markers[g], ms=3.5, lw=1.0, elinewidth=0.8, capsize=1.5,
                label=f"{g} (n={int(q['n'].max())})",
            )  # fmt: skip
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        elif total:
            ax.set_ylim(0, 1.05)
        ax.set_xlabel("threshold T on |fake − real| (log scale)")
        ax.set_ylabel("fraction of pixels activated" if total else "activated pixels per pair")
        if width == "single":
            fig.legend(loc="outside lower center", ncols=2, title="manipulation (pairs)")
        else:
            ax.legend(title="manipulation (pairs)", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    thresholds = sorted(counts["threshold"].unique())
    unit = f"fraction of the {total} pixels of a map" if total else "activated pixel count"
    set_caption(
        fig,
        f"Binary mask |fake − real| > T per fake/real pair, as the {unit}, for "
        f"{len(thresholds)} thresholds T from {thresholds[0]:g} to {thresholds[-1]:g}. "
        "Points: median over the pairs of each manipulation (n in the legend); bars: "
        "interquartile range (25th to 75th percentile) of the pairs; groups are offset "
        "slightly along T so their bars do not overlap."
        + (" Logarithmic y axis." if log_y else ""),
    )
    return fig
