"""Edge-aware propagation of sparse blur estimates (accurate mode, ``"guided"``).

Normalised domain-transform filtering (Gastal & Oliveira 2011, recursive
filter): the sparse values times their confidences and the confidences
alone are filtered with the same image-guided recursive filter, and their
ratio is the dense map. The filter spreads values far along regions of
similar colour (``sigma_s`` pixels) and stops at image edges (``sigma_r``
in image units), so a blur level fills the surface it was measured on.
"""

from __future__ import annotations

import numpy as np

from ._kernels import numba

__all__ = ["domain_transform_propagate", "window_median"]


def _jit(fn):
    if numba is None:  # pragma: no cover
        return fn
    return numba.njit(nogil=True, cache=True)(fn)


@_jit
def _recursive_rows(data, atten):  # pragma: no cover - compiled
    """In place, left-to-right then right-to-left recursive filter of each row.

    data : (C, H, W); atten : (H, W - 1) feedback ``a ** d`` between neighbours.
    """
    c, h, w = data.shape
    for ch in range(c):
        for i in range(h):
            row = data[ch, i]
            f = atten[i]
            for j in range(1, w):
                row[j] += f[j - 1] * (row[j - 1] - row[j])
            for j in range(w - 2, -1, -1):
                row[j] += f[j] * (row[j + 1] - row[j])


@_jit
def window_median(values, valid, radius):  # pragma: no cover - compiled
    """At each valid pixel, the median of the valid values in its ``(2r+1)^2`` window.

    Parameters
    ----------
    values : ndarray of shape (H, W), float64
    valid : ndarray of shape (H, W), bool
    radius : int

    Returns
    -------
    ndarray of shape (H, W), float64
        ``values`` where ``valid`` is False.
    """
    h, w = values.shape
    out = values.copy()
    buf = np.empty((2 * radius + 1) ** 2, dtype=np.float64)
    for i in range(h):
        for j in range(w):
            if not valid[i, j]:
                continue
            n = 0
            for ii in range(max(i - radius, 0), min(i + radius + 1, h)):
                for jj in range(max(j - radius, 0), min(j + radius + 1, w)):
                    if valid[ii, jj]:
                        buf[n] = values[ii, jj]
                        n += 1
            out[i, j] = np.median(buf[:n])
    return out


def domain_transform_propagate(
    guide: np.ndarray,
    values: np.ndarray,
    confidence: np.ndarray,
    sigma_s: float = 60.0,
    sigma_r: float = 0.08,
    n_iterations: int = 4,
) -> np.ndarray:
    """Fill a dense map from sparse values with an image-guided recursive filter.

    Parameters
    ----------
    guide : ndarray of shape (H, W) or (H, W, C)
        Guide image in [0, 1].
    values : ndarray of shape (H, W)
        Sparse values (anything where ``confidence`` is 0).
    confidence : ndarray of shape (H, W)
        Non-negative weights, 0 where there is no estimate.
    sigma_s : float, default=60.0
        Spatial reach in pixels.
    sigma_r : float, default=0.08
        Range scale: colour differences much larger than this stop the spread.
    n_iterations : int, default=4
        Horizontal+vertical passes (the spatial sigma shrinks each pass).

    Returns
    -------
    ndarray of shape (H, W), float64
        Where no confidence reaches (a region cut off by strong edges), the
        confidence-weighted mean of all values is used.
    """
    guide = np.asarray(guide, dtype=np.float64)
    if guide.ndim == 2:
        guide = guide[..., None]
    # domain distances between horizontal and vertical neighbours
    dx = np.abs(np.diff(guide, axis=1)).sum(axis=2)
    dy = np.abs(np.diff(guide, axis=0)).sum(axis=2)
    ratio = sigma_s / sigma_r
    ct_x = 1.0 + ratio * dx  # (H, W-1)
    ct_y_t = np.ascontiguousarray((1.0 + ratio * dy).T)  # (W, H-1)
    conf = np.asarray(confidence, dtype=np.float64)
    data = np.stack([np.asarray(values, dtype=np.float64) * conf, conf])
    n = int(n_iterations)
    for it in range(n):
        sigma_h = sigma_s * np.sqrt(3.0) * 2.0 ** (n - (it + 1)) / np.sqrt(4.0**n - 1.0)
        log_a = -np.sqrt(2.0) / sigma_h  # feedback a ** d = exp(d log a)
        _recursive_rows(data, np.exp(ct_x * log_a))
        data_t = np.ascontiguousarray(data.transpose(0, 2, 1))
        _recursive_rows(data_t, np.exp(ct_y_t * log_a))
        data = np.ascontiguousarray(data_t.transpose(0, 2, 1))
    num, den = data
    total = conf.sum()
    fallback = float((np.asarray(values) * conf).sum() / total) if total > 0 else 0.0
    floor = 1e-6 * (float(conf.max()) if total > 0 else 1.0)
    return np.where(den > floor, num / np.maximum(den, floor), fallback)
