"""Edge-aware propagation of sparse blur estimates (accurate mode, ``"guided"``).

Both fills use the domain-transform recursive filter (Gastal & Oliveira
2011), which spreads values far along regions of similar colour
(``sigma_s`` pixels) and stops at image edges (``sigma_r`` in image units):

- ``"mean"`` (:func:`domain_transform_propagate`): the sparse values times
  their confidences and the confidences alone are filtered, and their ratio
  is the dense map (a weighted mean);
- ``"median"`` (:func:`median_propagate`): each estimate votes into a
  histogram of blur levels (``n_bins`` channels, linear interpolation
  between neighbouring bins), the histogram is filtered channel by channel
  and each pixel takes its weighted median. Where two surfaces of different
  blur meet, a pixel takes the level that most of its neighbourhood
  measured instead of a mixture of both.
"""

from __future__ import annotations

import numpy as np

from ._kernels import numba

__all__ = [
    "domain_transform_filter",
    "domain_transform_propagate",
    "histogram_median",
    "median_propagate",
    "window_median",
]


def _jit(fn):
    if numba is None:  # pragma: no cover
        return fn
    return numba.njit(nogil=True, cache=True)(fn)


@_jit
def _recursive_channels_last(data, ax, ay):  # pragma: no cover - compiled
    """In place, one horizontal then one vertical recursive pass over ``(H, W, K)`` data.

    ax : (H, W - 1) feedback ``a ** d`` between horizontal neighbours; ay :
    (H - 1, W) between vertical ones. Each row is filtered left to right then
    right to left, then each column top to bottom then bottom to top
    (``x[j] += f (x[j - 1] - x[j])``); the channels are innermost.
    """
    h, w, k = data.shape
    for i in range(h):
        for j in range(1, w):
            f = ax[i, j - 1]
            for c in range(k):
                data[i, j, c] += f * (data[i, j - 1, c] - data[i, j, c])
        for j in range(w - 2, -1, -1):
            f = ax[i, j]
            for c in range(k):
                data[i, j, c] += f * (data[i, j + 1, c] - data[i, j, c])
    for i in range(1, h):
        for j in range(w):
            f = ay[i - 1, j]
            for c in range(k):
                data[i, j, c] += f * (data[i - 1, j, c] - data[i, j, c])
    for i in range(h - 2, -1, -1):
        for j in range(w):
            f = ay[i, j]
            for c in range(k):
                data[i, j, c] += f * (data[i + 1, j, c] - data[i, j, c])


@_jit
def _median_channels_last(hist, top, floor, fallback):  # pragma: no cover - compiled
    """:func:`histogram_median` of ``(H, W, K)`` data; ``fallback`` where the weight <= floor."""
    h, w, k = hist.shape
    step = top / (k - 1)
    out = np.empty((h, w))
    for i in range(h):
        for j in range(w):
            total = 0.0
            for b in range(k):
                total += hist[i, j, b]
            if total <= floor:
                out[i, j] = fallback
                continue
            half = 0.5 * total
            cum = 0.0
            value = top
            for b in range(k):
                prev = cum
                cum += hist[i, j, b]
                if cum >= half:
                    frac = (half - prev) / (cum - prev) if cum > prev else 0.5
                    value = (b - 0.5 + frac) * step
                    break
            out[i, j] = max(value, 0.0)
    return out


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


def domain_transform_filter(
    guide: np.ndarray, data: np.ndarray, sigma_s: float, sigma_r: float, n_iterations: int
) -> np.ndarray:
    """Filter each channel of ``data`` with the image-guided recursive domain transform.

    Parameters
    ----------
    guide : ndarray of shape (H, W) or (H, W, C)
        Guide image in [0, 1].
    data : ndarray of shape (K, H, W)
        Channels to filter (float64; copied).
    sigma_s : float
        Spatial reach in pixels.
    sigma_r : float
        Range scale: colour differences (sum over the guide's channels) much
        larger than this stop the spread.
    n_iterations : int
        Horizontal+vertical passes (the spatial sigma shrinks each pass).

    Returns
    -------
    ndarray of shape (K, H, W), float64
    """
    guide = np.asarray(guide, dtype=np.float64)
    if guide.ndim == 2:
        guide = guide[..., None]
    # domain distances between horizontal and vertical neighbours
    dx = np.abs(np.diff(guide, axis=1)).sum(axis=2)
    dy = np.abs(np.diff(guide, axis=0)).sum(axis=2)
    data = np.ascontiguousarray(np.moveaxis(np.asarray(data, dtype=np.float64), 0, -1))
    return np.moveaxis(_filter_channels_last(dx, dy, data, sigma_s, sigma_r, n_iterations), -1, 0)


def _filter_channels_last(dx, dy, data, sigma_s, sigma_r, n_iterations):
    """:func:`domain_transform_filter` in place on ``(H, W, K)`` data, from the guide's steps."""
    ratio = sigma_s / sigma_r
    ct_x = 1.0 + ratio * dx  # (H, W-1)
    ct_y = 1.0 + ratio * dy  # (H-1, W)
    n = int(n_iterations)
    for it in range(n):
        sigma_h = sigma_s * np.sqrt(3.0) * 2.0 ** (n - (it + 1)) / np.sqrt(4.0**n - 1.0)
        log_a = -np.sqrt(2.0) / sigma_h  # feedback a ** d = exp(d log a)
        _recursive_channels_last(data, np.exp(ct_x * log_a), np.exp(ct_y * log_a))
    return data


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
    conf = np.asarray(confidence, dtype=np.float64)
    data = np.stack([np.asarray(values, dtype=np.float64) * conf, conf])
    num, den = domain_transform_filter(guide, data, sigma_s, sigma_r, n_iterations)
    total = conf.sum()
    fallback = float((np.asarray(values) * conf).sum() / total) if total > 0 else 0.0
    floor = 1e-6 * (float(conf.max()) if total > 0 else 1.0)
    return np.where(den > floor, num / np.maximum(den, floor), fallback)


def histogram_median(hist: np.ndarray, top: float) -> np.ndarray:
    """Median of the blur level at each pixel from a histogram over ``n_bins`` levels.

    Bin ``k`` holds the weight of level ``k * top / (n_bins - 1)``; the
    weight is taken as spread evenly over ``[level - step/2, level + step/2]``
    and the median interpolated linearly in the bin where the cumulative
    weight crosses half the total.

    Parameters
    ----------
    hist : ndarray of shape (n_bins, H, W)
        Non-negative weights.
    top : float
        Blur level of the last bin.

    Returns
    -------
    ndarray of shape (H, W), float64
        NaN where the total weight is 0.
    """
    n_bins = hist.shape[0]
    cdf = np.cumsum(hist, axis=0)
    half = 0.5 * cdf[-1]
    idx = np.minimum((cdf < half[None]).sum(axis=0), n_bins - 1)
    cur = np.take_along_axis(cdf, idx[None], axis=0)[0]
    prev = np.where(idx > 0, np.take_along_axis(cdf, np.maximum(idx - 1, 0)[None], axis=0)[0], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(cur > prev, (half - prev) / (cur - prev), 0.5)
        out = (idx - 0.5 + frac) * (top / (n_bins - 1))
    return np.where(cdf[-1] > 0, np.maximum(out, 0.0), np.nan)


def median_propagate(
    guide: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    values: np.ndarray,
    weights: np.ndarray,
    sigma_s: float = 150.0,
    sigma_r: float = 1.0,
    n_bins: int = 16,
    top: float = 4.5,
    n_iterations: int = 3,
) -> np.ndarray:
    """Fill a dense map with the edge-aware weighted median of scattered estimates.

    Each estimate adds its weight to the two histogram bins around its value
    (linear interpolation) at its pixel; the histogram is filtered with
    :func:`domain_transform_filter` and each pixel takes the median of its
    filtered histogram (:func:`histogram_median`).

    Parameters
    ----------
    guide : ndarray of shape (H, W) or (H, W, C)
        Guide image in [0, 1].
    rows, cols : ndarray of shape (n,), int
        Pixel of each estimate (several may share a pixel).
    values : ndarray of shape (n,)
        Estimates; values above ``top`` vote for ``top``.
    weights : ndarray of shape (n,)
        Non-negative weights.
    sigma_s, sigma_r : float, default=150.0, 1.0
        Reach (pixels) and colour scale of the filter.
    n_bins : int, default=16
        Histogram bins over ``[0, top]``.
    top : float, default=4.5
        Level of the last bin.
    n_iterations : int, default=3
        Passes of the recursive filter.

    Returns
    -------
    ndarray of shape (H, W), float64
        Where no estimate reaches (or there is none), the weighted median of
        all estimates (0 without any).
    """
    guide = np.asarray(guide, dtype=np.float64)
    if guide.ndim == 2:
        guide = guide[..., None]
    h, w = guide.shape[:2]
    n_bins = int(n_bins)
    t = np.clip(np.asarray(values, dtype=np.float64) / top * (n_bins - 1), 0.0, n_bins - 1.0)
    lo = np.floor(t).astype(np.int64)
    hi = np.minimum(lo + 1, n_bins - 1)
    f = t - lo
    pix = (np.asarray(rows, dtype=np.int64) * w + np.asarray(cols, dtype=np.int64)) * n_bins
    wts = np.asarray(weights, dtype=np.float64)
    if wts.size == 0 or wts.sum() <= 0:
        return np.zeros((h, w))
    hist = np.bincount(
        np.concatenate([pix + lo, pix + hi]),
        np.concatenate([wts * (1.0 - f), wts * f]),
        minlength=h * w * n_bins,
    ).reshape(h, w, n_bins)  # channels last
    fallback = float(histogram_median(hist.sum(axis=(0, 1))[:, None, None], top)[0, 0])
    dx = np.abs(np.diff(guide, axis=1)).sum(axis=2)
    dy = np.abs(np.diff(guide, axis=0)).sum(axis=2)
    hist = _filter_channels_last(dx, dy, hist, sigma_s, sigma_r, n_iterations)
    return _median_channels_last(hist, float(top), 1e-9 * float(wts.max()), fallback)
