import numpy as np
import pytest

from analysis.masks import (
    PAPER_THRESHOLDS,
    binary_mask,
    mask_agreement,
    mask_area,
    mask_area_stats,
    masks_from_cache,
    threshold_sweep,
)


def test_identical_maps_give_an_empty_mask(rng):
    m = rng.random((3, 16, 16))
    assert not binary_mask(m, m, 0.1).any()
    assert mask_area_stats(m, m, 1e-4) == {
        "mean": 0.0,
        "max": 0.0,
        "min": 0.0,
        "median": 0.0,
        "n": 3,
    }


def test_binary_mask_matches_explicit_loop(rng):
    fake, real = rng.random((2, 9, 7)), rng.random((2, 9, 7))
    t = 0.3
    out = binary_mask(fake, real, t)
    assert out.dtype == bool and out.shape == fake.shape
    for idx in np.ndindex(fake.shape):
        assert out[idx] == (abs(fake[idx] - real[idx]) > t)


def test_threshold_is_strict():
    fake = np.array([[0.5, 0.75]])
    real = np.array([[0.25, 0.25]])  # differences 0.25 and 0.5 exactly representable
    np.testing.assert_array_equal(binary_mask(fake, real, 0.25), [[False, True]])


def test_area_stats_against_numpy(rng):
    fake, real = rng.random((11, 8, 8)), rng.random((11, 8, 8))
    counts = [(np.abs(f - r) > 0.5).sum() for f, r in zip(fake, real, strict=True)]
    stats = mask_area_stats(fake, real, 0.5)
    assert stats["mean"] == pytest.approx(np.mean(counts), abs=1e-12)
    assert stats["median"] == pytest.approx(np.median(counts), abs=1e-12)
    assert stats["max"] == max(counts) and stats["min"] == min(counts)
    np.testing.assert_array_equal(mask_area(fake, real, 0.5), counts)


def test_sweep_matches_per_threshold_counts(rng):
    fake, real = rng.random((5, 12, 12)), rng.random((5, 12, 12))
    sweep = threshold_sweep(fake, real, PAPER_THRESHOLDS)
    assert list(sweep["threshold"]) == list(PAPER_THRESHOLDS)
    for row in sweep.itertuples():
        ref = mask_area_stats(fake, real, row.threshold)
        assert row.mean == pytest.approx(ref["mean"]) and row.max == ref["max"]
        assert row.min == ref["min"] and row.median == ref["median"]


@pytest.mark.parametrize("bad", [0, 1, 1.7, -0.1, "x", float("nan")])
def test_threshold_validation(bad):
    m = np.zeros((4, 4))
    with pytest.raises(ValueError, match="threshold must be"):
        binary_mask(m, m, bad)


def test_shape_mismatch_names_both():
    with pytest.raises(
        ValueError, match=r"fake and real must have the same shape.*\(4, 4\).*\(4, 5\)"
    ):
        binary_mask(np.zeros((4, 4)), np.zeros((4, 5)), 0.1)


def test_agreement_against_hand_counts():
    pred = np.zeros((2, 4, 4), bool)
    truth = np.zeros((2, 4, 4), bool)
    pred[0, :2, :2] = True  # 4 px
    truth[0, :2, :] = True  # 8 px, overlap 4
    ag = mask_agreement(pred, truth)
    assert ag["iou"][0] == pytest.approx(4 / 8)
    assert ag["precision"][0] == pytest.approx(1.0)
    assert ag["recall"][0] == pytest.approx(0.5)
    # sample 1: both empty -> undefined everywhere
    assert np.isnan(ag["iou"][1]) and np.isnan(ag["precision"][1]) and np.isnan(ag["recall"][1])


def test_masks_from_cache_pairs_by_id(small_cache):
    c, arrays = small_cache
    res = masks_from_cache(c, thresholds=(0.1, 0.01))
    assert set(res.stats["group"]) == {"pasted", "blurred"}
    real_by_id = dict(zip(arrays["real"]["id"], arrays["real"]["defocus"], strict=True))
    for g in ("pasted", "blurred"):
        a = arrays[g]
        real = np.stack([real_by_id[p] for p in a["pair_id"]]).astype(np.float32)
        ref = mask_area_stats(a["defocus"].astype(np.float32), real, 0.1)
        row = res.stats[(res.stats.group == g) & (res.stats.threshold == 0.1)].iloc[0]
        assert row["mean"] == pytest.approx(ref["mean"]) and row["n"] == len(a["id"])
    assert res.agreement is not None
    assert res.n_unpaired == {"pasted": 0, "blurred": 0}
    # the pasted square is +0.5 where the map allows: the mask finds it almost exactly
    iou = res.agreement.set_index(["group", "threshold"]).loc[("pasted", 0.1), "iou"]
    assert iou > 0.9


def test_masks_from_cache_shuffled_fakes_still_pair_by_id(make_cache):
    c, arrays = make_cache(seed=3, shuffle_fakes=True, shard_size=3)
    res = masks_from_cache(c, thresholds=(0.1,))
    real_by_id = dict(zip(arrays["real"]["id"], arrays["real"]["defocus"], strict=True))
    a = arrays["pasted"]
    real = np.stack([real_by_id[p] for p in a["pair_id"]]).astype(np.float32)
    counts = mask_area(a["defocus"].astype(np.float32), real, 0.1)
    got = res.counts[res.counts.group == "pasted"].set_index("id")["count"]
    for i, sid in enumerate(a["id"]):
        assert got[sid] == counts[i]


def test_masks_from_cache_without_truth(minimal_cache):
    c, _ = minimal_cache
    res = masks_from_cache(c, thresholds=(0.1,))
    assert res.agreement is None and "agreement" in res.unavailable
    assert not res.stats.empty
