"""One data spec for every command: ``KIND:KEY=VALUE,...``, parsed once, opened as one split.

Every command that reads data (``make-data``, ``train``, ``evaluate``,
``extract``), the demo and the notebooks take the same text, e.g.::

    synthetic:n=3200,size=128,seed=0
    folders:real=photos/real,fake=photos/fake,pair=stem
    index:runs/syn/index.csv
    cifake:root=data/cifake
    ffpp:root=data/ffpp-faces,manipulations=Deepfakes+FaceSwap,compression=c23

and every kind understands ``split=train|val|test|all``. A split is the
same for the same spec on any machine, so ``extract --data SPEC`` explains
exactly the test split a model was trained beside:

- ``synthetic``: the ``n`` samples of one seed cut by scene into train, val
  and test (:func:`detector.data.synthetic.synthetic_split_bounds`);
- ``folders`` and an ``index`` without a ``split`` column: a hash of each
  sample's unit (its video, or its real partner's), so that pairs and
  videos stay whole (:mod:`detector.data.splits`);
- ``index`` with a ``split`` column: that column;
- ``cifake``, ``ffpp``: the paper's own splits.

A value never contains ``,``; lists are joined with ``+``. The value of
the first item may stand alone for the kind's main key
(``index:FILE.csv``, ``ffpp:DIR``, ``cifake:DIR``). Keys of each kind are
listed in :data:`KEYS`; unknown keys, missing folders, empty splits and bad
values raise one-line errors naming the value.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.data.splits import check_split, hash_split_indices

__all__ = [
    "DATA_KINDS",
    "KEYS",
    "DataSpec",
    "background_data",
    "open_data",
    "parse_data_spec",
    "synthetic_settings",
]

#: Keys of each kind, with what they mean (also the reference in docs/data-spec.md).
KEYS: dict[str, dict[str, str]] = {
    "synthetic": {
        "n": "number of images, all splits together (default 400)",
        "size": "image side in pixels, >= 32 (default: the model's input size, else 128)",
        "seed": "data seed (default 0)",
        "val": "validation part: a fraction of the scenes (0.1) or a number of images (200)",
        "test": "test part, as val (default 0.2)",
        "fake_groups": "fakes to make, joined by + (default all_in_focus+inconsistent_blur+"
        "pasted_region)",
        "noise": "sensor noise std (default 0.01)",
        "split": "train, val, test or all",
    },
    "folders": {
        "real": "folder of real images (searched recursively)",
        "fake": "folder of fake images; a sub-folder per generator gives the group",
        "pair": "none, stem (same file name) or path (same relative path): a fake's real "
        "partner (default none)",
        "recursive": "search sub-folders (default true)",
        "val": "fraction of units (a real with its fakes) for validation (default 0.1)",
        "test": "fraction of units for test (default 0.2)",
        "seed": "seed of the hash split (default 0)",
        "image_size": "resize images to this square size (default: the model's input size)",
        "split": "train, val, test or all",
    },
    "index": {
        "path": "the index CSV (or a folder holding index.csv)",
        "val": "without a split column: fraction of units for validation (default 0.1)",
        "test": "without a split column: fraction of units for test (default 0.2)",
        "seed": "without a split column: seed of the hash split (default 0)",
        "image_size": "resize images to this square size (default: the model's input size)",
        "split": "train, val, test or all",
    },
    "cifake": {
        "root": "folder holding train/ and test/",
        "val": "fraction of train/ for validation (default 0.1, the paper's)",
        "seed": "random_state of the train/val cut (default 42, the paper's)",
        "file_order": "sorted (default) or listdir (the paper's call on its disk)",
        "image_size": "resize images to this square size (default: the model's input size)",
        "split": "train, val (cut from train/), test (test/) or all",
    },
    "ffpp": {
        "root": "folder holding original_sequences/ and manipulated_sequences/ (face frames)",
        "manipulations": "fake folders, joined by + (default: every one present)",
        "compression": "c0 (raw), c23 or c40 (default: the one level present)",
        "frames": "frames per video, first by name (default 32, the paper's)",
        "pooled": "split all manipulations' videos together (default false)",
        "masks": "use manipulated_sequences/<M>/masks/ when present (default true)",
        "image_size": "resize images to this square size (default: the model's input size)",
        "split": "train, val, test (the paper's 7:1:2 by sorted video) or all",
    },
}
#: Kinds of data a spec may name.
DATA_KINDS: tuple[str, ...] = tuple(KEYS)
#: The key a lone first value stands for.
_BARE = {"index": "path", "cifake": "root", "ffpp": "root"}


@dataclass(frozen=True)
class DataSpec:
    """A parsed data spec.

    Parameters
    ----------
    kind : str
        One of :data:`DATA_KINDS`.
    options : dict of str to str
        The keys as written (values are text until the data is opened).
    """

    kind: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def split(self) -> str | None:
        """The split the spec names, or None."""
        return self.options.get("split")

    def with_split(self, split: str | None) -> DataSpec:
        """Return the same spec naming ``split`` (None: no split)."""
        options = {k: v for k, v in self.options.items() if k != "split"}
        if split is not None:
            options["split"] = check_split(split)
        return DataSpec(self.kind, options)

    def __str__(self) -> str:
        return f"{self.kind}:" + ",".join(f"{k}={v}" for k, v in self.options.items())


def parse_data_spec(text: str | DataSpec) -> DataSpec:
    """Parse ``KIND:KEY=VALUE,...`` (see the module docstring).

    Parameters
    ----------
    text : str or DataSpec

    Returns
    -------
    DataSpec

    Raises
    ------
    ValueError
        On an unknown kind or key, a repeated key, an item that is not
        ``KEY=VALUE``, an empty value or a bad split.
    """
    if isinstance(text, DataSpec):
        return text
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a data spec must be text such as synthetic:n=400, got {text!r}")
    kind, _, rest = text.strip().partition(":")
    kind = kind.strip().lower()
    if kind not in KEYS:
        raise ValueError(
            f"unknown data kind {kind!r} in {text!r}; use one of {', '.join(DATA_KINDS)} "
            "(e.g. synthetic:n=400 or folders:real=DIR,fake=DIR)"
        )
    options: dict[str, str] = {}
    for k, part in enumerate(p for p in rest.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq:
            if k == 0 and kind in _BARE:
                key, value = _BARE[kind], part.strip()
            else:
                raise ValueError(f"item {part.strip()!r} of data spec {text!r} is not KEY=VALUE")
        if key not in KEYS[kind]:
            raise ValueError(
                f"unknown key {key!r} in {kind} data spec {text!r}; known keys: "
                f"{', '.join(KEYS[kind])}"
            )
        if key in options:
            raise ValueError(f"key {key!r} given twice in data spec {text!r}")
        if not value:
            raise ValueError(f"key {key!r} of data spec {text!r} has no value")
        options[key] = value
    if "split" in options:
        check_split(options["split"])
    return DataSpec(kind, options)


# ------------------------------------------------------------------------------ values


class _Values:
    """Typed access to a spec's values; errors name the kind, key and value."""

    def __init__(self, spec: DataSpec):
        self.spec = spec

    def _fail(self, key: str, what: str) -> ValueError:
        return ValueError(
            f"{self.spec.kind} data: {key} must be {what}, got {self.spec.options[key]!r}"
        )

    def has(self, key: str) -> bool:
        return key in self.spec.options

    def text(self, key: str, default: str | None = None) -> str | None:
        return self.spec.options.get(key, default)

    def required(self, key: str) -> str:
        if key not in self.spec.options:
            raise ValueError(
                f"{self.spec.kind} data needs {key}=...: {KEYS[self.spec.kind][key]} "
                f"(got {self.spec})"
            )
        return self.spec.options[key]

    def integer(self, key: str, default: int | None, minimum: int) -> int | None:
        if key not in self.spec.options:
            return default
        raw = self.spec.options[key]
        if not re.fullmatch(r"[+-]?\d+", raw) or int(raw) < minimum:
            if minimum == 1:
                raise self._fail(key, "a positive integer")
            raise self._fail(key, f"an integer >= {minimum}")
        return int(raw)

    def number(self, key: str, default: float) -> float:
        if key not in self.spec.options:
            return default
        try:
            return float(self.spec.options[key])
        except ValueError:
            raise self._fail(key, "a number") from None

    def fraction(self, key: str, default: float) -> float:
        value = self.number(key, default)
        if not 0 <= value < 1:
            raise self._fail(key, "a fraction in [0, 1)")
        return value

    def count_or_fraction(self, key: str, default: float) -> float | int:
        if key not in self.spec.options:
            return default
        raw = self.spec.options[key]
        if re.fullmatch(r"\d+", raw):
            return int(raw)
        value = self.number(key, default)
        if not 0 <= value < 1:
            raise self._fail(key, "a number of images or a fraction in [0, 1)")
        return value

    def flag(self, key: str, default: bool) -> bool:
        if key not in self.spec.options:
            return default
        raw = self.spec.options[key].lower()
        if raw in ("true", "yes", "1"):
            return True
        if raw in ("false", "no", "0"):
            return False
        raise self._fail(key, "true or false")

    def items(self, key: str) -> list[str] | None:
        if key not in self.spec.options:
            return None
        return [p.strip() for p in self.spec.options[key].split("+") if p.strip()]

    def folder(self, key: str) -> Path:
        path = Path(self.required(key)).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"{self.spec.kind} data: {key} folder not found: {os.fspath(path)!r}"
            )
        return path


# ------------------------------------------------------------------------------ opening


def open_data(spec: str | DataSpec, split: str | None = None, *, image_size: int | None = None):
    """Open one split of the data a spec describes.

    Parameters
    ----------
    spec : str or DataSpec
    split : {"train", "val", "test", "all"}, optional
        The split wanted. When the spec names one too they must agree. With
        neither, ``"all"``.
    image_size : int, optional
        The size the caller's model sees: file-backed images are resized to
        it (unless the spec gives ``image_size``) and synthetic images are
        rendered at it (unless the spec gives ``size``).

    Returns
    -------
    torch.utils.data.Dataset
        With ``.samples`` (:class:`detector.data.Sample` records),
        ``.has_masks``, ``describe()``, ``.spec`` (the spec text naming the
        split) and ``.split``.

    Raises
    ------
    ValueError
        On a bad spec, conflicting splits or an empty split.
    FileNotFoundError
        On a missing folder or file.
    """
    spec = parse_data_spec(spec)
    if split is not None:
        check_split(split)
        if spec.split is not None and spec.split != split:
            raise ValueError(f"the data spec {spec} names split={spec.split}, but split={split} "
                             "is needed here")  # fmt: skip
    split = split or spec.split or "all"
    values = _Values(spec)
    ds = _OPENERS[spec.kind](values, split, image_size)
    if len(ds) == 0:
        raise ValueError(
            f"split {split!r} of {spec.with_split(None)} holds no samples; "
            "use more data or other val=/test= fractions"
        )
    ds.spec = str(spec.with_split(split))
    ds.split = split
    return ds


def background_data(spec, dataset, given=None, *, image_size: int | None = None):
    """Open the real images an explainer integrates from: never the explained ones.

    Parameters
    ----------
    spec : str or DataSpec
        The spec of the data being explained.
    dataset : dataset
        The data being explained (from :func:`open_data`; its ``.samples`` and ``.split``).
    given : str or DataSpec, optional
        Other data to draw the background from (``--background-data``).
    image_size : int, optional
        Side the images are resized to.

    Returns
    -------
    dataset
        The real images of ``given``, or of the train split of ``spec``, without any
        sample being explained and without any real partner of an explained fake.

    Raises
    ------
    ValueError
        If the explained split is the train split (its background would be itself), or
        no real image is left.
    """
    from detector.data._base import SampleSubset

    spec = parse_data_spec(spec)
    if given:
        bg = open_data(given, image_size=image_size)
    else:
        if dataset.split in ("train", "all"):
            raise ValueError(
                f"--data explains split={dataset.split}, and the background would come from "
                "its train split, i.e. from the images being explained; give "
                "--background-data SPEC (other data, e.g. another seed or folder)"
            )
        bg = open_data(spec.with_split("train"), image_size=image_size)
    explained = {s.id for s in dataset.samples} | {s.pair_id for s in dataset.samples if s.pair_id}
    keep = [i for i, s in enumerate(bg.samples) if s.label == 0 and s.id not in explained]
    if not keep:
        raise ValueError(
            f"the background data {bg.spec} holds no real image that is not being explained; "
            "give --background-data SPEC with other real images"
        )
    if len(keep) == len(bg):
        return bg
    out = SampleSubset(bg, keep)
    out.spec, out.split = bg.spec, bg.split
    return out


def _file_size(values: _Values, image_size: int | None) -> int | None:
    return values.integer("image_size", image_size, 1)


def synthetic_settings(spec: str | DataSpec) -> dict[str, Any]:
    """Return the settings a ``synthetic:`` spec gives, with defaults, as keyword arguments.

    Returns
    -------
    dict
        ``n``, ``size`` (None when not given), ``seed``, ``val``, ``test``,
        ``fake_groups``, ``noise``: what :func:`detector.data.write_synthetic`
        takes.
    """
    from detector.data.synthetic import FAKE_GROUPS

    spec = parse_data_spec(spec)
    if spec.kind != "synthetic":
        raise ValueError(f"expected a synthetic data spec, got {spec}")
    values = _Values(spec)
    return {
        "n": values.integer("n", 400, 1),
        "size": values.integer("size", None, 32),
        "seed": values.integer("seed", 0, 0),
        "val": values.count_or_fraction("val", 0.1),
        "test": values.count_or_fraction("test", 0.2),
        "fake_groups": tuple(values.items("fake_groups") or FAKE_GROUPS),
        "noise": values.number("noise", 0.01),
    }


def _open_synthetic(values: _Values, split: str, image_size: int | None):
    from detector.data._base import SampleSubset
    from detector.data.synthetic import SyntheticDoF, synthetic_split_bounds

    opts = synthetic_settings(values.spec)
    n, val, test = opts.pop("n"), opts.pop("val"), opts.pop("test")
    if opts["size"] is None:
        opts["size"] = max(32, int(image_size)) if image_size else 128
    cut1, cut2 = synthetic_split_bounds(n, val, test)
    base = SyntheticDoF(n, **opts)
    start, stop = {"train": (0, cut1), "val": (cut1, cut2), "test": (cut2, n), "all": (0, n)}[split]
    return SampleSubset(base, range(start, stop))


def _hash_part(values: _Values, samples, split: str) -> list[int]:
    val, test = values.fraction("val", 0.1), values.fraction("test", 0.2)
    if val + test >= 1:
        raise ValueError(f"{values.spec.kind} data: val + test must be below 1, got {val + test}")
    return hash_split_indices(samples, split, val, test, values.integer("seed", 0, 0))


def _open_folders(values: _Values, split: str, image_size: int | None):
    from detector.data.folders import RealFakeFolders

    base = RealFakeFolders(
        values.folder("real"),
        values.folder("fake"),
        recursive=values.flag("recursive", True),
        image_size=_file_size(values, image_size),
        pair=values.text("pair", "none"),
    )
    return base.subset(_hash_part(values, base.samples, split))


def _open_index(values: _Values, split: str, image_size: int | None):
    from detector.data.folders import RealFakeFolders

    path = Path(values.required("path")).expanduser()
    if path.is_dir():
        path = path / "index.csv"
    base = RealFakeFolders.from_index(path, image_size=_file_size(values, image_size))
    if base.has_split_column:
        given = [k for k in ("val", "test", "seed") if values.has(k)]
        if given:
            raise ValueError(
                f"index {os.fspath(path)!r} has a split column; {given[0]}= applies only to an "
                "index without one"
            )
        keep = [i for i, sp in enumerate(base.row_splits) if split in ("all", sp)]
    else:
        keep = _hash_part(values, base.samples, split)
    return base.subset(keep)


def _open_cifake(values: _Values, split: str, image_size: int | None):
    from detector.data.cifake import CIFake

    val = values.fraction("val", 0.1)
    if val == 0:
        raise ValueError("cifake data: val must be a fraction in (0, 1), got 0")
    return CIFake(
        values.folder("root"),
        split=split,
        val_fraction=val,
        seed=values.integer("seed", 42, 0),
        file_order=values.text("file_order", "sorted"),
        image_size=_file_size(values, image_size),
    )


def _open_ffpp(values: _Values, split: str, image_size: int | None):
    from detector.data.faceforensics import COMPRESSIONS, FaceForensicsPP, find_compression

    root = values.folder("root")
    compression = values.text("compression")
    if compression is not None and compression not in COMPRESSIONS:
        raise ValueError(
            f"ffpp data: compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}"
        )
    manipulations = values.items("manipulations")
    if manipulations is None:
        level = COMPRESSIONS[compression or find_compression(root)]
        fakes = root / "manipulated_sequences"
        manipulations = sorted(
            p.name
            for p in (fakes.iterdir() if fakes.is_dir() else ())
            if (p / level / "v1faces").is_dir() and not p.name.startswith(".")
        )
        if not manipulations:
            raise FileNotFoundError(
                f"ffpp data: no manipulated_sequences/<M>/{level}/v1faces folder under "
                f"{os.fspath(root)!r}"
            )
    return FaceForensicsPP(
        root,
        manipulations=manipulations,
        split=split,
        compression=compression,
        frames_per_video=values.integer("frames", 32, 1),
        pooled=values.flag("pooled", False),
        masks=values.flag("masks", True),
        image_size=_file_size(values, image_size),
    )


_OPENERS: dict[str, Any] = {
    "synthetic": _open_synthetic,
    "folders": _open_folders,
    "index": _open_index,
    "cifake": _open_cifake,
    "ffpp": _open_ffpp,
}
