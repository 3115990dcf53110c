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

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

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


def _level_note(level: str, n_clusters=None, unit: str = "videos") -> str:
    if level == "video":
        return f"video-level ({n_clusters} {unit} resampled/tested as units)"
    return "frame-level (every frame independent)"


def _p_note(n_permutations, p_min, level_note: str = "") -> str:
    text = f"n_permutations={int(n_permutations)}, smallest reachable p={p_min:.2g}"
    return f"{text}; {level_note}" if level_note else text


def _config_rows(config: dict) -> list[dict]:
    rows = []
    for k, v in config.items():
        value = json.dumps(v) if isinstance(v, (list, tuple, dict)) else v
        rows.append(_row("config", "", "", k, value, "analysis setting (AnalysisConfig)"))
    return rows


def _variance_rows(var) -> list[dict]:
    rows = []
    if not var.per_image.empty:
        for (g, lab), sub in var.per_image.groupby(["group", "label"], sort=False):
            rows.append(
                _row(
                    "variance",
                    g,
                    "",
                    f"mean_local_variance(label={lab})",
                    sub["mean_local_variance"].mean(),
                    f"padding={var.padding}, window={var.window}",
                )
            )
    keys = (
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
        "n_real_frames",
        "n_fake_frames",
    )
    tables = [(var.tests, "")]
    if getattr(var, "level", "frame") == "video" and not var.frame_tests.empty:
        tables.append((var.frame_tests, "[frame-level]"))
    for table, suffix in tables:
        for r in table.to_dict("records"):
            level = r.get("level", "frame")
            if level == "video":
                note = (
                    f"video-level: per-video means, {r['n_real']} real and "
                    f"{r['n_fake']} fake videos"
                )
            else:
                note = "frame-level (every image independent)"
            for k in keys:
                if k not in r:
                    continue
                name = f"ks_{k}" if k.startswith(("statistic", "pvalue")) else k
                rows.append(_row("variance", r["group"], "", name + suffix, r[k], note))
    paired = getattr(var, "paired", None)
    if paired is not None and not paired.empty:
        for r in paired.to_dict("records"):
            lnote = _level_note(r["level"], r["n_clusters"])
            meaning = "fake minus the real image it was made from, per-image mean local variance"
            for k in (
                "n",
                "n_clusters",
                "mean_fake",
                "mean_real",
                "mean_diff",
                "ci_low",
                "ci_high",
            ):
                rows.append(
                    _row("variance", r["group"], "", f"paired_{k}", r[k], f"{meaning}; {lnote}")
                )
            for k in ("p_signflip", "p_signflip_holm"):
                rows.append(
                    _row(
                        "variance",
                        r["group"],
                        "",
                        f"paired_{k}",
                        r[k],
                        "two-sided sign-flip test; "
                        + _p_note(r["n_permutations"], r["p_min"], lnote),
                    )
                )
            for k in ("p_wilcoxon", "p_wilcoxon_holm"):
                rows.append(
                    _row(
                        "variance",
                        r["group"],
                        "",
                        f"paired_{k}",
                        r[k],
                        f"two-sided Wilcoxon; {lnote}",
                    )
                )
    border = getattr(var, "border", None)
    if border is not None and not border.empty:
        note = (
            f"share of local-variance mass in the {var.border_band}-px border band "
            f"(padding={var.padding})"
        )
        for r in border.to_dict("records"):
            rows.append(
                _row(
                    "variance",
                    r["group"],
                    "",
                    f"border_mass_share(label={r['label']})",
                    r["mass_share"],
                    note,
                )
            )
        rows.append(_row("variance", "all", "", "border_mass_share", var.border_mass_share, note))
        rows.append(
            _row(
                "variance",
                "all",
                "",
                "border_area_share",
                var.border_area_share,
                f"share of the map area in the {var.border_band}-px border band",
            )
        )
    if hasattr(var, "padding"):
        rows.append(
            _row("variance", "all", "", "padding", var.padding, "local-variance border treatment")
        )
    for k, v in var.unavailable.items():
        rows.append(_row("variance", "", "", "unavailable", math.nan, f"{k}: {v}"))
    return rows


def _alignment_rows(al) -> list[dict]:
    from analysis.alignment import MEANINGS

    rows = []
    level = getattr(al, "level", "frame")
    for r in al.summary.to_dict("records"):
        g, m = r["group"], r["model"]
        lnote = _level_note(r.get("level", level), r.get("n_clusters"))
        for k in ("n", "n_clusters"):
            if k in r:
                rows.append(
                    _row("alignment", g, m, k, r[k], lnote if k == "n_clusters" else "fakes")
                )
        for k in ("mean", "std", "ci_low", "ci_high", "floor_mean"):
            rows.append(_row("alignment", g, m, k, r[k], MEANINGS.get(k, f"raw score; {lnote}")))
        if "skill_mean" in r:
            for k in ("skill_n", "skill_mean", "skill_std", "skill_ci_low", "skill_ci_high"):
                note = MEANINGS.get(k, f"skill; {lnote}")
                rows.append(_row("alignment", g, m, k, r[k], note))
            for k in ("skill_p_signflip", "skill_p_wilcoxon"):
                note = (
                    MEANINGS[k]
                    + "; "
                    + (
                        _p_note(r["n_permutations"], r["p_min"], lnote)
                        if "signflip" in k
                        else lnote
                    )
                )
                rows.append(_row("alignment", g, m, k, r[k], note))
        for k in ("kl_mean", "kl_std", "null_n", "observed_null_subset", "null_mean", "null_std"):
            rows.append(_row("alignment", g, m, k, r[k]))
        pnote = MEANINGS["p_value"]
        if r.get("null_n_permutations"):
            lv = r.get("null_level", "frame")
            pnote += "; " + _p_note(
                r["null_n_permutations"],
                r["null_p_min"],
                "whole videos deranged" if lv == "video" else "samples deranged",
            )
        rows.append(_row("alignment", g, m, "p_value", r["p_value"], pnote))
    frame = getattr(al, "frame_summary", None)
    if level == "video" and frame is not None and not frame.empty:
        for r in frame.to_dict("records"):
            for k in (
                "ci_low",
                "ci_high",
                "skill_ci_low",
                "skill_ci_high",
                "skill_p_signflip",
                "skill_p_wilcoxon",
            ):
                rows.append(
                    _row(
                        "alignment",
                        r["group"],
                        r["model"],
                        f"{k}[frame-level]",
                        r[k],
                        "frame-level (every frame independent; optimistic for video data)",
                    )
                )
    comp = getattr(al, "comparison", None)
    if comp is not None and not comp.empty:
        for r in comp.to_dict("records"):
            model = f"{r['model_a']}-{r['model_b']}"
            lnote = _level_note(r["level"], r["n_clusters"])
            what = (
                f"paired difference {r['model_a']} - {r['model_b']} of the {r['metric']} "
                "on the same fakes"
            )
            for k, name in (("n", "n"), ("mean_diff", "mean"), ("ci_low", "ci_low"),
                            ("ci_high", "ci_high")):  # fmt: skip
                metric = f"{r['metric']}_diff_{name}"
                rows.append(_row("alignment", r["group"], model, metric, r[k], f"{what}; {lnote}"))
            rows.append(
                _row(
                    "alignment",
                    r["group"],
                    model,
                    f"{r['metric']}_diff_p_signflip",
                    r["p_signflip"],
                    f"two-sided sign-flip test of the {what}; "
                    + _p_note(r["n_permutations"], r["p_min"], lnote),
                )
            )
            rows.append(
                _row(
                    "alignment",
                    r["group"],
                    model,
                    f"{r['metric']}_diff_p_wilcoxon",
                    r["p_wilcoxon"],
                    f"two-sided Wilcoxon signed-rank test of the {what}; {lnote}",
                )
            )
    for m, f in getattr(al, "sources", {}).items():
        if f == "attr_rgb_c0":
            rows.append(
                _row(
                    "alignment",
                    "all",
                    m,
                    "attribution_field",
                    f,
                    "channel 0 only of the RGB attributions (the paper's files keep no more)",
                )
            )
    for k, v in al.unavailable.items():
        rows.append(_row("alignment", "", k, "unavailable", math.nan, v))
    return rows


def _detection_rows(det) -> list[dict]:
    """Rows of a DetectionAnalysis: AUCs, calibration before and after temperature scaling."""
    rows = []
    for m, d in det.models.items():
        a = d.auc
        note = _level_note(a.get("level", "frame"), a.get("n_units"))
        for k in ("auc", "ci_low", "ci_high"):
            rows.append(_row("detection", "all", m, f"frame_{k}", a.get(k), f"logit; {note}"))
        if d.video_auc is not None:
            v = d.video_auc
            note = (f"mean probability per video; {v['n']} videos ({v['n_frames']} frames), each "
                    "video one unit")  # fmt: skip
            for k in ("auc", "ci_low", "ci_high"):
                rows.append(_row("detection", "all", m, f"video_{k}", v.get(k), note))
        else:
            rows.append(_row("detection", "all", m, "video_auc", math.nan,
                             f"n/a ({d.video_auc_reason})"))  # fmt: skip
        for tag, cal in (("", d.calibration), ("scaled_", d.scaled)):
            if cal is None:
                rows.append(_row("detection", "all", m, "scaled_ece", math.nan,
                                 f"n/a ({d.crossfit_reason})"))  # fmt: skip
                continue
            note = f"{cal.n_bins} equal-width bins; " + _level_note(cal.level, cal.n_units)
            if tag:
                t0, t1 = d.crossfit.temperatures
                note = (f"cross-fitted temperature scaling (2 folds by {d.crossfit.split}, "
                        f"T = {t0:.4g}, {t1:.4g}); {note}")  # fmt: skip
            for k in ("ece", "brier", "nll"):
                lo, hi = getattr(cal, f"{k}_ci")
                rows.append(_row("detection", "all", m, f"{tag}{k}", getattr(cal, k), note))
                rows.append(_row("detection", "all", m, f"{tag}{k}_ci_low", lo, note))
                rows.append(_row("detection", "all", m, f"{tag}{k}_ci_high", hi, note))
        if d.crossfit is not None:
            for j, t in enumerate(d.crossfit.temperatures):
                rows.append(_row("detection", "all", m, f"temperature_fold{j}", t,
                                 f"fitted on fold {j}, applied to fold {1 - j}"))  # fmt: skip
    for k, v in det.unavailable.items():
        rows.append(_row("detection", "", k, "unavailable", math.nan, v))
    return rows


def summary_frames(analyses: dict, config=None) -> pd.DataFrame:
    """Flatten analysis results into the long table, one number per row.

    Analyses by name: masks, variance, alignment, localisation, embedding,
    detection, sanity.

    Parameters
    ----------
    analyses : dict
        Analysis objects by name.
    config : AnalysisConfig or dict, optional
        Recorded as rows of ``analysis = "config"`` (one per setting).

    Returns
    -------
    pandas.DataFrame
        Columns ``analysis, group, model, metric, value, note``. ``note``
        says what a number means where it is not obvious: the level of
        inference ("video-level"/"frame-level") of every interval and test,
        and the resolution (number of permutations, smallest reachable
        p-value) of every permutation p-value.
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
        rows += _variance_rows(var)
    al = analyses.get("alignment")
    if al is not None:
        rows += _alignment_rows(al)
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
    det = analyses.get("detection")
    if det is not None:
        rows += _detection_rows(det)
    sanity = analyses.get("sanity")
    if sanity is not None:
        # one SanityResult or a list of them (one per model, as read_sanity returns)
        for result in sanity if isinstance(sanity, (list, tuple)) else [sanity]:
            rows += [_row(**r) for r in result.summary_rows()]
    if config is not None:
        from analysis.config import resolve_config

        rows += _config_rows(resolve_config(config).to_dict())
    return pd.DataFrame(rows, columns=COLUMNS)


def summarise_cache(
    cache,
    thresholds: Sequence[float] | None = None,
    window: int | None = None,
    groups: Sequence[str] | None = None,
    by_position: bool = False,
    bins: int | None = None,
    localisation_threshold: float | None = None,
    n_boot: int | None = None,
    n_permutations: int | None = None,
    null_samples: int | None = None,
    embedding: bool = True,
    embedding_field: str = "features_defocus",
    perplexities: Sequence[float] | None = None,
    n_per_class: int | None = None,
    predict: dict | None = None,
    seed: int | None = None,
    progress: bool = False,
    return_analyses: bool = False,
    *,
    padding: str | None = None,
    config=None,
):
    """Every analysis of a cache in a long table (one number per row).

    Parameters
    ----------
    cache : cache reader
        From :func:`cache.open_cache`.
    thresholds : sequence of float, optional
        Binary-mask sweep.
    window : int, optional
        Local variance window.
    groups : sequence of str, optional
        Fake groups (default: all groups holding fakes).
    by_position : bool
        Pair by position instead of pair id (warns).
    bins : int, optional
        Alignment histogram bins.
    localisation_threshold : float, optional
        ``T`` of the binary defocus mask used as a localisation region.
    n_boot, n_permutations, null_samples : int, optional
        Bootstrap and permutation settings.
    embedding : bool
        Include the embedding (t-SNE sweep of ``embedding_field``).
    embedding_field : str
    perplexities : sequence of float, optional
    n_per_class : int, optional
        Reals and fakes embedded.
    predict : dict of str to callable, optional
        Model callables for the deletion curves (else marked unavailable).
    seed : int, optional
    progress : bool
        Show progress bars.
    return_analyses : bool
        Also return the full analysis objects (for figures without a second
        pass over the cache).
    padding : {"zeros", "reflect"}, optional
        Local-variance border treatment.
    config : AnalysisConfig or dict, optional
        Every setting at once (default ``AnalysisConfig()``); the keyword
        arguments above that are not None override it. The config used is
        recorded in the table (rows of ``analysis = "config"``), in
        ``table.attrs["config"]`` and in every analysis object's ``config``.

    Returns
    -------
    pandas.DataFrame
        Columns ``analysis, group, model, metric, value, note``.
    analyses : dict, only with ``return_analyses=True``
        ``{"masks": MaskAnalysis, "variance": VarianceAnalysis, "alignment":
        AlignmentAnalysis, "localisation": LocalisationAnalysis,
        "embedding": EmbeddingAnalysis, "detection": DetectionAnalysis}``
        (no "embedding" when disabled).
    """
    from analysis.alignment import AlignmentAccumulator
    from analysis.config import resolve_config
    from analysis.detection import detection_from_cache
    from analysis.embedding import embedding_from_cache
    from analysis.localisation import LocalisationAccumulator, deletion_from_cache
    from analysis.masks import MaskAccumulator
    from analysis.pairing import plan_pairs, run_paired
    from analysis.variance import variance_from_cache

    cfg = resolve_config(
        config,
        thresholds=thresholds,
        window=window,
        bins=bins,
        localisation_threshold=localisation_threshold,
        n_boot=n_boot,
        n_permutations=n_permutations,
        null_samples=null_samples,
        perplexities=perplexities,
        n_per_class=n_per_class,
        seed=seed,
        padding=padding,
    )
    plan = plan_pairs(cache, groups=groups, by_position=by_position)
    masks = MaskAccumulator(cfg.thresholds)
    align = AlignmentAccumulator(cfg)
    loc = LocalisationAccumulator(cfg.localisation_threshold)
    run_paired(cache, [masks, align, loc], groups=groups, plan=plan, progress=progress)
    analyses = {"masks": masks.finalize(plan.n_unpaired), "alignment": align.finalize()}
    analyses["masks"].config = cfg.to_dict()
    loc_result = loc.finalize()
    loc_result.config = cfg.to_dict()
    curves, check, unavailable = deletion_from_cache(cache, predict, seed=cfg.seed)
    loc_result.deletion, loc_result.deletion_check = curves, check
    loc_result.unavailable.update(unavailable)
    analyses["localisation"] = loc_result
    analyses["variance"] = variance_from_cache(cache, groups=groups, progress=progress, config=cfg)
    if embedding:
        analyses["embedding"] = embedding_from_cache(
            cache,
            embedding_field,
            perplexities=cfg.perplexities,
            n_per_class=cfg.n_per_class,
            seed=cfg.seed,
        )
    analyses["detection"] = detection_from_cache(cache, cfg)
    df = summary_frames(analyses, config=cfg)
    df.attrs["config"] = cfg.to_dict()
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
