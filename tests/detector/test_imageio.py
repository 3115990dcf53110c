"""Robust image reading: modes, bit depths, EXIF orientation, corrupt files, bombs."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from detector.imageio import (
    ImageReadError,
    ImageTooLargeError,
    read_image,
    to_float_chw,
)


@pytest.fixture
def rgb(photos):
    return photos["chelsea"][:60, :80].copy()


def test_rgb_png_roundtrip(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (60, 80, 3)
    np.testing.assert_array_equal(out, rgb)


def test_grayscale_is_repeated(tmp_path, rgb):
    gray = rgb[..., 1]
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 16).reshape(16, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    out = read_image(tmp_path / "g16.png")
    expected = np.round(ramp / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 0], expected)
    assert out.max() == 255 and out.min() == 0


def test_rgba_is_composited_over_white(tmp_path, rgb):
    alpha = np.zeros(rgb.shape[:2], np.uint8)
    alpha[:, 40:] = 255
    alpha[:, 20:40] = 128
    Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png").astype(int)
    np.testing.assert_array_equal(out[:, 40:], rgb[:, 40:])
    np.testing.assert_array_equal(out[:, :20], 255)
    mid = np.round(rgb[:, 20:40] * (128 / 255) + 255 * (1 - 128 / 255))
    np.testing.assert_array_equal(out[:, 20:40], mid)


def test_palette_is_expanded(tmp_path, rgb):
    pal = Image.fromarray(rgb).quantize(16)
    pal.save(tmp_path / "p.png")
    out = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(out, np.asarray(pal.convert("RGB")))


@pytest.mark.parametrize(("orientation", "rotate"), [(3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_applied(tmp_path, orientation, rotate):
    img = np.zeros((30, 50, 3), np.uint8)
    img[:10, :10] = 255  # a white block in the top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(img).save(tmp_path / "r.png", exif=exif)
    out = read_image(tmp_path / "r.png")
    np.testing.assert_array_equal(out, np.rot90(img, rotate))


def test_missing_corrupt_and_non_image_files(tmp_path, rgb):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "text.png").write_text("not an image at all")
    with pytest.raises(ImageReadError, match="not a recognised image format"):
        read_image(tmp_path / "text.png")
    Image.fromarray(rgb).save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError, match="corrupt or truncated") as info:
        read_image(tmp_path / "cut.jpg")
    assert info.value.path.endswith("cut.jpg")
    with pytest.raises(ImageReadError, match="is a directory"):
        read_image(tmp_path)


def _png_with_header_size(path, width, height):
    """A valid tiny PNG whose header claims ``width`` x ``height`` pixels."""
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


def test_decompression_bomb_is_refused(tmp_path):
    _png_with_header_size(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(ImageTooLargeError, match="decompression bomb") as info:
        read_image(tmp_path / "bomb.png")
    assert info.value.pixels == 400_000_000
    # our own, lower limit is checked before decoding
    _png_with_header_size(tmp_path / "big.png", 3000, 3000)
    with pytest.raises(ImageTooLargeError, match="9000000 pixels exceeds the limit of 1000"):
        read_image(tmp_path / "big.png", max_pixels=1000)
    with pytest.raises(ValueError, match="max_pixels must be"):
        read_image(tmp_path / "big.png", max_pixels=0)


def test_to_float_chw(rgb):
    out = to_float_chw(rgb)
    assert out.shape == (3, 60, 80) and out.dtype == np.float32
    np.testing.assert_allclose(out, rgb.transpose(2, 0, 1) / 255.0, atol=1e-7)
    with pytest.raises(ValueError, match="uint8"):
        to_float_chw(rgb.astype(np.float32))
