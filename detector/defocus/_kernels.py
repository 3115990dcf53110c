"""Compiled per-image kernels of the reference pipeline (numba, releases the GIL).

Each kernel works on one image held in cache, fusing what numpy would do in
many passes over memory. They reproduce :mod:`._canny`, :mod:`._gradients`
and :mod:`._guided` up to float rounding; the tests compare them.
``AVAILABLE`` is False when numba cannot be imported, and the callers then
use the numpy/scipy implementations.
"""

from __future__ import annotations

import numpy as np

try:  # numba comes with shap, a dependency of this project
    import numba

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None
    AVAILABLE = False

__all__ = ["AVAILABLE", "gray_image", "canny_image", "dog_ratio_image", "sparse_guided_image"]


def _jit(fn):
    if numba is None:  # pragma: no cover
        return fn
    return numba.njit(nogil=True, cache=True, fastmath=False)(fn)


@_jit
def gray_image(x, symmetric, gray, clipped):  # pragma: no cover - compiled
    """Channel mean (of ``2x - 1`` when ``symmetric``) and its clip to [0, 1].

    Parameters
    ----------
    x : ndarray of shape (C, H, W), float32
    symmetric : bool
    gray, clipped : ndarray of shape (H, W), float32
        Outputs.
    """
    c, h, w = x.shape
    half = np.float32(0.5)
    inv = np.float32(c)
    for i in range(h):
        for j in range(w):
            gray[i, j] = (x[0, i, j] - half) / half if symmetric else x[0, i, j]
        for ch in range(1, c):
            for j in range(w):
                gray[i, j] += (x[ch, i, j] - half) / half if symmetric else x[ch, i, j]
        for j in range(w):
            v = gray[i, j] / inv
            gray[i, j] = v
            clipped[i, j] = min(max(v, np.float32(0.0)), np.float32(1.0))


@_jit
def _corr_rows(src, k, out):  # pragma: no cover - compiled
    """out[i, j] = sum_t k[t] src[i + t - r, j], zero outside (float64 sums)."""
    h, w = src.shape
    r = (k.shape[0] - 1) // 2
    acc = np.empty(w, dtype=np.float64)
    for i in range(h):
        acc[:] = 0.0
        for t in range(k.shape[0]):
            ii = i + t - r
            if ii < 0 or ii >= h:
                continue
            kt = k[t]
            for j in range(w):
                acc[j] += kt * src[ii, j]
        for j in range(w):
            out[i, j] = acc[j]


@_jit
def _corr_cols(src, k, out):  # pragma: no cover - compiled
    """out[i, j] = sum_t k[t] src[i, j + t - r], zero outside (float64 sums)."""
    h, w = src.shape
    size = k.shape[0]
    r = (size - 1) // 2
    pad = np.zeros(w + 2 * r, dtype=np.float64)
    acc = np.empty(w, dtype=np.float64)
    for i in range(h):
        for j in range(w):
            pad[j + r] = src[i, j]
        acc[:] = 0.0
        for t in range(size):
            kt = k[t]
            p = pad[t : t + w]
            for j in range(w):
                acc[j] += kt * p[j]
        for j in range(w):
            out[i, j] = acc[j]


@_jit
def _corr_rows32(src, k, out):  # pragma: no cover - compiled
    """Float32 :func:`_corr_rows` (as ``F.conv2d`` accumulates), vectorised over rows."""
    h, w = src.shape
    size = k.shape[0]
    r = (size - 1) // 2
    for i in range(h):
        for j in range(w):
            out[i, j] = 0.0
        for t in range(size):
            ii = i + t - r
            if ii < 0 or ii >= h:
                continue
            kt = np.float32(k[t])
            for j in range(w):
                out[i, j] += kt * src[ii, j]


@_jit
def _corr_cols32(src, k, out):  # pragma: no cover - compiled
    """Float32 :func:`_corr_cols` through a zero-padded row buffer."""
    h, w = src.shape
    size = k.shape[0]
    r = (size - 1) // 2
    pad = np.zeros(w + 2 * r, dtype=np.float32)
    acc = np.empty(w, dtype=np.float32)
    k32 = k.astype(np.float32)
    for i in range(h):
        for j in range(w):
            pad[j + r] = src[i, j]
        acc[:] = 0.0
        for t in range(size):
            kt = k32[t]
            for j in range(w):
                acc[j] += kt * pad[j + t]
        for j in range(w):
            out[i, j] = acc[j]


@_jit
def canny_image(gray, gauss, low, high, out):  # pragma: no cover - compiled
    """Canny edges of one float32 image with scikit-image's semantics.

    Parameters
    ----------
    gray : ndarray of shape (H, W), float32
    gauss : ndarray of shape (2 * r + 1,), float64
        Normalised Gaussian kernel (truncate 4).
    low, high : float
        Hysteresis thresholds (float32 comparisons, as scikit-image).
    out : ndarray of shape (H, W), float32
        Receives 1.0 on edges, 0.0 elsewhere.
    """
    h, w = gray.shape
    tmp = np.empty((h, w), dtype=np.float32)
    sm = np.empty((h, w), dtype=np.float32)
    _corr_rows(gray, gauss, tmp)
    _corr_cols(tmp, gauss, sm)
    # bleed-over: the smoothed all-ones image is a separable product
    r = (gauss.shape[0] - 1) // 2
    brow = np.zeros(h, dtype=np.float32)
    bcol = np.zeros(w, dtype=np.float32)
    for i in range(h):
        s = 0.0
        for t in range(gauss.shape[0]):
            if 0 <= i + t - r < h:
                s += gauss[t]
        brow[i] = s
    for j in range(w):
        s = 0.0
        for t in range(gauss.shape[0]):
            if 0 <= j + t - r < w:
                s += gauss[t]
        bcol[j] = s
    eps = np.float32(np.finfo(np.float32).eps)
    for i in range(h):
        for j in range(w):
            sm[i, j] = sm[i, j] / (np.float32(brow[i] * bcol[j]) + eps)
    # Sobel with reflected borders (a 1-pixel reflection repeats the edge pixel)
    isob = np.empty((h, w), dtype=np.float32)
    jsob = np.empty((h, w), dtype=np.float32)
    mag = np.empty((h, w), dtype=np.float32)
    for i in range(h):
        im = i - 1 if i > 0 else 0
        ip = i + 1 if i < h - 1 else h - 1
        for j in range(w):
            tmp[i, j] = sm[ip, j] - sm[im, j]  # derivative along rows
    for i in range(h):  # borders apart so that the inner loop vectorises
        isob[i, 0] = np.float32(tmp[i, 0] + 2.0 * tmp[i, 0] + tmp[i, 1])
        for j in range(1, w - 1):
            isob[i, j] = np.float32(tmp[i, j - 1] + 2.0 * tmp[i, j] + tmp[i, j + 1])
        isob[i, w - 1] = np.float32(tmp[i, w - 2] + 2.0 * tmp[i, w - 1] + tmp[i, w - 1])
    for i in range(h):
        tmp[i, 0] = sm[i, 1] - sm[i, 0]  # derivative along columns
        for j in range(1, w - 1):
            tmp[i, j] = sm[i, j + 1] - sm[i, j - 1]
        tmp[i, w - 1] = sm[i, w - 1] - sm[i, w - 2]
    for i in range(h):
        im = i - 1 if i > 0 else 0
        ip = i + 1 if i < h - 1 else h - 1
        for j in range(w):
            jsob[i, j] = np.float32(tmp[im, j] + 2.0 * tmp[i, j] + tmp[ip, j])
    for i in range(h):
        for j in range(w):
            a = isob[i, j] * isob[i, j]
            a += jsob[i, j] * jsob[i, j]
            mag[i, j] = np.sqrt(a)
    # non-maximum suppression (scikit-image's bilinear rule), low threshold
    lowf = np.float32(low) if low > 0 else 1e-14
    highf = np.float32(high)
    state = np.zeros((h, w), dtype=np.uint8)  # 1 weak, 2 strong/accepted
    stack = np.empty(h * w, dtype=np.int64)
    n_stack = 0
    for x in range(1, h - 1):
        for y in range(1, w - 1):
            m = mag[x, y]
            if not (m >= lowf):
                continue
            ai = abs(isob[x, y])
            aj = abs(jsob[x, y])
            is_down = isob[x, y] <= 0
            is_left = jsob[x, y] <= 0
            if is_down == is_left:
                if ai > aj:
                    wgt = aj / ai
                    n11 = mag[x + 1, y]
                    n12 = mag[x + 1, y + 1]
                    n21 = mag[x - 1, y]
                    n22 = mag[x - 1, y - 1]
                else:
                    wgt = ai / aj
                    n11 = mag[x, y + 1]
                    n12 = mag[x + 1, y + 1]
                    n21 = mag[x, y - 1]
                    n22 = mag[x - 1, y - 1]
            else:
                if ai < aj:
                    wgt = ai / aj
                    n11 = mag[x, y + 1]
                    n12 = mag[x - 1, y + 1]
                    n21 = mag[x, y - 1]
                    n22 = mag[x + 1, y - 1]
                else:
                    wgt = aj / ai
                    n11 = mag[x - 1, y]
                    n12 = mag[x - 1, y + 1]
                    n21 = mag[x + 1, y]
                    n22 = mag[x + 1, y - 1]
            wgt = np.float32(wgt)
            if np.float32(n12 * wgt) + n11 * (1.0 - np.float64(wgt)) <= m:
                if np.float32(n22 * wgt) + n21 * (1.0 - np.float64(wgt)) <= m:
                    if m >= highf:
                        state[x, y] = 2
                        stack[n_stack] = x * w + y
                        n_stack += 1
                    else:
                        state[x, y] = 1
    # hysteresis: flood the weak pixels 8-connected to a strong one
    while n_stack > 0:
        n_stack -= 1
        p = stack[n_stack]
        x = p // w
        y = p - x * w
        for dx in range(-1, 2):
            for dy in range(-1, 2):
                xx = x + dx
                yy = y + dy
                if 0 <= xx < h and 0 <= yy < w and state[xx, yy] == 1:
                    state[xx, yy] = 2
                    stack[n_stack] = xx * w + yy
                    n_stack += 1
    for i in range(h):
        for j in range(w):
            out[i, j] = 1.0 if state[i, j] == 2 else 0.0


@_jit
def dog_ratio_image(gray, d1, g1, d2, g2, out):  # pragma: no cover - compiled
    """``R = |grad_s1| / (|grad_s2| + 1e-8)`` of the paper's 2-D DoG kernels.

    Parameters
    ----------
    gray : ndarray of shape (H, W), float32
    d1, g1, d2, g2 : ndarray of shape (K,), float64
        Separable factors (derivative, Gaussian) at the two scales.
    out : ndarray of shape (H, W), float32
    """
    h, w = gray.shape
    a = np.empty((h, w), dtype=np.float32)
    gx = np.empty((h, w), dtype=np.float32)
    gy = np.empty((h, w), dtype=np.float32)
    m1 = np.empty((h, w), dtype=np.float32)
    for scale in range(2):
        d = d1 if scale == 0 else d2
        g = g1 if scale == 0 else g2
        _corr_cols32(gray, g, a)
        _corr_rows32(a, d, gx)
        _corr_rows32(gray, g, a)
        _corr_cols32(a, d, gy)
        if scale == 0:
            for i in range(h):
                for j in range(w):
                    m1[i, j] = np.sqrt(gx[i, j] * gx[i, j] + gy[i, j] * gy[i, j])
        else:
            for i in range(h):
                for j in range(w):
                    m2 = np.sqrt(gx[i, j] * gx[i, j] + gy[i, j] * gy[i, j])
                    out[i, j] = m1[i, j] / (m2 + np.float32(1e-8))


@_jit
def _box_sum_rows(src, r, out):  # pragma: no cover - compiled
    """Sum over rows ``i - r .. i + r`` clipped to the image (running sums)."""
    h, w = src.shape
    col = np.zeros(w, dtype=np.float64)
    for i in range(min(r, h)):
        for j in range(w):
            col[j] += src[i, j]
    for i in range(h):
        if i + r < h:
            for j in range(w):
                col[j] += src[i + r, j]
        if i - r - 1 >= 0:
            for j in range(w):
                col[j] -= src[i - r - 1, j]
        for j in range(w):
            out[i, j] = col[j]


@_jit
def _box_mean2d(src, r, out):  # pragma: no cover - compiled
    """Mean over the in-image part of each (2r+1)^2 window (running sums, float64)."""
    h, w = src.shape
    rows = np.empty((h, w), dtype=np.float32)
    _box_sum_rows(src, r, rows)
    lo = np.empty(w, dtype=np.int64)
    hi = np.empty(w, dtype=np.int64)
    inv_c = np.empty(w, dtype=np.float64)
    for j in range(w):
        lo[j] = max(j - r, 0)
        hi[j] = min(j + r, w - 1) + 1
        inv_c[j] = 1.0 / (hi[j] - lo[j])
    # cumulative sums along each row, four rows at a time (independent chains)
    cs = np.zeros((4, w + 1), dtype=np.float64)
    for i0 in range(0, h, 4):
        n = min(4, h - i0)
        if n == 4:
            c0 = c1 = c2 = c3 = 0.0
            for j in range(w):
                c0 += rows[i0, j]
                c1 += rows[i0 + 1, j]
                c2 += rows[i0 + 2, j]
                c3 += rows[i0 + 3, j]
                cs[0, j + 1] = c0
                cs[1, j + 1] = c1
                cs[2, j + 1] = c2
                cs[3, j + 1] = c3
        else:
            for q in range(n):
                c = 0.0
                for j in range(w):
                    c += rows[i0 + q, j]
                    cs[q, j + 1] = c
        for q in range(n):
            i = i0 + q
            inv_r = 1.0 / (min(i + r, h - 1) - max(i - r, 0) + 1)
            for j in range(w):
                out[i, j] = (cs[q, hi[j]] - cs[q, lo[j]]) * (inv_r * inv_c[j])


@_jit
def _box_mean(src, r, out):  # pragma: no cover - compiled
    """:func:`_box_mean2d` of each channel of ``(C, H, W)`` arrays."""
    for ch in range(src.shape[0]):
        _box_mean2d(src[ch], r, out[ch])


@_jit
def sparse_guided_image(
    gray, edges, ratio, edge_denom, s1, s2, max_blur, radius, eps, sparse, dense
):  # pragma: no cover - compiled
    """Edge weighting, closed-form blur with the paper's clamps, guided filter.

    Parameters
    ----------
    gray, edges, ratio : ndarray of shape (H, W), float32
    edge_denom : float
        ``edge_max + 1e-8`` with the batch maximum of the resized edges.
    s1, s2, max_blur : float
    radius : int
    eps : float
    sparse, dense : ndarray of shape (H, W), float32
        Outputs.
    """
    h, w = gray.shape
    denom = np.float32(edge_denom)
    s1sq = np.float32(s1 * s1)
    s2sq = np.float32(s2 * s2)
    mb = np.float32(max_blur)
    for i in range(h):
        for j in range(w):
            r = ratio[i, j] * edges[i, j] / denom
            r2 = r * r
            v = (r2 * s1sq - s2sq) / (np.float32(1.0) - r2 + np.float32(1e-8))
            if v > 0:
                v = np.sqrt(v)
                if v > mb:
                    v = mb
            elif v != v:
                v = 0.0
            else:
                v = 0.0
            sparse[i, j] = v
    stack = np.empty((4, h, w), dtype=np.float32)
    means = np.empty((4, h, w), dtype=np.float32)
    for i in range(h):
        for j in range(w):
            g = gray[i, j]
            p = sparse[i, j]
            stack[0, i, j] = g
            stack[1, i, j] = p
            stack[2, i, j] = g * g
            stack[3, i, j] = g * p
    _box_mean(stack, radius, means)
    ab = stack[:2]
    for i in range(h):
        for j in range(w):
            mi = means[0, i, j]
            mp = means[1, i, j]
            var = means[2, i, j] - mi * mi
            cov = means[3, i, j] - mi * mp
            aa = cov / (var + eps)
            ab[0, i, j] = aa
            ab[1, i, j] = mp - aa * mi
    mab = means[:2]
    _box_mean(ab, radius, mab)
    for i in range(h):
        for j in range(w):
            dense[i, j] = mab[0, i, j] * gray[i, j] + mab[1, i, j]
