"""Typed errors of the cache; each message names the bad shard, field or setting."""

from __future__ import annotations

__all__ = [
    "CacheError",
    "CacheFormatError",
    "CacheCorruptError",
    "CacheMismatchError",
    "PickledArrayError",
]


class CacheError(Exception):
    """Base class of every error raised by :mod:`cache`."""


class CacheFormatError(CacheError, ValueError):
    """Arrays or a manifest that do not follow the schema."""


class CacheCorruptError(CacheError):
    """A shard whose bytes do not match the manifest (flipped byte, truncation, missing)."""


class CacheMismatchError(CacheError, ValueError):
    """Shards or caches built with different configs or models, which must not be mixed."""


class PickledArrayError(CacheFormatError):
    """An ``.npz`` holding object arrays, which only unpickling (running code) could read."""
