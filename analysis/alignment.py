"""The paper's Shapley alignment score, its no-information floor, and a skill score.

Per fake sample (ALGORITHM.md section 4): 20 bins on [0, 1] over the fake
map's values; histogram ``A`` weighted by ``|fake - real|`` and histogram
``B`` weighted by ``|attribution|``; each divided by (its sum + 1e-8);
``score = sum(min(A, B))`` (1: the model's attribution mass sits exactly at
the defocus levels where real and fake differ; 0: disjoint), and
``kl = KL(B + 1e-8 || A + 1e-8)`` as ``scipy.stats.entropy`` computes it
(it renormalises both).

The score has a floor. An attribution that is the same everywhere weights
histogram ``B`` by pixel counts, ``C = counts / (N + 1e-8)``, and scores
``floor = sum(min(A, C))``, often 0.7-0.9 on smooth maps. So
:func:`alignment_score` also returns, per sample, ``floor`` and
``skill = (score - floor) / (1 - floor)``: 0 for an attribution carrying
no information (constant), 1 for one proportional to ``|fake - real|``
(then ``B = A``), negative below the constant. ``skill`` is NaN where it is
undefined: when ``1 - floor <= 1e-9`` (no attribution can beat a constant,
e.g. every pixel in one bin) or when the pair does not differ at all
(``A = 0``).

RGB model: its attributions are (3, R, R) on the image; the toolkit uses the
sum over channels of ``|attr|`` as the per-pixel weight (resized bilinearly to
the map side when ``R != S``), where the paper's code kept channel 0 only. A
cache imported from the paper's files holds only that channel
(``attr_rgb_c0``), which is then used as it is.

Inference (:func:`alignment_from_cache`): means with cluster-bootstrap
intervals (whole videos resampled when the cache has a ``video`` field), a
one-sided test that the skill is above 0 (sign flips per video or per
sample, and Wilcoxon), a paired comparison of the two models on the same
fakes (:mod:`analysis.comparison`), and the shuffled-attribution null of
:func:`permutation_null`, which asks another question: are attributions
specific to their sample (an attribution from another sample, of another
video, scores lower)?
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage

from analysis._validation import check_positive_int
from analysis.config import AnalysisConfig, resolve_config
from analysis.pairing import NO_PAIRS
from analysis.stats import (
    bootstrap_mean_ci,
    cluster_codes,
    cluster_labels,
    permutation_pvalue,
    sign_flip_test,
    wilcoxon_signed_rank,
)

__all__ = [
    "AlignmentScores",
    "AlignmentAnalysis",
    "MODEL_FIELDS",
    "alignment_floor",
    "alignment_histograms",
    "alignment_score",
    "attribution_weights",
    "bootstrap_mean_ci",
    "cross_scores",
    "permutation_null",
    "permutation_pvalue",
    "alignment_from_cache",
    "plot_alignment_histograms",
    "plot_alignment_skill",
    "plot_permutation_null",
    "unavailable_reason",
]

#: Below this ``1 - floor`` the skill score is undefined (NaN).
SKILL_EPS = 1e-9


@dataclass(frozen=True)
class AlignmentScores:
    """Per-sample alignment score, KL divergence, no-information floor and skill.

    Attributes
    ----------
    score : ndarray of shape (N,) or float
        Histogram intersection ``sum(min(A, B))`` in [0, 1] (the paper's score).
    kl : ndarray of shape (N,) or float
        ``KL(B || A)`` in nats.
    floor : ndarray of shape (N,) or float
        Score of a constant attribution on the same pair and bins, ``sum(min(A, C))``.
    skill : ndarray of shape (N,) or float
        ``(score - floor) / (1 - floor)``: 0 no information, 1 ``B = A``; NaN
        when ``1 - floor <= 1e-9`` or the pair does not differ.
    """

    score: np.ndarray
    kl: np.ndarray
    floor: np.ndarray
    skill: np.ndarray


def _bin_index(values: np.ndarray, bins: int) -> np.ndarray:
    """Bin of each value as ``np.histogram(values, bins, range=(0, 1))`` assigns it; -1 outside."""
    with np.errstate(invalid="ignore"):
        scaled = values * bins
        idx = scaled.astype(np.int64)  # truncation: floor for the values >= 0 that matter
    np.clip(idx, 0, bins - 1, out=idx)
    # numpy corrects its fast path against the float64 edges; only values within
    # rounding error of an edge can move, so correct just those
    with np.errstate(invalid="ignore"):
        near = np.abs(scaled - np.rint(scaled)) < 1e-6
    if near.any():
        edges = np.linspace(0.0, 1.0, bins + 1)
        v = values[near]
        j = idx[near]
        j = j - (v < edges[j])
        j = j + ((v >= edges[np.minimum(j + 1, bins)]) & (j != bins - 1))
        idx[near] = j
    outside = ~((values >= 0.0) & (values <= 1.0))  # also NaN
    if outside.any():
        idx[outside] = -1
    return idx


def _resize(maps: np.ndarray, side: int) -> np.ndarray:
    """Bilinear resize of (N, H, W) to (N, side, side) (only used when sizes differ)."""
    n, h, w = maps.shape
    return ndimage.zoom(maps, (1, side / h, side / w), order=1, mode="nearest", grid_mode=True)


def attribution_weights(attribution, shape: tuple[int, ...]) -> np.ndarray:
    """Per-pixel attribution weight ``|attr|``, summed over channels when there are channels.

    Parameters
    ----------
    attribution : ndarray of shape (N, H, W), (N, C, R, R), (H, W) or (C, R, R)
        Attributions; one more axis than the maps means a channel axis.
    shape : tuple of int
        Shape of the maps, (N, H, W) or (H, W).

    Returns
    -------
    ndarray of float64, same shape as the maps
    """
    a = np.abs(np.asarray(attribution, dtype=np.float64))
    if a.ndim == len(shape) + 1:
        a = a.sum(axis=-3)
    if a.ndim != len(shape):
        raise ValueError(
            f"attribution must have shape {shape} or one channel axis more, "
            f"got {np.shape(attribution)}"
        )
    if a.shape[-2:] != tuple(shape[-2:]):
        if a.shape[-1] != a.shape[-2] or shape[-1] != shape[-2]:
            raise ValueError(f"cannot match attribution {a.shape} to maps {shape}")
        a = _resize(a.reshape(-1, *a.shape[-2:]), shape[-1]).reshape(shape)
    if a.shape != tuple(shape):
        raise ValueError(f"attribution shape {np.shape(attribution)} does not match maps {shape}")
    return a


def _pair_maps(fake_map, real_map) -> tuple[np.ndarray, np.ndarray]:
    fake = np.asarray(fake_map, dtype=np.float64)
    real = np.asarray(real_map, dtype=np.float64)
    if fake.shape != real.shape:
        raise ValueError(
            f"fake_map and real_map must have the same shape, got {fake.shape} and {real.shape}"
        )
    if fake.ndim not in (2, 3):
        raise ValueError(f"maps must have shape (N, H, W) or (H, W), got {fake.shape}")
    return fake, real


def alignment_histograms(fake_map, real_map, attribution, bins: int = AnalysisConfig.bins):
    """Return the normalised histograms ``A`` (of ``|fake - real|``) and ``B`` (of ``|attr|``).

    The two histograms :func:`alignment_score` compares, for plotting or inspection.

    Parameters
    ----------
    fake_map, real_map : ndarray of shape (N, H, W) or (H, W)
    attribution : ndarray of shape (N, H, W) or (N, C, R, R) (or one sample)
    bins : int

    Returns
    -------
    a, b : ndarray of shape (N, bins), or (bins,) for one (H, W) pair
        Each divided by (its sum + 1e-8).
    """
    bins = check_positive_int(bins, "bins")
    fake, real = _pair_maps(fake_map, real_map)
    weights = attribution_weights(attribution, fake.shape)
    single = fake.ndim == 2
    if single:
        fake, real, weights = fake[None], real[None], weights[None]
    flat = _flat_bins(fake, bins)
    a = _normalised_hist(flat, np.abs(fake - real), bins)
    b = _normalised_hist(flat, weights, bins)
    return (a[0], b[0]) if single else (a, b)


def alignment_score(
    fake_map, real_map, attribution, bins: int = AnalysisConfig.bins
) -> AlignmentScores:
    """Compute the paper's alignment score and KL divergence, with the floor and skill, per sample.

    Parameters
    ----------
    fake_map, real_map : ndarray of shape (N, H, W) or (H, W)
        Paired normalised defocus maps (values in [0, 1]; others fall in no bin).
    attribution : ndarray of shape (N, H, W) or (N, C, R, R)
        Attributions of the fake sample (defocus model: on its map; RGB model:
        on the image, ``|attr|`` summed over channels).
    bins : int
        Number of equal bins on [0, 1].

    Returns
    -------
    AlignmentScores
        ``.score``, ``.kl``, ``.floor``, ``.skill``: arrays of shape (N,)
        (floats for one (H, W) pair).
    """
    bins = check_positive_int(bins, "bins")
    fake, real = _pair_maps(fake_map, real_map)
    single = fake.ndim == 2
    weights = attribution_weights(attribution, fake.shape)
    if single:
        fake, real, weights = fake[None], real[None], weights[None]
    flat = _flat_bins(fake, bins)
    a = _normalised_hist(flat, np.abs(fake - real), bins)
    res = _scores(a, _normalised_hist(flat, weights, bins), _count_hist(flat, bins))
    if single:
        return AlignmentScores(*(float(v[0]) for v in (res.score, res.kl, res.floor, res.skill)))
    return res


def alignment_floor(fake_map, real_map, bins: int = AnalysisConfig.bins):
    """Score of a constant attribution on each pair, ``sum(min(A, counts / N))``.

    Returns
    -------
    ndarray of float64, shape (N,) (float for one (H, W) pair)
    """
    fake, _ = _pair_maps(fake_map, real_map)
    return alignment_score(fake_map, real_map, np.ones(fake.shape), bins).floor


def _flat_bins(fake: np.ndarray, bins: int) -> np.ndarray:
    """Flat histogram slot ``row * bins + bin`` of every pixel, -1 outside [0, 1]; (N, P) int64."""
    n = fake.shape[0]
    idx = _bin_index(fake.reshape(n, -1), bins)
    outside = idx < 0 if idx.min(initial=0) < 0 else None
    idx += (np.arange(n) * bins)[:, None]
    if outside is not None:
        idx[outside] = -1
    return idx


def _normalised_hist(flat: np.ndarray, weights: np.ndarray, bins: int) -> np.ndarray:
    n = flat.shape[0]
    w = weights.reshape(n, -1)
    if flat.min(initial=0) >= 0:  # the usual case: every value lies in [0, 1]
        h = np.bincount(flat.ravel(), weights=w.ravel(), minlength=n * bins)
    else:
        keep = flat >= 0
        h = np.bincount(flat[keep], weights=w[keep], minlength=n * bins)
    h = h.reshape(n, bins)
    return h / (h.sum(axis=1, keepdims=True) + 1e-8)


def _count_hist(flat: np.ndarray, bins: int) -> np.ndarray:
    """Normalised pixel-count histogram ``C`` (a constant attribution's ``B``), (N, bins)."""
    n = flat.shape[0]
    keep = flat[flat >= 0] if flat.min(initial=0) < 0 else flat.ravel()
    h = np.bincount(keep, minlength=n * bins).astype(np.float64).reshape(n, bins)
    return h / (h.sum(axis=1, keepdims=True) + 1e-8)


def _skill(score: np.ndarray, floor: np.ndarray, a: np.ndarray) -> np.ndarray:
    room = 1.0 - floor
    ok = (room > SKILL_EPS) & (a.sum(axis=1) > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, (score - floor) / np.where(ok, room, 1.0), np.nan)


def _scores(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> AlignmentScores:
    from scipy import stats  # lazily: scipy.stats probes sys.modules["torch"] on import

    score = np.minimum(a, b).sum(axis=1)
    floor = np.minimum(a, c).sum(axis=1)
    kl = stats.entropy(b + 1e-8, a + 1e-8, axis=1)
    return AlignmentScores(score, kl, floor, _skill(score, floor, a))


# --------------------------------------------------------------------------- shuffled null


def cross_scores(fake_maps, real_maps, attributions, bins: int = AnalysisConfig.bins) -> np.ndarray:
    """Score of every pair ``i`` against every sample's attribution ``j``.

    Parameters
    ----------
    fake_maps, real_maps : ndarray of shape (N, H, W)
    attributions : ndarray of shape (N, H, W) or (N, C, R, R)
    bins : int

    Returns
    -------
    ndarray of float64, shape (N, N)
        ``out[i, j] = alignment_score(fake[i], real[i], attributions[j]).score``;
        the diagonal holds the observed scores.
    """
    bins = check_positive_int(bins, "bins")
    fake = np.asarray(fake_maps)
    real = np.asarray(real_maps)
    if fake.ndim != 3 or fake.shape != real.shape:
        raise ValueError(
            f"maps must have the same shape (N, H, W), got {fake.shape} and {real.shape}"
        )
    n = fake.shape[0]
    attributions = np.asarray(attributions)
    if attributions.shape[0] != n:
        raise ValueError(f"attributions hold {attributions.shape[0]} samples, the maps {n}")
    # |attr| of every sample once (float64: the diagonal equals the observed scores)
    weights = np.empty((n, fake.shape[1] * fake.shape[2]), np.float64)
    for start in range(0, n, 32):
        sl = slice(start, min(n, start + 32))
        weights[sl] = attribution_weights(attributions[sl], fake[sl].shape).reshape(
            sl.stop - sl.start, -1
        )
    from scipy import sparse

    out = np.empty((n, n))
    pixels = weights.shape[1]
    step = 8  # pairs histogrammed at once
    for i0 in range(0, n, step):
        i1 = min(n, i0 + step)
        f = fake[i0:i1].astype(np.float64)
        flat = _flat_bins(f, bins)  # (m, P) slot row * bins + bin, -1 outside [0, 1]
        a = _normalised_hist(flat, np.abs(f - real[i0:i1].astype(np.float64)), bins)
        # sparse one-hot (P, m * bins): column (r, b) marks the pixels of pair r in bin b,
        # so weights @ onehot histograms every attribution j over every pair's bins
        rows = np.tile(np.arange(pixels), i1 - i0)
        cols = flat.ravel()
        keep = cols >= 0
        onehot = sparse.csr_matrix(
            (np.ones(int(keep.sum())), (rows[keep], cols[keep])), shape=(pixels, (i1 - i0) * bins)
        )
        h = np.asarray((onehot.T @ weights.T).T).reshape(n, i1 - i0, bins)  # (j, pair, bin)
        b = h / (h.sum(axis=2, keepdims=True) + 1e-8)
        out[i0:i1] = np.minimum(a[None], b).sum(axis=2).T
    return out


def _cluster_partners(rng: np.random.Generator, codes: np.ndarray, k: int) -> np.ndarray:
    """Partner of every sample: same position in a cluster given by a cluster derangement.

    Clusters are deranged (no cluster keeps its own); sample ``p``-th of
    cluster ``c`` takes the attribution of sample ``p mod size`` of the
    cluster ``c`` is sent to. No sample is scored against its own cluster.
    """
    sigma = _derangement(rng, k)
    members = [np.flatnonzero(codes == c) for c in range(k)]
    partner = np.empty(codes.size, np.int64)
    for c in range(k):
        target = members[sigma[c]]
        partner[members[c]] = target[np.arange(members[c].size) % target.size]
    return partner


def permutation_null(
    fake_maps,
    real_maps,
    attributions,
    bins: int = AnalysisConfig.bins,
    n_permutations: int = AnalysisConfig.n_permutations,
    seed: int = AnalysisConfig.seed,
    chunk: int = 32,
    clusters=None,
) -> np.ndarray:
    """Mean alignment score when attribution maps are shuffled across samples (or videos).

    Each permutation is a uniformly random derangement (no sample keeps its
    own attribution): every fake is scored against another sample's
    attribution, which keeps the attribution's overall shape and spread but
    breaks its link to this sample's real/fake difference. With ``clusters``
    (videos), whole clusters are deranged instead, so that no frame is scored
    with an attribution of a near-duplicate frame of its own video. The null
    tests whether attributions are specific to their sample, NOT whether
    they beat no information (that is the skill score's test). The observed
    mean score reads against this distribution (see :func:`permutation_pvalue`).

    The ``N x N`` matrix of :func:`cross_scores` is computed once, so the
    number of permutations costs almost nothing.

    Parameters
    ----------
    fake_maps, real_maps : ndarray of shape (N, H, W)
    attributions : ndarray of shape (N, H, W) or (N, C, R, R)
    bins : int
    n_permutations : int
    seed : int
    chunk : int
        Unused; kept for compatibility.
    clusters : array-like of shape (N,), optional
        Cluster label per sample (e.g. video); needs at least 2 clusters.

    Returns
    -------
    ndarray of float64, shape (n_permutations,)
        Mean score over the N samples under each permutation.
    """
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    fake = np.asarray(fake_maps)
    n = fake.shape[0] if fake.ndim == 3 else 0
    if fake.ndim == 3 and n < 2:
        raise ValueError(f"a permutation null needs at least 2 samples, got {n}")
    codes, k = cluster_codes(clusters, n) if fake.ndim == 3 else (None, 0)
    if clusters is not None and k < 2:
        raise ValueError(f"a permutation null over clusters needs at least 2 clusters, got {k}")
    cross = cross_scores(fake_maps, real_maps, attributions, bins)
    rng = np.random.default_rng(seed)
    out = np.empty(n_permutations)
    rows = np.arange(n)
    for p in range(n_permutations):
        perm = _derangement(rng, n) if clusters is None else _cluster_partners(rng, codes, k)
        out[p] = cross[rows, perm].mean()
    return out


def _derangement(rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw a uniformly random permutation of ``n`` with no fixed point (by rejection)."""
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


# --------------------------------------------------------------------------- over a cache

#: Attribution fields of each model in a cache, in order of preference. A cache
#: imported from the paper's files holds only channel 0 of the RGB attributions.
MODEL_FIELDS = {"defocus": ("attr_defocus",), "rgb": ("attr_rgb", "attr_rgb_c0")}

#: What each number of :attr:`AlignmentAnalysis.summary` means (for captions and tables).
MEANINGS = {
    "mean": "mean alignment score (the paper's histogram intersection; 1 = attribution mass "
    "exactly where real and fake differ)",
    "floor_mean": "mean score of a constant attribution on the same pairs (no information)",
    "skill_mean": "mean skill (score - floor) / (1 - floor): 0 = no better than a constant "
    "attribution, 1 = attribution proportional to |fake - real|",
    "skill_p_signflip": "one-sided sign-flip permutation p-value of skill > 0",
    "skill_p_wilcoxon": "one-sided Wilcoxon signed-rank p-value of skill > 0",
    "p_value": "shuffled-attribution null: are attributions specific to their sample "
    "(not: do they beat no information)",
}

_PER_SAMPLE = ["group", "id", "video", "model", "score", "kl", "floor", "skill"]


@dataclass
class AlignmentAnalysis:
    """Alignment results over a cache.

    Attributes
    ----------
    per_sample : pandas.DataFrame
        ``group, id, video, model, score, kl, floor, skill`` for every paired
        fake and model (``video`` is "" when the cache has none).
    summary : pandas.DataFrame
        Per group and model, at the inference unit ``level`` ("video" or
        "frame"): ``n, n_clusters`` (frames and resampled units), the raw
        score's ``mean, std, ci_low, ci_high``; ``floor_mean``; the skill's
        ``skill_n, skill_mean, skill_std, skill_ci_low, skill_ci_high`` and
        the one-sided tests of skill > 0 ``skill_p_signflip,
        skill_p_wilcoxon`` with ``n_permutations, p_min``; ``kl_mean,
        kl_std``; the shuffled-attribution null ``null_n`` (pairs used),
        ``null_level``, ``observed_null_subset`` (their mean score),
        ``null_mean, null_std``, its one-sided ``p_value`` with
        ``null_n_permutations, null_p_min``; ``n_boot, confidence``.
    null : dict of (str, str) to ndarray
        Per (group, model), the null mean score of every permutation.
    bins : int
    unavailable : dict of str to str
        Models (or parts) that could not be computed, with the reason.
    frame_summary : pandas.DataFrame
        The same as ``summary`` without the null columns, every frame taken
        as independent ("frame-level"); equal to ``summary`` when ``level``
        is "frame".
    comparison : pandas.DataFrame
        Paired comparison of the two models on the same fakes, per group and
        metric (``skill``, ``score``), see :func:`analysis.comparison.compare_models`.
    differences : pandas.DataFrame
        The per-sample paired values behind ``comparison``.
    level : str
        "video" (whole videos resampled and tested) or "frame".
    sources : dict of str to str
        Cache field each model's attributions came from (``attr_rgb_c0``: the
        paper's channel 0 only).
    config : dict
        The :class:`analysis.config.AnalysisConfig` used, as a dict.
    """

    per_sample: pd.DataFrame
    summary: pd.DataFrame
    null: dict
    bins: int
    unavailable: dict[str, str] = field(default_factory=dict)
    frame_summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    comparison: pd.DataFrame = field(default_factory=pd.DataFrame)
    differences: pd.DataFrame = field(default_factory=pd.DataFrame)
    level: str = "frame"
    sources: dict[str, str] = field(default_factory=dict)
    config: dict = field(default_factory=dict)


def _describe(sub: pd.DataFrame, clusters, cfg: AnalysisConfig) -> dict:
    """Raw-score and skill statistics of one (group, model) at one level."""
    kw = dict(n_boot=cfg.n_boot, confidence=cfg.confidence, seed=cfg.seed, clusters=clusters)
    s = bootstrap_mean_ci(sub["score"].to_numpy(), **kw)
    skill = sub["skill"].to_numpy(dtype=np.float64)
    k = bootstrap_mean_ci(skill, **kw)
    flip = sign_flip_test(
        skill, clusters, n_permutations=cfg.n_permutations, seed=cfg.seed, alternative="greater"
    )
    wil = wilcoxon_signed_rank(skill, clusters, alternative="greater")
    nan = float("nan")
    return {
        "n": s["n"],
        "n_clusters": s["n_clusters"],
        "mean": s["mean"],
        "std": s["std"],
        "ci_low": s["ci_low"],
        "ci_high": s["ci_high"],
        "floor_mean": float(sub["floor"].mean()),
        "skill_n": k["n"],
        "skill_mean": k["mean"],
        "skill_std": k["std"],
        "skill_ci_low": k["ci_low"],
        "skill_ci_high": k["ci_high"],
        "skill_p_signflip": flip.pvalue,
        "skill_p_wilcoxon": wil["pvalue"],
        "n_permutations": flip.n_permutations,
        "p_min": flip.p_min,
        "kl_mean": float(sub["kl"].mean()),
        "kl_std": float(sub["kl"].std(ddof=1)) if len(sub) > 1 else nan,
        "n_boot": cfg.n_boot,
        "confidence": cfg.confidence,
    }


class AlignmentAccumulator:
    """Streaming accumulator behind :func:`alignment_from_cache`.

    Parameters
    ----------
    config : AnalysisConfig or dict, optional
        Uses ``bins``, ``n_permutations``, ``null_samples``, ``n_boot``,
        ``confidence``, ``unit`` and ``seed``.
    models : tuple of {"defocus", "rgb"}
    """

    real_fields = ("defocus",)

    def __init__(self, config: AnalysisConfig | None = None, models=("defocus", "rgb")):
        self.config = resolve_config(config)
        self.bins = self.config.bins
        for m in models:
            if m not in MODEL_FIELDS:
                raise ValueError(f"models must be among {list(MODEL_FIELDS)}, got {m!r}")
        self.models = tuple(models)
        self.null_samples = self.config.null_samples
        fields = [f for m in self.models for f in MODEL_FIELDS[m]]
        self.fake_fields = ("defocus", "video", *fields)
        self._rows: list[pd.DataFrame] = []
        self._buffer: dict[str, dict] = {}
        self.null: dict[tuple[str, str], np.ndarray] = {}
        self.null_observed: dict[tuple[str, str], float] = {}
        self.null_level: dict[tuple[str, str], str] = {}
        self.null_unavailable: dict[tuple[str, str], str] = {}
        self.present: set[str] = set()
        self.sources: dict[str, str] = {}
        self.has_video = False
        self.n_blocks = 0
        self.has_maps = False
        self._current: str | None = None

    @property
    def use_video(self) -> bool:
        """Whether whole videos are the unit of inference (config and cache allow it)."""
        return self.config.unit == "video" and self.has_video

    def update(self, block) -> None:
        """Add the pairs of one :class:`analysis.pairing.PairedBlock`."""
        self.n_blocks += 1
        if "defocus" not in block.fake or "defocus" not in block.real:
            return
        self.has_maps = True
        if self._current is not None and block.group != self._current:
            self._flush(self._current)
        self._current = block.group
        fake = block.fake["defocus"]
        real = block.real["defocus"]
        n = len(fake)
        video = block.fake.get("video")
        if video is not None:
            self.has_video = True
            video = np.asarray(video).astype(str)
        else:
            video = np.full(n, "")
        buf = self._buffer.setdefault(
            block.group, {"fake": [], "real": [], "id": [], "video": [], "score": {}, "w": {}}
        )
        room = max(0, self.null_samples - len(buf["fake"]))
        if room:
            buf["fake"].extend(fake[:room])
            buf["real"].extend(real[:room])
            buf["id"].extend(np.asarray(block.fake["id"][:room]).astype(str))
            buf["video"].extend(video[:room])
        f64 = fake.astype(np.float64)
        flat = _flat_bins(f64, self.bins)
        a = _normalised_hist(flat, np.abs(f64 - real.astype(np.float64)), self.bins)
        c = _count_hist(flat, self.bins)
        for m in self.models:
            f = next((name for name in MODEL_FIELDS[m] if name in block.fake), None)
            if f is None:
                continue
            self.present.add(m)
            self.sources[m] = f
            w = attribution_weights(block.fake[f], f64.shape)
            res = _scores(a, _normalised_hist(flat, w, self.bins), c)
            self._rows.append(
                pd.DataFrame(
                    {
                        "group": block.group,
                        "id": block.fake["id"],
                        "video": video,
                        "model": m,
                        "score": res.score,
                        "kl": res.kl,
                        "floor": res.floor,
                        "skill": res.skill,
                    }
                )
            )
            if room:
                buf["w"].setdefault(m, []).extend(w[:room].astype(np.float32))
                buf["score"].setdefault(m, []).extend(res.score[:room])

    def _flush(self, group: str) -> None:
        buf = self._buffer.pop(group, None)
        if buf is None or len(buf["fake"]) < 2:
            return
        fake = np.stack(buf["fake"])
        real = np.stack(buf["real"])
        clusters = None
        level = "frame"
        if self.use_video:
            clusters = cluster_labels(np.array(buf["video"]), np.array(buf["id"]))
            level = "video"
        cfg = self.config
        for m, w in buf["w"].items():
            try:
                self.null[(group, m)] = permutation_null(
                    fake, real, np.stack(w), self.bins, cfg.n_permutations, cfg.seed,
                    clusters=clusters,
                )  # fmt: skip
            except ValueError as err:  # e.g. a single video among the null's pairs
                self.null_unavailable[(group, m)] = str(err)
                continue
            self.null_observed[(group, m)] = float(np.mean(buf["score"][m]))
            self.null_level[(group, m)] = level

    def finalize(self) -> AlignmentAnalysis:
        """Return the :class:`AlignmentAnalysis` of everything seen."""
        from analysis.comparison import compare_models

        for g in list(self._buffer):
            self._flush(g)
        cfg = self.config
        per = (
            pd.concat(self._rows, ignore_index=True)
            if self._rows
            else pd.DataFrame(columns=_PER_SAMPLE)
        )
        unavailable = {}
        for m in self.models:
            if m not in self.present:
                fields = " or ".join(f"'{f}'" for f in MODEL_FIELDS[m])
                if self.n_blocks == 0:
                    unavailable[m] = NO_PAIRS
                elif not self.has_maps:
                    unavailable[m] = "the cache has no 'defocus' field"
                else:
                    unavailable[m] = f"the cache has no {fields} field"
        if self.n_blocks == 0:
            unavailable["alignment"] = NO_PAIRS
        level = "video" if self.use_video and (per["video"] != "").any() else "frame"
        rows, frame_rows = [], []
        nan = float("nan")
        for (g, m), sub in per.groupby(["group", "model"], sort=False):
            frame = _describe(sub, None, cfg)
            clusters = cluster_labels(sub["video"], sub["id"]) if level == "video" else None
            main = _describe(sub, clusters, cfg) if clusters is not None else dict(frame)
            frame_rows.append({"group": g, "model": m, "level": "frame", **frame})
            row = {"group": g, "model": m, "level": level, **main}
            null = self.null.get((g, m))
            if null is not None:
                row.update(
                    null_n=int(min(len(sub), self.null_samples)),
                    null_level=self.null_level[(g, m)],
                    observed_null_subset=self.null_observed[(g, m)],
                    null_mean=float(null.mean()),
                    null_std=float(null.std(ddof=1)) if null.size > 1 else nan,
                    p_value=permutation_pvalue(self.null_observed[(g, m)], null),
                    null_n_permutations=int(null.size),
                    null_p_min=1.0 / (null.size + 1),
                )
            else:
                if (g, m) in self.null_unavailable:
                    unavailable[f"null {g}/{m}"] = self.null_unavailable[(g, m)]
                row.update(
                    null_n=0, null_level="", observed_null_subset=nan, null_mean=nan,
                    null_std=nan, p_value=nan, null_n_permutations=0, null_p_min=nan,
                )  # fmt: skip
            rows.append(row)
        comparison, differences = pd.DataFrame(), pd.DataFrame()
        if {"defocus", "rgb"} <= self.present:
            comparison, differences = compare_models(per, "defocus", "rgb", config=cfg, level=level)
        return AlignmentAnalysis(
            per,
            pd.DataFrame(rows),
            dict(self.null),
            self.bins,
            unavailable,
            frame_summary=pd.DataFrame(frame_rows),
            comparison=comparison,
            differences=differences,
            level=level,
            sources=dict(self.sources),
            config=cfg.to_dict(),
        )


def alignment_from_cache(
    cache,
    bins: int | None = None,
    models: tuple[str, ...] = ("defocus", "rgb"),
    groups=None,
    by_position: bool = False,
    n_permutations: int | None = None,
    null_samples: int | None = None,
    n_boot: int | None = None,
    seed: int | None = None,
    progress: bool = False,
    *,
    config: AnalysisConfig | None = None,
) -> AlignmentAnalysis:
    """Alignment score, floor, skill and KL per paired fake and model, with inference.

    Parameters
    ----------
    cache : cache reader
        From :func:`cache.open_cache`.
    bins : int, optional
        Histogram bins on [0, 1] (default: ``config.bins``).
    models : tuple of {"defocus", "rgb"}
        Models to score (their attribution field: ``attr_defocus``;
        ``attr_rgb``, or ``attr_rgb_c0`` in a cache imported from the paper's
        files; a missing field marks the model unavailable).
    groups : sequence of str, optional
        Fake groups (default: all groups holding fakes).
    by_position : bool
        Pair by position instead of pair id (warns).
    n_permutations : int, optional
        Permutations of every test (default: ``config.n_permutations``).
    null_samples : int, optional
        The shuffled null uses the first ``null_samples`` pairs of each
        group (0: no null); its p-value compares with the observed mean over
        the same samples.
    n_boot : int, optional
        Bootstrap resamples of the intervals.
    seed : int, optional
    progress : bool
    config : AnalysisConfig, optional
        Every setting at once; the keyword arguments above override it.

    Returns
    -------
    AlignmentAnalysis
    """
    from analysis.pairing import run_paired

    cfg = resolve_config(
        config, bins=bins, n_permutations=n_permutations, null_samples=null_samples,
        n_boot=n_boot, seed=seed,
    )  # fmt: skip
    acc = AlignmentAccumulator(cfg, models)
    run_paired(cache, [acc], groups=groups, by_position=by_position, progress=progress)
    return acc.finalize()


# --------------------------------------------------------------------------- figures


def unavailable_reason(analysis: AlignmentAnalysis) -> str:
    """Why (part of) an alignment analysis is missing, in one sentence without repeats.

    A cache without pairs gives the same reason for every model; it is said
    once (``"no fake has a real partner ..."``), before any missing field.
    """
    reasons = list(dict.fromkeys(analysis.unavailable.values()))
    if "alignment" in analysis.unavailable:
        return analysis.unavailable["alignment"]
    return "; ".join(
        f"{k}: {v}" for k, v in analysis.unavailable.items() if not k.startswith("null ")
    ) or ("; ".join(reasons) if reasons else "")


def _level_of(analysis: AlignmentAnalysis) -> tuple[str, int | None]:
    """Return the summary's unit of inference and the number of videos behind it (largest cell)."""
    level = getattr(analysis, "level", "frame")
    n_units = None
    if level == "video" and "n_clusters" in analysis.summary.columns and len(analysis.summary):
        n_units = int(analysis.summary["n_clusters"].max())
    return level, n_units


def _panel_grid(fig, groups: list, models: list, width: str, sharex):
    """Axes ``{(group, model): ax}``: groups in rows at single width, in columns at double."""
    if width == "single":
        axes = fig.subplots(len(groups), len(models), squeeze=False, sharey=True,
                            sharex=sharex and ("row" if sharex == "group" else "all"))  # fmt: skip
        out = {(g, m): axes[i, j] for i, g in enumerate(groups) for j, m in enumerate(models)}
    else:
        axes = fig.subplots(len(models), len(groups), squeeze=False, sharey=True,
                            sharex=sharex and ("col" if sharex == "group" else "all"))  # fmt: skip
        out = {(g, m): axes[j, i] for i, g in enumerate(groups) for j, m in enumerate(models)}
    for key, ax in out.items():
        ax.panel_key = key  # (group, model): lets callers and tests find a panel
    return out


def _facet_titles(axes: dict, width: str, names: dict, stats: dict, ylabel: str) -> None:
    """Label a panel grid: column header on the top row, row header in the first column's y label.

    ``names`` maps a (group, model) key to (group label, model label); ``stats``
    holds each panel's one-line statistics, its title.
    """
    import textwrap

    for (g, m), ax in axes.items():
        spec = ax.get_subplotspec()
        group, model = names[(g, m)]
        col, row = (model, group) if width == "single" else (group, model)
        title = stats.get((g, m), "")
        if spec.is_first_row():
            title = f"{col}\n{title}" if title else col
        ax.set_title(title, fontsize=6.5)
        if spec.is_first_col():
            ax.set_ylabel(textwrap.fill(row, 22) + "\n" + ylabel, fontsize=7)


def _grid_height(width: str, groups: int, models: int, panel: float = 1.05) -> float:
    rows = groups if width == "single" else models
    return rows * (panel + 0.42) + 0.55


def plot_alignment_histograms(
    analysis: AlignmentAnalysis,
    bins: int = 20,
    *,
    width="double",
    model_names: dict | None = None,
    value: str = "score",
):
    """Histogram of per-sample alignment scores, one panel per fake group and model.

    Panels never overlap one another's bars: one histogram per panel, all on
    the same x and y scales, integer counts. Reference lines: the mean
    (solid), the mean score of a constant attribution on the same pairs
    (dashed, "no-information floor", when the analysis has a ``floor``
    column) and the mean of the shuffled-attribution null (dotted, when
    computed). Each title gives n, the mean and its 95 % bootstrap CI.

    Parameters
    ----------
    analysis : AlignmentAnalysis
    bins : int
        Histogram bins on [0, 1] (on the data's range for ``value="skill"``).
    width : {"single", "double"}
        Paper width: groups in rows (single) or in columns (double).
    model_names : dict of str to str, optional
        Display names of the models (``"defocus"``, ``"rgb"``).
    value : {"score", "skill"}
        The raw alignment score, or the skill ``(score - floor) / (1 - floor)``
        when the analysis has it.

    Returns
    -------
    matplotlib.figure.Figure
        Its caption (:func:`analysis.style.caption_of`) says what is drawn.
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from analysis.style import (
        column_width,
        figure,
        group_colors,
        level_text,
        model_name,
        publication_style,
        set_caption,
        unavailable_figure,
    )

    column_width(width)
    bins = check_positive_int(bins, "bins")
    if value not in ("score", "skill"):
        raise ValueError(f"value must be 'score' or 'skill', got {value!r}")
    per = analysis.per_sample
    if value not in per.columns:
        return unavailable_figure(
            f"the alignment analysis has no {value!r} column", "alignment " + value, width
        )
    per = per[np.isfinite(per[value].to_numpy(dtype=np.float64))]
    if per.empty:
        return unavailable_figure(
            unavailable_reason(analysis) or NO_PAIRS, "alignment " + value, width
        )
    models = [m for m in MODEL_FIELDS if m in set(per["model"])]
    groups = list(dict.fromkeys(per["group"]))
    colors = group_colors(["real", *groups])
    has_floor = "floor" in per.columns and value == "score"
    if value == "score":
        edges = np.linspace(0.0, 1.0, bins + 1)
    else:
        lo = min(-0.1, float(per[value].min()))
        hi = max(1.0, float(per[value].max()))
        edges = np.linspace(lo, hi, bins + 1)
    with publication_style():
        fig = figure(width, _grid_height(width, len(groups), len(models)))
        axes = _panel_grid(fig, groups, models, width, sharex="all")
        stats = {}
        lo_key, hi_key = (
            ("ci_low", "ci_high") if value == "score" else ("skill_ci_low", "skill_ci_high")
        )
        summ = analysis.summary.set_index(["group", "model"]) if len(analysis.summary) else None
        for (g, m), ax in axes.items():
            sub = per[(per["group"] == g) & (per["model"] == m)][value].to_numpy(np.float64)
            if sub.size == 0:
                stats[(g, m)] = "no pairs"
                continue
            ax.hist(sub, bins=edges, color=colors[g], edgecolor="white", linewidth=0.4)
            ax.axvline(sub.mean(), color="black", lw=1.0)
            if has_floor:
                floor = per[(per["group"] == g) & (per["model"] == m)]["floor"].mean()
                ax.axvline(floor, color="#555555", lw=1.0, ls=(0, (3, 1.5)))
            null = analysis.null.get((g, m))
            if null is not None and value == "score":
                ax.axvline(float(np.mean(null)), color="#555555", lw=1.0, ls=(0, (1, 1)))
            if value == "skill":
                ax.axvline(0.0, color="#555555", lw=1.0, ls=(0, (3, 1.5)))
            text = f"n={sub.size}, mean {sub.mean():.2f}"
            row = summ.loc[(g, m)] if summ is not None and (g, m) in summ.index else None
            if row is not None and np.isfinite(row.get(lo_key, np.nan)):
                text += f" [{row[lo_key]:.2f}, {row[hi_key]:.2f}]"
            stats[(g, m)] = text
            ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4 if width == "single" else 3))
        label = "alignment score" if value == "score" else "skill (score − floor) / (1 − floor)"
        names = {k: (k[0], model_name(k[1], model_names)) for k in axes}
        _facet_titles(axes, width, names, stats, "fakes")
        for ax in axes.values():
            if ax.get_subplotspec().is_last_row():
                ax.set_xlabel(label)
        ax0 = next(iter(axes.values()))
        ax0.set_xlim(edges[0], edges[-1])
        handles = [Line2D([], [], color="black", lw=1.0, label="mean")]
        if has_floor:
            handles.append(Line2D([], [], color="#555555", lw=1.0, ls=(0, (3, 1.5)),
                                  label="no-information floor (constant attribution)"))  # fmt: skip
        if value == "skill":
            handles.append(Line2D([], [], color="#555555", lw=1.0, ls=(0, (3, 1.5)),
                                  label="0 = no better than a constant attribution"))  # fmt: skip
        if analysis.null and value == "score":
            handles.append(Line2D([], [], color="#555555", lw=1.0, ls=(0, (1, 1)),
                                  label="mean under shuffled attributions"))  # fmt: skip
        fig.legend(handles=handles, loc="outside lower center",
                   ncols=1 if width == "single" else len(handles))  # fmt: skip
    n_boot = None
    if summ is not None and "n_boot" in analysis.summary.columns:
        n_boot = int(analysis.summary["n_boot"].iloc[0])
    confidence = 0.95
    if summ is not None and "confidence" in analysis.summary.columns:
        confidence = float(analysis.summary["confidence"].iloc[0])
    level, n_units = _level_of(analysis)
    if value == "score":
        what = (
            "the paper's Shapley alignment score: the overlap (histogram intersection, 0 to 1) "
            f"of the {bins}-bin histogram over the fake map's defocus levels weighted by "
            "|fake − real| with the one weighted by the model's |attribution|; 1 = the "
            "attribution mass sits exactly at the defocus levels where the maps differ"
        )
    else:
        what = (
            "the alignment skill (score − floor) / (1 − floor): 0 = no better than a constant "
            "attribution, 1 = attribution proportional to |fake − real|"
        )
    caption = (
        f"Per fake sample paired with its real source, {what}; one panel per manipulation "
        f"and model ({', '.join(model_name(m, model_names) for m in models)}), all on the same "
        "axes. Titles: n fakes, the mean"
        + (
            f" and its {100 * confidence:g} % bootstrap confidence interval"
            f"{f' ({n_boot} resamples)' if n_boot else ''} in brackets, "
            + level_text(level, n_units)
            if summ is not None
            else ""
        )
        + ". Solid line: the mean."
    )
    if value == "skill":
        caption += " Dashed: 0, what a constant attribution scores."
    if has_floor:
        caption += (
            " Dashed: the mean score of a constant attribution on the same pairs (what an "
            "attribution carrying no information gets)."
        )
    if analysis.null and value == "score":
        caption += (
            " Dotted: the mean score when each fake is scored with another sample's "
            "attribution (shuffled-attribution null)."
        )
    set_caption(fig, caption)
    return fig


def _p_text(p: float, p_min: float | None = None) -> str:
    """``p = 0.03`` (or ``p ≤ 0.001`` at the resolution limit), two significant digits."""
    if not np.isfinite(p):
        return "p n/a"
    if p_min is not None and np.isfinite(p_min) and p <= p_min * (1 + 1e-9):
        return f"p ≤ {p_min:.2g}"
    return f"p = {p:.2g}"


def plot_alignment_skill(
    analysis: AlignmentAnalysis, *, width="double", model_names: dict | None = None
):
    """Draw the raw score beside its no-information floor, and the skill, per group and model.

    Left (top at single width): each model's mean raw alignment score with
    its confidence interval, and the mean score of a constant attribution on
    the same pairs (the floor, a grey bar). Right (bottom): each model's mean
    skill ``(score - floor) / (1 - floor)`` with its interval, a line at 0
    (no better than a constant attribution) and the one-sided sign-flip
    p-value of skill > 0 with its resolution. Intervals and tests at the
    analysis's unit of inference (videos when the cache has them).

    Parameters
    ----------
    analysis : AlignmentAnalysis
    width : {"single", "double"}
    model_names : dict of str to str, optional
        Display names of the models (``"defocus"``, ``"rgb"``).

    Returns
    -------
    matplotlib.figure.Figure
        Its caption (:func:`analysis.style.caption_of`) says what is drawn.
    """
    from matplotlib.lines import Line2D

    from analysis.style import (
        MODEL_COLORS,
        MODEL_MARKERS,
        column_width,
        figure,
        level_text,
        model_name,
        publication_style,
        set_caption,
        unavailable_figure,
        wrap_label,
    )

    column_width(width)
    summ = analysis.summary
    if summ.empty or "skill_mean" not in summ.columns:
        reason = unavailable_reason(analysis) or NO_PAIRS
        return unavailable_figure(reason, "alignment skill", width)
    groups = list(dict.fromkeys(summ["group"]))
    models = [m for m in MODEL_FIELDS if m in set(summ["model"])]
    rows = summ.set_index(["group", "model"])
    offsets = {m: ((len(models) - 1) / 2 - j) * 0.28 for j, m in enumerate(models)}
    ys = {g: len(groups) - 1 - i for i, g in enumerate(groups)}
    panel_h = 0.32 * len(groups) + 0.45
    confidence = float(summ["confidence"].iloc[0]) if "confidence" in summ else 0.95
    n_boot = int(summ["n_boot"].iloc[0]) if "n_boot" in summ else None
    n_perm = sorted({int(v) for v in summ.get("n_permutations", []) if v == v})
    p_min = float(summ["p_min"].min()) if "p_min" in summ else None
    level, n_units = _level_of(analysis)
    with publication_style():
        if width == "single":
            fig = figure(width, 2 * panel_h + 0.75)
            ax_raw, ax_skill = fig.subplots(2, 1, squeeze=True)
        else:
            fig = figure(width, panel_h + 0.7)
            ax_raw, ax_skill = fig.subplots(1, 2, squeeze=True)
        lo_raw, hi_raw = [], []
        for g in groups:
            floor = [float(rows.loc[(g, m), "floor_mean"]) for m in models if (g, m) in rows.index]
            if floor:
                f = float(np.nanmean(floor))
                ax_raw.plot([f, f], [ys[g] - 0.38, ys[g] + 0.38], color="#999999", lw=3.0,
                            solid_capstyle="butt", zorder=1)  # fmt: skip
                lo_raw.append(f)
                hi_raw.append(f)
        for m in models:
            for g in groups:
                if (g, m) not in rows.index:
                    continue
                r = rows.loc[(g, m)]
                y = ys[g] + offsets[m]
                style = dict(color=MODEL_COLORS.get(m, "black"), marker=MODEL_MARKERS.get(m, "o"),
                             ms=3.5, lw=0.9, capsize=1.5, capthick=0.8, zorder=3)  # fmt: skip
                for ax, mean_k, lo_k, hi_k, lo_l, hi_l in (
                    (ax_raw, "mean", "ci_low", "ci_high", lo_raw, hi_raw),
                    (ax_skill, "skill_mean", "skill_ci_low", "skill_ci_high", None, None),
                ):
                    mean, lo, hi = (float(r[k]) for k in (mean_k, lo_k, hi_k))
                    if not np.isfinite(mean):
                        continue
                    xerr = None
                    if np.isfinite(lo) and np.isfinite(hi):
                        xerr = [[mean - lo], [hi - mean]]
                    ax.errorbar(mean, y, xerr=xerr, **style)
                    if lo_l is not None:
                        lo_l.append(lo if np.isfinite(lo) else mean)
                        hi_l.append(hi if np.isfinite(hi) else mean)
                p = float(r.get("skill_p_signflip", np.nan))
                ax_skill.annotate(
                    _p_text(p, float(r.get("p_min", np.nan))), (1.0, y),
                    xycoords=("axes fraction", "data"), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=5.5,
                    color=MODEL_COLORS.get(m, "black"),
                )  # fmt: skip
        if lo_raw:
            span = max(hi_raw) - min(lo_raw)
            pad = 0.08 * (span or 0.1)
            ax_raw.set_xlim(max(0.0, min(lo_raw) - pad), min(1.0, max(hi_raw) + pad))
        ax_skill.axvline(0.0, color="#555555", lw=0.8, ls=(0, (3, 1.5)), zorder=0)
        labels = [wrap_label(g, 16) for g in groups]
        for ax in (ax_raw, ax_skill):
            ax.set_yticks([ys[g] for g in groups], labels)
            ax.set_ylim(-0.6, len(groups) - 0.4)
            ax.tick_params(axis="y", length=0)
        if width == "double":
            ax_skill.set_yticklabels([])
        ax_raw.set_xlabel("raw alignment score (the paper's; 1 = perfect)")
        ax_skill.set_xlabel("skill (score − floor) / (1 − floor)")
        ax_raw.set_title("raw score and its no-information floor", fontsize=7)
        ax_skill.set_title("skill: 0 = constant attribution, 1 = ∝ |fake − real|", fontsize=7)
        handles = [
            Line2D([], [], color=MODEL_COLORS.get(m, "black"), marker=MODEL_MARKERS.get(m, "o"),
                   ms=3.5, lw=0.9, label=model_name(m, model_names))
            for m in models
        ]  # fmt: skip
        handles.append(Line2D([], [], color="#999999", lw=3.0, solid_capstyle="butt",
                              label="floor (constant attribution)"))  # fmt: skip
        fig.legend(handles=handles, loc="outside lower center",
                   ncols=2 if width == "single" else len(handles))  # fmt: skip
    ns = ", ".join(
        f"{g} {int(rows.loc[(g, models[0]), 'n'])}" for g in groups if (g, models[0]) in rows.index
    )
    set_caption(
        fig,
        "The paper's alignment score against what no information scores, per manipulation and "
        f"model ({', '.join(model_name(m, model_names) for m in models)}). Left"
        + (" (top)" if width == "single" else "")
        + ": mean raw score (histogram intersection of |fake − real| and |attribution| over "
        "defocus levels; markers) with its "
        f"{100 * confidence:g} % bootstrap CI (bars)"
        + (f" ({n_boot} resamples)" if n_boot else "")
        + "; grey bar: the floor, the mean score of a constant attribution on the same pairs. "
        "Right"
        + (" (bottom)" if width == "single" else "")
        + ": mean skill (score − floor) / (1 − floor) per fake with its CI; 0 (dashed) = no "
        "better than a constant attribution, 1 = attribution proportional to |fake − real|, "
        "below 0 = worse than constant. p: one-sided sign-flip permutation p-value of skill > "
        "0"
        + (f" ({', '.join(map(str, n_perm))} permutations" if n_perm else " (")
        + (f"; smallest reachable p {p_min:.2g})" if p_min is not None else ")")
        + f". Intervals and tests: {level_text(level, n_units)}. Fakes per manipulation: {ns}.",
    )
    return fig


def plot_permutation_null(
    analysis: AlignmentAnalysis, *, width="double", model_names: dict | None = None
):
    """Shuffled-attribution null of the mean score against the observed mean, per group and model.

    A grid (groups in rows at single width, in columns at double width); the
    two models of a group share the x scale, every panel the y scale. Each
    title gives the one-sided p-value with its resolution (the number of
    permutations, and the smallest p they can give).

    Parameters
    ----------
    analysis : AlignmentAnalysis
    width : {"single", "double"}
    model_names : dict of str to str, optional
        Display names of the models (``"defocus"``, ``"rgb"``).

    Returns
    -------
    matplotlib.figure.Figure
        Its caption (:func:`analysis.style.caption_of`) says what is drawn.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

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
    if not analysis.null:
        reason = unavailable_reason(analysis)
        return unavailable_figure(
            reason
            or "no permutation null was computed (fewer than 2 pairs per group, or null_samples=0)",
            "permutation null",
            width,
        )
    keys = list(analysis.null)
    groups = list(dict.fromkeys(g for g, _ in keys))
    models = [m for m in MODEL_FIELDS if any(k[1] == m for k in keys)]
    colors = group_colors(["real", *groups])
    summ = analysis.summary.set_index(["group", "model"])
    sizes = sorted({int(np.size(v)) for v in analysis.null.values()})
    edges = {}  # one set of bins per group: its two models share the x scale
    for g in groups:
        vals = [v for (h, _), v in analysis.null.items() if h == g]
        vals += [summ.loc[k, "observed_null_subset"] for k in analysis.null if k[0] == g]
        lo = min(float(np.min(v)) for v in vals)
        hi = max(float(np.max(v)) for v in vals)
        pad = 0.05 * (hi - lo or 1e-3)
        edges[g] = np.linspace(lo - pad, hi + pad, 21)
    with publication_style():
        fig = figure(width, _grid_height(width, len(groups), len(models)))
        axes = _panel_grid(fig, groups, models, width, sharex="group")
        stats = {}
        for (g, m), ax in axes.items():
            null = analysis.null.get((g, m))
            if null is None:
                stats[(g, m)] = "no null"
                continue
            obs = float(summ.loc[(g, m), "observed_null_subset"])
            p = float(summ.loc[(g, m), "p_value"])
            ax.hist(null, bins=edges[g], color=colors[g], edgecolor="white", linewidth=0.4)
            ax.axvline(obs, color="black", lw=1.2)
            stats[(g, m)] = f"p = {p:.2g} ({null.size} perm.; min {1 / (null.size + 1):.2g})"
            ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
            ax.xaxis.set_major_locator(MaxNLocator(nbins=3))
            ax.tick_params(axis="x", labelsize=6)
        names = {k: (k[0], model_name(k[1], model_names)) for k in axes}
        _facet_titles(axes, width, names, stats, "permutations")
        for ax in axes.values():
            if ax.get_subplotspec().is_last_row():
                ax.set_xlabel("mean alignment score")
        handles = [
            Patch(facecolor="#999999", edgecolor="white", label="null: mean score with shuffled "
                  "attributions\n(one per permutation; colour = manipulation)"),
            Line2D([], [], color="black", lw=1.2, label="observed mean score"),
        ]  # fmt: skip
        fig.legend(handles=handles, loc="outside lower center", ncols=1)
    n_used = sorted({int(v) for v in analysis.summary.get("null_n", []) if v == v and v > 0})
    null_levels = set(analysis.summary.get("null_level", [])) - {""}
    how = (
        "whole videos are deranged, so that no frame is scored with the attribution of a frame "
        "of its own video (video-level)"
        if null_levels == {"video"}
        else "every sample is its own unit (frame-level)"
    )
    set_caption(
        fig,
        "Does each fake's attribution belong to that fake? For each manipulation and model ("
        + ", ".join(model_name(m, model_names) for m in models)
        + "), the mean alignment score over "
        + (
            f"the first {n_used[0]} pairs of each manipulation"
            if len(n_used) == 1
            else f"the first {n_used[0]} to {n_used[-1]} pairs of each manipulation"
            if n_used
            else "the pairs"
        )
        + " when every fake is scored with another sample's attribution (a random "
        f"derangement; {', '.join(map(str, sizes))} permutations), against the observed mean "
        f"on the same pairs (black line); {how}. p: one-sided permutation p-value, (1 + #null "
        '≥ observed) / (1 + permutations); with n permutations no p below 1/(n + 1) ("min") '
        "can occur. This tests whether attributions are specific to their sample, not whether "
        "they beat an attribution carrying no information (the skill does).",
    )
    return fig
