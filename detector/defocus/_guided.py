"""The guided filter with windows that shrink at the border (He et al. 2010)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["box_mean_numpy", "guided_filter_numpy", "guided_filter_torch"]


def box_mean_numpy(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the in-image part of each ``(2r+1) x (2r+1)`` window.

    Parameters
    ----------
    x : ndarray of shape (..., H, W)
    radius : int

    Returns
    -------
    ndarray of the shape and dtype of ``x``
    """
    h, w = x.shape[-2:]
    size = 2 * radius + 1
    out = ndimage.uniform_filter1d(x, size, axis=-2, mode="constant")
    out = ndimage.uniform_filter1d(out, size, axis=-1, mode="constant")
    rows = np.minimum(np.arange(h) + radius, h - 1) - np.maximum(np.arange(h) - radius, 0) + 1
    cols = np.minimum(np.arange(w) + radius, w - 1) - np.maximum(np.arange(w) - radius, 0) + 1
    scale = (size * size) / np.outer(rows, cols).astype(x.dtype)
    out *= scale
    return out


def guided_filter_numpy(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Gray-guide guided filter, ``a_mean * guide + b_mean``.

    Parameters
    ----------
    guide : ndarray of shape (..., H, W)
    src : ndarray of shape (..., H, W)
        The input to filter (the sparse blur map).
    radius : int
    eps : float

    Returns
    -------
    ndarray of the shape of ``src``
    """
    mean_i = box_mean_numpy(guide, radius)
    mean_p = box_mean_numpy(src, radius)
    var_i = box_mean_numpy(guide * guide, radius) - mean_i * mean_i
    cov_ip = box_mean_numpy(guide * src, radius) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean_numpy(a, radius) * guide + box_mean_numpy(b, radius)


def guided_filter_torch(guide, src, radius: int, eps: float):
    """Torch version of :func:`guided_filter_numpy` (``avg_pool2d`` without the pad).

    Parameters
    ----------
    guide, src : torch.Tensor of shape (B, 1, H, W)

    Returns
    -------
    torch.Tensor of shape (B, 1, H, W)
    """
    import torch.nn.functional as F

    def box(t):
        return F.avg_pool2d(t, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)

    mean_i = box(guide)
    mean_p = box(src)
    var_i = box(guide * guide) - mean_i * mean_i
    cov_ip = box(guide * src) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)
