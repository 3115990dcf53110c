"""Publication styling for every analysis figure: seaborn paper style, colour-blind-safe colours.

Figures are built as :class:`matplotlib.figure.Figure` objects (never through
``pyplot``), so no global state changes and nothing is shown; styling is
applied with :func:`matplotlib.rc_context` only while a figure is built.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import matplotlib
import matplotlib.colors as mcolors
from matplotlib.figure import Figure

from safeio import atomic_path

__all__ = [
    "OKABE_ITO",
    "SEQUENTIAL_CMAP",
    "DIVERGING_CMAP",
    "figure",
    "group_colors",
    "publication_style",
    "save_figure",
    "shared_norm",
    "unavailable_figure",
]

#: Okabe & Ito (2008) palette, safe for the common colour-vision deficiencies.
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",  # black
)
#: Perceptually uniform, colour-blind-safe colour map for maps and heatmaps.
SEQUENTIAL_CMAP = "viridis"
#: Diverging colour map for signed attributions.
DIVERGING_CMAP = "RdBu_r"


def _rc() -> dict:
    import seaborn as sns

    rc = dict(sns.plotting_context("paper", font_scale=1.1))
    rc.update(sns.axes_style("ticks"))
    rc.update(
        {
            "axes.prop_cycle": matplotlib.cycler(color=list(OKABE_ITO)),
            "axes.spines.top": False,
            "axes.spines.right": False,
            "figure.dpi": 100,
            "savefig.dpi": 300,
            "savefig.bbox": "tight",
            "pdf.fonttype": 42,  # embed TrueType: text stays editable in the PDF
            "ps.fonttype": 42,
            "image.cmap": SEQUENTIAL_CMAP,
            "legend.frameon": False,
        }
    )
    return rc


@contextlib.contextmanager
def publication_style() -> Iterator[None]:
    """Context in which matplotlib uses the publication style; restored on exit."""
    with matplotlib.rc_context(_rc()):
        yield


def figure(width: float = 6.0, height: float = 4.0, **kwargs) -> Figure:
    """Return a new Figure (not registered with pyplot) of the given size in inches."""
    return Figure(figsize=(width, height), layout="constrained", **kwargs)


def group_colors(groups: Iterable[str]) -> dict[str, str]:
    """Map each group to a fixed Okabe-Ito colour; ``"real"`` is always blue.

    Parameters
    ----------
    groups : iterable of str
        Group names, in the order colours are handed out.

    Returns
    -------
    dict of str to str
        Group name to hex colour (colours repeat after eight groups).
    """
    out: dict[str, str] = {}
    palette = [c for c in OKABE_ITO if c != OKABE_ITO[0]]
    i = 0
    for g in groups:
        if g in out:
            continue
        if g == "real":
            out[g] = OKABE_ITO[0]
        else:
            out[g] = palette[i % len(palette)]
            i += 1
    return out


def unavailable_figure(message: str, title: str | None = None) -> Figure:
    """Return a small figure that says plainly which analysis is unavailable and why."""
    with publication_style():
        fig = figure(5.0, 1.6)
        ax = fig.add_subplot()
        ax.set_axis_off()
        text = f"unavailable: {message}"
        ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=10)
        if title:
            ax.set_title(title)
    fig._analysis_unavailable = message  # lets callers and tests tell the marker apart
    return fig


def save_figure(fig: Figure, path_stem, formats: Sequence[str] = ("pdf", "png"), dpi: int = 300):
    """Write ``fig`` as ``<path_stem>.pdf`` and ``<path_stem>.png`` (parents created).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to write.
    path_stem : str or Path
        Output path without extension (an extension given is replaced).
    formats : sequence of str
        File formats to write.
    dpi : int
        Resolution of raster formats.

    Returns
    -------
    list of Path
        The files written, in the order of ``formats``.
    """
    stem = Path(path_stem)
    if stem.suffix.lower() in {".pdf", ".png", ".svg"}:
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    with publication_style():
        for fmt in formats:
            path = stem.with_name(stem.name + "." + fmt)
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
            out.append(path)
    return out


def shared_norm(arrays: Iterable, percentile: float = 100.0) -> mcolors.Normalize:
    """One colour normalisation spanning every array (optionally a high percentile)."""
    import numpy as np

    vals = [np.asarray(a, dtype=float) for a in arrays]
    lo = min(float(np.min(v)) for v in vals)
    hi = max(float(np.percentile(v, percentile)) for v in vals)
    if hi <= lo:
        hi = lo + 1e-12
    return mcolors.Normalize(vmin=lo, vmax=hi)
