"""Small input checks shared by the analysis modules; each error names the bad value."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "as_maps",
    "check_choice",
    "check_fraction",
    "check_positive_int",
    "check_same_shape",
    "check_threshold",
    "check_window",
    "require_fields",
]


def check_threshold(threshold: float, name: str = "threshold") -> float:
    """Return ``threshold`` as float when it lies in the open interval (0, 1).

    Raises
    ------
    ValueError
        When it is not a finite number in (0, 1).
    """
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in (0, 1), got {threshold!r}") from None
    if not (0.0 < value < 1.0):
        raise ValueError(f"{name} must be in (0, 1), got {threshold!r}")
    return value


def check_fraction(value: float, name: str, closed: bool = True) -> float:
    """Return ``value`` as float when it lies in [0, 1] (or (0, 1) when ``closed`` is False)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    ok = 0.0 <= out <= 1.0 if closed else 0.0 < out < 1.0
    if not ok:
        interval = "[0, 1]" if closed else "(0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return out


def check_positive_int(value: int, name: str, minimum: int = 1) -> int:
    """Return ``value`` as int when it is an integer of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_window(window: int) -> int:
    """Return ``window`` when it is an odd integer >= 1 (a centred square window)."""
    window = check_positive_int(window, "window")
    if window % 2 == 0:
        raise ValueError(f"window must be odd (a centred square window), got {window}")
    return window


def check_choice(value: str, choices: Iterable[str], name: str) -> str:
    """Return ``value`` when it is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def as_maps(maps, name: str = "maps", dtype=np.float64) -> np.ndarray:
    """Return ``maps`` as an ndarray of shape (N, H, W); a single (H, W) map gets N = 1.

    Raises
    ------
    ValueError
        When the array is not 2-D or 3-D, is empty, or holds non-finite values.
    """
    arr = np.asarray(maps)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"{name} must have shape (N, H, W) or (H, W), got {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty, got shape {arr.shape}")
    arr = arr.astype(dtype, copy=False)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds {int(np.sum(~np.isfinite(arr)))} non-finite values")
    return arr


def check_same_shape(a: np.ndarray, b: np.ndarray, names: Sequence[str]) -> None:
    """Raise ``ValueError`` naming both arrays when their shapes differ."""
    if np.shape(a) != np.shape(b):
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, "
            f"got {np.shape(a)} and {np.shape(b)}"
        )


def require_fields(cache, fields: Iterable[str]) -> list[str]:
    """Return the names among ``fields`` that ``cache.fields`` does not hold (empty: all there)."""
    have = set(cache.fields)
    return [f for f in fields if f not in have]
