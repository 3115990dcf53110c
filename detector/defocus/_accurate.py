"""Accurate mode: blur sigmas in pixels, calibrated on step edges (ALGORITHM.md section 2).

Per image:

1. Edges: Canny on the gray image (scikit-image semantics, thresholds lower
   than the paper's so that blurred edges are kept).
2. Sparse blur at each edge pixel from the gradient-magnitude ratio of two
   properly normalised Gaussian-derivative filters (scales ``s1 < s2``).
   For a step edge blurred by ``sigma`` the magnitude profile across the
   edge at scale ``s`` is a Gaussian of width ``w_s = sqrt(sigma^2 + s^2)``
   and peak ``C / (sqrt(2 pi) w_s)``. The peak is recovered exactly from
   three samples along the gradient direction by fitting a parabola to the
   log-magnitude (so an edge lying between pixel centres is not biased), and
   ``R = peak_1 / peak_2`` gives ``sigma^2 = (R^2 s1^2 - s2^2) / (1 - R^2)``.
3. Validity: the log-parabola's curvature gives an independent width
   ``w_1^2 = -1 / curvature`` that must agree with the ratio's, and the
   signed gradient profile must follow the blurred-step model out to
   ``accurate_isolation`` widths on both sides (how well it does is the
   estimate's confidence). Lines, corners and crowded texture are dropped.
4. Neighbour correction: an edge of opposite polarity nearby narrows the
   flank facing it, which biases every width estimate low (by about 15 %
   at sigma = 3 on natural textures); the width of the wider flank is used
   when it is larger.
5. Consistency: each estimate is replaced by the median of the valid
   estimates within a small window along the edge.
6. Propagation (``propagation="guided"``): each estimate votes at one point
   on each side of its edge, past the edge's width (:func:`side_points`),
   weighted by its confidence over the local density of votes
   (:func:`density_weights`); the votes fill a histogram of blur levels that
   an edge-aware domain-transform filter spreads, and each pixel takes its
   weighted median (``accurate_fill="median"``). ``accurate_fill="mean"``
   is the normalised domain transform of the estimates at the edge pixels;
   ``propagation="matting"`` the matting Laplacian. Clipped to
   ``[0, max_blur]``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._config import DefocusConfig

__all__ = ["sparse_blur", "accurate_image", "accurate_numpy"]


def _resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    """Antialiased bilinear resize of ``(H, W, 3)`` to ``(size, size, 3)``."""
    import torch
    import torch.nn.functional as F

    h, w = rgb.shape[:2]
    if h == size and w == size:
        return rgb
    t = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out[0].numpy().transpose(1, 2, 0).astype(np.float64)


def _log_peak(mag: np.ndarray, rows, cols, nr, nc):
    """Log-parabola fit of ``mag`` at ``p - n``, ``p``, ``p + n`` (bilinear samples)."""
    coords = np.stack(
        [np.concatenate([rows - nr, rows, rows + nr]), np.concatenate([cols - nc, cols, cols + nc])]
    )
    samples = ndimage.map_coordinates(mag, coords, order=1, mode="nearest")
    a, b, c = np.log(np.maximum(samples, 1e-12)).reshape(3, -1)
    curv = a - 2.0 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = (a - c) / (2.0 * curv)
        peak = b - (c - a) ** 2 / (8.0 * curv)
    return peak, curv, offset


def _profile_deviation(gr, gc, rows, cols, nr, nc, peak, offset, width, reach):
    """Largest deviation of the gradient profile across each edge from the step model.

    Along the normal ``n`` the directional derivative of a blurred step is
    ``A exp(-(t - u0)^2 / (2 w^2))``. It is sampled at integer ``t`` out to
    ``reach`` widths on both sides and compared with the model fitted at the
    centre; a neighbouring edge (of either polarity) within that reach bends
    the profile. Returns the largest deviation as a fraction of the peak.
    """
    big = int(np.clip(np.ceil(reach * np.nanmax(width)), 2, 15))
    t = np.arange(-big, big + 1, dtype=np.float64)
    rr = (rows[None] + t[:, None] * nr[None]).ravel()
    cc = (cols[None] + t[:, None] * nc[None]).ravel()
    coords = np.stack([rr, cc])
    pr = ndimage.map_coordinates(gr, coords, order=1, mode="nearest").reshape(t.size, -1)
    pc = ndimage.map_coordinates(gc, coords, order=1, mode="nearest").reshape(t.size, -1)
    proj = pr * nr[None] + pc * nc[None]
    amp = np.exp(peak)
    model = amp[None] * np.exp(-((t[:, None] - offset[None]) ** 2) / (2.0 * width[None] ** 2))
    counted = np.abs(t)[:, None] <= np.maximum(np.ceil(reach * width), 2)[None]
    dev = np.where(counted, np.abs(proj - model), 0.0).max(axis=0) / amp
    return dev


def _side_variance(mag, rows, cols, nr, nc, peak, offset, width, s1, var, ok):
    """Blur variance from the wider flank of each edge's log-magnitude profile.

    An edge of opposite polarity nearby narrows the flank facing it; the
    flank away from it keeps the true width. Each flank's width follows from
    one sample at ``t = +-k`` (``k`` about one width) and the fitted peak:
    ``w^2 = (t - u0)^2 / (2 (P - log m(t)))``.
    """
    out = var.copy()
    sel = np.nonzero(ok)[0]
    k = np.clip(np.round(width[sel]), 1, 6)
    best = np.zeros(sel.size)
    for sign in (-1.0, 1.0):
        t = sign * k
        coords = np.stack([rows[sel] + t * nr[sel], cols[sel] + t * nc[sel]])
        logm = np.log(
            np.maximum(ndimage.map_coordinates(mag, coords, order=1, mode="nearest"), 1e-12)
        )
        drop = peak[sel] - logm
        with np.errstate(divide="ignore", invalid="ignore"):
            w2 = np.where(drop > 1e-6, (t - offset[sel]) ** 2 / (2.0 * drop), 0.0)
        best = np.maximum(best, w2)
    side = best - s1 * s1
    out[sel] = np.where(np.isfinite(side) & (side > var[sel]), side, var[sel])
    return out


def sparse_blur(gray: np.ndarray, config: DefocusConfig, *, normals: bool = False):
    """Blur sigma (pixels) at the edge pixels of one gray image.

    Parameters
    ----------
    gray : ndarray of shape (H, W), float64 in [0, 1]
    config : DefocusConfig
    normals : bool, default=False
        Also return the unit gradient direction at the edge pixels.

    Returns
    -------
    sparse : ndarray of shape (H, W), float64
        Estimates at valid edge pixels, 0 elsewhere.
    valid : ndarray of shape (H, W), bool
        Pixels holding an estimate.
    edges : ndarray of shape (H, W), bool
        Canny edges.
    confidence : ndarray of shape (H, W), float64
        Weight in (0, 1] of each estimate (how well its gradient profile
        follows the step model), 0 where there is none.
    normal : ndarray of shape (2, H, W), float64
        Only with ``normals=True``: the unit gradient direction (row, column
        components) at the edge pixels, 0 elsewhere.
    """
    from skimage.feature import canny

    s1, s2 = config.accurate_scales
    edges = canny(gray, sigma=config.canny_sigma, low_threshold=config.accurate_canny_low,
                  high_threshold=config.accurate_canny_high)  # fmt: skip
    rows, cols = np.nonzero(edges)
    sparse = np.zeros(gray.shape, dtype=np.float64)
    valid = np.zeros(gray.shape, dtype=bool)
    normal = np.zeros((2,) + gray.shape)
    if rows.size == 0:
        empty = (sparse, valid, edges, np.zeros(gray.shape))
        return empty + (normal,) if normals else empty
    mags = []
    for s in (s1, s2):
        gr = ndimage.gaussian_filter(gray, s, order=(1, 0), mode="nearest", truncate=4.0)
        gc = ndimage.gaussian_filter(gray, s, order=(0, 1), mode="nearest", truncate=4.0)
        mags.append((np.hypot(gr, gc), gr, gc))
    mag1, gr1, gc1 = mags[0]
    norm = np.maximum(mag1[rows, cols], 1e-12)
    nr, nc = gr1[rows, cols] / norm, gc1[rows, cols] / norm
    rf, cf = rows.astype(np.float64), cols.astype(np.float64)
    p1, k1, o1 = _log_peak(mag1, rf, cf, nr, nc)
    p2, k2, o2 = _log_peak(mags[1][0], rf, cf, nr, nc)
    ratio = np.exp(np.clip(p1 - p2, -50.0, 50.0))
    r2 = ratio * ratio
    with np.errstate(divide="ignore", invalid="ignore"):
        var = (r2 * s1 * s1 - s2 * s2) / (1.0 - r2)
        var_curv = -1.0 / k1 - s1 * s1
    ok = (k1 < 0) & (k2 < 0) & (np.abs(o1) <= 1.0) & (np.abs(o2) <= 1.0) & (ratio > 1.0)
    # a ratio above s2 / s1 means sharper than a step: sigma 0 within noise
    var = np.where(ratio >= s2 / s1, 0.0, var)
    # the curvature width must agree with the ratio's: an isolated step edge
    tol = config.accurate_consistency
    w_ratio = np.sqrt(np.maximum(var, 0) + s1 * s1)
    w_curv = np.sqrt(np.maximum(var_curv + s1 * s1, 1e-12))
    ok &= np.isfinite(var) & (np.abs(w_curv - w_ratio) <= tol * w_ratio)
    # isolation: the signed profile must follow the step model for a few widths
    # on both sides, otherwise a neighbouring edge bends it
    weight = np.ones(rows.size)
    if config.accurate_isolation > 0 and ok.any():
        sel = np.nonzero(ok)[0]
        dev = _profile_deviation(
            gr1, gc1, rf[sel], cf[sel], nr[sel], nc[sel], p1[sel], o1[sel], w_ratio[sel],
            config.accurate_isolation,
        )  # fmt: skip
        tol = config.accurate_profile_tol
        ok[sel[dev > tol]] = False
        weight[sel] = np.exp(-((dev / (0.5 * tol)) ** 2))
    if config.accurate_side_width and ok.any():
        var = _side_variance(mag1, rf, cf, nr, nc, p1, o1, w_ratio, s1, var, ok)
    sigma = np.sqrt(np.clip(var, 0.0, config.max_blur**2))
    sparse[rows[ok], cols[ok]] = sigma[ok]
    valid[rows[ok], cols[ok]] = True
    if config.accurate_contrast > 0:
        # a step of contrast C has a gradient peak C / (sqrt(2 pi) w): faint edges are
        # noisier, so they weigh less
        contrast = np.exp(np.clip(p1, -50.0, 50.0)) * np.sqrt(2.0 * np.pi) * w_ratio
        weight = weight * contrast / (contrast + config.accurate_contrast)
    confidence = np.zeros(gray.shape, dtype=np.float64)
    confidence[rows[ok], cols[ok]] = weight[ok]
    if not normals:
        return sparse, valid, edges, confidence
    normal[0, rows, cols], normal[1, rows, cols] = nr, nc
    return sparse, valid, edges, confidence, normal


def _median_consistency(sparse: np.ndarray, valid: np.ndarray, radius: int) -> np.ndarray:
    """Median of the valid estimates within ``(2r+1)^2`` windows, at valid pixels."""
    if radius <= 0 or not valid.any():
        return sparse
    from ._propagate import window_median

    return window_median(np.ascontiguousarray(sparse, dtype=np.float64), valid, int(radius))


def intrinsic_blur(sparse: np.ndarray, valid: np.ndarray, quantile: float = 0.05) -> float:
    """Estimate the in-focus blur of the camera: a low quantile of the edge estimates.

    Parameters
    ----------
    sparse : ndarray of shape (H, W)
    valid : ndarray of shape (H, W), bool
    quantile : float, default=0.05

    Returns
    -------
    float
        0 when there are fewer than 50 estimates.
    """
    values = sparse[valid]
    if values.size < 50:
        return 0.0
    return float(np.quantile(values, quantile))


def _remove_intrinsic(sparse: np.ndarray, valid: np.ndarray, intrinsic) -> np.ndarray:
    """Subtract the camera's in-focus blur in quadrature (``"auto"``, a number, or None)."""
    if intrinsic is None:
        return sparse
    sigma_i = intrinsic_blur(sparse, valid) if intrinsic == "auto" else float(intrinsic)
    if sigma_i <= 0:
        return sparse
    out = np.sqrt(np.maximum(sparse**2 - sigma_i**2, 0.0))
    return np.where(valid, out, sparse)


def side_points(sparse, valid, normal, s1: float, offset: float):
    """Where each edge estimate votes: one point on each side of its edge.

    An edge's blur describes the surfaces beside it, not the edge line
    itself: the estimate at edge pixel ``p`` with gradient direction ``n``
    and width ``w = sqrt(sigma^2 + s1^2)`` is placed at ``p - d n`` and
    ``p + d n`` with ``d = w + offset`` (rounded to the nearest pixel,
    clipped to the image), past the edge's own transition.

    Parameters
    ----------
    sparse : ndarray of shape (H, W)
        Blur estimates (px).
    valid : ndarray of shape (H, W), bool
        Pixels holding an estimate.
    normal : ndarray of shape (2, H, W)
        Unit gradient direction at the edge pixels.
    s1 : float
        The smaller derivative scale.
    offset : float
        Pixels beyond the edge width.

    Returns
    -------
    rows, cols : ndarray of shape (2 n,), int64
        The two points of each of the ``n`` estimates (all first sides, then
        all second sides).
    index : ndarray of shape (2 n,), int64
        Flat index ``row * W + col`` of the estimate each point belongs to.
    """
    h, w = sparse.shape
    r, c = np.nonzero(valid)
    s = sparse[r, c]
    d = np.sqrt(s * s + s1 * s1) + offset
    nr, nc = normal[0, r, c], normal[1, r, c]
    rows = np.concatenate([r - d * nr, r + d * nr])
    cols = np.concatenate([c - d * nc, c + d * nc])
    rows = np.clip(np.rint(rows), 0, h - 1).astype(np.int64)
    cols = np.clip(np.rint(cols), 0, w - 1).astype(np.int64)
    index = np.tile(r.astype(np.int64) * w + c, 2)
    return rows, cols, index


def density_weights(shape, rows, cols, radius: float, floor: float = 0.01) -> np.ndarray:
    """Weight of each vote: one over the density of votes around it.

    Densely textured surfaces yield hundreds of edge estimates where a
    sparse one (a thin structure, the few edges in a sky) yields a handful;
    without this the dense surface outvotes its neighbours in the median
    over any region the filter reaches. The density is the number of votes
    per pixel smoothed by a Gaussian of ``radius`` pixels, so each area has
    about one say whatever its texture.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)``.
    rows, cols : ndarray of shape (n,), int
        Pixel of each vote.
    radius : float
        Gaussian sigma (pixels) of the density; 0 gives every vote weight 1.
    floor : float, default=0.01
        Added to the density (votes per pixel) before dividing.

    Returns
    -------
    ndarray of shape (n,), float64
    """
    if radius <= 0 or rows.size == 0:
        return np.ones(rows.size)
    h, w = shape
    count = np.bincount(rows * w + cols, minlength=h * w).reshape(h, w).astype(np.float64)
    density = ndimage.gaussian_filter(count, radius, mode="reflect")
    return 1.0 / (density[rows, cols] + floor)


def accurate_image(rgb: np.ndarray, config: DefocusConfig):
    """Dense and sparse blur maps of one image.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, C), float64 in [0, 1]
    config : DefocusConfig

    Returns
    -------
    dense, sparse, edges : ndarray of shape (S, S) (or (H, W) when size is None), float32
    """
    if config.size is not None:
        # blur in output pixels: the resize scales every sigma by size / H
        rgb = _resize_rgb(rgb, config.size)
    gray = rgb.mean(axis=2)
    sparse, valid, edges, conf, normal = sparse_blur(gray, config, normals=True)
    sparse = _median_consistency(sparse, valid, config.accurate_median_radius)
    sparse = _remove_intrinsic(sparse, valid, config.accurate_intrinsic)
    if config.propagation == "matting":
        from ._matting import matting_propagate

        dense = matting_propagate(rgb, sparse, conf, config.matting_lambda, config.matting_eps)
    elif config.accurate_fill == "median":
        from ._propagate import median_propagate

        rows, cols, index = side_points(
            sparse, valid, normal, config.accurate_scales[0], config.accurate_side_offset
        )
        weights = conf.ravel()[index] * density_weights(
            sparse.shape, rows, cols, config.accurate_density_radius
        )
        dense = median_propagate(
            rgb, rows, cols, sparse.ravel()[index], weights,
            config.accurate_sigma_s, config.accurate_sigma_r, config.accurate_bins,
            config.max_blur,
        )  # fmt: skip
    else:
        from ._propagate import domain_transform_propagate

        dense = domain_transform_propagate(
            rgb, sparse, conf, config.accurate_sigma_s, config.accurate_sigma_r
        )
    dense = np.clip(dense, 0.0, config.max_blur)
    return dense.astype(np.float32), sparse.astype(np.float32), edges.astype(np.float32)


def accurate_numpy(x: np.ndarray, config: DefocusConfig):
    """Accurate mode on a batch.

    Parameters
    ----------
    x : ndarray of shape (n, C, H, W), float32 in [0, 1]
    config : DefocusConfig

    Returns
    -------
    dense, sparse, edges : ndarray of shape (n, S, S), float32
    """
    outs = [accurate_image(img.transpose(1, 2, 0).astype(np.float64), config) for img in x]
    return tuple(np.stack([o[k] for o in outs]) for k in range(3))
