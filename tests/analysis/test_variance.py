import numpy as np
import pytest
from scipy import stats

from analysis.config import AnalysisConfig
from analysis.variance import (
    border_share,
    cliffs_delta,
    holm,
    local_variance,
    mean_local_variance,
    normalise_maps,
    test_means,
    variance_from_cache,
    variance_ks_test,
)


def _loop_local_variance(m, w):
    """Reference: explicit windows over a zero-padded map, pad counted (avg_pool2d)."""
    r = w // 2
    p = np.pad(m, r)
    out = np.empty_like(m)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            win = p[i : i + w, j : j + w]
            out[i, j] = (win**2).mean() - win.mean() ** 2
    return out


@pytest.mark.parametrize("window", [1, 3, 5])
def test_local_variance_against_loops(rng, window):
    maps = rng.random((2, 9, 11))
    got = local_variance(maps, window)
    for k in range(2):
        np.testing.assert_allclose(got[k], _loop_local_variance(maps[k], window), atol=1e-12)


def test_local_variance_constant_interior_is_zero():
    m = np.full((1, 40, 40), 0.7)
    lv = local_variance(m, 15)
    np.testing.assert_allclose(lv[0, 7:-7, 7:-7], 0.0, atol=1e-12)
    assert lv[0, 0, 0] > 0  # the zero pad counts at the border, as in avg_pool2d


def test_normalise_and_shapes(rng):
    m = rng.random((3, 8, 8)) * 5 + 2
    n = normalise_maps(m)
    np.testing.assert_allclose(n.min(axis=(1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(n.max(axis=(1, 2)), 1, atol=1e-7)
    assert local_variance(m[0], 3).shape == (1, 8, 8)
    np.testing.assert_allclose(local_variance(m, 3, normalise=True), local_variance(n, 3))


@pytest.mark.parametrize("bad", [0, 4, -3, 2.5])
def test_window_validation(bad):
    with pytest.raises(ValueError, match="window"):
        local_variance(np.zeros((1, 5, 5)), bad)


def test_ks_matches_scipy_and_effect_sizes(rng):
    real = rng.random((30, 12, 12))
    fake = rng.random((25, 12, 12)) ** 2
    res = variance_ks_test(real, fake, window=3, n_boot=200, seed=1)
    r = mean_local_variance(real, 3)
    f = mean_local_variance(fake, 3)
    ref = stats.ks_2samp(f, r)
    assert res.statistic == pytest.approx(ref.statistic, abs=1e-12)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-9)
    # Cliff's delta by its definition, with explicit pairs
    pairs = np.sign(f[:, None] - r[None, :])
    assert res.effect_size == pytest.approx(pairs.mean(), abs=1e-12)
    assert res.ci_low <= res.effect_size <= res.ci_high
    assert res.statistic_ci_low <= res.statistic_ci_high
    assert res.n_real == 30 and res.n_fake == 25
    assert res.mean_fake == pytest.approx(f.mean())


def test_cliffs_delta_ties_and_extremes():
    assert cliffs_delta([2, 3], [0, 1]) == 1.0
    assert cliffs_delta([0, 1], [2, 3]) == -1.0
    assert cliffs_delta([1, 1], [1, 1]) == 0.0


def test_bootstrap_is_seeded_and_covers(rng):
    x = rng.normal(0, 1, 200)
    y = rng.normal(0.5, 1, 200)
    a = test_means(x, y, n_boot=300, seed=7)
    b = test_means(x, y, n_boot=300, seed=7)
    assert a == b
    assert a.ci_low > 0  # a clear shift: the interval excludes 0


def test_holm_against_explicit_procedure():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    adj = holm(p)
    # explicit step-down: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, running max
    expect_sorted = np.maximum.accumulate([0.005 * 4, 0.01 * 3, 0.03 * 2, 0.04 * 1])
    np.testing.assert_allclose(adj[[3, 0, 2, 1]], expect_sorted, atol=1e-15)
    assert np.isnan(adj[4])
    assert np.all(holm([0.9, 0.8]) <= 1.0)


def test_variance_from_cache(small_cache):
    c, arrays = small_cache
    res = variance_from_cache(c, window=5, n_boot=100, n_heatmaps=2)
    assert len(res.per_image) == sum(len(a["id"]) for a in arrays.values())
    real = mean_local_variance(arrays["real"]["defocus"].astype(np.float64), 5)
    fake = mean_local_variance(arrays["pasted"]["defocus"].astype(np.float64), 5)
    row = res.tests.set_index("group").loc["pasted"]
    assert row["statistic"] == pytest.approx(stats.ks_2samp(fake, real).statistic)
    np.testing.assert_allclose(row["pvalue_holm"], holm(res.tests["pvalue"])[0])
    h = res.heatmaps["pasted"]
    assert h["fake"].shape == (2, 24, 24) and h["real"].shape == (2, 24, 24)
    # the heatmap's real map is the local variance of the fake's real partner
    partner = dict(zip(arrays["pasted"]["id"], arrays["pasted"]["pair_id"], strict=True))[
        h["id"][0]
    ]
    j = list(arrays["real"]["id"]).index(partner)
    ref = local_variance(arrays["real"]["defocus"][j].astype(np.float64), 5)[0]
    np.testing.assert_allclose(h["real"][0], ref, atol=1e-6)


# --------------------------------------------------------------------------- padding and border


def _loop_local_variance_reflect(m, w):
    """Oracle: explicit float64 windows over the map mirrored about its edge (np.pad reflect)."""
    r = w // 2
    p = np.pad(m, r, mode="reflect")
    out = np.empty_like(m)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            win = p[i : i + w, j : j + w]
            out[i, j] = np.mean(win * win) - np.mean(win) ** 2
    return out


@pytest.mark.parametrize("window", [3, 5, 7])
def test_reflect_padding_against_loops(rng, window):
    maps = rng.random((2, 9, 11))
    got = local_variance(maps, window, padding="reflect")
    for k in range(2):
        np.testing.assert_allclose(
            got[k], _loop_local_variance_reflect(maps[k], window), atol=1e-12
        )


def test_zero_padding_is_the_default_and_the_papers(rng):
    maps = rng.random((2, 10, 10))
    np.testing.assert_array_equal(local_variance(maps, 5), local_variance(maps, 5, padding="zeros"))
    np.testing.assert_allclose(
        local_variance(maps, 5)[1], _loop_local_variance(maps[1], 5), atol=1e-12
    )
    # a constant map: reflection leaves no border artefact, zero padding does
    const = np.full((1, 20, 20), 0.6)
    np.testing.assert_allclose(local_variance(const, 7, padding="reflect"), 0.0, atol=1e-12)
    assert local_variance(const, 7)[0, 0, 0] > 0.05
    with pytest.raises(ValueError, match="padding"):
        local_variance(maps, 5, padding="wrap")


def test_border_share_by_hand():
    lv = np.zeros((2, 10, 10))
    lv[0] = 1.0  # uniform: the band's mass share is its area share
    lv[1, 0, 0] = 3.0  # a corner pixel (in the band) and one interior pixel
    lv[1, 5, 5] = 1.0
    share, area = border_share(lv, 2)
    # band of 2 px on a 10 x 10 map: 100 - 6 * 6 = 64 pixels
    assert area == pytest.approx(0.64)
    assert share == pytest.approx([0.64, 0.75])
    assert np.isnan(border_share(np.zeros((1, 5, 5)), 1)[0][0])
    assert border_share(np.ones((1, 4, 4)), 2)[1] == 1.0  # the band covers the whole map


def test_variance_from_cache_padding_and_border(small_cache):
    c, arrays = small_cache
    res = variance_from_cache(c, window=5, n_boot=20, padding="reflect")
    assert res.padding == "reflect" and res.border_band == 2 and res.config["padding"] == "reflect"
    ref = mean_local_variance(arrays["real"]["defocus"].astype(np.float64), 5, padding="reflect")
    got = res.per_image[res.per_image.group == "real"]["mean_local_variance"].to_numpy()
    np.testing.assert_allclose(got, ref, atol=1e-12)
    lv = local_variance(arrays["pasted"]["defocus"].astype(np.float64), 5, padding="reflect")
    share, area = border_share(lv, 2)
    got = res.per_image[res.per_image.group == "pasted"]["border_mass_share"].to_numpy()
    np.testing.assert_allclose(got, share, atol=1e-12)
    assert res.border_area_share == pytest.approx(area)
    zeros = variance_from_cache(c, window=5, n_boot=20)
    # zero padding piles local variance into the border band
    assert zeros.border_mass_share > res.border_mass_share


def test_variance_from_cache_by_video_and_paired(video_cache):
    c, arrays = video_cache
    res = variance_from_cache(c, window=5, n_boot=50, config=AnalysisConfig(n_permutations=199))
    assert res.level == "video"
    mlv = {g: mean_local_variance(a["defocus"].astype(np.float64), 5) for g, a in arrays.items()}

    def video_means(g):
        v = arrays[g]["video"]
        return np.array([mlv[g][v == u].mean() for u in dict.fromkeys(v)])

    row = res.tests.set_index("group").loc["pasted"]
    ref = stats.ks_2samp(video_means("pasted"), video_means("real"))
    assert row["level"] == "video" and row["n_real"] == 5 and row["n_fake"] == 4
    assert row["n_real_frames"] == 10 and row["n_fake_frames"] == 8
    assert row["statistic"] == pytest.approx(ref.statistic)
    assert row["pvalue"] == pytest.approx(ref.pvalue)
    frame = res.frame_tests.set_index("group").loc["pasted"]
    assert frame["statistic"] == pytest.approx(stats.ks_2samp(mlv["pasted"], mlv["real"]).statistic)
    # paired: each fake against the real frame it was made from, flipped by video
    real_by_id = dict(zip(arrays["real"]["id"], mlv["real"], strict=True))
    diff = mlv["pasted"] - np.array([real_by_id[p] for p in arrays["pasted"]["pair_id"]])
    p = res.paired.set_index("group").loc["pasted"]
    assert p["mean_diff"] == pytest.approx(diff.mean()) and p["n"] == 8
    assert p["n_clusters"] == 4 and p["n_permutations"] == 199
    assert p["p_min"] == pytest.approx(1 / 200)
    # 4 videos: the two-sided sign-flip p cannot go below 2/16
    assert p["p_signflip"] >= 2 / 16 - 0.05
