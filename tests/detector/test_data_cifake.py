"""CIFAKE layout and the paper's 9:1 train/val split with seed 42."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.model_selection import train_test_split

from detector.data import CIFake


@pytest.fixture(scope="module")
def cifake_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifake")
    for split, n in (("train", 20), ("test", 5)):
        for cls, value in (("REAL", 30), ("FAKE", 220)):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                name = f"{i} ({cls.lower()}).jpg" if cls == "REAL" else f"{i:04d}.png"
                Image.fromarray(np.full((6, 6, 3), value, np.uint8)).save(d / name)
            (d / "notes.txt").write_text("not an image")
    return root


def test_train_val_is_sklearn_split_with_seed_42(cifake_root):
    tr, va = CIFake(cifake_root, "train"), CIFake(cifake_root, "val")
    for cls, label in (("REAL", 0), ("FAKE", 1)):
        files = sorted(
            p.name for p in (cifake_root / "train" / cls).iterdir() if p.suffix != ".txt"
        )
        exp_tr, exp_va = train_test_split(files, test_size=0.1, random_state=42)
        got_tr = [s.id.split("/")[-1] for s in tr.samples if s.label == label]
        got_va = [s.id.split("/")[-1] for s in va.samples if s.label == label]
        assert got_tr == exp_tr and got_va == exp_va
        assert len(got_va) == 2 and not set(got_tr) & set(got_va)


def test_test_split_is_the_test_folder(cifake_root):
    te = CIFake(cifake_root, "test")
    assert len(te) == 10 and sorted({s.group for s in te.samples}) == ["fake", "real"]
    assert all(s.id.startswith("test/") for s in te.samples)
    item = te[0]
    assert item["image"].shape == (3, 6, 6) and item["label"] == 0 and "mask" not in item


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "dev"}, "split must be"),
        ({"val_fraction": 1.5}, "val_fraction"),
        ({"file_order": "random"}, "file_order"),
    ],
)
def test_errors(cifake_root, kwargs, match):
    with pytest.raises(ValueError, match=match):
        CIFake(cifake_root, **kwargs)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="CIFAKE folder not found"):
        CIFake(tmp_path, "train")
