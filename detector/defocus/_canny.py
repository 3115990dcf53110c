"""Canny edges with scikit-image's semantics, on CPU (numpy) and in torch (GPU).

The semantics (``skimage.feature.canny(image, sigma)`` on a float image):
Gaussian smoothing with ``mode="constant"``, truncate 4, renormalised by the
smoothed all-ones image (the "bleed-over"); Sobel gradients with reflected
borders; non-maximum suppression with bilinear interpolation along the
gradient direction, keeping magnitudes ``>= low``; the one-pixel border
forced to no edge; hysteresis keeping the 8-connected components of the
low mask that contain a magnitude ``>= high``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["canny_numpy", "canny_torch"]

_STREL_3D = np.zeros((3, 3, 3), dtype=bool)
_STREL_3D[1] = True  # 8-connectivity inside each image, never across the batch


def canny_numpy(
    images: np.ndarray, sigma: float = 1.5, low: float = 0.1, high: float = 0.2
) -> np.ndarray:
    """Canny edges of a stack of images, identical to ``skimage.feature.canny``.

    The smoothing, Sobel and hysteresis run on the whole stack at once (the
    bleed-over is computed once), the non-maximum suppression is
    scikit-image's own compiled routine, per image.

    Parameters
    ----------
    images : ndarray of shape (n_images, H, W), float32 or float64
    sigma, low, high : float
        Smoothing and hysteresis thresholds (absolute magnitudes).

    Returns
    -------
    ndarray of shape (n_images, H, W), bool
    """
    from skimage.feature._canny_cy import _nonmaximum_suppression_bilinear

    images = np.asarray(images)
    if images.dtype not in (np.float32, np.float64):
        images = images.astype(np.float64)
    n, h, w = images.shape
    dtype = images.dtype
    eps = np.finfo(dtype).eps
    sig = (0.0, sigma, sigma)
    bleed = ndimage.gaussian_filter(
        np.ones((h, w), dtype=dtype), sigma, mode="constant", cval=0.0, truncate=4.0
    )
    bleed += eps
    smoothed = ndimage.gaussian_filter(images, sig, mode="constant", cval=0.0, truncate=4.0)
    smoothed /= bleed
    # ndimage.sobel would also smooth across the stack axis: spell it out per image.
    diff, tri = [-1.0, 0.0, 1.0], [1.0, 2.0, 1.0]
    kw = dict(mode="reflect")
    jsobel = ndimage.correlate1d(ndimage.correlate1d(smoothed, diff, 2, **kw), tri, 1, **kw)
    isobel = ndimage.correlate1d(ndimage.correlate1d(smoothed, diff, 1, **kw), tri, 2, **kw)
    magnitude = isobel * isobel
    magnitude += jsobel * jsobel
    np.sqrt(magnitude, out=magnitude)
    eroded = np.ones((h, w), dtype=np.uint8)
    eroded[:1, :] = eroded[-1:, :] = 0
    eroded[:, :1] = eroded[:, -1:] = 0
    low_masked = np.empty_like(magnitude)
    for i in range(n):
        low_masked[i] = _nonmaximum_suppression_bilinear(
            isobel[i], jsobel[i], magnitude[i], eroded, low
        )
    low_mask = low_masked > 0
    labels, count = ndimage.label(low_mask, _STREL_3D)
    if count == 0:
        return low_mask
    high_mask = low_mask & (low_masked >= dtype.type(high))
    good = np.zeros(count + 1, dtype=bool)
    good[np.unique(labels[high_mask])] = True
    good[0] = False
    return good[labels]


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 / sigma**2 * x**2)
    return k / k.sum()


def canny_torch(images, sigma: float = 1.5, low: float = 0.1, high: float = 0.2):
    """Canny edges in torch with the semantics of :func:`canny_numpy` (GPU path).

    Parameters
    ----------
    images : torch.Tensor of shape (B, 1, H, W), float
    sigma, low, high : float

    Returns
    -------
    torch.Tensor of shape (B, 1, H, W), bool
    """
    import torch
    import torch.nn.functional as F

    dtype, device = images.dtype, images.device
    k = torch.as_tensor(_gaussian_kernel(sigma), dtype=dtype, device=device)
    r = (k.numel() - 1) // 2
    _, _, h, w = images.shape

    def smooth(t):
        t = F.conv2d(F.pad(t, (r, r, 0, 0)), k.view(1, 1, 1, -1))
        return F.conv2d(F.pad(t, (0, 0, r, r)), k.view(1, 1, -1, 1))

    ones = torch.ones((1, 1, h, w), dtype=dtype, device=device)
    smoothed = smooth(images) / (smooth(ones) + torch.finfo(dtype).eps)
    p = F.pad(smoothed, (1, 1, 1, 1), mode="replicate")  # scipy "reflect" for a 1-pixel pad
    dx = p[:, :, 2:, :] - p[:, :, :-2, :]  # along rows (axis 0)
    dy = p[:, :, :, 2:] - p[:, :, :, :-2]  # along columns (axis 1)
    isobel = dx[:, :, :, :-2] + 2 * dx[:, :, :, 1:-1] + dx[:, :, :, 2:]
    jsobel = dy[:, :, :-2, :] + 2 * dy[:, :, 1:-1, :] + dy[:, :, 2:, :]
    mag = torch.sqrt(isobel * isobel + jsobel * jsobel)

    mp = F.pad(mag, (1, 1, 1, 1))

    def at(di, dj):  # magnitude[x + di, y + dj]
        return mp[:, :, 1 + di : 1 + di + h, 1 + dj : 1 + dj + w]

    ai, aj = isobel.abs(), jsobel.abs()
    is_down = isobel <= 0
    is_left = jsobel <= 0
    cond1 = is_down == is_left
    i_gt_j = ai > aj
    i_lt_j = ai < aj
    # A: cond1 & |i| > |j|; B: cond1 & not A; C: cond2 & |i| < |j|; D: cond2 & not C
    case_a = cond1 & i_gt_j
    case_b = cond1 & ~i_gt_j
    case_c = ~cond1 & i_lt_j
    # 0 / 0 gives NaN only where the magnitude is 0, which the low threshold drops.
    w_ = torch.where(case_b | case_c, ai / aj, aj / ai)

    def pick(a, b, c, d):
        return torch.where(case_a, a, torch.where(case_b, b, torch.where(case_c, c, d)))

    n11 = pick(at(1, 0), at(0, 1), at(0, 1), at(-1, 0))
    n12 = pick(at(1, 1), at(1, 1), at(-1, 1), at(-1, 1))
    n21 = pick(at(-1, 0), at(0, -1), at(0, -1), at(1, 0))
    n22 = pick(at(-1, -1), at(-1, -1), at(1, -1), at(1, -1))
    wd = w_.double()
    mdd = mag.double()
    c_plus = (n12 * w_).double() + n11.double() * (1.0 - wd) <= mdd
    c_minus = (n22 * w_).double() + n21.double() * (1.0 - wd) <= mdd
    low_t = torch.tensor(low, dtype=torch.float32).to(dtype).item() if low > 0 else 1e-14
    border = torch.zeros((h, w), dtype=torch.bool, device=device)
    border[1:-1, 1:-1] = True
    low_mask = border & (mag >= low_t) & c_plus & c_minus
    strong = low_mask & (mag >= torch.tensor(high, dtype=dtype).item())
    # Hysteresis: grow the strong pixels inside the low mask until nothing changes
    # (the 8-connected components of the low mask that hold a strong pixel).
    weak = low_mask.to(dtype)
    cur = strong.to(dtype)
    while True:
        for _ in range(8):
            cur = F.max_pool2d(cur, 3, stride=1, padding=1) * weak
        grown = F.max_pool2d(cur, 3, stride=1, padding=1) * weak
        if torch.equal(grown, cur):
            break
        cur = grown
    return cur > 0
