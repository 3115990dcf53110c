"""Cluster-aware intervals and tests, against explicit re-implementations and closed forms."""

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from analysis.stats import (
    bootstrap_mean_ci,
    cluster_codes,
    cluster_labels,
    cluster_means,
    paired_comparison,
    permutation_pvalue,
    sign_flip_test,
    wilcoxon_signed_rank,
)


def _loop_cluster_bootstrap(values, clusters, n_boot, seed, confidence=0.95):
    """Oracle: draw clusters one resample at a time, pool their frames, take the mean."""
    labels = list(dict.fromkeys(clusters))  # order of first appearance
    members = {c: [v for v, k in zip(values, clusters, strict=True) if k == c] for c in labels}
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(n_boot):
        draw = rng.integers(0, len(labels), len(labels))
        pooled = [v for j in draw for v in members[labels[j]]]
        means.append(np.mean(pooled))
    alpha = (1 - confidence) / 2
    return np.quantile(means, [alpha, 1 - alpha])


def test_cluster_bootstrap_of_identical_frames_is_the_bootstrap_of_the_videos(rng):
    # the done-when: 10 videos of 20 identical frames give the CI of 10 values, not 200
    video_values = rng.normal(0.5, 0.2, 10)
    frames = np.repeat(video_values, 20)
    videos = np.repeat([f"v{i}" for i in range(10)], 20)
    by_video = bootstrap_mean_ci(frames, n_boot=500, seed=3, clusters=videos)
    of_ten = bootstrap_mean_ci(video_values, n_boot=500, seed=3)
    assert by_video["ci_low"] == pytest.approx(of_ten["ci_low"], abs=1e-12)
    assert by_video["ci_high"] == pytest.approx(of_ten["ci_high"], abs=1e-12)
    assert by_video["n"] == 200 and by_video["n_clusters"] == 10 and of_ten["n"] == 10
    # treating the 200 frames as independent gives a CI about sqrt(20) times too narrow
    naive = bootstrap_mean_ci(frames, n_boot=500, seed=3)
    width = by_video["ci_high"] - by_video["ci_low"]
    assert naive["ci_high"] - naive["ci_low"] < width / 3


def test_cluster_bootstrap_unequal_clusters_matches_a_loop(rng):
    sizes = [1, 5, 2, 9, 3, 3, 7]
    clusters = np.concatenate([[f"c{i}"] * s for i, s in enumerate(sizes)])
    values = rng.normal(size=clusters.size) + np.repeat(rng.normal(size=len(sizes)), sizes)
    got = bootstrap_mean_ci(values, n_boot=200, seed=5, clusters=clusters)
    lo, hi = _loop_cluster_bootstrap(values, list(clusters), 200, 5)
    assert got["ci_low"] == pytest.approx(lo, abs=1e-12)
    assert got["ci_high"] == pytest.approx(hi, abs=1e-12)
    assert got["mean"] == pytest.approx(values.mean())
    assert got["std"] == pytest.approx(values.std(ddof=1))


def test_bootstrap_without_clusters_is_the_plain_bootstrap(rng):
    v = rng.normal(3, 1, 50)
    got = bootstrap_mean_ci(v, n_boot=300, seed=1)
    lo, hi = _loop_cluster_bootstrap(v, list(range(50)), 300, 1)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((lo, hi), abs=1e-12)


def test_bootstrap_drops_nans_with_their_clusters():
    v = np.array([1.0, np.nan, 2.0, 3.0])
    c = np.array(["a", "b", "a", "c"])
    got = bootstrap_mean_ci(v, n_boot=20, clusters=c)
    assert got["n"] == 3 and got["n_clusters"] == 2
    empty = bootstrap_mean_ci([np.nan], n_boot=5)
    assert empty["n"] == 0 and np.isnan(empty["ci_low"])
    with pytest.raises(ValueError, match="clusters"):
        bootstrap_mean_ci([1.0, 2.0], clusters=["a"])


def _exact_sign_flip_p(sums, n, alternative):
    """Oracle: every one of the 2^k sign patterns of the cluster sums."""
    t = sums.sum() / n
    null = np.array([np.dot(s, sums) / n for s in itertools.product([-1, 1], repeat=sums.size)])
    if alternative == "greater":
        return np.mean(null >= t - 1e-12)
    return np.mean(np.abs(null) >= abs(t) - 1e-12)


@pytest.mark.parametrize("alternative", ["greater", "two-sided"])
def test_sign_flip_matches_exact_enumeration(rng, alternative):
    sizes = [3, 1, 4, 2, 2, 5, 1, 3, 2]
    clusters = np.repeat(np.arange(len(sizes)), sizes)
    values = rng.normal(0.3, 1.0, clusters.size)
    sums = np.bincount(clusters, weights=values)
    exact = _exact_sign_flip_p(sums, values.size, alternative)
    res = sign_flip_test(values, clusters, n_permutations=20000, seed=2, alternative=alternative)
    assert res.pvalue == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / 20000) + 1e-4)
    assert res.n_clusters == len(sizes) and res.n == values.size


def test_sign_flip_resolution_and_its_smallest_p(rng):
    values = rng.uniform(0.5, 1.0, 30)  # 30 positive values: only 1 in 2^30 flips reaches them
    res = sign_flip_test(values, n_permutations=999, seed=0, alternative="greater")
    assert res.n_permutations == 999 and res.p_min == pytest.approx(1 / 1000)
    assert res.pvalue == pytest.approx(1 / 1000)
    assert res.statistic == pytest.approx(values.mean())
    # the default count reaches p < 0.01
    assert sign_flip_test(values, alternative="greater").pvalue < 0.01


def test_sign_flip_of_identical_frames_is_the_test_of_the_videos(rng):
    video_values = rng.normal(0.2, 1.0, 10)
    frames = np.repeat(video_values, 20)
    videos = np.repeat(np.arange(10), 20)
    a = sign_flip_test(frames, videos, n_permutations=500, seed=4)
    b = sign_flip_test(video_values, n_permutations=500, seed=4)
    assert a.pvalue == pytest.approx(b.pvalue) and a.n_clusters == 10


def test_wilcoxon_on_cluster_means(rng):
    values = rng.normal(0.4, 1, 40)
    clusters = np.repeat(np.arange(8), 5)
    got = wilcoxon_signed_rank(values, clusters, alternative="greater")
    ref = sps.wilcoxon(values.reshape(8, 5).mean(axis=1), alternative="greater")
    assert got["pvalue"] == pytest.approx(ref.pvalue) and got["n_units"] == 8
    assert np.isnan(wilcoxon_signed_rank(np.zeros(5))["pvalue"])


def test_paired_comparison(rng):
    a = rng.normal(1.0, 1, 60)
    b = a - 0.5 + rng.normal(0, 0.1, 60)
    a[3] = np.nan  # the pair is dropped
    clusters = np.repeat(np.arange(12), 5)
    res = paired_comparison(a, b, clusters, n_boot=300, n_permutations=999, seed=1)
    d = (a - b)[~np.isnan(a)]
    assert res.n == 59 and res.n_clusters == 12
    assert res.mean_diff == pytest.approx(d.mean())
    ci = bootstrap_mean_ci(d, n_boot=300, seed=1, clusters=np.delete(clusters, 3))
    assert (res.ci_low, res.ci_high) == pytest.approx((ci["ci_low"], ci["ci_high"]))
    # 12 clusters all positive: two-sided p = P(|flipped mean| >= observed) = 2 / 2^12 < 1/1000
    assert res.p_signflip == pytest.approx(res.p_min, abs=2 / 1000)
    means = [np.mean(d[np.delete(clusters, 3) == k]) for k in range(12)]
    assert res.p_wilcoxon == pytest.approx(sps.wilcoxon(means).pvalue)
    with pytest.raises(ValueError, match="paired"):
        paired_comparison([1.0, 2.0], [1.0])


def test_permutation_pvalue():
    assert permutation_pvalue(1.0, np.zeros(99)) == pytest.approx(1 / 100)
    assert permutation_pvalue(-1.0, np.zeros(99)) == pytest.approx(1.0)
    assert permutation_pvalue(0.5, [-0.6, 0.1, 0.7], "two-sided") == pytest.approx(3 / 4)
    assert permutation_pvalue(-0.5, [-0.6, 0.1, 0.7], "less") == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="alternative"):
        permutation_pvalue(0.0, [0.0], "bigger")


def test_cluster_helpers():
    codes, k = cluster_codes(np.array(["b", "a", "b", "c"]), 4)
    assert codes.tolist() == [0, 1, 0, 2] and k == 3
    labels = cluster_labels(np.array(["v1", "", "v1"]), np.array(["x", "y", "z"]))
    assert labels.tolist() == ["video:v1", "id:y", "video:v1"]
    assert cluster_labels(None, ["x", "y"]).tolist() == ["id:x", "id:y"]
    lab, means, sizes = cluster_means([1.0, 2.0, 4.0], ["a", "b", "a"])
    assert lab.tolist() == ["a", "b"] and means.tolist() == [2.5, 2.0] and sizes.tolist() == [2, 1]
