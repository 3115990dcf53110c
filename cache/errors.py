"""Typed errors of the cache; each message names the bad shard, field, setting or file."""

from __future__ import annotations

__all__ = [
    "CacheError",
    "CacheFormatError",
    "CacheCorruptError",
    "CacheManifestError",
    "CacheMismatchError",
    "CacheKeyError",
    "PickledArrayError",
    "UnprotectedCacheWarning",
]


class CacheError(Exception):
    """Base class of every error raised by :mod:`cache`."""


class CacheFormatError(CacheError, ValueError):
    """Arrays or a manifest that do not follow the schema."""


class CacheCorruptError(CacheError):
    """A shard whose bytes do not match the manifest (flipped byte, truncation, missing)."""


class CacheManifestError(CacheCorruptError):
    """A ``manifest.json`` edited after it was written: its integrity record does not match.

    Attributes
    ----------
    paths : list of str
        Dotted key paths of the values that were changed, added or removed
        (e.g. ``config.explainer.nsamples``, ``shards[00002-fake_a].n_samples``).
    """

    def __init__(self, message: str, paths: list[str] | None = None):
        super().__init__(message)
        self.paths = list(paths or [])


class CacheMismatchError(CacheError, ValueError):
    """Shards or caches built with different configs or models, which must not be mixed."""


class CacheKeyError(CacheError, KeyError):
    """A group or field that the cache does not hold (the message names it and what exists)."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class PickledArrayError(CacheFormatError):
    """An ``.npz`` holding object arrays, which only unpickling (running code) could read."""


class UnprotectedCacheWarning(UserWarning):
    """A cache whose manifest has no integrity record (written before it existed).

    Edits of such a manifest cannot be detected; ``defocus verify`` checks
    its shards against their arrays, and ``defocus verify --repair`` records
    the integrity of the manifest as it is now.
    """
