"""The cache schema: every field a shard may hold, with its dtype and per-sample shape.

A shard holds ``N`` samples of ONE group. Every field is an array whose first
axis has length ``N``; the remaining axes are the per-sample shape below, in
which letters are sizes fixed for a whole cache:

``S``
    side of the defocus map the defocus classifier sees (299 for the paper);
``R``
    side of the image the RGB model sees (usually equal to ``S``);
``D``, ``D2``
    widths of the penultimate features of the defocus and RGB models.

String fields are stored as fixed-width unicode arrays (numpy ``<U``), never
as object arrays, so that a shard loads with ``allow_pickle=False``.

This module imports numpy only (no torch), like the whole reading side of
:mod:`cache`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cache.errors import CacheFormatError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "FieldSpec",
    "FIELDS",
    "REQUIRED_FIELDS",
    "validate_arrays",
]

#: Name written in every manifest so a foreign folder is not mistaken for a cache.
FORMAT_NAME = "defocus-forensics-cache"
#: Version of the on-disk layout; bumped when a reader could misread older caches.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class FieldSpec:
    """One field of the schema.

    Parameters
    ----------
    name : str
        Key of the array inside a shard.
    kind : {"str", "int8", "uint8", "float16", "float32"}
        Stored dtype (``"str"``: fixed-width unicode).
    shape : tuple of str
        Per-sample shape as size symbols (``()`` for a scalar per sample).
    required : bool
        Whether every shard must hold it.
    values : tuple of int or None
        Allowed values of an integer field (``None``: any).
    doc : str
        What the field holds.
    """

    name: str
    kind: str
    shape: tuple[str, ...]
    required: bool = False
    values: tuple[int, ...] | None = None
    doc: str = ""

    @property
    def dtype(self) -> np.dtype | None:
        """Numpy dtype of the stored array (``None`` for strings, whose width varies)."""
        return None if self.kind == "str" else np.dtype(self.kind)


_SPECS = [
    FieldSpec("id", "str", (), True, doc="sample id, unique within the cache"),
    FieldSpec("group", "str", (), True, doc="group of the sample (one per shard)"),
    FieldSpec("label", "int8", (), True, (0, 1), doc="0 real, 1 fake"),
    FieldSpec(
        "pair_id",
        "str",
        (),
        True,
        doc="for a fake, id of the real sample it was made from ('' when unknown)",
    ),
    FieldSpec(
        "video",
        "str",
        (),
        doc="video the frame comes from (absent when the data has no videos): resample and "
        "test whole videos, never frames as if independent",
    ),
    FieldSpec("image", "uint8", ("3", "R", "R"), doc="the image as the models saw it"),
    FieldSpec(
        "defocus",
        "float16",
        ("S", "S"),
        doc="per-sample min-max normalised defocus map the defocus classifier sees",
    ),
    FieldSpec("attr_defocus", "float32", ("S", "S"), doc="defocus-model attributions on its map"),
    FieldSpec("attr_rgb", "float32", ("3", "R", "R"), doc="RGB-model attributions on the image"),
    FieldSpec(
        "attr_rgb_c0",
        "float32",
        ("R", "R"),
        doc="legacy only: channel 0 of the RGB attributions, as the paper's files keep it",
    ),
    FieldSpec("logit_defocus", "float32", (), doc="defocus-model logit (fake > 0)"),
    FieldSpec("logit_rgb", "float32", (), doc="RGB-model logit (fake > 0)"),
    FieldSpec("features_defocus", "float32", ("D",), doc="defocus-model penultimate features"),
    FieldSpec("features_rgb", "float32", ("D2",), doc="RGB-model penultimate features"),
    FieldSpec(
        "mask", "uint8", ("S", "S"), values=(0, 1), doc="ground-truth manipulation mask (1 = fake)"
    ),
    FieldSpec("sparse", "float16", ("S", "S"), doc="sparse defocus estimate at edges"),
    FieldSpec("edges", "uint8", ("S", "S"), values=(0, 1), doc="edge map (0/1)"),
    FieldSpec(
        "completeness_defocus",
        "float32",
        (),
        doc="sum(attr_defocus) - (f(x) - E f(reference)) for the defocus model",
    ),
    FieldSpec(
        "completeness_rgb",
        "float32",
        (),
        doc="sum(attr_rgb) - (f(x) - E f(reference)) for the RGB model",
    ),
]

#: Every field of the schema by name, in a stable order.
FIELDS: dict[str, FieldSpec] = {spec.name: spec for spec in _SPECS}
#: Fields every shard must hold.
REQUIRED_FIELDS: tuple[str, ...] = tuple(s.name for s in _SPECS if s.required)

_FLOAT_KINDS = {"float16", "float32"}
_INT_KINDS = {"int8", "uint8"}


def _coerce(name: str, spec: FieldSpec, value) -> np.ndarray:
    """Return ``value`` as an array of the field's dtype, or raise naming the problem."""
    arr = np.asarray(value)
    if arr.dtype == object:
        raise CacheFormatError(
            f"field {name!r} is an object array; shards hold plain arrays only "
            "(strings as fixed-width unicode, numbers as numeric dtypes)"
        )
    if spec.kind == "str":
        if arr.dtype.kind not in "US":
            raise CacheFormatError(f"field {name!r} must hold strings, got dtype {arr.dtype}")
        return arr.astype(str)
    if arr.dtype.kind not in "biuf":
        raise CacheFormatError(f"field {name!r} must be numeric, got dtype {arr.dtype}")
    if spec.kind in _FLOAT_KINDS:
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            bad = int(np.sum(~np.isfinite(arr)))
            raise CacheFormatError(f"field {name!r} holds {bad} non-finite values (NaN or inf)")
        if spec.kind == "float16" and arr.size and np.abs(arr).max() > np.finfo(np.float16).max:
            raise CacheFormatError(
                f"field {name!r} overflows float16 (max 65504); got max |x| = {np.abs(arr).max()}"
            )
        return arr.astype(spec.kind)
    # integer kinds
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise CacheFormatError(f"field {name!r} must hold integers, got non-integer floats")
    info = np.iinfo(spec.kind)
    if arr.size and (arr.min() < info.min or arr.max() > info.max):
        raise CacheFormatError(
            f"field {name!r} values must fit {spec.kind}, got range [{arr.min()}, {arr.max()}]"
        )
    out = arr.astype(spec.kind)
    if spec.values is not None and out.size:
        bad = np.setdiff1d(np.unique(out), np.asarray(spec.values, dtype=out.dtype))
        if bad.size:
            raise CacheFormatError(
                f"field {name!r} may hold only {list(spec.values)}, got {bad.tolist()[:5]}"
            )
    return out


def validate_arrays(
    arrays: dict, group: str | None = None, sizes: dict[str, int] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Check one shard's arrays against the schema and cast them to their stored dtypes.

    Parameters
    ----------
    arrays : dict of str to array-like
        Field name to array whose first axis is the sample axis (length ``N``).
    group : str, optional
        When given, every entry of the ``group`` field must equal it.
    sizes : dict of str to int, optional
        Known sizes of the shape symbols (``S``, ``R``, ``D``, ``D2``) from
        earlier shards of the same cache; a mismatch is an error.

    Returns
    -------
    arrays : dict of str to ndarray
        The arrays cast to the schema dtypes, in schema order.
    sizes : dict of str to int
        ``sizes`` updated with the symbols this shard fixes.

    Raises
    ------
    CacheFormatError
        On an unknown or missing field, an object array, a wrong dtype that
        cannot be cast losslessly, a wrong shape, inconsistent sample counts,
        duplicate ids, or a ``group`` entry other than ``group``.
    """
    if not isinstance(arrays, dict):
        raise CacheFormatError(f"arrays must be a dict of field name to array, got {type(arrays)}")
    unknown = sorted(set(arrays) - set(FIELDS))
    if unknown:
        raise CacheFormatError(f"unknown fields {unknown}; the schema knows {list(FIELDS)}")
    missing = [f for f in REQUIRED_FIELDS if f not in arrays]
    if missing:
        raise CacheFormatError(f"required fields missing: {missing}")
    sizes = dict(sizes or {})
    out: dict[str, np.ndarray] = {}
    n = None
    for name, spec in FIELDS.items():
        if name not in arrays:
            continue
        arr = _coerce(name, spec, arrays[name])
        if arr.ndim != 1 + len(spec.shape):
            want = "(N" + "".join(", " + s for s in spec.shape) + ")"
            raise CacheFormatError(f"field {name!r} must have shape {want}, got {arr.shape}")
        if n is None:
            n = arr.shape[0]
        elif arr.shape[0] != n:
            raise CacheFormatError(
                f"field {name!r} holds {arr.shape[0]} samples but 'id' holds {n}"
            )
        for symbol, size in zip(spec.shape, arr.shape[1:], strict=True):
            if symbol.isdigit():
                if size != int(symbol):
                    raise CacheFormatError(
                        f"field {name!r} axis of size {symbol} expected, got {arr.shape}"
                    )
                continue
            known = sizes.setdefault(symbol, int(size))
            if known != size:
                raise CacheFormatError(
                    f"field {name!r} has {symbol}={size} but the cache uses {symbol}={known}"
                )
        out[name] = arr
    if n == 0:
        raise CacheFormatError("a shard must hold at least one sample")
    ids = out["id"]
    if len(np.unique(ids)) != len(ids):
        values, counts = np.unique(ids, return_counts=True)
        raise CacheFormatError(f"duplicate ids in shard: {values[counts > 1][:5].tolist()}")
    if group is not None:
        bad = out["group"] != group
        if np.any(bad):
            raise CacheFormatError(
                f"a shard holds one group: expected {group!r}, found "
                f"{sorted(set(out['group'][bad].tolist()))[:5]}"
            )
    elif len(np.unique(out["group"])) > 1:
        raise CacheFormatError(
            f"a shard holds one group, got {sorted(set(out['group'].tolist()))[:5]}"
        )
    return out, sizes
