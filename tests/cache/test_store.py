"""The cache file format: schema validation, atomic shards, verification, merging."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from cache import (
    CacheCorruptError,
    CacheFormatError,
    CacheMismatchError,
    CacheWriter,
    PickledArrayError,
    merge_caches,
    open_cache,
)
from cache.store import _write_manifest, npz_bytes


def _shard(group, n, rng, start=0, size=8, label=None):
    ids = [f"{group}-{i:03d}" for i in range(start, start + n)]
    return {
        "id": ids,
        "group": [group] * n,
        "label": np.full(n, 1 if label is None and group != "real" else (label or 0)),
        "pair_id": [f"real-{i:03d}" if group != "real" else "" for i in range(start, start + n)],
        "defocus": rng.random((n, size, size)),
        "attr_defocus": rng.standard_normal((n, size, size)),
        "attr_rgb": rng.standard_normal((n, 3, size, size)),
        "logit_defocus": rng.standard_normal(n),
        "features_defocus": rng.standard_normal((n, 5)),
        "mask": (rng.random((n, size, size)) > 0.5).astype(np.uint8),
    }


@pytest.fixture
def small_cache(tmp_path, rng):
    w = CacheWriter(tmp_path / "c", config={"explainer": {"name": "x", "seed": 0}})
    expected = {}
    for group, n in [("real", 5), ("fake", 3), ("real", 2)]:
        arrays = _shard(group, n, rng, start=sum(len(a["id"]) for a in expected.get(group, [])))
        w.write_shard(group, arrays)
        expected.setdefault(group, []).append(arrays)
    return tmp_path / "c", expected


def test_roundtrip_dtypes_shapes_and_order(small_cache):
    path, expected = small_cache
    c = open_cache(path)
    assert c.groups == ["real", "fake"]
    assert c.n_samples() == 10 and c.n_samples("real") == 7 and len(c) == 10
    assert c.fields == [
        "id",
        "group",
        "label",
        "pair_id",
        "defocus",
        "attr_defocus",
        "attr_rgb",
        "logit_defocus",
        "features_defocus",
        "mask",
    ]
    d = c.load("defocus", "real")
    assert d.dtype == np.float16 and d.shape == (7, 8, 8)
    want = np.concatenate([a["defocus"] for a in expected["real"]]).astype(np.float16)
    np.testing.assert_array_equal(d, want)
    attr = c.load("attr_rgb")
    assert attr.dtype == np.float32 and attr.shape == (10, 3, 8, 8)
    assert c.load("label").dtype == np.int8
    assert c.load("id").dtype.kind == "U"
    assert c.load("id", "fake").tolist() == ["fake-000", "fake-001", "fake-002"]
    shards = list(c.iter_shards("real", fields=["id", "logit_defocus"]))
    assert [len(s["id"]) for s in shards] == [5, 2] and set(shards[0]) == {"id", "logit_defocus"}
    assert c.sizes == {"S": 8, "R": 8, "D": 5}
    both = c.arrays(["id", "label"], "fake")
    assert both["label"].tolist() == [1, 1, 1]


def test_shards_are_plain_npz_and_byte_reproducible(small_cache, tmp_path, rng):
    path, expected = small_cache
    c = open_cache(path)
    first = c.shards[0]
    with np.load(path / first["file"], allow_pickle=False) as npz:  # readable by plain numpy
        np.testing.assert_array_equal(npz["id"], c.load("id")[:5])
    again = CacheWriter(tmp_path / "again", config=c.config)
    entry = again.write_shard("real", expected["real"][0])
    assert entry["sha256"] == first["sha256"]


def test_verify_passes_then_names_flipped_and_truncated_shards(small_cache):
    path, _ = small_cache
    c = open_cache(path)
    report = c.verify()
    assert report.ok and report.n_shards == 3 and report.n_samples == 10
    flipped, truncated = c.shards[0], c.shards[1]
    raw = bytearray((path / flipped["file"]).read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (path / flipped["file"]).write_bytes(bytes(raw))
    data = (path / truncated["file"]).read_bytes()
    (path / truncated["file"]).write_bytes(data[: len(data) - 100])
    report = open_cache(path).verify()
    assert not report.ok and len(report.problems) == 2
    assert flipped["name"] in report.problems[0] and "sha256" in report.problems[0]
    assert truncated["name"] in report.problems[1] and "truncated" in report.problems[1]
    with pytest.raises(CacheCorruptError, match=flipped["name"]):
        open_cache(path).load("defocus")
    with pytest.raises(CacheCorruptError, match=truncated["name"]):
        open_cache(path).load("id", "fake")


def test_each_shard_is_hashed_once_per_open_and_rehashed_when_changed(small_cache, monkeypatch):
    import cache.store as store

    path, expected = small_cache
    calls = []
    real_hash = store.sha256_bytes
    monkeypatch.setattr(store, "sha256_bytes", lambda data: calls.append(1) or real_hash(data))
    c = open_cache(path)
    first = c.load("defocus", "real")
    assert len(calls) == 2  # two shards of group "real"
    second = c.load("attr_defocus", "real")
    assert len(calls) == 2  # unchanged files: read without hashing again
    np.testing.assert_array_equal(first, c.load("defocus", "real"))
    want = np.concatenate([a["attr_defocus"] for a in expected["real"]]).astype(np.float32)
    np.testing.assert_array_equal(second, want)
    # a shard rewritten after it was verified (new mtime) is hashed again and refused
    target = path / c.shards[0]["file"]
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    target.write_bytes(bytes(raw))
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    with pytest.raises(CacheCorruptError, match=c.shards[0]["name"]):
        c.load("defocus", c.shards[0]["group"])
    # verify always re-hashes every shard
    assert not c.verify().ok


def test_missing_shard_is_reported(small_cache):
    path, _ = small_cache
    c = open_cache(path)
    os.unlink(path / c.shards[2]["file"])
    report = c.verify()
    assert not report.ok and c.shards[2]["name"] in report.problems[0]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda a: a.update(bogus=np.zeros(3)), "unknown fields"),
        (lambda a: a.pop("pair_id"), "required fields missing"),
        (lambda a: a.update(label=np.array([0, 2, 1])), r"may hold only \[0, 1\]"),
        (lambda a: a.update(defocus=np.zeros((3, 4, 4))), "S=4 but the cache uses S=8"),
        (lambda a: a.update(defocus=np.zeros((2, 8, 8))), "holds 2 samples"),
        (lambda a: a.update(attr_rgb=np.zeros((3, 8, 8))), r"shape \(N, 3, R, R\)"),
        (lambda a: a.update(id=np.array(["a", "a", "b"])), "duplicate ids"),
        (lambda a: a.update(group=np.array(["fake", "real", "fake"])), "one group"),
        (lambda a: a.update(id=np.array(["a", 1, "b"], dtype=object)), "object array"),
        (lambda a: a.update(defocus=np.full((3, 8, 8), np.nan)), "non-finite"),
        (lambda a: a.update(defocus=np.full((3, 8, 8), 1e6)), "overflows float16"),
    ],
)
def test_schema_errors_name_the_problem(tmp_path, rng, change, match):
    w = CacheWriter(tmp_path / "c")
    w.write_shard("fake", _shard("fake", 3, rng))
    arrays = _shard("fake", 3, rng, start=3)
    change(arrays)
    with pytest.raises(CacheFormatError, match=match):
        w.write_shard("fake", arrays)
    assert open_cache(tmp_path / "c").n_samples() == 3  # nothing half-written


def test_same_fields_in_every_shard(tmp_path, rng):
    w = CacheWriter(tmp_path / "c")
    w.write_shard("real", _shard("real", 2, rng))
    arrays = _shard("fake", 2, rng)
    del arrays["mask"]
    with pytest.raises(CacheFormatError, match="same fields"):
        w.write_shard("fake", arrays)


def test_config_mismatch_is_refused_naming_the_difference(tmp_path, rng):
    cfg = {"explainer": {"name": "shap-gradient", "nsamples": 200, "seed": 0}, "size": 8}
    CacheWriter(tmp_path / "c", config=cfg).write_shard("real", _shard("real", 2, rng))
    CacheWriter(tmp_path / "c", config=json.loads(json.dumps(cfg)))  # equal: fine
    other = {"explainer": {"name": "shap-gradient", "nsamples": 50, "seed": 0}, "size": 8}
    with pytest.raises(CacheMismatchError, match=r"explainer\.nsamples: 200 != 50"):
        CacheWriter(tmp_path / "c", config=other)


def test_merge_partial_caches(tmp_path, rng):
    cfg = {"run": 1}
    a, b = CacheWriter(tmp_path / "a", cfg), CacheWriter(tmp_path / "b", cfg)
    a.write_shard("real", _shard("real", 3, rng), name="00000-real")
    b.write_shard("fake", _shard("fake", 2, rng), name="00001-fake", failed=[("fake-9", "bad")])
    merged = merge_caches(tmp_path / "m", [tmp_path / "a", tmp_path / "b"])
    assert merged.groups == ["real", "fake"] and merged.n_samples() == 5
    assert merged.verify().ok
    assert merged.failed == [{"id": "fake-9", "group": "fake", "reason": "bad"}]
    merge_caches(tmp_path / "m", [tmp_path / "a"])  # idempotent
    assert open_cache(tmp_path / "m").n_samples() == 5
    CacheWriter(tmp_path / "z", {"run": 2}).write_shard("real", _shard("real", 1, rng))
    with pytest.raises(CacheMismatchError, match="run: 1 != 2"):
        merge_caches(tmp_path / "m", [tmp_path / "z"])


def test_object_arrays_are_refused_on_load(tmp_path):
    legacy = tmp_path / "legacy.npz"
    np.savez(legacy, shap=np.array([np.zeros(3), np.zeros(4)], dtype=object))
    with pytest.raises(CacheFormatError, match="import-legacy"):
        open_cache(legacy)
    # an object array smuggled into a shard behind a valid checksum is still refused
    w = CacheWriter(tmp_path / "c")
    entry = w.write_shard("real", _shard("real", 2, np.random.default_rng(0)))
    path = tmp_path / "c" / entry["file"]
    with zipfile.ZipFile(path, "a") as zf:
        with zf.open("evil.npy", "w") as fh:
            np.lib.format.write_array(fh, np.array([{}], dtype=object), allow_pickle=True)
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    from cache.store import sha256_file

    manifest["shards"][0].update(sha256=sha256_file(path), bytes=path.stat().st_size)
    manifest["fields"].append("evil")
    _write_manifest(tmp_path / "c", manifest)  # resealed: the smuggler recomputed every digest
    with pytest.raises(PickledArrayError, match="trust-pickle"):
        list(open_cache(tmp_path / "c").iter_shards())


def test_writer_refuses_object_arrays_directly():
    with pytest.raises(CacheFormatError, match="object array"):
        npz_bytes({"x": np.array([None, 1], dtype=object)})


def test_not_a_cache(tmp_path):
    with pytest.raises(CacheFormatError, match="no manifest.json"):
        open_cache(tmp_path)
    with pytest.raises(CacheFormatError, match="no cache folder"):
        open_cache(tmp_path / "nope")
    c = open_cache(CacheWriter(tmp_path / "empty").path)
    assert c.groups == [] and c.n_samples() == 0 and c.verify().ok
    with pytest.raises(KeyError, match="group 'real' is not in this cache"):
        c.n_samples("real")
