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
    # error_model="numpy": a float division by zero gives inf/nan instead of raising, so
    # loops with divisions vectorise (no divisor here can be 0, see the kernels)
    return numba.njit(nogil=True, cache=True, fastmath=False, error_model="numpy")(fn)


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
def _axpy(k, x, out):  # pragma: no cover - compiled
    """``out += k * x`` over 1-D arrays."""
    for j in range(out.shape[0]):
        out[j] += k * x[j]


@_jit
def _dog_rows(gray, g1, d1, g2, d2, a1, b1, a2, b2):  # pragma: no cover - compiled
    """Correlate every row with four kernels (zero outside), float32 sums.

    ``a = g (x) row`` (symmetric Gaussian factor), ``b = d (x) row``
    (antisymmetric derivative factor), at both scales. The symmetry halves
    the products: ``sum_t k[t] x[j + t - r] = k[r] x[j] + sum_{t < r} k[t]
    (x[j + t - r] +- x[j + r - t])``.
    """
    h, w = gray.shape
    r = (g1.shape[0] - 1) // 2
    pad = np.zeros(w + 2 * r, dtype=np.float32)
    s = np.empty(w, dtype=np.float32)
    df = np.empty(w, dtype=np.float32)
    c1 = np.float32(g1[r])
    c2 = np.float32(g2[r])
    for i in range(h):
        pad[r : r + w] = gray[i]
        ra1, rb1, ra2, rb2 = a1[i], b1[i], a2[i], b2[i]
        for j in range(w):
            ra1[j] = c1 * gray[i, j]
        for j in range(w):
            ra2[j] = c2 * gray[i, j]
        rb1[:] = 0.0
        rb2[:] = 0.0
        for t in range(r):
            lo = pad[t : t + w]
            hi = pad[2 * r - t : 2 * r - t + w]
            for j in range(w):
                s[j] = lo[j] + hi[j]
            for j in range(w):
                df[j] = lo[j] - hi[j]
            _axpy(np.float32(g1[t]), s, ra1)
            _axpy(np.float32(g2[t]), s, ra2)
            _axpy(np.float32(d1[t]), df, rb1)
            _axpy(np.float32(d2[t]), df, rb2)


@_jit
def dog_ratio_image(gray, d1, g1, d2, g2, out):  # pragma: no cover - compiled
    """``R = |grad_s1| / (|grad_s2| + 1e-8)`` of the paper's 2-D DoG kernels.

    The kernels are separable, ``gx = d(rows) g(cols)`` and ``gy = g(rows)
    d(cols)``, correlated with zero padding: one pass along the rows gives
    ``g (x) x`` and ``d (x) x`` at both scales, one pass down the columns
    finishes the four derivatives and the ratio, a row at a time.

    Parameters
    ----------
    gray : ndarray of shape (H, W), float32
    d1, g1, d2, g2 : ndarray of shape (K,), float64
        Separable factors (derivative, Gaussian) at the two scales, K odd,
        ``g`` symmetric and ``d`` antisymmetric (as ``dog_kernels_1d`` makes them).
    out : ndarray of shape (H, W), float32
    """
    h, w = gray.shape
    r = (g1.shape[0] - 1) // 2
    a1 = np.empty((h, w), dtype=np.float32)
    b1 = np.empty((h, w), dtype=np.float32)
    a2 = np.empty((h, w), dtype=np.float32)
    b2 = np.empty((h, w), dtype=np.float32)
    _dog_rows(gray, g1, d1, g2, d2, a1, b1, a2, b2)
    gx1 = np.empty(w, dtype=np.float32)
    gy1 = np.empty(w, dtype=np.float32)
    gx2 = np.empty(w, dtype=np.float32)
    gy2 = np.empty(w, dtype=np.float32)
    tmp = np.empty(w, dtype=np.float32)
    c1 = np.float32(g1[r])
    c2 = np.float32(g2[r])
    eps = np.float32(1e-8)
    for i in range(h):
        gx1[:] = 0.0
        gx2[:] = 0.0
        rb1, rb2 = b1[i], b2[i]
        for j in range(w):
            gy1[j] = c1 * rb1[j]
        for j in range(w):
            gy2[j] = c2 * rb2[j]
        for t in range(r):
            lo = i + t - r
            hi = i + r - t
            # gx = sum_t d[t] (a[lo] - a[hi]); gy = sum_t g[t] (b[lo] + b[hi]); zero outside
            if lo >= 0:
                _axpy(np.float32(d1[t]), a1[lo], gx1)
                _axpy(np.float32(d2[t]), a2[lo], gx2)
                _axpy(np.float32(g1[t]), b1[lo], gy1)
                _axpy(np.float32(g2[t]), b2[lo], gy2)
            if hi < h:
                _axpy(np.float32(-d1[t]), a1[hi], gx1)
                _axpy(np.float32(-d2[t]), a2[hi], gx2)
                _axpy(np.float32(g1[t]), b1[hi], gy1)
                _axpy(np.float32(g2[t]), b2[hi], gy2)
        for j in range(w):
            tmp[j] = np.sqrt(gx1[j] * gx1[j] + gy1[j] * gy1[j])
        orow = out[i]
        for j in range(w):
            orow[j] = tmp[j] / (np.sqrt(gx2[j] * gx2[j] + gy2[j] * gy2[j]) + eps)


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
def _box_sum_cols(src, r, out):  # pragma: no cover - compiled
    """Sum over columns ``j - r .. j + r`` clipped to the image (float32).

    Each row is zero-padded and its window sums are assembled from sums of
    1, 2, 4, ... neighbours (the binary digits of ``2r + 1``): a handful of
    vectorised additions per pixel instead of a serial running sum.
    """
    h, w = src.shape
    n = w + 2 * r
    bufs = np.zeros((2, n), dtype=np.float32)
    acc = np.empty(w, dtype=np.float32)
    for i in range(h):
        pad = bufs[0]
        pad[:r] = 0.0  # the sums of the previous row overwrote the padding
        pad[r + w :] = 0.0
        pad[r : r + w] = src[i]
        for j in range(w):
            acc[j] = 0.0
        rem = 2 * r + 1
        width = 1
        off = 0
        k = 0
        while rem > 0:
            cur = bufs[k]
            if rem & 1:
                part = cur[off : off + w]  # a view: plain j indexing vectorises
                for j in range(w):
                    acc[j] += part[j]
                off += width
            rem >>= 1
            if rem > 0:
                m = n - 2 * width + 1
                nxt = bufs[1 - k]
                ahead = cur[width : width + m]
                for j in range(m):
                    nxt[j] = cur[j] + ahead[j]
                k = 1 - k
                width *= 2
        for j in range(w):
            out[i, j] = acc[j]


@_jit
def _box_mean(src, r, out):  # pragma: no cover - compiled
    """Mean over the in-image part of each (2r+1)^2 window, per channel of ``(C, H, W)``."""
    n, h, w = src.shape
    rows = np.empty((h, w), dtype=np.float32)
    inv_r = np.empty(h, dtype=np.float32)
    inv_c = np.empty(w, dtype=np.float32)
    for i in range(h):
        inv_r[i] = 1.0 / (min(i + r, h - 1) - max(i - r, 0) + 1)
    for j in range(w):
        inv_c[j] = 1.0 / (min(j + r, w - 1) - max(j - r, 0) + 1)
    for c in range(n):
        _box_sum_rows(src[c], r, rows)
        _box_sum_cols(rows, r, out[c])
        for i in range(h):
            ir = inv_r[i]
            for j in range(w):
                out[c, i, j] = out[c, i, j] * (ir * inv_c[j])


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
    # Loops run over row views and write one array each, so that they vectorise.
    h, w = gray.shape
    denom = np.float32(edge_denom)
    s1sq = np.float32(s1 * s1)
    s2sq = np.float32(s2 * s2)
    mb = np.float32(max_blur)
    one = np.float32(1.0)
    tiny = np.float32(1e-8)
    zero = np.float32(0.0)
    for i in range(h):
        er, rr, sr = edges[i], ratio[i], sparse[i]
        for j in range(w):
            r = rr[j] * er[j] / denom
            r2 = r * r
            v = (r2 * s1sq - s2sq) / (one - r2 + tiny)
            v = v if v > zero else zero  # NaN to 0 as well
            sr[j] = min(np.sqrt(v), mb)
    stack = np.empty((4, h, w), dtype=np.float32)
    means = np.empty((4, h, w), dtype=np.float32)
    for i in range(h):
        gr, sr = gray[i], sparse[i]
        st0, st1, st2, st3 = stack[0, i], stack[1, i], stack[2, i], stack[3, i]
        st0[:] = gr
        st1[:] = sr
        for j in range(w):
            st2[j] = gr[j] * gr[j]
        for j in range(w):
            st3[j] = gr[j] * sr[j]
    _box_mean(stack, radius, means)
    ab = stack[:2]
    e32 = np.float32(eps)
    for i in range(h):
        mi, mp, mii, mip = means[0, i], means[1, i], means[2, i], means[3, i]
        ar, br = ab[0, i], ab[1, i]
        for j in range(w):
            ar[j] = (mip[j] - mi[j] * mp[j]) / ((mii[j] - mi[j] * mi[j]) + e32)
        for j in range(w):
            br[j] = mp[j] - ar[j] * mi[j]
    mab = means[:2]
    _box_mean(ab, radius, mab)
    for i in range(h):
        ma, mbb, gr, dr = mab[0, i], mab[1, i], gray[i], dense[i]
        for j in range(w):
            dr[j] = ma[j] * gr[j] + mbb[j]
