"""Memory estimates made before work starts, so that a size that cannot fit is refused in one line.

Standard library only (no torch): commands check a user's sizes against the
memory this machine has available before allocating anything, instead of
ending in a ``MemoryError`` traceback with a half-made output folder.

Examples
--------
>>> from detector.memory import require_memory
>>> require_memory(3 * 4 * 299 * 299 * 64, "a batch of 64 images at 299 px")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["InsufficientMemoryError", "available_memory", "format_bytes", "largest_fitting",
           "require_memory"]  # fmt: skip

#: Share of the available memory one job may plan to use.
DEFAULT_FRACTION = 0.8


class InsufficientMemoryError(ValueError):
    """A requested size whose estimated memory exceeds what this machine has available."""


def available_memory() -> int | None:
    """Return the bytes of memory available for new allocations, or None if unknown.

    Linux: ``MemAvailable`` of ``/proc/meminfo`` (free memory plus reclaimable
    caches). Elsewhere the free physical pages from ``os.sysconf``.
    """
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n: float) -> str:
    """Format a byte count for people: ``format_bytes(3.2e9) == '3.0 GiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def require_memory(
    nbytes: float,
    what: str,
    *,
    hint: str | None = None,
    available: int | None = None,
    fraction: float = DEFAULT_FRACTION,
) -> None:
    """Raise unless ``nbytes`` fits in ``fraction`` of the available memory.

    Parameters
    ----------
    nbytes : float
        Estimated peak bytes of the planned work.
    what : str
        What needs it, for the message (e.g. ``"--image-size 100000"``).
    hint : str, optional
        What would fit, appended to the message.
    available : int, optional
        Bytes available (default: :func:`available_memory`). Nothing is
        checked when unknown.
    fraction : float
        Share of the available memory the work may use.

    Raises
    ------
    InsufficientMemoryError
        If the estimate exceeds the budget; the message gives both figures.
    """
    available = available_memory() if available is None else available
    if available is None:
        return
    if nbytes > fraction * available:
        msg = (
            f"{what} needs about {format_bytes(nbytes)} of memory, but only "
            f"{format_bytes(available)} is available"
        )
        raise InsufficientMemoryError(msg + (f"; {hint}" if hint else ""))


def largest_fitting(
    bytes_of: Callable[[int], float],
    upper: int,
    *,
    lower: int = 1,
    available: int | None = None,
    fraction: float = DEFAULT_FRACTION,
) -> int | None:
    """Return the largest ``n`` in ``[lower, upper]`` with ``bytes_of(n)`` within budget.

    ``bytes_of`` must grow with ``n``. Returns None when even ``lower`` does
    not fit, and ``upper`` when the available memory is unknown.
    """
    available = available_memory() if available is None else available
    if available is None:
        return upper
    budget = fraction * available
    if bytes_of(lower) > budget:
        return None
    lo, hi = lower, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if bytes_of(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo
