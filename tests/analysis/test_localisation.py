import numpy as np
import pytest

from analysis.localisation import (
    deletion_curve,
    deletion_from_cache,
    localisation_from_cache,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
)


def test_scores_against_explicit_loops(rng):
    attr = rng.normal(size=(4, 6, 6))
    region = rng.random((4, 6, 6)) > 0.6
    mass = relevance_mass_accuracy(attr, region)
    rank = relevance_rank_accuracy(attr, region)
    point = pointing_game(attr, region)
    for i in range(4):
        a = np.abs(attr[i]).ravel()
        r = region[i].ravel()
        inside = sum(a[p] for p in range(a.size) if r[p])
        assert mass[i] == pytest.approx(inside / a.sum(), abs=1e-12)
        k = int(r.sum())
        top = sorted(range(a.size), key=lambda p: -a[p])[:k]
        assert rank[i] == pytest.approx(sum(r[p] for p in top) / k, abs=1e-12)
        assert point[i] == float(r[int(np.argmax(a))])


def test_perfect_and_empty_regions():
    attr = np.zeros((2, 5, 5))
    attr[:, 1:3, 1:3] = 1.0
    region = np.zeros((2, 5, 5), bool)
    region[0, 1:3, 1:3] = True
    assert relevance_mass_accuracy(attr, region)[0] == 1.0
    assert relevance_rank_accuracy(attr, region)[0] == 1.0
    assert pointing_game(attr, region)[0] == 1.0
    for f in (relevance_mass_accuracy, relevance_rank_accuracy, pointing_game):
        assert np.isnan(f(attr, region)[1])  # empty region: undefined, not 0


def test_rgb_channels_are_summed(rng):
    attr = rng.normal(size=(3, 3, 6, 6))
    region = rng.random((3, 6, 6)) > 0.5
    np.testing.assert_allclose(
        relevance_mass_accuracy(attr, region),
        relevance_mass_accuracy(np.abs(attr).sum(axis=1), region),
    )


def test_deletion_curve_on_a_linear_model(rng):
    # toy model: logit = sum(w * x); with a zero baseline its exact Shapley values are w * x,
    # so removing (zeroing) the top-k pixels by |w x| leaves sum of the others.
    n, h, w = 3, 5, 5
    weights = rng.normal(size=(h, w))
    x = rng.random((n, h, w))
    attr = weights * x

    def predict(batch):
        return (batch * weights).sum(axis=(1, 2))

    fr = np.linspace(0, 1, 6)
    res = deletion_curve(predict, x, attr, fractions=fr, fill="zero")
    for i in range(n):
        contrib = (weights * x[i]).ravel()
        order = np.argsort(-np.abs(contrib), kind="stable")
        for j, f in enumerate(fr):
            k = int(round(f * h * w))
            expect = contrib.sum() - contrib[order[:k]].sum()
            assert res.curves[i, j] == pytest.approx(expect, abs=1e-5)
    np.testing.assert_allclose(res.curves[:, 0], predict(x), rtol=1e-6)
    np.testing.assert_allclose(res.curves[:, -1], 0.0, atol=1e-6)
    np.testing.assert_allclose(res.auc, np.trapezoid(res.curves, fr, axis=1))


def test_deletion_curve_labels_flip_the_sign_and_mean_fill(rng):
    x = rng.random((2, 3, 4, 4))
    attr = rng.random((2, 3, 4, 4))

    def predict(b):
        return b.mean(axis=(1, 2, 3))

    res = deletion_curve(predict, x, attr, labels=[1, 0], fractions=[0, 1], fill="mean")
    # everything replaced by the per-channel mean keeps the overall mean
    np.testing.assert_allclose(res.curves[:, 1], [x[0].mean(), -x[1].mean()], rtol=1e-5)
    with pytest.raises(ValueError, match="fill"):
        deletion_curve(predict, x, attr, fill="blur")


def test_localisation_from_cache(small_cache):
    c, arrays = small_cache
    res = localisation_from_cache(c)
    a = arrays["pasted"]
    got = res.per_sample.query("group == 'pasted' and model == 'defocus' and region == 'truth'")
    np.testing.assert_allclose(
        got["mass"].to_numpy(), relevance_mass_accuracy(a["attr_defocus"], a["mask"]), atol=1e-12
    )
    row = res.summary.set_index(["group", "model", "region"]).loc[("pasted", "defocus", "truth")]
    assert row["pointing"] == 1.0 and row["mass"] > 0.8 and row["chance"] == pytest.approx(64 / 576)
    assert "deletion_defocus" in res.unavailable and res.deletion == {}


def test_deletion_from_cache_with_and_without_a_model(small_cache):
    c, arrays = small_cache
    curves, check, unavailable = deletion_from_cache(c)
    assert curves == {} and "logit of each intact input" in unavailable["deletion_defocus"]

    def predict(maps):
        return maps.mean(axis=(1, 2)) * 0.0  # a constant model

    curves, check, unavailable = deletion_from_cache(c, {"defocus": predict}, max_samples=3)
    d = curves["defocus"]
    assert d.curves.shape == (9, 11)  # 3 per group x 3 groups, 11 fractions
    np.testing.assert_allclose(d.curves, 0.0)
    # the check compares with cached logits, which this constant model does not reproduce
    assert check["defocus"] > 0
    assert "deletion_rgb" in unavailable


def test_rank_accuracy_resolves_ties_by_expectation():
    attr = np.array([[[3.0, 1.0, 1.0, 1.0, 0.0, 0.0]]])  # (N=1, H=1, W=6)
    region = np.array([[[True, True, False, False, False, False]]])
    # K = 2: pixel 0 is in; one more from three tied pixels, one of which is in: 1/3 expected
    assert relevance_rank_accuracy(attr, region)[0] == pytest.approx((1 + 1 / 3) / 2)
