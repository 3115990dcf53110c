"""CIFAKE: real CIFAR-10 images and their Stable Diffusion counterparts.

Layout under ``root``::

    train/REAL/*.jpg|png    train/FAKE/*.jpg|png
    test/REAL/*.jpg|png     test/FAKE/*.jpg|png

The paper's split (its ``dataset/CiFake.py``): ``train`` is cut 9:1 into
train and val with ``sklearn.model_selection.train_test_split(files,
test_size=0.1, random_state=42)``, REAL and FAKE separately; ``test`` is the
test folder. The paper passes the files in ``os.listdir`` order, which
depends on the file system; here they are sorted by name by default
(``file_order="listdir"`` reproduces the paper's call on the same disk).
"""

from __future__ import annotations

import os
from pathlib import Path

from detector.data._base import ImageDataset, Sample

__all__ = ["CIFake"]

_PAPER_EXTENSIONS = (".jpg", ".jpeg", ".png")


class CIFake(ImageDataset):
    """CIFAKE real/fake images, one split.

    Parameters
    ----------
    root : str or path-like
        The folder holding ``train`` and ``test``.
    split : {"train", "val", "test", "all"}, default="test"
        ``all``: every image of both folders.
    val_fraction : float, default=0.1
    seed : int, default=42
        ``random_state`` of the train/val cut.
    file_order : {"sorted", "listdir"}, default="sorted"
    image_size : int, optional

    Notes
    -----
    Ids are ``<split folder>/<REAL|FAKE>/<file name>``; groups ``"real"`` and
    ``"fake"``; no pairs, videos or masks.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "test",
        val_fraction: float = 0.1,
        seed: int = 42,
        file_order: str = "sorted",
        image_size: int | None = None,
    ) -> None:
        from sklearn.model_selection import train_test_split

        root = Path(root)
        if split not in ("train", "val", "test", "all"):
            raise ValueError(f"split must be 'train', 'val', 'test' or 'all', got {split!r}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
        if file_order not in ("sorted", "listdir"):
            raise ValueError(f"file_order must be 'sorted' or 'listdir', got {file_order!r}")
        folders = ("train", "test") if split == "all" else ("test" if split == "test" else "train",)
        samples: list[Sample] = []
        for folder_name in folders:
            folder = root / folder_name
            for name, label in (("REAL", 0), ("FAKE", 1)):
                sub = folder / name
                if not sub.is_dir():
                    raise FileNotFoundError(f"CIFAKE folder not found: {os.fspath(sub)!r}")
                files = [f for f in os.listdir(sub) if f.lower().endswith(_PAPER_EXTENSIONS)]
                if file_order == "sorted":
                    files = sorted(files)
                if split in ("train", "val"):
                    train, val = train_test_split(files, test_size=val_fraction, random_state=seed)
                    files = train if split == "train" else val
                group = "real" if label == 0 else "fake"
                samples += [
                    Sample(os.fspath(sub / f), label, f"{folder_name}/{name}/{f}", group)
                    for f in files
                ]
        self.root, self.split = root, split
        super().__init__(samples, image_size=image_size)
