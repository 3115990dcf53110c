"""The paper's Shapley alignment score: does attribution sit where real and fake differ.

Per fake sample (ALGORITHM.md section 4): 20 bins on [0, 1] over the fake
map's values; histogram ``A`` weighted by ``|fake - real|`` and histogram
``B`` weighted by ``|attribution|``; each divided by (its sum + 1e-8);
``score = sum(min(A, B))`` (1: the model's attribution mass sits exactly at
the defocus levels where real and fake differ; 0: disjoint), and
``kl = KL(B + 1e-8 || A + 1e-8)`` as ``scipy.stats.entropy`` computes it
(it renormalises both).

RGB model: its attributions are (3, R, R) on the image; the toolkit uses the
sum over channels of ``|attr|`` as the per-pixel weight (resized bilinearly to
the map side when ``R != S``), where the paper's code kept channel 0 only.

A score on its own has no scale, so :func:`permutation_null` gives the score
expected by chance: attribution maps are shuffled across samples (each fake
gets another sample's attribution) and the mean score recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage

from analysis._validation import check_positive_int

__all__ = [
    "AlignmentScores",
    "AlignmentAnalysis",
    "alignment_histograms",
    "alignment_score",
    "attribution_weights",
    "bootstrap_mean_ci",
    "permutation_null",
    "permutation_pvalue",
    "alignment_from_cache",
    "plot_alignment_histograms",
    "plot_permutation_null",
]


@dataclass(frozen=True)
class AlignmentScores:
    """Per-sample alignment score and KL divergence.

    Attributes
    ----------
    score : ndarray of shape (N,) or float
        Histogram intersection in [0, 1].
    kl : ndarray of shape (N,) or float
        ``KL(B || A)`` in nats.
    """

    score: np.ndarray
    kl: np.ndarray


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


def alignment_histograms(fake_map, real_map, attribution, bins: int = 20):
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
    fake = np.asarray(fake_map, dtype=np.float64)
    real = np.asarray(real_map, dtype=np.float64)
    if fake.shape != real.shape or fake.ndim not in (2, 3):
        raise ValueError(
            f"fake_map and real_map must have the same shape (N, H, W) or (H, W), "
            f"got {fake.shape} and {real.shape}"
        )
    weights = attribution_weights(attribution, fake.shape)
    single = fake.ndim == 2
    if single:
        fake, real, weights = fake[None], real[None], weights[None]
    flat = _flat_bins(fake, bins)
    a = _normalised_hist(flat, np.abs(fake - real), bins)
    b = _normalised_hist(flat, weights, bins)
    return (a[0], b[0]) if single else (a, b)


def alignment_score(fake_map, real_map, attribution, bins: int = 20) -> AlignmentScores:
    """Compute the paper's Shapley alignment score and KL divergence, per fake sample.

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
        ``.score`` and ``.kl``, arrays of shape (N,) (floats for one (H, W) pair).
    """
    bins = check_positive_int(bins, "bins")
    fake = np.asarray(fake_map, dtype=np.float64)
    real = np.asarray(real_map, dtype=np.float64)
    if fake.shape != real.shape:
        raise ValueError(
            f"fake_map and real_map must have the same shape, got {fake.shape} and {real.shape}"
        )
    if fake.ndim not in (2, 3):
        raise ValueError(f"maps must have shape (N, H, W) or (H, W), got {fake.shape}")
    single = fake.ndim == 2
    weights = attribution_weights(attribution, fake.shape)
    if single:
        fake, real, weights = fake[None], real[None], weights[None]
    flat = _flat_bins(fake, bins)
    res = _scores(
        _normalised_hist(flat, np.abs(fake - real), bins), _normalised_hist(flat, weights, bins)
    )
    if single:
        return AlignmentScores(float(res.score[0]), float(res.kl[0]))
    return res


def bootstrap_mean_ci(
    values, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Mean, std (ddof=1) and percentile bootstrap CI of the mean of ``values``.

    Returns
    -------
    dict
        ``{"n", "mean", "std", "ci_low", "ci_high"}``; NaN where undefined.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    n_boot = check_positive_int(n_boot, "n_boot")
    if v.size == 0:
        nan = float("nan")
        return {"n": 0, "mean": nan, "std": nan, "ci_low": nan, "ci_high": nan}
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 64):
        stop = min(n_boot, start + 64)
        draws = rng.integers(0, v.size, (stop - start, v.size))
        means[start:stop] = v[draws].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else float("nan"),
        "ci_low": float(lo),
        "ci_high": float(hi),
    }


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


def _scores(a: np.ndarray, b: np.ndarray) -> AlignmentScores:
    from scipy import stats  # lazily: scipy.stats probes sys.modules["torch"] on import

    return AlignmentScores(np.minimum(a, b).sum(axis=1), stats.entropy(b + 1e-8, a + 1e-8, axis=1))


def permutation_null(
    fake_maps,
    real_maps,
    attributions,
    bins: int = 20,
    n_permutations: int = 100,
    seed: int = 0,
    chunk: int = 32,
) -> np.ndarray:
    """Mean alignment score when attribution maps are shuffled across samples.

    Each permutation is a uniformly random derangement (no sample keeps its
    own attribution): every fake is scored against another sample's
    attribution, which keeps the attribution's overall shape and spread but
    breaks its link to this sample's real/fake difference. The observed mean
    score reads against this distribution (see :func:`permutation_pvalue`).

    Parameters
    ----------
    fake_maps, real_maps : ndarray of shape (N, H, W)
    attributions : ndarray of shape (N, H, W) or (N, C, R, R)
    bins : int
    n_permutations : int
    seed : int
    chunk : int
        Samples histogrammed at once (bounds the temporary memory).

    Returns
    -------
    ndarray of float64, shape (n_permutations,)
        Mean score over the N samples under each permutation.
    """
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    bins = check_positive_int(bins, "bins")
    fake = np.asarray(fake_maps)
    real = np.asarray(real_maps)
    if fake.ndim != 3 or fake.shape != real.shape:
        raise ValueError(
            f"maps must have the same shape (N, H, W), got {fake.shape} and {real.shape}"
        )
    n = fake.shape[0]
    if n < 2:
        raise ValueError(f"a permutation null needs at least 2 samples, got {n}")
    attributions = np.asarray(attributions)
    if attributions.shape[0] != n:
        raise ValueError(f"attributions hold {attributions.shape[0]} samples, the maps {n}")
    rng = np.random.default_rng(seed)
    perms = [_derangement(rng, n) for _ in range(n_permutations)]
    out = np.zeros(n_permutations)
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        f = fake[sl].astype(np.float64)
        flat = _flat_bins(f, bins)
        a = _normalised_hist(flat, np.abs(f - real[sl].astype(np.float64)), bins)
        for p, perm in enumerate(perms):
            b = _normalised_hist(flat, attribution_weights(attributions[perm[sl]], f.shape), bins)
            out[p] += np.minimum(a, b).sum()
    return out / n


def permutation_pvalue(observed: float, null) -> float:
    """One-sided permutation p-value ``(1 + #{null >= observed}) / (1 + n_permutations)``."""
    null = np.asarray(null, dtype=np.float64).ravel()
    return float((1 + np.sum(null >= observed)) / (1 + null.size))


def _derangement(rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw a uniformly random permutation of ``n`` with no fixed point (by rejection)."""
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


# --------------------------------------------------------------------------- over a cache

#: Attribution field of each model in a cache.
MODEL_FIELDS = {"defocus": "attr_defocus", "rgb": "attr_rgb"}


@dataclass
class AlignmentAnalysis:
    """Alignment results over a cache.

    Attributes
    ----------
    per_sample : pandas.DataFrame
        ``group, id, model, score, kl`` for every paired fake and model.
    summary : pandas.DataFrame
        Per group and model: ``n, mean, std, ci_low, ci_high`` of the score,
        ``kl_mean, kl_std``, and the permutation null: ``null_n`` (samples it
        used), ``observed_null_subset`` (their mean score), ``null_mean,
        null_std`` and the one-sided ``p_value``.
    null : dict of (str, str) to ndarray
        Per (group, model), the null mean score of every permutation.
    bins : int
    unavailable : dict of str to str
        Models (or parts) that could not be computed, with the reason.
    """

    per_sample: pd.DataFrame
    summary: pd.DataFrame
    null: dict
    bins: int
    unavailable: dict[str, str] = field(default_factory=dict)


class AlignmentAccumulator:
    """Streaming accumulator behind :func:`alignment_from_cache`."""

    real_fields = ("defocus",)

    def __init__(
        self,
        bins: int = 20,
        models: tuple[str, ...] = ("defocus", "rgb"),
        n_permutations: int = 100,
        null_samples: int = 128,
        seed: int = 0,
    ):
        self.bins = check_positive_int(bins, "bins")
        for m in models:
            if m not in MODEL_FIELDS:
                raise ValueError(f"models must be among {list(MODEL_FIELDS)}, got {m!r}")
        self.models = tuple(models)
        self.n_permutations = (
            check_positive_int(n_permutations, "n_permutations", minimum=0) if n_permutations else 0
        )
        self.null_samples = int(null_samples)
        self.seed = int(seed)
        self.fake_fields = ("defocus", *(MODEL_FIELDS[m] for m in self.models))
        self._rows: list[pd.DataFrame] = []
        self._buffer: dict[str, dict[str, list]] = {}
        self.null: dict[tuple[str, str], np.ndarray] = {}
        self.null_observed: dict[tuple[str, str], float] = {}
        self.present: set[str] = set()
        self._current: str | None = None

    def update(self, block) -> None:
        """Add the pairs of one :class:`analysis.pairing.PairedBlock`."""
        if "defocus" not in block.fake or "defocus" not in block.real:
            return
        if self._current is not None and block.group != self._current:
            self._flush(self._current)
        self._current = block.group
        fake = block.fake["defocus"]
        real = block.real["defocus"]
        buf = self._buffer.setdefault(block.group, {"fake": [], "real": [], "score": {}, "w": {}})
        room = max(0, self.null_samples - len(buf["fake"])) if self.n_permutations else 0
        if room:
            buf["fake"].extend(fake[:room])
            buf["real"].extend(real[:room])
        f64 = fake.astype(np.float64)
        flat = _flat_bins(f64, self.bins)
        a = _normalised_hist(flat, np.abs(f64 - real.astype(np.float64)), self.bins)
        for m in self.models:
            f = MODEL_FIELDS[m]
            if f not in block.fake:
                continue
            self.present.add(m)
            w = attribution_weights(block.fake[f], f64.shape)
            res = _scores(a, _normalised_hist(flat, w, self.bins))
            self._rows.append(
                pd.DataFrame(
                    {
                        "group": block.group,
                        "id": block.fake["id"],
                        "model": m,
                        "score": res.score,
                        "kl": res.kl,
                    }
                )
            )
            if room:
                w = attribution_weights(block.fake[f][:room], fake[:room].shape).astype(np.float32)
                buf["w"].setdefault(m, []).extend(w)
                buf["score"].setdefault(m, []).extend(res.score[:room])

    def _flush(self, group: str) -> None:
        buf = self._buffer.pop(group, None)
        if buf is None or len(buf["fake"]) < 2 or not self.n_permutations:
            return
        fake = np.stack(buf["fake"])
        real = np.stack(buf["real"])
        for m, w in buf["w"].items():
            self.null[(group, m)] = permutation_null(
                fake, real, np.stack(w), self.bins, self.n_permutations, self.seed
            )
            self.null_observed[(group, m)] = float(np.mean(buf["score"][m]))

    def finalize(self, n_boot: int = 1000, seed: int = 0) -> AlignmentAnalysis:
        """Return the :class:`AlignmentAnalysis` of everything seen."""
        for g in list(self._buffer):
            self._flush(g)
        cols = ["group", "id", "model", "score", "kl"]
        per = pd.concat(self._rows, ignore_index=True) if self._rows else pd.DataFrame(columns=cols)
        unavailable = {}
        for m in self.models:
            if m not in self.present:
                unavailable[m] = (
                    f"the cache has no '{MODEL_FIELDS[m]}' field"
                    if per.empty or m not in per["model"].unique()
                    else "no pairs"
                )
        if per.empty and not unavailable:
            unavailable["alignment"] = "no fake has a real partner"
        rows = []
        for (g, m), sub in per.groupby(["group", "model"], sort=False):
            s = bootstrap_mean_ci(sub["score"].to_numpy(), n_boot=n_boot, seed=seed)
            null = self.null.get((g, m))
            row = {"group": g, "model": m, **s}
            row["kl_mean"] = float(sub["kl"].mean())
            row["kl_std"] = float(sub["kl"].std(ddof=1)) if len(sub) > 1 else float("nan")
            if null is not None:
                obs = self.null_observed[(g, m)]
                row.update(
                    null_n=int(min(len(sub), self.null_samples)),
                    observed_null_subset=obs,
                    null_mean=float(null.mean()),
                    null_std=float(null.std(ddof=1)) if null.size > 1 else float("nan"),
                    p_value=permutation_pvalue(obs, null),
                )
            else:
                nan = float("nan")
                row.update(
                    null_n=0, observed_null_subset=nan, null_mean=nan, null_std=nan, p_value=nan
                )
            rows.append(row)
        return AlignmentAnalysis(per, pd.DataFrame(rows), dict(self.null), self.bins, unavailable)


def alignment_from_cache(
    cache,
    bins: int = 20,
    models: tuple[str, ...] = ("defocus", "rgb"),
    groups=None,
    by_position: bool = False,
    n_permutations: int = 100,
    null_samples: int = 128,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> AlignmentAnalysis:
    """Alignment score and KL per paired fake and model, summaries, and a permutation null.

    Parameters
    ----------
    cache : cache reader
        From :func:`cache.open_cache`.
    bins : int
        Histogram bins on [0, 1].
    models : tuple of {"defocus", "rgb"}
        Models to score (their attribution field: ``attr_defocus``, ``attr_rgb``;
        a missing field marks the model unavailable).
    groups : sequence of str, optional
        Fake groups (default: all groups holding fakes).
    by_position : bool
        Pair by position instead of pair id (warns).
    n_permutations : int
        Permutations of the null (0: no null).
    null_samples : int
        The null uses the first ``null_samples`` pairs of each group (pixel
        work grows with samples x permutations); its p-value compares with
        the observed mean over the same samples.
    n_boot : int
        Bootstrap resamples for the CI of the mean score.
    seed : int
    progress : bool

    Returns
    -------
    AlignmentAnalysis
    """
    from analysis.pairing import run_paired

    acc = AlignmentAccumulator(bins, models, n_permutations, null_samples, seed)
    run_paired(cache, [acc], groups=groups, by_position=by_position, progress=progress)
    return acc.finalize(n_boot=n_boot, seed=seed)


# --------------------------------------------------------------------------- figures


def plot_alignment_histograms(analysis: AlignmentAnalysis, bins: int = 20):
    """Histogram of per-sample alignment scores, one panel per model, one colour per group.

    The dashed line in each panel is the permutation-null mean of each group.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from analysis.style import figure, group_colors, publication_style, unavailable_figure

    per = analysis.per_sample
    if per.empty:
        reason = "; ".join(f"{k}: {v}" for k, v in analysis.unavailable.items()) or "no pairs"
        return unavailable_figure(reason, "alignment scores")
    models = list(dict.fromkeys([*per["model"].unique(), *analysis.unavailable]))
    models = [m for m in models if m in MODEL_FIELDS]
    colors = group_colors(["real", *per["group"].unique()])
    edges = np.linspace(0, 1, bins + 1)
    with publication_style():
        fig = figure(3.4 * len(models), 3.0)
        axes = fig.subplots(1, len(models), squeeze=False)[0]
        for ax, m in zip(axes, models, strict=False):
            sub = per[per["model"] == m]
            ax.set_title(f"{m} model")
            ax.set_xlabel("alignment score")
            if sub.empty:
                ax.text(
                    0.5,
                    0.5,
                    "unavailable:\n" + analysis.unavailable.get(m, ""),
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    wrap=True,
                )
                continue
            for g, gs in sub.groupby("group", sort=False):
                ax.hist(
                    gs["score"],
                    bins=edges,
                    color=colors[g],
                    alpha=0.55,
                    label=f"{g} ({gs['score'].mean():.2f} ± {gs['score'].std():.2f})",
                )
                null = analysis.null.get((g, m))
                if null is not None:
                    ax.axvline(null.mean(), color=colors[g], ls="--", lw=1)
            ax.set_xlim(0, 1)
            ax.legend(fontsize=7)
        axes[0].set_ylabel("fake samples")
    return fig


def plot_permutation_null(analysis: AlignmentAnalysis):
    """Permutation-null distributions of the mean score with the observed mean, per group and model.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from analysis.style import figure, group_colors, publication_style, unavailable_figure

    if not analysis.null:
        return unavailable_figure(
            "no permutation null was computed (too few pairs or n_permutations=0)",
            "permutation null",
        )
    keys = list(analysis.null)
    colors = group_colors(["real", *[g for g, _ in keys]])
    summ = analysis.summary.set_index(["group", "model"])
    with publication_style():
        fig = figure(3.0 * len(keys), 2.8)
        axes = fig.subplots(1, len(keys), squeeze=False)[0]
        for ax, (g, m) in zip(axes, keys, strict=False):
            null = analysis.null[(g, m)]
            ax.hist(null, bins=20, color=colors[g], alpha=0.6, label="null (shuffled attributions)")
            obs = summ.loc[(g, m), "observed_null_subset"]
            p = summ.loc[(g, m), "p_value"]
            ax.axvline(obs, color="k", lw=1.5, label=f"observed {obs:.3f} (p={p:.2g})")
            ax.set_title(f"{g} / {m} model", fontsize=9)
            ax.set_xlabel("mean alignment score")
            ax.legend(fontsize=6)
        axes[0].set_ylabel("permutations")
    return fig
