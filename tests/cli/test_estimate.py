"""``defocus estimate``: maps, previews, unique output names, odd image files, corrupt files."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from defocus_forensics.cli import main
from detector.defocus import DefocusConfig, estimate_defocus


@pytest.fixture
def photo(photos):
    return photos["astronaut"][100:164:, 150:230].copy()  # 64x80 real photo crop


def _reference_map(image_uint8, **kw):
    x = torch.from_numpy(np.array(image_uint8)).permute(2, 0, 1)[None].float() / 255
    return estimate_defocus(x, DefocusConfig(**kw)).defocus[0, 0].numpy()


def _read_png_map(path):
    with Image.open(path) as img:
        scale = float(img.text["defocus_scale"])
        return np.asarray(img).astype(np.float64) * scale, scale


def test_png_and_npy_maps_match_the_estimator(tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "p.png")
    rc = main(["estimate", str(tmp_path / "p.png"), "--out", str(tmp_path / "o"), "--size", "32"])
    assert rc == 0
    expected = _reference_map(photo, size=32)
    got, scale = _read_png_map(tmp_path / "o" / "p.png_defocus.png")
    assert got.shape == (32, 32)
    np.testing.assert_allclose(got, np.clip(expected, 0, 5), atol=scale / 2 + 1e-9)
    preview = np.asarray(Image.open(tmp_path / "o" / "p.png_preview.png"))
    assert preview.shape == (32, 68, 3)
    summary = json.loads((tmp_path / "o" / "estimate.json").read_text())
    assert summary["config"]["size"] == 32 and summary["skipped"] == []

    rc = main(
        ["estimate", str(tmp_path / "p.png"), "--out", str(tmp_path / "n"), "--format", "npy",
         "--size", "native", "--mode", "accurate", "--no-preview"]
    )  # fmt: skip
    assert rc == 0
    got = np.load(tmp_path / "n" / "p.png_defocus.npy")
    np.testing.assert_allclose(got, _reference_map(photo, size=None, mode="accurate"), atol=1e-6)
    assert not (tmp_path / "n" / "p.png_preview.png").exists()


def _png_with_header_size(path, width, height):
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


def test_corrupt_files_and_bombs_are_skipped(tmp_path, photo, capsys):
    src = tmp_path / "in"
    (src / "deep").mkdir(parents=True)
    Image.fromarray(photo).save(src / "good.png")
    Image.fromarray(photo).save(src / "deep" / "good.jpg")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    Image.fromarray(photo).save(src / "cut.jpg")
    data = (src / "cut.jpg").read_bytes()
    (src / "cut.jpg").write_bytes(data[: len(data) // 2])
    _png_with_header_size(src / "bomb.png", 30000, 30000)
    rc = main(["estimate", str(src), "--out", str(tmp_path / "o"), "--size", "32"])
    err = capsys.readouterr().err
    assert rc == 1
    assert (tmp_path / "o" / "good.png_defocus.png").exists()
    assert (tmp_path / "o" / "deep" / "good.jpg_defocus.png").exists()
    assert "skipped" in err and "broken.png" in err and "cut.jpg" in err
    assert "bomb.png" in err and "decompression bomb" in err
    summary = json.loads((tmp_path / "o" / "estimate.json").read_text())
    assert len(summary["written"]) == 2
    assert sorted(s["path"].rsplit("/", 1)[1] for s in summary["skipped"]) == [
        "bomb.png", "broken.png", "cut.jpg",
    ]  # fmt: skip


def test_max_pixels_option(tmp_path, photo, capsys):
    Image.fromarray(photo).save(tmp_path / "p.png")
    rc = main(["estimate", str(tmp_path / "p.png"), "--out", str(tmp_path / "o"),
               "--max-pixels", "1000"])  # fmt: skip
    assert rc == 2  # nothing could be written
    assert "5120 pixels exceeds the limit of 1000" in capsys.readouterr().err


def test_odd_image_files_give_the_right_maps(tmp_path, photo):
    """Grayscale, 16-bit, RGBA, palette and EXIF-rotated files map like their RGB pixels."""
    gray = photo.mean(axis=2).round().astype(np.uint8)
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "gray16.png")
    Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])).save(
        tmp_path / "rgba.png"
    )
    pal = Image.fromarray(photo).quantize(64)
    pal.save(tmp_path / "pal.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: the viewer turns it 90 degrees clockwise
    Image.fromarray(np.rot90(photo, 1)).save(tmp_path / "exif.png", exif=exif)
    rc = main(["estimate", str(tmp_path), "--out", str(tmp_path / "o"), "--format", "npy",
               "--size", "native", "--no-preview"])  # fmt: skip
    assert rc == 0
    g3 = np.repeat(gray[..., None], 3, axis=2)
    expect = {
        "gray": g3,
        "gray16": g3,
        "rgba": photo,
        "pal": np.asarray(pal.convert("RGB")),
        "exif": np.rot90(np.rot90(photo, 1), -1),
    }
    for name, pixels in expect.items():
        got = np.load(tmp_path / "o" / f"{name}.png_defocus.npy")
        np.testing.assert_allclose(got, _reference_map(np.ascontiguousarray(pixels), size=None),
                                   atol=1e-6, err_msg=name)  # fmt: skip


def test_user_errors_exit_2(tmp_path, capsys):
    assert main(["estimate", str(tmp_path / "none.png"), "--out", str(tmp_path / "o")]) == 2
    assert "no image files found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing made for a run that could not start
    with pytest.raises(SystemExit) as info:
        main(["estimate", "x.png", "--out", str(tmp_path), "--size", "big"])
    assert info.value.code == 2
    assert "size must be a positive integer or 'native'" in capsys.readouterr().err


def test_listed_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "estimate" in capsys.readouterr().out


def _distinct_photos(photo, n):
    """``n`` images that differ (so an overwritten map is told from its own)."""
    return [np.ascontiguousarray(np.roll(photo, 7 * i, axis=1)[:, :: 1 if i % 2 else -1])
            for i in range(n)]  # fmt: skip


def test_output_names_are_unique_by_construction(tmp_path, photo, capsys):
    # catches a.jpg / a.png / a_1.png (and a sub-folder's a.png) mapping to one output name,
    # which overwrote maps while reporting them all as written
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    names = ["a.jpg", "a.png", "a_1.png", "sub/a.png"]
    images = _distinct_photos(photo, len(names))
    for name, img in zip(names, images, strict=True):
        Image.fromarray(img).save(src / name, quality=100)
    rc = main(["estimate", str(src), "--out", str(tmp_path / "o"), "--size", "32",
               "--format", "npy", "--no-preview", "--quiet"])  # fmt: skip
    out = capsys.readouterr()
    assert rc == 0
    assert out.out.count("\n") == 1 and "wrote 4 defocus map(s)" in out.out  # one line
    assert "defocus maps" not in out.err  # --quiet: no progress bar
    maps = sorted(p.relative_to(tmp_path / "o").as_posix() for p in (tmp_path / "o").rglob("*.npy"))
    assert maps == sorted(f"{n}_defocus.npy" for n in names)
    for name in names:  # every map is its own image's, none overwritten by another's
        pixels = np.asarray(Image.open(src / name).convert("RGB"))
        got = np.load(tmp_path / "o" / f"{name}_defocus.npy")
        np.testing.assert_allclose(got, _reference_map(pixels, size=32), atol=1e-6, err_msg=name)


def test_inputs_from_two_folders_with_the_same_names(tmp_path, photo):
    for i, folder in enumerate(("x", "y")):
        (tmp_path / folder).mkdir()
        Image.fromarray(_distinct_photos(photo, 2)[i]).save(tmp_path / folder / "a.png")
    rc = main(["estimate", str(tmp_path / "x" / "a.png"), str(tmp_path / "y"), "--out",
               str(tmp_path / "o"), "--size", "32", "--no-preview", "--quiet"])  # fmt: skip
    assert rc == 0
    got = sorted(p.relative_to(tmp_path / "o").as_posix() for p in (tmp_path / "o").rglob("*.png"))
    assert got == ["x/a.png_defocus.png", "y/a.png_defocus.png"]


def test_out_inside_the_input_folder_is_never_read_back(tmp_path, photo):
    src = tmp_path / "in"
    src.mkdir()
    for i, img in enumerate(_distinct_photos(photo, 2)):
        Image.fromarray(img).save(src / f"{i}.png")
    args = ["estimate", str(src), "--out", str(src / "maps"), "--size", "32", "--quiet"]
    assert main(args) == 0
    first = sorted(p.name for p in (src / "maps").iterdir())
    assert main(args) == 0  # a second run sees the same two images, not its own outputs
    assert sorted(p.name for p in (src / "maps").iterdir()) == first
    assert first == ["0.png_defocus.png", "0.png_preview.png", "1.png_defocus.png",
                     "1.png_preview.png", "defocus.log", "estimate.json"]  # fmt: skip
    summary = json.loads((src / "maps" / "estimate.json").read_text())
    assert sorted(w["input"] for w in summary["written"]) == [
        str(src / "0.png"),
        str(src / "1.png"),
    ]


def test_input_folder_inside_out_is_refused(tmp_path, photo, capsys):
    (tmp_path / "runs" / "photos").mkdir(parents=True)
    Image.fromarray(photo).save(tmp_path / "runs" / "photos" / "p.png")
    for out in (tmp_path / "runs", tmp_path / "runs" / "photos"):
        rc = main(["estimate", str(tmp_path / "runs" / "photos"), "--out", str(out)])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1, err
        assert "contains the input folder" in err
    assert [p.name for p in (tmp_path / "runs" / "photos").iterdir()] == ["p.png"]


def test_a_map_size_that_cannot_fit_is_refused(tmp_path, photo, capsys):
    Image.fromarray(photo).save(tmp_path / "p.png")
    rc = main(["estimate", str(tmp_path / "p.png"), "--out", str(tmp_path / "o"),
               "--size", "2000000"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "--size 2000000 needs about" in err and "fits" in err
    assert not (tmp_path / "o").exists()
