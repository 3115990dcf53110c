"""Local variance of defocus maps and the real-vs-fake tests on its per-image mean.

Local variance (ALGORITHM.md section 4) is ``E[m**2] - E[m]**2`` over a
``window x window`` neighbourhood, on per-sample min-max normalised maps.
Two border treatments (``padding=``):

``"zeros"`` (the paper's, the default)
    zero padding that counts the padded zeros (as
    ``avg_pool2d(m, window, stride=1, padding=window // 2)`` with
    ``count_include_pad=True``): near the border the window mixes the map
    with zeros, which inflates the local variance there;
``"reflect"``
    the map mirrored about its edge pixel, the edge not repeated (numpy's
    and torch's ``"reflect"``, scipy's ``"mirror"``): no artificial step at
    the border.

:func:`border_share` reports how much of the local-variance mass lies in the
border band of ``window // 2`` pixels (where zero padding acts), so a caption
can say it.

The paper compares the per-image mean of that map between real and fake
images with a two-sample Kolmogorov-Smirnov test; :func:`test_means` adds an
effect size (Cliff's delta, with Cohen's d) and bootstrap intervals, and
takes ``clusters=`` so that with videos the comparison is made on per-video
means (frames of one video are near-duplicates, not independent samples).
:func:`variance_from_cache` adds the paired test (each fake against the
real frame it was made from, video-level when the cache has videos) and
:func:`holm` corrects p-values across manipulations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage

from analysis._validation import as_maps, check_choice, check_positive_int, check_window
from analysis.config import PADDINGS, AnalysisConfig, resolve_config
from analysis.pairing import NO_PAIRS
from analysis.stats import cluster_labels, cluster_means, paired_comparison

__all__ = [
    "VarianceTest",
    "VarianceAnalysis",
    "border_sentence",
    "border_share",
    "cliffs_delta",
    "holm",
    "local_variance",
    "mean_local_variance",
    "normalise_maps",
    "test_means",
    "variance_ks_test",
    "variance_from_cache",
    "plot_variance_ecdf",
    "plot_variance_heatmaps",
]

#: scipy.ndimage mode of each padding.
_SCIPY_MODE = {"zeros": "constant", "reflect": "mirror"}


def normalise_maps(maps) -> np.ndarray:
    """Per-sample min-max normalisation ``(m - min) / (max - min + 1e-8)``.

    Parameters
    ----------
    maps : ndarray of shape (N, H, W) or (H, W)

    Returns
    -------
    ndarray of float64, shape (N, H, W)
    """
    m = as_maps(maps)
    lo = m.min(axis=(1, 2), keepdims=True)
    hi = m.max(axis=(1, 2), keepdims=True)
    return (m - lo) / (hi - lo + 1e-8)


def local_variance(
    maps,
    window: int = AnalysisConfig.window,
    normalise: bool = False,
    padding: str = AnalysisConfig.padding,
) -> np.ndarray:
    """Local variance ``E[m**2] - E[m]**2`` over a square window.

    Parameters
    ----------
    maps : ndarray of shape (N, H, W) or (H, W)
        Defocus maps (the cache's ``defocus`` field is already normalised).
    window : int
        Odd side of the window (15 in the paper).
    normalise : bool
        Min-max normalise each map first (:func:`normalise_maps`).
    padding : {"zeros", "reflect"}
        ``"zeros"``: the paper's zero padding, the padded zeros counted in the
        window means; ``"reflect"``: the map mirrored about its edge pixel.

    Returns
    -------
    ndarray of float64, shape (N, H, W)
        The local variance map of every input map (N = 1 for one (H, W) map).
        Computed in float64; entries may be a rounding error below zero, as
        with the paper's ``avg_pool2d`` form.
    """
    window = check_window(window)
    check_choice(padding, PADDINGS, "padding")
    m = normalise_maps(maps) if normalise else as_maps(maps)
    size = (1, window, window)
    mode = _SCIPY_MODE[padding]
    mean = ndimage.uniform_filter(m, size=size, mode=mode, cval=0.0)
    mean_sq = ndimage.uniform_filter(m * m, size=size, mode=mode, cval=0.0)
    return mean_sq - mean * mean


def mean_local_variance(
    maps,
    window: int = AnalysisConfig.window,
    normalise: bool = False,
    padding: str = AnalysisConfig.padding,
) -> np.ndarray:
    """Per-image mean of :func:`local_variance`, ndarray of shape (N,)."""
    return local_variance(maps, window, normalise, padding).mean(axis=(1, 2))


def _band_mask(shape: tuple[int, int], band: int) -> np.ndarray:
    h, w = shape
    mask = np.ones((h, w), bool)
    if 2 * band < h and 2 * band < w:
        mask[band : h - band, band : w - band] = False
    return mask


def border_share(local_var, band: int) -> tuple[np.ndarray, float]:
    """Share of the local-variance mass in the border band, per map, and the band's area share.

    Parameters
    ----------
    local_var : ndarray of shape (N, H, W) or (H, W)
        Local-variance maps (negative rounding errors count as 0).
    band : int
        Width in pixels of the band along each edge (``window // 2``: the
        pixels whose window reaches past the border).

    Returns
    -------
    mass_share : ndarray of float64, shape (N,)
        ``sum over the band / sum over the map`` of ``max(local_var, 0)``;
        NaN for a map without local variance.
    area_share : float
        Fraction of the pixels in the band.
    """
    lv = as_maps(local_var, "local_var")
    band = check_positive_int(band, "band", minimum=0)
    mask = _band_mask(lv.shape[1:], band)
    mass = np.maximum(lv, 0.0)
    total = mass.sum(axis=(1, 2))
    inside = mass[:, mask].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)
    return share, float(mask.mean())


def cliffs_delta(x, y) -> float:
    """Cliff's delta ``P(x > y) - P(x < y)`` between two samples, in [-1, 1].

    Computed from ranks (``2 U / (n_x n_y) - 1`` with the Mann-Whitney ``U``
    of ``x``, ties counted half), exact and O(n log n).
    """
    from scipy import stats  # lazily: scipy.stats probes sys.modules["torch"] on import

    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size == 0 or y.size == 0:
        raise ValueError(f"both samples must be non-empty, got sizes {x.size} and {y.size}")
    ranks = stats.rankdata(np.concatenate([x, y]))
    u = ranks[: x.size].sum() - x.size * (x.size + 1) / 2.0
    return float(2.0 * u / (x.size * y.size) - 1.0)


def _cohens_d(x: np.ndarray, y: np.ndarray) -> float:
    nx, ny = x.size, y.size
    if nx < 2 or ny < 2:
        return float("nan")
    pooled = ((nx - 1) * x.var(ddof=1) + (ny - 1) * y.var(ddof=1)) / (nx + ny - 2)
    return float((x.mean() - y.mean()) / np.sqrt(pooled)) if pooled > 0 else float("nan")


@dataclass(frozen=True)
class VarianceTest:
    """Two-sample comparison of per-image (or per-video) mean local variance, fake vs real.

    Attributes
    ----------
    statistic, pvalue : float
        Kolmogorov-Smirnov ``D`` and two-sided p-value (``scipy.stats.ks_2samp``)
        of the units compared (images, or per-video means).
    effect_size : float
        Cliff's delta of fake vs real (> 0: fakes have larger local variance).
    ci_low, ci_high : float
        Percentile bootstrap confidence interval of ``effect_size``.
    statistic_ci_low, statistic_ci_high : float
        Percentile bootstrap confidence interval of ``D``.
    cohens_d : float
        Standardised mean difference, fake minus real.
    mean_real, mean_fake : float
        Means of the compared units' values.
    n_real, n_fake : int
        Units compared (images, or videos).
    confidence : float
        Level of the intervals.
    n_boot : int
        Bootstrap resamples.
    level : str
        ``"frame"`` (every image a unit) or ``"cluster"`` (per-cluster means,
        e.g. videos).
    n_real_frames, n_fake_frames : int
        Images behind the units.
    """

    statistic: float
    pvalue: float
    effect_size: float
    ci_low: float
    ci_high: float
    statistic_ci_low: float
    statistic_ci_high: float
    cohens_d: float
    mean_real: float
    mean_fake: float
    n_real: int
    n_fake: int
    confidence: float
    n_boot: int
    level: str = "frame"
    n_real_frames: int = 0
    n_fake_frames: int = 0

    def to_dict(self) -> dict:
        """Plain dict of every attribute."""
        return asdict(self)


def test_means(
    real_values,
    fake_values,
    n_boot: int = AnalysisConfig.n_boot,
    confidence: float = AnalysisConfig.confidence,
    seed: int = AnalysisConfig.seed,
    clusters=None,
) -> VarianceTest:
    """KS test, effect sizes and bootstrap intervals on per-image values (real vs fake).

    Parameters
    ----------
    real_values, fake_values : ndarray of shape (n_real,), (n_fake,)
        Per-image mean local variance (or any per-image statistic).
    n_boot : int
        Bootstrap resamples (each sample resampled with replacement separately).
    confidence : float
        Level of the percentile intervals, in (0, 1).
    seed : int
        Seed of the bootstrap.
    clusters : tuple of two array-likes, optional
        ``(real_clusters, fake_clusters)``: a cluster label (e.g. the video)
        per value. The values of each cluster are first averaged and every
        statistic is computed on those per-cluster means (the bootstrap thus
        resamples whole clusters); ``None`` for one side means every value
        of that side is its own cluster.

    Returns
    -------
    VarianceTest
    """
    from scipy import stats

    x = np.asarray(real_values, dtype=np.float64).ravel()
    y = np.asarray(fake_values, dtype=np.float64).ravel()
    if x.size < 1 or y.size < 1:
        raise ValueError(f"need at least one real and one fake value, got {x.size} and {y.size}")
    n_boot = check_positive_int(n_boot, "n_boot")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    frames = (int(x.size), int(y.size))
    level = "frame"
    if clusters is not None:
        if not isinstance(clusters, (tuple, list)) or len(clusters) != 2:
            raise ValueError("clusters must be a pair (real_clusters, fake_clusters)")
        real_c, fake_c = clusters
        if real_c is not None:
            _, x, _ = cluster_means(x, real_c)
        if fake_c is not None:
            _, y, _ = cluster_means(y, fake_c)
        if real_c is not None or fake_c is not None:
            level = "cluster"
    ks = stats.ks_2samp(y, x)
    rng = np.random.default_rng(seed)
    deltas = np.empty(n_boot)
    ds = np.empty(n_boot)
    for b in range(n_boot):
        xb = x[rng.integers(0, x.size, x.size)]
        yb = y[rng.integers(0, y.size, y.size)]
        deltas[b] = cliffs_delta(yb, xb)
        ds[b] = _ks_statistic(yb, xb)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(deltas, [alpha, 1.0 - alpha])
    dlo, dhi = np.quantile(ds, [alpha, 1.0 - alpha])
    return VarianceTest(
        statistic=float(ks.statistic),
        pvalue=float(ks.pvalue),
        effect_size=cliffs_delta(y, x),
        ci_low=float(lo),
        ci_high=float(hi),
        statistic_ci_low=float(dlo),
        statistic_ci_high=float(dhi),
        cohens_d=_cohens_d(y, x),
        mean_real=float(x.mean()),
        mean_fake=float(y.mean()),
        n_real=int(x.size),
        n_fake=int(y.size),
        confidence=float(confidence),
        n_boot=n_boot,
        level=level,
        n_real_frames=frames[0],
        n_fake_frames=frames[1],
    )


test_means.__test__ = False  # not a pytest test despite its name


def _ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample KS ``D`` = max |ECDF_a - ECDF_b| (statistic only, fast)."""
    a = np.sort(a)
    b = np.sort(b)
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / a.size
    cdf_b = np.searchsorted(b, grid, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def variance_ks_test(
    real_maps,
    fake_maps,
    window: int = AnalysisConfig.window,
    n_boot: int = AnalysisConfig.n_boot,
    confidence: float = AnalysisConfig.confidence,
    seed: int = AnalysisConfig.seed,
    normalise: bool = False,
    padding: str = AnalysisConfig.padding,
    clusters=None,
) -> VarianceTest:
    """Two-sample KS test of per-image mean local variance, real vs fake maps.

    Parameters
    ----------
    real_maps : ndarray of shape (n_real, H, W)
    fake_maps : ndarray of shape (n_fake, H, W)
        Normalised defocus maps (need not be paired).
    window : int
        Local variance window.
    n_boot, confidence, seed
        Bootstrap settings, see :func:`test_means`.
    normalise : bool
        Min-max normalise each map first.
    padding : {"zeros", "reflect"}
        See :func:`local_variance`.
    clusters : tuple of two array-likes, optional
        ``(real_clusters, fake_clusters)`` (e.g. videos), see :func:`test_means`.

    Returns
    -------
    VarianceTest
        ``.statistic`` (D), ``.pvalue``, ``.effect_size`` (Cliff's delta,
        fake vs real), ``.ci_low``/``.ci_high`` and more.
    """
    real = mean_local_variance(real_maps, window, normalise, padding)
    fake = mean_local_variance(fake_maps, window, normalise, padding)
    return test_means(
        real, fake, n_boot=n_boot, confidence=confidence, seed=seed, clusters=clusters
    )


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1).

    Parameters
    ----------
    pvalues : sequence of float, length m
        Raw p-values of m tests; NaN entries are ignored and stay NaN.

    Returns
    -------
    ndarray of float64, shape (m,)
        Adjusted p-values in the input order; reject test i at level alpha
        when ``adjusted[i] <= alpha``.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


# --------------------------------------------------------------------------- over a cache


@dataclass
class VarianceAnalysis:
    """Local-variance results over a cache.

    Attributes
    ----------
    window : int
        Local variance window.
    per_image : pandas.DataFrame
        ``group, id, label, pair_id, video, mean_local_variance,
        border_mass_share`` for every sample (``video`` "" without videos).
    tests : pandas.DataFrame
        Per fake group, the :class:`VarianceTest` fields against all real
        samples at the inference unit ``level`` ("video": per-video means;
        "frame": every image), plus ``pvalue_holm`` (Holm-corrected across
        the groups).
    heatmaps : dict of str to dict
        Per fake group, the first pairs: ``"id"``, ``"fake"`` and ``"real"``
        local-variance maps (float32 (k, S, S)).
    unavailable : dict of str to str
        Parts that could not be computed, with the reason.
    padding : str
        Border treatment used (``"zeros"``: the paper's; ``"reflect"``).
    border_band : int
        Width in pixels of the border band (``window // 2``).
    border_mass_share, border_area_share : float
        Share of all local-variance mass (every image pooled) lying in the
        border band, and the band's share of the area.
    border : pandas.DataFrame
        Per group and label: ``n, area_share, mass_share`` (pooled over the
        images, weighted by their mean local variance) and
        ``mass_share_mean`` (mean of the per-image shares).
    frame_tests : pandas.DataFrame
        The same as ``tests`` with every image taken as independent
        ("frame-level"); equal to ``tests`` when ``level`` is "frame".
    paired : pandas.DataFrame
        Per fake group, each fake against the real image it was made from
        (``diff = fake - real`` of the per-image mean): ``level, n,
        n_clusters, mean_fake, mean_real, mean_diff, ci_low, ci_high,
        p_signflip, p_wilcoxon`` (two-sided; clusters = the fakes' videos),
        their Holm-corrected ``p_signflip_holm, p_wilcoxon_holm``,
        ``n_permutations, p_min, n_boot, confidence``.
    level : str
        "video" or "frame".
    config : dict
        The :class:`analysis.config.AnalysisConfig` used, as a dict.
    """

    window: int
    per_image: pd.DataFrame
    tests: pd.DataFrame
    heatmaps: dict[str, dict]
    unavailable: dict[str, str]
    padding: str = "zeros"
    border_band: int = 0
    border_mass_share: float = float("nan")
    border_area_share: float = float("nan")
    border: pd.DataFrame = field(default_factory=pd.DataFrame)
    frame_tests: pd.DataFrame = field(default_factory=pd.DataFrame)
    paired: pd.DataFrame = field(default_factory=pd.DataFrame)
    level: str = "frame"
    config: dict = field(default_factory=dict)


_PER_IMAGE = [
    "group",
    "id",
    "label",
    "pair_id",
    "video",
    "mean_local_variance",
    "border_mass_share",
]


def _border_table(per_image: pd.DataFrame, area: float, band: int) -> pd.DataFrame:
    rows = []
    for (g, lab), sub in per_image.groupby(["group", "label"], sort=False):
        w = sub["mean_local_variance"].clip(lower=0).to_numpy()
        s = sub["border_mass_share"].to_numpy()
        ok = ~np.isnan(s)
        pooled = float(np.sum(w[ok] * s[ok]) / np.sum(w[ok])) if np.sum(w[ok]) > 0 else np.nan
        rows.append(
            {
                "group": g,
                "label": int(lab),
                "band": band,
                "n": len(sub),
                "area_share": area,
                "mass_share": pooled,
                "mass_share_mean": float(np.nanmean(s)) if ok.any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


def _paired_rows(per_image: pd.DataFrame, groups, level: str, cfg: AnalysisConfig) -> pd.DataFrame:
    reals = per_image[per_image["label"] == 0].drop_duplicates("id").set_index("id")
    rows = []
    for g in groups:
        fakes = per_image[(per_image["group"] == g) & (per_image["label"] == 1)]
        fakes = fakes[fakes["pair_id"].isin(reals.index)]
        if fakes.empty:
            continue
        partner = reals.loc[fakes["pair_id"], "mean_local_variance"].to_numpy()
        clusters = cluster_labels(fakes["video"], fakes["id"]) if level == "video" else None
        res = paired_comparison(
            fakes["mean_local_variance"].to_numpy(),
            partner,
            clusters=clusters,
            n_boot=cfg.n_boot,
            n_permutations=cfg.n_permutations,
            confidence=cfg.confidence,
            seed=cfg.seed,
        ).to_dict()
        res["mean_fake"] = res.pop("mean_a")
        res["mean_real"] = res.pop("mean_b")
        rows.append({"group": g, "level": level, **res})
    out = pd.DataFrame(rows)
    if not out.empty:
        for p in ("p_signflip", "p_wilcoxon"):
            out.insert(out.columns.get_loc(p) + 1, f"{p}_holm", holm(out[p]))
    return out


def variance_from_cache(
    cache,
    window: int | None = None,
    groups: Sequence[str] | None = None,
    n_boot: int | None = None,
    confidence: float | None = None,
    seed: int | None = None,
    n_heatmaps: int = 3,
    normalise: bool = False,
    progress: bool = False,
    chunk: int = 32,
    *,
    padding: str | None = None,
    config: AnalysisConfig | None = None,
) -> VarianceAnalysis:
    """Per-image mean local variance, KS and paired tests per manipulation (Holm), heatmaps.

    Streams the cache one shard at a time. With a ``video`` field (and
    ``config.unit == "video"``) the KS test compares per-video means and the
    paired test flips whole videos; the frame-level results stay in
    ``frame_tests``.

    Parameters
    ----------
    cache : cache reader
        From :func:`cache.open_cache`.
    window : int, optional
        Local variance window (odd; default ``config.window``).
    groups : sequence of str, optional
        Fake groups to test (default: every group holding fakes); every real
        sample (label 0) of the cache is the reference.
    n_boot, confidence, seed : optional
        Bootstrap settings of :func:`test_means` (default: from ``config``).
    n_heatmaps : int
        Real/fake pairs per group kept for :func:`plot_variance_heatmaps`
        (paired by pair id; none for fakes without one).
    normalise : bool
        Min-max normalise maps again before the local variance (the cache's
        ``defocus`` field is already normalised).
    progress : bool
        Show a progress bar.
    chunk : int
        Maps processed at once (bounds memory).
    padding : {"zeros", "reflect"}, optional
        Border treatment (default ``config.padding``, the paper's zeros).
    config : AnalysisConfig, optional
        Every setting at once; the keyword arguments above override it.

    Returns
    -------
    VarianceAnalysis
    """
    from analysis.pairing import iter_group

    cfg = resolve_config(
        config, window=window, n_boot=n_boot, confidence=confidence, seed=seed, padding=padding
    )
    window, padding, band = cfg.window, cfg.padding, cfg.window // 2
    if "defocus" not in cache.fields:
        reason = "the cache has no 'defocus' field"
        return VarianceAnalysis(
            window, pd.DataFrame(columns=_PER_IMAGE), pd.DataFrame(), {}, {"variance": reason},
            padding=padding, border_band=band, config=cfg.to_dict(),
        )  # fmt: skip
    has_video = "video" in cache.fields
    fields = ("id", "label", "pair_id", "defocus", *(("video",) if has_video else ()))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cache.n_samples(), desc="local variance", unit="map", leave=False)
    parts = []
    heat: dict[str, dict] = {}
    area = float("nan")
    for g in cache.groups:
        for shard in iter_group(cache, g, fields):
            n = len(shard["id"])
            means = np.empty(n)
            shares = np.empty(n)
            for start in range(0, n, chunk):  # bounds the float64 temporaries
                lv = local_variance(
                    shard["defocus"][start : start + chunk], window, normalise, padding
                )
                means[start : start + chunk] = lv.mean(axis=(1, 2))
                shares[start : start + chunk], area = border_share(lv, band)
                if (groups is None or g in groups) and n_heatmaps > 0:
                    h = heat.setdefault(g, {"id": [], "pair_id": [], "fake": []})
                    lab = shard["label"][start : start + chunk]
                    pid = shard["pair_id"][start : start + chunk]
                    sel = np.flatnonzero((lab == 1) & (pid != ""))
                    for i in sel[: max(0, n_heatmaps - len(h["id"]))]:
                        h["id"].append(str(shard["id"][start + i]))
                        h["pair_id"].append(str(pid[i]))
                        h["fake"].append(lv[i].astype(np.float32))
            parts.append(
                pd.DataFrame(
                    {
                        "group": g,
                        "id": shard["id"].astype(str),
                        "label": shard["label"].astype(int),
                        "pair_id": shard["pair_id"].astype(str),
                        "video": shard["video"].astype(str) if has_video else "",
                        "mean_local_variance": means,
                        "border_mass_share": shares,
                    }
                )
            )
            if bar is not None:
                bar.update(len(shard["id"]))
    if bar is not None:
        bar.close()
    per_image = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=_PER_IMAGE)
    unavailable: dict[str, str] = {}
    # the real partners of the heatmap examples (a targeted pass over shards with reals)
    wanted = {p for h in heat.values() for p in h["pair_id"]}
    found: dict[str, np.ndarray] = {}
    if wanted:
        real_groups = per_image.loc[per_image["label"] == 0, "group"].unique().tolist()
        for g in real_groups:
            for shard in iter_group(cache, g, ("id", "label", "defocus")):
                hit = np.flatnonzero(np.isin(shard["id"], list(wanted - set(found))))
                hit = hit[shard["label"][hit] == 0]
                if hit.size:
                    lv = local_variance(shard["defocus"][hit], window, normalise, padding)
                    for j, i in enumerate(hit):
                        found[str(shard["id"][i])] = lv[j].astype(np.float32)
                if len(found) == len(wanted):
                    break
            if len(found) == len(wanted):
                break
    heatmaps = {}
    for g, h in heat.items():
        keep = [i for i, p in enumerate(h["pair_id"]) if p in found]
        if keep:
            heatmaps[g] = {
                "id": [h["id"][i] for i in keep],
                "fake": np.stack([h["fake"][i] for i in keep]),
                "real": np.stack([found[h["pair_id"][i]] for i in keep]),
            }
    if not heatmaps:
        unavailable["heatmaps"] = NO_PAIRS
    level = (
        "video"
        if cfg.unit == "video" and has_video and (per_image["video"] != "").any()
        else "frame"
    )
    reals = per_image[per_image["label"] == 0]
    real_values = reals["mean_local_variance"].to_numpy()
    real_clusters = cluster_labels(reals["video"], reals["id"])
    fake_groups = [
        g
        for g in per_image.loc[per_image["label"] == 1, "group"].unique().tolist()
        if groups is None or g in groups
    ]
    rows, frame_rows = [], []
    boot = dict(n_boot=cfg.n_boot, confidence=cfg.confidence, seed=cfg.seed)
    if real_values.size == 0:
        unavailable["ks_test"] = "the cache holds no real sample (label 0)"
    else:
        for g in fake_groups:
            fakes = per_image[(per_image["group"] == g) & (per_image["label"] == 1)]
            values = fakes["mean_local_variance"].to_numpy()
            frame = {"group": g, **test_means(real_values, values, **boot).to_dict()}
            frame["level"] = "frame"
            frame_rows.append(frame)
            if level == "video":
                clusters = (real_clusters, cluster_labels(fakes["video"], fakes["id"]))
                main = {
                    "group": g,
                    **test_means(real_values, values, clusters=clusters, **boot).to_dict(),
                }
                main["level"] = "video"
                rows.append(main)
            else:
                rows.append(dict(frame))
    tests = pd.DataFrame(rows)
    frame_tests = pd.DataFrame(frame_rows)
    for t in (tests, frame_tests):
        if not t.empty:
            t.insert(t.columns.get_loc("pvalue") + 1, "pvalue_holm", holm(t["pvalue"]))
    if tests.empty and "ks_test" not in unavailable:
        unavailable["ks_test"] = "the cache holds no fake sample (label 1)"
    paired = _paired_rows(per_image, fake_groups, level, cfg)
    if paired.empty and fake_groups:
        unavailable["paired_test"] = NO_PAIRS
    s = per_image["border_mass_share"].to_numpy()
    w = per_image["mean_local_variance"].clip(lower=0).to_numpy()
    ok = ~np.isnan(s)
    pooled = float(np.sum(w[ok] * s[ok]) / np.sum(w[ok])) if np.sum(w[ok]) > 0 else float("nan")
    return VarianceAnalysis(
        window,
        per_image,
        tests,
        heatmaps,
        unavailable,
        padding=padding,
        border_band=band,
        border_mass_share=pooled,
        border_area_share=area,
        border=_border_table(per_image, area, band),
        frame_tests=frame_tests,
        paired=paired,
        level=level,
        config=cfg.to_dict(),
    )


# --------------------------------------------------------------------------- figures


def plot_variance_heatmaps(
    analysis: VarianceAnalysis, n: int = 2, percentile: float = 100.0, *, width="double"
):
    """Real and fake local-variance maps of a few pairs per group on one scale, and fake - real.

    With zero padding (the paper's), the outer ``window // 2`` pixels mix in
    the padded zeros, which inflates the local variance there; that border
    band is outlined (dashed) and left out of the colour scale, whose top is
    the ``percentile`` of the interior values (values above it take the top
    colour, shown by the bar's arrow). The difference fake − real uses a
    diverging map centred on 0.

    Parameters
    ----------
    analysis : VarianceAnalysis
    n : int
        Pairs per group.
    percentile : float
        Top of the shared scale as a percentile of the interior values of all
        shown maps (100: their maximum).
    width : {"single", "double"}
        Paper width: one pair per row (single) or two (double).

    Returns
    -------
    matplotlib.figure.Figure
        Its caption (:func:`analysis.style.caption_of`) says what is drawn.
    """
    from matplotlib.patches import Rectangle

    from analysis.style import (
        DIVERGING_CMAP,
        SEQUENTIAL_CMAP,
        colorbar,
        column_width,
        image_grid,
        label_sample,
        publication_style,
        set_caption,
        shared_norm,
        signed_ticks,
        symmetric_norm,
        unavailable_figure,
    )

    column_width(width)
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    rows = [(g, i) for g, h in analysis.heatmaps.items() for i in range(min(n, len(h["id"])))]
    if not rows:
        return unavailable_figure(
            analysis.unavailable.get(
                "heatmaps", analysis.unavailable.get("variance", "no fake has a real partner")
            ),
            "local variance heatmaps",
            width,
        )
    padding = getattr(analysis, "padding", "zeros")
    pad_name = {"zeros": "zero"}.get(padding, padding)
    w = analysis.window
    band = w // 2 if padding == "zeros" else 0
    maps = [(analysis.heatmaps[g]["real"][i], analysis.heatmaps[g]["fake"][i]) for g, i in rows]
    side = maps[0][0].shape
    interior = np.zeros(side, bool)
    if band and min(side) > 2 * band:
        interior[band:-band, band:-band] = True
    else:
        interior[:] = True
        band = 0
    norm = shared_norm([m[interior] for pair in maps for m in pair], percentile)
    norm.vmin = 0.0
    dnorm = symmetric_norm([(f - r)[interior] for r, f in maps], percentile)
    over = any(float(m.max()) > norm.vmax for pair in maps for m in pair)
    with publication_style():
        fig, axes, bars = image_grid(
            width, len(rows), ["real", "fake", "fake − real"], n_bars=2, title_height=0.22
        )
        for r, (g, i) in enumerate(rows):
            real, fake = maps[r]
            row = axes[r]
            im = row[0].imshow(real, cmap=SEQUENTIAL_CMAP, norm=norm)
            row[1].imshow(fake, cmap=SEQUENTIAL_CMAP, norm=norm)
            dim = row[2].imshow(fake.astype(np.float64) - real, cmap=DIVERGING_CMAP, norm=dnorm)
            if band:
                for ax in row:
                    ax.add_patch(
                        Rectangle((band - 0.5, band - 0.5), side[1] - 2 * band, side[0] - 2 * band,
                                  fill=False, ec="white" if ax is not row[2] else "black",
                                  lw=0.6, ls=(0, (2, 2)))
                    )  # fmt: skip
            h = analysis.heatmaps[g]
            label_sample(row[0], h["id"][i], g)
        colorbar(fig, im, cax=bars[0], orientation="horizontal",
                 label=f"local variance ({w}×{w} window)\n(normalised defocus)²",
                 extend="max" if over else "neither")  # fmt: skip
        cb = colorbar(fig, dim, cax=bars[1], orientation="horizontal",
                      label="fake − real local variance\n(normalised defocus)²",
                      extend="both" if percentile < 100 or band else "neither")  # fmt: skip
        signed_ticks(cb, dnorm.vmax)
    groups = list(dict.fromkeys(g for g, _ in rows))
    counts = ", ".join(f"{sum(1 for h, _ in rows if h == g)} {g}" for g in groups)
    caption = (
        f"Local variance ({w}×{w} window, {pad_name} padding) of the normalised defocus maps "
        f"of {len(rows)} fake/real pairs ({counts}; the first pairs of each group in the "
        "cache): real, "
        "fake (one viridis scale for all) and fake − real (diverging, centred on 0)."
    )
    if band:
        caption += (
            f" With zero padding the outer {band} px (dashed) average in padded zeros, which "
            "inflates their local variance; that band is left out of both colour scales"
            + (
                f" (top: the {percentile:g}th percentile of the interior)"
                if percentile < 100
                else ""
            )
            + "; larger values there take the end colours."
        )
    elif percentile < 100:
        caption += f" Colour scales end at the {percentile:g}th percentile of the values shown."
    caption += " " + border_sentence(analysis)
    set_caption(fig, caption)
    return fig


def plot_variance_ecdf(analysis: VarianceAnalysis, *, width="double"):
    """ECDF of per-image mean local variance, real vs each manipulation, with the KS results.

    Parameters
    ----------
    analysis : VarianceAnalysis
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
        publication_style,
        set_caption,
        unavailable_figure,
    )

    column_width(width)
    if analysis.per_image.empty:
        return unavailable_figure(
            analysis.unavailable.get("variance", "the cache holds no sample"), "ECDF", width
        )
    df = analysis.per_image
    tests = analysis.tests.set_index("group") if not analysis.tests.empty else None
    colors = group_colors(["real", *df["group"].unique()])
    styles = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1))]
    padding = getattr(analysis, "padding", "zeros")
    padding = {"zeros": "zero"}.get(padding, padding)
    video = getattr(analysis, "level", "frame") == "video" and "video" in df.columns
    unit = "video" if video else "image"

    def units(sub):
        """Per-image values, or per-video means (a frame without a video is its own unit)."""
        values = sub["mean_local_variance"].to_numpy()
        if not video:
            return values
        return cluster_means(values, cluster_labels(sub["video"], sub["id"]))[1]

    with publication_style():
        fig = figure(width, 2.9 if width == "single" else 2.5)
        ax = fig.add_subplot()
        curves = [("real", units(df[df["label"] == 0]))]
        for g in df.loc[df["label"] == 1, "group"].unique():
            curves.append((g, units(df[(df["group"] == g) & (df["label"] == 1)])))
        for j, (name, v) in enumerate(curves):
            if v.size == 0:
                continue
            x = np.sort(v)
            y = np.arange(1, x.size + 1) / x.size
            label = f"{name} (n={x.size}{' videos' if video else ''})"
            if tests is not None and name in tests.index:
                t = tests.loc[name]
                label += (
                    f": D={t['statistic']:.2f}, p_Holm={t['pvalue_holm']:.2g}, "
                    f"δ={t['effect_size']:+.2f}"
                )
            ax.step(np.r_[x[0], x], np.r_[0.0, y], where="post", color=colors.get(name, "k"),
                    ls=styles[j % len(styles)], label=label)  # fmt: skip
        w = analysis.window
        ax.set_xlabel(f"mean local variance per {unit} ({w}×{w}, {padding} padding)")
        ax.set_ylabel(f"fraction of {unit}s ≤ x")
        ax.set_ylim(0, 1.02)
        if width == "single":
            fig.legend(loc="outside lower center", ncols=1, fontsize=6.5)
        else:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=6.5)
    if video:
        what = (
            "the per-video mean of the per-image mean local variance "
            f"({analysis.window}×{analysis.window} window, {padding} padding) of the real videos "
            "and of the fake videos of each manipulation (a frame without a video counts as its "
            "own unit). Video-level: the frames of a video are near-duplicates, so each video "
            "is one unit of the test, as drawn"
        )
        n_text = "n videos"
    else:
        what = (
            "the per-image mean local variance "
            f"({analysis.window}×{analysis.window} window, {padding} padding) of every real image "
            "and of the fakes of each manipulation. Frame-level: every image is counted as "
            "independent"
            + (
                " (the cache names no videos)"
                if getattr(analysis, "level", "frame") == "frame"
                else ""
            )
        )
        n_text = "n images"
    set_caption(
        fig,
        f"Empirical cumulative distribution of {what}. Legend: {n_text}; D, the two-sample "
        "Kolmogorov-Smirnov statistic of that manipulation against all reals (largest vertical "
        "gap between the curves); p_Holm, its p-value Holm-corrected across manipulations; δ, "
        "Cliff's delta (> 0: fakes have larger local variance). " + border_sentence(analysis),
    )
    return fig


def border_sentence(analysis: VarianceAnalysis) -> str:
    """Say which padding the local variance used and how much of its mass the border band holds.

    Parameters
    ----------
    analysis : VarianceAnalysis

    Returns
    -------
    str
        One sentence, e.g. "Zero padding (the paper's): the 7-px border band holds 73 % of
        the local-variance mass of all 32 maps on 39 % of their area."
    """
    padding = getattr(analysis, "padding", "zeros")
    name = "Zero padding (the paper's)" if padding == "zeros" else f"{padding.capitalize()} padding"
    share = getattr(analysis, "border_mass_share", float("nan"))
    area = getattr(analysis, "border_area_share", float("nan"))
    band = getattr(analysis, "border_band", analysis.window // 2)
    if not (np.isfinite(share) and np.isfinite(area) and band):
        return f"{name}."
    n = len(analysis.per_image)
    text = (
        f"{name}: the {band}-px border band holds {100 * share:.0f} % of the local-variance "
        f"mass of all {n} maps on {100 * area:.0f} % of their area"
    )
    if padding == "zeros" and share > area:
        text += " (padded zeros inflate it; padding='reflect' avoids this)"
    return text + "."
