"""Detection numbers of a cache: frame- and video-level AUC, calibration, temperature scaling.

What a reviewer of a FaceForensics++ detector expects beside the frame-level
AUC, computed from the cached test logits alone (numpy and scipy; no torch):

- :func:`auc_with_ci`: the ROC AUC with a stratified (cluster) bootstrap
  interval.
- :func:`video_scores`: one score per video, the **mean probability**
  ``mean(sigmoid(logit))`` of its frames (the FF++ video-level protocol);
  the video-level AUC is :func:`auc_with_ci` of those scores, each video one
  unit.
- :func:`calibration`: expected calibration error (:data:`ECE_BINS` = 15
  equal-width bins of the predicted probability of "fake"), Brier score and
  negative log-likelihood of ``sigmoid(logit)``, with bootstrap intervals
  (whole videos resampled when given), and the per-bin numbers of the
  reliability diagram.
- :func:`temperature_crossfit`: temperature scaling fitted on one half of
  the videos (or samples) by minimising the NLL and applied to the other
  half, and the reverse, so that no sample is scored with a temperature
  fitted on itself.
- :func:`detection_from_cache` runs all of them for every model of a cache;
  :func:`plot_reliability` draws the reliability diagram.

docs/statistics.md ("Detection metrics: video-level AUC and calibration")
gives the formulas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.config import AnalysisConfig

__all__ = [
    "ECE_BINS",
    "TEMPERATURE_BOUNDS",
    "Calibration",
    "DetectionAnalysis",
    "ModelDetection",
    "TemperatureCrossfit",
    "VideoScores",
    "auc_with_ci",
    "calibration",
    "detection_from_cache",
    "fit_temperature",
    "plot_reliability",
    "temperature_crossfit",
    "video_scores",
]

#: Equal-width bins of the predicted probability in the expected calibration error.
ECE_BINS = 15
#: Range searched for the temperature ``T`` (logits are divided by it).
TEMPERATURE_BOUNDS: tuple[float, float] = (0.01, 100.0)
#: Bootstrap resamples handled at once (bounds a (chunk, n_units) array).
_CELLS = 2_000_000


def _labels_logits(labels, logits, name: str = "logits") -> tuple[np.ndarray, np.ndarray]:
    """Labels as int64 in {0, 1} and finite float64 logits, both of shape (n,); else ValueError."""
    y = np.asarray(labels).ravel()
    z = np.asarray(logits, dtype=np.float64).ravel()
    if y.shape != z.shape:
        raise ValueError(f"labels and {name} must have the same length, got {y.size} and {z.size}")
    if y.size == 0:
        raise ValueError(f"labels and {name} are empty")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise ValueError(f"labels must be 0 (real) or 1 (fake), got {y[bad][0].tolist()!r}")
    if not np.isfinite(z).all():
        raise ValueError(f"{name} must be finite, got {int((~np.isfinite(z)).sum())} non-finite")
    return y.astype(np.int64), z


def _sigmoid(z: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(z)


def _nll_terms(y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Return ``-log p(y | z)`` per sample from the logit: ``softplus(-z)`` or ``softplus(z)``."""
    return np.where(y == 1, np.logaddexp(0.0, -z), np.logaddexp(0.0, z))


def _units(y: np.ndarray, clusters) -> tuple[np.ndarray, np.ndarray]:
    """Return the unit code of each sample; units are ``(cluster, label)`` pairs in order seen.

    Returns
    -------
    code : ndarray of int64, shape (n_samples,)
    unit_label : ndarray of int64, shape (n_units,)
    """
    if clusters is None:
        return np.arange(y.size, dtype=np.int64), y.copy()
    c = np.asarray(clusters).astype(str).ravel()
    if c.shape != y.shape:
        raise ValueError(f"clusters must have one label per sample, got {c.size} for {y.size}")
    keys = np.char.add(np.char.add(y.astype(str), "|"), c)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    code = rank[inverse.ravel()].astype(np.int64)
    unit_label = np.empty(order.size, np.int64)
    unit_label[code] = y
    return code, unit_label


def _bootstrap_weights(unit_label: np.ndarray, n_boot: int, seed: int):
    """Yield ``(B, n_units)`` counts of each unit in stratified bootstrap resamples.

    Units are drawn with replacement within their class, each class keeping
    its number of units. Chunks of resamples depend on the data only, so the
    draws are the same for a given seed whatever the caller.
    """
    rng = np.random.default_rng(seed)
    n_units = unit_label.size
    per_class = [np.flatnonzero(unit_label == lab) for lab in (0, 1)]
    chunk = max(1, min(n_boot, _CELLS // max(n_units, 1)))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        offset = (np.arange(b) * n_units)[:, None]
        w = np.zeros(b * n_units, np.float64)
        for idx in per_class:
            if idx.size:
                draw = idx[rng.integers(0, idx.size, (b, idx.size))] + offset
                w += np.bincount(draw.ravel(), minlength=b * n_units)
        yield w.reshape(b, n_units)
        done += b


def auc_with_ci(
    labels,
    scores,
    clusters=None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """ROC AUC of ``scores`` for ``labels`` (1 = fake) with a stratified bootstrap interval.

    Reals and fakes are resampled separately (each class keeps its size);
    with ``clusters`` (e.g. videos) whole clusters are resampled within
    their class, so near-duplicate frames of one video count once.

    Parameters
    ----------
    labels : array-like of int, shape (n_samples,)
        0 real, 1 fake.
    scores : array-like of float, shape (n_samples,)
        Higher = more likely fake (e.g. the logit).
    clusters : array-like of shape (n_samples,), optional
        Cluster label per sample.
    n_boot : int
    confidence : float
    seed : int

    Returns
    -------
    dict
        ``auc, ci_low, ci_high, n, n_real, n_fake, n_units, n_boot, confidence``
        (None where undefined, e.g. one class only).
    """
    from scipy import stats

    y = np.asarray(labels).astype(int).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    keep = np.isfinite(s)
    y, s = y[keep], s[keep]
    c = None if clusters is None else np.asarray(clusters).ravel()[keep]
    n1, n0 = int((y == 1).sum()), int((y == 0).sum())
    out: dict[str, Any] = {
        "auc": None, "ci_low": None, "ci_high": None, "n": int(y.size), "n_real": n0,
        "n_fake": n1, "n_units": None, "n_boot": int(n_boot), "confidence": float(confidence),
    }  # fmt: skip
    if n1 == 0 or n0 == 0:
        return out

    def auc(yy: np.ndarray, ss: np.ndarray) -> np.ndarray:
        """Mann-Whitney AUC per row of (B, n) arrays (ties counted half)."""
        ranks = stats.rankdata(ss, axis=-1)
        pos = (yy == 1).sum(axis=-1)
        neg = yy.shape[-1] - pos
        u = (ranks * (yy == 1)).sum(axis=-1) - pos * (pos + 1) / 2.0
        return u / (pos * neg)

    out["auc"] = float(auc(y[None], s[None])[0])
    rng = np.random.default_rng(seed)
    # indices per unit (a cluster, or a sample alone), per class
    units: dict[int, list[np.ndarray]] = {0: [], 1: []}
    if c is None:
        for i in range(y.size):
            units[int(y[i])].append(np.array([i]))
    else:
        for lab in (0, 1):
            idx = np.flatnonzero(y == lab)
            for u in dict.fromkeys(c[idx].tolist()):
                units[lab].append(idx[c[idx] == u])
    out["n_units"] = len(units[0]) + len(units[1])
    boots = np.empty(n_boot)
    for b in range(n_boot):
        picked = []
        for lab in (0, 1):
            draw = rng.integers(0, len(units[lab]), len(units[lab]))
            picked.extend(units[lab][k] for k in draw)
        rows = np.concatenate(picked)
        boots[b] = auc(y[rows][None], s[rows][None])[0]
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha])
    out["ci_low"], out["ci_high"] = float(lo), float(hi)
    return out


# ----------------------------------------------------------------------------- video level


@dataclass
class VideoScores:
    """One score per video: the mean probability ``mean(sigmoid(logit))`` of its frames.

    Attributes
    ----------
    video : ndarray of str, shape (n_videos,)
        Video name (a frame without a video is its own "video", named by its id).
    label : ndarray of int64, shape (n_videos,)
        0 real, 1 fake (a name holding frames of both labels gives two videos).
    score : ndarray of float64, shape (n_videos,)
        Mean over the video's frames of ``sigmoid(logit)``.
    n_frames : ndarray of int64, shape (n_videos,)
        Frames per video.
    """

    video: np.ndarray
    label: np.ndarray
    score: np.ndarray
    n_frames: np.ndarray


def video_scores(labels, logits, videos, ids=None) -> VideoScores:
    """Average each video's frame probabilities into one video score.

    The score of a video is the mean of ``sigmoid(logit)`` over its frames
    (mean probability, not mean logit: one over-confident frame cannot
    outweigh the rest). Videos are told apart by name and label; a frame
    whose video is ``""`` is a video of its own (named by its id).

    Parameters
    ----------
    labels : array-like of int, shape (n_samples,)
        0 real, 1 fake.
    logits : array-like of float, shape (n_samples,)
        Per-frame logits (higher = more likely fake).
    videos : array-like of str, shape (n_samples,)
        The cache's ``video`` field.
    ids : array-like of str, shape (n_samples,), optional
        Sample ids (names the frames without a video; default their index).

    Returns
    -------
    VideoScores
        Videos in order of first appearance.
    """
    y, z = _labels_logits(labels, logits)
    v = np.asarray(videos).astype(str).ravel()
    if v.shape != y.shape:
        raise ValueError(f"videos must have one entry per sample, got {v.size} for {y.size}")
    names = np.arange(y.size).astype(str) if ids is None else np.asarray(ids).astype(str).ravel()
    if names.shape != y.shape:
        raise ValueError(f"ids must have one entry per sample, got {names.size} for {y.size}")
    name = np.where(v != "", v, np.char.add("id:", names))
    code, unit_label = _units(y, name)
    n_units = unit_label.size
    n_frames = np.bincount(code, minlength=n_units)
    score = np.bincount(code, weights=_sigmoid(z), minlength=n_units) / n_frames
    first = np.full(n_units, -1)
    first[code[::-1]] = np.arange(y.size)[::-1]
    return VideoScores(video=name[first], label=unit_label, score=score, n_frames=n_frames)


# ----------------------------------------------------------------------------- calibration


@dataclass
class Calibration:
    """Calibration of ``sigmoid(logit)`` against the labels, with bootstrap intervals.

    Attributes
    ----------
    ece, brier, nll : float
        Expected calibration error over ``n_bins`` equal-width bins of the
        predicted probability of "fake", Brier score and mean negative
        log-likelihood (nats).
    ece_ci, brier_ci, nll_ci : tuple of float
        Percentile bootstrap interval ``(low, high)`` at ``confidence``.
    n_bins : int
    bin_edges : ndarray of float64, shape (n_bins + 1,)
        ``linspace(0, 1, n_bins + 1)``; bin ``k`` is ``[edge_k, edge_k+1)``, the last closed.
    bin_count : ndarray of int64, shape (n_bins,)
    bin_mean_prob : ndarray of float64, shape (n_bins,)
        Mean predicted probability per bin (NaN when empty).
    bin_fake_fraction : ndarray of float64, shape (n_bins,)
        Observed fraction of fakes per bin (NaN when empty).
    n, n_real, n_fake, n_units : int
        Samples, of each class, and resampled units (videos, or samples).
    level : {"video", "frame"}
        Whether whole videos were resampled.
    n_boot : int
    confidence : float
    """

    ece: float
    brier: float
    nll: float
    ece_ci: tuple[float, float]
    brier_ci: tuple[float, float]
    nll_ci: tuple[float, float]
    n_bins: int
    bin_edges: np.ndarray
    bin_count: np.ndarray
    bin_mean_prob: np.ndarray
    bin_fake_fraction: np.ndarray
    n: int
    n_real: int
    n_fake: int
    n_units: int
    level: str
    n_boot: int
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """Return the numbers as a JSON-ready dict (NaN as None; arrays as lists)."""

        def num(v):
            v = float(v)
            return v if np.isfinite(v) else None

        out: dict[str, Any] = {}
        for key in ("ece", "brier", "nll"):
            out[key] = num(getattr(self, key))
            lo, hi = getattr(self, f"{key}_ci")
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = num(lo), num(hi)
        out.update(
            n_bins=int(self.n_bins), n=int(self.n), n_real=int(self.n_real),
            n_fake=int(self.n_fake), n_units=int(self.n_units), level=self.level,
            n_boot=int(self.n_boot), confidence=float(self.confidence),
            bin_count=[int(c) for c in self.bin_count],
            bin_mean_prob=[num(v) for v in self.bin_mean_prob],
            bin_fake_fraction=[num(v) for v in self.bin_fake_fraction],
        )  # fmt: skip
        return out


def _bin_index(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each probability: ``k`` with ``k / n_bins <= p < (k + 1) / n_bins``, 1 in the last."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)


def calibration(
    labels,
    logits,
    *,
    n_bins: int = ECE_BINS,
    clusters=None,
    n_boot: int = AnalysisConfig.n_boot,
    confidence: float = AnalysisConfig.confidence,
    seed: int = 0,
) -> Calibration:
    """ECE, Brier score and NLL of the probabilities ``sigmoid(logits)``, with bootstrap CIs.

    With ``p_i = sigmoid(z_i)`` and ``y_i`` in {0, 1} (1 = fake):
    ``ECE = sum_k (n_k / n) |mean_{i in k} y_i - mean_{i in k} p_i|`` over
    ``n_bins`` equal-width bins of ``p`` (the reliability-diagram definition:
    predicted probability of "fake" against the observed fraction of fakes);
    ``Brier = mean (p_i - y_i)^2``; ``NLL = -mean log p(y_i)``, from the
    logits (exact even where ``p`` rounds to 0 or 1).

    Parameters
    ----------
    labels : array-like of int, shape (n_samples,)
        0 real, 1 fake.
    logits : array-like of float, shape (n_samples,)
        Finite logits of "fake".
    n_bins : int
        Equal-width bins of ``p`` on [0, 1].
    clusters : array-like of shape (n_samples,), optional
        Video per sample: the bootstrap resamples whole videos (within their
        class); default every sample alone.
    n_boot : int
        Bootstrap resamples (stratified by class, each class keeps its size).
    confidence : float
        Level of the percentile intervals, in (0, 1).
    seed : int

    Returns
    -------
    Calibration

    Raises
    ------
    ValueError
        On labels other than 0/1, non-finite logits, mismatched lengths or a
        bad ``n_bins``, ``n_boot`` or ``confidence``.
    """
    y, z = _labels_logits(labels, logits)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    p = _sigmoid(z)
    k = _bin_index(p, n_bins)
    resid = p - y
    nll = _nll_terms(y, z)
    count = np.bincount(k, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(k, weights=p, minlength=n_bins) / count
        frac = np.bincount(k, weights=y.astype(np.float64), minlength=n_bins) / count
    n = y.size
    ece = float(np.abs(np.bincount(k, weights=resid, minlength=n_bins)).sum() / n)

    # per unit (a video, or a sample) and bin: sums a resample adds up
    code, unit_label = _units(y, clusters)
    n_units = unit_label.size
    cell = np.zeros((n_units, n_bins))
    np.add.at(cell, (code, k), resid)
    size = np.bincount(code, minlength=n_units).astype(np.float64)
    sq = np.bincount(code, weights=resid**2, minlength=n_units)
    ll = np.bincount(code, weights=nll, minlength=n_units)
    boots = []
    for w in _bootstrap_weights(unit_label, n_boot, seed):
        total = w @ size
        boots.append(
            np.stack([np.abs(w @ cell).sum(axis=1) / total, (w @ sq) / total, (w @ ll) / total], 1)
        )
    qs = np.quantile(np.concatenate(boots), [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    return Calibration(
        ece=ece, brier=float(np.mean(resid**2)), nll=float(np.mean(nll)),
        ece_ci=(float(qs[0, 0]), float(qs[1, 0])), brier_ci=(float(qs[0, 1]), float(qs[1, 1])),
        nll_ci=(float(qs[0, 2]), float(qs[1, 2])), n_bins=int(n_bins),
        bin_edges=np.linspace(0.0, 1.0, n_bins + 1), bin_count=count.astype(np.int64),
        bin_mean_prob=mean_p, bin_fake_fraction=frac, n=int(n), n_real=int((y == 0).sum()),
        n_fake=int((y == 1).sum()), n_units=int(n_units),
        level="frame" if clusters is None else "video", n_boot=int(n_boot),
        confidence=float(confidence),
    )  # fmt: skip


# ----------------------------------------------------------------------------- temperature


def fit_temperature(labels, logits, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """Temperature ``T`` minimising the NLL of ``sigmoid(logits / T)``.

    The NLL is convex in ``1 / T``, so a bounded scalar search on ``log T``
    finds its minimum; separable data (every fake above every real) push
    ``T`` to the lower bound.

    Parameters
    ----------
    labels : array-like of int, shape (n_samples,)
    logits : array-like of float, shape (n_samples,)
    bounds : (float, float)
        Range of ``T`` searched, ``0 < low < high``.

    Returns
    -------
    float
    """
    from scipy.optimize import minimize_scalar

    y, z = _labels_logits(labels, logits)
    lo, hi = (float(b) for b in bounds)
    if not 0.0 < lo < hi:
        raise ValueError(f"temperature bounds must satisfy 0 < low < high, got {bounds!r}")

    def nll(log_t: float) -> float:
        return float(np.mean(_nll_terms(y, z * np.exp(-log_t))))

    res = minimize_scalar(nll, bounds=(np.log(lo), np.log(hi)), method="bounded",
                          options={"xatol": 1e-7})  # fmt: skip
    return float(np.exp(res.x))


@dataclass
class TemperatureCrossfit:
    """Temperature scaling cross-fitted over two folds.

    Attributes
    ----------
    temperatures : tuple of float
        ``(T_0, T_1)``: ``T_j`` fitted on fold ``j`` (and applied to the other fold).
    fold : ndarray of int64, shape (n_samples,)
        Fold of each sample (0 or 1).
    scaled_logits : ndarray of float64, shape (n_samples,)
        Each sample's logit divided by the temperature fitted on the other fold.
    split : {"video", "sample"}
        What was split: whole videos, or single samples.
    fold_units : tuple of int
        Units (videos or samples) per fold.
    at_bound : tuple of bool
        Whether each ``T`` hit :data:`TEMPERATURE_BOUNDS` (e.g. separable data).
    """

    temperatures: tuple[float, float]
    fold: np.ndarray
    scaled_logits: np.ndarray
    split: str
    fold_units: tuple[int, int]
    at_bound: tuple[bool, bool]


def temperature_crossfit(
    labels,
    logits,
    clusters=None,
    *,
    seed: int = 0,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
) -> TemperatureCrossfit:
    """Fit a temperature on one half of the units, apply it to the other half, and swap.

    Units (whole videos when ``clusters`` is given, else samples) are shuffled
    with ``seed`` within each class and dealt alternately to fold 0 and fold
    1, so both folds hold both classes. ``T_0`` is fitted on fold 0 by
    minimising the NLL (:func:`fit_temperature`) and divides the logits of
    fold 1; ``T_1`` the reverse. No sample is scored with a temperature
    fitted on itself or on another frame of its video.

    Parameters
    ----------
    labels : array-like of int, shape (n_samples,)
    logits : array-like of float, shape (n_samples,)
    clusters : array-like of shape (n_samples,), optional
        Video per sample.
    seed : int
    bounds : (float, float)
        Range of ``T`` searched.

    Returns
    -------
    TemperatureCrossfit

    Raises
    ------
    ValueError
        With fewer than 2 units of a class (no two folds can hold it).
    """
    y, z = _labels_logits(labels, logits)
    code, unit_label = _units(y, clusters)
    what = "videos" if clusters is not None else "samples"
    counts = [int((unit_label == lab).sum()) for lab in (0, 1)]
    if min(counts) < 2:
        raise ValueError(
            f"temperature cross-fitting needs at least 2 {what} of each class, got "
            f"{counts[0]} real and {counts[1]} fake"
        )
    rng = np.random.default_rng(seed)
    unit_fold = np.empty(unit_label.size, np.int64)
    for lab in (0, 1):
        idx = rng.permutation(np.flatnonzero(unit_label == lab))
        unit_fold[idx] = np.arange(idx.size) % 2
    fold = unit_fold[code]
    temps = []
    scaled = np.empty_like(z)
    for j in (0, 1):
        t = fit_temperature(y[fold == j], z[fold == j], bounds)
        temps.append(t)
        scaled[fold == 1 - j] = z[fold == 1 - j] / t
    lo, hi = bounds
    return TemperatureCrossfit(
        temperatures=(temps[0], temps[1]), fold=fold, scaled_logits=scaled,
        split="video" if clusters is not None else "sample",
        fold_units=(int((unit_fold == 0).sum()), int((unit_fold == 1).sum())),
        at_bound=tuple(bool(t < lo * 1.001 or t > hi / 1.001) for t in temps),
    )  # fmt: skip


# ----------------------------------------------------------------------------- from a cache


@dataclass
class ModelDetection:
    """Detection numbers of one model's cached logits.

    Attributes
    ----------
    model : str
        ``"defocus"`` or ``"rgb"``.
    auc : dict
        Frame-level AUC of the logits (:func:`auc_with_ci`), with ``level``:
        ``"video"`` when whole videos were resampled for its interval.
    video_auc : dict or None
        AUC of the per-video mean probabilities, each video one unit (None
        without videos; ``video_auc_reason`` says why).
    calibration : Calibration
        Of ``sigmoid(logit)``.
    scaled : Calibration or None
        Of the cross-fitted temperature-scaled probabilities.
    crossfit : TemperatureCrossfit or None
    video_auc_reason, crossfit_reason : str
        Why ``video_auc`` / ``scaled`` is None ("" otherwise).
    """

    model: str
    auc: dict
    video_auc: dict | None
    calibration: Calibration
    scaled: Calibration | None
    crossfit: TemperatureCrossfit | None
    video_auc_reason: str = ""
    crossfit_reason: str = ""


@dataclass
class DetectionAnalysis:
    """Detection numbers of every model of a cache (:func:`detection_from_cache`).

    Attributes
    ----------
    models : dict of str to ModelDetection
    has_videos : bool
        Whether the cache names the video of its frames.
    level : {"video", "frame"}
        Unit of the intervals (whole videos, or frames).
    n_bins : int
    unavailable : dict of str to str
        Per model without logits, why.
    config : dict
        The AnalysisConfig used.
    """

    models: dict[str, ModelDetection] = field(default_factory=dict)
    has_videos: bool = False
    level: str = "frame"
    n_bins: int = ECE_BINS
    unavailable: dict[str, str] = field(default_factory=dict)
    config: dict = field(default_factory=dict)


#: Why there is no video-level AUC when the cache has no videos.
NO_VIDEOS = "no video field"


def detection_from_cache(cache, config=None, *, models=("defocus", "rgb")) -> DetectionAnalysis:
    """Frame- and video-level AUC and calibration of every model's cached logits.

    Parameters
    ----------
    cache : cache reader
        From :func:`cache.open_cache`; reads ``id``, ``label``, ``logit_<model>``
        and ``video`` when present.
    config : AnalysisConfig or dict, optional
        ``n_boot``, ``confidence``, ``seed`` and ``unit`` (``"video"``:
        intervals resample whole videos when the cache has them).
    models : sequence of str

    Returns
    -------
    DetectionAnalysis
    """
    from analysis.config import resolve_config
    from analysis.stats import cluster_labels

    cfg = resolve_config(config)
    out = DetectionAnalysis(config=cfg.to_dict())
    if "label" not in cache.fields:
        out.unavailable = {m: "the cache has no 'label' field" for m in models}
        return out
    has_video = "video" in cache.fields
    for kind in models:
        name = f"logit_{kind}"
        if name not in cache.fields:
            out.unavailable[kind] = f"the cache has no {name!r} field"
            continue
        arrays = cache.arrays(["id", "label", name] + (["video"] if has_video else []))
        y, z, ids = arrays["label"].astype(np.int64), arrays[name].astype(np.float64), arrays["id"]
        video = arrays["video"].astype(str) if has_video else None
        keep = np.isfinite(z)
        if not keep.all():
            y, z, ids = y[keep], z[keep], ids[keep]
            video = None if video is None else video[keep]
        if y.size == 0:
            out.unavailable[kind] = f"the cache has no finite {name!r} value"
            continue
        videos = video is not None and bool((video != "").any())
        out.has_videos = out.has_videos or videos
        clusters = cluster_labels(video, ids) if videos else None
        boot = clusters if cfg.unit == "video" else None
        auc = auc_with_ci(y, z, boot, n_boot=cfg.n_boot, confidence=cfg.confidence,
                          seed=cfg.seed)  # fmt: skip
        auc["level"] = "video" if boot is not None else "frame"
        auc["score"] = "logit"
        video_auc, reason = None, ""
        if videos:
            vs = video_scores(y, z, video, ids)
            video_auc = auc_with_ci(vs.label, vs.score, None, n_boot=cfg.n_boot,
                                    confidence=cfg.confidence, seed=cfg.seed)  # fmt: skip
            video_auc.update(level="video", score="mean probability", n_frames=int(y.size))
        else:
            reason = NO_VIDEOS
        cal = calibration(y, z, n_bins=ECE_BINS, clusters=boot, n_boot=cfg.n_boot,
                          confidence=cfg.confidence, seed=cfg.seed)  # fmt: skip
        scaled, crossfit, why = None, None, ""
        try:
            crossfit = temperature_crossfit(y, z, clusters, seed=cfg.seed)
        except ValueError as err:
            why = str(err)
        if crossfit is not None:
            scaled = calibration(y, crossfit.scaled_logits, n_bins=ECE_BINS, clusters=boot,
                                 n_boot=cfg.n_boot, confidence=cfg.confidence,
                                 seed=cfg.seed)  # fmt: skip
        out.models[kind] = ModelDetection(kind, auc, video_auc, cal, scaled, crossfit, reason, why)
        out.level = "video" if boot is not None else out.level
    return out


# ----------------------------------------------------------------------------- figure


def plot_reliability(
    detection: DetectionAnalysis, *, width="double", model_names: dict | None = None
):
    """Draw the reliability diagram: one panel per model, samples per bin below.

    Per bin of :data:`ECE_BINS` equal-width bins of the predicted probability
    ``sigmoid(logit)``: a bar as wide as the bin up to the observed fraction
    of fakes, a dot at (mean predicted probability, observed fraction), the
    cross-fitted temperature-scaled probabilities as open diamonds, and the
    diagonal of perfect calibration; below, the samples per bin (log scale).
    Panels share both axes.

    Parameters
    ----------
    detection : DetectionAnalysis
        From :func:`detection_from_cache`.
    width : {"single", "double"}
    model_names : dict of str to str, optional
        Display names of the models.

    Returns
    -------
    matplotlib.figure.Figure
        Its caption (:func:`analysis.style.caption_of`) says what is drawn.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from analysis.style import (
        MODEL_COLORS,
        column_width,
        figure,
        model_name,
        publication_style,
        set_caption,
        unavailable_figure,
    )

    column_width(width)
    models = list(detection.models.values())
    if not models:
        why = "; ".join(detection.unavailable.values()) or "the cache has no logits"
        return unavailable_figure(
            f"{why} (extract with --defocus-model CKPT and/or --rgb-model CKPT)",
            "reliability diagram",
            width,
        )
    n_bins = detection.n_bins
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    with publication_style():
        fig = figure(width, 3.6 if width == "double" else 0.6 + 2.4 * len(models))
        if width == "double":
            grid = fig.add_gridspec(2, len(models), height_ratios=[3, 1])
            cells = [(grid[0, j], grid[1, j]) for j in range(len(models))]
        else:
            grid = fig.add_gridspec(2 * len(models), 1, height_ratios=[3, 1] * len(models))
            cells = [(grid[2 * j, 0], grid[2 * j + 1, 0]) for j in range(len(models))]
        first_top = first_bottom = None
        for j, (m, (top_cell, bottom_cell)) in enumerate(zip(models, cells, strict=True)):
            ax = fig.add_subplot(top_cell, sharex=first_top, sharey=first_top)
            hist = fig.add_subplot(bottom_cell, sharex=ax, sharey=first_bottom)
            first_top, first_bottom = first_top or ax, first_bottom or hist
            cal = m.calibration
            color = MODEL_COLORS.get(m.model, "black")
            filled = cal.bin_count > 0
            ax.bar(edges[:-1][filled], cal.bin_fake_fraction[filled], width=1.0 / n_bins,
                   align="edge", color="#D9D9D9", edgecolor="#777777", linewidth=0.4,
                   zorder=1)  # fmt: skip
            ax.plot([0, 1], [0, 1], color="#555555", lw=0.8, ls=(0, (3, 1.5)), zorder=2)
            ax.plot(cal.bin_mean_prob[filled], cal.bin_fake_fraction[filled], "o", ms=3,
                    color=color, zorder=4)  # fmt: skip
            handles = [
                Patch(facecolor="#D9D9D9", edgecolor="#777777", lw=0.4,
                      label=f"fraction of fakes; ECE = {cal.ece:.3f} "
                      f"[{cal.ece_ci[0]:.3f}, {cal.ece_ci[1]:.3f}]"),
                Line2D([], [], color=color, marker="o", ms=3, lw=0,
                       label="bin's mean predicted p"),
            ]  # fmt: skip
            if m.scaled is not None:
                s = m.scaled
                ok = s.bin_count > 0
                ax.plot(s.bin_mean_prob[ok], s.bin_fake_fraction[ok], "D", ms=3, mfc="white",
                        mec=color, mew=0.8, zorder=3)  # fmt: skip
                handles.append(Line2D([], [], color=color, marker="D", ms=3, mfc="white", lw=0,
                                      label=f"temperature-scaled: ECE = {s.ece:.3f}"))  # fmt: skip
            ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.01),
                      fontsize=5.5, handlelength=1.2, frameon=False, borderaxespad=0.0,
                      title=f"{model_name(m.model, model_names)} (n = {cal.n})",
                      title_fontsize=7, alignment="left")  # fmt: skip
            for line in ax.lines:
                line.set_clip_on(False)  # points at 0 or 1 drawn whole
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.tick_params(labelbottom=False)
            hist.bar(edges[:-1], np.where(cal.bin_count > 0, cal.bin_count, np.nan),
                     width=1.0 / n_bins, align="edge", color=color, edgecolor="white",
                     linewidth=0.3)  # fmt: skip
            hist.set_yscale("log")
            hist.set_xlabel("predicted probability of fake, sigmoid(logit)")
            if j == 0 or width == "single":
                ax.set_ylabel("observed fraction\nof fakes")
                hist.set_ylabel("samples")
            else:
                ax.tick_params(labelleft=False)
                hist.tick_params(labelleft=False)
    level = (
        f"whole videos resampled ({models[0].calibration.n_units} units)"
        if detection.level == "video"
        else "every frame taken as independent"
    )
    parts = []
    for m in models:
        cal = m.calibration
        text = (
            f"{model_name(m.model, model_names)}: {cal.n} test samples ({cal.n_real} real, "
            f"{cal.n_fake} fake), ECE {cal.ece:.3f} [{cal.ece_ci[0]:.3f}, {cal.ece_ci[1]:.3f}]"
        )
        if m.scaled is not None:
            t0, t1 = m.crossfit.temperatures
            text += f", after temperature scaling {m.scaled.ece:.3f} (T = {t0:.2f}, {t1:.2f})"
        else:
            text += f", no temperature scaling ({m.crossfit_reason})"
        parts.append(text)
    split = next((m.crossfit.split for m in models if m.crossfit is not None), None)
    scaling = (
        " Open diamonds: the same after temperature scaling cross-fitted over 2 folds split "
        f"by {split} (T fitted by minimising the NLL on one fold, applied to the other)."
        if split
        else ""
    )
    set_caption(
        fig,
        f"Reliability of each model's predicted probability sigmoid(logit) on the cached test "
        f"samples, in {n_bins} equal-width bins of width {1 / n_bins:.3g}: bars reach the "
        "observed fraction of fakes in the bin, dots sit at the bin's mean predicted "
        "probability; on the dashed diagonal a model is perfectly calibrated. Below: samples "
        f"per bin (log scale).{scaling} ECE = sum over bins of (bin share) x |fraction of "
        f"fakes - mean predicted probability|, {100 * models[0].calibration.confidence:g} % "
        f"bootstrap CI, {level}. " + "; ".join(parts) + ".",
    )
    return fig
