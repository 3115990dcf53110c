"""The cached-inference stage and its file format.

Reading (``open_cache``) and writing (``CacheWriter``) need numpy only, so a
cache can be analysed without torch. The torch side (explainers, the
extraction job) lives in :mod:`cache.explainers` and :mod:`cache.extract`,
imported on demand.

Examples
--------
>>> from cache import open_cache                       # doctest: +SKIP
>>> c = open_cache("runs/demo/cache")                  # doctest: +SKIP
>>> c.groups, c.fields, c.n_samples("real")            # doctest: +SKIP
>>> maps = c.load("defocus", group="real")             # (N, S, S) float16
>>> for shard in c.iter_shards("real"): ...            # one shard in memory at a time
>>> verify_cache("runs/demo/cache").status             # doctest: +SKIP
'complete'

``open_cache`` refuses a manifest edited after it was written
(:class:`CacheManifestError` names the edited values); ``verify_cache``
tells a complete cache from an incomplete (resumable) or corrupt one, and
``repair_cache`` moves bad files aside so that rerunning the extraction
completes it (see ``docs/reliability-cache.md``).
"""

from cache.errors import (
    CacheCorruptError,
    CacheError,
    CacheFormatError,
    CacheKeyError,
    CacheManifestError,
    CacheMismatchError,
    PickledArrayError,
    UnprotectedCacheWarning,
)
from cache.legacy import import_legacy
from cache.schema import FIELDS, FORMAT_VERSION, REQUIRED_FIELDS, FieldSpec
from cache.store import (
    Cache,
    CacheWriter,
    config_differences,
    merge_caches,
    open_cache,
)
from cache.verify import RepairResult, VerifyReport, repair_cache, verify_cache

__all__ = [
    "Cache",
    "CacheCorruptError",
    "CacheError",
    "CacheFormatError",
    "CacheKeyError",
    "CacheManifestError",
    "CacheMismatchError",
    "CacheWriter",
    "FIELDS",
    "FORMAT_VERSION",
    "FieldSpec",
    "PickledArrayError",
    "REQUIRED_FIELDS",
    "RepairResult",
    "UnprotectedCacheWarning",
    "VerifyReport",
    "config_differences",
    "import_legacy",
    "merge_caches",
    "open_cache",
    "repair_cache",
    "verify_cache",
]
