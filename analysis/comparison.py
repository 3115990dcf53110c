"""Paired comparison of two models' attributions on the same fakes (e.g. defocus vs RGB).

"The defocus model aligns better than the RGB model" is a claim about the
same fakes seen by two models, so it is tested per sample, paired: for each
fake scored by both models, the difference ``a - b`` of its skill (and of
its raw score); then the mean difference with a cluster-bootstrap interval,
a two-sided sign-flip permutation test (one flip per video, or per fake
without videos) and a Wilcoxon signed-rank test (on per-video mean
differences). See :func:`analysis.stats.paired_comparison`. One model being
"significant" and the other not is no such comparison.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.config import AnalysisConfig, resolve_config
from analysis.stats import cluster_labels, paired_comparison

__all__ = ["COMPARISON_COLUMNS", "compare_models"]

#: Columns of the comparison table, in order.
COMPARISON_COLUMNS = [
    "group",
    "metric",
    "model_a",
    "model_b",
    "level",
    "n",
    "n_clusters",
    "mean_a",
    "mean_b",
    "mean_diff",
    "ci_low",
    "ci_high",
    "p_signflip",
    "p_wilcoxon",
    "n_permutations",
    "p_min",
    "n_boot",
    "confidence",
]


def compare_models(
    per_sample: pd.DataFrame,
    model_a: str = "defocus",
    model_b: str = "rgb",
    metrics: Sequence[str] = ("skill", "score"),
    config: AnalysisConfig | None = None,
    level: str = "frame",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-sample differences ``model_a - model_b`` and their paired tests, per group.

    Parameters
    ----------
    per_sample : pandas.DataFrame
        Columns ``group, id, model`` and the ``metrics`` (and ``video`` for
        video-level inference), one row per fake and model, as
        :attr:`analysis.alignment.AlignmentAnalysis.per_sample`.
    model_a, model_b : str
        The two models; differences are ``a - b``.
    metrics : sequence of str
        Columns compared.
    config : AnalysisConfig, optional
        ``n_boot``, ``n_permutations``, ``confidence``, ``seed``.
    level : {"video", "frame"}
        ``"video"``: the fakes of one video form one cluster (resampled and
        sign-flipped together; a fake with an empty video is its own cluster).

    Returns
    -------
    comparison : pandas.DataFrame
        One row per group and metric, columns :data:`COMPARISON_COLUMNS`
        (fields of :class:`analysis.stats.PairedComparison`).
    differences : pandas.DataFrame
        One row per fake scored by both models: ``group, id, video`` and, per
        metric, ``<metric>_a``, ``<metric>_b``, ``diff_<metric>``.
    """
    cfg = resolve_config(config)
    if level not in ("video", "frame"):
        raise ValueError(f"level must be 'video' or 'frame', got {level!r}")
    missing = [c for c in ("group", "id", "model", *metrics) if c not in per_sample.columns]
    if missing:
        raise ValueError(f"per_sample lacks the columns {missing}")
    df = per_sample.copy()
    if "video" not in df.columns:
        df["video"] = ""
    keys = ["group", "id"]
    a = df[df["model"] == model_a][[*keys, "video", *metrics]]
    b = df[df["model"] == model_b][[*keys, *metrics]]
    both = a.merge(b, on=keys, suffixes=("_a", "_b"), validate="one_to_one")
    for m in metrics:
        both[f"diff_{m}"] = both[f"{m}_a"] - both[f"{m}_b"]
    cols = [*keys, "video"] + [c for m in metrics for c in (f"{m}_a", f"{m}_b", f"diff_{m}")]
    differences = both[cols].reset_index(drop=True)
    rows = []
    for g, sub in differences.groupby("group", sort=False):
        clusters = cluster_labels(sub["video"], sub["id"]) if level == "video" else None
        for m in metrics:
            res = paired_comparison(
                sub[f"{m}_a"].to_numpy(np.float64),
                sub[f"{m}_b"].to_numpy(np.float64),
                clusters=clusters,
                n_boot=cfg.n_boot,
                n_permutations=cfg.n_permutations,
                confidence=cfg.confidence,
                seed=cfg.seed,
            )
            rows.append(
                {"group": g, "metric": m, "model_a": model_a, "model_b": model_b, "level": level}
                | res.to_dict()
            )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS), differences
