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
    raw = sigma_from_depth(depths, depths[focus], 1.0)
    np.testing.assert_allclose(sigmas / sigmas.max(), raw / raw.max(), rtol=1e-12)
    assert sigmas[focus] == 0.0
    assert 1.8 - 1e-9 <= sigmas.max() * 128 / SIZE <= 3.0 + 1e-9
    assert set(np.unique(scene["sigma"]["real"])) <= set(sigmas.astype(np.float32))


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
    # at the focus depth (inside the subject, sharp in the real) yet blurred like the background
    assert (scene["sigma"]["real"][mask] == 0).mean() > 0.95
    assert scene["sigma"]["pasted_region"][mask].min() >= 2.0 * SIZE / 128 - 1e-6
    outside = ~ndimage.binary_dilation(mask, iterations=2)
    np.testing.assert_array_equal(fake[outside], real[outside])  # same noise, same pixels
    assert np.abs(fake[mask] - real[mask]).mean() > 5
    # its blur differs from what lies under it
    under = scene["sigma"]["real"][mask]
    pasted = scene["sigma"]["pasted_region"][mask]
    assert np.all(np.abs(pasted - under) >= 0.0) and np.abs(pasted - under).mean() > 0.5


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
