"""Confidence intervals and tests that respect the structure of the data (clusters, pairs).

Frames cut from one video are near-duplicates, so they are not independent
samples. Every function here takes ``clusters=`` (one label per value, e.g.
the video id; ``None``: every value is its own cluster) and then:

- :func:`bootstrap_mean_ci` resamples whole clusters with replacement and
  pools their values (the cluster bootstrap);
- :func:`sign_flip_test` flips the sign of whole clusters (a paired or
  one-sample permutation test: under the null the differences are symmetric
  about 0, cluster by cluster);
- :func:`wilcoxon_signed_rank` ranks per-cluster means;
- :func:`paired_comparison` combines the three for paired values
  ``a - b`` (e.g. two models on the same fakes).

Every permutation p-value is ``(1 + #{null at least as extreme}) / (1 + n)``
and comes with ``n_permutations`` and ``p_min = 1 / (n + 1)``, the smallest
value it can take.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from analysis.config import AnalysisConfig

__all__ = [
    "PairedComparison",
    "PermutationTest",
    "bootstrap_mean_ci",
    "cluster_codes",
    "cluster_labels",
    "cluster_means",
    "paired_comparison",
    "permutation_pvalue",
    "sign_flip_test",
    "wilcoxon_signed_rank",
]

_ALTERNATIVES = ("two-sided", "greater", "less")
_CHUNK = 64  # resamples drawn at once (bounds the (chunk, n) index array)


def cluster_labels(videos, ids) -> np.ndarray:
    """Cluster label per sample: its video, or its own id when the video is unknown ("").

    Parameters
    ----------
    videos : array-like of str, shape (n_samples,), or None
        The cache's ``video`` field (``None``: no video field; every sample alone).
    ids : array-like of str, shape (n_samples,)
        Sample ids (unique).

    Returns
    -------
    ndarray of str, shape (n_samples,)
        ``"video:<video>"`` or ``"id:<id>"``.
    """
    ids = np.asarray(ids).astype(str)
    if videos is None:
        return np.char.add("id:", ids)
    videos = np.asarray(videos).astype(str)
    if videos.shape != ids.shape:
        raise ValueError(
            f"videos and ids must have the same shape, got {videos.shape} and {ids.shape}"
        )
    return np.where(videos != "", np.char.add("video:", videos), np.char.add("id:", ids))


def cluster_codes(clusters, n: int) -> tuple[np.ndarray, int]:
    """Integer code per value (clusters numbered in order of first appearance) and their count.

    Parameters
    ----------
    clusters : array-like of shape (n,), or None
        Cluster label per value; ``None`` puts every value in its own cluster.
    n : int
        Number of values.

    Returns
    -------
    codes : ndarray of int64, shape (n,)
    n_clusters : int
    """
    if clusters is None:
        return np.arange(n, dtype=np.int64), int(n)
    c = np.asarray(clusters)
    if c.shape != (n,):
        raise ValueError(f"clusters must have one label per value (shape ({n},)), got {c.shape}")
    _, first, inverse = np.unique(c, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # number clusters by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse.ravel()].astype(np.int64), int(order.size)


def _values(values, clusters, name: str = "values") -> tuple[np.ndarray, np.ndarray | None]:
    """Values as float64 (n,) without NaNs, and their clusters (same rows)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    c = None
    if clusters is not None:
        c = np.asarray(clusters).ravel()
        if c.shape != v.shape:
            raise ValueError(
                f"clusters must have one label per value: {name} has {v.size}, clusters {c.size}"
            )
    keep = ~np.isnan(v)
    if not keep.all():
        v = v[keep]
        c = None if c is None else c[keep]
    return v, c


def cluster_means(values, clusters) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean of the values of each cluster (NaN values left out).

    Returns
    -------
    labels : ndarray of shape (n_clusters,)
        Cluster labels in order of first appearance.
    means : ndarray of float64, shape (n_clusters,)
    sizes : ndarray of int64, shape (n_clusters,)
    """
    v, c = _values(values, clusters)
    if c is None:
        c = np.arange(v.size)
    codes, k = cluster_codes(c, v.size)
    sizes = np.bincount(codes, minlength=k)
    means = np.bincount(codes, weights=v, minlength=k) / np.maximum(sizes, 1)
    labels = np.empty(k, dtype=np.asarray(c).dtype)
    labels[codes] = c
    return labels, means, sizes


def bootstrap_mean_ci(
    values,
    n_boot: int = AnalysisConfig.n_boot,
    confidence: float = AnalysisConfig.confidence,
    seed: int = AnalysisConfig.seed,
    clusters=None,
) -> dict:
    """Mean, std (ddof=1) and percentile bootstrap CI of the mean, resampling whole clusters.

    Each resample draws ``n_clusters`` clusters with replacement and pools
    their values: its mean is ``sum of the drawn clusters' sums / sum of
    their sizes``. With ``clusters=None`` every value is its own cluster (the
    ordinary bootstrap); the draws are then the same as for a bootstrap of
    the per-cluster values, so 10 videos of 20 identical frames give the
    interval of the 10 video values.

    Parameters
    ----------
    values : array-like of shape (n,)
        NaN values are left out (with their cluster labels).
    n_boot : int
        Resamples.
    confidence : float
        Level of the percentile interval, in (0, 1).
    seed : int
    clusters : array-like of shape (n,), optional
        Cluster label per value (e.g. the video id).

    Returns
    -------
    dict
        ``n`` (values), ``n_clusters``, ``mean`` (of all values), ``std``
        (of the values, ddof=1), ``ci_low``, ``ci_high``, ``n_boot``,
        ``confidence``; NaN where undefined.
    """
    from analysis._validation import check_fraction, check_positive_int

    n_boot = check_positive_int(n_boot, "n_boot")
    confidence = check_fraction(confidence, "confidence", closed=False)
    v, c = _values(values, clusters)
    nan = float("nan")
    if v.size == 0:
        return {
            "n": 0,
            "n_clusters": 0,
            "mean": nan,
            "std": nan,
            "ci_low": nan,
            "ci_high": nan,
            "n_boot": n_boot,
            "confidence": confidence,
        }
    codes, k = cluster_codes(c, v.size)
    sums = np.bincount(codes, weights=v, minlength=k)
    sizes = np.bincount(codes, minlength=k).astype(np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, _CHUNK):
        stop = min(n_boot, start + _CHUNK)
        draws = rng.integers(0, k, (stop - start, k))
        means[start:stop] = sums[draws].sum(axis=1) / sizes[draws].sum(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return {
        "n": int(v.size),
        "n_clusters": int(k),
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else nan,
        "ci_low": float(lo),
        "ci_high": float(hi),
        "n_boot": n_boot,
        "confidence": confidence,
    }


def permutation_pvalue(observed: float, null, alternative: str = "greater") -> float:
    """Permutation p-value ``(1 + #{null at least as extreme as observed}) / (1 + n)``.

    Parameters
    ----------
    observed : float
    null : array-like of shape (n,)
        Statistic under each permutation.
    alternative : {"greater", "less", "two-sided"}
        ``"two-sided"`` compares absolute values (a null centred on 0).

    Returns
    -------
    float
        In [1 / (n + 1), 1].
    """
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {list(_ALTERNATIVES)}, got {alternative!r}")
    null = np.asarray(null, dtype=np.float64).ravel()
    # a tolerance of float rounding, so that a permutation equal to the observed labelling counts
    tol = 1e-12 * max(1.0, abs(float(observed)))
    if alternative == "greater":
        hits = np.sum(null >= observed - tol)
    elif alternative == "less":
        hits = np.sum(null <= observed + tol)
    else:
        hits = np.sum(np.abs(null) >= abs(observed) - tol)
    return float((1 + hits) / (1 + null.size))


@dataclass(frozen=True)
class PermutationTest:
    """Result of a sign-flip permutation test of a mean.

    Attributes
    ----------
    statistic : float
        Mean of the values (all values pooled).
    pvalue : float
        ``(1 + #{flipped mean at least as extreme}) / (1 + n_permutations)``.
    n_permutations : int
        Random sign flips drawn.
    p_min : float
        Smallest reachable p-value, ``1 / (n_permutations + 1)``.
    n, n_clusters : int
        Values and clusters (the units whose signs were flipped).
    alternative : str
    """

    statistic: float
    pvalue: float
    n_permutations: int
    p_min: float
    n: int
    n_clusters: int
    alternative: str

    def to_dict(self) -> dict:
        """Plain dict of every attribute."""
        return asdict(self)


def sign_flip_test(
    values,
    clusters=None,
    n_permutations: int = AnalysisConfig.n_permutations,
    seed: int = AnalysisConfig.seed,
    alternative: str = "two-sided",
) -> PermutationTest:
    """Sign-flip permutation test that the values (e.g. paired differences) are centred on 0.

    Under the null, the values of each cluster are symmetric about 0 as a
    whole: flipping the sign of every value of a cluster leaves their joint
    distribution unchanged. Each permutation draws one random sign per
    cluster; the statistic is the mean of all values,
    ``T = sum_c s_c * S_c / n`` with ``S_c`` the sum of cluster ``c``.

    Parameters
    ----------
    values : array-like of shape (n,)
        E.g. per-pair differences or skill scores (NaN left out).
    clusters : array-like of shape (n,), optional
        Cluster label per value (default: every value alone, one flip per pair).
    n_permutations : int
    seed : int
    alternative : {"two-sided", "greater", "less"}
        ``"greater"``: the mean is above 0.

    Returns
    -------
    PermutationTest
    """
    from analysis._validation import check_positive_int

    n_permutations = check_positive_int(n_permutations, "n_permutations")
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {list(_ALTERNATIVES)}, got {alternative!r}")
    v, c = _values(values, clusters)
    p_min = 1.0 / (n_permutations + 1)
    if v.size == 0:
        nan = float("nan")
        return PermutationTest(nan, nan, n_permutations, p_min, 0, 0, alternative)
    codes, k = cluster_codes(c, v.size)
    sums = np.bincount(codes, weights=v, minlength=k)
    observed = float(sums.sum() / v.size)
    rng = np.random.default_rng(seed)
    null = np.empty(n_permutations)
    for start in range(0, n_permutations, _CHUNK):
        stop = min(n_permutations, start + _CHUNK)
        signs = rng.integers(0, 2, (stop - start, k)) * 2.0 - 1.0
        null[start:stop] = signs @ sums / v.size
    p = permutation_pvalue(observed, null, alternative)
    return PermutationTest(observed, p, n_permutations, p_min, int(v.size), int(k), alternative)


def wilcoxon_signed_rank(values, clusters=None, alternative: str = "two-sided") -> dict:
    """Wilcoxon signed-rank test on the values, or on per-cluster means when clusters are given.

    Zeros are left out (``zero_method="wilcox"``); ``scipy.stats.wilcoxon``
    picks the exact distribution for small samples without ties.

    Returns
    -------
    dict
        ``statistic``, ``pvalue`` (NaN when no non-zero value is left),
        ``n_units`` (values or clusters ranked).
    """
    from scipy import stats  # lazily: scipy.stats probes sys.modules["torch"] on import

    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {list(_ALTERNATIVES)}, got {alternative!r}")
    v, c = _values(values, clusters)
    if c is not None:
        _, v, _ = cluster_means(v, c)
    nonzero = v[v != 0]
    nan = float("nan")
    if nonzero.size == 0:
        return {"statistic": nan, "pvalue": nan, "n_units": int(v.size)}
    res = stats.wilcoxon(nonzero, alternative=alternative)
    return {"statistic": float(res.statistic), "pvalue": float(res.pvalue), "n_units": int(v.size)}


@dataclass(frozen=True)
class PairedComparison:
    """Paired comparison of two measurements of the same samples, ``a - b``.

    Attributes
    ----------
    n, n_clusters : int
        Pairs with both values, and their clusters (the resampled units).
    mean_a, mean_b : float
        Means over those pairs.
    mean_diff : float
        Mean of ``a - b``.
    ci_low, ci_high : float
        Cluster-bootstrap percentile interval of ``mean_diff``.
    p_signflip : float
        Two-sided sign-flip permutation p-value (one flip per cluster).
    p_wilcoxon : float
        Two-sided Wilcoxon signed-rank p-value on per-cluster mean differences.
    n_permutations : int
    p_min : float
        ``1 / (n_permutations + 1)``, the smallest reachable ``p_signflip``.
    n_boot : int
    confidence : float
    """

    n: int
    n_clusters: int
    mean_a: float
    mean_b: float
    mean_diff: float
    ci_low: float
    ci_high: float
    p_signflip: float
    p_wilcoxon: float
    n_permutations: int
    p_min: float
    n_boot: int
    confidence: float

    def to_dict(self) -> dict:
        """Plain dict of every attribute."""
        return asdict(self)


def paired_comparison(
    a,
    b,
    clusters=None,
    n_boot: int = AnalysisConfig.n_boot,
    n_permutations: int = AnalysisConfig.n_permutations,
    confidence: float = AnalysisConfig.confidence,
    seed: int = AnalysisConfig.seed,
) -> PairedComparison:
    """Compare paired values ``a`` and ``b`` (same samples): CI of the mean difference and tests.

    Parameters
    ----------
    a, b : array-like of shape (n,)
        Paired values; pairs where either is NaN are left out.
    clusters : array-like of shape (n,), optional
        Cluster label per pair (e.g. the video of the fake).
    n_boot, n_permutations, confidence, seed
        See :func:`bootstrap_mean_ci` and :func:`sign_flip_test`.

    Returns
    -------
    PairedComparison
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"a and b must be paired (same length), got {a.size} and {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    c = None if clusters is None else np.asarray(clusters).ravel()
    if c is not None and c.shape != a.shape:
        raise ValueError(f"clusters must have one label per pair ({a.size}), got {c.size}")
    a, b = a[keep], b[keep]
    c = None if c is None else c[keep]
    d = a - b
    ci = bootstrap_mean_ci(d, n_boot=n_boot, confidence=confidence, seed=seed, clusters=c)
    flip = sign_flip_test(d, c, n_permutations=n_permutations, seed=seed)
    wil = wilcoxon_signed_rank(d, c)
    nan = float("nan")
    return PairedComparison(
        n=int(d.size),
        n_clusters=ci["n_clusters"],
        mean_a=float(a.mean()) if a.size else nan,
        mean_b=float(b.mean()) if b.size else nan,
        mean_diff=ci["mean"],
        ci_low=ci["ci_low"],
        ci_high=ci["ci_high"],
        p_signflip=flip.pvalue,
        p_wilcoxon=wil["pvalue"],
        n_permutations=flip.n_permutations,
        p_min=flip.p_min,
        n_boot=ci["n_boot"],
        confidence=ci["confidence"],
    )
