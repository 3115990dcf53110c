"""RGB-model vs defocus-model attributions drawn over the image the models saw.

For a few samples, :func:`overlays_from_cache` gathers the image (the
``image`` field, when the cache holds it), the defocus map and both models'
attributions; :func:`plot_attribution_overlays` draws, per sample, the image,
the defocus map and each model's attribution map as separate panels (nothing
blended), both models on one colour scale: signed Shapley values on a
diverging map centred on 0, or ``|attr|`` on a sequential one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["overlays_from_cache", "plot_attribution_overlays", "plot_explanation"]

_FIELDS = ("image", "defocus", "attr_defocus", "attr_rgb")


def overlays_from_cache(
    cache, n: int = 4, groups: Sequence[str] | None = None, ids: Sequence[str] | None = None
) -> dict:
    """Collect what :func:`plot_attribution_overlays` draws for ``n`` samples per group.

    Parameters
    ----------
    cache : cache reader
        From :func:`cache.open_cache`.
    n : int
        Samples per group (the first ones in cache order), unless ``ids`` is given.
    groups : sequence of str, optional
        Groups to take samples from (default: all).
    ids : sequence of str, optional
        Exactly these samples.

    Returns
    -------
    dict
        ``"id"``, ``"group"`` (lists) and, for each of ``image`` (uint8
        (k, 3, R, R)), ``defocus``, ``attr_defocus``, ``attr_rgb``, an array or
        None when the cache lacks the field; ``"unavailable"``: field to reason.
    """
    from analysis.pairing import iter_group

    have = [f for f in _FIELDS if f in cache.fields]
    out: dict = {"id": [], "group": [], **{f: [] for f in have}}
    wanted = None if ids is None else {str(i) for i in ids}
    for g in cache.groups:
        if groups is not None and g not in groups:
            continue
        got = 0
        for shard in iter_group(cache, g, ("id", *have)):
            sel = np.arange(len(shard["id"]))
            if wanted is not None:
                sel = np.flatnonzero(np.isin(shard["id"], list(wanted)))
            else:
                sel = sel[: n - got]
            for i in sel:
                out["id"].append(str(shard["id"][i]))
                out["group"].append(g)
                for f in have:
                    out[f].append(shard[f][i])
            got += len(sel)
            if wanted is None and got >= n:
                break
    for f in _FIELDS:
        out[f] = np.stack(out[f]) if f in have and out[f] else None
    out["unavailable"] = {f: f"the cache has no {f!r} field" for f in _FIELDS if f not in have}
    return out


def _signed_map(attr: np.ndarray, side: int) -> np.ndarray:
    """Per-pixel signed attribution: summed over channels, resized to ``side`` when needed."""
    from analysis.alignment import _resize

    a = np.asarray(attr, dtype=np.float64)
    if a.ndim == 3:
        a = a.sum(axis=0)
    if a.shape != (side, side):
        a = _resize(a[None], side)[0]
    return a


def plot_attribution_overlays(
    samples: dict,
    percentile: float = 99.0,
    *,
    signed: bool = True,
    width: str = "double",
    model_names: dict | None = None,
):
    """Image, defocus map and each model's attribution map side by side, per sample.

    Nothing is blended: the image, the defocus map and the two attribution
    maps are separate panels. Both models' attributions share one colour
    scale (so they can be compared), with a colour bar: signed Shapley values
    on a diverging map centred on 0 (``signed=True``), or ``|attr|`` on the
    sequential map. The RGB model's attributions are summed over the three
    channels (signed, or ``sum |attr|``) and resized to the defocus map's side.

    Parameters
    ----------
    samples : dict
        From :func:`overlays_from_cache`.
    percentile : float
        The shared scale ends at this percentile of ``|attr|`` over every
        attribution panel (values beyond get the end colours; the bar shows it).
    signed : bool
        Signed attributions (diverging map) or magnitudes (sequential map).
    width : {"single", "double"}
        Paper width: one sample per row (single) or two (double).
    model_names : dict of str to str, optional
        Display names of ``"defocus"`` and ``"rgb"``.

    Returns
    -------
    matplotlib.figure.Figure
        Its caption (:func:`analysis.style.caption_of`) says what is drawn.
    """
    from analysis.alignment import attribution_weights
    from analysis.style import (
        DEFOCUS_CMAP,
        DIVERGING_CMAP,
        SEQUENTIAL_CMAP,
        blank_panel,
        colorbar,
        column_width,
        image_grid,
        label_sample,
        model_name,
        publication_style,
        set_caption,
        shared_norm,
        signed_ticks,
        symmetric_norm,
        unavailable_figure,
    )

    column_width(width)
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    title = "attribution maps"
    k = len(samples["id"])
    if k == 0:
        return unavailable_figure("the cache holds no sample to show", title, width)
    image = samples.get("image")
    defocus = samples.get("defocus")
    attrs = {m: samples.get(f) for m, f in (("defocus", "attr_defocus"), ("rgb", "attr_rgb"))}
    if all(a is None for a in attrs.values()):
        reasons = "; ".join(samples["unavailable"].get(f, "") for f in ("attr_defocus", "attr_rgb"))
        return unavailable_figure(f"no attributions to draw ({reasons})", title, width)
    if defocus is not None:
        side = defocus.shape[-1]
    elif image is not None:
        side = image.shape[-1]
    else:
        side = next(a for a in attrs.values() if a is not None).shape[-1]
    maps = {}
    for m, a in attrs.items():
        if a is None:
            continue
        if signed:
            maps[m] = [_signed_map(a[r], side) for r in range(k)]
        else:
            maps[m] = [attribution_weights(a[r], (side, side)) for r in range(k)]
    shown = [x for v in maps.values() for x in v]
    norm = symmetric_norm(shown, percentile) if signed else shared_norm(shown, percentile)
    if not signed:
        norm.vmin = 0.0
    cmap = DIVERGING_CMAP if signed else SEQUENTIAL_CMAP
    names = {m: model_name(m, model_names) for m in attrs}
    cols = [
        "image",
        "defocus map",
        "defocus model\nattribution",
        "RGB model\nattribution",
    ]
    with publication_style():
        fig, axes, bars = image_grid(width, k, cols, n_bars=2, title_height=0.3)
        im_map = im_attr = None
        for r in range(k):
            row = axes[r]
            if image is not None:
                row[0].imshow(np.transpose(image[r], (1, 2, 0)))
            else:
                blank_panel(row[0], "n/a:\nno 'image'\nfield")
            if defocus is not None:
                im_map = row[1].imshow(defocus[r].astype(np.float32), cmap=DEFOCUS_CMAP,
                                       vmin=0.0, vmax=1.0)  # fmt: skip
            else:
                blank_panel(row[1], "n/a:\nno 'defocus'\nfield")
            for c, m in ((2, "defocus"), (3, "rgb")):
                if m in maps:
                    im_attr = row[c].imshow(maps[m][r], cmap=cmap, norm=norm)
                    row[c].model = m  # lets tests find each model's panels
                else:
                    blank_panel(row[c], f"n/a:\nno '{'attr_' + m}'\nfield")
            label_sample(row[0], samples["id"][r], samples["group"][r])
        if im_map is not None:
            colorbar(fig, im_map, cax=bars[0], orientation="horizontal", ticks=[0, 0.5, 1],
                     label="defocus (normalised):\n0 sharpest, 1 most blurred")  # fmt: skip
        else:
            bars[0].set_axis_off()
        if signed:
            label = "Shapley value (logit), both models:\nred towards fake, blue towards real"
            extend = "both"
        else:
            label = "|Shapley value| (logit), both models"
            extend = "max"
        cb = colorbar(fig, im_attr, cax=bars[1], orientation="horizontal", label=label,
                      extend=extend if percentile < 100 else "neither")  # fmt: skip
        if signed:
            signed_ticks(cb, norm.vmax)
    groups = list(dict.fromkeys(samples["group"]))
    counts = {g: list(samples["group"]).count(g) for g in groups}
    both = " and ".join(names[m] for m in ("defocus", "rgb") if m in maps)
    if signed:
        colours = "diverging map centred on 0: red = towards fake, blue = towards real"
        scale = f"symmetric about 0 up to ±{norm.vmax:.2g} logit"
    else:
        colours = "viridis"
        scale = f"from 0 to {norm.vmax:.2g} logit"
    if percentile < 100:
        scale += (
            f", the {percentile:g}th percentile of |value| over all panels shown "
            "(larger values take the end colours)"
        )
    else:
        scale += ", the largest |value| shown"
    missing = [f for f in _FIELDS if samples.get(f) is None]
    caption = (
        f"{k} samples ({', '.join(f'{counts[g]} {g}' for g in groups)}; the first of each "
        "group in the cache). Per sample: the image; its normalised defocus "
        "map (grey: 0 = sharpest, 1 = most blurred in that image); the "
        f"{'signed' if signed else 'absolute'} Shapley attributions of the {both} "
        f"({colours}"
        + ("; RGB model summed over its three channels" if "rgb" in maps else "")
        + f"), in logit units, on one colour scale for both models, {scale}."
    )
    if missing:
        caption += " Panels marked n/a: the cache has no " + ", ".join(map(repr, missing))
        caption += " field."
    set_caption(fig, caption)
    return fig


def plot_explanation(explanation, *, width: str = "single", percentile: float = 99.0):
    """Draw one explained image: the image, what the model saw, the signed attributions.

    Parameters
    ----------
    explanation : object
        With ``kind``, ``image`` (3, H, W), ``model_input`` ((S, S) or
        (3, S, S)), ``attribution`` (same shape as ``model_input``), ``logit``
        and ``probability`` — as :func:`cache.explain.explain_image` returns.
    width : {"single", "double"}
        Paper width (3.5 or 7 inches).
    percentile : float
        The diverging scale, centred on 0, ends at this percentile of
        ``|attribution|`` (beyond it the end colours; the bar shows the scale).

    Returns
    -------
    matplotlib.figure.Figure
        Three panels with colour bars; its caption (:func:`analysis.style.caption_of`)
        says what is drawn.
    """
    from analysis.style import (
        DEFOCUS_CMAP,
        DIVERGING_CMAP,
        colorbar,
        column_width,
        figure,
        image_axes,
        publication_style,
        set_caption,
        symmetric_norm,
    )

    inches = column_width(width)
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    kind = explanation.kind
    model_input = np.asarray(explanation.model_input, dtype=np.float32)
    attr = np.asarray(explanation.attribution, dtype=np.float32)
    if attr.shape != model_input.shape:
        raise ValueError(
            f"attribution shape {attr.shape} differs from model_input shape {model_input.shape}"
        )
    signed = attr.sum(axis=0) if attr.ndim == 3 else attr  # RGB: summed over channels
    norm = symmetric_norm([signed], percentile)
    seen_title = "defocus map the model sees" if kind == "defocus" else "image the model sees"
    with publication_style():
        fig = figure(width, inches * 0.42)
        axes = fig.subplots(1, 3)
        axes[0].imshow(np.transpose(np.asarray(explanation.image), (1, 2, 0)))
        axes[0].set_title("image", fontsize=7)
        if kind == "defocus":
            im = axes[1].imshow(model_input, cmap=DEFOCUS_CMAP, vmin=0.0, vmax=1.0)
            colorbar(fig, im, ax=axes[1], orientation="horizontal", ticks=[0, 0.5, 1],
                     label="defocus (0 sharp, 1 blurred)", fraction=0.05, pad=0.04)  # fmt: skip
        else:
            axes[1].imshow(np.clip(np.transpose(model_input, (1, 2, 0)), 0, 1))
        axes[1].set_title(seen_title, fontsize=7)
        im = axes[2].imshow(signed, cmap=DIVERGING_CMAP, norm=norm)
        axes[2].set_title(f"attribution (logit {explanation.logit:+.2f})", fontsize=7)
        colorbar(fig, im, ax=axes[2], orientation="horizontal", label="Shapley value (logit)",
                 fraction=0.05, pad=0.04)  # fmt: skip
        for ax in axes:
            image_axes(ax)
    what = "summed over the three channels, " if attr.ndim == 3 else ""
    set_caption(
        fig,
        f"{kind} model, P(fake) = {explanation.probability:.3f}. Right: signed Shapley values "
        f"(expected gradients) of the fake logit, {what}red pushes towards fake, blue towards "
        f"real; the scale is centred on 0 and ends at the {percentile:g}th percentile of "
        "|attribution|.",
    )
    return fig
