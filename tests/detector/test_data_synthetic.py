"""SyntheticDoF: determinism, groups, pairs, masks, and the physics of each group."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from detector.data import FAKE_GROUPS, GROUPS, RealFakeFolders, SyntheticDoF, write_synthetic
from detector.thin_lens import sigma_from_depth

SIZE = 64


def test_groups_pairs_and_balance():
    ds = SyntheticDoF(13, size=SIZE, seed=3)
    assert GROUPS == ("real", "all_in_focus", "inconsistent_blur", "pasted_region")
    groups = [s.group for s in ds.samples]
    assert groups[::2] == ["real"] * 7 and set(groups[1::2]) == set(FAKE_GROUPS)
    assert ds.labels.tolist() == [0, 1] * 6 + [0]
    for real, fake in zip(ds.samples[::2], ds.samples[1::2], strict=False):
        assert fake.pair_id == real.id and real.pair_id == ""
    assert len({s.id for s in ds.samples}) == 13


def test_deterministic_from_seed_and_independent_of_access_order():
    a = SyntheticDoF(6, size=SIZE, seed=7)
    b = SyntheticDoF(6, size=SIZE, seed=7, cache=False)
    forward = [a[i]["image"] for i in range(6)]
    backward = [b[i]["image"] for i in reversed(range(6))][::-1]
    for x, y in zip(forward, backward, strict=True):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    c = SyntheticDoF(6, size=SIZE, seed=8)
    assert not np.array_equal(c[0]["image"].numpy(), forward[0].numpy())


def test_items_have_the_contract_fields():
    ds = SyntheticDoF(2, size=SIZE, seed=0)
    item = ds[1]
    assert item["image"].shape == (3, SIZE, SIZE) and item["mask"].shape == (1, SIZE, SIZE)
    assert 0.0 <= float(item["image"].min()) <= float(item["image"].max()) <= 1.0
    # 8-bit quantised, so that PNG files hold exactly the items
    np.testing.assert_allclose(
        item["image"].numpy() * 255, np.rint(item["image"].numpy() * 255), atol=1e-3
    )
    assert {"label", "id", "group", "pair_id", "video", "index"} <= set(item)


@pytest.fixture(scope="module")
def scene():
    return SyntheticDoF(2, size=SIZE, seed=5).scene(1)


def test_real_follows_the_thin_lens(scene):
    # sigma of every layer is k |1/d - 1/d_f|: zero at the focus layer, and the ratio of
    # two layers' sigmas is the ratio of their inverse-depth differences
    depths, sigmas, focus = scene["depths"], scene["sigmas"], scene["focus_layer"]
    raw = np.abs(1.0 / depths.astype(np.float64) - 1.0 / float(depths[focus]))  # here, float64
    np.testing.assert_allclose(sigmas / sigmas.max(), raw / raw.max(), rtol=1e-12)
    np.testing.assert_allclose(sigma_from_depth(depths, depths[focus], 1.0), raw, rtol=1e-12)
    assert focus == len(depths) - 1 and np.all(np.diff(depths) < 0)  # focus on the nearest
    assert sigmas[focus] == 0.0
    assert 1.8 - 1e-9 <= sigmas.max() * 128 / SIZE <= 3.0 + 1e-9
    assert set(np.unique(scene["sigma"]["real"])) <= set(sigmas.astype(np.float32))


def _gaussian_blur_f64(img, sigma):
    """Separable float64 convolution with a sampled Gaussian of radius 4 sigma, (H, W, 3)."""
    r = int(4.0 * sigma + 0.5)
    t = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    h, w = img.shape[:2]
    pad = np.pad(img.astype(np.float64), ((r, r), (r, r), (0, 0)), mode="symmetric")
    rows = sum(k[i] * pad[i : i + h] for i in range(2 * r + 1))
    return sum(k[j] * rows[:, j : j + w] for j in range(2 * r + 1))


def test_real_is_the_all_in_focus_scene_through_the_thin_lens():
    # Without sensor noise: away from every object the real is the all-in-focus image
    # blurred with the background layer's sigma (a float64 convolution written here, to
    # 8-bit rounding), and inside the in-focus subject it is the all-in-focus image
    # exactly. Catches a wrong sigma, blur, layer order or compositing.
    sc = SyntheticDoF(2, size=128, seed=5, noise=0.0).scene(0, ["real", "all_in_focus"])
    real = sc["images"]["real"].astype(np.float64) / 255
    aif = sc["images"]["all_in_focus"].astype(np.float64) / 255
    smap, s_bg = sc["sigma"]["real"], float(sc["sigmas"][0])
    assert s_bg == sc["sigmas"].max()  # the farthest layer is the most blurred
    r = int(4.0 * s_bg + 0.5)
    far = ndimage.distance_transform_edt(smap == np.float32(s_bg)) > r + 2
    far[: r + 1], far[-r - 1 :], far[:, : r + 1], far[:, -r - 1 :] = False, False, False, False
    assert far.sum() > 300
    want = _gaussian_blur_f64(aif, s_bg)
    # real and all-in-focus are each rounded to 8 bits: at most 1/255 apart after the blur
    assert np.abs(real - want)[far].max() <= 1.0 / 255 + 1e-12
    # the blur does change the pixels (17/255 on average here); a sigma 10% off gives 8/255
    assert np.abs(real - aif)[far].mean() > 5.0 / 255
    subject = ndimage.distance_transform_edt(smap == 0) > 2
    assert subject.sum() > 500
    np.testing.assert_array_equal(
        sc["images"]["real"][subject], sc["images"]["all_in_focus"][subject]
    )


def _sharpness(img):
    g = img.astype(np.float64).mean(axis=2)
    return float(np.mean(ndimage.laplace(g) ** 2))


def test_all_in_focus_is_sharper_and_has_zero_blur(scene):
    assert not scene["sigma"]["all_in_focus"].any()
    assert _sharpness(scene["images"]["all_in_focus"]) > _sharpness(scene["images"]["real"])


def test_inconsistent_blur_is_a_clamped_plane_across_the_subject(scene):
    field = scene["sigma"]["inconsistent_blur"].astype(np.float64)
    smax = scene["sigmas"].max()
    assert field.min() == pytest.approx(0.0, abs=1e-6)
    assert field.max() == pytest.approx(smax, rel=1e-5)
    # a tilted plane clamped to [0, smax]: fit the plane on the unclamped pixels by least
    # squares, then the whole field is that plane clipped
    free = (field > 1e-6) & (field < smax * (1 - 1e-6))
    assert free.mean() > 0.1
    yy, xx = np.mgrid[0 : field.shape[0], 0 : field.shape[1]].astype(np.float64)
    design = np.stack([yy[free], xx[free], np.ones(free.sum())], axis=1)
    coef, *_ = np.linalg.lstsq(design, field[free], rcond=None)
    plane = coef[0] * yy + coef[1] * xx + coef[2]
    np.testing.assert_allclose(field, np.clip(plane, 0.0, smax), atol=1e-5)
    # it contradicts depth: the subject (one depth, sharp in the real) runs from sharp to
    # the background's full blur
    subject = scene["sigma"]["real"] == 0
    assert field[subject].min() < 0.05 * smax and field[subject].max() > 0.95 * smax


def test_pasted_region_changes_only_inside_its_mask(scene):
    real = scene["images"]["real"].astype(int)
    fake = scene["images"]["pasted_region"].astype(int)
    mask = scene["mask"].astype(bool)
    assert 0.08 < mask.mean() < 0.45  # a subject-sized region
    # at the focus depth (inside the subject, sharp in the real: the mask lies where the
    # subject's alpha exceeds 0.5) yet blurred like the background, one sigma for the patch
    assert np.all(scene["sigma"]["real"][mask] == 0)
    pasted_sigma = np.unique(scene["sigma"]["pasted_region"][mask])
    assert pasted_sigma.size == 1 and 2.0 <= pasted_sigma[0] * 128 / SIZE <= 3.0 + 1e-6
    outside = ~ndimage.binary_dilation(mask, iterations=2)
    np.testing.assert_array_equal(fake[outside], real[outside])  # same noise, same pixels
    assert np.abs(fake[mask] - real[mask]).mean() > 5
    # outside the mask the sigma map is the real's
    np.testing.assert_array_equal(
        scene["sigma"]["pasted_region"][~mask], scene["sigma"]["real"][~mask]
    )


def test_only_pasted_fakes_carry_a_mask():
    ds = SyntheticDoF(12, size=SIZE, seed=1)
    for i, s in enumerate(ds.samples):
        total = float(ds[i]["mask"].sum())
        assert (total > 0) == (s.group == "pasted_region"), s.id


def test_make_data_layout_reads_back(tmp_path):
    n = 20  # 10 scenes: 7 train, 1 val, 2 test
    index = write_synthetic(tmp_path, n=n, size=SIZE, seed=2, progress=False)
    assert (tmp_path / "dataset.json").is_file()
    assert len(list((tmp_path / "real").glob("*.png"))) == 10
    ds = SyntheticDoF(n, size=SIZE, seed=2)
    got = {}
    for split in ("train", "val", "test"):
        part = RealFakeFolders.from_index(index, split=split)
        for i, s in enumerate(part.samples):
            got[s.id] = (s, part[i])
        assert len(part) == {"train": 14, "val": 2, "test": 4}[split]
    assert len(got) == n
    for i, s in enumerate(ds.samples):
        rec, item = got[s.id]
        assert (rec.label, rec.group, rec.pair_id) == (s.label, s.group, s.pair_id)
        np.testing.assert_array_equal(item["image"].numpy(), ds[i]["image"].numpy())
        np.testing.assert_array_equal(item["mask"].numpy(), ds[i]["mask"].numpy())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must be"),
        ({"n": 4, "size": 8}, "size must be"),
        ({"n": 4, "fake_groups": ["face_swap"]}, "fake_groups"),
        ({"n": 4, "seed": -1}, "seed"),
    ],
)
def test_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticDoF(**kwargs)
