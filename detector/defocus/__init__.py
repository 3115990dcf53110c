"""Defocus-blur maps from images: the paper's pipeline and a calibrated estimator.

>>> import torch
>>> from detector.defocus import DefocusConfig, estimate_defocus
>>> maps = estimate_defocus(torch.rand(2, 3, 64, 64), DefocusConfig(size=32))
>>> tuple(maps.defocus.shape)
(2, 1, 32, 32)

``mode="reference"`` reproduces the pipeline of "Seeing Through the Blur"
(Jeon & Woo, CIKM 2025) step by step; ``mode="accurate"`` returns blur
sigmas in pixels calibrated on step edges and thin-lens renderings.
"""

from ._config import DefocusConfig
from ._estimate import DefocusEstimator, DefocusMaps, estimate_defocus

__all__ = ["DefocusConfig", "DefocusEstimator", "DefocusMaps", "estimate_defocus"]
