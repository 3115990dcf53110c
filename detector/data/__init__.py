"""Datasets: FaceForensics++, CIFAKE, any real/fake folders, and built-in depth-of-field data.

Every dataset has ``.samples`` (a list of :class:`Sample` records with
``.path .label .id .group .pair_id .mask_path .video``) and items that are
dicts ``{"image": (3, H, W) float32 in [0, 1], "label": int, "id": str,
"group": str, "pair_id": str, "video": str, "index": int}`` plus ``"mask"``
``(1, H, W)`` when the dataset has masks. Batch them with
:func:`collate_samples`, which drops unreadable images and lists them.

Commands open data through one spec (:func:`open_data`, e.g.
``open_data("folders:real=a,fake=b,pair=stem", split="test")``);
:func:`prepare_ffpp` turns FaceForensics++ videos into the face crops the
``ffpp:`` kind reads.
"""

from detector.data._base import (
    IMAGE_EXTENSIONS,
    ImageDataset,
    ReadFailure,
    Sample,
    SampleSubset,
    collate_samples,
    list_images,
)
from detector.data.cifake import CIFake
from detector.data.faceforensics import FaceForensicsPP, split_videos
from detector.data.ffpp_videos import PrepareConfig, PrepareResult, prepare_ffpp
from detector.data.folders import INDEX_COLUMNS, RealFakeFolders, write_index
from detector.data.pairing import PAIR_MODES, report_pairing
from detector.data.spec import DATA_KINDS, DataSpec, background_data, open_data, parse_data_spec
from detector.data.splits import SPLITS, hash_split
from detector.data.synthetic import (
    FAKE_GROUPS,
    GROUPS,
    SyntheticDoF,
    prerender,
    synthetic_split_bounds,
    write_synthetic,
)

__all__ = [
    "CIFake",
    "DATA_KINDS",
    "DataSpec",
    "background_data",
    "FAKE_GROUPS",
    "FaceForensicsPP",
    "GROUPS",
    "IMAGE_EXTENSIONS",
    "INDEX_COLUMNS",
    "ImageDataset",
    "PAIR_MODES",
    "PrepareConfig",
    "PrepareResult",
    "ReadFailure",
    "RealFakeFolders",
    "SPLITS",
    "Sample",
    "SampleSubset",
    "SyntheticDoF",
    "collate_samples",
    "hash_split",
    "list_images",
    "open_data",
    "parse_data_spec",
    "prepare_ffpp",
    "prerender",
    "report_pairing",
    "split_videos",
    "synthetic_split_bounds",
    "write_index",
    "write_synthetic",
]
