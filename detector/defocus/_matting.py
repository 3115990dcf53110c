"""Propagation with the matting Laplacian of Levin, Lischinski & Weiss (2008).

The dense map ``x`` minimises ``x^T L x + lambda (x - s)^T D (x - s)``,
i.e. solves ``(L + lambda D) x = lambda D s``, where ``L`` is the matting
Laplacian of the guide image (3x3 windows, regulariser ``eps``), ``s`` the
sparse estimates and ``D`` the diagonal of their confidences. Written with
scipy.sparse (pymatting is not a dependency).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse import linalg as splinalg

__all__ = ["matting_laplacian", "matting_propagate"]


def matting_laplacian(guide: np.ndarray, eps: float = 1e-5, radius: int = 1) -> sparse.csr_matrix:
    """Build the matting Laplacian of an image (Levin et al. 2008, eq. 12).

    Parameters
    ----------
    guide : ndarray of shape (H, W) or (H, W, C)
        Image in [0, 1].
    eps : float, default=1e-5
        Regulariser of each window's colour covariance.
    radius : int, default=1
        Window radius (3x3 windows for 1).

    Returns
    -------
    scipy.sparse.csr_matrix of shape (H * W, H * W)
        Symmetric positive semi-definite; constant vectors are in its null space.
    """
    img = np.asarray(guide, dtype=np.float64)
    if img.ndim == 2:
        img = img[..., None]
    h, w, c = img.shape
    size = 2 * radius + 1
    n_win = size * size
    idx = np.arange(h * w).reshape(h, w)
    # all windows fully inside the image
    win_idx = np.lib.stride_tricks.sliding_window_view(idx, (size, size)).reshape(-1, n_win)
    win_val = img[..., :].reshape(h * w, c)[win_idx]  # (n, n_win, c)
    mu = win_val.mean(axis=1, keepdims=True)  # (n, 1, c)
    centred = win_val - mu
    cov = np.einsum("nki,nkj->nij", centred, centred) / n_win
    inv = np.linalg.inv(cov + (eps / n_win) * np.eye(c)[None])
    # affinity: (1 + (I_i - mu)^T inv (I_j - mu)) / n_win
    tmp = np.einsum("nki,nij->nkj", centred, inv)
    vals = (1.0 + np.einsum("nki,nli->nkl", tmp, centred)) / n_win  # (n, n_win, n_win)
    rows = np.repeat(win_idx, n_win, axis=1).ravel()
    cols = np.tile(win_idx, (1, n_win)).ravel()
    affinity = sparse.coo_matrix((vals.ravel(), (rows, cols)), shape=(h * w, h * w)).tocsr()
    degree = np.asarray(affinity.sum(axis=1)).ravel()
    return (sparse.diags(degree) - affinity).tocsr()


def matting_propagate(
    guide: np.ndarray,
    values: np.ndarray,
    confidence: np.ndarray,
    lam: float = 1e-3,
    eps: float = 1e-5,
) -> np.ndarray:
    """Solve ``(L + lam D) x = lam D s`` for the dense map ``x``.

    Parameters
    ----------
    guide : ndarray of shape (H, W) or (H, W, C)
        Guide image in [0, 1].
    values : ndarray of shape (H, W)
        Sparse estimates ``s``.
    confidence : ndarray of shape (H, W)
        Diagonal of ``D`` (0 where there is no estimate).
    lam : float, default=1e-3
        Data weight.
    eps : float, default=1e-5
        Matting regulariser.

    Returns
    -------
    ndarray of shape (H, W), float64
        Without any confident pixel, a constant map equal to the mean of ``values``.
    """
    values = np.asarray(values, dtype=np.float64)
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    h, w = values.shape
    if not (conf > 0).any():
        return np.full((h, w), float(values.mean()))
    lap = matting_laplacian(guide, eps=eps)
    d = sparse.diags(lam * conf)
    system = (lap + d).tocsc()
    rhs = lam * conf * values.ravel()
    x = splinalg.spsolve(system, rhs, permc_spec="MMD_AT_PLUS_A")
    return np.asarray(x, dtype=np.float64).reshape(h, w)
