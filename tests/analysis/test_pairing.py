import numpy as np
import pytest

from analysis.pairing import iter_paired_blocks, match_by_id, match_by_position, plan_pairs


def test_match_by_id():
    idx = match_by_id(["b", "", "zz", "a"], ["a", "b", "c"])
    np.testing.assert_array_equal(idx, [1, -1, -1, 0])
    with pytest.raises(ValueError, match="unique"):
        match_by_id(["a"], ["a", "a"])


def test_match_by_position_warns():
    with pytest.warns(UserWarning, match="by position"):
        idx = match_by_position(4, 3)
    np.testing.assert_array_equal(idx, [0, 1, 2, -1])


def _collect(blocks):
    out = {}
    for b in blocks:
        for i, sid in enumerate(b.fake["id"]):
            out[str(sid)] = (str(b.real["id"][i]), b.real["defocus"][i].copy())
    return out


def test_spilling_to_disk_gives_the_same_pairs(make_cache):
    c, arrays = make_cache(seed=1, shuffle_fakes=True, shard_size=3)
    in_memory = _collect(iter_paired_blocks(c, ["defocus"], ["defocus"]))
    spilled = _collect(iter_paired_blocks(c, ["defocus"], ["defocus"], memory_budget=0))
    assert in_memory.keys() == spilled.keys()
    real_by_id = dict(zip(arrays["real"]["id"], arrays["real"]["defocus"], strict=True))
    for g in ("pasted", "blurred"):
        for sid, pid in zip(arrays[g]["id"], arrays[g]["pair_id"], strict=True):
            assert in_memory[sid][0] == pid == spilled[sid][0]
            np.testing.assert_array_equal(spilled[sid][1], real_by_id[pid])


def test_unknown_pairs_are_counted_and_position_pairing_warns(tmp_path):
    from cache import CacheWriter, open_cache

    w = CacheWriter(tmp_path / "c")
    maps = np.random.default_rng(0).random((3, 4, 4))
    w.write_shard(
        "real",
        {
            "id": ["r0", "r1", "r2"],
            "group": ["real"] * 3,
            "label": [0, 0, 0],
            "pair_id": ["", "", ""],
            "defocus": maps,
        },
    )
    w.write_shard(
        "fake",
        {
            "id": ["f0", "f1", "f2"],
            "group": ["fake"] * 3,
            "label": [1, 1, 1],
            "pair_id": ["r2", "", "nope"],
            "defocus": maps,
        },
    )
    c = open_cache(tmp_path / "c")
    plan = plan_pairs(c)
    assert plan.n_unpaired == {"fake": 2} and plan.n_pairs("fake") == 1
    with pytest.warns(UserWarning, match="by position"):
        plan = plan_pairs(c, by_position=True)
    assert plan.n_pairs("fake") == 3
    blocks = list(iter_paired_blocks(c, ["defocus"], ["defocus"], plan=plan))
    np.testing.assert_array_equal(blocks[0].real["id"], ["r0", "r1", "r2"])
    with pytest.raises(ValueError, match="not in the cache"):
        plan_pairs(c, groups=["nope"])
