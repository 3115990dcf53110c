"""One set of analysis settings, defined once and recorded in every output.

:class:`AnalysisConfig` holds every setting an analysis of a cache takes
(thresholds, bins, windows, padding, perplexities, bootstrap and permutation
counts, the inference unit, the seed). Every ``*_from_cache`` function and
:func:`analysis.summary.summarise_cache` accept ``config=`` and record
``config.to_dict()`` in their result, so figures, report, notebooks and the
demo can pass ONE object along and give the same numbers everywhere.

The defaults of the low-level functions (``bins=AnalysisConfig.bins``...)
are read from this class, so no default is written twice.

>>> from analysis.config import AnalysisConfig
>>> cfg = AnalysisConfig(n_permutations=999, seed=1)
>>> AnalysisConfig.from_dict(cfg.to_dict()) == cfg
True
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PAPER_THRESHOLDS", "PADDINGS", "UNITS", "AnalysisConfig", "resolve_config"]

#: The binary-mask thresholds of the paper's sweep, largest first.
PAPER_THRESHOLDS: tuple[float, ...] = (1e-1, 5e-2, 1e-2, 5e-3, 1e-3, 5e-4, 1e-4)
#: Border handling of the local variance: the paper's zero padding (pad counted) or reflection.
PADDINGS: tuple[str, ...] = ("zeros", "reflect")
#: Units of inference: whole videos when the cache has a ``video`` field, or single frames.
UNITS: tuple[str, ...] = ("video", "frame")


def _int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _open_unit(value, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}") from None
    if not 0.0 < out < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return out


def _floats(values, name: str) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}")
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if not out:
        raise ValueError(f"{name} must not be empty")
    return out


@dataclass(frozen=True)
class AnalysisConfig:
    """Settings of every analysis of a cache; validated on construction.

    Parameters
    ----------
    thresholds : tuple of float
        Binary-mask threshold sweep ``T``, each in (0, 1) (the paper's seven values).
    localisation_threshold : float
        ``T`` of the binary defocus mask used as a localisation region, in (0, 1).
    window : int
        Side of the local-variance window, odd (15 in the paper).
    padding : {"zeros", "reflect"}
        Local-variance border handling: ``"zeros"`` is the paper's (a zero
        pad counted in the window mean, as ``avg_pool2d``); ``"reflect"``
        mirrors the map about its edge pixel (the edge not repeated).
    bins : int
        Alignment histogram bins on [0, 1] (20 in the paper).
    perplexities : tuple of float
        t-SNE perplexity sweep.
    n_per_class : int
        Reals and fakes embedded.
    n_boot : int
        Bootstrap resamples of every confidence interval.
    n_permutations : int
        Permutations (or sign flips) of every permutation test; a p-value
        from ``n`` permutations is at least ``1 / (n + 1)``, so the default
        999 can reach p = 0.001.
    null_samples : int
        Pairs per group used by the shuffled-attribution null of the
        alignment score (0: no such null).
    confidence : float
        Level of every confidence interval, in (0, 1).
    unit : {"video", "frame"}
        Unit of inference: ``"video"`` resamples and tests whole videos
        whenever the cache has a ``video`` field (frames of one video are not
        independent), ``"frame"`` treats every frame as independent.
        Frame-level numbers are always computed too, labelled as such.
    sanity_threshold : float
        Median Spearman correlation of ``|attribution|`` between the trained
        and the fully re-initialised model above which the model-randomisation
        check flags the attributions as barely depending on the weights.
    seed : int
        Seed of every random step (bootstrap, permutations, embeddings).
    """

    thresholds: tuple[float, ...] = PAPER_THRESHOLDS
    localisation_threshold: float = 0.1
    window: int = 15
    padding: str = "zeros"
    bins: int = 20
    perplexities: tuple[float, ...] = (5.0, 10.0, 20.0, 40.0)
    n_per_class: int = 1000
    n_boot: int = 1000
    n_permutations: int = 999
    null_samples: int = 128
    confidence: float = 0.95
    unit: str = "video"
    sanity_threshold: float = 0.5
    seed: int = 0

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "thresholds", _floats(self.thresholds, "thresholds"))
        for t in self.thresholds:
            _open_unit(t, "every threshold")
        set_(
            self,
            "localisation_threshold",
            _open_unit(self.localisation_threshold, "localisation_threshold"),
        )
        set_(self, "window", _int(self.window, "window", 1))
        if self.window % 2 == 0:
            raise ValueError(f"window must be odd (a centred square window), got {self.window}")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {list(PADDINGS)}, got {self.padding!r}")
        set_(self, "bins", _int(self.bins, "bins", 1))
        set_(self, "perplexities", _floats(self.perplexities, "perplexities"))
        if not all(p > 0 and math.isfinite(p) for p in self.perplexities):
            raise ValueError(f"perplexities must be positive, got {list(self.perplexities)}")
        set_(self, "n_per_class", _int(self.n_per_class, "n_per_class", 2))
        set_(self, "n_boot", _int(self.n_boot, "n_boot", 1))
        set_(self, "n_permutations", _int(self.n_permutations, "n_permutations", 1))
        set_(self, "null_samples", _int(self.null_samples, "null_samples", 0))
        set_(self, "confidence", _open_unit(self.confidence, "confidence"))
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {list(UNITS)}, got {self.unit!r}")
        try:
            st = float(self.sanity_threshold)
        except (TypeError, ValueError):
            raise ValueError(
                f"sanity_threshold must be a number in (-1, 1), got {self.sanity_threshold!r}"
            ) from None
        if not -1.0 < st < 1.0:
            raise ValueError(f"sanity_threshold must be in (-1, 1), got {self.sanity_threshold!r}")
        set_(self, "sanity_threshold", st)
        set_(self, "seed", _int(self.seed, "seed", 0))

    @property
    def min_pvalue(self) -> float:
        """Smallest p-value a permutation test with these settings can give, ``1 / (n + 1)``."""
        return 1.0 / (self.n_permutations + 1)

    def replace(self, **changes) -> AnalysisConfig:
        """Return a copy with ``changes`` applied (validated; unknown names raise ValueError)."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise ValueError(f"unknown analysis settings {unknown}; known: {names}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Return every setting as a JSON-ready dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["thresholds"] = list(self.thresholds)
        out["perplexities"] = list(self.perplexities)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisConfig:
        """Build a config from :meth:`to_dict` output; missing keys take their defaults.

        Raises
        ------
        ValueError
            On an unknown key (named) or an invalid value.
        """
        if not isinstance(data, dict):
            raise ValueError(f"an analysis config must be a dict, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown analysis settings {unknown}; known: {sorted(names)}")
        return cls(**data)


def resolve_config(config: AnalysisConfig | dict | None = None, **overrides) -> AnalysisConfig:
    """Return ``config`` (default ``AnalysisConfig()``) with the non-None ``overrides`` applied.

    The ``*_from_cache`` functions keep their historical keyword arguments
    (``window=``, ``n_boot=``...): an argument given explicitly wins over
    the config, and ``None`` means "take it from the config".

    Parameters
    ----------
    config : AnalysisConfig or dict, optional
        A config, or its :meth:`AnalysisConfig.to_dict` form.
    **overrides
        Settings by name; ``None`` values are ignored.

    Returns
    -------
    AnalysisConfig
    """
    if config is None:
        config = AnalysisConfig()
    elif isinstance(config, dict):
        config = AnalysisConfig.from_dict(config)
    elif not isinstance(config, AnalysisConfig):
        raise ValueError(f"config must be an AnalysisConfig or a dict, got {type(config).__name__}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return config.replace(**changes) if changes else config
