"""Thin-lens rendering: closed-form sigma, layer compositing, disparity rendering."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from detector.thin_lens import (
    Layer,
    gaussian_blur,
    render_from_disparity,
    render_layers,
    sigma_from_depth,
    sigma_from_disparity,
)


def test_sigma_from_depth_formula():
    depth = np.array([1.0, 2.0, 4.0, 8.0])
    np.testing.assert_allclose(sigma_from_depth(depth, 2.0, 6.0), 6.0 * np.abs(1 / depth - 0.5))
    assert sigma_from_depth(2.0, 2.0, 6.0) == 0.0
    np.testing.assert_allclose(sigma_from_disparity([3.0, 5.0], 4.0, 2.0), [2.0, 2.0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"depth": [1.0, 0.0], "focus_depth": 1.0, "k": 1.0}, "depth must be finite and > 0"),
        ({"depth": [1.0], "focus_depth": -1.0, "k": 1.0}, "focus_depth must be"),
        ({"depth": [1.0], "focus_depth": 1.0, "k": -2.0}, "k must be"),
    ],
)
def test_sigma_from_depth_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sigma_from_depth(**kwargs)


def test_single_opaque_layer_is_a_gaussian_blur(rng):
    img = rng.random((40, 50, 3))
    out, sig = render_layers([Layer(img, np.ones((40, 50)), 1.7)])
    expected = ndimage.gaussian_filter(img, (1.7, 1.7, 0), mode="reflect", truncate=4.0)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    np.testing.assert_array_equal(sig, 1.7)


def test_sharp_front_over_blurred_back(rng):
    back = rng.random((60, 60, 3))
    front = np.full((60, 60, 3), 0.25)
    alpha = np.zeros((60, 60))
    alpha[:, 30:] = 1.0
    out, sig = render_layers([(back, np.ones((60, 60)), 2.0), (front, alpha, 0.0)])
    blurred_back = gaussian_blur(back, 2.0)
    np.testing.assert_allclose(out[:, :30], blurred_back[:, :30], atol=1e-12)
    np.testing.assert_allclose(out[:, 30:], 0.25, atol=1e-12)
    assert (sig[:, :30] == 2.0).all() and (sig[:, 30:] == 0.0).all()


def test_blurred_front_spreads_over_the_back():
    back = np.zeros((40, 80, 3))
    front = np.ones((40, 80, 3))
    alpha = np.zeros((40, 80))
    alpha[:, 40:] = 1.0
    out, _ = render_layers([(back, np.ones((40, 80)), 0.0), (front, alpha, 3.0)])
    # the blurred silhouette of the front is an erf profile across the boundary
    from scipy.special import erf

    x = np.arange(80) - 39.5
    expected = 0.5 * (1 + erf(x / (3.0 * np.sqrt(2))))
    np.testing.assert_allclose(out[20, 10:70, 0], expected[10:70], atol=2e-3)


def test_render_from_disparity_constant_plane(rng):
    img = rng.random((30, 30, 3))
    disp = np.full((30, 30), 10.0)
    sharp, sig0 = render_from_disparity(img, disp, focus_disparity=10.0, k=0.5)
    np.testing.assert_allclose(sharp, img, atol=1e-12)
    assert (sig0 == 0).all()
    blurred, sig = render_from_disparity(img, disp, focus_disparity=6.0, k=0.5)
    np.testing.assert_allclose(blurred, gaussian_blur(img, 2.0), atol=1e-12)
    np.testing.assert_allclose(sig, 2.0)


def test_render_from_disparity_two_planes_and_nan(rng):
    img = rng.random((40, 40, 3))
    disp = np.where(np.arange(40)[None, :] < 20, 2.0, 8.0) * np.ones((40, 1))
    disp[0, 0] = np.nan  # filled from the nearest finite value
    out, sig = render_from_disparity(img, disp, focus_disparity=8.0, k=0.5, n_levels=4)
    assert out.shape == (40, 40, 3) and np.isfinite(out).all()
    # bins of width 1.5 over [2, 8]: centres 2.75 and 7.25
    np.testing.assert_allclose(sig[:, :20], 0.5 * abs(2.75 - 8.0))
    np.testing.assert_allclose(sig[:, 20:], 0.5 * abs(7.25 - 8.0))
    with pytest.raises(ValueError, match="disparity must have shape"):
        render_from_disparity(img, disp[:10], 8.0, 0.5)
    with pytest.raises(ValueError, match="n_levels"):
        render_from_disparity(img, disp, 8.0, 0.5, n_levels=0)


def test_layer_validation():
    with pytest.raises(ValueError, match="rgb must have shape"):
        Layer(np.zeros((4, 4)), np.zeros((4, 4)), 1.0)
    with pytest.raises(ValueError, match="alpha must have shape"):
        Layer(np.zeros((4, 4, 3)), np.zeros((3, 4)), 1.0)
    with pytest.raises(ValueError, match="sigma must be"):
        Layer(np.zeros((4, 4, 3)), np.zeros((4, 4)), -1.0)
    with pytest.raises(ValueError, match="layers must not be empty"):
        render_layers([])


def test_photo_scene_truth_and_focus():
    from detector.thin_lens import photo_scene

    back = photo_scene(0, ("astronaut", "coffee", "chelsea"), "back")
    front = photo_scene(0, ("astronaut", "coffee", "chelsea"), "front")
    assert back.image.shape == (192, 256, 3) and back.image.dtype == np.uint8
    assert back.valid.all()
    # the same layers, focused at the two ends: the lens blur levels swap ends
    levels_back, levels_front = np.unique(back.lens), np.unique(front.lens)
    assert levels_back[0] == 0.0 and levels_back[-1] == 3.0
    assert levels_front[0] == 0.0 and levels_front[-1] == 3.0
    # the background (disparity 0; objects lie at 0.25..1) is the only sharp layer when
    # focused on it, and the only 3 px one when the focus is on the front object
    on_background = back.lens == 0.0
    assert 0.2 < on_background.mean() < 1.0
    np.testing.assert_array_equal(on_background, front.lens == 3.0)
    # the truth adds the blur of the photos' resampling in quadrature
    assert back.base_blur == pytest.approx(0.5 * np.sqrt(0.25 + 0.25 + 1 / 12))
    np.testing.assert_allclose(back.sigma, np.sqrt(back.lens**2 + back.base_blur**2))
    # reproducible from the seed
    np.testing.assert_array_equal(
        back.image, photo_scene(0, ("astronaut", "coffee", "chelsea")).image
    )


def test_photo_scene_and_benchmark_errors():
    from detector.thin_lens import benchmark_scenes, photo_scene

    with pytest.raises(ValueError, match="focus must be"):
        photo_scene(0, focus="side")
    with pytest.raises(ValueError, match="photo must be one of"):
        photo_scene(0, ("lena",))
    with pytest.raises(ValueError, match="sharp part of twice"):
        photo_scene(0, ("coffee", "flower"))
    with pytest.raises(ValueError, match="split must be"):
        benchmark_scenes("train")


def test_resample_blur_matches_a_fitted_edge():
    """A sharp edge shrunk as the benchmark shrinks photos has the blur ``resample_blur`` says.

    Oracle independent of the defocus estimators: an error function fitted by least
    squares to the profile of an area-sampled step (16x supersampled) shrunk by
    scikit-image's ``rescale``, averaged over eight sub-pixel edge positions.
    """
    from scipy.optimize import curve_fit
    from scipy.special import erf
    from skimage.transform import rescale

    from detector.thin_lens import resample_blur

    def step(x, x0, s, lo, hi):
        return lo + (hi - lo) * 0.5 * (1 + erf((x - x0) / (s * np.sqrt(2))))

    fits = []
    for offset in np.linspace(0, 1, 8, endpoint=False):
        x = (np.arange(64 * 16) + 0.5) / 16
        row = (x > 31.0 + offset).astype(float).reshape(64, 16).mean(axis=1)
        small = rescale(np.tile(row, (16, 1)), 0.5, anti_aliasing=True, order=1)[4]
        params, _ = curve_fit(step, np.arange(small.size), small, p0=(16.0, 0.5, 0.0, 1.0))
        fits.append(abs(params[1]))
    assert np.mean(fits) == pytest.approx(resample_blur(0.5), abs=0.03)
    assert resample_blur(1.0) == pytest.approx(np.sqrt(1 / 12))  # the pixel alone
    with pytest.raises(ValueError, match="scale must be in"):
        resample_blur(1.5)


def test_benchmark_splits():
    """At most half of the benchmark's scenes are the ones the defaults were tuned on."""
    from detector.thin_lens import BENCHMARK_SCENES

    sizes = {split: len(specs) for split, specs in BENCHMARK_SCENES.items()}
    assert sizes == {"tuned": 6, "held-out": 6, "unseen": 4}
    assert sizes["tuned"] <= sum(sizes.values()) / 2
    specs = [spec for specs in BENCHMARK_SCENES.values() for spec in specs]
    assert len(set(specs)) == len(specs)  # no scene twice
