"""``prepare_ffpp``: FaceForensics++ videos to paired face crops, on lossless test-made videos.

The videos come from :func:`detector.data.testing.make_ffpp_videos`: real
frames are windows of scikit-image's astronaut photo (a face dlib finds), a
fake equals its target outside an ellipse around the face, and the mask
video is 255 exactly there. Encoded losslessly (libx264rgb, qp 0), so the
expected crops are known pixel for pixel.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("av")
pytest.importorskip("dlib")

from detector.data import FaceForensicsPP, RealFakeFolders, open_data  # noqa: E402
from detector.data.ffpp_videos import (  # noqa: E402
    PrepareConfig,
    face_box,
    prepare_ffpp,
    read_frames,
)
from detector.data.testing import make_ffpp_videos, write_video  # noqa: E402

N_VIDEOS, N_FRAMES = 10, 3  # -> 7 train, 1 val, 2 test videos
CONFIG = PrepareConfig(compression="c23", frames=N_FRAMES)


def _read(path):
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("ffpp-videos")
    info = make_ffpp_videos(root, N_VIDEOS, N_FRAMES, manipulations=("Deepfakes", "FaceSwap"))
    # a corrupt real video and a corrupt fake of a good target
    (root / "original_sequences/youtube/c23/videos/010.mp4").write_bytes(os.urandom(3000))
    (root / "manipulated_sequences/FaceSwap/c23/videos/003_005.mp4").write_bytes(b"")
    return root, info


@pytest.fixture(scope="module")
def prepared(source, tmp_path_factory):
    root, info = source
    out = tmp_path_factory.mktemp("ffpp-faces")
    result = prepare_ffpp(root, out, CONFIG, progress=False)
    return out, result, info


def test_the_same_box_is_cut_from_the_real_the_fake_and_the_mask(prepared, source):
    out, result, info = prepared
    root, _ = source
    for name in ("000_001", "008_009"):
        target = name[:3]
        boxes = json.loads((out / "boxes" / f"{target}.json").read_text())["boxes"]
        real_frames = dict(
            read_frames(root / f"original_sequences/youtube/c23/videos/{target}.mp4")
        )
        for f, frame_name in enumerate(sorted(boxes)):
            x, y, side = boxes[frame_name]
            real = _read(out / f"original_sequences/youtube/c23/v1faces/{target}/{frame_name}")
            fake = _read(out / f"manipulated_sequences/Deepfakes/c23/v1faces/{name}/{frame_name}")
            mask = _read(out / f"manipulated_sequences/Deepfakes/masks/v1faces/{name}/{frame_name}")
            # the real crop is the box of the decoded frame
            np.testing.assert_array_equal(real, real_frames[f][y : y + side, x : x + side])
            region = info["regions"][name][f][y : y + side, x : x + side]
            assert region.sum() > 0.2 * side * side  # the box holds the changed face
            # outside the manipulated region, the fake crop IS the real crop
            np.testing.assert_array_equal(fake[~region], real[~region])
            assert np.any(fake[region] != real[region])
            # the mask crop marks exactly the manipulated region (0/255)
            np.testing.assert_array_equal(mask, np.where(region, 255, 0).astype(np.uint8))


def test_the_box_surrounds_the_face_dlib_finds(prepared):
    out, _, _ = prepared
    boxes = json.loads((out / "boxes" / "000.json").read_text())
    assert boxes["video"] == "original_sequences/youtube/c23/videos/000.mp4"
    # astronaut's face is near (x, y) = (133, 78) in frame 0 of video 0 (see testing.py)
    x, y, side = boxes["boxes"]["0000.png"]
    assert x < 133 < x + side and y < 78 < y + side and 60 < side < 110


def test_unreadable_videos_are_recorded_and_skipped(prepared):
    out, result, _ = prepared
    reasons = {f["video"]: f["reason"] for f in result.failed}
    assert "Invalid data" in reasons["original_sequences/youtube/c23/videos/010.mp4"]
    assert "Invalid data" in reasons["manipulated_sequences/FaceSwap/c23/videos/003_005.mp4"]
    assert len(result.failed) == 2
    assert json.loads((out / "prepare.json").read_text())["failed"] == result.failed
    assert not (out / "original_sequences/youtube/c23/v1faces/010").exists()
    assert not (out / "manipulated_sequences/FaceSwap/c23/v1faces/003_005").exists()
    assert (out / "manipulated_sequences/Deepfakes/c23/v1faces/003_004").is_dir()
    assert result.n_videos == {"real": N_VIDEOS, "Deepfakes": N_VIDEOS, "FaceSwap": N_VIDEOS - 1}


def test_the_loader_reads_the_tree_with_pairs_masks_and_videos(prepared):
    out, result, _ = prepared
    ds = FaceForensicsPP(out, ["Deepfakes"], split="test")
    assert ds.compression == "c23"
    assert sorted({s.video for s in ds.samples}) == [
        "Deepfakes/008_009", "Deepfakes/009_000", "real/008", "real/009"
    ]  # fmt: skip
    fakes = [s for s in ds.samples if s.label == 1]
    ids = {s.id for s in ds.samples}
    assert all(s.pair_id in ids and s.mask_path for s in fakes)
    assert ds.pairing["n_paired"] == ds.pairing["n_fake"] > 0


def test_the_index_lists_what_the_ffpp_spec_opens(prepared):
    out, result, _ = prepared
    for split in ("train", "val", "test"):
        a = open_data(f"index:{out / 'index.csv'},split={split}")
        b = open_data(f"ffpp:root={out},manipulations=Deepfakes+FaceSwap,split={split}")
        assert [s.id for s in a.samples] == [s.id for s in b.samples]
        assert [s.pair_id for s in a.samples] == [s.pair_id for s in b.samples]
        assert [s.video for s in a.samples] == [s.video for s in b.samples]
        assert [bool(s.mask_path) for s in a.samples] == [bool(s.mask_path) for s in b.samples]
    full = RealFakeFolders.from_index(out / "index.csv")
    assert len(full) == result.n_frames == N_FRAMES * (3 * N_VIDEOS - 1)


def test_a_rerun_skips_finished_videos_and_redoes_the_rest(prepared, source, tmp_path):
    out0, _, _ = prepared
    root, _ = source
    out = tmp_path / "out"
    shutil.copytree(out0, out)
    # a fake lost, and a temporary folder left by a killed run
    shutil.rmtree(out / "manipulated_sequences/Deepfakes/c23/v1faces/005_006")
    leftover = out / "original_sequences/youtube/c23/v1faces/.001.x1y2.tmp"
    leftover.mkdir()
    (leftover / "0000.png").write_bytes(b"half")
    real_png = out / "original_sequences/youtube/c23/v1faces/000/0000.png"
    before = real_png.stat().st_mtime_ns
    result = prepare_ffpp(root, out, CONFIG, progress=False)
    # target 005 was redone (its fake), 010 and 003 retried (still failing), the rest skipped
    assert result.n_reused == N_VIDEOS - 2 and result.n_done == 3
    assert (out / "manipulated_sequences/Deepfakes/c23/v1faces/005_006/0000.png").is_file()
    assert real_png.stat().st_mtime_ns == before
    assert not leftover.exists()
    assert len(result.failed) == 2


def test_other_settings_in_the_same_folder_are_refused(prepared, source):
    out, _, _ = prepared
    root, _ = source
    with pytest.raises(ValueError, match=r"other settings \(scale: 1.3 -> 1.5\)"):
        prepare_ffpp(root, out, PrepareConfig(compression="c23", frames=N_FRAMES, scale=1.5))


def test_a_video_is_written_whole_or_not_at_all(source, tmp_path, monkeypatch):
    import detector.data.ffpp_videos as fv

    root, _ = source
    calls = {"n": 0}
    real_save = fv._save_png

    def failing(path, image):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        real_save(path, image)

    monkeypatch.setattr(fv, "_save_png", failing)
    out = tmp_path / "out"
    result = prepare_ffpp(root, out, CONFIG, manipulations=["Deepfakes"], progress=False)
    reasons = {f["video"]: f["reason"] for f in result.failed}
    assert "No space left on device" in reasons["original_sequences/youtube/c23/videos/000.mp4"]
    assert reasons["manipulated_sequences/Deepfakes/c23/videos/000_001.mp4"] == (
        "its target 000 was skipped"
    )
    v1 = out / "original_sequences/youtube/c23/v1faces"
    assert not (v1 / "000").exists() and not list(v1.glob(".*"))
    assert not (out / "boxes/000.json").exists()
    monkeypatch.setattr(fv, "_save_png", real_save)
    again = prepare_ffpp(root, out, CONFIG, manipulations=["Deepfakes"], progress=False)
    assert again.n_done == 2 and sorted(os.listdir(v1 / "000")) == ["0000.png", "0001.png",
                                                                      "0002.png"]  # fmt: skip


def test_frames_are_the_first_that_show_a_face(tmp_path):
    from detector.data.testing import _real_frames

    frames, _ = _real_frames(0, 3)
    blank = np.full_like(frames[0], 128)
    root = tmp_path / "src"
    write_video(root / "original_sequences/youtube/c23/videos/000.mp4", [blank, *frames])
    write_video(root / "original_sequences/youtube/c23/videos/001.mp4", [blank, blank])
    result = prepare_ffpp(root, tmp_path / "out", PrepareConfig(frames=2), progress=False)
    got = sorted(os.listdir(tmp_path / "out/original_sequences/youtube/c23/v1faces/000"))
    assert got == ["0001.png", "0002.png"]  # frame 0 shows no face; frame 3 is not needed
    assert result.failed == [
        {"video": "original_sequences/youtube/c23/videos/001.mp4",
         "reason": "no face found in any of its 2 frames"}
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("face", "size", "scale", "box"),
    [
        ((40, 50, 80, 100), (200, 200), 1.3, (28, 43, 65)),  # centre (60, 75), side int(65)
        ((0, 0, 40, 40), (200, 200), 1.5, (0, 0, 60)),  # crosses the top-left: shifted in
        ((180, 170, 200, 200), (200, 200), 2.0, (140, 140, 60)),  # bottom-right: shifted in
        ((10, 10, 190, 190), (120, 200), 1.3, (0, 40, 120)),  # larger than the frame: shrunk
    ],
)
def test_face_box_closed_form(face, size, scale, box):
    assert face_box(face, *size, scale) == box


def test_settings_are_checked():
    with pytest.raises(ValueError, match="frames must be a positive integer, got 0"):
        PrepareConfig(frames=0)
    with pytest.raises(ValueError, match=r"scale must be in \[1, 10\], got 0.5"):
        PrepareConfig(scale=0.5)
    with pytest.raises(ValueError, match="compression must be one of"):
        PrepareConfig(compression="c10")


def test_missing_videos_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no real videos under"):
        prepare_ffpp(tmp_path, tmp_path / "out", progress=False)


@pytest.mark.slow
def test_worker_processes_write_the_same_bytes(prepared, source, tmp_path):
    out0, result0, _ = prepared
    root, _ = source
    result = prepare_ffpp(root, tmp_path / "out", CONFIG, workers=2, progress=False)
    assert result.failed == result0.failed and result.n_frames == result0.n_frames
    files = sorted(p.relative_to(out0) for p in out0.rglob("*.png"))
    assert files == sorted(
        p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*.png")
    )
    for rel in files:
        assert (out0 / rel).read_bytes() == (tmp_path / "out" / rel).read_bytes(), rel
    assert (out0 / "index.csv").read_text() == (tmp_path / "out" / "index.csv").read_text()
