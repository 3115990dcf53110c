"""Derivative-of-Gaussian gradients as the paper computes them (11x11, zero padding)."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = ["dog_kernels_1d", "dog_kernels_2d", "dog_magnitude_numpy", "dog_magnitude_torch"]


def dog_kernels_1d(sigma: float, size: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Return the separable factors of the paper's derivative-of-Gaussian kernels.

    ``gx(x, y) = -x / (2 pi s^4) exp(-(x^2 + y^2) / (2 s^2)) = d(x) g(y)`` with
    ``d(c) = -c exp(-c^2 / (2 s^2)) / (2 pi s^4)`` and ``g(c) = exp(-c^2 / (2 s^2))``.

    Parameters
    ----------
    sigma : float
        Scale ``s`` in pixels.
    size : int, default=11
        Kernel length (odd); coordinates ``c = -(size // 2) .. size // 2``.

    Returns
    -------
    d : ndarray of shape (size,), float64
        Derivative factor.
    g : ndarray of shape (size,), float64
        Unnormalised Gaussian factor.
    """
    c = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(c**2) / (2.0 * sigma**2))
    d = -c * g / (2.0 * math.pi * sigma**4)
    return d, g


def dog_kernels_2d(sigma: float, size: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Return the paper's 2-D kernels ``gx`` (x along rows) and ``gy`` (y along columns).

    Returns
    -------
    gx, gy : ndarray of shape (size, size), float64
    """
    d, g = dog_kernels_1d(sigma, size)
    return np.outer(d, g), np.outer(g, d)


def dog_magnitude_numpy(gray: np.ndarray, sigma: float, size: int = 11) -> np.ndarray:
    """Gradient magnitude ``sqrt(gx^2 + gy^2)`` by separable 1-D correlations.

    Equal (up to rounding) to ``F.conv2d`` with the 2-D kernels and zero
    padding ``size // 2``.

    Parameters
    ----------
    gray : ndarray of shape (..., H, W)
        Float images.
    sigma : float
    size : int, default=11

    Returns
    -------
    ndarray of the shape and dtype of ``gray``
    """
    d, g = dog_kernels_1d(sigma, size)
    kw = dict(mode="constant", cval=0.0)
    gx = ndimage.correlate1d(ndimage.correlate1d(gray, g, axis=-1, **kw), d, axis=-2, **kw)
    gy = ndimage.correlate1d(ndimage.correlate1d(gray, g, axis=-2, **kw), d, axis=-1, **kw)
    np.multiply(gx, gx, out=gx)
    gx += gy * gy
    return np.sqrt(gx, out=gx)


def dog_magnitude_torch(gray, sigmas, size: int = 11):
    """Gradient magnitudes at several scales with one dense ``conv2d`` (GPU path).

    Parameters
    ----------
    gray : torch.Tensor of shape (B, 1, H, W)
    sigmas : sequence of float
    size : int, default=11

    Returns
    -------
    torch.Tensor of shape (B, len(sigmas), H, W)
    """
    import torch
    import torch.nn.functional as F

    kernels = []
    for s in sigmas:
        gx, gy = dog_kernels_2d(s, size)
        kernels += [gx, gy]
    weight = torch.as_tensor(np.stack(kernels)[:, None], dtype=gray.dtype, device=gray.device)
    out = F.conv2d(gray, weight, padding=size // 2)
    out = out.view(out.shape[0], len(sigmas), 2, *out.shape[2:])
    return torch.sqrt(out[:, :, 0] ** 2 + out[:, :, 1] ** 2)
