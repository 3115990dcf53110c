"""Explain one image with one checkpoint: the five-line entry point of the toolkit.

For a handful of images in a notebook or a script; a data set goes through
:func:`cache.extract.extract` (``defocus extract``), which stores the same
quantities for every sample in a verified, resumable cache.

Examples
--------
>>> from cache.explain import explain_image                          # doctest: +SKIP
>>> from analysis.overlays import plot_explanation                   # doctest: +SKIP
>>> e = explain_image("runs/demo/models/defocus/best.pt", "face.png")  # doctest: +SKIP
>>> print(e.kind, e.logit)                                           # doctest: +SKIP
>>> plot_explanation(e).savefig("face_explained.png")                # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["Explanation", "explain_image"]


@dataclass
class Explanation:
    """One image explained by one detector (numpy arrays; no torch needed to plot them).

    Attributes
    ----------
    kind : str
        ``"defocus"`` (explained on the defocus map it sees) or ``"rgb"``.
    image : ndarray of shape (3, H, W)
        The image, float32 in [0, 1].
    model_input : ndarray of shape (S, S) or (3, S, S)
        What the attributions explain: the per-sample normalised defocus map
        (defocus model) or the RGB image at the model's size.
    attribution : ndarray, same shape as ``model_input``
        Signed Shapley values (expected gradients) of the fake logit; they
        sum to about ``logit - E[logit(background)]``.
    logit : float
        The model's fake logit (> 0 means fake).
    probability : float
        ``sigmoid(logit)``.
    settings : dict
        Explainer, samples, seed, background size and the checkpoint.
    """

    kind: str
    image: np.ndarray
    model_input: np.ndarray
    attribution: np.ndarray
    logit: float
    probability: float
    settings: dict[str, Any] = field(default_factory=dict)


def _as_image(image) -> torch.Tensor:
    """Return ``image`` (path, (H, W, 3) uint8/float array or (3, H, W) tensor) as (1, 3, H, W)."""
    from detector.imageio import read_image, to_float_chw

    if isinstance(image, (str, os.PathLike)):
        return torch.from_numpy(to_float_chw(read_image(image)))[None]
    if isinstance(image, torch.Tensor):
        x = image.detach().float()
        x = x[None] if x.ndim == 3 else x
    else:
        arr = np.asarray(image)
        if arr.ndim != 3:
            raise ValueError(f"image must be (H, W, 3) or (3, H, W), got shape {arr.shape}")
        if arr.shape[-1] == 3 and arr.shape[0] != 3:
            arr = arr.transpose(2, 0, 1)
        arr = arr.astype(np.float32) / (255.0 if arr.dtype == np.uint8 else 1.0)
        x = torch.from_numpy(np.ascontiguousarray(arr))[None]
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"image must have 3 channels, got shape {tuple(x.shape)}")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"image values must lie in [0, 1] (or be uint8), got [{lo:.3g}, {hi:.3g}]")
    return x


def explain_image(
    model,
    image,
    *,
    background: Sequence | None = None,
    explainer: str = "shap-gradient",
    nsamples: int = 200,
    seed: int = 0,
    device: str = "auto",
) -> Explanation:
    """Explain one image with one detector.

    Parameters
    ----------
    model : path or torch.nn.Module
        A checkpoint of this project (``defocus train`` writes them,
        ``defocus import-checkpoint`` converts the paper's), or a detector.
    image : path, ndarray or torch.Tensor
        A file, an ``(H, W, 3)`` array (uint8, or float in [0, 1]) or a
        ``(3, H, W)`` tensor in [0, 1].
    background : sequence of images, optional
        Reference images the expected gradients integrate from (the paper
        uses 10 real training images; the same kinds of values as
        ``image``). Default: one black image, which makes the attributions
        explain ``logit(image) - logit(black)``.
    explainer : str
        Any name of :data:`cache.explainers.EXPLAINERS`.
    nsamples : int
        Gradient evaluations.
    seed : int
        Seed of the explainer's draws (the sample id is ``"image"``).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns
    -------
    Explanation

    Raises
    ------
    ValueError
        If the image or background cannot be used, or the model is neither a
        defocus nor an RGB detector.
    """
    from cache.explainers import get_explainer
    from detector.device import resolve_device
    from detector.models import load_checkpoint

    source = None if isinstance(model, torch.nn.Module) else os.fspath(model)
    if source is not None:
        model = load_checkpoint(source)
    kind = getattr(model, "kind", None)
    if kind not in ("defocus", "rgb"):
        raise ValueError(f"explain_image needs a 'defocus' or 'rgb' detector, got kind {kind!r}")
    dev = resolve_device(device)
    model = model.to(dev).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = _as_image(image).to(dev)
    if background is None:
        backgrounds = torch.zeros_like(x)
    else:
        backgrounds = torch.cat([_as_image(b) for b in background]).to(dev)
        if backgrounds.shape[-2:] != x.shape[-2:]:
            backgrounds = torch.nn.functional.interpolate(
                backgrounds, size=x.shape[-2:], mode="bilinear", align_corners=False
            )

    def model_input(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.model_input(images)

    inputs = model_input(x)
    bg = torch.cat([model_input(b[None]) for b in backgrounds])
    e = get_explainer(explainer, model.classify, bg, nsamples=nsamples, seed=seed)
    attr = e.attribute(inputs, ["image"])
    with torch.no_grad():
        logit = float(model.classify(inputs).reshape(-1)[0])
    squeeze = (lambda a: a[0, 0]) if kind == "defocus" else (lambda a: a[0])
    return Explanation(
        kind=kind,
        image=x[0].float().cpu().numpy(),
        model_input=squeeze(inputs).float().cpu().numpy(),
        attribution=squeeze(attr).float().cpu().numpy(),
        logit=logit,
        probability=float(1.0 / (1.0 + np.exp(-logit))),
        settings={
            "explainer": explainer,
            "nsamples": nsamples,
            "seed": seed,
            "n_background": len(bg),
            "background": "black image" if background is None else f"{len(bg)} images",
            "checkpoint": source,
        },
    )
