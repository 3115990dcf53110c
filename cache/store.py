"""Reading, writing, verifying and merging caches (numpy only, no torch).

A cache is a folder::

    manifest.json          format, config (compared), info, planned shards, sizes,
                           shards, failures, integrity record
    shards/<name>.npz      plain arrays of ONE group (see :mod:`cache.schema`)
    .claims/<name>.claim   shards being computed now (see :mod:`cache.claims`)
    .lock                  the lock manifest updates and claims are made under

Writing is atomic (temporary file, flush, fsync, rename) and shards are
byte-reproducible (fixed zip timestamps), so the same samples computed twice
give the same sha256. The manifest is updated under a file lock, so several
processes (job-array tasks, Dask workers, concurrent runs) may add shards to
one folder, and every write seals it with an integrity record
(:mod:`cache.integrity`) that opening checks, naming any edited value.
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
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from cache import integrity
from cache.claims import locked
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
from cache.schema import FIELDS, FORMAT_NAME, FORMAT_VERSION, validate_arrays
from safeio import atomic_write_bytes

__all__ = [
    "Cache",
    "CacheWriter",
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


_locked = locked  # the cache lock (``.lock``, flock): manifest updates and claims


def _load_manifest_file(folder: Path) -> dict | None:
    """Parse ``manifest.json`` and check its format, without the integrity check."""
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CacheCorruptError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise CacheFormatError(f"{path} is not a {FORMAT_NAME} manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CacheFormatError(
            f"{path} has format version {version!r}; this reader knows up to {FORMAT_VERSION}"
        )
    for key, kind in (("config", dict), ("shards", list), ("fields", list), ("sizes", dict)):
        if not isinstance(manifest.get(key, kind()), kind):
            raise CacheFormatError(f"{path}: {key!r} must be a {kind.__name__}")
    return manifest


def _check_entries(folder: Path, manifest: dict, edits: list[str] | None) -> None:
    """Check every shard entry's shape; blame the edits, if any, when one is unusable."""
    try:
        for i, e in enumerate(manifest.get("shards", [])):
            _check_entry_shape(folder / MANIFEST, i, e)
    except CacheFormatError as err:
        if edits:
            shown = "; ".join(edits[:8])
            raise CacheManifestError(
                f"{folder / MANIFEST} was edited after it was written ({shown}) and cannot be "
                f"used ({str(err).split(': ', 1)[-1]}); restore the edited values as they were, "
                "or extract into a new folder",
                [e.split(" ", 1)[1] for e in edits],
            ) from err
        raise


def _check_entry_shape(path: Path, i: int, e) -> None:
    """Refuse a shard entry a reader could misuse (e.g. a file outside ``shards/``)."""
    where = f"{path}: shards[{i}]"
    if not isinstance(e, dict):
        raise CacheFormatError(f"{where} must be an object, got {e!r:.60}")
    name = e.get("name")
    if not isinstance(name, str) or not name or _NAME_RE.search(name) or name.startswith("."):
        raise CacheFormatError(f"{where}: name must match [A-Za-z0-9._-]+, got {name!r:.60}")
    if not isinstance(e.get("group"), str):
        raise CacheFormatError(f"{where} ({name}): group must be a string, got {e.get('group')!r}")
    n = e.get("n_samples")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise CacheFormatError(f"{where} ({name}): n_samples must be an integer >= 0, got {n!r}")
    if e.get("file") is not None:
        if e["file"] != f"{SHARD_DIR}/{name}.npz":
            raise CacheFormatError(
                f"{where} ({name}): file must be {SHARD_DIR}/{name}.npz, got {e['file']!r:.80}"
            )
        if not isinstance(e.get("sha256"), str) or not isinstance(e.get("bytes"), int):
            raise CacheFormatError(f"{where} ({name}): a shard with a file needs sha256 and bytes")


def manifest_edit_error(folder: Path, edits: list[str]) -> CacheManifestError:
    """Build the one-line error for a manifest whose integrity record names ``edits``."""
    shown = "; ".join(edits[:8]) + (f"; and {len(edits) - 8} more" if len(edits) > 8 else "")
    paths = [e.split(" ", 1)[1] for e in edits]
    return CacheManifestError(
        f"{folder / MANIFEST} was edited after it was written ({shown}); its values cannot be "
        f"trusted. Run 'defocus verify --cache {folder}' for what to do",
        paths,
    )


def _read_manifest(folder: Path) -> dict | None:
    """Read the manifest; raise :class:`CacheManifestError` naming any edited value."""
    manifest = _load_manifest_file(folder)
    if manifest is not None:
        edits = integrity.check(manifest)
        if edits:
            raise manifest_edit_error(folder, edits)
        _check_entries(folder, manifest, edits)
    return manifest


def _manifest_body(manifest: dict) -> dict:
    """Return the manifest as stored (sorted shards, derived ``failed``), without integrity."""
    body = {k: v for k, v in manifest.items() if k != integrity.INTEGRITY_KEY}
    body["shards"] = sorted(body["shards"], key=lambda e: e["name"])
    body["failed"] = sorted(
        [f for e in body["shards"] for f in e.get("failed", [])]
        + body.get("failed_unassigned", []),
        key=lambda f: (f.get("group", ""), f["id"]),
    )
    body = _normalise(body)
    first = [k for k in _TOP_ORDER if k in body]  # readable order; nested keys are sorted
    return {**{k: body[k] for k in first}, **{k: v for k, v in body.items() if k not in first}}


_TOP_ORDER = ("format", "format_version", "config", "info", "planned", "sizes", "fields")


def manifest_text(manifest: dict) -> str:
    """Return the text of ``manifest.json`` for ``manifest``, sealed with its integrity record.

    The body is indented one space per level (readable diffs); the integrity
    record follows on one line.
    """
    body = _manifest_body(manifest)
    record = integrity.seal(body)
    text = json.dumps(body, indent=1, sort_keys=False)
    sealed = json.dumps(record, sort_keys=True, separators=(",", ":"))
    return text[:-2] + f',\n "{integrity.INTEGRITY_KEY}": {sealed}\n}}\n'


def _write_manifest(folder: Path, manifest: dict) -> None:
    """Seal and atomically write the manifest; untouched when the content is unchanged."""
    data = manifest_text(manifest).encode("utf-8")
    path = folder / MANIFEST
    with contextlib.suppress(OSError):
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    atomic_write_bytes(path, data)


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


def _check_plan(plan) -> list[dict]:
    """Normalise a plan: a list of ``{"name", "group", "n_samples"[, "ids_sha256"]}``."""
    if not isinstance(plan, (list, tuple)):
        raise CacheFormatError(f"a plan must be a list of shard descriptions, got {type(plan)}")
    out, names = [], set()
    for p in _normalise(list(plan)):
        if not isinstance(p, dict) or not {"name", "group", "n_samples"} <= set(p):
            raise CacheFormatError(f"a planned shard needs name, group and n_samples, got {p!r}")
        if p["name"] in names:
            raise CacheFormatError(f"shard {p['name']!r} is planned twice")
        names.add(p["name"])
        out.append(p)
    return out


def ids_digest(ids: Iterable[str]) -> str:
    """Sha256 of a set of sample ids (sorted, one per line): what a planned shard holds."""
    return sha256_bytes("\n".join(sorted(str(i) for i in ids)).encode("utf-8"))


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
    plan : list of dict, optional
        The shards the job that fills this cache will write, each
        ``{"name", "group", "n_samples", "ids_sha256"}`` (``n_samples``
        counting the samples that may fail; ``ids_sha256`` from
        :func:`ids_digest`). Recorded before any shard is computed, so that
        :meth:`Cache.verify` can tell a complete cache from an interrupted
        one. An existing cache's plan must be equal.

    Raises
    ------
    CacheManifestError
        If the folder's manifest was edited after it was written (a writer
        never seals an edited manifest as if it were true).
    CacheMismatchError
        If the folder holds a cache of another config or plan.

    Examples
    --------
    >>> w = CacheWriter(tmp / "cache", config={"explainer": "none"})  # doctest: +SKIP
    >>> w.write_shard("real", {"id": ids, "group": ["real"] * n, "label": zeros,
    ...                        "pair_id": [""] * n, "defocus": maps})  # doctest: +SKIP
    """

    def __init__(self, path, config: dict | None = None, info: dict | None = None, plan=None):
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
            if plan is not None:
                plan = _check_plan(plan)
                if manifest.get("planned") is None:
                    manifest["planned"] = plan
                elif manifest["planned"] != plan:
                    diffs = config_differences({"planned": manifest["planned"]}, {"planned": plan})
                    raise CacheMismatchError(
                        f"{self.path} was planned with other shards; refusing to mix. "
                        "Differences (existing != new): " + "; ".join(diffs[:10])
                    )
            _write_manifest(self.path, manifest)
        self.config = manifest["config"]

    # -- queries ----------------------------------------------------------------------

    def manifest(self) -> dict:
        """Return the manifest as currently on disk."""
        return _read_manifest(self.path)

    def entry(self, name: str, manifest: dict | None = None) -> dict | None:
        """Return the manifest entry of shard ``name`` (in ``manifest``, default: on disk)."""
        for e in (manifest or self.manifest())["shards"]:
            if e["name"] == name:
                return e
        return None

    def has_valid_shard(self, name: str, manifest: dict | None = None) -> bool:
        """Whether shard ``name`` is recorded and its file matches the recorded sha256.

        ``manifest`` (as :meth:`manifest` returned it) saves re-reading it
        when many shards are checked in a row.
        """
        e = self.entry(name, manifest)
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

    def drop_entries(self, names: Iterable[str]) -> list[str]:
        """Remove the manifest entries of shards ``names`` (their files are left alone).

        Returns the names that had an entry.
        """
        drop = set(names)
        with _locked(self.path):
            manifest = self.manifest()
            dropped = [e["name"] for e in manifest["shards"] if e["name"] in drop]
            manifest["shards"] = [e for e in manifest["shards"] if e["name"] not in drop]
            _write_manifest(self.path, manifest)
        return dropped

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


class Cache:
    """Read access to a cache folder (see :func:`open_cache`).

    Parameters
    ----------
    path : str or path-like
        The cache folder (or its ``manifest.json``).
    strict : bool
        Refuse a manifest edited after it was written
        (:class:`CacheManifestError`, naming the edited values). ``False``
        opens it anyway and records the edits in :attr:`manifest_edits`;
        only :meth:`verify` and repair use that.

    Attributes
    ----------
    path : pathlib.Path
        The folder.
    manifest : dict
        The parsed ``manifest.json``.
    manifest_edits : list of str or None
        Values edited since the manifest was sealed (``"changed config.x"``),
        empty when intact, ``None`` when the manifest has no integrity
        record (written before it existed: edits cannot be detected).
    """

    def __init__(self, path, *, strict: bool = True):
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
        manifest = _load_manifest_file(path)
        if manifest is None:
            raise CacheFormatError(f"{path} holds no {MANIFEST}; it is not a cache")
        edits = integrity.check(manifest)
        if edits and strict:
            raise manifest_edit_error(path, edits)
        _check_entries(path, manifest, edits)
        if edits is None and strict:
            warnings.warn(
                f"{path / MANIFEST} has no integrity record (written before it existed): edits "
                f"of it cannot be detected; 'defocus verify --cache {path} --repair' checks the "
                "shards and records it",
                UnprotectedCacheWarning,
                stacklevel=3,
            )
        self.path = path
        self.manifest = manifest
        self.manifest_edits = edits
        # shard name -> (size, mtime_ns) of the file when its sha256 was last checked
        self._verified: dict[str, tuple[int, int]] = {}

    # -- description ------------------------------------------------------------------

    @property
    def protected(self) -> bool:
        """Whether the manifest carries an integrity record (edits of it are caught)."""
        return self.manifest_edits is not None

    @property
    def config(self) -> dict:
        """The extraction config the cache was built with."""
        return self.manifest["config"]

    @property
    def info(self) -> dict:
        """Descriptive metadata (software versions, dataset description...)."""
        return self.manifest.get("info", {})

    @property
    def planned(self) -> list[dict] | None:
        """The shards the extraction planned (name, group, n_samples), or ``None`` if unrecorded."""
        planned = self.manifest.get("planned")
        return None if planned is None else list(planned)

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
            raise CacheKeyError(f"group {group!r} is not in this cache; it has {self.groups}")

    def _check_fields(self, fields: Iterable[str]) -> list[str]:
        fields = [fields] if isinstance(fields, str) else list(fields)
        bad = [f for f in fields if f not in self.fields]
        if bad:
            raise CacheKeyError(f"fields {bad} are not in this cache; it has {self.fields}")
        return fields

    # -- reading ----------------------------------------------------------------------

    def _read_shard(self, entry: dict, fields: list[str] | None) -> dict[str, np.ndarray]:
        """Read a shard; its sha256, group and sample count are checked on the first read.

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
        wanted = None if fields is None else list(dict.fromkeys([*fields, "id", "group"]))
        arrays = read_npz_bytes(data, where, wanted)
        _check_entry(entry, arrays, where)
        self._verified[entry["name"]] = stamp
        if fields is not None:
            arrays = {f: arrays[f] for f in fields}
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
            Field name to array of shape ``(n_samples_in_shard, ...)``.

        Raises
        ------
        CacheCorruptError
            If a shard's bytes do not match the manifest, or it holds other
            samples than its entry says (group, count), naming the shard.
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
        """Concatenate several fields in one pass over the shards.

        Returns
        -------
        dict of str to ndarray of shape (n_samples, ...)
        """
        fields = self.fields if fields is None else self._check_fields(fields)
        parts: dict[str, list] = {f: [] for f in fields}
        for shard in self.iter_shards(group, fields):
            for f in fields:
                parts[f].append(shard[f])
        return {
            f: np.concatenate(p, axis=0) if p else self.load(f, group) for f, p in parts.items()
        }

    def verify(self, progress: bool = False):
        """Check the whole cache: manifest integrity, every shard, the plan, unknown files.

        See :func:`cache.verify.verify_cache`.

        Returns
        -------
        cache.verify.VerifyReport
            ``.status`` is ``"complete"``, ``"incomplete"`` or ``"corrupt"``;
            ``.ok`` is true when nothing present is wrong (an interrupted,
            resumable cache is ok but not ``.complete``).
        """
        from cache.verify import verify_cache

        return verify_cache(self, progress=progress)


def _check_entry(entry: dict, arrays: dict[str, np.ndarray], where: str) -> None:
    """Refuse a shard whose samples are not what its manifest entry says (group, count)."""
    ids, groups = arrays["id"], arrays["group"]
    if len(ids) != entry.get("n_samples"):
        raise CacheCorruptError(
            f"{where} holds {len(ids)} samples, the manifest says {entry.get('n_samples')}"
        )
    bad = sorted(set(np.asarray(groups).tolist()) - {entry.get("group")})
    if bad:
        raise CacheCorruptError(
            f"{where} holds samples of group {bad[0]!r}, the manifest says {entry.get('group')!r}"
        )


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
    CacheManifestError
        If ``manifest.json`` was edited after it was written; the message
        names the edited values (dotted key paths).

    Warns
    -----
    UnprotectedCacheWarning
        If the manifest has no integrity record (a cache written before it existed).
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
    planned = [s for s in sources if s.planned is not None]
    for src in planned[1:]:
        if src.planned != planned[0].planned:
            raise CacheMismatchError(
                f"cannot merge {src.path}: it was planned with other shards than {planned[0].path}"
            )
    plan = planned[0].planned if planned else None
    if dest.is_dir() and (dest / MANIFEST).exists():
        writer = CacheWriter(dest, plan=plan)
    else:
        writer = CacheWriter(dest, config=sources[0].config, info=sources[0].info, plan=plan)
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
