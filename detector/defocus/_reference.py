"""The paper's defocus pipeline (docs/algorithm.md section 1), numpy and torch backends."""

from __future__ import annotations

import numpy as np

from ._canny import canny_numpy, canny_torch
from ._config import DefocusConfig
from ._gradients import dog_magnitude_numpy, dog_magnitude_torch
from ._guided import guided_filter_numpy, guided_filter_torch
from ._resize import resize_bilinear_numpy

__all__ = [
    "pipeline_gray_numpy",
    "reference_stage1_numpy",
    "reference_stage2_numpy",
    "sparse_from_ratio",
    "reference_torch",
]


def pipeline_gray_numpy(images: np.ndarray, input_range: str) -> np.ndarray:
    """Return the gray image the pipeline sees: channel mean of ``x`` or of ``2x - 1``.

    Parameters
    ----------
    images : ndarray of shape (n, C, H, W), float32 in [0, 1]
    input_range : {"unit", "symmetric"}

    Returns
    -------
    ndarray of shape (n, H, W), float32
    """
    if input_range == "symmetric":
        images = (images - np.float32(0.5)) / np.float32(0.5)
    return images.mean(axis=1, dtype=np.float32)


def reference_stage1_numpy(gray: np.ndarray, config: DefocusConfig):
    """Edges, resized gray and edges, and the gradient ratio ``R = m1 / (m2 + 1e-8)``.

    Parameters
    ----------
    gray : ndarray of shape (n, H, W), float32
    config : DefocusConfig

    Returns
    -------
    gray_r, edges_r, ratio : ndarray of shape (n, S, S), float32
    """
    edges = canny_numpy(
        np.clip(gray, 0.0, 1.0), config.canny_sigma, config.canny_low, config.canny_high
    ).astype(np.float32)
    if config.size is not None:
        gray = resize_bilinear_numpy(gray, config.size)
        edges = resize_bilinear_numpy(edges, config.size)
    m1 = dog_magnitude_numpy(gray, config.sigma1, config.kernel_size)
    m2 = dog_magnitude_numpy(gray, config.sigma2, config.kernel_size)
    m2 += np.float32(1e-8)
    m1 /= m2
    return gray, edges, m1


def sparse_from_ratio(ratio, sigma1: float, sigma2: float, max_blur: float):
    """Closed-form blur from the gradient ratio, with the paper's clamps.

    ``sqrt(clamp((R^2 s1^2 - s2^2) / (1 - R^2 + 1e-8), min=0))``, NaN to 0,
    clamped to at most ``max_blur``. Works on numpy arrays and torch tensors.

    Parameters
    ----------
    ratio : ndarray or torch.Tensor of any shape
    sigma1, sigma2, max_blur : float

    Returns
    -------
    the type and shape of ``ratio``
    """
    r2 = ratio * ratio
    val = (r2 * (sigma1**2) - sigma2**2) / (1.0 - r2 + 1e-8)
    if isinstance(ratio, np.ndarray):
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            out = np.sqrt(np.maximum(val, 0))
        out = np.nan_to_num(out, nan=0.0, posinf=max_blur)
        return np.minimum(out, np.asarray(max_blur, dtype=out.dtype))
    import torch

    out = torch.sqrt(torch.clamp(val, min=0))
    out = torch.nan_to_num(out, nan=0.0, posinf=max_blur)
    return torch.clamp(out, max=max_blur)


def reference_stage2_numpy(gray_r, edges_r, ratio, edge_max: float, config: DefocusConfig):
    """Edge weighting by the batch maximum, closed-form blur and guided filter.

    Parameters
    ----------
    gray_r, edges_r, ratio : ndarray of shape (n, S, S), float32
    edge_max : float
        Maximum of the resized edge maps over the whole batch.
    config : DefocusConfig

    Returns
    -------
    sparse, dense : ndarray of shape (n, S, S), float32
    """
    ratio = ratio * edges_r / np.float32(edge_max + 1e-8)
    sparse = sparse_from_ratio(ratio, config.sigma1, config.sigma2, config.max_blur)
    sparse = sparse.astype(np.float32, copy=False)
    if config.propagation == "guided":
        dense = guided_filter_numpy(gray_r, sparse, config.radius, config.eps)
    else:
        from ._matting import matting_propagate

        conf = (sparse > 0).astype(np.float32)
        dense = np.stack(
            [
                matting_propagate(g, s, c, config.matting_lambda, config.matting_eps)
                for g, s, c in zip(gray_r, sparse, conf, strict=True)
            ]
        )
    return sparse, dense.astype(np.float32, copy=False)


def reference_torch(images, config: DefocusConfig):
    """Run the whole reference pipeline in torch, on the images' device (GPU path).

    Parameters
    ----------
    images : torch.Tensor of shape (B, C, H, W), float in [0, 1]
    config : DefocusConfig

    Returns
    -------
    defocus, sparse, edges : torch.Tensor of shape (B, 1, S, S), float32
    """
    import torch
    import torch.nn.functional as F

    x = images.float()
    if config.input_range == "symmetric":
        x = (x - 0.5) / 0.5
    gray = x.mean(dim=1, keepdim=True)
    edges = canny_torch(
        gray.clamp(0, 1), config.canny_sigma, config.canny_low, config.canny_high
    ).float()
    if config.size is not None:
        size = (config.size, config.size)
        gray = F.interpolate(gray, size=size, mode="bilinear", align_corners=False)
        edges = F.interpolate(edges, size=size, mode="bilinear", align_corners=False)
    mags = dog_magnitude_torch(gray, [config.sigma1, config.sigma2], config.kernel_size)
    ratio = mags[:, :1] / (mags[:, 1:] + 1e-8)
    ratio = ratio * edges / (edges.max() + 1e-8)
    sparse = sparse_from_ratio(ratio, config.sigma1, config.sigma2, config.max_blur)
    if config.propagation == "guided":
        dense = guided_filter_torch(gray, sparse, config.radius, config.eps)
    else:
        g = gray[:, 0].cpu().numpy()
        s = sparse[:, 0].cpu().numpy()
        from ._matting import matting_propagate

        dense = np.stack(
            [
                matting_propagate(
                    gi, si, (si > 0).astype(np.float32), config.matting_lambda, config.matting_eps
                )
                for gi, si in zip(g, s, strict=True)
            ]
        )
        dense = torch.as_tensor(dense, device=gray.device)[:, None]
    return dense.float(), sparse.float(), edges.float()


def reference_compiled(x: np.ndarray, config: DefocusConfig, map_fn):
    """Run the reference pipeline with the compiled per-image kernels (CPU fast path).

    Parameters
    ----------
    x : ndarray of shape (B, C, H, W), float32 in [0, 1]
    config : DefocusConfig
    map_fn : callable
        ``map_fn(function, items) -> list``, e.g. a thread pool's map.

    Returns
    -------
    dense, sparse, edges : ndarray of shape (B, S, S), float32
    """
    from ._canny import _gaussian_kernel
    from ._gradients import dog_kernels_1d
    from ._kernels import canny_image, dog_ratio_image, gray_image, sparse_guided_image

    n = x.shape[0]
    h, w = x.shape[2:]
    sh, sw = (config.size, config.size) if config.size is not None else (h, w)
    gray_r = np.empty((n, sh, sw), dtype=np.float32)
    edges_r = np.empty((n, sh, sw), dtype=np.float32)
    ratio = np.empty((n, sh, sw), dtype=np.float32)
    sparse = np.empty((n, sh, sw), dtype=np.float32)
    dense = np.empty((n, sh, sw), dtype=np.float32)
    gauss = _gaussian_kernel(config.canny_sigma)
    d1, g1 = dog_kernels_1d(config.sigma1, config.kernel_size)
    d2, g2 = dog_kernels_1d(config.sigma2, config.kernel_size)

    symmetric = config.input_range == "symmetric"
    native = config.size is None or (h == config.size and w == config.size)

    def stage1(i):
        gray = gray_r[i] if native else np.empty((h, w), dtype=np.float32)
        edges = edges_r[i] if native else np.empty((h, w), dtype=np.float32)
        clipped = np.empty((h, w), dtype=np.float32)
        gray_image(np.ascontiguousarray(x[i]), symmetric, gray, clipped)
        canny_image(clipped, gauss, config.canny_low, config.canny_high, edges)
        if not native:
            gray_r[i] = resize_bilinear_numpy(gray, config.size)
            edges_r[i] = resize_bilinear_numpy(edges, config.size)
        dog_ratio_image(gray_r[i], d1, g1, d2, g2, ratio[i])
        return float(edges_r[i].max())

    edge_max = max(map_fn(stage1, range(n)))
    denom = float(np.float32(edge_max) + np.float32(1e-8))

    def stage2(i):
        sparse_guided_image(
            gray_r[i], edges_r[i], ratio[i], denom, config.sigma1, config.sigma2,
            config.max_blur, config.radius, config.eps, sparse[i], dense[i],
        )  # fmt: skip

    if config.propagation == "guided":
        map_fn(stage2, range(n))
    else:
        sparse, dense = reference_stage2_numpy(gray_r, edges_r, ratio, edge_max, config)
    return dense, sparse, edges_r
