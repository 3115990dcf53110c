"""RGB-model vs defocus-model attributions drawn over the image the models saw.

For a few samples, :func:`overlays_from_cache` gathers the image (the
``image`` field, when the cache holds it), the defocus map and both models'
attributions; :func:`plot_attribution_overlays` draws, per sample, the image,
the defocus map, and ``|attr|`` of each model (the RGB model's summed over
channels) as a translucent heat layer over the image (over the defocus map
when the cache holds no image).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["overlays_from_cache", "plot_attribution_overlays"]

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


def plot_attribution_overlays(samples: dict, alpha: float = 0.55, percentile: float = 99.0):
    """Image, defocus map and each model's ``|attr|`` over the image, one row per sample.

    Parameters
    ----------
    samples : dict
        From :func:`overlays_from_cache`.
    alpha : float
        Opacity of the attribution layer.
    percentile : float
        Each heat layer is scaled to [0, this percentile of its |attr|].

    Returns
    -------
    matplotlib.figure.Figure
    """
    from analysis.alignment import attribution_weights
    from analysis.style import SEQUENTIAL_CMAP, figure, publication_style, unavailable_figure

    k = len(samples["id"])
    if k == 0:
        return unavailable_figure("no samples", "attribution overlays")
    image = samples.get("image")
    defocus = samples.get("defocus")
    if image is None and defocus is None:
        return unavailable_figure(
            "the cache has neither 'image' nor 'defocus'", "attribution overlays"
        )
    on = "on image" if image is not None else "on defocus map (no image)"
    cols = ["image", "defocus map", f"defocus model |attr|\n{on}", f"RGB model Σ|attr|\n{on}"]
    with publication_style():
        fig = figure(2.0 * len(cols), 2.0 * k)
        axes = fig.subplots(k, len(cols), squeeze=False)
        for r in range(k):
            base = None
            if image is not None:
                base = np.transpose(image[r], (1, 2, 0))
            panels = {
                0: ("rgb", base),
                1: ("map", None if defocus is None else defocus[r].astype(np.float32)),
            }
            base_for_overlay = base if base is not None else panels[1][1]
            for c, f in ((2, "attr_defocus"), (3, "attr_rgb")):
                attr = samples.get(f)
                if attr is None:
                    panels[c] = ("missing", f)
                    continue
                side = base_for_overlay.shape[:2]
                w = attribution_weights(attr[r], side)
                panels[c] = ("overlay", w)
            for c in range(len(cols)):
                ax = axes[r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                kind, val = panels[c]
                if kind == "missing" or val is None:
                    reason = samples["unavailable"].get(val if kind == "missing" else "image", "")
                    ax.text(
                        0.5,
                        0.5,
                        "unavailable\n" + reason,
                        ha="center",
                        va="center",
                        transform=ax.transAxes,
                        fontsize=6,
                        wrap=True,
                    )
                elif kind == "rgb":
                    ax.imshow(val)
                elif kind == "map":
                    ax.imshow(val, cmap="gray", vmin=0, vmax=1)
                else:
                    if base_for_overlay.ndim == 3:
                        ax.imshow(base_for_overlay)
                    else:
                        ax.imshow(base_for_overlay, cmap="gray", vmin=0, vmax=1)
                    hi = float(np.percentile(val, percentile)) or 1.0
                    ax.imshow(val, cmap=SEQUENTIAL_CMAP, vmin=0, vmax=hi, alpha=alpha)
                if r == 0:
                    ax.set_title(cols[c], fontsize=8)
            axes[r, 0].set_ylabel(f"{samples['group'][r]}\n{samples['id'][r]}", fontsize=7)
    return fig
