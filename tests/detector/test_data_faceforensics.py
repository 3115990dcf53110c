"""FaceForensics++ layout, the paper's exact split, pairing and masks on a test-made tree."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from detector.data import FaceForensicsPP, collate_samples, split_videos

N_VIDEOS = 10  # -> 7 train, 1 val, 2 test
N_FRAMES = 34  # more than the 32 kept


def _png(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


@pytest.fixture(scope="module")
def ff_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ffpp")
    reals = [f"{i:03d}" for i in range(N_VIDEOS)]
    for v in reals:
        for f in range(N_FRAMES):
            _png(root / "original_sequences/youtube/raw/v1faces" / v / f"{f:04d}.png", 10)
    for m in ("Deepfakes", "FaceSwap"):
        for i, v in enumerate(reals):
            src = reals[(i + 3) % N_VIDEOS]
            for f in range(N_FRAMES):
                _png(
                    root
                    / "manipulated_sequences"
                    / m
                    / "raw/v1faces"
                    / f"{v}_{src}"
                    / f"{f:04d}.png",
                    200,
                )
    # masks for Deepfakes only, and not for every frame
    for v in reals[:2]:
        src = reals[(int(v) + 3) % N_VIDEOS]
        mask = np.zeros((8, 8, 3), np.uint8)
        mask[2:6, 2:6] = 255
        p = root / "manipulated_sequences/Deepfakes/masks/v1faces" / f"{v}_{src}" / "0000.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(p)
    # a c23 copy of one real and one fake video
    _png(root / "original_sequences/youtube/c23/v1faces/000/0000.png", 10)
    _png(root / "manipulated_sequences/Deepfakes/c23/v1faces/000_003/0000.png", 200)
    return root


def test_split_videos_is_seven_one_two_after_sorting():
    vids = [f"v{i:02d}" for i in range(23)][::-1]
    s = split_videos(vids)
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (16, 2, 5)  # int(16.1), int(2.3)
    assert s["train"] + s["val"] + s["test"] == sorted(vids)


@pytest.mark.parametrize(
    ("split", "videos"), [("train", range(0, 7)), ("val", [7]), ("test", [8, 9])]
)
def test_paper_split_per_group(ff_root, split, videos):
    ds = FaceForensicsPP(ff_root, ["Deepfakes"], split=split, compression="c0")
    real = [s for s in ds.samples if s.group == "real"]
    fake = [s for s in ds.samples if s.group == "Deepfakes"]
    # independent expectation: sorted folder names, 7:1:2, first 32 frames by name
    assert sorted({s.video for s in real}) == [f"real/{v:03d}" for v in videos]
    assert len(real) == len(fake) == 32 * len(videos)
    frames = sorted({s.id.rsplit("/", 1)[1] for s in real})
    assert frames == [f"{f:04d}.png" for f in range(32)]
    assert all(s.label == 0 for s in real) and all(s.label == 1 for s in fake)


def test_fake_frames_pair_with_their_target_video(ff_root):
    ds = FaceForensicsPP(ff_root, ["Deepfakes"], split="test", compression="c0")
    fake = [s for s in ds.samples if s.label == 1]
    s = fake[0]
    target = s.id.split("/")[1].split("_")[0]
    assert s.pair_id == f"real/{target}/{s.id.rsplit('/', 1)[1]}"
    assert s.id.startswith("Deepfakes/") and s.video == "Deepfakes/" + s.id.split("/")[1]


def test_masks_are_used_when_the_folder_exists(ff_root):
    ds = FaceForensicsPP(ff_root, ["Deepfakes"], split="train", compression="c0")
    with_mask = [s for s in ds.samples if s.mask_path]
    assert len(with_mask) == 2 and all(s.id.endswith("/0000.png") for s in with_mask)
    i = ds.samples.index(with_mask[0])
    item = ds[i]
    assert item["mask"].shape == (1, 8, 8) and item["mask"].sum() == 16
    j = next(k for k, s in enumerate(ds.samples) if s.label == 0)
    assert ds[j]["mask"].sum() == 0  # reals get a zero mask
    assert not FaceForensicsPP(
        ff_root, ["Deepfakes"], split="train", masks=False, compression="c0"
    ).has_masks
    assert not FaceForensicsPP(ff_root, ["FaceSwap"], split="train", compression="c0").has_masks


def test_items_and_batches(ff_root):
    ds = FaceForensicsPP(ff_root, ["Deepfakes"], split="val", image_size=4, compression="c0")
    batch = collate_samples([ds[0], ds[len(ds) - 1]])
    assert batch["image"].shape == (2, 3, 4, 4)
    np.testing.assert_allclose(batch["image"][0].numpy(), 10 / 255, atol=1e-6)
    assert batch["label"].tolist() == [0, 1] and batch["failed"] == []


def test_each_manipulation_is_split_separately_unless_pooled(ff_root):
    sep = FaceForensicsPP(ff_root, ["Deepfakes", "FaceSwap"], split="train", compression="c0")
    groups = {g: {s.video for s in sep.samples if s.group == g} for g in ("Deepfakes", "FaceSwap")}
    assert len(groups["Deepfakes"]) == len(groups["FaceSwap"]) == 7
    pooled = FaceForensicsPP(
        ff_root, ["Deepfakes", "FaceSwap"], split="train", pooled=True, compression="c0"
    )
    # the paper's code: 20 fake folders sorted by path, the first int(0.7 * 20) = 14 train
    pg = {g: {s.video for s in pooled.samples if s.group == g} for g in ("Deepfakes", "FaceSwap")}
    assert len(pg["Deepfakes"]) == 10 and len(pg["FaceSwap"]) == 4


def test_compression_level_selects_the_folder(ff_root):
    ds = FaceForensicsPP(ff_root, ["Deepfakes"], split="all", compression="c23")
    assert [s.id for s in ds.samples] == ["real/000/0000.png", "Deepfakes/000_003/0000.png"]
    assert "/c23/" in ds.samples[0].path


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"split": "dev"}, ValueError, "split must be one of"),
        ({"compression": "c10"}, ValueError, "compression must be one of"),
        ({"manipulations": ["NoSuch"]}, FileNotFoundError, "no frames of manipulation 'NoSuch'"),
        ({"frames_per_video": 0}, ValueError, "frames_per_video"),
    ],
)
def test_errors(ff_root, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        FaceForensicsPP(ff_root, **{"compression": "c0", **kwargs})


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="root not found"):
        FaceForensicsPP(tmp_path / "nope")


def test_compression_is_found_when_only_one_level_exists(tmp_path):
    _png(tmp_path / "original_sequences/youtube/c40/v1faces/000/0000.png", 10)
    _png(tmp_path / "manipulated_sequences/Deepfakes/c40/v1faces/000_001/0000.png", 200)
    ds = FaceForensicsPP(tmp_path, split="all")
    assert ds.compression == "c40" and len(ds) == 2
    assert ds.samples[1].pair_id == "real/000/0000.png"


def test_several_levels_need_a_choice(ff_root):
    with pytest.raises(ValueError, match=r"several compression levels \(c0, c23\)"):
        FaceForensicsPP(ff_root, split="all")


def test_hidden_leftover_folders_are_not_videos(tmp_path):
    _png(tmp_path / "original_sequences/youtube/raw/v1faces/000/0000.png", 10)
    _png(tmp_path / "original_sequences/youtube/raw/v1faces/.001.abc.tmp/0000.png", 10)
    _png(tmp_path / "manipulated_sequences/Deepfakes/raw/v1faces/000_001/0000.png", 200)
    ds = FaceForensicsPP(tmp_path, split="all")
    assert [s.video for s in ds.samples] == ["real/000", "Deepfakes/000_001"]


def test_no_partner_is_said(tmp_path, caplog):
    _png(tmp_path / "original_sequences/youtube/raw/v1faces/000/0000.png", 10)
    _png(tmp_path / "manipulated_sequences/Deepfakes/raw/v1faces/005_001/0000.png", 200)
    with caplog.at_level("WARNING", logger="detector.data"):
        ds = FaceForensicsPP(tmp_path, split="all")
    assert ds.pairing["n_paired"] == 0
    assert "no fake has a real partner" in caplog.text
