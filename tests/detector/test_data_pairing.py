"""Pairing fakes with their real images in folders and indexes, and saying when none are paired."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from detector.data import RealFakeFolders, Sample, open_data, write_index
from detector.data.pairing import match_names, report_pairing
from detector.data.splits import unit_keys


def _png(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 6, 3), value, np.uint8)).save(path)


@pytest.fixture
def tree(tmp_path):
    for rel in ("a.jpg", "b.png", "sub/c.png"):
        _png(tmp_path / "real" / rel)
    for rel in ("a.png", "gan/b.png", "gan/sub/c.png", "other/zzz.png"):
        _png(tmp_path / "fake" / rel, 200)
    return tmp_path


def test_pair_by_stem(tree):
    ds = RealFakeFolders(tree / "real", tree / "fake", pair="stem")
    pairs = {s.id: s.pair_id for s in ds.samples if s.label == 1}
    assert pairs == {
        "fake/a.png": "real/a.jpg",
        "fake/gan/b.png": "real/b.png",
        "fake/gan/sub/c.png": "real/sub/c.png",
        "fake/other/zzz.png": "",
    }
    assert ds.pairing == {"n_fake": 4, "n_paired": 3, "unpaired": ["fake/other/zzz.png"]}


def test_pair_by_path_allows_a_generator_folder(tree):
    ds = RealFakeFolders(tree / "real", tree / "fake", pair="path")
    pairs = {s.id: s.pair_id for s in ds.samples if s.label == 1}
    assert pairs["fake/a.png"] == "real/a.jpg"  # same path, other extension
    assert pairs["fake/gan/sub/c.png"] == "real/sub/c.png"  # without the group folder
    assert pairs["fake/gan/b.png"] == "real/b.png"


def test_ambiguous_stems_are_refused(tree):
    _png(tree / "real" / "sub" / "a.png")
    with pytest.raises(ValueError, match=r"share the key 'a'.*use pair=path"):
        RealFakeFolders(tree / "real", tree / "fake", pair="stem")
    ds = RealFakeFolders(tree / "real", tree / "fake", pair="path")  # paths stay distinct
    assert {s.pair_id for s in ds.samples if s.id == "fake/a.png"} == {"real/a.jpg"}


def test_no_pairs_gives_a_warning_naming_how_to_pair(tree, caplog):
    with caplog.at_level(logging.WARNING, logger="detector.data"):
        ds = RealFakeFolders(tree / "real", tree / "fake")
    assert ds.pairing["n_paired"] == 0
    assert "no fake has a real partner" in caplog.text
    assert "pair=stem" in caplog.text and "pair_id column" in caplog.text


def test_an_index_pairs_through_its_pair_id_column_and_keeps_videos(tmp_path, caplog):
    _png(tmp_path / "r.png")
    _png(tmp_path / "f.png", 9)
    rows = [
        {"id": "r", "path": "r.png", "label": 0, "video": "vid/1", "frame": 3},
        {"id": "f", "path": "f.png", "label": 1, "pair_id": "r", "video": "vid/2", "frame": 3},
        {"id": "g", "path": "f.png", "label": 1, "pair_id": "missing"},
    ]
    write_index(tmp_path / "index.csv", rows)
    with caplog.at_level(logging.WARNING, logger="detector.data"):
        ds = open_data(f"index:{tmp_path / 'index.csv'}", "all")
    assert [(s.pair_id, s.video) for s in ds.samples] == [("", "vid/1"), ("r", "vid/2"),
                                                          ("missing", "")]  # fmt: skip
    assert "1 of 2 fakes have no real partner (e.g. 'g')" in caplog.text
    assert ds[1]["video"] == "vid/2"


def test_match_names_errors():
    with pytest.raises(ValueError, match="pair must be one of none, stem, path; got 'name'"):
        match_names([], [], "name")


def test_units_follow_videos_and_partners():
    samples = [
        Sample("", 0, "r1", "real", video="real/1"),
        Sample("", 0, "r2", "real"),
        Sample("", 1, "f1", "swap", "r1", video="swap/1_2"),
        Sample("", 1, "f2", "swap", "r2"),
        Sample("", 1, "f3", "swap", "nobody", video="swap/3_4"),
    ]
    assert unit_keys(samples) == ["video:real/1", "id:r2", "video:real/1", "id:r2",
                                  "video:swap/3_4"]  # fmt: skip
    report = report_pairing(samples, "x", warn=False)
    assert report == {"n_fake": 3, "n_paired": 2, "unpaired": ["f3"]}
