"""Reading, writing, verifying and merging caches (numpy only, no torch).

A cache is a folder::

    manifest.json          format, config (compared), info, sizes, shards, failures
    shards/<name>.npz      plain arrays of ONE group (see :mod:`cache.schema`)

Writing is atomic (temporary file, flush, fsync, rename) and shards are
byte-reproducible (fixed zip timestamps), so the same samples computed twice
give the same sha256. The manifest is updated under a file lock, so several
processes (job-array tasks, Dask workers) may add shards to one folder.
Reading never unpickles: every shard is loaded with ``allow_pickle=False``
after its sha256 is checked against the manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cache.errors import (
    CacheCorruptError,
    CacheError,
    CacheFormatError,
    CacheMismatchError,
    PickledArrayError,
)
from cache.schema import FIELDS, FORMAT_NAME, FORMAT_VERSION, REQUIRED_FIELDS, validate_arrays
from safeio import atomic_write_bytes

__all__ = [
    "Cache",
    "CacheWriter",
    "VerifyReport",
    "open_cache",
    "merge_caches",
    "config_differences",
    "read_npz",
    "read_npz_bytes",
    "sha256_bytes",
    "sha256_file",
]

MANIFEST = "manifest.json"
SHARD_DIR = "shards"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


# --------------------------------------------------------------------------- helpers


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of the file at ``path``, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _jsonable(obj):
    """``json.dumps`` default: numpy scalars/arrays, paths and tuples become JSON values."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"value of type {type(obj).__name__} cannot go into a cache manifest")


def _normalise(obj) -> dict:
    """Round-trip through JSON so that tuples, numpy scalars and keys compare as stored."""
    return json.loads(json.dumps(obj, sort_keys=True, default=_jsonable))


def config_differences(a, b, prefix: str = "") -> list[str]:
    """List the settings in which two (nested) configs differ.

    Parameters
    ----------
    a, b : dict or JSON value
        The two configs (compared after a JSON round-trip).
    prefix : str
        Dotted path of ``a`` and ``b`` inside their parents.

    Returns
    -------
    list of str
        One entry ``"path: A != B"`` per difference; empty when equal.
    """
    if prefix == "":
        a, b = _normalise(a), _normalise(b)
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in a:
                out.append(f"{path}: <absent> != {_short(b[key])}")
            elif key not in b:
                out.append(f"{path}: {_short(a[key])} != <absent>")
            else:
                out += config_differences(a[key], b[key], path)
        return out
    if a != b:
        return [f"{prefix or '<config>'}: {_short(a)} != {_short(b)}"]
    return []


def _short(value, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Serialise arrays as an uncompressed ``.npz`` with fixed timestamps (reproducible bytes).

    Parameters
    ----------
    arrays : dict of str to ndarray
        Plain (non-object) arrays.

    Returns
    -------
    bytes
        The file content; ``numpy.load`` reads it back.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, arr in arrays.items():
            if arr.dtype == object:
                raise CacheFormatError(f"field {key!r} is an object array; refusing to write it")
            info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def read_npz_bytes(
    data: bytes, where: str, fields: Iterable[str] | None = None
) -> dict[str, np.ndarray]:
    """Load arrays from ``.npz`` bytes without ever unpickling (see :func:`read_npz`)."""
    return read_npz(io.BytesIO(data), where, fields)


def read_npz(source, where: str, fields: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Load arrays from an ``.npz`` file or file object without ever unpickling.

    Only the requested members are decompressed.

    Parameters
    ----------
    source : path or binary file object
        The ``.npz`` file.
    where : str
        Name of the file, used in error messages.
    fields : iterable of str, optional
        Only these keys (default: all).

    Returns
    -------
    dict of str to ndarray

    Raises
    ------
    PickledArrayError
        If a requested array is an object array (it would need unpickling).
    CacheCorruptError
        If the bytes are not a readable ``.npz``.
    """
    try:
        with np.load(source, allow_pickle=False) as npz:
            keys = list(npz.files) if fields is None else list(fields)
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise CacheFormatError(f"{where}: fields {missing} are not in this shard")
            return {k: npz[k] for k in keys}
    except CacheError:
        raise
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise PickledArrayError(
                f"{where} holds object arrays, which only unpickling could read; unpickling runs "
                "code from the file. If you trust it (e.g. the paper's own files) convert it with "
                "'defocus import-legacy --trust-pickle'"
            ) from err
        raise CacheCorruptError(f"{where} is not a readable .npz: {err}") from err
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise CacheCorruptError(f"{where} is not a readable .npz: {err}") from err


@contextlib.contextmanager
def _locked(folder: Path):
    """Hold an exclusive lock on ``folder/.lock`` (POSIX ``flock``; no-op elsewhere)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(folder / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CacheCorruptError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise CacheFormatError(f"{path} is not a {FORMAT_NAME} manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CacheFormatError(
            f"{path} has format version {version!r}; this reader knows up to {FORMAT_VERSION}"
        )
    return manifest


def _write_manifest(folder: Path, manifest: dict) -> None:
    manifest = dict(manifest)
    manifest["shards"] = sorted(manifest["shards"], key=lambda e: e["name"])
    manifest["failed"] = sorted(
        [f for e in manifest["shards"] for f in e.get("failed", [])]
        + manifest.get("failed_unassigned", []),
        key=lambda f: (f.get("group", ""), f["id"]),
    )
    text = json.dumps(manifest, indent=1, sort_keys=False, default=_jsonable)
    atomic_write_bytes(folder / MANIFEST, (text + "\n").encode())


def _new_manifest(config: dict, info: dict) -> dict:
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": config,
        "info": info,
        "sizes": {},
        "fields": [],
        "shards": [],
        "failed": [],
        "failed_unassigned": [],
    }


def shard_name(text: str) -> str:
    """Return a file-system-safe shard name made from ``text``."""
    name = _NAME_RE.sub("_", str(text)).strip("._")
    if not name:
        raise ValueError(f"shard name must contain a letter or digit, got {text!r}")
    return name


# --------------------------------------------------------------------------- writing


class CacheWriter:
    """Add shards to a cache folder, creating it when needed.

    Parameters
    ----------
    path : str or path-like
        The cache folder.
    config : dict, optional
        Everything that determines the content (extraction settings, explainer
        and its parameters and seed, model and data fingerprints). Stored in
        the manifest; when the folder already holds a cache, its config must
        be equal, otherwise :class:`CacheMismatchError` names the differences.
        ``None`` adopts the existing config (or ``{}`` for a new cache).
    info : dict, optional
        Descriptive metadata not compared (software versions, dataset
        description, command line). For an existing cache only keys it does
        not hold yet are added, so resuming leaves the manifest unchanged.

    Examples
    --------
    >>> w = CacheWriter(tmp / "cache", config={"explainer": "none"})  # doctest: +SKIP
    >>> w.write_shard("real", {"id": ids, "group": ["real"] * n, "label": zeros,
    ...                        "pair_id": [""] * n, "defocus": maps})  # doctest: +SKIP
    """

    def __init__(self, path, config: dict | None = None, info: dict | None = None):
        self.path = Path(path)
        if self.path.suffix == ".npz":
            raise CacheFormatError(f"a cache is a folder, got a .npz file name: {self.path}")
        if self.path.exists() and not self.path.is_dir():
            raise CacheFormatError(f"{self.path} exists and is not a folder")
        (self.path / SHARD_DIR).mkdir(parents=True, exist_ok=True)
        with _locked(self.path):
            manifest = _read_manifest(self.path)
            if manifest is None:
                manifest = _new_manifest(_normalise(config or {}), _normalise(info or {}))
            else:
                if config is not None:
                    diffs = config_differences(manifest["config"], config)
                    if diffs:
                        raise CacheMismatchError(
                            f"{self.path} was built with a different config; refusing to mix. "
                            "Differences (existing != new): " + "; ".join(diffs[:10])
                        )
                if info:  # entries of the first run stay: resuming leaves the manifest as it was
                    manifest["info"] = {**_normalise(info), **manifest.get("info", {})}
            _write_manifest(self.path, manifest)
        self.config = manifest["config"]

    # -- queries ----------------------------------------------------------------------

    def manifest(self) -> dict:
        """Return the manifest as currently on disk."""
        return _read_manifest(self.path)

    def entry(self, name: str) -> dict | None:
        """Return the manifest entry of shard ``name``, or ``None``."""
        for e in self.manifest()["shards"]:
            if e["name"] == name:
                return e
        return None

    def has_valid_shard(self, name: str) -> bool:
        """Whether shard ``name`` is recorded and its file matches the recorded sha256."""
        e = self.entry(name)
        if e is None:
            return False
        if e.get("file") is None:  # every sample failed: nothing to check
            return e.get("n_samples", 0) == 0
        path = self.path / e["file"]
        return (
            path.exists() and path.stat().st_size == e["bytes"] and sha256_file(path) == e["sha256"]
        )

    # -- writing ----------------------------------------------------------------------

    def write_shard(
        self,
        group: str,
        arrays: dict | None,
        name: str | None = None,
        failed: Iterable[tuple[str, str]] = (),
    ) -> dict:
        """Validate and atomically write one shard, then record it in the manifest.

        Parameters
        ----------
        group : str
            The group every sample of the shard belongs to.
        arrays : dict of str to array-like or None
            Field name to array with the sample axis first; see
            :data:`cache.schema.FIELDS`. ``None`` records a shard whose
            samples all failed (no file is written).
        name : str, optional
            Shard name (file ``shards/<name>.npz``); rewriting a name replaces
            that shard. Default: ``<k>-<group>`` with ``k`` the number of shards so
            far (so groups keep the order in which they were written).
        failed : iterable of (id, reason)
            Samples of this shard that could not be processed.

        Returns
        -------
        dict
            The manifest entry (name, file, group, n_samples, sha256, bytes, failed).

        Raises
        ------
        CacheFormatError
            If the arrays do not follow the schema or use other sizes
            (``S``, ``D``, ...) or another field set than earlier shards.
        """
        if not isinstance(group, str) or not group:
            raise CacheFormatError(f"group must be a non-empty string, got {group!r}")
        failed = [{"id": str(i), "group": group, "reason": str(r)} for i, r in failed]
        manifest = self.manifest()
        if arrays is not None:
            clean, sizes = validate_arrays(arrays, group=group, sizes=manifest["sizes"])
            fields = list(clean)
            if manifest["fields"] and fields != manifest["fields"]:
                raise CacheFormatError(
                    f"every shard of a cache holds the same fields: this cache has "
                    f"{manifest['fields']}, the new shard {fields}"
                )
            data = npz_bytes(clean)
        if name is None:
            taken = {e["name"] for e in manifest["shards"]}
            k = len(taken)
            while f"{k:05d}-{shard_name(group)}" in taken:
                k += 1
            name = f"{k:05d}-{shard_name(group)}"
        elif shard_name(name) != name:
            raise CacheFormatError(f"shard name may hold only [A-Za-z0-9._-], got {name!r}")
        entry = {"name": name, "group": group, "file": None, "n_samples": 0, "failed": failed}
        if arrays is not None:
            rel = f"{SHARD_DIR}/{name}.npz"
            atomic_write_bytes(self.path / rel, data)
            entry.update(
                file=rel,
                n_samples=int(len(clean["id"])),
                sha256=sha256_bytes(data),
                bytes=len(data),
                first_id=str(clean["id"][0]),
            )
        with _locked(self.path):
            manifest = self.manifest()
            if arrays is not None:
                # re-check against shards other writers may have added meanwhile
                _, sizes = validate_arrays(
                    {k: clean[k][:1] for k in clean}, group=group, sizes=manifest["sizes"]
                )
                if manifest["fields"] and fields != manifest["fields"]:
                    raise CacheFormatError(
                        f"every shard of a cache holds the same fields: this cache has "
                        f"{manifest['fields']}, the new shard {fields}"
                    )
                manifest["sizes"] = sizes
                manifest["fields"] = fields
            manifest["shards"] = [e for e in manifest["shards"] if e["name"] != name] + [entry]
            _write_manifest(self.path, manifest)
        return entry

    def add_failed(self, sample_id: str, reason: str, group: str = "") -> None:
        """Record a sample that belongs to no shard as failed, with the reason."""
        with _locked(self.path):
            manifest = self.manifest()
            manifest.setdefault("failed_unassigned", []).append(
                {"id": str(sample_id), "group": str(group), "reason": str(reason)}
            )
            _write_manifest(self.path, manifest)

    def update_info(self, **info) -> None:
        """Merge descriptive entries into the manifest's ``info`` (not compared)."""
        with _locked(self.path):
            manifest = self.manifest()
            manifest["info"] = {**manifest.get("info", {}), **_normalise(info)}
            _write_manifest(self.path, manifest)

    def remove_shards_not_in(self, names: Iterable[str]) -> list[str]:
        """Drop manifest entries (and files) of shards whose names are not in ``names``."""
        keep = set(names)
        with _locked(self.path):
            manifest = self.manifest()
            dropped = [e for e in manifest["shards"] if e["name"] not in keep]
            manifest["shards"] = [e for e in manifest["shards"] if e["name"] in keep]
            _write_manifest(self.path, manifest)
        for e in dropped:
            if e.get("file"):
                with contextlib.suppress(OSError):
                    os.unlink(self.path / e["file"])
        return [e["name"] for e in dropped]

    def open(self) -> Cache:
        """Open the cache as written so far, for reading."""
        return Cache(self.path)


# --------------------------------------------------------------------------- reading


@dataclass
class VerifyReport:
    """Outcome of :meth:`Cache.verify`; true when every shard is intact.

    Attributes
    ----------
    n_shards : int
        Shards checked.
    n_samples : int
        Samples in the intact shards.
    problems : list of str
        One line per problem, each naming the shard.
    """

    n_shards: int = 0
    n_samples: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    def __bool__(self) -> bool:
        return self.ok

    def raise_if_bad(self) -> None:
        """Raise :class:`CacheCorruptError` listing the problems, if any."""
        if self.problems:
            raise CacheCorruptError("; ".join(self.problems))


class Cache:
    """Read access to a cache folder (see :func:`open_cache`).

    Attributes
    ----------
    path : pathlib.Path
        The folder.
    manifest : dict
        The parsed ``manifest.json``.
    """

    def __init__(self, path):
        path = Path(path)
        if path.name == MANIFEST:
            path = path.parent
        if path.suffix == ".npz" and path.is_file():
            raise CacheFormatError(
                f"{path} is a single .npz file, not a cache folder; if it is one of the paper's "
                "pickled files convert it with 'defocus import-legacy --trust-pickle'"
            )
        if not path.is_dir():
            raise CacheFormatError(f"no cache folder at {path}")
        manifest = _read_manifest(path)
        if manifest is None:
            raise CacheFormatError(f"{path} holds no {MANIFEST}; it is not a cache")
        self.path = path
        self.manifest = manifest
        # shard name -> (size, mtime_ns) of the file when its sha256 was last checked
        self._verified: dict[str, tuple[int, int]] = {}

    # -- description ------------------------------------------------------------------

    @property
    def config(self) -> dict:
        """The extraction config the cache was built with."""
        return self.manifest["config"]

    @property
    def info(self) -> dict:
        """Descriptive metadata (software versions, dataset description...)."""
        return self.manifest.get("info", {})

    @property
    def shards(self) -> list[dict]:
        """Manifest entries of the shards that hold samples, in name order."""
        return [e for e in self.manifest["shards"] if e.get("file")]

    @property
    def groups(self) -> list[str]:
        """Groups in the order of their first shard."""
        out: list[str] = []
        for e in self.shards:
            if e["group"] not in out:
                out.append(e["group"])
        return out

    @property
    def fields(self) -> list[str]:
        """Fields every shard holds, in schema order."""
        return list(self.manifest.get("fields", []))

    @property
    def sizes(self) -> dict[str, int]:
        """Sizes of the schema symbols (``S``, ``R``, ``D``, ``D2``) in this cache."""
        return dict(self.manifest.get("sizes", {}))

    @property
    def failed(self) -> list[dict]:
        """Samples that could not be processed: dicts with ``id``, ``group``, ``reason``."""
        return list(self.manifest.get("failed", []))

    def n_samples(self, group: str | None = None) -> int:
        """Count the samples (of ``group``, or of all groups)."""
        self._check_group(group)
        return sum(e["n_samples"] for e in self.shards if group is None or e["group"] == group)

    def __len__(self) -> int:
        return self.n_samples()

    def __repr__(self) -> str:
        return (
            f"Cache({str(self.path)!r}, groups={self.groups}, n_samples={self.n_samples()}, "
            f"fields={self.fields})"
        )

    def _check_group(self, group: str | None) -> None:
        if group is not None and group not in self.groups:
            raise KeyError(f"group {group!r} is not in this cache; it has {self.groups}")

    def _check_fields(self, fields: Iterable[str]) -> list[str]:
        fields = [fields] if isinstance(fields, str) else list(fields)
        bad = [f for f in fields if f not in self.fields]
        if bad:
            raise KeyError(f"fields {bad} are not in this cache; it has {self.fields}")
        return fields

    # -- reading ----------------------------------------------------------------------

    def _read_shard(self, entry: dict, fields: list[str] | None) -> dict[str, np.ndarray]:
        """Read a shard; its sha256 is checked on the first read by this object.

        Later reads of a shard whose size and modification time are unchanged
        since it was verified decompress only the requested fields, so an
        analysis making several passes over a large cache hashes each shard
        once instead of once per pass.
        """
        path = self.path / entry["file"]
        where = f"shard {entry['name']!r} ({path})"
        try:
            stat = path.stat()
            stamp = (stat.st_size, stat.st_mtime_ns)
            if self._verified.get(entry["name"]) == stamp:
                return read_npz(path, where, fields)
            data = path.read_bytes()
        except OSError as err:
            raise CacheCorruptError(f"{where} cannot be read: {err}") from err
        if len(data) != entry.get("bytes", len(data)):
            raise CacheCorruptError(
                f"{where} is {len(data)} bytes, the manifest says {entry['bytes']} (truncated?)"
            )
        if sha256_bytes(data) != entry["sha256"]:
            raise CacheCorruptError(f"{where} does not match its sha256 in the manifest (corrupt)")
        arrays = read_npz_bytes(data, where, fields)
        self._verified[entry["name"]] = stamp
        return arrays

    def iter_shards(
        self, group: str | None = None, fields: Iterable[str] | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        """Yield the shards one at a time (memory stays at one shard).

        Parameters
        ----------
        group : str, optional
            Only shards of this group (default: all, in name order).
        fields : iterable of str, optional
            Only these fields (default: all).

        Yields
        ------
        dict of str to ndarray
            Field name to array with the sample axis first.

        Raises
        ------
        CacheCorruptError
            If a shard's bytes do not match the manifest, naming the shard.
        """
        self._check_group(group)
        fields = None if fields is None else self._check_fields(fields)
        for entry in self.shards:
            if group is None or entry["group"] == group:
                yield self._read_shard(entry, fields)

    def load(self, field: str, group: str | None = None) -> np.ndarray:
        """Concatenate one field over the shards (of ``group``, or all groups).

        Parameters
        ----------
        field : str
            A field of :attr:`fields`.
        group : str, optional
            Only this group.

        Returns
        -------
        ndarray of shape (n_samples, ...)
            Stored dtype; an empty first axis when there are no samples.
        """
        (field_,) = self._check_fields([field])
        parts = [s[field_] for s in self.iter_shards(group, [field_])]
        if parts:
            return np.concatenate(parts, axis=0)
        spec = FIELDS[field_]
        shape = tuple(int(s) if s.isdigit() else self.sizes.get(s, 0) for s in spec.shape)
        return np.empty((0, *shape), dtype=spec.dtype if spec.dtype is not None else "<U1")

    def arrays(
        self, fields: Iterable[str] | None = None, group: str | None = None
    ) -> dict[str, np.ndarray]:
        """Concatenate several fields in one pass over the shards."""
        fields = self.fields if fields is None else self._check_fields(fields)
        parts: dict[str, list] = {f: [] for f in fields}
        for shard in self.iter_shards(group, fields):
            for f in fields:
                parts[f].append(shard[f])
        return {
            f: np.concatenate(p, axis=0) if p else self.load(f, group) for f, p in parts.items()
        }

    def verify(self) -> VerifyReport:
        """Check every shard: present, size and sha256 as recorded, readable, schema-valid.

        Also checks that sample ids are unique across the cache.

        Returns
        -------
        VerifyReport
            True when intact; ``.problems`` names every bad shard and why.
        """
        report = VerifyReport()
        self._verified.clear()  # verify re-hashes every shard, whatever was read before
        seen: dict[str, str] = {}
        sizes = dict(self.sizes)
        for entry in self.shards:
            report.n_shards += 1
            try:
                arrays = self._read_shard(entry, None)
                if sorted(arrays) != sorted(self.fields):
                    raise CacheFormatError(
                        f"shard {entry['name']!r} holds {sorted(arrays)}, the manifest says "
                        f"{sorted(self.fields)}"
                    )
                clean, sizes = validate_arrays(arrays, group=entry["group"], sizes=sizes)
                if len(clean["id"]) != entry["n_samples"]:
                    raise CacheFormatError(
                        f"shard {entry['name']!r} holds {len(clean['id'])} samples, the manifest "
                        f"says {entry['n_samples']}"
                    )
                for sid in clean["id"].tolist():
                    if sid in seen:
                        raise CacheFormatError(
                            f"sample id {sid!r} is in shard {entry['name']!r} and {seen[sid]!r}"
                        )
                    seen[sid] = entry["name"]
                report.n_samples += len(clean["id"])
            except CacheError as err:
                msg = str(err)
                if entry["name"] not in msg:
                    msg = f"shard {entry['name']!r}: {msg}"
                report.problems.append(msg)
        missing = [f for f in REQUIRED_FIELDS if self.shards and f not in self.fields]
        if missing:
            report.problems.append(f"manifest lists no required fields {missing}")
        return report


def open_cache(path) -> Cache:
    """Open a cache folder for reading (numpy only; never unpickles).

    Parameters
    ----------
    path : str or path-like
        The cache folder (or its ``manifest.json``).

    Returns
    -------
    Cache
        With ``.groups``, ``.fields``, ``.manifest``, ``.n_samples(group)``,
        ``.iter_shards(group)``, ``.load(field, group)`` and ``.verify()``.

    Raises
    ------
    CacheFormatError
        If ``path`` is not a cache (no manifest, a single ``.npz``...).
    """
    return Cache(path)


# --------------------------------------------------------------------------- merging


def merge_caches(dest, sources: Iterable) -> Cache:
    """Merge partial caches (e.g. job-array slices written to separate folders) into ``dest``.

    Parameters
    ----------
    dest : str or path-like
        Target folder; created when missing, otherwise extended.
    sources : iterable of str or path-like
        Caches built with the same config; each shard is verified before it is copied.

    Returns
    -------
    Cache
        The merged cache.

    Raises
    ------
    CacheMismatchError
        If a source's config differs from the target's (the message names the
        differences), or two sources hold different content under one shard name.
    CacheCorruptError
        If a source shard does not match its checksum.
    """
    sources = [open_cache(s) for s in sources]
    if not sources:
        raise ValueError("merge_caches needs at least one source cache")
    dest = Path(dest)
    if dest.is_dir() and (dest / MANIFEST).exists():
        writer = CacheWriter(dest)
    else:
        writer = CacheWriter(dest, config=sources[0].config, info=sources[0].info)
    for src in sources:
        if src.path.resolve() == dest.resolve():
            continue
        diffs = config_differences(writer.config, src.config)
        if diffs:
            raise CacheMismatchError(
                f"cannot merge {src.path} into {dest}: configs differ (target != source): "
                + "; ".join(diffs[:10])
            )
        for entry in src.manifest["shards"]:
            existing = writer.entry(entry["name"])
            if entry.get("file") is None:
                if existing is None:
                    writer.write_shard(entry["group"], None, entry["name"], _failed(entry))
                continue
            if existing is not None and existing.get("sha256") == entry["sha256"]:
                if writer.has_valid_shard(entry["name"]):
                    continue
            elif existing is not None and existing.get("file") is not None:
                raise CacheMismatchError(
                    f"shard {entry['name']!r} differs between {src.path} and {dest}; "
                    "same config but different content"
                )
            arrays = src._read_shard(entry, None)
            writer.write_shard(entry["group"], arrays, entry["name"], _failed(entry))
        for f in src.manifest.get("failed_unassigned", []):
            writer.add_failed(f["id"], f["reason"], f.get("group", ""))
    return open_cache(dest)


def _failed(entry: dict) -> list[tuple[str, str]]:
    return [(f["id"], f["reason"]) for f in entry.get("failed", [])]


def copy_cache(src, dest) -> Cache:
    """Copy a cache folder (manifest and shards) to ``dest``."""
    shutil.copytree(Path(src), Path(dest))
    return open_cache(dest)
