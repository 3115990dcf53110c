"""Datasets: FaceForensics++, CIFAKE, any real/fake folders, and built-in depth-of-field data.

Every dataset has ``.samples`` (a list of :class:`Sample` records with
``.path .label .id .group .pair_id .mask_path .video``) and items that are
dicts ``{"image": (3, H, W) float32 in [0, 1], "label": int, "id": str,
"group": str, "pair_id": str, "video": str, "index": int}`` plus ``"mask"``
``(1, H, W)`` when the dataset has masks. Batch them with
:func:`collate_samples`, which drops unreadable images and lists them.
"""

from detector.data._base import (
    IMAGE_EXTENSIONS,
    ImageDataset,
    ReadFailure,
    Sample,
    collate_samples,
    list_images,
)
from detector.data.cifake import CIFake
from detector.data.faceforensics import FaceForensicsPP, split_videos
from detector.data.folders import INDEX_COLUMNS, RealFakeFolders, write_index
from detector.data.select import DATASETS, hash_split, open_dataset
from detector.data.synthetic import FAKE_GROUPS, GROUPS, SyntheticDoF, write_synthetic

__all__ = [
    "CIFake",
    "DATASETS",
    "FAKE_GROUPS",
    "FaceForensicsPP",
    "GROUPS",
    "IMAGE_EXTENSIONS",
    "INDEX_COLUMNS",
    "ImageDataset",
    "ReadFailure",
    "RealFakeFolders",
    "Sample",
    "SyntheticDoF",
    "collate_samples",
    "hash_split",
    "open_dataset",
    "list_images",
    "split_videos",
    "write_index",
    "write_synthetic",
]
