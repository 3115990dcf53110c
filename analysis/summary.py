"""One table with every number of every analysis, per group and model, as CSV and Markdown.

:func:`summarise_cache` streams the cache ONCE for the paired analyses
(binary masks, alignment, localisation share one pass), once more for the
local variance, and reads the small feature arrays for the embedding. The
result is a long table, one number per row::

    analysis | group | model | metric | value

with ``model`` empty where no model is involved (masks, variance) and
``metric`` naming the setting (``mean@T=0.1``...). Parts the cache cannot
support are rows with ``metric = "unavailable"`` and the reason in ``note``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.masks import PAPER_THRESHOLDS
from safeio import atomic_write_text

__all__ = ["COLUMNS", "summarise_cache", "summary_frames", "write_summary"]

COLUMNS = ["analysis", "group", "model", "metric", "value", "note"]


def _row(analysis, group, model, metric, value, note=""):
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    return {
        "analysis": analysis,
        "group": group,
        "model": model,
        "metric": metric,
        "value": value,
        "note": note,
    }


def summary_frames(analyses: dict) -> pd.DataFrame:
    """Flatten analysis results (by name: masks, variance, alignment, localisation, embedding).

    Returns
    -------
    pandas.DataFrame
        Columns ``analysis, group, model, metric, value, note``.
    """
    rows = []
    masks = analyses.get("masks")
    if masks is not None:
        for r in masks.stats.itertuples(index=False):
            for k in ("mean", "max", "min", "median", "n"):
                rows.append(_row("masks", r.group, "", f"{k}@T={r.threshold:g}", getattr(r, k)))
        if masks.agreement is not None:
            for r in masks.agreement.itertuples(index=False):
                for k in ("iou", "precision", "recall"):
                    rows.append(
                        _row("masks", r.group, "", f"{k}_vs_truth@T={r.threshold:g}", getattr(r, k))
                    )
        for g, n in masks.n_unpaired.items():
            rows.append(_row("masks", g, "", "n_unpaired", n))
        for k, v in masks.unavailable.items():
            rows.append(_row("masks", "", "", "unavailable", math.nan, f"{k}: {v}"))
    var = analyses.get("variance")
    if var is not None:
        if not var.per_image.empty:
            for (g, lab), sub in var.per_image.groupby(["group", "label"], sort=False):
                rows.append(
                    _row(
                        "variance",
                        g,
                        "",
                        f"mean_local_variance(label={lab})",
                        sub["mean_local_variance"].mean(),
                    )
                )
        for r in var.tests.to_dict("records"):
            for k in (
                "statistic",
                "pvalue",
                "pvalue_holm",
                "effect_size",
                "ci_low",
                "ci_high",
                "statistic_ci_low",
                "statistic_ci_high",
                "cohens_d",
                "mean_real",
                "mean_fake",
                "n_real",
                "n_fake",
            ):
                rows.append(
                    _row(
                        "variance",
                        r["group"],
                        "",
                        f"ks_{k}" if k.startswith(("statistic", "pvalue")) else k,
                        r[k],
                    )
                )
        for k, v in var.unavailable.items():
            rows.append(_row("variance", "", "", "unavailable", math.nan, f"{k}: {v}"))
    al = analyses.get("alignment")
    if al is not None:
        for r in al.summary.to_dict("records"):
            for k in (
                "n",
                "mean",
                "std",
                "ci_low",
                "ci_high",
                "kl_mean",
                "kl_std",
                "null_n",
                "observed_null_subset",
                "null_mean",
                "null_std",
                "p_value",
            ):
                rows.append(_row("alignment", r["group"], r["model"], k, r[k]))
        for k, v in al.unavailable.items():
            rows.append(_row("alignment", "", k, "unavailable", math.nan, v))
    loc = analyses.get("localisation")
    if loc is not None:
        for r in loc.summary.to_dict("records"):
            for k in ("mass", "rank", "pointing", "n", "chance"):
                rows.append(
                    _row("localisation", r["group"], r["model"], f"{k}@{r['region']}", r[k])
                )
        for m, d in loc.deletion.items():
            rows.append(_row("localisation", "all", m, "deletion_auc", float(np.mean(d.auc))))
            rows.append(
                _row("localisation", "all", m, "deletion_random_auc", float(np.mean(d.random_auc)))
            )
            rows.append(
                _row(
                    "localisation",
                    "all",
                    m,
                    "predict_vs_cached_logit_maxabs",
                    loc.deletion_check.get(m, math.nan),
                )
            )
        for k, v in loc.unavailable.items():
            rows.append(_row("localisation", "", k, "unavailable", math.nan, v))
    emb = analyses.get("embedding")
    if emb is not None:
        for r in emb.metrics.to_dict("records"):
            tag = (
                emb.method
                if r["perplexity"] != r["perplexity"]
                else f"{emb.method}@perplexity={r['perplexity']:g}"
            )
            for k in ("trustworthiness", "silhouette_label", "silhouette_group", "n"):
                rows.append(_row("embedding", "all", emb.field, f"{k}@{tag}", r[k]))
        for k, v in emb.unavailable.items():
            rows.append(_row("embedding", "", emb.field, "unavailable", math.nan, f"{k}: {v}"))
    return pd.DataFrame(rows, columns=COLUMNS)


def summarise_cache(
    cache,
    thresholds: Sequence[float] = PAPER_THRESHOLDS,
    window: int = 15,
    groups: Sequence[str] | None = None,
    by_position: bool = False,
    bins: int = 20,
    localisation_threshold: float = 0.1,
    n_boot: int = 1000,
    n_permutations: int = 100,
    null_samples: int = 128,
    embedding: bool = True,
    embedding_field: str = "features_defocus",
    perplexities: Sequence[float] = (5, 10, 20, 40),
    n_per_class: int = 1000,
    predict: dict | None = None,
    seed: int = 0,
    progress: bool = False,
    return_analyses: bool = False,
):
    """Every analysis of a cache in a long table (one number per row).

    Parameters
    ----------
    cache : cache reader
        From :func:`cache.open_cache`.
    thresholds : sequence of float
        Binary-mask sweep.
    window : int
        Local variance window.
    groups : sequence of str, optional
        Fake groups (default: all groups holding fakes).
    by_position : bool
        Pair by position instead of pair id (warns).
    bins : int
        Alignment histogram bins.
    localisation_threshold : float
        ``T`` of the binary defocus mask used as a localisation region.
    n_boot, n_permutations, null_samples
        Bootstrap and permutation settings.
    embedding : bool
        Include the embedding (t-SNE sweep of ``embedding_field``).
    embedding_field : str
    perplexities : sequence of float
    n_per_class : int
        Reals and fakes embedded.
    predict : dict of str to callable, optional
        Model callables for the deletion curves (else marked unavailable).
    seed : int
    progress : bool
        Show progress bars.
    return_analyses : bool
        Also return the full analysis objects (for figures without a second
        pass over the cache).

    Returns
    -------
    pandas.DataFrame
        Columns ``analysis, group, model, metric, value, note``.
    analyses : dict, only with ``return_analyses=True``
        ``{"masks": MaskAnalysis, "variance": VarianceAnalysis, "alignment":
        AlignmentAnalysis, "localisation": LocalisationAnalysis,
        "embedding": EmbeddingAnalysis}`` (no "embedding" when disabled).
    """
    from analysis.alignment import AlignmentAccumulator
    from analysis.embedding import embedding_from_cache
    from analysis.localisation import LocalisationAccumulator, deletion_from_cache
    from analysis.masks import MaskAccumulator
    from analysis.pairing import plan_pairs, run_paired
    from analysis.variance import variance_from_cache

    plan = plan_pairs(cache, groups=groups, by_position=by_position)
    masks = MaskAccumulator(thresholds)
    align = AlignmentAccumulator(
        bins, n_permutations=n_permutations, null_samples=null_samples, seed=seed
    )
    loc = LocalisationAccumulator(localisation_threshold)
    run_paired(cache, [masks, align, loc], groups=groups, plan=plan, progress=progress)
    analyses = {
        "masks": masks.finalize(plan.n_unpaired),
        "alignment": align.finalize(n_boot=n_boot, seed=seed),
    }
    loc_result = loc.finalize()
    curves, check, unavailable = deletion_from_cache(cache, predict, seed=seed)
    loc_result.deletion, loc_result.deletion_check = curves, check
    loc_result.unavailable.update(unavailable)
    analyses["localisation"] = loc_result
    analyses["variance"] = variance_from_cache(
        cache, window, groups=groups, n_boot=n_boot, seed=seed, progress=progress
    )
    if embedding:
        analyses["embedding"] = embedding_from_cache(
            cache, embedding_field, perplexities=perplexities, n_per_class=n_per_class, seed=seed
        )
    df = summary_frames(analyses)
    return (df, analyses) if return_analyses else df


def _md_value(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "—"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(v)


def _markdown_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    for rec in df.itertuples(index=False):
        cells = [_md_value(v).replace("|", "\\|") for v in rec]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_summary(df: pd.DataFrame, out_dir, stem: str = "summary") -> dict[str, Path]:
    """Write the long table as ``<stem>.csv`` and a sectioned ``<stem>.md``.

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`summarise_cache` (or :func:`summary_frames`).
    out_dir : str or Path
        Folder (created when needed).
    stem : str
        File name without extension.

    Returns
    -------
    dict
        ``{"csv": Path, "markdown": Path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / f"{stem}.csv"
    md = out / f"{stem}.md"
    atomic_write_text(csv, pd.DataFrame(df)[COLUMNS].to_csv(index=False))
    parts = ["# Analysis summary", ""]
    for name, sub in pd.DataFrame(df).groupby("analysis", sort=False):
        sub = sub[COLUMNS[1:]]
        # a column empty throughout a section (e.g. "model" for masks) is left out
        keep = [c for c in sub.columns if c == "value" or sub[c].astype(str).str.len().gt(0).any()]
        parts += [f"## {name}", "", _markdown_table(sub[keep]), ""]
    atomic_write_text(md, "\n".join(parts))
    return {"csv": csv, "markdown": md}
