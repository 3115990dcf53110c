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
            unavailable["masks"] = "no fake has a real partner (pair ids empty or unknown)"
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


def plot_mask_gallery(analysis: MaskAnalysis, threshold: float = 0.1, n: int = 3):
    """Gallery of fake map, real map, binary mask (and ground truth) for a few pairs per group.

    Parameters
    ----------
    analysis : MaskAnalysis
    threshold : float
        ``T`` of the shown mask.
    n : int
        Pairs per group.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from analysis.style import SEQUENTIAL_CMAP, figure, publication_style, unavailable_figure

    t = check_threshold(threshold)
    rows = [(g, i) for g, v in analysis.gallery.items() for i in range(min(n, len(v["id"])))]
    if not rows:
        reason = analysis.unavailable.get("masks", "no pairs")
        return unavailable_figure(reason, "binary masks")
    with_truth = any(v["truth"] is not None for v in analysis.gallery.values())
    cols = ["fake map", "real map", f"|fake - real| > {t:g}"] + (
        ["ground truth"] if with_truth else []
    )
    with publication_style():
        fig = figure(2.0 * len(cols), 2.0 * len(rows))
        axes = fig.subplots(len(rows), len(cols), squeeze=False)
        for r, (g, i) in enumerate(rows):
            v = analysis.gallery[g]
            mask = np.abs(v["fake"][i] - v["real"][i]) > t
            panels = [v["fake"][i], v["real"][i], mask]
            if with_truth:
                panels.append(v["truth"][i] if v["truth"] is not None else None)
            for c, img in enumerate(panels):
                ax = axes[r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                if img is None:
                    ax.text(
                        0.5, 0.5, "unavailable", ha="center", va="center", transform=ax.transAxes
                    )
                elif c < 2:
                    ax.imshow(img, cmap=SEQUENTIAL_CMAP, vmin=0, vmax=1)
                else:
                    ax.imshow(img, cmap="gray", vmin=0, vmax=1)
                if r == 0:
                    ax.set_title(cols[c])
            axes[r, 0].set_ylabel(f"{g}\n{v['id'][i]}", fontsize=7)
            axes[r, 2].set_xlabel(f"{int(mask.sum())} px", fontsize=7)
    return fig


def plot_threshold_sweep(analysis: MaskAnalysis):
    """Mean activated pixels against threshold (log-scaled axes), one line per group.

    The shaded band is the interquartile range of the per-pair counts; the
    y axis turns symmetric-log (zero counts stay visible) when the means span
    more than a factor 20.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from analysis.style import figure, group_colors, publication_style, unavailable_figure

    if analysis.counts.empty:
        return unavailable_figure(analysis.unavailable.get("masks", "no pairs"), "threshold sweep")
    colors = group_colors(["real", *analysis.counts["group"].unique()])
    with publication_style():
        fig = figure(4.5, 3.2)
        ax = fig.add_subplot()
        for g, sub in analysis.counts.groupby("group", sort=False):
            q = sub.groupby("threshold")["count"].agg(
                mean="mean", q1=lambda s: s.quantile(0.25), q3=lambda s: s.quantile(0.75)
            )
            ax.plot(q.index, q["mean"], marker="o", color=colors[g], label=g)
            ax.fill_between(q.index, q["q1"], q["q3"], color=colors[g], alpha=0.2, lw=0)
        ax.set_xscale("log")
        means = analysis.counts.groupby(["group", "threshold"])["count"].mean()
        if means.max() > 20 * max(means.min(), 1.0):  # wide range: log y, zeros kept by symlog
            ax.set_yscale("symlog", linthresh=1.0)
        ax.set_xlabel("threshold T")
        ax.set_ylabel("activated pixels per pair")
        ax.legend(title="manipulation")
        ax.set_title("binary mask area (mean; band: interquartile range)")
    return fig
