"""One data spec for every command: parsing, errors, and the same splits everywhere."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from detector.data import (
    SampleSubset,
    SyntheticDoF,
    open_data,
    parse_data_spec,
    synthetic_split_bounds,
    write_index,
    write_synthetic,
)
from detector.data.spec import KEYS, synthetic_settings


def _png(path, value, size=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


# ---------------------------------------------------------------------------- parsing


def test_parse_keys_bare_values_and_round_trip():
    spec = parse_data_spec(" ffpp:data/ff, manipulations=Deepfakes+FaceSwap ,split=test")
    assert spec.kind == "ffpp" and spec.split == "test"
    assert spec.options == {"root": "data/ff", "manipulations": "Deepfakes+FaceSwap",
                            "split": "test"}  # fmt: skip
    assert str(spec) == "ffpp:root=data/ff,manipulations=Deepfakes+FaceSwap,split=test"
    assert parse_data_spec(str(spec)) == spec
    assert str(spec.with_split("val")).endswith(",split=val")
    assert spec.with_split(None).split is None
    assert parse_data_spec("index:runs/x.csv").options == {"path": "runs/x.csv"}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("nonsense:x=1", "unknown data kind 'nonsense'"),
        ("synthetic:n=4,colour=red", "unknown key 'colour' in synthetic data spec"),
        ("synthetic:n=4,n=5", "key 'n' given twice"),
        ("synthetic:400", "item '400' of data spec 'synthetic:400' is not KEY=VALUE"),
        ("folders:real=", "key 'real' of data spec 'folders:real=' has no value"),
        ("index:a.csv,split=dev", "split must be one of train, val, test, all; got 'dev'"),
        ("", "a data spec must be text"),
    ],
)
def test_parse_errors_name_the_value(text, match):
    with pytest.raises(ValueError, match=match):
        parse_data_spec(text)


def test_every_kind_takes_split():
    assert all("split" in keys for keys in KEYS.values())


@pytest.mark.parametrize(
    ("text", "exc", "match"),
    [
        ("synthetic:n=0", ValueError, "synthetic data: n must be a positive integer, got '0'"),
        ("synthetic:n=4,size=16", ValueError, "size must be an integer >= 32, got '16'"),
        ("synthetic:n=4,val=1.5", ValueError, "val must be a number of images or a fraction"),
        ("synthetic:n=4,val=2,test=2", ValueError, "leaves no scene for training"),
        ("folders:real=/no/r,fake=/no/f", FileNotFoundError, "real folder not found: '/no/r'"),
        ("folders:fake=/no/f", ValueError, "folders data needs real="),
        ("index:/no/such.csv", FileNotFoundError, "index not found: '/no/such.csv'"),
        ("cifake:root=/no/c", FileNotFoundError, "root folder not found: '/no/c'"),
        ("ffpp:root=/no/f", FileNotFoundError, "root folder not found: '/no/f'"),
        ("synthetic:n=4,split=test", ValueError, "names split=test, but split=train"),
    ],
)
def test_open_errors_name_the_value(text, exc, match):
    with pytest.raises(exc, match=match):
        open_data(text, "train")


# ---------------------------------------------------------------------------- synthetic


@pytest.mark.parametrize(
    ("n", "val", "test"),
    [(20, 0.1, 0.2), (112, 16, 32), (3528, 200, 128), (15, 0.1, 0.2), (7, 3, 0.25), (6, 0.1, 0.2)],
)
def test_synthetic_bounds_cut_whole_scenes(n, val, test):
    a, b = synthetic_split_bounds(n, val, test)
    assert a % 2 == 0 and b % 2 == 0 and 0 < a <= b <= n
    scenes = math.ceil(n / 2)
    # independent expectation of each part's scenes
    if isinstance(val, float) and isinstance(test, float):
        train = int(round((1 - val - test) * scenes, 9))
        n_val = int(val * scenes) or (1 if scenes - train >= 2 else 0)
    else:
        n_val = math.ceil(val / 2) if isinstance(val, int) else int(val * scenes)
        n_test = math.ceil(test / 2) if isinstance(test, int) else int(test * scenes)
        train = scenes - n_val - n_test
    assert (a, b) == (2 * train, min(n, 2 * (train + n_val)))


def test_synthetic_splits_partition_one_seed_and_keep_scenes_together():
    spec = "synthetic:n=40,size=32,seed=3"
    parts = {s: open_data(spec, s) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [28, 4, 8]
    everything = SyntheticDoF(40, size=32, seed=3)
    ids = [s.id for p in parts.values() for s in p.samples]
    assert ids == [s.id for s in everything.samples]  # train, val, test in order, no gap
    for part in parts.values():
        own = {s.id for s in part.samples}
        assert all(s.pair_id in own for s in part.samples if s.label == 1)
    test = parts["test"]
    assert isinstance(test, SampleSubset) and test.spec == spec + ",split=test"
    item = test[0]
    assert item["index"] == 0 and item["id"] == test.samples[0].id
    np.testing.assert_array_equal(item["image"].numpy(), everything[32]["image"].numpy())
    assert test.describe()["n"] == 8 and test.describe()["split"] == "test"


def test_synthetic_size_follows_the_model_unless_given():
    assert open_data("synthetic:n=4", "all", image_size=48)[0]["image"].shape == (3, 48, 48)
    assert open_data("synthetic:n=4,size=32", "all", image_size=48)[0]["image"].shape[-1] == 32
    assert open_data("synthetic:n=4", "all")[0]["image"].shape[-1] == 128


def test_make_data_index_holds_the_spec_splits(tmp_path):
    spec = "synthetic:n=24,size=32,seed=5,val=4,test=6"
    write_synthetic(tmp_path / "syn", progress=False, **{**synthetic_settings(spec), "size": 32})
    for split in ("train", "val", "test", "all"):
        a = open_data(f"index:{tmp_path / 'syn' / 'index.csv'}", split)
        b = open_data(spec, split)
        assert [s.id for s in a.samples] == [s.id for s in b.samples], split
        np.testing.assert_array_equal(a[1]["image"].numpy(), b[1]["image"].numpy())


# ---------------------------------------------------------------------------- files


@pytest.fixture
def paired_folders(tmp_path):
    for i in range(40):
        _png(tmp_path / "real" / f"img{i:02d}.jpg", i)
        _png(tmp_path / "fake" / "gan" / f"img{i:02d}.png", 100 + i)
    return tmp_path


def test_folders_hash_split_is_deterministic_and_keeps_pairs(paired_folders):
    spec = f"folders:real={paired_folders / 'real'},fake={paired_folders / 'fake'},pair=stem"
    parts = {s: open_data(spec, s) for s in ("train", "val", "test")}
    ids = [s.id for p in parts.values() for s in p.samples]
    assert sorted(ids) == sorted(s.id for s in open_data(spec, "all").samples)
    assert len(set(ids)) == 80
    for part in parts.values():
        own = {s.id for s in part.samples}
        fakes = [s for s in part.samples if s.label == 1]
        assert fakes and all(s.pair_id in own for s in fakes)  # a pair never straddles
    again = open_data(spec, "test")
    assert [s.id for s in again.samples] == [s.id for s in parts["test"].samples]
    other = open_data(spec + ",seed=1", "test")
    assert [s.id for s in other.samples] != [s.id for s in parts["test"].samples]


def test_index_without_split_column_is_hash_split_by_video(tmp_path):
    rows = []
    for v in range(12):
        for f in range(3):
            _png(tmp_path / "r" / f"{v}_{f}.png", v * 10 + f)
            rows.append({"id": f"r{v}/{f}", "path": f"r/{v}_{f}.png", "label": 0,
                         "video": f"real/{v}"})  # fmt: skip
            rows.append({"id": f"x{v}/{f}", "path": f"r/{v}_{f}.png", "label": 1,
                         "pair_id": f"r{v}/{f}", "video": f"fake/{v}"})  # fmt: skip
    write_index(tmp_path / "index.csv", rows)
    spec = f"index:{tmp_path / 'index.csv'},test=0.3"
    seen = {}
    for split in ("train", "val", "test"):
        try:
            part = open_data(spec, split)
        except ValueError as err:  # a small split may be empty: said so in one line
            assert "holds no samples" in str(err)
            continue
        for s in part.samples:
            seen[s.id] = split
    # every frame of a video, and every fake with its real, in one split
    for v in range(12):
        assert (
            len({seen[f"r{v}/{f}"] for f in range(3)} | {seen[f"x{v}/{f}"] for f in range(3)}) == 1
        )
    assert len(seen) == 72
    assert open_data(spec, "all").samples[1].video == "fake/0"
    with pytest.raises(ValueError, match="val must be a fraction in"):
        open_data(f"index:{tmp_path / 'index.csv'},val=3", "train")


def test_index_with_split_column_refuses_hash_keys(tmp_path):
    _png(tmp_path / "a.png", 1)
    write_index(tmp_path / "index.csv", [{"id": "a", "path": "a.png", "label": 0,
                                           "split": "train"}])  # fmt: skip
    assert len(open_data(f"index:{tmp_path}", "train")) == 1
    with pytest.raises(ValueError, match="has a split column; val= applies only"):
        open_data(f"index:{tmp_path},val=0.2", "train")
    with pytest.raises(ValueError, match="lists no samples|holds no samples"):
        open_data(f"index:{tmp_path}", "test")


def test_file_backed_data_is_resized_to_the_model_size(paired_folders):
    spec = f"folders:real={paired_folders / 'real'},fake={paired_folders / 'fake'}"
    assert open_data(spec, "all", image_size=16)[0]["image"].shape == (3, 16, 16)
    assert open_data(spec + ",image_size=12", "all", image_size=16)[0]["image"].shape[-1] == 12


def test_the_reference_documents_every_kind_and_key():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "data-spec.md").read_text()
    for kind, keys in KEYS.items():
        assert f"### `{kind}`" in text, kind
        section = text.split(f"### `{kind}`", 1)[1].split("\n### ", 1)[0]
        missing = [k for k in keys if f"`{k}`" not in section]
        assert not missing, (kind, missing)
