"""The cache's ``video`` field: filled from the data's videos, absent when it has none."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cache import open_cache
from cache.extract import ExtractConfig, extract
from cache.schema import FIELDS
from cache.testing import TinyDataset, TinyDetector
from detector.data import open_data, write_index

CFG = ExtractConfig(nsamples=4, n_background=2, shard_size=4, batch_size=2, seed=1)


def _models():
    return TinyDetector("defocus", 16, 4, seed=0).eval(), TinyDetector("rgb", 16, 4, seed=1).eval()


def test_schema_declares_video_as_an_optional_string():
    spec = FIELDS["video"]
    assert spec.kind == "str" and spec.shape == () and not spec.required


def test_video_ids_from_an_index_reach_the_cache(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for v in range(3):
        for f in range(2):
            for label, prefix in ((0, "real"), (1, "swap")):
                name = f"{prefix}_{v}_{f}.png"
                Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
                    tmp_path / name
                )
                rows.append(
                    {
                        "id": f"{prefix}/{v}/{f}",
                        "path": name,
                        "label": label,
                        "group": prefix,
                        "pair_id": f"real/{v}/{f}" if label else "",
                        "video": f"{prefix}/{v}",
                        "split": "test" if v else "train",
                    }
                )
    write_index(tmp_path / "index.csv", rows)
    ds = open_data(f"index:{tmp_path / 'index.csv'}", "test", image_size=16)
    d, r = _models()
    cache = extract(ds, tmp_path / "cache", d, r, CFG, progress=False).cache
    cache = open_cache(cache.path)
    assert "video" in cache.fields
    want = {s.id: s.video for s in ds.samples}
    for group in cache.groups:
        ids, videos = cache.load("id", group), cache.load("video", group)
        assert len(ids) == 4
        assert [want[i] for i in ids] == videos.tolist()
    assert cache.verify().ok


def test_data_without_videos_has_no_video_field(tmp_path):
    d, r = _models()
    cache = extract(TinyDataset(4, 16), tmp_path / "c", d, r, CFG, progress=False).cache
    assert "video" not in cache.fields
    with pytest.raises(Exception, match="video"):
        cache.load("video")
