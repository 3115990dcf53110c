"""Model-randomisation sanity check of attributions: the numbers and a torch-free result.

Adebayo et al., "Sanity Checks for Saliency Maps" (NeurIPS 2018): an
attribution method that explains the model must give different maps when
the model's learned weights are replaced by random ones. The attributions of
the trained model are compared with those of the same architecture whose
weights are re-initialised, cascading from the top (the output layer first,
then downwards, cumulatively) until every layer is random, by the Spearman
rank correlation of ``|attribution|`` per sample (over pixels; channels
summed). A median correlation near 1 at the fully randomised stage means the
maps barely depend on what the model learned (they follow the input, e.g.
its edges), and any alignment or localisation score computed from them says
little about the model.

The torch side (re-initialising layers and attributing) is
:mod:`cache.sanity`; ``defocus sanity`` wires both and writes
``sanity.json`` and ``sanity.csv``. This module imports no torch.

Flag rule: a model is flagged when the median Spearman correlation at the
fully randomised stage exceeds ``threshold`` (default
:attr:`analysis.config.AnalysisConfig.sanity_threshold`, 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.config import AnalysisConfig

__all__ = [
    "SanityResult",
    "plot_sanity_cascade",
    "rank_correlation",
    "read_sanity",
    "sanity_result",
    "write_sanity",
]


def _abs_flat(attr) -> np.ndarray:
    a = np.abs(np.asarray(attr, dtype=np.float64))
    if a.ndim == 4:  # (N, C, H, W): |attr| summed over channels, as the alignment weights
        a = a.sum(axis=1)
    if a.ndim < 2:
        raise ValueError(f"attributions must have shape (N, H, W) or (N, C, H, W), got {a.shape}")
    return a.reshape(a.shape[0], -1)


def rank_correlation(reference, other) -> np.ndarray:
    """Spearman rank correlation of ``|reference|`` and ``|other|`` per sample.

    Parameters
    ----------
    reference, other : ndarray of shape (N, H, W) or (N, C, H, W)
        Attributions of the same inputs by two models (channels: ``|attr|``
        summed over them).

    Returns
    -------
    ndarray of float64, shape (N,)
        In [-1, 1]; NaN for a sample whose map is constant in either model
        (no ranking). Ties get average ranks (as ``scipy.stats.spearmanr``).
    """
    from scipy import stats  # lazily: scipy.stats probes sys.modules["torch"] on import

    a, b = _abs_flat(reference), _abs_flat(other)
    if a.shape != b.shape:
        raise ValueError(
            f"the two attributions must have the same shape, got {a.shape} and {b.shape}"
        )
    ra = stats.rankdata(a, axis=1)
    rb = stats.rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)


@dataclass
class SanityResult:
    """Model-randomisation check of one model's attributions.

    Attributes
    ----------
    model : str
        Which model (``"defocus"`` or ``"rgb"``).
    ids : list of str
        The samples attributed, length N.
    stages : list of dict
        Randomisation stages in cascade order: ``name``, ``n_layers`` (layers
        re-initialised, counted from the top), ``layers`` (their names),
        ``lowest`` (the deepest re-initialised layer). The last stage
        re-initialises every layer (the whole model).
    spearman : ndarray of shape (n_stages, N)
        Spearman correlation of ``|attribution|`` between the trained model
        and each stage, per sample.
    threshold : float
        Flag rule: median correlation at the last stage above it.
    info : dict
        Explainer settings, seed, checkpoint fingerprint and the like.
    """

    model: str
    ids: list[str]
    stages: list[dict]
    spearman: np.ndarray
    threshold: float = AnalysisConfig.sanity_threshold
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.spearman = np.asarray(self.spearman, dtype=np.float64).reshape(
            len(self.stages), len(self.ids)
        )

    @property
    def medians(self) -> np.ndarray:
        """Median correlation per stage, ndarray of shape (n_stages,) (NaN-skipping)."""
        out = np.full(len(self.stages), np.nan)
        for k, row in enumerate(self.spearman):
            if np.any(~np.isnan(row)):
                out[k] = float(np.nanmedian(row))
        return out

    @property
    def full_median(self) -> float:
        """Median correlation with the fully re-initialised model (the last stage)."""
        return float(self.medians[-1]) if self.stages else float("nan")

    @property
    def flagged(self) -> bool:
        """True when the attributions barely change with the weights (median > threshold)."""
        m = self.full_median
        return bool(m == m and m > self.threshold)

    @property
    def message(self) -> str:
        """One line for a report: the verdict with the number behind it."""
        m = self.full_median
        if m != m:
            return f"{self.model} model: no usable correlation (constant attribution maps)"
        if self.flagged:
            return (
                f"{self.model} model FLAGGED: its attributions barely depend on the learned "
                f"weights (median Spearman {m:.2f} > {self.threshold:g} with every layer "
                "re-initialised); scores computed from them say little about the model"
            )
        return (
            f"{self.model} model passes: attributions change when the weights are "
            f"re-initialised (median Spearman {m:.2f} <= {self.threshold:g})"
        )

    def summary(self) -> pd.DataFrame:
        """Per stage: ``model, stage, n_layers, lowest, median, q1, q3, mean, n``."""
        rows = []
        for k, st in enumerate(self.stages):
            row = self.spearman[k]
            ok = row[~np.isnan(row)]
            q1, med, q3 = np.quantile(ok, [0.25, 0.5, 0.75]) if ok.size else (np.nan,) * 3
            rows.append(
                {
                    "model": self.model,
                    "stage": st["name"],
                    "n_layers": int(st["n_layers"]),
                    "lowest": st.get("lowest", ""),
                    "median": float(med),
                    "q1": float(q1),
                    "q3": float(q3),
                    "mean": float(ok.mean()) if ok.size else np.nan,
                    "n": int(ok.size),
                }
            )
        return pd.DataFrame(rows)

    def to_frame(self) -> pd.DataFrame:
        """One row per stage and sample: ``model, stage, n_layers, id, spearman``."""
        parts = []
        for k, st in enumerate(self.stages):
            parts.append(
                pd.DataFrame(
                    {
                        "model": self.model,
                        "stage": st["name"],
                        "n_layers": int(st["n_layers"]),
                        "id": self.ids,
                        "spearman": self.spearman[k],
                    }
                )
            )
        cols = ["model", "stage", "n_layers", "id", "spearman"]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)

    def summary_rows(self) -> list[dict]:
        """Rows for :func:`analysis.summary.summary_frames` (``analysis = "sanity"``)."""
        rows = []
        for r in self.summary().to_dict("records"):
            rows.append(
                {
                    "analysis": "sanity",
                    "group": "all",
                    "model": self.model,
                    "metric": f"median_spearman@{r['stage']}",
                    "value": r["median"],
                    "note": f"{r['n_layers']} top layers re-initialised, down to {r['lowest']}",
                }
            )
        rows.append(
            {
                "analysis": "sanity",
                "group": "all",
                "model": self.model,
                "metric": "flagged",
                "value": int(self.flagged),
                "note": self.message,
            }
        )
        return rows

    def to_dict(self) -> dict:
        """JSON-ready dict (:meth:`from_dict` reads it back)."""
        return {
            "model": self.model,
            "ids": list(self.ids),
            "stages": [dict(s) for s in self.stages],
            "spearman": [[None if v != v else float(v) for v in row] for row in self.spearman],
            "medians": [None if v != v else float(v) for v in self.medians],
            "threshold": self.threshold,
            "full_median": None if self.full_median != self.full_median else self.full_median,
            "flagged": self.flagged,
            "message": self.message,
            "info": dict(self.info),
        }

    @classmethod
    def from_dict(cls, data: dict) -> SanityResult:
        """Rebuild a result from :meth:`to_dict` output."""
        spearman = np.array(
            [[np.nan if v is None else v for v in row] for row in data["spearman"]], np.float64
        )
        return cls(
            data["model"],
            list(data["ids"]),
            list(data["stages"]),
            spearman,
            float(data.get("threshold", AnalysisConfig.sanity_threshold)),
            dict(data.get("info", {})),
        )


def sanity_result(
    model: str,
    ids: Sequence[str],
    trained,
    randomised: Sequence,
    stages: Sequence[dict],
    threshold: float = AnalysisConfig.sanity_threshold,
    info: dict | None = None,
) -> SanityResult:
    """Compare the trained model's attributions with those of each randomisation stage.

    Parameters
    ----------
    model : str
    ids : sequence of str, length N
    trained : ndarray of shape (N, H, W) or (N, C, H, W)
        Attributions of the trained model.
    randomised : sequence of ndarray, one per stage, each shaped like ``trained``
    stages : sequence of dict
        Stage descriptions (``name``, ``n_layers``, ``layers``, ``lowest``).
    threshold : float
    info : dict, optional

    Returns
    -------
    SanityResult
    """
    if len(randomised) != len(stages):
        raise ValueError(f"one attribution array per stage: {len(randomised)} for {len(stages)}")
    if not -1.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must be in (-1, 1), got {threshold!r}")
    rho = (
        np.stack([rank_correlation(trained, r) for r in randomised])
        if stages
        else np.zeros((0, len(ids)))
    )
    return SanityResult(model, [str(i) for i in ids], [dict(s) for s in stages], rho,
                        float(threshold), dict(info or {}))  # fmt: skip


def write_sanity(results: Sequence[SanityResult], out_dir, extra: dict | None = None) -> dict:
    """Write ``sanity.json`` (every result, with the verdicts) and ``sanity.csv`` (per sample).

    Parameters
    ----------
    results : sequence of SanityResult
    out_dir : str or Path
        An existing folder (checked at the command-line boundary).
    extra : dict, optional
        Recorded under ``"run"`` in the JSON (command, data spec, config).

    Returns
    -------
    dict
        ``{"json": Path, "csv": Path}``.
    """
    from safeio import atomic_write_json, atomic_write_text

    out = Path(out_dir)
    frames = [r.to_frame() for r in results]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    paths = {"json": out / "sanity.json", "csv": out / "sanity.csv"}
    atomic_write_text(paths["csv"], table.to_csv(index=False))
    atomic_write_json(
        paths["json"],
        {
            "method": "model randomisation, cascading from the top (Adebayo et al. 2018); "
            "Spearman rank correlation of |attribution| per sample, trained vs randomised",
            "results": [r.to_dict() for r in results],
            "flagged": [r.model for r in results if r.flagged],
            "run": dict(extra or {}),
        },
    )
    return paths


def read_sanity(path) -> list[SanityResult]:
    """Read the results of a ``sanity.json`` (or of the folder holding it)."""
    import json

    path = Path(path)
    if path.is_dir():
        path = path / "sanity.json"
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    return [SanityResult.from_dict(d) for d in data.get("results", [])]


def plot_sanity_cascade(
    results: Sequence[SanityResult], *, width="double", model_names: dict | None = None
):
    """Draw the cascade curves: Spearman of ``|attribution|``, trained vs re-initialised, per stage.

    One curve per model (:data:`analysis.style.MODEL_COLORS`): at each stage
    the median over the samples of the Spearman rank correlation between the
    trained model's ``|attribution|`` and that of the copy whose top layers
    are re-initialised (x: how many layers, counted from the output), with
    the interquartile range as a bar; the trained model itself is the point
    (0, 1). A dashed line marks the flag threshold: a model whose median with
    every layer re-initialised stays above it is flagged.

    Parameters
    ----------
    results : sequence of SanityResult
        From :func:`read_sanity` (or :func:`sanity_result`).
    width : {"single", "double"}
    model_names : dict of str to str, optional
        Display names of the models (``"defocus"``, ``"rgb"``).

    Returns
    -------
    matplotlib.figure.Figure
        Its caption (:func:`analysis.style.caption_of`) says what is drawn.
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from analysis.style import (
        MODEL_COLORS,
        MODEL_MARKERS,
        column_width,
        figure,
        model_name,
        publication_style,
        set_caption,
        unavailable_figure,
    )

    column_width(width)
    results = [r for r in results if r.stages]
    if not results:
        return unavailable_figure(
            "no model-randomisation check was run (run 'defocus sanity ... --out RUN/sanity' "
            "and pass its folder with --sanity)",
            "randomisation check",
            width,
        )
    thresholds = sorted({float(r.threshold) for r in results})
    with publication_style():
        fig = figure(width, 2.6 if width == "single" else 2.2)
        ax = fig.add_subplot()
        top = max(int(r.stages[-1]["n_layers"]) for r in results)
        dx = 0.012 * top
        for j, r in enumerate(results):
            s = r.summary()
            x = np.r_[0, s["n_layers"].to_numpy(float)] + (j - (len(results) - 1) / 2) * dx
            med = np.r_[1.0, s["median"].to_numpy(float)]
            lo = np.r_[1.0, s["q1"].to_numpy(float)]
            hi = np.r_[1.0, s["q3"].to_numpy(float)]
            color = MODEL_COLORS.get(r.model, "black")
            ax.errorbar(x, med, yerr=[med - lo, hi - med], color=color,
                        marker=MODEL_MARKERS.get(r.model, "o"), ms=3.5, lw=1.0,
                        elinewidth=0.8, capsize=1.8)  # fmt: skip
            ceiling = _ceiling(r)
            if ceiling is not None:
                ax.plot([0, top * 1.02], [ceiling, ceiling], color=color, lw=0.8,
                        ls=(0, (1, 1.5)), zorder=0)  # fmt: skip
            verdict = "FLAGGED" if r.flagged else "passes"
            ax.annotate(f"{r.full_median:.2f} ({verdict})", (x[-1], med[-1]), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize=6,
                        color=color)  # fmt: skip
        for t in thresholds:
            ax.axhline(t, color="#555555", lw=0.8, ls=(0, (3, 1.5)), zorder=0)
        ax.axhline(0.0, color="#BBBBBB", lw=0.5, zorder=0)
        ax.set_xlim(-0.03 * top, top * 1.22)
        ax.set_ylim(min(-0.1, *(float(np.nanmin(r.spearman)) for r in results)) - 0.05, 1.05)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        ax.set_xlabel("layers re-initialised from the output (last point: all)")
        ax.set_ylabel("Spearman ρ of |attr.|,\ntrained vs re-initialised")
        handles = [
            Line2D([], [], color=MODEL_COLORS.get(r.model, "black"),
                   marker=MODEL_MARKERS.get(r.model, "o"), ms=3.5, lw=1.0,
                   label=f"{model_name(r.model, model_names)} (n={len(r.ids)})")
            for r in results
        ]  # fmt: skip
        handles.append(Line2D([], [], color="#555555", lw=0.8, ls=(0, (3, 1.5)),
                              label="flag threshold"))  # fmt: skip
        if any(_ceiling(r) is not None for r in results):
            handles.append(Line2D([], [], color="#555555", lw=0.8, ls=(0, (1, 1.5)),
                                  label="noise ceiling"))  # fmt: skip
        fig.legend(handles=handles, loc="outside lower center",
                   ncols=1 if width == "single" else len(handles))  # fmt: skip
    explainers = sorted(
        {str((r.info.get("explainer") or {}).get("name", "")) for r in results} - {""}
    )
    verdicts = "; ".join(
        f"{model_name(r.model, model_names)}: median {r.full_median:.2f} with every layer "
        f"re-initialised, {'FLAGGED' if r.flagged else 'passes'}"
        + (f" (noise ceiling {_ceiling(r):.2f})" if _ceiling(r) is not None else "")
        for r in results
    )
    ceiling_text = (
        " Dotted, in each model's colour: the noise ceiling, the median correlation between two "
        "explanations of the trained model itself with different explainer seeds; a "
        "randomised model separates from the trained one only as far as it falls below it."
        if any(_ceiling(r) is not None for r in results)
        else ""
    )
    set_caption(
        fig,
        "Model-randomisation sanity check (Adebayo et al., 2018): the same samples are "
        "attributed"
        + (f" ({', '.join(explainers)})" if explainers else "")
        + " by the trained model and by copies whose layers are re-initialised cascading from "
        "the output down (x: how many layers; the last point re-initialises every layer). "
        "Points: median over the samples of the Spearman rank correlation of |attribution| "
        "with the trained model's; bars: interquartile range; the trained model itself is the "
        "point (0, 1). Attributions that explain the model fall towards 0; a median above the "
        f"flag threshold ({', '.join(f'{t:g}' for t in thresholds)}, dashed) with every layer "
        f"random means they barely depend on what the model learned.{ceiling_text} "
        f"{verdicts}.",
    )
    return fig


def _ceiling(result: SanityResult) -> float | None:
    """Median of ``info["ceiling"]`` (trained model, two explainer seeds), or None."""
    values = np.array(
        [np.nan if v is None else v for v in result.info.get("ceiling") or []], np.float64
    )
    return float(np.nanmedian(values)) if values.size and np.isfinite(values).any() else None
