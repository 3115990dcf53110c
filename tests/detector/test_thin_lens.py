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
