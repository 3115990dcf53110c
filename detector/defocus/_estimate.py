"""``estimate_defocus``: images in, defocus maps out, on CPU threads or the GPU."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ._config import DefocusConfig

__all__ = ["DefocusMaps", "estimate_defocus", "DefocusEstimator"]


@dataclass(frozen=True, eq=False)
class DefocusMaps:
    """The estimator's outputs, each a float32 tensor of shape ``(B, 1, S, S)``.

    Attributes
    ----------
    defocus : torch.Tensor of shape (B, 1, S, S)
        Dense defocus map (blur sigma in pixels; in reference mode the
        paper's guided-filter output, which may leave [0, max_blur] slightly).
    sparse : torch.Tensor of shape (B, 1, S, S)
        Blur estimated at edge pixels, 0 elsewhere.
    edges : torch.Tensor of shape (B, 1, S, S)
        Canny edges resized to ``S`` (bilinear, so values lie in [0, 1]).
    """

    defocus: torch.Tensor
    sparse: torch.Tensor
    edges: torch.Tensor

    def to(self, device) -> DefocusMaps:
        """Return a copy with every map on ``device``."""
        return DefocusMaps(self.defocus.to(device), self.sparse.to(device), self.edges.to(device))


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(n_threads: int) -> ThreadPoolExecutor:
    with _POOLS_LOCK:
        pool = _POOLS.get(n_threads)
        if pool is None:
            pool = ThreadPoolExecutor(n_threads, thread_name_prefix="defocus")
            _POOLS[n_threads] = pool
        return pool


def _chunks(n: int, n_parts: int) -> list[slice]:
    n_parts = max(1, min(n, n_parts))
    bounds = np.linspace(0, n, n_parts + 1).round().astype(int)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def _map(fn, items, n_threads: int):
    if n_threads <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    return list(_pool(n_threads).map(fn, items))


def _check_images(images) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise ValueError(
            f"images must be a torch.Tensor or ndarray of shape (B, 3, H, W), got {type(images)}"
        )
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError("images must hold at least one image, got a batch of 0")
    if images.shape[2] < 8 or images.shape[3] < 8:
        raise ValueError(f"images must be at least 8x8 pixels, got {tuple(images.shape[2:])}")
    if not images.is_floating_point():
        raise ValueError(
            f"images must be a float tensor in [0, 1], got dtype {images.dtype} "
            "(divide uint8 images by 255)"
        )
    images = images.detach().contiguous()
    lo_t, hi_t = torch.aminmax(images)
    lo, hi = float(lo_t), float(hi_t)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("images must be finite, got NaN or infinity")
    if lo < -1e-4 or hi > 1 + 1e-4:
        raise ValueError(
            f"images must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}] "
            "(for [-1, 1] inputs pass (x + 1) / 2 and input_range='symmetric')"
        )
    return images


def _n_threads(config: DefocusConfig) -> int:
    return int(config.n_threads) if config.n_threads is not None else torch.get_num_threads()


def _use_torch(images: torch.Tensor, config: DefocusConfig) -> bool:
    if config.backend == "torch":
        return True
    if config.backend == "numpy":
        return False
    return images.device.type != "cpu"


def _reference_numpy(images: torch.Tensor, config: DefocusConfig):
    from ._kernels import AVAILABLE
    from ._reference import pipeline_gray_numpy, reference_stage1_numpy, reference_stage2_numpy

    x = images.detach().to("cpu", torch.float32).numpy()
    n_threads = _n_threads(config)
    if AVAILABLE and config.backend == "auto":
        from ._reference import reference_compiled

        return reference_compiled(x, config, lambda fn, items: _map(fn, list(items), n_threads))
    parts = _chunks(x.shape[0], n_threads)

    def stage1(sl):
        gray = pipeline_gray_numpy(x[sl], config.input_range)
        return reference_stage1_numpy(gray, config)

    first = _map(stage1, parts, n_threads)
    edge_max = max(float(edges.max()) for _, edges, _ in first)

    def stage2(item):
        gray_r, edges_r, ratio = item
        return reference_stage2_numpy(gray_r, edges_r, ratio, edge_max, config)

    second = _map(stage2, first, n_threads)
    dense = np.concatenate([d for _, d in second])
    sparse = np.concatenate([s for s, _ in second])
    edges = np.concatenate([e for _, e, _ in first])
    return dense, sparse, edges


def estimate_defocus(images, config: DefocusConfig | None = None) -> DefocusMaps:
    """Estimate defocus-blur maps of a batch of images.

    Parameters
    ----------
    images : torch.Tensor or ndarray of shape (B, 3, H, W)
        Float images in [0, 1] (a single channel, ``(B, 1, H, W)``, is accepted).
    config : DefocusConfig, optional
        Defaults to ``DefocusConfig()`` (the paper's reference pipeline, 299x299).

    Returns
    -------
    DefocusMaps
        ``defocus``, ``sparse``, ``edges``: float32 tensors of shape
        ``(B, 1, S, S)`` on the device of ``images`` (``S = config.size``,
        or ``H, W`` when ``config.size`` is None). No gradient flows.

    Raises
    ------
    ValueError
        If ``images`` is not a float batch of shape ``(B, 3, H, W)`` in [0, 1].

    Notes
    -----
    In reference mode the sparse map is weighted by the maximum of the
    resized edge maps over the whole batch (as the paper does), so a map can
    depend on the other images of its batch when that maximum is below 1.
    """
    if config is None:
        config = DefocusConfig()
    if not isinstance(config, DefocusConfig):
        raise ValueError(f"config must be a DefocusConfig, got {type(config).__name__}")
    images = _check_images(images)
    device = images.device
    with torch.no_grad():
        if config.mode == "reference":
            if _use_torch(images, config):
                from ._reference import reference_torch

                dense, sparse, edges = reference_torch(images, config)
                return DefocusMaps(dense.detach(), sparse.detach(), edges.detach())
            dense, sparse, edges = _reference_numpy(images, config)
        else:
            from ._accurate import accurate_numpy

            x = images.detach().to("cpu", torch.float32).numpy()
            n_threads = _n_threads(config)
            outs = _map(
                lambda sl: accurate_numpy(x[sl], config), _chunks(x.shape[0], n_threads), n_threads
            )
            dense = np.concatenate([o[0] for o in outs])
            sparse = np.concatenate([o[1] for o in outs])
            edges = np.concatenate([o[2] for o in outs])

    def as_tensor(a):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)[:, None]).to(device)

    return DefocusMaps(as_tensor(dense), as_tensor(sparse), as_tensor(edges))


class DefocusEstimator(torch.nn.Module):
    """A module wrapping :func:`estimate_defocus` (no parameters, no gradient).

    Parameters
    ----------
    config : DefocusConfig, optional
    """

    def __init__(self, config: DefocusConfig | None = None):
        super().__init__()
        self.config = config if config is not None else DefocusConfig()

    def forward(self, images) -> DefocusMaps:
        """Estimate the maps of ``images`` of shape (B, 3, H, W); see :func:`estimate_defocus`."""
        return estimate_defocus(images, self.config)
