"""Bilinear resizing with ``torch.nn.functional.interpolate`` semantics.

``mode="bilinear", align_corners=False`` and no antialiasing: output pixel
``i`` samples the input at ``max((i + 0.5) * in / out - 0.5, 0)``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["bilinear_matrix", "resize_bilinear_numpy"]


@lru_cache(maxsize=32)
def bilinear_matrix(n_in: int, n_out: int, dtype: str = "float32") -> np.ndarray:
    """Return the ``(n_out, n_in)`` matrix of 1-D bilinear interpolation.

    Parameters
    ----------
    n_in, n_out : int
    dtype : str, default="float32"

    Returns
    -------
    ndarray of shape (n_out, n_in)
    """
    # The weights are taken from torch itself (interpolating unit impulses), so
    # they carry torch's float32 index arithmetic bit for bit.
    import torch
    import torch.nn.functional as F

    eye = torch.eye(n_in, dtype=torch.float32)[:, None, :, None].expand(n_in, 1, n_in, 2)
    out = F.interpolate(eye.contiguous(), size=(n_out, 2), mode="bilinear", align_corners=False)
    m = out[:, 0, :, 0].T.double().numpy()
    m = m.astype(dtype)
    m.setflags(write=False)
    return m


def resize_bilinear_numpy(x: np.ndarray, size: int) -> np.ndarray:
    """Resize the last two axes to ``(size, size)`` like ``F.interpolate`` (bilinear).

    Parameters
    ----------
    x : ndarray of shape (..., H, W)
    size : int

    Returns
    -------
    ndarray of shape (..., size, size), the dtype of ``x``
    """
    h, w = x.shape[-2:]
    if h == size and w == size:
        return x
    rows = bilinear_matrix(h, size, str(x.dtype))
    cols = bilinear_matrix(w, size, str(x.dtype))
    return rows @ x @ cols.T
