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

__all__ = ["COMPARISON_COLUMNS", "compare_models", "plot_model_comparison"]

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


def _spread(values: np.ndarray, half_width: float) -> np.ndarray:
    """Deterministic horizontal offsets for a strip of dots: neighbours in value alternate sides.

    Offsets grow with the rank within runs of close values, so dots of equal
    value fan out instead of hiding one another (no randomness: the figure is
    the same at every draw).
    """
    n = values.size
    if n <= 1:
        return np.zeros(n)
    order = np.argsort(values, kind="stable")
    span = float(np.ptp(values)) or 1.0
    out = np.zeros(n)
    run = 0
    for k in range(1, n):
        close = values[order[k]] - values[order[k - 1]] < 0.03 * span
        run = run + 1 if close else 0
        side = 1 if run % 2 else -1
        out[order[k]] = side * min(half_width, ((run + 1) // 2) * half_width / 4)
    return out


def plot_model_comparison(
    analysis,
    *,
    width="double",
    model_names: dict | None = None,
    metrics: Sequence[str] = ("skill", "score"),
):
    """Draw the paired differences between two models on the same fakes, per group.

    One panel per metric (the skill, then the raw alignment score): for each
    manipulation, every fake's difference ``model_a - model_b`` as a dot
    (its manipulation's colour), the mean difference with its confidence
    interval (black diamond and bar, beside the dots) and, under the group's
    name, n and the two-sided sign-flip p-value with its resolution. A dashed
    line marks 0 (no difference).

    Parameters
    ----------
    analysis : analysis.alignment.AlignmentAnalysis
        With ``comparison`` and ``differences`` (both models in the cache).
    width : {"single", "double"}
        Paper width: panels side by side (double) or stacked (single).
    model_names : dict of str to str, optional
        Display names of the models (``"defocus"``, ``"rgb"``).
    metrics : sequence of {"skill", "score"}
        The compared quantities, one panel each.

    Returns
    -------
    matplotlib.figure.Figure
        Its caption (:func:`analysis.style.caption_of`) says what is drawn.
    """
    from matplotlib.lines import Line2D

    from analysis.style import (
        column_width,
        figure,
        group_colors,
        level_text,
        model_name,
        publication_style,
        set_caption,
        unavailable_figure,
        wrap_label,
    )

    column_width(width)
    comp = getattr(analysis, "comparison", pd.DataFrame())
    diffs = getattr(analysis, "differences", pd.DataFrame())
    if comp is None or comp.empty or diffs is None or diffs.empty:
        from analysis.alignment import unavailable_reason

        why = unavailable_reason(analysis)
        reason = "the paired comparison needs both models' attributions of the same fakes"
        return unavailable_figure(reason + (f" ({why})" if why else ""), "model comparison", width)
    metrics = [m for m in metrics if f"diff_{m}" in diffs.columns]
    if not metrics:
        raise ValueError("metrics must name compared columns (e.g. 'skill', 'score')")
    first = comp.iloc[0]
    a, b = str(first["model_a"]), str(first["model_b"])
    name_a, name_b = model_name(a, model_names), model_name(b, model_names)
    groups = list(dict.fromkeys(diffs["group"]))
    colors = group_colors(["real", *groups])
    rows = comp.set_index(["group", "metric"])
    titles = {
        "skill": "skill difference",
        "score": "raw-score difference",
    }
    with publication_style():
        if width == "single":
            fig = figure(width, 2 * 1.45 + 0.7)
            axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
        else:
            fig = figure(width, 2.35)
            axes = fig.subplots(1, len(metrics), squeeze=False)[0]
        for ax, metric in zip(axes, metrics, strict=True):
            ticks = []
            for i, g in enumerate(groups):
                d = diffs.loc[diffs["group"] == g, f"diff_{metric}"].to_numpy(np.float64)
                d = d[np.isfinite(d)]
                if d.size:
                    ax.plot(i - 0.12 + _spread(d, 0.16), d, ls="none", marker="o", ms=2.2,
                            mew=0, color=colors[g], zorder=2)  # fmt: skip
                label = wrap_label(g, 16)
                if (g, metric) in rows.index:
                    r = rows.loc[(g, metric)]
                    mean, lo, hi = float(r["mean_diff"]), float(r["ci_low"]), float(r["ci_high"])
                    if np.isfinite(mean):
                        yerr = [[mean - lo], [hi - mean]] if np.isfinite(lo) else None
                        ax.errorbar(i + 0.2, mean, yerr=yerr, color="black", marker="D", ms=3.2,
                                    lw=0.9, capsize=1.8, capthick=0.8, zorder=3)  # fmt: skip
                    p = float(r["p_signflip"])
                    p_min = float(r["p_min"])
                    ptxt = "p n/a" if not np.isfinite(p) else (
                        f"p ≤ {p_min:.2g}" if p <= p_min * (1 + 1e-9) else f"p = {p:.2g}"
                    )  # fmt: skip
                    label += f"\nn={int(r['n'])}, {ptxt}"
                ticks.append(label)
            ax.axhline(0.0, color="#555555", lw=0.8, ls=(0, (3, 1.5)), zorder=0)
            ax.set_xticks(range(len(groups)), ticks, fontsize=6)
            ax.set_xlim(-0.6, len(groups) - 0.4)
            ax.tick_params(axis="x", length=0)
            ax.set_title(titles.get(metric, metric), fontsize=7)
            ax.set_ylabel(f"{metric}: {a} − {b}")
        handles = [
            Line2D([], [], ls="none", marker="o", ms=2.5, mew=0, color="#777777",
                   label="one fake (colour: manipulation)"),
            Line2D([], [], color="black", marker="D", ms=3.2, lw=0.9,
                   label="mean difference and its CI"),
            Line2D([], [], color="#555555", lw=0.8, ls=(0, (3, 1.5)), label="0 = no difference"),
        ]  # fmt: skip
        fig.legend(handles=handles, loc="outside lower center",
                   ncols=1 if width == "single" else 3)  # fmt: skip
    level = str(first.get("level", "frame"))
    n_units = int(comp["n_clusters"].max()) if level == "video" else None
    n_perm = sorted({int(v) for v in comp["n_permutations"]})
    p_min = float(comp["p_min"].min())
    confidence = float(first["confidence"])
    set_caption(
        fig,
        f"Paired comparison of the {name_a} and the {name_b} on the same fakes. Per fake "
        f"(dots, in its manipulation's colour), the difference {a} − {b} of "
        + " and of ".join(
            {
                "skill": "its skill (score − floor) / (1 − floor)",
                "score": "its raw alignment score",
            }.get(m, m)
            for m in metrics
        )  # fmt: skip
        + f" ({' and '.join(titles.get(m, m) for m in metrics)} panels); black diamond and "
        f"bar: the mean difference and its {100 * confidence:g} % bootstrap CI "
        f"({int(first['n_boot'])} resamples). Under each manipulation: n fakes scored by both "
        "models and the two-sided sign-flip permutation p-value of a mean difference of 0 "
        f"({', '.join(map(str, n_perm))} permutations; smallest reachable p {p_min:.2g}). "
        f"Above 0: the {name_a}'s attributions align better. Intervals and tests: "
        f"{level_text(level, n_units)}.",
    )
    return fig
