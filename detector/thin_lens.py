"""Thin-lens depth-of-field rendering with a known per-pixel blur (ground truth).

For a thin lens focused at depth ``d_f`` the blur circle of a point at depth
``d`` has a diameter proportional to ``|1/d - 1/d_f|``; with stereo
disparity ``disp`` (proportional to ``1/d``) it is proportional to
``|disp - disp_f|``. Here the blur is modelled as a Gaussian whose standard
deviation ``sigma`` (pixels) is that quantity times a lens constant ``k``.

Scenes are rendered as layers composited back to front. Each layer is
blurred with its own Gaussian, colour premultiplied by alpha and the alpha
blurred with it, so a blurred foreground spreads over the background
(occlusion handled) and a sharp foreground keeps a sharp silhouette.

Functions
---------
sigma_from_depth, sigma_from_disparity
    Blur sigma (pixels) from depth or disparity.
gaussian_blur
    Per-channel Gaussian blur of an ``(H, W)`` or ``(H, W, C)`` array.
render_layers
    Composite ``Layer`` objects back to front, each with its own blur.
render_from_disparity
    Render an all-in-focus image through a thin lens from a disparity map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "Layer",
    "sigma_from_depth",
    "sigma_from_disparity",
    "gaussian_blur",
    "render_layers",
    "render_from_disparity",
]


def _check_positive(name: str, value: float, *, allow_zero: bool = True) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return value


def sigma_from_depth(depth, focus_depth: float, k: float) -> np.ndarray:
    """Blur sigma in pixels of points at ``depth`` for a lens focused at ``focus_depth``.

    ``sigma = k * |1 / depth - 1 / focus_depth|``.

    Parameters
    ----------
    depth : float or ndarray of shape (H, W)
        Depths, strictly positive (any unit, the same as ``focus_depth``).
    focus_depth : float
        Depth in focus, strictly positive.
    k : float
        Lens constant (pixels times depth unit), ``>= 0``; it grows with the
        aperture and the focal length.

    Returns
    -------
    ndarray of the shape of ``depth``, float64
        Blur sigma in pixels, zero at the focus depth.

    Raises
    ------
    ValueError
        If a depth or ``focus_depth`` is not strictly positive, or ``k < 0``.
    """
    depth = np.asarray(depth, dtype=np.float64)
    _check_positive("focus_depth", focus_depth, allow_zero=False)
    _check_positive("k", k)
    if not np.all(np.isfinite(depth)) or np.any(depth <= 0):
        raise ValueError(
            f"depth must be finite and > 0 everywhere, got minimum {np.nanmin(depth)!r}"
        )
    return k * np.abs(1.0 / depth - 1.0 / float(focus_depth))


def sigma_from_disparity(disparity, focus_disparity: float, k: float) -> np.ndarray:
    """Blur sigma in pixels from disparity: ``sigma = k * |disparity - focus_disparity|``.

    Parameters
    ----------
    disparity : float or ndarray of shape (H, W)
        Stereo disparity (proportional to inverse depth).
    focus_disparity : float
        Disparity of the plane in focus.
    k : float
        Pixels of blur sigma per unit of disparity difference, ``>= 0``.

    Returns
    -------
    ndarray of the shape of ``disparity``, float64
    """
    _check_positive("k", k)
    disparity = np.asarray(disparity, dtype=np.float64)
    return k * np.abs(disparity - float(focus_disparity))


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Blur each channel with a Gaussian of standard deviation ``sigma`` pixels.

    Borders are reflected (``scipy.ndimage`` mode ``"reflect"``), truncate 4.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C)
        Float image.
    sigma : float
        Standard deviation in pixels, ``>= 0``; 0 returns a float64 copy.

    Returns
    -------
    ndarray of the shape of ``image``, float64
    """
    sigma = _check_positive("sigma", sigma)
    image = np.asarray(image, dtype=np.float64)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must have shape (H, W) or (H, W, C), got {image.shape}")
    if sigma == 0:
        return image.copy()
    sig = (sigma, sigma) if image.ndim == 2 else (sigma, sigma, 0.0)
    return ndimage.gaussian_filter(image, sig, mode="reflect", truncate=4.0)


@dataclass(frozen=True)
class Layer:
    """One fronto-parallel layer of a scene.

    Attributes
    ----------
    rgb : ndarray of shape (H, W, 3)
        Colour in [0, 1] (not premultiplied).
    alpha : ndarray of shape (H, W)
        Coverage in [0, 1].
    sigma : float
        Blur sigma in pixels of this layer's depth.
    """

    rgb: np.ndarray
    alpha: np.ndarray
    sigma: float

    def __post_init__(self):
        rgb = np.asarray(self.rgb, dtype=np.float64)
        alpha = np.asarray(self.alpha, dtype=np.float64)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"rgb must have shape (H, W, 3), got {rgb.shape}")
        if alpha.shape != rgb.shape[:2]:
            raise ValueError(f"alpha must have shape {rgb.shape[:2]}, got {alpha.shape}")
        _check_positive("sigma", self.sigma)
        object.__setattr__(self, "rgb", rgb)
        object.__setattr__(self, "alpha", np.clip(alpha, 0.0, 1.0))
        object.__setattr__(self, "sigma", float(self.sigma))


def render_layers(layers: Sequence[Layer | tuple]) -> tuple[np.ndarray, np.ndarray]:
    """Composite layers back to front, each blurred by its own Gaussian.

    For each layer (farthest first) the premultiplied colour ``rgb * alpha``
    and the alpha are blurred with the layer's sigma and laid over what is
    behind: ``out = blur(rgb * alpha) + (1 - blur(alpha)) * out``. Where the
    layers do not cover the image (total alpha below 1) the colour is
    renormalised by the accumulated alpha, so no dark halo appears.

    Parameters
    ----------
    layers : sequence of Layer or (rgb, alpha, sigma) tuples
        Back to front: ``layers[0]`` is the farthest.

    Returns
    -------
    image : ndarray of shape (H, W, 3), float64 in [0, 1]
        The rendered image.
    sigma_map : ndarray of shape (H, W), float64
        The true blur at each pixel: the sigma of the front-most layer whose
        (unblurred) alpha exceeds 0.5 there, 0 where none does.
    """
    layers = [lay if isinstance(lay, Layer) else Layer(*lay) for lay in layers]
    if not layers:
        raise ValueError("layers must not be empty")
    shape = layers[0].alpha.shape
    for i, lay in enumerate(layers):
        if lay.alpha.shape != shape:
            raise ValueError(f"layer {i} has shape {lay.alpha.shape}, expected {shape}")
    out = np.zeros(shape + (3,), dtype=np.float64)
    acc = np.zeros(shape, dtype=np.float64)
    sigma_map = np.zeros(shape, dtype=np.float64)
    for lay in layers:
        a = gaussian_blur(lay.alpha, lay.sigma)
        c = gaussian_blur(lay.rgb * lay.alpha[..., None], lay.sigma)
        out = c + (1.0 - a)[..., None] * out
        acc = a + (1.0 - a) * acc
        sigma_map[lay.alpha > 0.5] = lay.sigma
    covered = acc > 1e-6
    out[covered] /= acc[covered][:, None]
    return np.clip(out, 0.0, 1.0), sigma_map


def render_from_disparity(
    image: np.ndarray,
    disparity: np.ndarray,
    focus_disparity: float,
    k: float,
    n_levels: int = 24,
) -> tuple[np.ndarray, np.ndarray]:
    """Render an all-in-focus image through a thin lens from its disparity map.

    The disparity range is cut into ``n_levels`` equal bins (a layered
    approximation of the scene); each bin becomes a layer with the pixels
    of that bin, blurred with ``sigma = k * |d_bin - focus_disparity|``
    where ``d_bin`` is the bin centre, and the layers are composited far
    (small disparity) to near with :func:`render_layers`.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3)
        All-in-focus image, uint8 or float in [0, 1].
    disparity : ndarray of shape (H, W)
        Disparity (larger is nearer). Non-finite values take the nearest
        finite disparity (by distance transform).
    focus_disparity : float
        Disparity of the plane in focus.
    k : float
        Pixels of blur sigma per unit of disparity difference.
    n_levels : int, default=24
        Number of depth layers.

    Returns
    -------
    rendered : ndarray of shape (H, W, 3), float64 in [0, 1]
    sigma_map : ndarray of shape (H, W), float64
        The blur sigma (pixels) used at each pixel.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
    if image.dtype == np.uint8:
        image = image.astype(np.float64) / 255.0
    image = np.asarray(image, dtype=np.float64)
    disparity = np.asarray(disparity, dtype=np.float64)
    if disparity.shape != image.shape[:2]:
        raise ValueError(
            f"disparity must have shape {image.shape[:2]}, got {disparity.shape}"
        )
    if int(n_levels) != n_levels or n_levels < 1:
        raise ValueError(f"n_levels must be a positive integer, got {n_levels!r}")
    _check_positive("k", k)
    finite = np.isfinite(disparity)
    if not finite.any():
        raise ValueError("disparity has no finite value")
    if not finite.all():
        idx = ndimage.distance_transform_edt(~finite, return_distances=False, return_indices=True)
        disparity = disparity[tuple(idx)]
    lo, hi = float(disparity.min()), float(disparity.max())
    n_levels = int(n_levels)
    if hi - lo < 1e-12:
        bins = np.zeros(disparity.shape, dtype=np.int64)
        centres = np.array([lo])
    else:
        width = (hi - lo) / n_levels
        bins = np.clip(((disparity - lo) / width).astype(np.int64), 0, n_levels - 1)
        centres = lo + (np.arange(n_levels) + 0.5) * width
    layers = []
    for level in range(len(centres)):
        mask = bins == level
        if not mask.any():
            continue
        sigma = float(k * abs(centres[level] - float(focus_disparity)))
        layers.append(Layer(image, mask.astype(np.float64), sigma))
    rendered, _ = render_layers(layers)
    sigma_map = k * np.abs(centres[bins] - float(focus_disparity))
    return rendered, sigma_map
