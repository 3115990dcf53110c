"""The headline numbers of a run, and one line per number saying what it measures.

:func:`headline_numbers` picks, from the analyses of a cache (and the test
metrics when the models were evaluated), the numbers a reader needs first:
the test AUC of each model with its confidence interval, per fake group and
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

__all__ = [
    "SKILL_LEGEND",
    "auc_with_ci",
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
    import numpy as np
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


def _cache_aucs(cache, config) -> dict[str, dict]:
    """AUC with CI of each model's cached test logits (video clusters when the cache has them)."""
    out = {}
    if cache is None or "label" not in cache.fields:
        return out
    use_video = config.unit == "video" and "video" in cache.fields
    for kind in ("defocus", "rgb"):
        field = f"logit_{kind}"
        if field not in cache.fields:
            continue
        fields = ["id", "label", field] + (["video"] if use_video else [])
        arrays = cache.arrays(fields)
        clusters = None
        if use_video:
            from analysis.stats import cluster_labels

            if (arrays["video"].astype(str) != "").any():
                clusters = cluster_labels(arrays["video"], arrays["id"])
        res = auc_with_ci(arrays["label"], arrays[field], clusters, n_boot=config.n_boot,
                          confidence=config.confidence, seed=config.seed)  # fmt: skip
        res["level"] = "video" if clusters is not None else "frame"
        out[kind] = res
    return out


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
        (``alignment``, ``variance``; ``sanity`` optional).
    test_metrics : dict, optional
        Per model (``"defocus"``, ``"rgb"``) the evaluation metrics (``auc``,
        ``accuracy``).
    cache : cache reader, optional
        For the AUC of the cached test logits with its bootstrap interval.
    config : AnalysisConfig or dict, optional
        The run's analysis settings (default: the alignment analysis's).

    Returns
    -------
    dict
        JSON-ready: ``test_auc_<model>``, ``test_accuracy_<model>`` (the
        evaluation's); ``auc_<model>`` (AUC of the cached logits with
        ``ci_low, ci_high, n, level``); ``alignment_<model>_<group>``
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
    for kind, res in _cache_aucs(cache, cfg).items():
        head[f"auc_{kind}"] = res
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
        In reading order: test AUC, then per fake group the raw score with
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
