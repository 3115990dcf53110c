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
        reason = "; ".join(f"{k}: {v}" for k, v in analysis.unavailable.items())
        return unavailable_figure(reason or "no fake has a real partner", "alignment", width)
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
    summ = analysis.summary.set_index(["group", "model"]) if value == "score" else None
    with publication_style():
        fig = figure(width, _grid_height(width, len(groups), len(models)))
        axes = _panel_grid(fig, groups, models, width, sharex="all")
        stats = {}
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
            if row is not None and np.isfinite(row.get("ci_low", np.nan)):
                text += f" [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
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
            f" and its 95 % bootstrap confidence interval"
            f"{f' ({n_boot} resamples)' if n_boot else ''} in brackets"
            if summ is not None
            else ""
        )
        + ". Solid line: the mean."
    )
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
        reason = "; ".join(f"{k}: {v}" for k, v in analysis.unavailable.items())
        return unavailable_figure(
            reason
            or "no permutation null was computed (fewer than 2 pairs per group, or "
            "n_permutations=0)",
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
        "on the same pairs (black line). p: one-sided permutation p-value, (1 + #null ≥ "
        'observed) / (1 + permutations); with n permutations no p below 1/(n + 1) ("min") can '
        "occur. This tests whether attributions are specific to their sample, not whether "
        "they beat an attribution carrying no information.",
    )
    return fig
