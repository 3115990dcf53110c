"""The defocus estimator's configuration: one frozen dataclass, validated once."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["DefocusConfig"]

_MODES = ("reference", "accurate")
_RANGES = ("unit", "symmetric")
_PROPAGATIONS = ("guided", "matting")
_BACKENDS = ("auto", "numpy", "torch")
_FILLS = ("median", "mean")


def _positive(name: str, value, *, integer: bool = False, allow_zero: bool = False) -> None:
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    if integer and int(value) != value:
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


def _choice(name: str, value, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


@dataclass(frozen=True)
class DefocusConfig:
    """Parameters of :func:`~detector.defocus.estimate_defocus`.

    Parameters
    ----------
    mode : {"reference", "accurate"}, default="reference"
        ``"reference"`` reproduces the paper's pipeline exactly (ALGORITHM.md
        section 1); ``"accurate"`` is the physically calibrated estimator
        (section 2) whose maps are blur sigmas in pixels.
    size : int or None, default=299
        Side of the square output maps; None keeps the input resolution.
    sigma1, sigma2 : float, default=1.5, 2.0
        The reference mode's two derivative-of-Gaussian scales
        (``sigma1 < sigma2``); the accurate mode uses ``accurate_scales``.
    radius : int, default=7
        Reference mode's guided-filter window radius (window ``2 * radius + 1``).
    eps : float, default=1e-2
        Reference mode's guided-filter regulariser.
    input_range : {"unit", "symmetric"}, default="unit"
        ``"symmetric"`` reproduces the paper's data loader, which feeds the
        pipeline ``2 * x - 1`` (Canny sees ``clip(gray, 0, 1)`` of it and the
        guide has twice the range); images passed in are still in [0, 1].
    propagation : {"guided", "matting"}, default="guided"
        How the sparse edge estimates become a dense map: the guided filter
        (the paper) or the Levin matting Laplacian solved with scipy.sparse.
    canny_sigma, canny_low, canny_high : float, default=1.5, 0.1, 0.2
        Canny smoothing and hysteresis thresholds (scikit-image semantics).
    kernel_size : int, default=11
        Side of the reference mode's derivative-of-Gaussian kernels (odd).
    max_blur : float, default=5.0
        Upper clamp of the sparse blur estimate (pixels).
    matting_lambda : float, default=1.0
        Data weight of the matting propagation ``(L + lambda D) x = lambda D s``
        (``D`` holds confidences in [0, 1] and ``L`` averages over its 3x3
        windows, so the scale differs from Zhuo & Sim's lambda of 1e-3; 1.0
        was best on the thin-lens benchmark, 1e-2 and below over-smooth).
    matting_eps : float, default=1e-5
        Regulariser of the matting Laplacian's local colour model.
    accurate_scales : tuple of float, default=(1.0, 2.0)
        Accurate mode's two Gaussian-derivative scales (pixels).

        The accurate mode's defaults were chosen on the six "tuned" scenes
        of ``benchmarks/defocus_accuracy.py`` (random searches; see
        ``docs/defocus-maps.md`` for how the held-out and unseen scenes
        were used).
    accurate_canny_low, accurate_canny_high : float, default=0.03, 0.06
        Accurate mode's Canny thresholds (lower than the paper's to keep
        weak blurred edges; their estimates are checked for consistency).
    accurate_consistency : float, default=0.25
        Largest relative disagreement between the two edge-width estimates
        (gradient ratio and log-curvature) for an edge pixel to be kept.
    accurate_isolation : float, default=1.0
        Edge widths (``sqrt(sigma^2 + s1^2)``) on each side of an edge over
        which its gradient profile must follow the blurred-step model (no
        neighbouring edge bending it); 0 disables the check.
    accurate_profile_tol : float, default=0.5
        Largest deviation from that model, as a fraction of the peak.
    accurate_intrinsic : "auto", float or None, default=None
        The camera's own in-focus blur (pixels), removed in quadrature from
        every edge estimate (defocus adds to it as ``sqrt(s_i^2 + s^2)``).
        ``"auto"`` takes the 5th percentile of the image's edge estimates,
        assuming some part of the image is in focus; None keeps the raw
        estimates.
    accurate_side_width : bool, default=True
        Take the larger of the ratio estimate and the width of the edge
        profile's wider flank (a neighbouring edge narrows one flank).
    accurate_contrast : float, default=0.0
        Contrast (gray levels in [0, 1]) at which an edge estimate's weight
        in the propagation is halved, ``C / (C + accurate_contrast)``; 0
        weighs all edges alike.
    accurate_median_radius : int, default=12
        Window radius of the median over neighbouring edge estimates.
    accurate_sigma_s, accurate_sigma_r : float, default=150.0, 1.0
        Reach (pixels) and colour scale of the guided (domain-transform) propagation.
    accurate_fill : {"median", "mean"}, default="median"
        How the guided propagation combines the estimates: ``"median"``
        places each edge estimate on both sides of its edge (see
        ``accurate_side_offset``) and takes at each pixel the weighted median
        of a domain-transform-filtered histogram of blur levels;
        ``"mean"`` is the normalised domain transform of the estimates at
        the edge pixels (the previous default).
    accurate_side_offset : float, default=4.0
        With ``accurate_fill="median"``: pixels beyond an edge's width
        (``sqrt(sigma^2 + s1^2)``) at which its estimate is placed on each side.
    accurate_bins : int, default=16
        With ``accurate_fill="median"``: histogram bins over ``[0, max_blur]``.
    accurate_density_radius : float, default=8.0
        With ``accurate_fill="median"``: each vote is weighted by one over
        the density of votes within about this many pixels (a Gaussian), so
        that densely textured areas do not outvote sparse ones; 0 disables.
    backend : {"auto", "numpy", "torch"}, default="auto"
        ``"auto"`` runs the torch implementation for CUDA tensors and the
        numpy/scipy one (faster on CPU) otherwise.
    n_threads : int or None, default=None
        Worker threads of the numpy backend; None uses ``torch.get_num_threads()``.
    """

    mode: str = "reference"
    size: int | None = 299
    sigma1: float = 1.5
    sigma2: float = 2.0
    radius: int = 7
    eps: float = 1e-2
    input_range: str = "unit"
    propagation: str = "guided"
    canny_sigma: float = 1.5
    canny_low: float = 0.1
    canny_high: float = 0.2
    kernel_size: int = 11
    max_blur: float = 5.0
    matting_lambda: float = 1.0
    matting_eps: float = 1e-5
    accurate_scales: tuple = (1.0, 2.0)
    accurate_canny_low: float = 0.03
    accurate_canny_high: float = 0.06
    accurate_consistency: float = 0.25
    accurate_isolation: float = 1.0
    accurate_profile_tol: float = 0.5
    accurate_intrinsic: str | float | None = None
    accurate_contrast: float = 0.0
    accurate_median_radius: int = 12
    accurate_side_width: bool = True
    accurate_sigma_s: float = 150.0
    accurate_sigma_r: float = 1.0
    accurate_fill: str = "median"
    accurate_side_offset: float = 4.0
    accurate_bins: int = 16
    accurate_density_radius: float = 8.0
    backend: str = "auto"
    n_threads: int | None = None

    def __post_init__(self):
        _choice("mode", self.mode, _MODES)
        _choice("input_range", self.input_range, _RANGES)
        _choice("propagation", self.propagation, _PROPAGATIONS)
        _choice("backend", self.backend, _BACKENDS)
        _choice("accurate_fill", self.accurate_fill, _FILLS)
        if self.size is not None:
            _positive("size", self.size, integer=True)
            if self.size < 8:
                raise ValueError(f"size must be at least 8 or None, got {self.size!r}")
        _positive("sigma1", self.sigma1)
        _positive("sigma2", self.sigma2)
        if not self.sigma1 < self.sigma2:
            raise ValueError(
                f"sigma1 must be smaller than sigma2, got sigma1={self.sigma1!r}, "
                f"sigma2={self.sigma2!r}"
            )
        _positive("radius", self.radius, integer=True)
        _positive("eps", self.eps)
        _positive("canny_sigma", self.canny_sigma)
        _positive("canny_low", self.canny_low, allow_zero=True)
        _positive("canny_high", self.canny_high, allow_zero=True)
        if self.canny_high < self.canny_low:
            raise ValueError(
                f"canny_high must be >= canny_low, got canny_low={self.canny_low!r}, "
                f"canny_high={self.canny_high!r}"
            )
        _positive("kernel_size", self.kernel_size, integer=True)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size!r}")
        _positive("max_blur", self.max_blur)
        _positive("matting_lambda", self.matting_lambda)
        _positive("matting_eps", self.matting_eps)
        scales = tuple(self.accurate_scales)
        if len(scales) != 2:
            raise ValueError(f"accurate_scales must hold two scales, got {self.accurate_scales!r}")
        for s in scales:
            _positive("accurate_scales", s)
        if not scales[0] < scales[1]:
            raise ValueError(f"accurate_scales must be increasing, got {self.accurate_scales!r}")
        object.__setattr__(self, "accurate_scales", tuple(float(s) for s in scales))
        _positive("accurate_canny_low", self.accurate_canny_low, allow_zero=True)
        _positive("accurate_canny_high", self.accurate_canny_high, allow_zero=True)
        _positive("accurate_consistency", self.accurate_consistency)
        _positive("accurate_median_radius", self.accurate_median_radius, integer=True,
                  allow_zero=True)  # fmt: skip
        _positive("accurate_isolation", self.accurate_isolation, allow_zero=True)
        _positive("accurate_profile_tol", self.accurate_profile_tol)
        if self.accurate_intrinsic is not None and self.accurate_intrinsic != "auto":
            _positive("accurate_intrinsic", self.accurate_intrinsic, allow_zero=True)
        _positive("accurate_contrast", self.accurate_contrast, allow_zero=True)
        _positive("accurate_sigma_s", self.accurate_sigma_s)
        _positive("accurate_sigma_r", self.accurate_sigma_r)
        _positive("accurate_side_offset", self.accurate_side_offset, allow_zero=True)
        _positive("accurate_bins", self.accurate_bins, integer=True)
        _positive("accurate_density_radius", self.accurate_density_radius, allow_zero=True)
        if self.accurate_bins < 2:
            raise ValueError(f"accurate_bins must be at least 2, got {self.accurate_bins!r}")
        if self.n_threads is not None:
            _positive("n_threads", self.n_threads, integer=True)

    def to_dict(self) -> dict:
        """Return the configuration as a plain JSON-serialisable dict."""
        return asdict(self)
