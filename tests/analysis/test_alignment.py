import numpy as np
import pytest
from scipy import stats

from analysis.alignment import (
    alignment_floor,
    alignment_from_cache,
    alignment_histograms,
    alignment_score,
    bootstrap_mean_ci,
    cross_scores,
    permutation_null,
    permutation_pvalue,
)
from analysis.config import AnalysisConfig


def _reference(fake, real, attr, bins=20):
    """Paper formula with numpy histograms, one sample at a time."""
    a, _ = np.histogram(fake, bins=bins, range=(0, 1), weights=np.abs(fake - real))
    b, _ = np.histogram(fake, bins=bins, range=(0, 1), weights=np.abs(attr))
    a = a / (a.sum() + 1e-8)
    b = b / (b.sum() + 1e-8)
    return np.minimum(a, b).sum(), stats.entropy(b + 1e-8, a + 1e-8)


def test_against_numpy_histograms(rng):
    fake, real = rng.random((6, 13, 13)), rng.random((6, 13, 13))
    attr = rng.normal(size=(6, 13, 13))
    fake[0, 0, :4] = [0.0, 1.0, 0.05, 0.95]  # bin edges and the closed last bin
    res = alignment_score(fake, real, attr)
    for i in range(6):
        s, kl = _reference(fake[i], real[i], attr[i])
        assert res.score[i] == pytest.approx(s, abs=1e-12)
        assert res.kl[i] == pytest.approx(kl, abs=1e-10)


def test_values_exactly_on_edges_follow_numpy(rng):
    edges = np.linspace(0, 1, 21)
    fake = np.tile(edges, (1, 3, 1))[:, :, :21]  # every edge value, incl. 0 and 1
    real = rng.random(fake.shape)
    attr = rng.random(fake.shape)
    s, kl = _reference(fake[0], real[0], attr[0])
    res = alignment_score(fake, real, attr)
    assert res.score[0] == pytest.approx(s, abs=1e-12)


def test_mass_on_the_differing_bins_scores_one(rng):
    fake = rng.random((16, 16))
    real = fake.copy()
    in_bin = (fake >= 0.30) & (fake < 0.35)  # bin 6 only
    real[in_bin] = 0.0
    attr = np.where(in_bin, 2.0, 0.0)  # attribution mass on exactly those pixels' bin
    res = alignment_score(fake, real, attr)
    assert res.score == pytest.approx(1.0, abs=1e-6)
    assert res.kl == pytest.approx(0.0, abs=1e-6)


def test_disjoint_bins_score_zero(rng):
    fake = np.concatenate([np.full(50, 0.1), np.full(50, 0.9)]).reshape(10, 10)
    real = fake.copy()
    real[fake == 0.1] = 0.5  # differences only at level 0.1
    attr = np.where(fake == 0.9, 1.0, 0.0)  # attribution only at level 0.9
    assert alignment_score(fake, real, attr).score == pytest.approx(0.0, abs=1e-12)


def test_rgb_attribution_sums_abs_over_channels(rng):
    fake, real = rng.random((3, 8, 8)), rng.random((3, 8, 8))
    attr = rng.normal(size=(3, 3, 8, 8))
    a = alignment_score(fake, real, attr)
    b = alignment_score(fake, real, np.abs(attr).sum(axis=1))
    np.testing.assert_allclose(a.score, b.score, atol=1e-12)
    # the paper's channel-0-only variant differs
    c = alignment_score(fake, real, attr[:, 0])
    assert not np.allclose(a.score, c.score)


def test_shape_errors():
    with pytest.raises(ValueError, match="same shape"):
        alignment_score(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)), np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="attribution"):
        alignment_score(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="bins"):
        alignment_score(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((4, 4)), bins=0)


def test_permutation_null_centred_on_the_off_diagonal_mean(rng):
    n = 7
    fake, real = rng.random((n, 10, 10)), rng.random((n, 10, 10))
    attr = rng.random((n, 10, 10)) ** 3
    # E[null] over uniform derangements = mean of score(i, attr_j) over all i != j
    cross = [
        alignment_score(fake[i], real[i], attr[j]).score
        for i in range(n)
        for j in range(n)
        if i != j
    ]
    null = permutation_null(fake, real, attr, n_permutations=300, seed=2, chunk=3)
    assert null.shape == (300,)
    tol = 4 * null.std(ddof=1) / np.sqrt(null.size)
    assert abs(null.mean() - np.mean(cross)) < tol
    # each permutation value is itself a mean of cross scores (never the diagonal)
    assert null.min() >= min(cross) - 1e-12 and null.max() <= max(cross) + 1e-12


def test_permutation_pvalue():
    assert permutation_pvalue(1.0, np.zeros(99)) == pytest.approx(1 / 100)
    assert permutation_pvalue(-1.0, np.zeros(99)) == pytest.approx(1.0)


def test_bootstrap_mean_ci(rng):
    v = rng.normal(3, 1, 400)
    s = bootstrap_mean_ci(v, n_boot=500, seed=0)
    assert s["mean"] == pytest.approx(v.mean()) and s["std"] == pytest.approx(v.std(ddof=1))
    half = 1.96 * v.std(ddof=1) / np.sqrt(v.size)
    assert s["ci_low"] == pytest.approx(v.mean() - half, abs=0.35 * half)
    assert s["ci_high"] == pytest.approx(v.mean() + half, abs=0.35 * half)


def test_alignment_from_cache(small_cache):
    c, arrays = small_cache
    res = alignment_from_cache(c, n_permutations=30, null_samples=6, n_boot=100)
    real_by_id = dict(zip(arrays["real"]["id"], arrays["real"]["defocus"], strict=True))
    a = arrays["pasted"]
    real = np.stack([real_by_id[p] for p in a["pair_id"]])
    ref = alignment_score(a["defocus"], real, a["attr_defocus"])
    got = res.per_sample[(res.per_sample.group == "pasted") & (res.per_sample.model == "defocus")]
    np.testing.assert_allclose(got["score"].to_numpy(), ref.score, atol=1e-12)
    ref_rgb = alignment_score(a["defocus"], real, a["attr_rgb"])
    got = res.per_sample[(res.per_sample.group == "pasted") & (res.per_sample.model == "rgb")]
    np.testing.assert_allclose(got["score"].to_numpy(), ref_rgb.score, atol=1e-12)
    row = res.summary.set_index(["group", "model"]).loc[("pasted", "defocus")]
    # attributions sit in the pasted square: far above the shuffled null
    assert row["observed_null_subset"] > row["null_mean"] + 3 * row["null_std"]
    assert row["p_value"] == pytest.approx(1 / 31)
    assert row["null_n"] == 6


def test_alignment_from_cache_missing_attributions(minimal_cache):
    c, _ = minimal_cache
    res = alignment_from_cache(c, n_permutations=5)
    assert res.per_sample.empty
    assert set(res.unavailable) == {"defocus", "rgb"}


def test_alignment_histograms_are_the_compared_ones(rng):
    fake, real, attr = rng.random((3, 9, 9)), rng.random((3, 9, 9)), rng.normal(size=(3, 9, 9))
    a, b = alignment_histograms(fake, real, attr)
    ref_a, _ = np.histogram(fake[1], bins=20, range=(0, 1), weights=np.abs(fake[1] - real[1]))
    np.testing.assert_allclose(a[1], ref_a / (ref_a.sum() + 1e-8), atol=1e-12)
    np.testing.assert_allclose(
        np.minimum(a, b).sum(axis=1), alignment_score(fake, real, attr).score, atol=1e-12
    )
    a1, b1 = alignment_histograms(fake[0], real[0], attr[0])
    assert a1.shape == (20,) and b1.shape == (20,)


# --------------------------------------------------------------------------- floor and skill


def test_floor_and_skill_by_hand():
    # 4 pixels, 2 bins: fake values 0.1, 0.1, 0.1 (bin 0) and 0.9 (bin 1); only the last differs
    fake = np.array([[0.1, 0.1], [0.1, 0.9]])
    real = np.array([[0.1, 0.1], [0.1, 0.4]])
    attr = np.array([[1.0, 0.0], [0.0, 1.0]])
    # A = [0, 1]; B = [1/2, 1/2]; constant attribution C = counts / N = [3/4, 1/4]
    # score = min(0, .5) + min(1, .5) = 0.5; floor = min(0, .75) + min(1, .25) = 0.25
    # skill = (0.5 - 0.25) / (1 - 0.25) = 1/3
    res = alignment_score(fake, real, attr, bins=2)
    assert res.score == pytest.approx(0.5, abs=1e-7)
    assert res.floor == pytest.approx(0.25, abs=1e-7)
    assert res.skill == pytest.approx(1 / 3, abs=1e-7)


def _floor_reference(fake, real, bins=20):
    """Oracle: numpy histograms of |fake - real| and of the pixel counts."""
    a, _ = np.histogram(fake, bins=bins, range=(0, 1), weights=np.abs(fake - real))
    c, _ = np.histogram(fake, bins=bins, range=(0, 1))
    a = a / (a.sum() + 1e-8)
    c = c / (c.sum() + 1e-8)
    return np.minimum(a, c).sum()


# (a tiny constant moves B by the paper's "+ 1e-8" in the normalisation: 1e-8 / (c * N))
@pytest.mark.parametrize("constant", [1.0, 3.7, 0.05])
def test_constant_attribution_has_zero_skill(rng, constant):
    fake, real = rng.random((5, 12, 12)), rng.random((5, 12, 12)) ** 2
    res = alignment_score(fake, real, np.full(fake.shape, constant))
    np.testing.assert_allclose(res.skill, 0.0, atol=1e-6)
    np.testing.assert_allclose(res.score, res.floor, atol=1e-7)
    ref = [_floor_reference(fake[i], real[i]) for i in range(5)]
    np.testing.assert_allclose(res.floor, ref, atol=1e-12)
    assert np.all(res.floor > 0.5)  # the hidden floor the raw score never shows


@pytest.mark.parametrize("channels", [False, True])
def test_attribution_proportional_to_the_difference_has_skill_one(rng, channels):
    fake, real = rng.random((4, 10, 10)), rng.random((4, 10, 10))
    diff = np.abs(fake - real)
    attr = np.stack([2.0 * diff, -0.5 * diff, diff], axis=1) if channels else -7.0 * diff
    res = alignment_score(fake, real, attr)
    np.testing.assert_allclose(res.skill, 1.0, atol=1e-6)
    np.testing.assert_allclose(res.score, 1.0, atol=1e-6)


def test_skill_is_undefined_where_no_attribution_can_beat_a_constant(rng):
    real = rng.random((8, 8))
    one_bin = np.full((8, 8), 0.42)  # every pixel in one bin: floor = 1
    res = alignment_score(one_bin, real, rng.random((8, 8)))
    assert res.floor == pytest.approx(1.0, abs=1e-6) and np.isnan(res.skill)
    same = alignment_score(real, real, rng.random((8, 8)))  # no difference at all
    assert same.score == 0.0 and np.isnan(same.skill)


def test_alignment_floor_helper(rng):
    fake, real = rng.random((3, 9, 9)), rng.random((3, 9, 9))
    ref = [_floor_reference(fake[i], real[i], bins=7) for i in range(3)]
    np.testing.assert_allclose(alignment_floor(fake, real, bins=7), ref, atol=1e-12)


def test_cross_scores_against_single_scores(rng):
    fake, real, attr = rng.random((4, 9, 9)), rng.random((4, 9, 9)), rng.normal(size=(4, 3, 9, 9))
    fake[1, 0, 0] = 1.5  # outside [0, 1]: in no bin
    got = cross_scores(fake, real, attr, bins=6)
    for i in range(4):
        for j in range(4):
            ref = alignment_score(fake[i], real[i], attr[j], bins=6).score
            assert got[i, j] == pytest.approx(ref, abs=1e-12)


def test_cluster_null_never_pairs_a_frame_with_its_own_video(rng):
    # 4 videos of 3 identical frames; each attribution is its own |fake - real| (skill 1)
    base_f, base_r = rng.random((4, 10, 10)), rng.random((4, 10, 10))
    fake, real = np.repeat(base_f, 3, axis=0), np.repeat(base_r, 3, axis=0)
    attr = np.abs(fake - real)
    videos = np.repeat(["a", "b", "c", "d"], 3)
    cross = cross_scores(fake, real, attr)
    other = cross[videos[:, None] != videos[None, :]]
    null = permutation_null(fake, real, attr, n_permutations=200, seed=1, clusters=videos)
    assert null.max() <= other.max() + 1e-12 and null.min() >= other.min() - 1e-12
    observed = np.mean(np.diag(cross))
    assert permutation_pvalue(observed, null) == pytest.approx(1 / 201)
    # frame-level derangements send frames to copies of themselves, inflating the null
    frame_null = permutation_null(fake, real, attr, n_permutations=200, seed=1)
    assert frame_null.max() > null.max()
    with pytest.raises(ValueError, match="at least 2 clusters"):
        permutation_null(fake, real, attr, n_permutations=5, clusters=np.full(12, "x"))


def test_alignment_from_cache_skill_and_comparison(small_cache):
    c, arrays = small_cache
    cfg = AnalysisConfig(n_boot=200, n_permutations=999, null_samples=6, seed=1)
    res = alignment_from_cache(c, config=cfg)
    assert res.level == "frame" and res.config == cfg.to_dict()
    real_by_id = dict(zip(arrays["real"]["id"], arrays["real"]["defocus"], strict=True))
    a = arrays["pasted"]
    real = np.stack([real_by_id[p] for p in a["pair_id"]])
    d = alignment_score(a["defocus"], real, a["attr_defocus"])
    r = alignment_score(a["defocus"], real, a["attr_rgb"])
    per = res.per_sample.set_index(["group", "model"]).loc[("pasted", "defocus")]
    np.testing.assert_allclose(per["floor"], d.floor, atol=1e-12)
    np.testing.assert_allclose(per["skill"], d.skill, atol=1e-12)
    row = res.summary.set_index(["group", "model"]).loc[("pasted", "defocus")]
    assert row["skill_mean"] == pytest.approx(np.nanmean(d.skill))
    assert row["floor_mean"] == pytest.approx(d.floor.mean())
    assert row["n_permutations"] == 999 and row["p_min"] == pytest.approx(1e-3)
    assert row["null_n_permutations"] == 999 and row["null_p_min"] == pytest.approx(1e-3)
    # 8 fakes whose defocus attributions sit on the pasted square: every skill > 0, so the
    # one-sided sign-flip p is 1/2^8 up to Monte Carlo error
    assert np.all(d.skill > 0)
    assert row["skill_p_signflip"] == pytest.approx(1 / 256, abs=0.006)
    comp = res.comparison.set_index(["group", "metric"]).loc[("pasted", "skill")]
    assert comp["mean_diff"] == pytest.approx(np.mean(d.skill - r.skill))
    assert comp["n"] == 8 and comp["level"] == "frame"
    diffs = res.differences[res.differences.group == "pasted"]
    np.testing.assert_allclose(diffs["diff_score"], d.score - r.score, atol=1e-12)
    assert res.sources == {"defocus": "attr_defocus", "rgb": "attr_rgb"}


def test_alignment_from_cache_by_video(video_cache):
    c, arrays = video_cache
    res = alignment_from_cache(c, n_boot=100, n_permutations=199, null_samples=8)
    assert res.level == "video"
    per = res.per_sample[(res.per_sample.group == "pasted") & (res.per_sample.model == "defocus")]
    videos = per["video"].to_numpy()
    assert len(set(videos)) == 4  # 8 fakes from 4 videos of 2 frames
    row = res.summary.set_index(["group", "model"]).loc[("pasted", "defocus")]
    assert row["level"] == "video" and row["n_clusters"] == 4 and row["n"] == 8
    ref = bootstrap_mean_ci(per["score"], n_boot=100, seed=0, clusters=videos)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ref["ci_low"], ref["ci_high"]))
    frame = res.frame_summary.set_index(["group", "model"]).loc[("pasted", "defocus")]
    ref = bootstrap_mean_ci(per["score"], n_boot=100, seed=0)
    assert frame["level"] == "frame" and frame["n_clusters"] == 8
    assert (frame["ci_low"], frame["ci_high"]) == pytest.approx((ref["ci_low"], ref["ci_high"]))
    # 4 videos: the smallest one-sided sign-flip p is 1/2^4, whatever the permutations
    assert row["skill_p_signflip"] >= 1 / 16 - 0.03
    assert row["null_level"] == "video"
    comp = res.comparison.set_index(["group", "metric"]).loc[("pasted", "skill")]
    assert comp["level"] == "video" and comp["n_clusters"] == 4
    # frame-level inference only when asked for
    flat = alignment_from_cache(
        c, n_boot=20, n_permutations=19, null_samples=4, config=AnalysisConfig(unit="frame")
    )
    assert flat.level == "frame"


def test_unpaired_fakes_are_reported_as_unpaired_not_as_a_missing_field(tmp_path, rng):
    from cache import CacheWriter, open_cache

    w = CacheWriter(tmp_path / "c", config={})
    for g, label in (("real", 0), ("fake", 1)):
        w.write_shard(
            g,
            {
                "id": np.array([f"{g}0", f"{g}1"]),
                "group": np.array([g, g]),
                "label": np.full(2, label, np.int8),
                "pair_id": np.array(["", ""]),
                "defocus": rng.random((2, 8, 8)).astype(np.float16),
                "attr_defocus": rng.random((2, 8, 8)).astype(np.float32),
            },
        )
    res = alignment_from_cache(open_cache(tmp_path / "c"), n_boot=10, n_permutations=9)
    assert "real partner" in res.unavailable["defocus"]
    assert "field" not in res.unavailable["defocus"]
