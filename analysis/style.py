"""Publication styling for every analysis figure: paper widths, colour maps, captions.

Figures are built as :class:`matplotlib.figure.Figure` objects (never through
``pyplot``), so no global state changes and nothing is shown; styling is
applied with :func:`matplotlib.rc_context` only while a figure is built.

Conventions every figure of the toolkit follows:

- Widths of a two-column paper: ``"single"`` (3.5 in, one column) and
  ``"double"`` (7 in, both columns), exactly: figures use constrained layout
  and are saved without cropping, so the PDF is as wide as asked. Text is
  7-8 pt at both widths.
- One colour map per quantity, the same in every figure: defocus maps in
  :data:`DEFOCUS_CMAP` (grey, 0 = sharpest to 1 = most blurred),
  non-negative magnitudes (``|attr|``, local variance) in
  :data:`SEQUENTIAL_CMAP` (viridis), signed quantities (Shapley values,
  differences) in :data:`DIVERGING_CMAP` centred on 0
  (:func:`symmetric_norm`), binary masks in :data:`MASK_CMAP` (two flat
  colours). Every map has a colour bar with its unit.
- Colours of groups from the Okabe-Ito palette (:func:`group_colors`),
  readable with the common colour-vision deficiencies; nothing is drawn
  translucent over something else, so no colour appears that the legend does
  not show.
- A figure carries its own caption (:func:`set_caption`), written by the
  function that drew it from what it drew.
"""

from __future__ import annotations

import contextlib
import re
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import matplotlib
import matplotlib.colors as mcolors
from matplotlib.figure import Figure

from safeio import atomic_path

__all__ = [
    "COLUMN_WIDTHS",
    "DEFOCUS_CMAP",
    "DIVERGING_CMAP",
    "MASK_CMAP",
    "MODEL_COLORS",
    "MODEL_MARKERS",
    "MODEL_NAMES",
    "OKABE_ITO",
    "SEQUENTIAL_CMAP",
    "blank_panel",
    "caption_of",
    "colorbar",
    "column_width",
    "figure",
    "group_colors",
    "group_markers",
    "image_axes",
    "image_grid",
    "label_sample",
    "level_text",
    "model_name",
    "publication_style",
    "sample_label",
    "save_figure",
    "set_caption",
    "shared_norm",
    "signed_ticks",
    "symmetric_norm",
    "unavailable_figure",
    "wrap_label",
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
#: Perceptually uniform, colour-blind-safe map for non-negative magnitudes.
SEQUENTIAL_CMAP = "viridis"
#: Diverging map for signed quantities; always used with a norm centred on 0.
DIVERGING_CMAP = "RdBu_r"
#: Normalised defocus maps (0 = sharpest, 1 = most blurred in the image).
DEFOCUS_CMAP = "gray"
#: Binary masks: 0 light grey, 1 vermillion.
MASK_CMAP = mcolors.ListedColormap(["#E8E8E8", "#D55E00"], name="binary_mask")
#: Paper widths in inches.
COLUMN_WIDTHS: dict[str, float] = {"single": 3.5, "double": 7.0}
#: Default display name of each model of a cache.
MODEL_NAMES: dict[str, str] = {"defocus": "defocus model", "rgb": "RGB model"}
#: Colour and marker of each model where models share a panel (skill, sanity check): black
#: circles and vermillion squares, told apart by shape as well as by colour.
MODEL_COLORS: dict[str, str] = {"defocus": "#000000", "rgb": "#D55E00"}
MODEL_MARKERS: dict[str, str] = {"defocus": "o", "rgb": "s"}

_GROUP_MARKERS = ("^", "s", "D", "v", "P", "X", "<", ">")


def column_width(width) -> float:
    """Width in inches of ``"single"`` (3.5) or ``"double"`` (7.0).

    Raises
    ------
    ValueError
        For any other value.
    """
    if isinstance(width, str) and width in COLUMN_WIDTHS:
        return COLUMN_WIDTHS[width]
    raise ValueError(f"width must be 'single' (3.5 in) or 'double' (7 in), got {width!r}")


def _rc() -> dict:
    # seaborn's "ticks" style, written out (importing seaborn costs seconds per process)
    rc = {
        "figure.facecolor": "white",
        "axes.facecolor": "white",
        "axes.edgecolor": ".15",
        "axes.labelcolor": ".15",
        "axes.axisbelow": True,
        "axes.grid": False,
        "text.color": ".15",
        "xtick.color": ".15",
        "ytick.color": ".15",
        "xtick.direction": "out",
        "ytick.direction": "out",
        "xtick.top": False,
        "ytick.right": False,
        "xtick.bottom": True,
        "ytick.left": True,
        "font.family": ["sans-serif"],
        "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "sans-serif"],
        "lines.solid_capstyle": "round",
        "patch.edgecolor": "white",
        "patch.force_edgecolor": True,
        "axes.spines.left": True,
        "axes.spines.bottom": True,
    }
    rc.update(
        {
            "axes.prop_cycle": matplotlib.cycler(color=list(OKABE_ITO)),
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 8,
            "axes.titlesize": 8,
            "axes.labelsize": 8,
            "xtick.labelsize": 7,
            "ytick.labelsize": 7,
            "legend.fontsize": 7,
            "legend.title_fontsize": 7,
            "figure.titlesize": 8,
            "axes.linewidth": 0.6,
            "xtick.major.width": 0.6,
            "ytick.major.width": 0.6,
            "xtick.major.size": 2.5,
            "ytick.major.size": 2.5,
            "xtick.minor.size": 1.5,
            "ytick.minor.size": 1.5,
            "lines.linewidth": 1.2,
            "lines.markersize": 4,
            "patch.linewidth": 0.6,
            "figure.dpi": 100,
            "savefig.dpi": 300,
            "pdf.fonttype": 42,  # embed TrueType: text stays editable in the PDF
            "ps.fonttype": 42,
            "image.cmap": SEQUENTIAL_CMAP,
            "image.interpolation": "nearest",
            "legend.frameon": False,
            "figure.constrained_layout.h_pad": 0.02,
            "figure.constrained_layout.w_pad": 0.02,
        }
    )
    return rc


@contextlib.contextmanager
def publication_style() -> Iterator[None]:
    """Context in which matplotlib uses the publication style; restored on exit."""
    with matplotlib.rc_context(_rc()):
        yield


def figure(width: float | str = "double", height: float = 4.0, **kwargs) -> Figure:
    """Return a new Figure (not registered with pyplot) with constrained layout.

    Parameters
    ----------
    width : {"single", "double"} or float
        Paper width (3.5 or 7 in) or a width in inches.
    height : float
        Height in inches.
    **kwargs
        Passed to :class:`matplotlib.figure.Figure`.

    Returns
    -------
    matplotlib.figure.Figure
        With ``fig.paper_width`` set to ``width`` when it is a paper width.
    """
    w = column_width(width) if isinstance(width, str) else float(width)
    fig = Figure(figsize=(w, height), layout="constrained", **kwargs)
    fig.paper_width = width if isinstance(width, str) else None
    return fig


def set_caption(fig: Figure, text: str) -> Figure:
    """Attach the caption that describes exactly what ``fig`` shows (read by :func:`caption_of`)."""
    fig.caption = " ".join(str(text).split())
    return fig


def caption_of(fig: Figure, default: str = "") -> str:
    """Return the caption set by :func:`set_caption`, else ``default``."""
    return getattr(fig, "caption", None) or default


def model_name(model: str, names: dict[str, str] | None = None) -> str:
    """Display name of a model key (``"defocus"`` -> ``"defocus model"``), ``names`` first."""
    if names and model in names:
        return names[model]
    return MODEL_NAMES.get(model, f"{model} model")


def level_text(level: str, n_units: int | None = None) -> str:
    """Say at which unit an interval or test was computed, for a caption.

    Parameters
    ----------
    level : {"video", "frame"}
        ``"video"``: whole videos resampled and tested as units; anything
        else: every frame (image) taken as independent.
    n_units : int, optional
        Number of videos (named when given).

    Returns
    -------
    str
        E.g. ``"video-level (whole videos resampled and tested as units: 12 videos)"``.
    """
    if level == "video":
        count = f": {n_units} videos" if n_units is not None else ""
        return f"video-level (whole videos resampled and tested as units{count})"
    return "frame-level (every image taken as independent)"


def group_colors(groups: Iterable[str]) -> dict[str, str]:
    """Map each group to a fixed Okabe-Ito colour; ``"real"`` is always blue.

    Parameters
    ----------
    groups : iterable of str
        Group names, in the order colours are handed out.

    Returns
    -------
    dict of str to str
        Group name to hex colour (colours repeat after seven fake groups).
    """
    out: dict[str, str] = {}
    palette = [c for c in OKABE_ITO if c not in (OKABE_ITO[0], OKABE_ITO[6])]  # no pale yellow
    palette.append(OKABE_ITO[6])
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


def group_markers(groups: Iterable[str]) -> dict[str, str]:
    """Map each group to a marker: ``"real"`` a circle, fakes triangles, squares, diamonds...

    Returns
    -------
    dict of str to str
        Group name to matplotlib marker.
    """
    out: dict[str, str] = {}
    i = 0
    for g in groups:
        if g in out:
            continue
        if g == "real":
            out[g] = "o"
        else:
            out[g] = _GROUP_MARKERS[i % len(_GROUP_MARKERS)]
            i += 1
    return out


def _wrap_id(text: str, width: int) -> list[str]:
    """Wrap ``text`` greedily into lines of at most ``width`` chars, breaking after - _ / or ."""
    tokens = [t for t in re.split(r"(?<=[-_/.])", text) if t]
    lines: list[str] = []
    for tok in tokens:
        while len(tok) > width:  # a token longer than a line is cut
            if lines and len(lines[-1]) < width:
                room = width - len(lines[-1])
                lines[-1] += tok[:room]
                tok = tok[room:]
            else:
                lines.append(tok[:width])
                tok = tok[width:]
        if lines and len(lines[-1]) + len(tok) <= width:
            lines[-1] += tok
        elif tok:
            lines.append(tok)
    return lines


def wrap_label(text: str, width: int = 14) -> str:
    """Wrap a name (a group, a model) into lines of at most ``width`` characters.

    Breaks after ``-``, ``_``, ``/`` or ``.`` and between words, so that
    ``"inconsistent_blur"`` becomes the two lines ``inconsistent_`` and ``blur``
    (never ``inconsistent_blu`` and ``r``).
    """
    words = str(text).split()
    lines: list[str] = []
    for word in words:
        for part in _wrap_id(word, width):
            if (
                lines
                and len(lines[-1]) + 1 + len(part) <= width
                and not lines[-1].endswith(("-", "_", "/", "."))
            ):
                lines[-1] += " " + part
            else:
                lines.append(part)
    return "\n".join(lines)


def sample_label(sample_id: str, group: str | None = None, width: int = 16) -> str:
    """Short, wrapped label of a sample: its group, then its id without the group in it.

    Ids such as ``"syn2000-00003-all_in_focus"`` repeat the group; it is
    removed from the id. Group and id are each wrapped after ``-``, ``_``,
    ``/`` or ``.`` into at most two lines of at most ``width`` characters (a
    longer text keeps its first line and its end, joined by an ellipsis).

    Parameters
    ----------
    sample_id : str
    group : str, optional
    width : int
        Characters per line.

    Returns
    -------
    str
        One to four lines.
    """
    sid = str(sample_id)
    if group:
        for sep in ("-", "_", "/", "."):
            if sid.endswith(sep + group):
                sid = sid[: -len(group) - 1]
                break
            if sid.startswith(group + sep):
                sid = sid[len(group) + 1 :]
                break
    lines = _wrap_id(sid, width)
    if len(lines) > 2:
        lines = [lines[0], "…" + sid[-(width - 1) :]]
    head = []
    if group:
        head = _wrap_id(str(group), width)
        if len(head) > 2:
            head = [head[0], "…" + str(group)[-(width - 1) :]]
    return "\n".join(head + lines)


def unavailable_figure(message: str, title: str | None = None, width: float | str = "double"):
    """Return a small figure that says plainly which figure was not drawn and why.

    Parameters
    ----------
    message : str
        Why the figure cannot be drawn, and what would make it possible.
    title : str, optional
        What the figure would have shown.
    width : {"single", "double"} or float

    Returns
    -------
    matplotlib.figure.Figure
        With ``fig._analysis_unavailable = message`` and a caption saying the same.
    """
    with publication_style():
        fig = figure(width, 1.1 if width == "double" else 1.5)
        ax = fig.add_subplot()
        ax.set_axis_off()
        chars = 95 if fig.get_figwidth() > 5 else 50
        head = f"{title}: not drawn" if title else "not drawn"
        body = "\n".join(textwrap.wrap(message, chars))
        ax.text(0.5, 0.62, head, ha="center", va="center", fontsize=8, weight="bold")
        ax.text(0.5, 0.5, body, ha="center", va="top", fontsize=7)
    fig._analysis_unavailable = message  # lets callers and tests tell the marker apart
    set_caption(fig, f"Not drawn: {message}")
    return fig


def save_figure(fig: Figure, path_stem, formats: Sequence[str] = ("pdf", "png"), dpi: int = 300):
    """Write ``fig`` as ``<path_stem>.pdf`` and ``<path_stem>.png`` (parents created).

    The figure is saved at its own size (no cropping), so a figure made at
    a paper width keeps that width in every file.

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
                fig.savefig(tmp, format=fmt, dpi=dpi)
            out.append(path)
    return out


def shared_norm(arrays: Iterable, percentile: float = 100.0) -> mcolors.Normalize:
    """One colour normalisation spanning every array (optionally up to a high percentile).

    Parameters
    ----------
    arrays : iterable of ndarray
        Every array drawn on the scale.
    percentile : float
        Upper end: this percentile of each array, the largest over arrays.

    Returns
    -------
    matplotlib.colors.Normalize
    """
    import numpy as np

    vals = [np.asarray(a, dtype=float) for a in arrays]
    lo = min(float(np.min(v)) for v in vals)
    hi = max(float(np.percentile(v, percentile)) for v in vals)
    if hi <= lo:
        hi = lo + 1e-12
    return mcolors.Normalize(vmin=lo, vmax=hi)


def symmetric_norm(arrays: Iterable, percentile: float = 100.0) -> mcolors.Normalize:
    """Return a colour normalisation centred on 0, ``[-v, v]``, ``v`` a percentile of ``|x|``.

    Parameters
    ----------
    arrays : iterable of ndarray
        Every signed array drawn on the scale.
    percentile : float
        ``v`` is this percentile of ``|x|`` over all arrays pooled (100: the maximum).

    Returns
    -------
    matplotlib.colors.Normalize
        ``vmin = -vmax``, so 0 sits at the diverging map's neutral centre.
    """
    import numpy as np

    pooled = np.concatenate([np.abs(np.asarray(a, dtype=float)).ravel() for a in arrays])
    v = float(np.percentile(pooled, percentile)) if pooled.size else 0.0
    if not v > 0:
        v = float(pooled.max()) if pooled.size and pooled.max() > 0 else 1e-12
    return mcolors.Normalize(vmin=-v, vmax=v)


def blank_panel(ax, text: str, fontsize: float = 6.5) -> None:
    """Turn ``ax`` into a grey-framed panel that only says ``text`` (e.g. "n/a: ...")."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color("#BBBBBB")
        spine.set_linewidth(0.5)
    ax.set_facecolor("white")
    ax.set_box_aspect(1)
    ax.text(
        0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=fontsize,
        color="#444444", wrap=True,
    )  # fmt: skip


def image_axes(ax) -> None:
    """Strip ticks from an image panel and frame it with a thin border."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_linewidth(0.4)


def colorbar(fig, mappable, cax=None, ax=None, label: str = "", **kwargs):
    """Draw a colour bar with a unit label, small ticks, few tick labels (3 horizontal, 5 vertical).

    Parameters
    ----------
    fig : matplotlib.figure.Figure or SubFigure
    mappable : matplotlib.cm.ScalarMappable
        The image (or a ScalarMappable) whose norm and map the bar shows.
    cax, ax : matplotlib axes, optional
        Where the bar goes (see :meth:`matplotlib.figure.Figure.colorbar`).
    label : str
        Quantity and unit.
    **kwargs
        Passed to :meth:`~matplotlib.figure.Figure.colorbar`.

    Returns
    -------
    matplotlib.colorbar.Colorbar
    """
    from matplotlib.ticker import MaxNLocator

    cb = fig.colorbar(mappable, cax=cax, ax=ax, **kwargs)
    cb.set_label(label, fontsize=7)
    cb.ax.tick_params(labelsize=6.5, length=2, width=0.5)
    cb.outline.set_linewidth(0.5)
    if not kwargs.get("ticks"):
        cb.locator = MaxNLocator(3 if kwargs.get("orientation") == "horizontal" else 5)
        cb.update_ticks()
    return cb


def image_grid(
    width,
    n_samples: int,
    columns: Sequence[str],
    n_bars: int = 1,
    label_width: float = 0.3,
    title_height: float = 0.3,
    bar_height: float = 0.62,
    row_extra: float = 0.0,
):
    """Figure of image panels: one block of ``len(columns)`` panels per sample, colour bars below.

    Single width puts one sample per row, double width two side by side.
    Column titles go above the first row of blocks; each block's first
    panel leaves room on its left for a sample label.

    Parameters
    ----------
    width : {"single", "double"}
    n_samples : int
    columns : sequence of str
        Title of each panel of a block.
    n_bars : int
        Colour-bar axes in a row below the panels (0: none).
    label_width, title_height, bar_height : float
        Room in inches for the sample labels, column titles and colour bars.
    row_extra : float
        Extra room in inches per row (e.g. for text under the panels).

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : list of list of matplotlib.axes.Axes
        ``axes[i][c]``: panel ``c`` of sample ``i``.
    bar_axes : list of matplotlib.axes.Axes
        The colour-bar axes (horizontal bars).
    """
    w = column_width(width)
    per_row = 1 if width == "single" or n_samples == 1 else 2
    k = len(columns)
    n_rows = -(-n_samples // per_row)
    spacer = 0.12
    panel = (w - per_row * label_width - (per_row - 1) * spacer - 0.1) / (k * per_row)
    grid_h = title_height + n_rows * (panel + 0.04 + row_extra)
    height = grid_h + (bar_height if n_bars else 0.0)
    fig = figure(width, height)
    fig.panel_size = panel
    if n_bars:
        top, bottom = fig.subfigures(2, 1, height_ratios=[grid_h, bar_height])
    else:
        top, bottom = fig, None
    ratios = []
    for b in range(per_row):
        ratios.extend([1.0] * k)
        if b < per_row - 1:
            ratios.append(spacer / panel)
    gs = top.add_gridspec(n_rows, len(ratios), width_ratios=ratios, wspace=0.03, hspace=0.03)
    axes = []
    for i in range(n_rows * per_row):
        r, b = divmod(i, per_row)
        first = b * (k + 1)
        row = [top.add_subplot(gs[r, first + c]) for c in range(k)]
        for c, ax in enumerate(row):
            image_axes(ax)
            if r == 0:
                ax.set_title(columns[c], fontsize=7, linespacing=1.1)
        if i < n_samples:
            axes.append(row)
        else:
            for ax in row:
                ax.set_axis_off()
    bar_axes = []
    if n_bars:
        bgs = bottom.add_gridspec(1, 2 * n_bars + 1, width_ratios=[0.15] + [1.0, 0.3] * n_bars)
        bar_axes = [bottom.add_subplot(bgs[0, 1 + 2 * j]) for j in range(n_bars)]
    return fig, axes, bar_axes


def label_sample(ax, sample_id: str, group: str | None, width: int | None = None) -> None:
    """Write a sample's short, wrapped label (:func:`sample_label`) vertically left of ``ax``.

    ``width`` (characters per line) defaults to what the panel's height holds at 6 pt.
    """
    if width is None:
        panel = getattr(ax.get_figure(root=True), "panel_size", 0.75)
        width = max(8, int(panel * 72.0 / 3.4))
    ax.set_ylabel(sample_label(sample_id, group, width), fontsize=6, labelpad=2, linespacing=1.25)


def signed_ticks(cb, vmax: float) -> None:
    """Three ticks ``-v, 0, v`` on a colour bar of a symmetric scale, in 2 significant digits."""
    cb.set_ticks([-vmax, 0.0, vmax])
    cb.set_ticklabels([f"{-vmax:.2g}", "0", f"{vmax:.2g}"])
