"""Real/fake folders, CSV indexes, hash splits, and skipping unreadable images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from detector.data import (
    ReadFailure,
    RealFakeFolders,
    collate_samples,
    hash_split,
    write_index,
)


def _png(path, value, size=(10, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)


@pytest.fixture
def folders(tmp_path):
    for i in range(3):
        _png(tmp_path / "real" / f"r{i}.png", 40 + i)
    _png(tmp_path / "fake" / "f0.png", 200)
    _png(tmp_path / "fake" / "gan" / "g0.jpg", 150)
    (tmp_path / "fake" / "gan" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    return tmp_path


def test_folders_labels_groups_and_ids(folders):
    ds = RealFakeFolders(folders / "real", folders / "fake")
    ids = [s.id for s in ds.samples]
    assert ids == [
        "real/r0.png",
        "real/r1.png",
        "real/r2.png",
        "fake/f0.png",
        "fake/gan/broken.png",
        "fake/gan/g0.jpg",
    ]
    assert [s.group for s in ds.samples] == ["real"] * 3 + ["fake", "gan", "gan"]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_allclose(ds[1]["image"].numpy(), 41 / 255, atol=1e-6)


def test_unreadable_images_are_dropped_and_reported(folders):
    ds = RealFakeFolders(folders / "real", folders / "fake", image_size=8)
    bad = ds[4]
    assert isinstance(bad, ReadFailure) and bad.path.endswith("broken.png")
    loader = DataLoader(ds, batch_size=6, collate_fn=collate_samples)
    batch = next(iter(loader))
    assert batch["image"].shape == (5, 3, 8, 8)
    assert batch["label"].tolist() == [0, 0, 0, 1, 1]  # no placeholder, no label -1
    assert len(batch["failed"]) == 1 and batch["failed"][0][0].endswith("broken.png")
    assert "broken.png" not in " ".join(batch["id"])


def test_all_failed_batch_is_empty_not_an_error(folders):
    ds = RealFakeFolders(folders / "real", folders / "fake")
    batch = collate_samples([ds[4]])
    assert batch["image"] is None and batch["label"].numel() == 0 and len(batch["failed"]) == 1


def test_different_sizes_need_an_image_size(folders):
    _png(folders / "real" / "big.png", 0, size=(20, 20))
    ds = RealFakeFolders(folders / "real", folders / "fake")
    with pytest.raises(ValueError, match="give the dataset an image_size"):
        collate_samples([ds[0], ds[1]])
    ds8 = RealFakeFolders(folders / "real", folders / "fake", image_size=8)
    assert collate_samples([ds8[0], ds8[1]])["image"].shape == (2, 3, 8, 8)


def test_from_index_reads_paths_masks_and_splits(folders):
    mask = np.zeros((10, 12, 3), np.uint8)
    mask[:5] = 255
    Image.fromarray(mask).save(folders / "m.png")
    rows = [
        {"id": "a", "path": "real/r0.png", "label": 0, "group": "real", "split": "train"},
        {
            "id": "b",
            "path": "fake/f0.png",
            "label": 1,
            "group": "swap",
            "pair_id": "a",
            "mask_path": "m.png",
            "split": "train",
        },
        {"id": "c", "path": str(folders / "real" / "r1.png"), "label": 0, "split": "test"},
    ]
    index = write_index(folders / "index.csv", rows)
    ds = RealFakeFolders.from_index(index, split="train")
    assert [s.id for s in ds.samples] == ["a", "b"] and ds.samples[1].pair_id == "a"
    assert ds.has_masks
    items = [ds[0], ds[1]]
    assert items[0]["mask"].sum() == 0 and items[1]["mask"].sum() == 5 * 12
    assert RealFakeFolders.from_index(index, split="test").samples[0].group == "real"
    with pytest.raises(ValueError, match="lists no samples with split 'val'"):
        RealFakeFolders.from_index(index, split="val")


def test_hash_split_partitions_stably(folders):
    ds = RealFakeFolders(folders / "real", folders / "fake")
    parts = [hash_split(ds, s, (0.5, 0.25, 0.25)) for s in ("train", "val", "test")]
    ids = [s.id for p in parts for s in p.samples]
    assert sorted(ids) == sorted(s.id for s in ds.samples)
    again = hash_split(ds, "train", (0.5, 0.25, 0.25))
    assert [s.id for s in again.samples] == [s.id for s in parts[0].samples]
    with pytest.raises(ValueError, match="fractions"):
        hash_split(ds, "train", (0.5, 0.5, 0.5))


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "real").mkdir()
    _png(tmp_path / "fake" / "x.png", 1)
    with pytest.raises(FileNotFoundError, match="no images in"):
        RealFakeFolders(tmp_path / "real", tmp_path / "fake")


def test_items_are_float_tensors_in_unit_range(folders):
    ds = RealFakeFolders(folders / "real", folders / "fake")
    img = ds[0]["image"]
    assert img.dtype == torch.float32 and 0.0 <= float(img.min()) <= float(img.max()) <= 1.0
