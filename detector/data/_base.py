"""Sample records, the file-backed dataset base class and the skipping collate."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageDataset",
    "ReadFailure",
    "Sample",
    "SampleSubset",
    "collate_samples",
    "count_groups",
    "list_images",
]

#: File name endings treated as images when folders are scanned.
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class Sample:
    """One sample of a dataset.

    Attributes
    ----------
    path : str
        Image file ("" for generated samples).
    label : int
        0 real, 1 fake.
    id : str
        Unique within the dataset, stable across runs.
    group : str
        "real", or the manipulation / generator that made the fake.
    pair_id : str
        For a fake, the id of the real sample it was made from ("" if unknown).
    mask_path : str
        Ground-truth manipulation mask file ("" if none).
    video : str
        Video the frame comes from ("" if not a video frame).
    """

    path: str
    label: int
    id: str
    group: str
    pair_id: str = ""
    mask_path: str = ""
    video: str = ""

    def __post_init__(self):
        if self.label not in (0, 1):
            raise ValueError(f"label must be 0 (real) or 1 (fake), got {self.label!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a plain dict."""
        return asdict(self)


@dataclass(frozen=True)
class ReadFailure:
    """An item whose image could not be read; :func:`collate_samples` drops it.

    Attributes
    ----------
    index : int
    path : str
    reason : str
    """

    index: int
    path: str
    reason: str


def _hidden(rel: Path) -> bool:
    """Whether a relative path passes through a hidden name (``.x``: temporary files, etc.)."""
    return any(part.startswith(".") for part in rel.parts)


def list_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (by extension, case-insensitive), sorted by path.

    Hidden files and folders (names starting with ``.``, such as the
    temporary files of an interrupted write) are left out.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {os.fspath(folder)!r}")
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p
        for p in it
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not _hidden(p.relative_to(folder))
    )


def count_groups(samples: Sequence[Sample]) -> dict[str, int]:
    """Return the number of samples of each group, in order of first appearance."""
    groups: dict[str, int] = {}
    for s in samples:
        groups[s.group] = groups.get(s.group, 0) + 1
    return groups


def _resize_chw(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    if mode == "nearest":
        return F.interpolate(x[None], size=(size, size), mode="nearest")[0]
    return F.interpolate(
        x[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )[0].clamp_(0.0, 1.0)


class ImageDataset(Dataset):
    """Images read from files, one :class:`Sample` each.

    Items are dicts: ``image`` float32 ``(3, H, W)`` in [0, 1], ``label``
    int, ``id``, ``group``, ``pair_id``, ``video`` str, ``index`` int, and
    ``mask`` float32 ``(1, H, W)`` in {0, 1} when the dataset has masks
    (zeros for samples without a mask file). An unreadable image gives a
    :class:`ReadFailure` instead, which :func:`collate_samples` drops and
    reports: no placeholder image is ever made up.

    Parameters
    ----------
    samples : sequence of Sample
    image_size : int, optional
        Resize images (bilinear, antialiased) and masks (nearest) to
        ``(image_size, image_size)``; needed to batch images of different sizes.
    """

    def __init__(self, samples: Sequence[Sample], image_size: int | None = None) -> None:
        if image_size is not None and (int(image_size) != image_size or image_size < 1):
            raise ValueError(f"image_size must be a positive int or None, got {image_size!r}")
        self.samples: list[Sample] = list(samples)
        self.image_size = None if image_size is None else int(image_size)
        self.has_masks = any(s.mask_path for s in self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> np.ndarray:
        """Labels of all samples, ndarray of shape (n_samples,), int64."""
        return np.array([s.label for s in self.samples], dtype=np.int64)

    def describe(self) -> dict[str, Any]:
        """Return a plain-dict summary (class, size, counts per group) for manifests."""
        out = {
            "dataset": type(self).__name__,
            "n": len(self.samples),
            "n_real": int(sum(s.label == 0 for s in self.samples)),
            "n_fake": int(sum(s.label == 1 for s in self.samples)),
            "groups": count_groups(self.samples),
            "image_size": self.image_size,
        }
        for key in ("spec", "split"):
            if getattr(self, key, None) is not None:
                out[key] = getattr(self, key)
        return out

    def subset(self, indices: Sequence[int]) -> ImageDataset:
        """Return the samples at ``indices`` as a new dataset (same image size and masks)."""
        out = ImageDataset([self.samples[i] for i in indices], image_size=self.image_size)
        out.has_masks = self.has_masks
        return out

    def load_image(self, index: int) -> torch.Tensor:
        """Read sample ``index``'s image as float32 ``(3, H, W)`` in [0, 1] (resized if set).

        Raises
        ------
        detector.imageio.ImageReadError
            If the file cannot be read.
        """
        from detector.imageio import read_image, to_float_chw

        img = torch.from_numpy(to_float_chw(read_image(self.samples[index].path)))
        if self.image_size is not None:
            img = _resize_chw(img, self.image_size, "bilinear")
        return img

    def load_mask(self, index: int, shape: tuple[int, int]) -> torch.Tensor:
        """Read sample ``index``'s mask as float32 ``(1, H, W)`` in {0, 1} (zeros if none)."""
        from detector.imageio import read_image

        path = self.samples[index].mask_path
        if not path:
            return torch.zeros((1, *shape), dtype=torch.float32)
        m = read_image(path).max(axis=2) > 127
        mask = torch.from_numpy(m.astype(np.float32))[None]
        return _resize_chw(mask, shape[0], "nearest") if mask.shape[-2:] != shape else mask

    def __getitem__(self, index: int) -> dict[str, Any] | ReadFailure:
        from detector.imageio import ImageReadError

        s = self.samples[index]
        try:
            image = self.load_image(index)
            item: dict[str, Any] = {"image": image}
            if self.has_masks:
                item["mask"] = self.load_mask(index, tuple(image.shape[-2:]))
        except ImageReadError as err:
            return ReadFailure(index, s.path or s.mask_path, err.reason)
        item.update(
            label=s.label, id=s.id, group=s.group, pair_id=s.pair_id, video=s.video, index=index
        )
        return item


class SampleSubset(Dataset):
    """Some samples of another dataset (e.g. one split), items re-numbered from 0.

    Works for any dataset with ``.samples`` (file-backed or generated):
    item ``i`` is ``base[indices[i]]`` with its ``index`` set to ``i``.

    Parameters
    ----------
    base : torch.utils.data.Dataset
        With ``.samples``.
    indices : sequence of int
        Positions in ``base``, in the order wanted.
    """

    def __init__(self, base: Dataset, indices: Sequence[int]) -> None:
        self.base = base
        self.indices = [int(i) for i in indices]
        self.samples: list[Sample] = [base.samples[i] for i in self.indices]
        self.has_masks = bool(getattr(base, "has_masks", False))
        self.image_size = getattr(base, "image_size", None)
        self.spec: str | None = None
        self.split: str | None = None

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def labels(self) -> np.ndarray:
        """Labels of all samples, ndarray of shape (n_samples,), int64."""
        return np.array([s.label for s in self.samples], dtype=np.int64)

    def describe(self) -> dict[str, Any]:
        """Return the base's summary with this subset's counts (and spec, split)."""
        base = self.base.describe() if hasattr(self.base, "describe") else {}
        out = {
            **base,
            "n": len(self.samples),
            "n_real": int(sum(s.label == 0 for s in self.samples)),
            "n_fake": int(sum(s.label == 1 for s in self.samples)),
            "groups": count_groups(self.samples),
        }
        for key in ("spec", "split"):
            if getattr(self, key, None) is not None:
                out[key] = getattr(self, key)
        return out

    def __getitem__(self, index: int) -> dict[str, Any] | ReadFailure:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index = index % len(self)
        item = self.base[self.indices[index]]
        if isinstance(item, ReadFailure):
            return ReadFailure(index, item.path, item.reason)
        return {**item, "index": index}


def collate_samples(batch: Sequence[dict[str, Any] | ReadFailure]) -> dict[str, Any]:
    """Batch dataset items, dropping unreadable ones.

    Parameters
    ----------
    batch : sequence of dict or ReadFailure

    Returns
    -------
    dict
        ``image`` ``(B, 3, H, W)``, ``label`` ``(B,)`` int64, ``mask``
        ``(B, 1, H, W)`` when every item has one, lists of str ``id``,
        ``group``, ``pair_id``, ``video``, ``index`` ``(B,)`` int64, and
        ``failed``: list of ``(path, reason)`` of the dropped items. With
        every item dropped, ``image`` is None and ``label`` is empty.
    """
    good = [b for b in batch if not isinstance(b, ReadFailure)]
    failed = [(b.path, b.reason) for b in batch if isinstance(b, ReadFailure)]
    out: dict[str, Any] = {"failed": failed}
    if not good:
        out.update(image=None, label=torch.zeros(0, dtype=torch.long), id=[], group=[])
        out.update(pair_id=[], video=[], index=torch.zeros(0, dtype=torch.long))
        return out
    shapes = {tuple(b["image"].shape) for b in good}
    if len(shapes) > 1:
        raise ValueError(
            f"images in one batch differ in size {sorted(shapes)[:2]}; give the dataset an "
            f"image_size so that they are resized"
        )
    out["image"] = torch.stack([b["image"] for b in good])
    out["label"] = torch.tensor([int(b["label"]) for b in good], dtype=torch.long)
    out["index"] = torch.tensor([int(b.get("index", -1)) for b in good], dtype=torch.long)
    for key in ("id", "group", "pair_id", "video"):
        out[key] = [str(b.get(key, "")) for b in good]
    if all("mask" in b for b in good):
        out["mask"] = torch.stack([b["mask"] for b in good])
    return out
