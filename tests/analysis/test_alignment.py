import numpy as np
import pytest
from scipy import stats

from analysis.alignment import (
    alignment_from_cache,
    alignment_histograms,
    alignment_score,
    bootstrap_mean_ci,
    permutation_null,
    permutation_pvalue,
)


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
