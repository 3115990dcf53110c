"""Reference mode against an independent plain implementation of the paper's pipeline.

The reference written here follows docs/algorithm.md section 1 step by step with
other tools than the implementation under test: ``skimage.feature.canny``
per image, ``torch.nn.functional.interpolate``, 2-D ``scipy.ndimage.correlate``
with the dense 11x11 kernels in float64, and a guided filter built on
integral images (cumulative sums) in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage
from skimage.feature import canny

from detector.defocus import DefocusConfig, DefocusEstimator, DefocusMaps, estimate_defocus

# ---- the independent reference ---------------------------------------------------------


def ref_kernels(s: float):
    c = np.arange(-5, 6, dtype=np.float64)
    x, y = np.meshgrid(c, c, indexing="ij")  # x along rows, y along columns
    g = np.exp(-(x**2 + y**2) / (2 * s**2))
    return -x / (2 * math.pi * s**4) * g, -y / (2 * math.pi * s**4) * g


def ref_box_mean(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over windows clipped to the image, from an integral image."""
    h, w = a.shape
    ii = np.zeros((h + 1, w + 1))
    ii[1:, 1:] = a.cumsum(0).cumsum(1)
    i0 = np.clip(np.arange(h) - r, 0, h)
    i1 = np.clip(np.arange(h) + r + 1, 0, h)
    j0 = np.clip(np.arange(w) - r, 0, w)
    j1 = np.clip(np.arange(w) + r + 1, 0, w)
    s = ii[i1][:, j1] - ii[i0][:, j1] - ii[i1][:, j0] + ii[i0][:, j0]
    return s / np.outer(i1 - i0, j1 - j0)


def ref_guided(guide, src, r=7, eps=1e-2):
    mi, mp = ref_box_mean(guide, r), ref_box_mean(src, r)
    var = ref_box_mean(guide * guide, r) - mi * mi
    cov = ref_box_mean(guide * src, r) - mi * mp
    a = cov / (var + eps)
    b = mp - a * mi
    return ref_box_mean(a, r) * guide + ref_box_mean(b, r)


def reference_pipeline(images: torch.Tensor, size=299, symmetric=False):
    """docs/algorithm.md section 1, step by step. Returns float64 (B, S, S) arrays."""
    x = images.float()
    if symmetric:
        x = (x - 0.5) / 0.5
    gray = x.mean(dim=1, keepdim=True)  # float32, as the paper
    edges = np.stack(
        [canny(np.clip(g[0].numpy(), 0, 1), sigma=1.5).astype(np.float32) for g in gray]
    )
    edges = torch.from_numpy(edges)[:, None]
    if size is not None:
        gray = F.interpolate(gray, size=(size, size), mode="bilinear", align_corners=False)
        edges = F.interpolate(edges, size=(size, size), mode="bilinear", align_corners=False)
    gray = gray[:, 0].double().numpy()
    edges = edges[:, 0].double().numpy()
    dense, sparse = [], []
    emax = edges.max()
    for g, e in zip(gray, edges, strict=True):
        m = []
        for s in (1.5, 2.0):
            gx, gy = ref_kernels(s)
            cx = ndimage.correlate(g, gx, mode="constant", cval=0.0)
            cy = ndimage.correlate(g, gy, mode="constant", cval=0.0)
            m.append(np.sqrt(cx**2 + cy**2))
        r = m[0] / (m[1] + 1e-8)
        r = r * e / (emax + 1e-8)
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.sqrt(np.clip((r**2 * 1.5**2 - 2.0**2) / (1 - r**2 + 1e-8), 0, None))
        v = np.minimum(np.nan_to_num(v, nan=0.0), 5.0)
        sparse.append(v)
        dense.append(ref_guided(g, v))
    return np.stack(dense), np.stack(sparse), edges


# ---- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch(photos) -> torch.Tensor:
    """Four real photos cropped to a common 256x320 (non-square, resized to 299)."""
    crops = [photos[k][:256, :320] for k in ("astronaut", "coffee", "chelsea", "rocket")]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0


BACKENDS = ["auto", "numpy", "torch"]  # "torch" on CPU runs the GPU code path


def _compare(maps: DefocusMaps, ref, *, edge_fraction=1e-4):
    dense_ref, sparse_ref, edges_ref = ref
    edges = maps.edges[:, 0].double().numpy()
    # edges: the resized maps of identical binary Canny edges agree to float rounding;
    # a pixel "disagrees" when the binary edge under it differs.
    bad = np.abs(edges - edges_ref) > 1e-5
    assert bad.mean() <= edge_fraction, f"{bad.mean():.2e} of edge pixels differ"
    # the sparse map is exact up to float32 rounding except where R sits within
    # float error of the clamps (a sqrt near 0 amplifies 1e-7 to ~1e-3)
    sparse = maps.sparse[:, 0].double().numpy()
    close = np.abs(sparse - sparse_ref) <= 1e-4 + 1e-4 * np.abs(sparse_ref)
    assert close.mean() >= 0.9999, f"only {close.mean():.6f} of sparse pixels agree"
    assert np.abs(sparse - sparse_ref).max() <= 2e-2
    dense = maps.defocus[:, 0].double().numpy()
    np.testing.assert_allclose(dense, dense_ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("symmetric", [False, True])
def test_reference_mode_matches_plain_pipeline(batch, backend, symmetric):
    config = DefocusConfig(
        mode="reference", backend=backend, input_range="symmetric" if symmetric else "unit"
    )
    maps = estimate_defocus(batch, config)
    _compare(maps, reference_pipeline(batch, symmetric=symmetric))


@pytest.mark.parametrize("backend", BACKENDS)
def test_native_size_keeps_resolution(batch, backend):
    x = batch[:2, :, :96, :128]
    maps = estimate_defocus(x, DefocusConfig(size=None, backend=backend))
    assert maps.defocus.shape == (2, 1, 96, 128)
    ref = reference_pipeline(x, size=None)
    _compare(maps, ref)
    # native resolution: edges stay binary
    assert set(np.unique(maps.edges.numpy())) <= {0.0, 1.0}


def test_outputs_contract(batch):
    x = batch[:2].clone().requires_grad_(True)
    maps = estimate_defocus(x, DefocusConfig(size=64))
    for name in ("defocus", "sparse", "edges"):
        t = getattr(maps, name)
        assert t.shape == (2, 1, 64, 64) and t.dtype == torch.float32, name
        assert not t.requires_grad
        assert torch.isfinite(t).all()
    assert float(maps.sparse.min()) >= 0 and float(maps.sparse.max()) <= 5.0
    assert 0 <= float(maps.edges.min()) and float(maps.edges.max()) <= 1.0
    module = DefocusEstimator(DefocusConfig(size=64))
    torch.testing.assert_close(module(x).defocus, maps.defocus, rtol=0, atol=0)


def test_edge_weight_uses_the_batch_maximum():
    """The paper divides by the maximum of the resized edges over the whole batch."""

    def step(col):  # a vertical step edge, blurred a little
        img = np.zeros((100, 100), dtype=np.float64)
        img[:, col:] = 0.8
        img = ndimage.gaussian_filter(img, 1.0) + 0.1
        return torch.from_numpy(np.repeat(img[None, None], 3, 1)).float()

    config = DefocusConfig(size=37)  # downsampling: thin edges lose their peak
    a, b = step(46), step(47)  # edge maxima 0.20 and 1.0 after resizing
    ma = float(estimate_defocus(a, config).edges.max())
    mb = float(estimate_defocus(b, config).edges.max())
    assert min(ma, mb) < 1.0 and abs(ma - mb) > 0.05, (ma, mb)
    low, high = (a, b) if ma < mb else (b, a)
    alone = estimate_defocus(low, config)
    together = estimate_defocus(torch.cat([low, high]), config)
    assert float(alone.sparse.max()) > 1.0  # alone, the weak edge gives estimates...
    assert not torch.allclose(together.sparse[:1], alone.sparse)  # ...that the batch changes
    dense_ref, sparse_ref, _ = reference_pipeline(torch.cat([low, high]), size=37)
    np.testing.assert_allclose(together.sparse[:, 0].numpy(), sparse_ref, atol=1e-4)
    np.testing.assert_allclose(together.defocus[:, 0].numpy(), dense_ref, atol=1e-4)
    # a flat partner has no edges and changes nothing
    flat = torch.full_like(low, 0.5)
    with_flat = estimate_defocus(torch.cat([low, flat]), config)
    torch.testing.assert_close(with_flat.defocus[:1], alone.defocus, rtol=0, atol=0)


def test_numpy_input_and_single_channel(batch):
    gray = batch[:1].mean(1, keepdim=True)
    a = estimate_defocus(gray.numpy(), DefocusConfig(size=64))
    b = estimate_defocus(gray.expand(-1, 3, -1, -1).contiguous(), DefocusConfig(size=64))
    torch.testing.assert_close(a.defocus, b.defocus, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (torch.rand(2, 3, 32), r"shape \(B, 3, H, W\)"),
        (torch.rand(2, 4, 32, 32), r"shape \(B, 3, H, W\)"),
        (torch.rand(0, 3, 32, 32), "at least one image"),
        (torch.rand(1, 3, 4, 32), "at least 8x8"),
        ((torch.rand(1, 3, 32, 32) * 255).to(torch.uint8), "float tensor"),
        (torch.rand(1, 3, 32, 32) * 2 - 1, r"in \[0, 1\]"),
        (torch.full((1, 3, 32, 32), float("nan")), "finite"),
        ([1, 2, 3], "torch.Tensor or ndarray"),
    ],
)
def test_bad_images_raise(images, match):
    with pytest.raises(ValueError, match=match):
        estimate_defocus(images, DefocusConfig(size=16))


def test_bad_config_argument():
    with pytest.raises(ValueError, match="DefocusConfig"):
        estimate_defocus(torch.rand(1, 3, 16, 16), {"mode": "reference"})


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_reference_mode_with_matting_propagation(batch, backend):
    from detector.defocus._matting import matting_propagate

    x = batch[:1, :, :64, :80]
    maps = estimate_defocus(x, DefocusConfig(size=48, propagation="matting", backend=backend))
    guided = estimate_defocus(x, DefocusConfig(size=48, backend=backend))
    torch.testing.assert_close(maps.sparse, guided.sparse, rtol=0, atol=1e-6)
    gray = F.interpolate(x.mean(1, keepdim=True), size=(48, 48), mode="bilinear")[0, 0].numpy()
    s = maps.sparse[0, 0].numpy()
    config = DefocusConfig()
    expected = matting_propagate(
        gray, s, (s > 0).astype(float), config.matting_lambda, config.matting_eps
    )
    np.testing.assert_allclose(maps.defocus[0, 0].numpy(), expected, atol=1e-4)
