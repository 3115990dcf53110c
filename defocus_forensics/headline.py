"""The headline numbers of a run, and one line per number saying what it measures.

:func:`headline_numbers` picks, from the analyses of a cache (and the test
metrics when the models were evaluated), the numbers a reader needs first:
the test AUC of each model with its confidence interval (frame-level, and
video-level from the per-video mean probability when the cache names
videos), the calibration of its probabilities (ECE, Brier score, NLL, before
and after cross-fitted temperature scaling), per fake group and
model the paper's raw alignment score beside its no-information floor and
the skill, the paired defocus-vs-RGB difference on the same fakes, the
local-variance tests (Kolmogorov-Smirnov and the paired test), and the
verdicts of the model-randomisation check. Every p-value comes with its
resolution and every interval and test with its unit of inference.

:func:`headline_rows` turns them into rows ``quantity | value | measures``:
the report's headline table and the demo's closing summary print the same
rows, so the same run reads the same everywhere. Torch-free.
"""

from __future__ import annotations

import math
from typing import Any

from analysis.detection import auc_with_ci

__all__ = [
    "SKILL_LEGEND",
    "auc_with_ci",
    "detection_entries",
    "headline_numbers",
    "headline_rows",
    "json_safe",
    "sanity_entry",
    "write_summary_json",
]

#: One line on what the three alignment numbers mean (shown wherever they are).
SKILL_LEGEND = (
    "raw: the paper's alignment score; floor: what a constant attribution scores on the same "
    "pairs; skill = (raw - floor) / (1 - floor): 0 = no better than a constant attribution, "
    "1 = attribution proportional to |fake - real|"
)


def _f(value) -> float | None:
    """Return ``value`` as a finite float, or None (JSON-safe)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _detection(analyses: dict, cache, config):
    """Return ``analyses["detection"]``, else the detection analysis computed from ``cache``."""
    det = analyses.get("detection")
    if det is None and cache is not None:
        from analysis.detection import detection_from_cache

        det = detection_from_cache(cache, config)
    return det


def detection_entries(detection) -> dict[str, Any]:
    """Headline entries of a :class:`analysis.detection.DetectionAnalysis`, per model.

    Returns
    -------
    dict
        ``auc_<model>`` (frame-level AUC of the logits with its CI, ``level``
        the unit resampled), ``video_auc_<model>`` (AUC of the per-video mean
        probabilities, each video one unit; ``auc`` None and ``reason`` "no
        video field" without videos), ``calibration_<model>`` (``ece, brier,
        nll`` with ``*_ci_low, *_ci_high``, ``n_bins`` and the per-bin numbers)
        and ``calibration_scaled_<model>`` (the same after cross-fitted
        temperature scaling, with ``temperatures``, ``split``,
        ``fold_units``, ``at_bound``; or ``reason``).
    """
    head: dict[str, Any] = {}
    if detection is None:
        return head
    for kind, m in detection.models.items():
        head[f"auc_{kind}"] = dict(m.auc)
        if m.video_auc is not None:
            head[f"video_auc_{kind}"] = dict(m.video_auc)
        else:
            head[f"video_auc_{kind}"] = {"auc": None, "reason": m.video_auc_reason}
        head[f"calibration_{kind}"] = m.calibration.to_dict()
        if m.scaled is not None:
            cf = m.crossfit
            head[f"calibration_scaled_{kind}"] = {
                **m.scaled.to_dict(),
                "temperatures": [float(t) for t in cf.temperatures],
                "split": cf.split,
                "n_folds": 2,
                "fold_units": list(cf.fold_units),
                "at_bound": list(cf.at_bound),
            }
        else:
            head[f"calibration_scaled_{kind}"] = {"ece": None, "reason": m.crossfit_reason}
    return head


def _p_floor(n_permutations, p_min, n_units, sides: int) -> float | None:
    """About the smallest p a sign-flip test can give: ``max(1/(n+1), sides / 2^K)``."""
    p_min = _f(p_min)
    if p_min is None:
        return None
    if n_units is None or not n_units or n_units != n_units:
        return p_min
    return max(p_min, min(1.0, sides / 2.0 ** int(n_units)))


def headline_numbers(
    analyses: dict, test_metrics: dict | None = None, *, cache=None, config=None
) -> dict[str, Any]:
    """Pick the headline numbers out of the analyses (and the test metrics).

    Parameters
    ----------
    analyses : dict
        As :func:`defocus_forensics.figures.compute_analyses` returns them
        (``alignment``, ``variance``, ``detection``; ``sanity`` optional).
    test_metrics : dict, optional
        Per model (``"defocus"``, ``"rgb"``) the evaluation metrics (``auc``,
        ``accuracy``).
    cache : cache reader, optional
        For the detection numbers of the cached test logits when
        ``analyses`` has no ``"detection"`` entry.
    config : AnalysisConfig or dict, optional
        The run's analysis settings (default: the alignment analysis's).

    Returns
    -------
    dict
        JSON-ready: ``test_auc_<model>``, ``test_accuracy_<model>`` (the
        evaluation's); ``auc_<model>``, ``video_auc_<model>``,
        ``calibration_<model>``, ``calibration_scaled_<model>`` (see
        :func:`detection_entries`); ``alignment_<model>_<group>``
        (``mean, ci_low, ci_high, std, n, n_units, floor, skill_mean,
        skill_ci_low, skill_ci_high, skill_p, skill_p_wilcoxon,
        n_permutations, p_min, p_floor, null_p, null_n_permutations,
        null_p_min, level``); ``paired_<group>`` (defocus minus RGB on the
        same fakes: ``skill_*`` and ``score_*`` of ``mean_diff, ci_low,
        ci_high, p, p_wilcoxon``, ``n, n_units, n_permutations, p_min,
        p_floor, level``); ``ks_mean_local_variance_<group>`` (``D, D_ci_low,
        D_ci_high, p, p_holm, delta, mean_real, mean_fake, n, n_real,
        n_fake, level`` and the paired test ``paired_mean_diff,
        paired_ci_low, paired_ci_high, paired_p, paired_n, ...``);
        ``sanity_<model>`` (``full_median, flagged, threshold, message, n``);
        ``level``, ``confidence``, ``analysis_config``.
    """
    from analysis.config import resolve_config

    align = analyses.get("alignment")
    if config is None and align is not None and getattr(align, "config", None):
        config = align.config
    cfg = resolve_config(config)
    head: dict[str, Any] = {}
    for kind in ("defocus", "rgb"):
        m = (test_metrics or {}).get(kind) or {}
        if test_metrics is not None:
            head[f"test_auc_{kind}"] = _f(m.get("auc"))
            head[f"test_accuracy_{kind}"] = _f(m.get("accuracy"))
    head.update(detection_entries(_detection(analyses, cache, cfg)))
    levels = set()
    if align is not None and not align.summary.empty:
        for r in align.summary.to_dict("records"):
            level = r.get("level", "frame")
            levels.add(level)
            n_units = r.get("n_clusters") if level == "video" else r.get("skill_n", r.get("n"))
            head[f"alignment_{r['model']}_{r['group']}"] = {
                "mean": _f(r.get("mean")),
                "ci_low": _f(r.get("ci_low")),
                "ci_high": _f(r.get("ci_high")),
                "std": _f(r.get("std")),
                "n": int(r.get("n", 0)),
                "n_units": int(r["n_clusters"])
                if r.get("n_clusters") == r.get("n_clusters")
                else None,
                "floor": _f(r.get("floor_mean")),
                "skill_mean": _f(r.get("skill_mean")),
                "skill_ci_low": _f(r.get("skill_ci_low")),
                "skill_ci_high": _f(r.get("skill_ci_high")),
                "skill_p": _f(r.get("skill_p_signflip")),
                "skill_p_wilcoxon": _f(r.get("skill_p_wilcoxon")),
                "n_permutations": int(r.get("n_permutations") or cfg.n_permutations),
                "p_min": _f(r.get("p_min")),
                "p_floor": _p_floor(r.get("n_permutations"), r.get("p_min"), n_units, 1),
                "null_p": _f(r.get("p_value")),
                "null_n_permutations": int(r.get("null_n_permutations") or 0),
                "null_p_min": _f(r.get("null_p_min")),
                "level": level,
            }
        comp = getattr(align, "comparison", None)
        if comp is not None and not comp.empty:
            for r in comp.to_dict("records"):
                key = f"paired_{r['group']}"
                entry = head.setdefault(
                    key,
                    {
                        "model_a": r["model_a"],
                        "model_b": r["model_b"],
                        "n": int(r["n"]),
                        "n_units": int(r["n_clusters"]),
                        "n_permutations": int(r["n_permutations"]),
                        "p_min": _f(r["p_min"]),
                        "p_floor": _p_floor(r["n_permutations"], r["p_min"], r["n_clusters"], 2),
                        "level": r["level"],
                    },
                )
                for k, name in (("mean_diff", "mean_diff"), ("ci_low", "ci_low"),
                                ("ci_high", "ci_high"), ("p_signflip", "p"),
                                ("p_wilcoxon", "p_wilcoxon")):  # fmt: skip
                    entry[f"{r['metric']}_{name}"] = _f(r[k])
    var = analyses.get("variance")
    if var is not None and not var.tests.empty:
        paired = var.paired.set_index("group") if not var.paired.empty else None
        for r in var.tests.to_dict("records"):
            level = "video" if r.get("level") in ("video", "cluster") else "frame"
            levels.add(level)
            entry = {
                "D": _f(r.get("statistic")),
                "D_ci_low": _f(r.get("statistic_ci_low")),
                "D_ci_high": _f(r.get("statistic_ci_high")),
                "p": _f(r.get("pvalue")),
                "p_holm": _f(r.get("pvalue_holm")),
                "delta": _f(r.get("effect_size")),
                "delta_ci_low": _f(r.get("ci_low")),
                "delta_ci_high": _f(r.get("ci_high")),
                "mean_real": _f(r.get("mean_real")),
                "mean_fake": _f(r.get("mean_fake")),
                "n": int(r.get("n_fake", 0)),
                "n_real": int(r.get("n_real", 0)),
                "n_fake": int(r.get("n_fake", 0)),
                "n_real_frames": int(r.get("n_real_frames", 0)),
                "n_fake_frames": int(r.get("n_fake_frames", 0)),
                "level": level,
                "padding": getattr(var, "padding", cfg.padding),
                "border_mass_share": _f(getattr(var, "border_mass_share", None)),
                "border_area_share": _f(getattr(var, "border_area_share", None)),
            }
            if paired is not None and r["group"] in paired.index:
                p = paired.loc[r["group"]]
                entry.update(
                    paired_mean_diff=_f(p["mean_diff"]),
                    paired_ci_low=_f(p["ci_low"]),
                    paired_ci_high=_f(p["ci_high"]),
                    paired_p=_f(p["p_signflip"]),
                    paired_p_holm=_f(p.get("p_signflip_holm")),
                    paired_n=int(p["n"]),
                    paired_n_units=int(p["n_clusters"]),
                    paired_n_permutations=int(p["n_permutations"]),
                    paired_p_min=_f(p["p_min"]),
                    paired_p_floor=_p_floor(p["n_permutations"], p["p_min"], p["n_clusters"], 2),
                )
            head[f"ks_mean_local_variance_{r['group']}"] = entry
    sanity = analyses.get("sanity")
    for res in sanity if isinstance(sanity, (list, tuple)) else [sanity] if sanity else []:
        head[f"sanity_{res.model}"] = sanity_entry(res)
    head["level"] = "video" if "video" in levels else "frame"
    head["confidence"] = cfg.confidence
    head["analysis_config"] = cfg.to_dict()
    return head


def sanity_entry(result) -> dict[str, Any]:
    """Return the headline entry of one model's randomisation check (a ``SanityResult``)."""
    import numpy as np

    ceiling = [np.nan if v is None else v for v in result.info.get("ceiling") or []]
    ceiling = _f(np.nanmedian(ceiling)) if ceiling and np.isfinite(ceiling).any() else None
    return {
        "full_median": _f(result.full_median),
        "ceiling": ceiling,
        "flagged": bool(result.flagged),
        "threshold": float(result.threshold),
        "message": result.message,
        "n_samples": len(result.ids),
        "n_stages": len(result.stages),
    }


def _fmt(value) -> str:
    from defocus_forensics.report import _fmt as fmt

    return fmt(value)


def _g(value) -> str:
    """Three significant digits (for small quantities such as local variances)."""
    return "n/a" if value is None else f"{value:.3g}"


def _ci(lo, hi) -> str:
    """`` [lo, hi]``, both ends with the same decimals (3, or 3 significant digits when tiny)."""
    if lo is None or hi is None:
        return ""
    if max(abs(lo), abs(hi)) >= 1e-3:
        return f" [{lo:.3f}, {hi:.3f}]"
    return f" [{lo:.3g}, {hi:.3g}]"


def _p(p, n_permutations=None, p_min=None, p_floor=None, test: str = "", n_units=None) -> str:
    """``p = 0.004 (one-sided sign flip; 999 permutations: p >= 0.001; ...)``.

    The resolution: ``1 / (n_permutations + 1)``, and, when fewer units
    (fakes or videos) make it coarser, about ``1 / 2^K`` with ``K`` units.
    """
    if p is None:
        return "p n/a"
    text = f"p = {_fmt(p)}"
    detail = [test] if test else []
    if n_permutations:
        res = f"{n_permutations} permutations: p ≥ {_fmt(p_min)}"
        if p_floor is not None and p_min is not None and p_floor > p_min * 1.5:
            units = f"{n_units} units" if n_units else "these units"
            res += f"; with {units}, p ≥ about {_fmt(p_floor)}"
        detail.append(res)
    return text + (f" ({'; '.join(detail)})" if detail else "")


def _level(entry: dict, unit: str = "fakes") -> str:
    if entry.get("level") == "video":
        return f"video-level: {entry.get('n_units')} videos, {entry.get('n')} {unit}"
    return f"frame-level: n = {entry.get('n')} {unit}, each independent"


#: What each calibration number measures (one line, shown beside it).
_CALIBRATION_MEASURES = {
    "ece": "expected calibration error of sigmoid(logit): over {bins} equal-width bins of the "
    "predicted probability, the share-weighted mean of |fraction of fakes - mean predicted "
    "probability| (0 = calibrated)",
    "brier": "Brier score: mean of (sigmoid(logit) - label)^2 (0 = perfect; 0.25 = always "
    "saying 0.5)",
    "nll": "negative log-likelihood: mean of -log of the probability given to the true label, "
    "in nats (0 = perfect; ln 2 = 0.693 = always saying 0.5)",
}
_CALIBRATION_NAMES = {"ece": "ECE ({bins} bins)", "brier": "Brier score", "nll": "NLL"}


def _calibration_rows(head: dict, kind: str, name: str, pct: str) -> list[dict[str, str]]:
    """Rows ECE, Brier score, NLL of one model: before → after cross-fitted temperature scaling."""
    c = head.get(f"calibration_{kind}")
    if not isinstance(c, dict) or c.get("ece") is None:
        return []
    s = head.get(f"calibration_scaled_{kind}") or {}
    bins = c.get("n_bins")
    level = (
        f"video-level: {c.get('n_units')} videos resampled"
        if c.get("level") == "video"
        else "frame-level"
    )
    if s.get("ece") is not None:
        t0, t1 = s.get("temperatures") or (None, None)
        scaled = (
            f"after: temperature scaling cross-fitted over 2 folds split by {s.get('split')} "
            "(T fitted on one fold by minimising the NLL, applied to the other)"
        )
    else:
        scaled = f"no temperature scaling: {s.get('reason') or 'not computed'}"
    rows = []
    for key in ("ece", "brier", "nll"):
        value = f"{_fmt(c[key])}{_ci(c.get(f'{key}_ci_low'), c.get(f'{key}_ci_high'))}"
        if s.get(key) is not None:
            value += (
                f" → {_fmt(s[key])}{_ci(s.get(f'{key}_ci_low'), s.get(f'{key}_ci_high'))} "
                "temperature-scaled"
            )
            if key == "ece":
                value += f" (T = {_fmt(t0)}, {_fmt(t1)})"
        rows.append({
            "quantity": f"{_CALIBRATION_NAMES[key].format(bins=bins)}, {name}",
            "value": value,
            "measures": f"{_CALIBRATION_MEASURES[key].format(bins=bins)}; {scaled}; {pct} "
            f"bootstrap CI, {c.get('n_real')} real and {c.get('n_fake')} fake images, {level}",
        })  # fmt: skip
    return rows


def headline_rows(
    head: dict, model_names: dict | None = None, *, compact: bool = False
) -> list[dict[str, str]]:
    """One row per headline number: ``quantity``, ``value`` (with its CI and p) and ``measures``.

    Parameters
    ----------
    head : dict
        From :func:`headline_numbers` (as stored in ``summary.json``).
    model_names : dict of str to str, optional
        Display names of the models.
    compact : bool
        Values without the tests' names and resolutions (for a terminal, which
        says the resolution once above the rows).

    Returns
    -------
    list of dict
        In reading order: test AUC, video-level AUC, per model ECE, Brier
        score and NLL (each before → after cross-fitted temperature
        scaling), then per fake group the raw score with
        its floor, the skill, the paired difference, then the local-variance
        tests, then the randomisation check.
    """
    names = {"defocus": "defocus model", "rgb": "RGB model", **(model_names or {})}

    def p_text(p, n_permutations=None, p_min=None, p_floor=None, test="", n_units=None):
        if compact:
            return _p(p)
        return _p(p, n_permutations, p_min, p_floor, test, n_units)

    conf = head.get("confidence") or 0.95
    pct = f"{100 * conf:g} %"
    rows: list[dict[str, str]] = []
    for kind in ("defocus", "rgb"):
        a = head.get(f"auc_{kind}")
        ev = head.get(f"test_auc_{kind}")
        if isinstance(a, dict) and a.get("auc") is not None:
            value = f"{_fmt(a['auc'])}{_ci(a.get('ci_low'), a.get('ci_high'))}"
            if ev is not None and abs(ev - a["auc"]) > 5e-4:
                value += f" (evaluation: {_fmt(ev)})"
            level = (
                f"video-level: {a.get('n_units')} videos resampled"
                if a.get("level") == "video"
                else "frame-level"
            )
            rows.append({
                "quantity": f"test AUC, {names[kind]}",
                "value": value,
                "measures": "how well the model's logit ranks fakes above reals on the test "
                f"split (0.5 = chance, 1 = perfect); {pct} stratified bootstrap CI, "
                f"{a.get('n_real')} real and {a.get('n_fake')} fake images, {level}",
            })  # fmt: skip
        elif ev is not None:
            rows.append({"quantity": f"test AUC, {names[kind]}", "value": _fmt(ev),
                         "measures": "how well the model's logit ranks fakes above reals on "
                         "the test split (0.5 = chance, 1 = perfect)"})  # fmt: skip
    for kind in ("defocus", "rgb"):
        v = head.get(f"video_auc_{kind}")
        if not isinstance(v, dict):
            continue
        if v.get("auc") is None:
            reason = v.get("reason") or "one class only"
            rows.append({
                "quantity": f"video-level AUC, {names[kind]}",
                "value": f"n/a ({reason})",
                "measures": "AUC of per-video scores (mean probability of its frames); needs "
                "the video of every frame: 'defocus prepare' of FaceForensics++ videos, or a "
                "video column in an index CSV",
            })  # fmt: skip
            continue
        rows.append({
            "quantity": f"video-level AUC, {names[kind]}",
            "value": f"{_fmt(v['auc'])}{_ci(v.get('ci_low'), v.get('ci_high'))}",
            "measures": "how well each video's score, the mean of sigmoid(logit) over its "
            "frames, ranks fake videos above real ones (the FaceForensics++ video-level "
            f"protocol); {pct} stratified bootstrap CI, video-level: {v.get('n_real')} real and "
            f"{v.get('n_fake')} fake videos ({v.get('n_frames')} frames), each video one unit",
        })  # fmt: skip
    for kind in ("defocus", "rgb"):
        rows += _calibration_rows(head, kind, names[kind], pct)
    groups = list(
        dict.fromkeys(
            k.split("_", 2)[2] for k in head if k.startswith("alignment_") and k.count("_") >= 2
        )
    )
    for g in groups:
        for kind in ("defocus", "rgb"):
            e = head.get(f"alignment_{kind}_{g}")
            if not isinstance(e, dict):
                continue
            rows.append({
                "quantity": f"alignment, raw score, {names[kind]}, {g}",
                "value": f"{_fmt(e.get('mean'))}{_ci(e.get('ci_low'), e.get('ci_high'))}; "
                f"floor {_fmt(e.get('floor'))}",
                "measures": "the paper's score: overlap of where the attribution mass and the "
                "real/fake difference sit over defocus levels (1 = same place); floor: what a "
                f"constant attribution scores on the same pairs; {pct} CI, {_level(e)}",
            })  # fmt: skip
            if e.get("skill_mean") is not None:
                rows.append({
                    "quantity": f"alignment skill, {names[kind]}, {g}",
                    "value": f"{_fmt(e['skill_mean'])}"
                    f"{_ci(e.get('skill_ci_low'), e.get('skill_ci_high'))}, "
                    + p_text(e.get("skill_p"), e.get("n_permutations"), e.get("p_min"),
                             e.get("p_floor"), "one-sided sign flip of skill > 0",
                             e.get("n_units")),
                    "measures": "(raw - floor) / (1 - floor): 0 = no better than a constant "
                    "attribution, 1 = attribution proportional to |fake - real|; "
                    f"{pct} CI, {_level(e)}",
                })  # fmt: skip
        pe = head.get(f"paired_{g}")
        if isinstance(pe, dict) and pe.get("skill_mean_diff") is not None:
            a, b = pe.get("model_a", "defocus"), pe.get("model_b", "rgb")
            na, nb = names.get(a, f"{a} model"), names.get(b, f"{b} model")
            rows.append({
                "quantity": f"paired difference, skill, {na} - {nb}, {g}",
                "value": f"{_fmt(pe['skill_mean_diff'])}"
                f"{_ci(pe.get('skill_ci_low'), pe.get('skill_ci_high'))}, "
                + p_text(pe.get("skill_p"), pe.get("n_permutations"), pe.get("p_min"),
                         pe.get("p_floor"), "two-sided sign flip", pe.get("n_units")),
                "measures": f"mean over the same fakes of the {na}'s skill minus the {nb}'s "
                f"(> 0: the {na} aligns better); raw-score difference "
                f"{_fmt(pe.get('score_mean_diff'))} (p = {_fmt(pe.get('score_p'))}); "
                f"{pct} CI, {_level(pe)}",
            })  # fmt: skip
    for key, e in head.items():
        if not key.startswith("ks_mean_local_variance_") or not isinstance(e, dict):
            continue
        g = key[len("ks_mean_local_variance_") :]
        unit = "videos" if e.get("level") == "video" else "images"
        level = (
            f"video-level: per-video means of {e.get('n_real')} real and {e.get('n_fake')} fake "
            f"videos ({e.get('n_real_frames')} and {e.get('n_fake_frames')} frames)"
            if e.get("level") == "video"
            else f"frame-level: {e.get('n_real')} real and {e.get('n_fake')} fake images, each "
            "independent"
        )
        delta = ""
        if e.get("delta") is not None:
            ci = _ci(e.get("delta_ci_low"), e.get("delta_ci_high"))
            delta = f"; Cliff's δ = {_fmt(e['delta'])}{ci}"
        rows.append({
            "quantity": f"KS test, mean local variance, real vs {g}",
            "value": f"D = {_fmt(e.get('D'))}, p = {_fmt(e.get('p'))}"
            + ("" if compact else f" (Holm {_fmt(e.get('p_holm'))})") + delta,
            "measures": f"D: largest gap between the distributions of per-{unit[:-1]} mean "
            "local variance of reals and fakes (0 = same, 1 = disjoint), with scipy's "
            "two-sample KS p (exact or asymptotic: no permutation limit), Holm-corrected across "
            "groups; δ: P(fake > real) - P(fake < real), with its bootstrap CI; "
            f"{level}; {e.get('padding', 'zeros')} padding",
        })  # fmt: skip
        if e.get("paired_mean_diff") is not None:
            rows.append({
                "quantity": f"paired difference of mean local variance, {g} - its real",
                "value": f"{_g(e['paired_mean_diff'])} "
                f"[{_g(e.get('paired_ci_low'))}, {_g(e.get('paired_ci_high'))}], "
                + p_text(e.get("paired_p"), e.get("paired_n_permutations"), e.get("paired_p_min"),
                         e.get("paired_p_floor"), "two-sided sign flip", e.get("paired_n_units")),
                "measures": "mean over the fakes of (its mean local variance - that of the real "
                f"image it was made from); {pct} CI, "
                + _level({"level": e.get("level"), "n": e.get("paired_n"),
                          "n_units": e.get("paired_n_units")}),
            })  # fmt: skip
    for kind in ("defocus", "rgb"):
        e = head.get(f"sanity_{kind}")
        if not isinstance(e, dict):
            continue
        verdict = "FLAGGED" if e.get("flagged") else "passes"
        ceiling = ""
        if e.get("ceiling") is not None:
            ceiling = f"; noise ceiling {_fmt(e['ceiling'])}"
            if e.get("full_median") is not None and e["ceiling"] - e["full_median"] < 0.1:
                ceiling += " (too close: the explainer's noise hides the weights' effect)"
        rows.append({
            "quantity": f"randomisation check, {names[kind]}",
            "value": f"median ρ = {_fmt(e.get('full_median'))} with every layer re-initialised "
            f"({verdict}){ceiling}",
            "measures": "Spearman rank correlation of |attribution| between the trained model "
            "and the same model with random weights, over "
            f"{e.get('n_samples')} samples (near 0: attributions depend on what the model "
            f"learned; above {_fmt(e.get('threshold'))}: flagged, they barely do); noise "
            "ceiling: the same between two explanations of the trained model with different "
            "explainer seeds",
        })  # fmt: skip
    return rows


def json_safe(value: Any) -> Any:
    """Turn NaN/inf floats into None and numpy scalars into Python ones (standard JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return json_safe(value.item())
        except (ValueError, AttributeError):
            return value
    return value


def write_summary_json(
    out_dir, table, analyses: dict, *, cache=None, config=None, test_metrics=None
) -> dict[str, Any]:
    """Write ``summary.json`` and ``summary/summary.{csv,md}`` of one run into ``out_dir``.

    What ``defocus report`` reads as the headline table and the analysis
    summary; written by the demo and by ``defocus figures`` (beside the
    figures), so a run on one's own data gets the same report as the demo.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write into (must exist).
    table : pandas.DataFrame
        The long summary table of :func:`defocus_forensics.figures.compute_analyses`.
    analyses : dict
        The analysis objects of the same call.
    cache : cache reader, optional
        For the AUC of the cached logits with its interval.
    config : AnalysisConfig or dict, optional
        The analysis settings the table was computed with.
    test_metrics : dict, optional
        Per model the evaluation's metrics (``auc``, ``accuracy``).

    Returns
    -------
    dict
        What was written to ``summary.json`` (``headline``, ``analysis_config``,
        ``table``, ``files``).
    """
    from pathlib import Path

    from analysis.config import resolve_config
    from analysis.summary import write_summary
    from safeio import atomic_write_json

    out_dir = Path(out_dir)
    cfg = resolve_config(config)
    paths = write_summary(table, out_dir / "summary")
    summary = {
        "headline": headline_numbers(analyses, test_metrics, cache=cache, config=cfg),
        "analysis_config": cfg.to_dict(),
        "table": table.to_dict("records"),
        "files": {k: str(Path(v).relative_to(out_dir)) for k, v in paths.items()},
    }
    summary = json_safe(summary)
    atomic_write_json(out_dir / "summary.json", summary, default=str)
    return summary
