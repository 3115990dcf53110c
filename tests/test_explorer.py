"""The explorer's callbacks on a tiny hand-made cache, checked against numpy references."""

from __future__ import annotations

import numpy as np
import pytest

from cache import CacheWriter, open_cache
from defocus_forensics.explorer import Explorer

S = 16
N_PAIRS = 4


def _write_cache(path, rng: np.random.Generator, with_attr_rgb: bool = True):
    """Reals written in REVERSED scene order, so pairing by position would be wrong."""
    real_maps = rng.random((N_PAIRS, S, S)).astype(np.float16)
    fake_maps = real_maps.astype(np.float32).copy()
    fake_maps[:, 4:10, 4:10] = np.clip(fake_maps[:, 4:10, 4:10] + 0.4, 0, 1)
    fake_maps = fake_maps.astype(np.float16)
    masks = np.zeros((N_PAIRS, S, S), np.uint8)
    masks[:, 4:10, 4:10] = 1
    real_ids = [f"scene{i}-real" for i in range(N_PAIRS)]
    order = list(reversed(range(N_PAIRS)))

    def arrays(group, label, maps, ids, pair_ids, mask):
        n = len(ids)
        out = {
            "id": ids,
            "group": [group] * n,
            "label": np.full(n, label, np.int8),
            "pair_id": pair_ids,
            "image": rng.integers(0, 256, (n, 3, S, S), dtype=np.uint8),
            "defocus": maps,
            "attr_defocus": rng.normal(size=(n, S, S)).astype(np.float32),
            "logit_defocus": rng.normal(size=n).astype(np.float32),
            "mask": mask,
        }
        if with_attr_rgb:
            out["attr_rgb"] = rng.normal(size=(n, 3, S, S)).astype(np.float32)
        return out

    w = CacheWriter(path, config={"test": "explorer"})
    w.write_shard(
        "real",
        arrays(
            "real",
            0,
            real_maps[order],
            [real_ids[i] for i in order],
            [""] * N_PAIRS,
            np.zeros((N_PAIRS, S, S), np.uint8),
        ),  # fmt: skip
    )
    w.write_shard(
        "pasted",
        arrays(
            "pasted", 1, fake_maps, [f"scene{i}-pasted" for i in range(N_PAIRS)], real_ids, masks
        ),  # fmt: skip
    )
    return open_cache(path)


@pytest.fixture
def cache(tmp_path, rng):
    return _write_cache(tmp_path / "cache", rng)


def _reference_hist(fake, weights, bins=20):
    """Independent reference: numpy's weighted histogram on [0, 1], divided by (sum + 1e-8)."""
    h, _ = np.histogram(fake.astype(np.float64), bins=bins, range=(0, 1), weights=weights)
    return h / (h.sum() + 1e-8)


def test_choices(cache):
    ex = Explorer(cache)
    assert ex.groups() == ["real", "pasted"]
    assert ex.default_group() == "pasted"
    options = ex.sample_options("pasted")
    assert [i for _, i in options] == [0, 1, 2, 3]
    assert options[2][0].startswith("2: scene2-pasted (defocus logit ")


@pytest.mark.parametrize("threshold", [0.3, 0.05])
def test_fake_view_matches_numpy_references(cache, threshold):
    ex = Explorer(cache)
    view = ex.view("pasted", 1, threshold)
    fake = cache.load("defocus", "pasted")[1].astype(np.float32)
    # the paired real is scene 1's, stored at position N_PAIRS - 2 of the real shard
    real = cache.load("defocus", "real")[N_PAIRS - 2].astype(np.float32)
    assert cache.load("id", "real")[N_PAIRS - 2] == "scene1-real"
    assert ex.partner("pasted", 1) == ("real", N_PAIRS - 2)
    np.testing.assert_array_equal(view.real_defocus, real)
    np.testing.assert_array_equal(view.mask, np.abs(fake - real) > threshold)
    np.testing.assert_array_equal(view.truth, cache.load("mask", "pasted")[1])
    assert view.image.shape == (S, S, 3) and view.image.dtype == np.uint8

    diff = np.abs(fake.astype(np.float64) - real.astype(np.float64))
    attr_d = np.abs(cache.load("attr_defocus", "pasted")[1].astype(np.float64))
    attr_rgb = np.abs(cache.load("attr_rgb", "pasted")[1].astype(np.float64)).sum(axis=0)
    np.testing.assert_allclose(view.attr_defocus, attr_d, rtol=1e-6)
    np.testing.assert_allclose(view.attr_rgb, attr_rgb, rtol=1e-6)
    a = _reference_hist(fake, diff)
    for model, attr in (("defocus", attr_d), ("rgb", attr_rgb)):
        b = _reference_hist(fake, attr)
        al = view.alignment[model]
        np.testing.assert_allclose(al.hist_difference, a, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(al.hist_attribution, b, rtol=1e-9, atol=1e-12)
        assert al.score == pytest.approx(np.minimum(a, b).sum(), rel=1e-9)
        kl = np.sum((b + 1e-8) / (b + 1e-8).sum() * np.log(((b + 1e-8) / (b + 1e-8).sum())
                    / ((a + 1e-8) / (a + 1e-8).sum())))  # fmt: skip
        assert al.kl == pytest.approx(kl, rel=1e-6)
        np.testing.assert_allclose(al.edges, np.linspace(0, 1, 21))
    text = ex.describe(view)
    assert f"binary mask at T={threshold:g}: {int(view.mask.sum())} of {S * S} pixels" in text
    assert f"alignment defocus: {view.alignment['defocus'].score:.3f}" in text


def test_real_view_has_no_pair(cache):
    ex = Explorer(cache)
    view = ex.view("real", 0, 0.1)
    assert view.label == 0 and view.mask is None and view.real_defocus is None
    assert view.alignment == {}
    assert "a real sample" in ex.describe(view)


def test_missing_rgb_attributions_are_explained(tmp_path, rng):
    ex = Explorer(_write_cache(tmp_path / "c", rng, with_attr_rgb=False))
    view = ex.view("pasted", 0, 0.1)
    assert view.attr_rgb is None and list(view.alignment) == ["defocus"]
    assert "the cache has no 'attr_rgb' field" in ex.describe(view)


def test_errors(cache):
    ex = Explorer(cache)
    with pytest.raises(ValueError, match="group must be one of"):
        ex.view("nope", 0)
    with pytest.raises(ValueError, match=r"index must be in \[0, 4\)"):
        ex.view("pasted", 4)
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\), got 1.5"):
        ex.view("pasted", 0, 1.5)
    with pytest.raises(ValueError, match="bins must be a positive integer"):
        Explorer(cache, bins=0)


def test_figure_panels(cache):
    ex = Explorer(cache)
    fig = ex.figure(ex.view("pasted", 0, 0.1))
    titles = [ax.get_title() for ax in fig.get_axes()]
    assert "|fake - real| > 0.1" in titles and "ground-truth mask" in titles
    assert sum("model: score" in t for t in titles) == 2
    fig_real = ex.figure(ex.view("real", 0, 0.1))
    assert not any("score" in t for t in (ax.get_title() for ax in fig_real.get_axes()))


def test_widget_callbacks_without_a_browser(cache):
    pytest.importorskip("ipywidgets")
    ex = Explorer(cache)
    w = ex.widget()
    assert ex.last_view.group == "pasted" and ex.last_view.index == 0
    before = int(ex.last_view.mask.sum())
    w.threshold.value = 0.01
    assert ex.last_view.threshold == pytest.approx(0.01)
    assert int(ex.last_view.mask.sum()) >= before
    assert "T=0.01" in w.text.value
    w.sample.value = 3
    assert ex.last_view.id == "scene3-pasted"
    w.group.value = "real"
    assert [i for _, i in w.sample.options] == [0, 1, 2, 3]
    assert ex.last_view.group == "real" and ex.last_view.index == 0
    assert "a real sample" in w.text.value


def test_layout_is_stable_across_samples(cache):
    """The figure keeps its size and panels whether or not a ground truth exists (no jumps)."""
    ex = Explorer(cache)
    with_truth = ex.figure(ex.view("pasted", 0, 0.1))
    without = ex.figure(ex.view("real", 0, 0.1))
    assert tuple(with_truth.get_size_inches()) == tuple(without.get_size_inches())
    top = [ax.get_title() for ax in without.get_axes()][:6]
    assert top[-1] == "ground-truth mask"
    assert "n/a" in [t.get_text() for t in without.get_axes()[5].texts]


def test_long_sample_ids_are_shortened_in_titles():
    from defocus_forensics.explorer import _short_id

    long = "manipulated_sequences_Deepfakes_c23_v1faces_000_003_0031"
    assert _short_id(long) == "…" + long[-47:] and len(_short_id(long)) == 48
    assert _short_id("scene3-pasted") == "scene3-pasted"


def test_widgets_update_on_release_and_show_whole_labels(cache):
    pytest.importorskip("ipywidgets")
    w = Explorer(cache).widget()
    assert w.threshold.continuous_update is False
    assert w.sample.style.description_width == "initial"


def test_skill_beside_the_score_against_numpy(cache):
    ex = Explorer(cache)
    view = ex.view("pasted", 2, 0.1)
    fake = cache.load("defocus", "pasted")[2].astype(np.float64)
    real = cache.load("defocus", "real")[N_PAIRS - 3].astype(np.float64)
    a = _reference_hist(fake, np.abs(fake - real))
    constant = _reference_hist(fake, np.ones_like(fake))
    floor = np.minimum(a, constant).sum()
    for model, al in view.alignment.items():
        assert al.floor == pytest.approx(floor, rel=1e-9)
        assert al.skill == pytest.approx((al.score - floor) / (1 - floor), rel=1e-9)
        np.testing.assert_allclose(al.hist_constant, constant, rtol=1e-9, atol=1e-12)
        assert f"alignment {model}: {al.score:.3f} (floor {floor:.3f}, skill " in ex.describe(view)
    assert "0 = no better than constant" in ex.describe(view)
    titles = [ax.get_title() for ax in ex.figure(view).get_axes()]
    assert sum(f"floor {floor:.3f}, skill" in t for t in titles) == 2


def test_explorer_uses_the_figures_colour_maps_and_one_attribution_scale(cache):
    from analysis.style import DEFOCUS_CMAP, MASK_CMAP, SEQUENTIAL_CMAP

    ex = Explorer(cache)
    view = ex.view("pasted", 0, 0.1)
    fig = ex.figure(view)
    images = {ax.get_title(): ax.get_images()[0] for ax in fig.get_axes() if ax.get_images()}
    assert images["defocus map"].get_cmap().name == DEFOCUS_CMAP
    assert (images["defocus map"].norm.vmin, images["defocus map"].norm.vmax) == (0.0, 1.0)
    attr = [images["defocus model |attr|"], images["RGB model Σ|attr|"]]
    assert {im.get_cmap().name for im in attr} == {SEQUENTIAL_CMAP}
    top = max(np.percentile(view.attr_defocus, 99), np.percentile(view.attr_rgb, 99))
    assert [(im.norm.vmin, im.norm.vmax) for im in attr] == [(0.0, pytest.approx(top))] * 2
    for title in ("|fake - real| > 0.1", "ground-truth mask"):
        assert images[title].get_cmap().name == MASK_CMAP.name
    bars = [ax for ax in fig.get_axes() if hasattr(ax, "_colorbar")]
    assert len(bars) == 3  # defocus, |attribution| (both models), masks
