"""The manifest's integrity record: catch, and name, any edit of a recorded value (no torch).

Every manifest written by :class:`cache.CacheWriter` carries an
``integrity`` record computed over everything else in it (the *body*)::

    "integrity": {
      "algorithm": "sha256-canonical-json",
      "body_sha256": "<sha256 of the body as canonical JSON>",
      "leaves": {"config.explainer.nsamples": "<16 hex>", "shards[00001-real].sha256": ...},
      "leaves_sha256": "<sha256 of the leaves map as canonical JSON>"
    }

Canonical JSON is ``json.dumps(..., sort_keys=True, separators=(",", ":"),
ensure_ascii=False)``, so re-indenting or re-ordering the file changes
nothing, while any changed, added or removed value does. Opening a cache
hashes the body once (``body_sha256``; a few milliseconds even for
thousands of shards); only when that differs are the per-leaf digests
compared to name the dotted key paths that changed.

A leaf's path joins dict keys with ``.`` and indexes lists by position
(``[3]``), or by the ``name`` (else ``id``) of their dict elements when
those are unique (``shards[00002-fake_a].n_samples``), so an edit is named
by what it edited rather than where it sat in the file.

This is a checksum, not a signature: it catches edits by hand, by scripts
and by tools that do not know the record, but someone who recomputes the
digests can forge it (see ``docs/reliability-cache.md``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

__all__ = [
    "ALGORITHM",
    "INTEGRITY_KEY",
    "canonical_json",
    "leaves",
    "seal",
    "check",
    "summarise_paths",
]

#: Key of the integrity record inside ``manifest.json``.
INTEGRITY_KEY = "integrity"
#: Name of the scheme, recorded so that a later scheme can be told apart.
ALGORITHM = "sha256-canonical-json"
_LEAF_HEX = 16  # 64 bits per leaf: enough to locate an edit; body_sha256 detects it


def canonical_json(obj) -> str:
    """Return ``obj`` as canonical JSON text (sorted keys, no spaces, unicode kept).

    Parameters
    ----------
    obj : JSON value
        Dicts, lists, strings, numbers, booleans and ``None``.

    Returns
    -------
    str
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _key_path(prefix: str, key: str) -> str:
    if any(c in key for c in '.[]"') or not key:
        return f"{prefix}[{json.dumps(key)}]"
    return f"{prefix}.{key}" if prefix else key


def _element_keys(items: list) -> list[str]:
    """Names of list elements: their ``name`` (else ``id``) when unique dict keys, else indices."""
    for key in ("name", "id"):
        if items and all(isinstance(x, dict) and isinstance(x.get(key), str) for x in items):
            names = [x[key] for x in items]
            if len(set(names)) == len(names):
                return names
    return [str(i) for i in range(len(items))]


def _walk(obj, prefix: str) -> Iterator[tuple[str, object]]:
    if isinstance(obj, dict) and obj:
        for key in sorted(obj):
            yield from _walk(obj[key], _key_path(prefix, str(key)))
    elif isinstance(obj, list) and obj:
        for name, item in zip(_element_keys(obj), obj, strict=True):
            yield from _walk(item, f"{prefix}[{name}]")
    else:
        yield prefix or "<manifest>", obj


def leaves(body: dict) -> dict[str, str]:
    """Map every leaf of ``body`` (dotted key path) to a short digest of its value.

    Parameters
    ----------
    body : dict
        The manifest without its integrity record.

    Returns
    -------
    dict of str to str
        Path to the first 16 hex digits of the sha256 of the value's canonical JSON.
    """
    sha = hashlib.sha256
    return {
        path: sha(_canonical_leaf(value).encode("utf-8")).hexdigest()[:_LEAF_HEX]
        for path, value in _walk(body, "")
    }


_encode_str = json.encoder.py_encode_basestring  # what ensure_ascii=False uses for a str
if getattr(json.encoder, "c_encode_basestring", None) is not None:
    _encode_str = json.encoder.c_encode_basestring


def _canonical_leaf(value) -> str:
    """Return ``canonical_json(value)`` of a leaf, without the encoder's set-up cost for scalars."""
    if isinstance(value, str):
        return _encode_str(value)
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if type(value) is int:
        return int.__repr__(value)
    return canonical_json(value)


def seal(body: dict) -> dict:
    """Return the integrity record of ``body`` (a manifest without ``integrity``).

    ``body`` must already be JSON-normalised (what ``json.loads`` of its
    dump gives), so that a reader computes the same digests.
    """
    leaf_map = leaves(body)
    return {
        "algorithm": ALGORITHM,
        "body_sha256": _sha256(canonical_json(body)),
        "leaves": leaf_map,
        "leaves_sha256": _sha256(canonical_json(leaf_map)),
    }


def check(manifest: dict) -> list[str] | None:
    """Check a manifest against its integrity record.

    Parameters
    ----------
    manifest : dict
        The parsed ``manifest.json``.

    Returns
    -------
    list of str or None
        ``None`` when the manifest has no integrity record (unprotected);
        otherwise the dotted paths of the edited values, summarised (a
        whole removed shard entry is one path) and prefixed with
        ``changed``, ``added`` or ``removed``; empty when intact.
    """
    record = manifest.get(INTEGRITY_KEY)
    if record is None:
        return None
    if (
        not isinstance(record, dict)
        or record.get("algorithm") != ALGORITHM
        or not isinstance(record.get("leaves"), dict)
        or not isinstance(record.get("body_sha256"), str)
    ):
        return [f"changed {INTEGRITY_KEY} (not a {ALGORITHM} record)"]
    body = {k: v for k, v in manifest.items() if k != INTEGRITY_KEY}
    recorded = record["leaves"]
    leaves_ok = _sha256(canonical_json(recorded)) == record.get("leaves_sha256")
    if _sha256(canonical_json(body)) == record["body_sha256"]:
        return [] if leaves_ok else [f"changed {INTEGRITY_KEY}.leaves"]
    if not leaves_ok:  # body and the record both edited: the record cannot locate the edit
        return [f"changed {INTEGRITY_KEY}.leaves and values it cannot locate"]
    current = leaves(body)
    changed = sorted(p for p in current if p in recorded and current[p] != recorded[p])
    added = summarise_paths(set(current) - set(recorded), set(current))
    removed = summarise_paths(set(recorded) - set(current), set(recorded))
    out = [f"changed {p}" for p in changed]
    out += [f"added {p}" for p in added] + [f"removed {p}" for p in removed]
    return out or [f"changed {INTEGRITY_KEY}.body_sha256"]


def _ancestors(path: str) -> list[str]:
    """Prefixes of ``path`` at ``.`` and ``[`` boundaries, shortest first (not ``path`` itself)."""
    out, depth = [], 0
    for i, c in enumerate(path):
        if c == "[":
            if depth == 0 and i:
                out.append(path[:i])
            depth += 1
        elif c == "]":
            depth -= 1
        elif c == "." and depth == 0:
            out.append(path[:i])
    return out


def summarise_paths(paths: set[str], universe: set[str]) -> list[str]:
    """Collapse leaf paths to the shortest ancestors whose leaves (in ``universe``) are all in it.

    Parameters
    ----------
    paths : set of str
        E.g. the leaves removed from a manifest.
    universe : set of str
        Every leaf of the manifest ``paths`` belong to.

    Returns
    -------
    list of str
        Sorted; ``shards[00002-fake_a]`` rather than its eight leaves.
    """
    if not paths:
        return []
    total: dict[str, int] = {}
    hit: dict[str, int] = {}
    for p in universe:
        for a in _ancestors(p):
            total[a] = total.get(a, 0) + 1
            if p in paths:
                hit[a] = hit.get(a, 0) + 1
    out = set()
    for p in paths:
        best = p
        for a in _ancestors(p):  # shortest first
            if hit.get(a, 0) == total.get(a, -1):
                best = a
                break
        out.add(best)
    return sorted(out)
