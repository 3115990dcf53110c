"""``explain_image``: one image, one checkpoint, exact values on a linear detector."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cache.explain import explain_image
from cache.testing import TinyDetector


class LinearRGB(torch.nn.Module):
    """``logit = sum(w * x)`` on the image itself: expected gradients give ``w * (x - b)``."""

    kind = "rgb"

    def __init__(self, side: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(1, 3, side, side, generator=g))

    @torch.no_grad()
    def model_input(self, images):
        return images

    def classify(self, x):
        return (self.w * x).flatten(1).sum(1, keepdim=True)


def test_exact_on_a_linear_model_from_a_file(tmp_path, rng):
    img = (rng.random((12, 12, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "x.png")
    model = LinearRGB(12)
    e = explain_image(model, tmp_path / "x.png", nsamples=8, seed=3)
    x = img.transpose(2, 0, 1).astype(np.float32) / 255
    w = model.w.detach().numpy()[0]
    np.testing.assert_allclose(e.image, x, atol=1e-6)
    # black background: attribution = w * (x - 0); it sums to the logit (completeness)
    np.testing.assert_allclose(e.attribution, w * x, rtol=1e-5, atol=1e-6)
    assert e.logit == pytest.approx(float((w * x).sum()), rel=1e-5)
    assert e.probability == pytest.approx(1 / (1 + np.exp(-e.logit)))
    # a background of one grey image: w * (x - 0.5)
    grey = np.full((12, 12, 3), 0.5, np.float32)
    e2 = explain_image(model, img, background=[grey], nsamples=8)
    np.testing.assert_allclose(e2.attribution, w * (x - 0.5), rtol=1e-4, atol=1e-5)


def test_defocus_checkpoint_end_to_end(tmp_path, rng):
    """From a saved checkpoint: explained on the map it sees, seeded, completeness holds."""
    from detector.models import save_checkpoint

    torch.manual_seed(0)
    from detector.models import build_detector

    model = build_detector("defocus", backbone="resnet10t", pretrained=False, image_size=32)
    path = save_checkpoint(model, tmp_path / "d.pt")
    img = rng.random((40, 40, 3)).astype(np.float32)
    a = explain_image(path, img, nsamples=16, seed=1)
    b = explain_image(path, img, nsamples=16, seed=1)
    assert a.kind == "defocus" and a.model_input.shape == (32, 32) == a.attribution.shape
    np.testing.assert_array_equal(a.attribution, b.attribution)  # seeded
    assert 0.0 <= a.model_input.min() and a.model_input.max() <= 1.0
    model.eval()
    with torch.no_grad():
        black = model.classify(model.model_input(torch.zeros(1, 3, 40, 40)))
    # expected gradients from one baseline: sum ~ logit(x) - logit(black) (Riemann error)
    assert a.attribution.sum() == pytest.approx(a.logit - float(black), abs=0.15)


def test_errors_name_the_bad_value(tmp_path):
    with pytest.raises(ValueError, match=r"values must lie in \[0, 1\]"):
        explain_image(TinyDetector("rgb"), np.full((8, 8, 3), 3.0))
    with pytest.raises(ValueError, match="3 channels"):
        explain_image(TinyDetector("rgb"), torch.zeros(1, 4, 8, 8))

    class Fusion(torch.nn.Module):
        kind = "fusion"

    with pytest.raises(ValueError, match="got kind 'fusion'"):
        explain_image(Fusion(), np.zeros((8, 8, 3)))


def test_plot_explanation_has_a_centred_scale_and_a_true_caption(rng):
    import matplotlib

    matplotlib.use("Agg")
    from analysis.overlays import plot_explanation
    from analysis.style import caption_of

    e = explain_image(TinyDetector("defocus", size=16), rng.random((16, 16, 3)), nsamples=4)
    fig = plot_explanation(e)
    assert tuple(fig.get_size_inches())[0] == pytest.approx(3.5)
    norm = fig.axes[2].images[0].norm
    assert norm.vmin == pytest.approx(-norm.vmax) and norm.vmax > 0
    assert "defocus model" in caption_of(fig) and "centred on 0" in caption_of(fig)
