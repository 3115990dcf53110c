"""Caches that never lie: planned shards, manifest integrity, unknown files, repair."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import cache.integrity as integrity
from cache import (
    CacheCorruptError,
    CacheFormatError,
    CacheKeyError,
    CacheManifestError,
    CacheMismatchError,
    CacheWriter,
    UnprotectedCacheWarning,
    open_cache,
    repair_cache,
    verify_cache,
)
from cache.store import ids_digest

SEED = 0
CONFIG = {"explainer": {"name": "shap-gradient", "nsamples": 8, "seed": 0}, "size": 8}


def _arrays(group, ids, rng, size=8):
    n = len(ids)
    return {
        "id": list(ids),
        "group": [group] * n,
        "label": np.full(n, 0 if group == "real" else 1),
        "pair_id": [""] * n,
        "defocus": rng.random((n, size, size)),
        "attr_defocus": rng.standard_normal((n, size, size)),
        "logit_defocus": rng.standard_normal(n),
    }


# three planned shards: two of "real", one of "fake"; the last one not written yet
LAYOUT = [
    ("00000-real", "real", ["r0", "r1", "r2"]),
    ("00001-real", "real", ["r3", "r4"]),
    ("00002-fake", "fake", ["f0", "f1", "f2"]),
]
PLAN = [
    {"name": n, "group": g, "n_samples": len(ids), "ids_sha256": ids_digest(ids)}
    for n, g, ids in LAYOUT
]


def _write(folder, layout, rng, info=None):
    w = CacheWriter(folder, config=CONFIG, info=info or {"command": "x"}, plan=PLAN)
    for name, group, ids in layout:
        w.write_shard(group, _arrays(group, ids, rng), name=name)
    return w


@pytest.fixture
def partial(tmp_path):
    """A cache whose extraction stopped after two of its three planned shards."""
    rng = np.random.default_rng(SEED)
    _write(tmp_path / "c", LAYOUT[:2], rng)
    return tmp_path / "c"


@pytest.fixture
def full(tmp_path):
    rng = np.random.default_rng(SEED)
    _write(tmp_path / "c", LAYOUT, rng)
    return tmp_path / "c"


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def _edit(folder, change, keep_integrity=True):
    """Edit manifest.json the way a person or a script would: load, change, dump."""
    m = _manifest(folder)
    if not keep_integrity:
        m.pop("integrity")
    change(m)
    (folder / "manifest.json").write_text(json.dumps(m, indent=2))


# --------------------------------------------------------------------------- plan


def test_interrupted_cache_is_incomplete_not_ok_and_names_the_missing_shard(partial):
    report = verify_cache(partial)
    assert report.status == "incomplete" and not report.complete
    assert report.ok  # nothing present is wrong: resumable
    assert (report.n_planned, report.n_present) == (3, 2)
    assert report.missing == ["00002-fake"] and report.problems == []
    rng = np.random.default_rng(SEED + 1)
    CacheWriter(partial).write_shard("fake", _arrays("fake", LAYOUT[2][2], rng), "00002-fake")
    report = verify_cache(partial)
    assert report.status == "complete" and report.n_samples == 8 and report.missing == []


def test_plan_is_recorded_before_any_shard_and_a_different_plan_is_refused(tmp_path):
    CacheWriter(tmp_path / "c", config=CONFIG, plan=PLAN)
    c = open_cache(tmp_path / "c")
    assert c.planned == PLAN and c.shards == []
    assert verify_cache(c).missing == [p["name"] for p in PLAN]
    other = [dict(PLAN[0], n_samples=4), *PLAN[1:]]
    with pytest.raises(CacheMismatchError, match="planned with other shards"):
        CacheWriter(tmp_path / "c", config=CONFIG, plan=other)


def test_a_shard_that_holds_other_samples_than_planned_is_corrupt(tmp_path):
    rng = np.random.default_rng(SEED)
    w = _write(tmp_path / "c", LAYOUT[:1], rng)
    # right name and count, other ids: the plan's id digest catches it
    w.write_shard("real", _arrays("real", ["r3", "r9"], rng), name="00001-real")
    report = verify_cache(tmp_path / "c")
    assert report.status == "corrupt" and report.bad_shards == ["00001-real"]
    assert "other sample ids than the plan" in report.problems[0]


# --------------------------------------------------------------------------- shards


def test_flipped_byte_is_corrupt_and_named(full):
    entry = open_cache(full).shards[1]
    raw = bytearray((full / entry["file"]).read_bytes())
    raw[len(raw) // 2] ^= 0x04
    (full / entry["file"]).write_bytes(bytes(raw))
    report = verify_cache(full)
    assert report.status == "corrupt" and report.bad_shards == [entry["name"]]
    assert "sha256" in report.problems[0] and entry["name"] in report.problems[0]


def test_unknown_npz_is_named_and_leftover_temporaries_are_not_errors(full):
    shutil.copy(full / "shards" / "00000-real.npz", full / "shards" / "stray.npz")
    (full / "shards" / ".00002-fake.npz.k3j2.tmp").write_bytes(b"half a shard")
    (full / ".manifest.json.a1b2.tmp").write_text("{")
    report = verify_cache(full)
    assert report.unknown_files == ["shards/stray.npz"]
    assert report.status == "corrupt" and "unknown file shards/stray.npz" in report.problems[0]
    assert sorted(report.leftovers) == [
        ".manifest.json.a1b2.tmp",
        "shards/.00002-fake.npz.k3j2.tmp",
    ]
    assert len(report.problems) == 1  # the leftovers are notes, not problems
    os.unlink(full / "shards" / "stray.npz")
    report = verify_cache(full)
    assert report.status == "complete" and any("leftover" in n for n in report.notes)


def test_a_shard_whose_entry_was_removed_is_named_both_ways(full):
    # protected manifest: the removal is an edit, named as the whole entry
    _edit(full, lambda m: m["shards"].pop(1))
    with pytest.raises(CacheManifestError, match=r"removed shards\[00001-real\]") as err:
        open_cache(full)
    assert err.value.paths == ["shards[00001-real]"]
    report = verify_cache(full)
    assert report.status == "corrupt"
    assert "manifest.json edited: removed shards[00001-real]" in report.problems
    assert report.unknown_files == ["shards/00001-real.npz"]


def test_unprotected_cache_with_a_removed_entry_still_names_the_file(full):
    _edit(full, lambda m: m["shards"].pop(1), keep_integrity=False)
    with pytest.warns(UnprotectedCacheWarning, match="no integrity record"):
        open_cache(full)
    report = verify_cache(full)
    assert not report.protected and any("no integrity record" in n for n in report.notes)
    assert report.unknown_files == ["shards/00001-real.npz"]
    assert "a planned shard whose manifest entry was removed" in report.problems[0]


# --------------------------------------------------------------------------- manifest


def _set(path, value):
    def change(m):
        target = m
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (_set(["config", "explainer", "nsamples"], 200), "changed config.explainer.nsamples"),
        (_set(["shards", 0, "group"], "fake"), "changed shards[00000-real].group"),
        (_set(["shards", 2, "n_samples"], 2), "changed shards[00002-fake].n_samples"),
        (_set(["shards", 1, "sha256"], "0" * 64), "changed shards[00001-real].sha256"),
        (_set(["planned", 2, "n_samples"], 9), "changed planned[00002-fake].n_samples"),
        (_set(["info", "command"], "y"), "changed info.command"),
        (_set(["config", "extra"], 1), "added config.extra"),
        (lambda m: m["config"].pop("size"), "removed config.size"),
        (_set(["sizes", "S"], 9), "changed sizes.S"),
        (_set(["fields", 4], "sparse"), "changed fields[4]"),
    ],
)
def test_any_manifest_edit_is_caught_at_open_and_verify_and_named(full, change, named):
    _edit(full, change)
    with pytest.raises(CacheManifestError) as err:
        open_cache(full)
    assert named in str(err.value) and "defocus verify --cache" in str(err.value)
    assert err.value.paths == [named.split(" ", 1)[1]]
    report = verify_cache(full)
    assert report.status == "corrupt" and report.manifest_edits == [named]
    with pytest.raises(CacheManifestError, match=named.replace("[", r"\[").replace("]", r"\]")):
        CacheWriter(full)  # a writer never seals an edited manifest as if it were true


def test_reformatting_the_manifest_is_not_an_edit(full):
    m = _manifest(full)
    (full / "manifest.json").write_text(json.dumps(m, indent=4, sort_keys=True))
    c = open_cache(full)
    assert c.manifest_edits == [] and verify_cache(c).status == "complete"


def test_an_edited_integrity_record_is_named(full):
    def change(m):
        key = next(iter(m["integrity"]["leaves"]))
        m["integrity"]["leaves"][key] = "0" * 16

    _edit(full, change)
    with pytest.raises(CacheManifestError, match=r"changed integrity\.leaves"):
        open_cache(full)


def test_opening_an_intact_manifest_hashes_it_once_without_per_leaf_digests(full, monkeypatch):
    def boom(body):
        raise AssertionError("per-leaf digests are only computed to locate an edit")

    monkeypatch.setattr(integrity, "leaves", boom)
    assert len(open_cache(full)) == 8


def test_summarise_paths_names_a_whole_removed_entry():
    universe = {"shards[a].sha256", "shards[a].n_samples", "shards[b].sha256", "config.x"}
    assert integrity.summarise_paths({"shards[a].sha256", "shards[a].n_samples"}, universe) == [
        "shards[a]"
    ]
    assert integrity.summarise_paths({"shards[a].sha256"}, universe) == ["shards[a].sha256"]


# --------------------------------------------------------------------------- old caches


def test_unprotected_cache_never_returns_another_groups_samples(full):
    _edit(full, _set(["shards", 2, "group"], "real"), keep_integrity=False)
    with pytest.warns(UnprotectedCacheWarning):
        c = open_cache(full)
    assert c.groups == ["real"]  # what the edited manifest claims...
    with pytest.raises(CacheCorruptError, match=r"holds samples of group 'fake'.*says 'real'"):
        c.load("id", "real")  # ...is refused when read, never silently returned
    assert verify_cache(full).bad_shards == ["00002-fake"]


def test_unprotected_cache_len_disagreeing_with_the_arrays_is_refused(full):
    _edit(full, _set(["shards", 0, "n_samples"], 30), keep_integrity=False)
    with pytest.warns(UnprotectedCacheWarning):
        c = open_cache(full)
    with pytest.raises(CacheCorruptError, match="holds 3 samples, the manifest says 30"):
        c.load("defocus")
    assert "00000-real" in verify_cache(full).bad_shards


# --------------------------------------------------------------------------- repair


def test_repair_moves_bad_files_aside_then_a_rerun_completes(full):
    c = open_cache(full)
    bad = c.shards[0]
    raw = bytearray((full / bad["file"]).read_bytes())
    raw[-10] ^= 0xFF
    (full / bad["file"]).write_bytes(bytes(raw))
    stray = b"not a shard"
    (full / "shards" / "stray.npz").write_bytes(stray)
    (full / "shards" / ".00001-real.npz.zz.tmp").write_bytes(b"half")
    result = repair_cache(full)
    assert sorted(result.moved) == sorted(
        ["shards/00000-real.npz", "shards/stray.npz", "shards/.00001-real.npz.zz.tmp"]
    )
    assert result.dropped == ["00000-real"] and result.quarantine.parent == full / "quarantine"
    # nothing deleted: the files are in the quarantine, byte for byte
    assert (result.quarantine / "shards" / "stray.npz").read_bytes() == stray
    assert (result.quarantine / bad["file"]).read_bytes() == bytes(raw)
    after = result.report
    assert after.status == "incomplete" and after.missing == ["00000-real"]
    assert "quarantine" not in "".join(after.unknown_files)
    rng = np.random.default_rng(SEED)  # recompute the same shard (same seed: same values)
    CacheWriter(full).write_shard("real", _arrays("real", LAYOUT[0][2], rng), "00000-real")
    done = verify_cache(full)
    assert done.status == "complete" and open_cache(full).shards[0]["sha256"] == bad["sha256"]


def test_repair_drops_entries_with_edited_values_but_refuses_edited_config(full, tmp_path):
    shutil.copytree(full, tmp_path / "cfg")
    _edit(full, _set(["shards", 1, "n_samples"], 7))
    result = repair_cache(full)
    assert result.dropped == ["00001-real"] and result.moved == ["shards/00001-real.npz"]
    assert result.report.status == "incomplete" and result.report.missing == ["00001-real"]
    assert open_cache(full).manifest_edits == []  # sealed again
    _edit(tmp_path / "cfg", _set(["config", "explainer", "nsamples"], 200))
    with pytest.raises(CacheManifestError, match=r"cannot repair.*config\.explainer\.nsamples"):
        repair_cache(tmp_path / "cfg")
    # restoring the value makes it pass again
    _edit(tmp_path / "cfg", _set(["config", "explainer", "nsamples"], 8))
    assert verify_cache(tmp_path / "cfg").status == "complete"


def test_repair_seals_an_unprotected_cache_so_later_edits_are_caught(full):
    _edit(full, lambda m: None, keep_integrity=False)
    result = repair_cache(full)
    assert result.sealed and result.report.status == "complete" and result.report.protected
    _edit(full, _set(["config", "size"], 16))
    with pytest.raises(CacheManifestError, match=r"changed config\.size"):
        open_cache(full)


def test_missing_group_or_field_is_a_typed_one_line_error(full):
    c = open_cache(full)
    with pytest.raises(CacheKeyError) as err:
        c.load("defocus", "Deepfakes")
    assert str(err.value) == "group 'Deepfakes' is not in this cache; it has ['real', 'fake']"
    with pytest.raises(KeyError, match="fields"):  # still a KeyError for old callers
        c.load("attr_rgb")


def test_legacy_import_records_its_plan(tmp_path):
    from cache import import_legacy

    rng = np.random.default_rng(SEED)
    files = []
    for name, n in [("shap_data_real.npz", 5), ("shap_data_fake_Deepfakes.npz", 3)]:
        maps = [rng.random((8, 8)) for _ in range(n)]
        np.savez(tmp_path / name, **{k: np.array(maps, dtype=object)
                                     for k in ("dmaps", "defocus_shaps", "rgb_shaps")})  # fmt: skip
        files.append(tmp_path / name)
    with pytest.warns(UserWarning, match="unpickling"):
        c = import_legacy(files, tmp_path / "c", trust_pickle=True, shard_size=2)
    assert [p["name"] for p in c.planned] == [
        "00000-real", "00001-real", "00002-real", "00003-Deepfakes", "00004-Deepfakes",
    ]  # fmt: skip
    assert verify_cache(c).status == "complete"
    CacheWriter(c.path).drop_entries(["00004-Deepfakes"])  # as if killed before the last shard
    os.unlink(c.path / "shards" / "00004-Deepfakes.npz")
    report = verify_cache(c.path)
    assert report.status == "incomplete" and report.missing == ["00004-Deepfakes"]


def test_an_entry_pointing_outside_the_cache_is_refused_even_unprotected(full, tmp_path):
    outside = tmp_path / "precious.npz"
    outside.write_bytes(b"user data")
    _edit(full, _set(["shards", 0, "file"], "../precious.npz"), keep_integrity=False)
    with pytest.raises(CacheFormatError, match=r"file must be shards/00000-real\.npz"):
        open_cache(full)
    with pytest.raises(CacheFormatError, match="file must be"):
        repair_cache(full)
    assert outside.read_bytes() == b"user data"


def test_an_edited_file_path_is_named_as_an_edit(full):
    _edit(full, _set(["shards", 0, "file"], "../precious.npz"))
    with pytest.raises(CacheManifestError, match=r"changed shards\[00000-real\]\.file"):
        open_cache(full)
    with pytest.raises(CacheManifestError, match=r"changed shards\[00000-real\]\.file"):
        verify_cache(full)
