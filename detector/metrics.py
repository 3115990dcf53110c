"""Detection metrics from labels and logits: accuracy, AUC, AP, EER, video-level AUC.

All functions take plain arrays (label 1 = fake, score = logit of "fake")
and return floats; a metric that is undefined on the data (AUC with one
class present) is ``nan``, written as ``null`` in JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "binary_metrics",
    "equal_error_rate",
    "video_scores",
]


def _as_arrays(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores must have the same length, got {y.size} and {s.size}")
    if y.size and not np.isin(y, (0, 1)).all():
        bad = y[~np.isin(y, (0, 1))][0]
        raise ValueError(f"labels must be 0 (real) or 1 (fake), got {bad!r}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return y.astype(np.int64), s


def equal_error_rate(labels, scores) -> tuple[float, float]:
    """Equal error rate: where the false-positive and false-negative rates meet.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        0 real, 1 fake.
    scores : array-like of shape (n_samples,)
        Higher means more likely fake.

    Returns
    -------
    eer : float
        The error rate at the crossing of FPR and FNR = 1 - TPR along the
        ROC curve, linearly interpolated between ROC points; nan if one
        class is absent.
    threshold : float
        The score threshold at the crossing (interpolated likewise).
    """
    from sklearn.metrics import roc_curve

    y, s = _as_arrays(labels, scores)
    if y.size == 0 or y.min() == y.max():
        return math.nan, math.nan
    fpr, tpr, thr = roc_curve(y, s)
    fnr = 1.0 - tpr
    diff = fnr - fpr  # decreasing from 1 to -1 along the curve
    i = int(np.nonzero(diff <= 0)[0][0])
    if i == 0 or diff[i] == 0:
        return float(fpr[i]), float(thr[i])
    # crossing between points i-1 (diff > 0) and i (diff <= 0)
    t = diff[i - 1] / (diff[i - 1] - diff[i])
    eer = fpr[i - 1] + t * (fpr[i] - fpr[i - 1])
    t_lo, t_hi = thr[i - 1], thr[i]
    threshold = t_lo + t * (t_hi - t_lo) if np.isfinite(t_lo) else t_hi
    return float(eer), float(threshold)


def video_scores(
    labels, scores, video_ids: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Average the scores of each video (frames sharing a non-empty video id).

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
    scores : array-like of shape (n_samples,)
    video_ids : sequence of str of length n_samples
        Empty strings mark samples without a video; they are left out.

    Returns
    -------
    labels : ndarray of shape (n_videos,)
    scores : ndarray of shape (n_videos,)
        Mean frame score per video.
    videos : list of str
        The video ids, sorted.

    Raises
    ------
    ValueError
        If the frames of one video carry different labels.
    """
    y, s = _as_arrays(labels, scores)
    vids = np.asarray(list(video_ids), dtype=object)
    if vids.shape != y.shape:
        raise ValueError(f"video_ids must have {y.size} entries, got {vids.size}")
    keep = vids != ""
    names = sorted(set(vids[keep].tolist()))
    out_y = np.empty(len(names), dtype=np.int64)
    out_s = np.empty(len(names), dtype=np.float64)
    for j, name in enumerate(names):
        sel = vids == name
        ly = np.unique(y[sel])
        if ly.size != 1:
            raise ValueError(f"video {name!r} has frames labelled both real and fake")
        out_y[j], out_s[j] = ly[0], s[sel].mean()
    return out_y, out_s, names


def binary_metrics(
    labels, logits, video_ids: Sequence[str] | None = None, threshold: float = 0.0
) -> dict[str, float | int]:
    """Accuracy, AUC, AP, EER and (when videos are known) video-level AUC.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        0 real, 1 fake.
    logits : array-like of shape (n_samples,)
        Logits of "fake" (probability ``sigmoid(logit)``).
    video_ids : sequence of str, optional
        Video of each sample ("" if none); enables ``video_auc``.
    threshold : float, default=0.0
        Logit threshold of the accuracy (0 is probability 0.5).

    Returns
    -------
    dict
        ``n``, ``n_real``, ``n_fake``, ``accuracy``, ``auc``, ``ap``,
        ``eer``, ``eer_threshold`` (a logit), ``tp``, ``fp``, ``tn``,
        ``fn``, ``video_auc`` and ``n_videos`` (nan and 0 without videos).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, s = _as_arrays(labels, logits)
    pred = (s > threshold).astype(np.int64)
    both = y.size > 0 and y.min() != y.max()
    out: dict[str, float | int] = {
        "n": int(y.size),
        "n_real": int((y == 0).sum()),
        "n_fake": int((y == 1).sum()),
        "accuracy": float((pred == y).mean()) if y.size else math.nan,
        "auc": float(roc_auc_score(y, s)) if both else math.nan,
        "ap": float(average_precision_score(y, s)) if both else math.nan,
    }
    out["eer"], out["eer_threshold"] = equal_error_rate(y, s)
    out.update(
        tp=int(((pred == 1) & (y == 1)).sum()),
        fp=int(((pred == 1) & (y == 0)).sum()),
        tn=int(((pred == 0) & (y == 0)).sum()),
        fn=int(((pred == 0) & (y == 1)).sum()),
    )
    out["video_auc"], out["n_videos"] = math.nan, 0
    if video_ids is not None:
        vy, vs, names = video_scores(y, s, video_ids)
        out["n_videos"] = len(names)
        if vy.size and vy.min() != vy.max():
            out["video_auc"] = float(roc_auc_score(vy, vs))
    return out
