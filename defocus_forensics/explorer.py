"""The interactive explorer's callbacks, as plain functions testable without a browser.

The explorer notebook (``notebooks/explorer.py``) wires ipywidgets to an
:class:`Explorer`: a group dropdown fills the sample dropdown
(:meth:`Explorer.sample_options`), and choosing a sample or moving the
threshold slider redraws :meth:`Explorer.figure` and the text of
:meth:`Explorer.describe`. Every number comes from :mod:`analysis`
(:func:`analysis.masks.binary_mask`, :func:`analysis.alignment.alignment_score`,
:func:`analysis.pairing.match_by_id`); this module only selects samples and
lays out panels. Torch-free.

Examples
--------
>>> ex = Explorer("runs/demo/cache")                       # doctest: +SKIP
>>> ex.groups()                                            # doctest: +SKIP
['real', 'all_in_focus', 'inconsistent_blur', 'pasted_region']
>>> view = ex.view("pasted_region", 0, threshold=0.1)     # doctest: +SKIP
>>> view.alignment["defocus"].score                        # doctest: +SKIP
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["AlignmentView", "Explorer", "ExplorerWidgets", "SampleView"]

_SAMPLE_FIELDS = (
    "id",
    "group",
    "label",
    "pair_id",
    "image",
    "defocus",
    "attr_defocus",
    "attr_rgb",
    "mask",
    "logit_defocus",
    "logit_rgb",
)
_MODELS = {"defocus": "attr_defocus", "rgb": "attr_rgb"}


@dataclass(frozen=True)
class AlignmentView:
    """One model's alignment for one fake sample.

    Attributes
    ----------
    score : float
        Histogram intersection in [0, 1] (:func:`analysis.alignment.alignment_score`):
        the paper's raw score.
    kl : float
        ``KL(B || A)`` in nats.
    floor : float
        What a constant attribution scores on this pair (no information).
    skill : float
        ``(score - floor) / (1 - floor)``: 0 = no better than a constant
        attribution, 1 = attribution proportional to ``|fake - real|`` (NaN
        when undefined).
    hist_difference : ndarray of shape (bins,)
        A: ``|fake - real|`` mass per defocus level of the fake map, normalised.
    hist_attribution : ndarray of shape (bins,)
        B: ``|attribution|`` mass per defocus level, normalised.
    edges : ndarray of shape (bins + 1,)
        Bin edges on [0, 1].
    """

    score: float
    kl: float
    hist_difference: np.ndarray
    hist_attribution: np.ndarray
    edges: np.ndarray
    floor: float = float("nan")
    skill: float = float("nan")
    hist_constant: np.ndarray | None = None


@dataclass
class SampleView:
    """Everything the explorer shows for one sample at one threshold.

    Attributes
    ----------
    group, id : str
    index : int
        Position of the sample within its group.
    label : int
        0 real, 1 fake.
    pair_id : str
        Id of the source real ("" when none).
    image : ndarray of shape (R, R, 3), uint8, or None
    defocus : ndarray of shape (S, S), float32
        The normalised map the defocus classifier saw.
    attr_defocus : ndarray of shape (S, S) or None
        ``|attr|`` of the defocus model.
    attr_rgb : ndarray of shape (S, S) or None
        ``|attr|`` of the RGB model summed over channels (resized to ``S``).
    real_defocus : ndarray of shape (S, S) or None
        The paired real sample's map.
    mask : ndarray of shape (S, S), bool, or None
        ``|fake - real| > threshold`` (None without a pair).
    truth : ndarray of shape (S, S), uint8, or None
        Ground-truth manipulation mask, when the cache has one.
    threshold : float
    logits : dict of str to float
    alignment : dict of str to AlignmentView
        Per model (only for fakes with a pair and the model's attributions).
    notes : list of str
        Why a panel is missing.
    """

    group: str
    index: int
    id: str
    label: int
    pair_id: str
    image: np.ndarray | None
    defocus: np.ndarray
    attr_defocus: np.ndarray | None
    attr_rgb: np.ndarray | None
    real_defocus: np.ndarray | None
    mask: np.ndarray | None
    truth: np.ndarray | None
    threshold: float
    logits: dict[str, float] = field(default_factory=dict)
    alignment: dict[str, AlignmentView] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _alignment_histograms(fake: np.ndarray, real: np.ndarray, attr: np.ndarray, bins: int):
    """Histograms A and B of one pair, from :mod:`analysis.alignment` (no copy of its logic)."""
    from analysis import alignment

    public = getattr(alignment, "alignment_histograms", None)
    if public is not None:
        return public(fake, real, attr, bins=bins)
    weights = alignment.attribution_weights(attr, fake.shape)
    flat = alignment._flat_bins(fake[None].astype(np.float64), bins)
    diff = np.abs(fake.astype(np.float64) - real.astype(np.float64))[None]
    a = alignment._normalised_hist(flat, diff, bins)[0]
    b = alignment._normalised_hist(flat, weights[None], bins)[0]
    return a, b


class Explorer:
    """Browse a cache sample by sample.

    Parameters
    ----------
    cache : str, Path or cache reader
        The cache (opened with :func:`cache.open_cache` when a path).
    bins : int
        Alignment histogram bins.
    """

    def __init__(self, cache, bins: int = 20):
        from cache import open_cache

        if isinstance(cache, (str, Path)):
            cache = open_cache(cache)
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
            raise ValueError(f"bins must be a positive integer, got {bins!r}")
        if "defocus" not in cache.fields:
            raise ValueError(f"the cache has no 'defocus' field; it has {cache.fields}")
        self.cache = cache
        self.bins = bins
        self._fields = [f for f in _SAMPLE_FIELDS if f in cache.fields]
        self._shard_cache: tuple[tuple[str, int], dict] | None = None
        self._reals: tuple[np.ndarray, list[tuple[str, int]]] | None = None
        self._meta: dict[str, dict[str, np.ndarray]] = {}
        self.last_view: SampleView | None = None

    # -- choices -------------------------------------------------------------------

    def groups(self) -> list[str]:
        """Return the groups of the cache, for the group dropdown."""
        return list(self.cache.groups)

    def _group_meta(self, group: str) -> dict[str, np.ndarray]:
        if group not in self.cache.groups:
            raise ValueError(f"group must be one of {self.cache.groups}, got {group!r}")
        if group not in self._meta:
            fields = ["id", "label"] + [f for f in ("logit_defocus",) if f in self.cache.fields]
            self._meta[group] = self.cache.arrays(fields, group=group)
        return self._meta[group]

    def sample_options(self, group: str) -> list[tuple[str, int]]:
        """Return ``(label, index)`` pairs for the sample dropdown of ``group``.

        Parameters
        ----------
        group : str

        Returns
        -------
        list of (str, int)
            Label such as ``"3: syn0-00003-real (logit -0.42)"`` and the index in the group.
        """
        meta = self._group_meta(group)
        out = []
        for i, sid in enumerate(meta["id"]):
            logit = ""
            if "logit_defocus" in meta:
                logit = f" (defocus logit {float(meta['logit_defocus'][i]):+.2f})"
            out.append((f"{i}: {sid}{logit}", i))
        return out

    # -- loading --------------------------------------------------------------------

    def _locate(self, group: str, index: int) -> tuple[int, int]:
        n = len(self._group_meta(group)["id"])
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ValueError(f"index must be an integer, got {index!r}")
        if not 0 <= index < n:
            raise ValueError(f"index must be in [0, {n}) for group {group!r}, got {index}")
        start = 0
        entries = [e for e in self.cache.shards if e["group"] == group]
        for k, entry in enumerate(entries):
            if index < start + entry["n_samples"]:
                return k, int(index - start)
            start += entry["n_samples"]
        raise ValueError(f"index {index} not found in group {group!r}")  # pragma: no cover

    def _shard(self, group: str, k: int) -> dict[str, np.ndarray]:
        key = (group, k)
        if self._shard_cache is None or self._shard_cache[0] != key:
            shard = next(itertools.islice(self.cache.iter_shards(group, self._fields), k, k + 1))
            self._shard_cache = (key, shard)
        return self._shard_cache[1]

    def _row(self, group: str, index: int) -> dict[str, Any]:
        k, i = self._locate(group, index)
        shard = self._shard(group, k)
        return {f: shard[f][i] for f in self._fields}

    def _real_index(self) -> tuple[np.ndarray, list[tuple[str, int]]]:
        if self._reals is None:
            ids, where = [], []
            for g in self.cache.groups:
                meta = self._group_meta(g)
                for i in np.flatnonzero(meta["label"] == 0):
                    ids.append(str(meta["id"][i]))
                    where.append((g, int(i)))
            self._reals = (np.asarray(ids), where)
        return self._reals

    def partner(self, group: str, index: int) -> tuple[str, int] | None:
        """Return ``(group, index)`` of the real sample a fake was made from, or None."""
        row = self._row(group, index)
        if int(row["label"]) == 0 or not str(row["pair_id"]):
            return None
        from analysis.pairing import match_by_id

        ids, where = self._real_index()
        j = int(match_by_id([str(row["pair_id"])], ids)[0]) if len(ids) else -1
        return None if j < 0 else where[j]

    # -- the view -------------------------------------------------------------------

    def view(self, group: str, index: int, threshold: float = 0.1) -> SampleView:
        """Collect everything shown for one sample.

        Parameters
        ----------
        group : str
        index : int
            Position within the group.
        threshold : float
            Binary-mask threshold ``T`` in (0, 1).

        Returns
        -------
        SampleView
        """
        from analysis.alignment import alignment_score, attribution_weights
        from analysis.masks import binary_mask

        if isinstance(threshold, bool) or not 0 < float(threshold) < 1:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
        threshold = float(threshold)
        row = self._row(group, index)
        fake = np.asarray(row["defocus"], dtype=np.float32)
        notes: list[str] = []
        image = row.get("image")
        if image is not None:
            image = np.transpose(image, (1, 2, 0))
        else:
            notes.append("the cache has no 'image' field")
        attrs = {}
        for model, fname in _MODELS.items():
            if fname in row:
                attrs[model] = attribution_weights(row[fname], fake.shape).astype(np.float32)
            else:
                notes.append(f"the cache has no {fname!r} field")
        real = None
        where = self.partner(group, index)
        if int(row["label"]) == 0:
            notes.append("a real sample: no pair, no mask, no alignment")
        elif where is None:
            notes.append(f"no real sample with id {str(row['pair_id'])!r} in the cache")
        else:
            real = np.asarray(self._row(*where)["defocus"], dtype=np.float32)
        mask = None if real is None else binary_mask(fake, real, threshold)
        alignment = {}
        if real is not None:
            for model, fname in _MODELS.items():
                if fname not in row:
                    continue
                s = alignment_score(fake, real, row[fname], bins=self.bins)
                a, b = _alignment_histograms(fake, real, row[fname], self.bins)
                # a constant attribution weights B by pixel counts: the floor's histogram
                _, c = _alignment_histograms(fake, real, np.ones_like(fake), self.bins)
                alignment[model] = AlignmentView(
                    float(s.score), float(s.kl), np.asarray(a), np.asarray(b),
                    np.linspace(0.0, 1.0, self.bins + 1), float(s.floor), float(s.skill),
                    np.asarray(c),
                )  # fmt: skip
        truth = row.get("mask")
        return SampleView(
            group=group,
            index=int(index),
            id=str(row["id"]),
            label=int(row["label"]),
            pair_id=str(row["pair_id"]),
            image=image,
            defocus=fake,
            attr_defocus=attrs.get("defocus"),
            attr_rgb=attrs.get("rgb"),
            real_defocus=real,
            mask=mask,
            truth=None if truth is None else np.asarray(truth),
            threshold=threshold,
            logits={m: float(row[f"logit_{m}"]) for m in _MODELS if f"logit_{m}" in row},
            alignment=alignment,
            notes=notes,
        )

    def describe(self, view: SampleView) -> str:
        """Describe a view in one paragraph: id, logits, mask size, alignment scores."""
        kind = "fake" if view.label == 1 else "real"
        parts = [f"{view.id} ({view.group}, {kind})"]
        if view.logits:
            parts.append("logits: " + ", ".join(f"{m} {v:+.3f}" for m, v in view.logits.items()))
        if view.mask is not None:
            parts.append(
                f"binary mask at T={view.threshold:g}: {int(view.mask.sum())} of "
                f"{view.mask.size} pixels"
            )
        for model, al in view.alignment.items():
            skill = "n/a" if al.skill != al.skill else f"{al.skill:+.3f}"
            parts.append(
                f"alignment {model}: {al.score:.3f} (floor {al.floor:.3f}, skill {skill}; "
                f"KL {al.kl:.3f})"
            )
        if view.alignment:
            parts.append(
                "raw: the paper's score; floor: what a constant attribution scores; skill: "
                "0 = no better than constant, 1 = attribution proportional to |fake - real|"
            )
        parts += view.notes
        return "; ".join(parts)

    def figure(self, view: SampleView):
        """Draw a view: image, defocus map, both attribution maps, the mask, the histograms.

        The colour maps are the figures' (:mod:`analysis.style`): defocus maps in
        ``DEFOCUS_CMAP`` on [0, 1], ``|attribution|`` in ``SEQUENTIAL_CMAP`` on
        one scale for both models (from 0 to the 99th percentile of both),
        masks in ``MASK_CMAP``; every map has a colour bar. The panels and bars
        are the same for every sample, so the layout does not jump.

        Parameters
        ----------
        view : SampleView

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.colors as mcolors
        from matplotlib.cm import ScalarMappable

        from analysis.style import (
            DEFOCUS_CMAP,
            MASK_CMAP,
            SEQUENTIAL_CMAP,
            colorbar,
            figure,
            image_axes,
            model_name,
            publication_style,
        )

        attrs = [a for a in (view.attr_defocus, view.attr_rgb) if a is not None]
        top = max((float(np.percentile(a, 99)) for a in attrs), default=1.0) or 1e-12
        attr_norm = mcolors.Normalize(0.0, top)
        unit_norm = mcolors.Normalize(0.0, 1.0)
        panels = [
            ("image", view.image, None, None),
            ("defocus map", view.defocus, DEFOCUS_CMAP, unit_norm),
            ("defocus model |attr|", view.attr_defocus, SEQUENTIAL_CMAP, attr_norm),
            ("RGB model Σ|attr|", view.attr_rgb, SEQUENTIAL_CMAP, attr_norm),
            (f"|fake - real| > {view.threshold:g}", view.mask, MASK_CMAP, unit_norm),
        ]
        # always the same six panels and two histogram slots, so the layout never jumps
        # while one browses samples (an absent ground truth is an "n/a" panel)
        has_truth = view.truth is not None and view.truth.any()
        panels.append(("ground-truth mask", view.truth if has_truth else None, MASK_CMAP,
                       unit_norm))  # fmt: skip
        n_hist = max(2, len(view.alignment))
        with publication_style():
            fig = figure(2.2 * len(panels), 5.4)
            top_fig, bottom_fig = fig.subfigures(2, 1, height_ratios=[1.35, 1.1])
            grid = top_fig.add_gridspec(1, len(panels))
            bottom = bottom_fig.add_gridspec(1, n_hist)
            axes = []
            for c, (title, data, cmap, norm) in enumerate(panels):
                ax = top_fig.add_subplot(grid[0, c])
                image_axes(ax)
                ax.set_title(title, fontsize=8)
                axes.append(ax)
                if data is None:
                    ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
                    continue
                ax.imshow(data, cmap=cmap, norm=norm, interpolation="nearest")
            # colour bars from the scales, not the data: present for every sample alike
            bars = (
                ([axes[1]], DEFOCUS_CMAP, unit_norm,
                 "normalised defocus\n(0 sharpest, 1 most blurred)"),
                (axes[2:4], SEQUENTIAL_CMAP, attr_norm,
                 "|attribution| (logit)\n(one scale, both models)"),
                (axes[4:6], MASK_CMAP, unit_norm, "binary mask"),
            )  # fmt: skip
            for bar_axes, cmap, norm, label in bars:
                mask = cmap is MASK_CMAP
                cb = colorbar(top_fig, ScalarMappable(norm=norm, cmap=cmap), ax=bar_axes,
                              orientation="horizontal", location="bottom", shrink=0.8,
                              label=label, extend="max" if norm is attr_norm else "neither",
                              ticks=[0.25, 0.75] if mask else None)  # fmt: skip
                if mask:
                    cb.set_ticklabels(["off", "on"])
            if not view.alignment:
                ax = bottom_fig.add_subplot(bottom[0, :])
                ax.set_axis_off()
                ax.text(0.5, 0.5, "no alignment: " + "; ".join(view.notes), ha="center",
                        va="center", transform=ax.transAxes, wrap=True)  # fmt: skip
            for k, (model, al) in enumerate(view.alignment.items()):
                ax = bottom_fig.add_subplot(bottom[0, k])
                centers = 0.5 * (al.edges[:-1] + al.edges[1:])
                step = al.edges[1] - al.edges[0]
                ax.bar(centers - step / 4, al.hist_difference, width=step / 2,
                       label="A: |fake - real|")  # fmt: skip
                ax.bar(centers + step / 4, al.hist_attribution, width=step / 2,
                       label="B: |attr|")  # fmt: skip
                if al.hist_constant is not None:
                    ax.step(al.edges, np.r_[al.hist_constant, al.hist_constant[-1]],
                            where="post", color="black", lw=0.8,
                            label="constant attribution (floor)")  # fmt: skip
                skill = "n/a" if al.skill != al.skill else f"{al.skill:+.2f}"
                ax.set_title(
                    f"{model_name(model)}: score {al.score:.3f}, floor {al.floor:.3f}, "
                    f"skill {skill}",
                    fontsize=8,
                )
                ax.set_xlabel("defocus level of the fake map")
                ax.set_ylabel("share of the mass")
                ax.set_xlim(0, 1)
                ax.legend(fontsize=6.5)
            fig.suptitle(_short_id(view.id) + f" ({view.group})", fontsize=10)
        return fig

    # -- widgets --------------------------------------------------------------------

    def default_group(self) -> str:
        """Return the first group holding fakes (else the first group)."""
        for g in self.cache.groups:
            if (self._group_meta(g)["label"] == 1).any():
                return g
        return self.cache.groups[0]

    def on_change(self, group: str, index: int, threshold: float) -> tuple[SampleView, str]:
        """Compute the view and its description for the widgets' current choices.

        Parameters
        ----------
        group : str
        index : int
        threshold : float

        Returns
        -------
        (SampleView, str)
            Also kept as :attr:`last_view`.
        """
        view = self.view(group, index, threshold)
        self.last_view = view
        return view, self.describe(view)

    def widget(self, group: str | None = None, index: int = 0, threshold: float = 0.1):
        """Build the ipywidgets explorer: group and sample dropdowns, a threshold slider.

        Parameters
        ----------
        group : str, optional
            Initial group (default :meth:`default_group`).
        index : int
            Initial sample index within the group.
        threshold : float
            Initial binary-mask threshold.

        Returns
        -------
        ExplorerWidgets
            ``.box`` (display it) and the individual widgets, whose ``value``
            can be set programmatically (as the tests do).
        """
        import html

        import ipywidgets as widgets
        from IPython.display import display

        group = group if group is not None else self.default_group()
        self.view(group, index, threshold)  # validates the initial choices
        # labels never cut off; the sample list wide enough for long ids
        style = {"description_width": "initial"}
        group_w = widgets.Dropdown(options=self.groups(), value=group, description="group",
                                   style=style, layout=widgets.Layout(width="16em"))  # fmt: skip
        sample_w = widgets.Dropdown(
            options=self.sample_options(group), value=index, description="sample",
            style=style, layout=widgets.Layout(width="34em"),
        )  # fmt: skip
        # redraw when the slider is released, not at every step of a drag (~0.5 s a figure)
        thr_w = widgets.FloatLogSlider(
            value=threshold, base=10, min=-4, max=-0.1, step=0.05, description="threshold T",
            continuous_update=False, readout_format=".1e", style=style,
            layout=widgets.Layout(width="26em"),
        )  # fmt: skip
        text = widgets.HTML(layout=widgets.Layout(min_height="3em"))
        # a fixed height: the page does not jump when a figure is replaced
        out = widgets.Output(layout=widgets.Layout(min_height="520px"))

        def redraw(_change=None):
            view, description = self.on_change(group_w.value, sample_w.value, thr_w.value)
            text.value = f"<p>{html.escape(description)}</p>"
            fig = self.figure(view)
            out.clear_output(wait=True)
            with out:
                display(fig)

        def on_group(change):
            sample_w.unobserve(redraw, "value")
            sample_w.options = self.sample_options(change["new"])
            sample_w.value = 0
            sample_w.observe(redraw, "value")
            redraw()

        group_w.observe(on_group, "value")
        sample_w.observe(redraw, "value")
        thr_w.observe(redraw, "value")
        redraw()
        controls = widgets.HBox([group_w, sample_w, thr_w],
                                layout=widgets.Layout(flex_flow="row wrap"))  # fmt: skip
        box = widgets.VBox([controls, text, out])
        return ExplorerWidgets(box, group_w, sample_w, thr_w, text, out)


def _short_id(sample_id: str, limit: int = 48) -> str:
    """Shorten a long sample id for a title, keeping its informative end."""
    return sample_id if len(sample_id) <= limit else "…" + sample_id[-(limit - 1) :]


@dataclass
class ExplorerWidgets:
    """The explorer's widgets (see :meth:`Explorer.widget`)."""

    box: Any
    group: Any
    sample: Any
    threshold: Any
    text: Any
    output: Any

    def _ipython_display_(self):
        from IPython.display import display

        display(self.box)
