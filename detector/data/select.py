"""Open a split of any supported dataset by name (what ``defocus train/evaluate`` use)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from detector.data._base import ImageDataset
from detector.data.cifake import CIFake
from detector.data.faceforensics import FaceForensicsPP
from detector.data.folders import RealFakeFolders
from detector.data.synthetic import SyntheticDoF

__all__ = ["DATASETS", "hash_split", "open_dataset"]

#: Dataset names :func:`open_dataset` knows.
DATASETS: tuple[str, ...] = ("synthetic", "index", "folders", "ffpp", "cifake")

#: SyntheticDoF seed offsets of the splits (train uses the seed itself).
_SYNTHETIC_OFFSETS = {"train": 0, "val": 1, "test": 2}


def hash_split(
    ds: ImageDataset, split: str, fractions: Sequence[float] = (0.8, 0.2, 0.0)
) -> ImageDataset:
    """Cut a dataset into train/val/test by a hash of each sample id.

    Stable: a sample stays in its split whatever else is added or removed.

    Parameters
    ----------
    ds : ImageDataset
    split : {"train", "val", "test"}
    fractions : sequence of 3 floats summing to 1

    Returns
    -------
    ImageDataset
        The samples of ``split`` (same image size).
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(
            f"fractions must be 3 non-negative numbers summing to 1, got {fractions!r}"
        )
    names = ("train", "val", "test")
    if split not in names:
        raise ValueError(f"split must be one of {names}, got {split!r}")
    lo = sum(fractions[: names.index(split)])
    hi = lo + fractions[names.index(split)]
    keep = []
    for s in ds.samples:
        u = int(hashlib.sha256(s.id.encode()).hexdigest()[:12], 16) / 16**12
        if lo <= u < hi:
            keep.append(s)
    out = ImageDataset(keep, image_size=ds.image_size)
    out.has_masks = ds.has_masks
    return out


def open_dataset(name: str, split: str, image_size: int | None = None, **opts: Any) -> Dataset:
    """Open one split of a dataset.

    Parameters
    ----------
    name : {"synthetic", "index", "folders", "ffpp", "cifake"}
    split : {"train", "val", "test"}
    image_size : int, optional
        Resize images to this square size (synthetic: the render size).
    **opts
        synthetic: ``n`` (per split; val and test get half), ``seed``;
        index: ``root`` (a CSV, or a folder holding ``index.csv``);
        folders: ``real_dir``, ``fake_dir``, ``fractions`` (hash split);
        ffpp: ``root``, ``manipulations``, ``compression``;
        cifake: ``root``.

    Returns
    -------
    torch.utils.data.Dataset
    """
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if name == "synthetic":
        n = int(opts.get("n") or 400)
        n = n if split == "train" else max(2, n // 2)
        seed = int(opts.get("seed") or 0) * 3 + _SYNTHETIC_OFFSETS[split]
        return SyntheticDoF(n, size=image_size or 128, seed=seed)
    root = opts.get("root")
    if name == "index":
        if not root:
            raise ValueError(
                "dataset 'index' needs a root: an index CSV or a folder holding index.csv"
            )
        path = Path(root)
        if path.is_dir():
            path = path / "index.csv"
        return RealFakeFolders.from_index(path, split=split, image_size=image_size)
    if name == "folders":
        real_dir, fake_dir = opts.get("real_dir"), opts.get("fake_dir")
        if not real_dir or not fake_dir:
            raise ValueError("dataset 'folders' needs real_dir and fake_dir")
        ds = RealFakeFolders(real_dir, fake_dir, image_size=image_size)
        return hash_split(ds, split, opts.get("fractions") or (0.7, 0.1, 0.2))
    if not root:
        raise ValueError(f"dataset {name!r} needs a root folder")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{name} root not found: {os.fspath(root)!r}")
    if name == "ffpp":
        return FaceForensicsPP(
            root,
            manipulations=opts.get("manipulations") or ("Deepfakes",),
            split=split,
            compression=opts.get("compression") or "c0",
            image_size=image_size,
        )
    return CIFake(root, split=split, image_size=image_size)
