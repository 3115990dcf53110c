"""Robust image reading shared by the command line and the datasets.

:func:`read_image` turns any image file Pillow can decode into a uint8
``(H, W, 3)`` RGB array: grayscale is repeated to three channels, palette
images are expanded, 16-bit images are scaled (not clipped) to 8 bits,
alpha is composited over a white background, and the EXIF orientation is
applied. Files that are missing, corrupt or truncated raise
:class:`ImageReadError`; images with more pixels than ``max_pixels``
(decompression bombs) raise :class:`ImageTooLargeError` before their
pixels are decoded.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageReadError",
    "ImageTooLargeError",
    "read_image",
    "to_float_chw",
]

#: Largest accepted image, in pixels (about 179 megapixels, Pillow's bomb limit).
DEFAULT_MAX_PIXELS = 2 * 89_478_485


class ImageReadError(OSError):
    """An image file could not be read.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    reason : str
        Why, in a few words.
    """

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = str(reason)
        super().__init__(f"cannot read image {self.path}: {self.reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


class ImageTooLargeError(ImageReadError):
    """An image has more pixels than allowed (a possible decompression bomb).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    pixels : int
        Its pixel count (width times height).
    limit : int
        The largest accepted pixel count.
    """

    def __init__(self, path, pixels: int, limit: int):
        self.pixels = int(pixels)
        self.limit = int(limit)
        super().__init__(
            path,
            f"{self.pixels} pixels exceeds the limit of {self.limit} "
            "(possible decompression bomb; raise max_pixels to allow it)",
        )

    def __reduce__(self):
        return (type(self), (self.path, self.pixels, self.limit))


def _to_uint8_rgb(img, source_format: str | None = None) -> np.ndarray:
    """Convert a loaded Pillow image of any mode into uint8 ``(H, W, 3)``.

    ``source_format`` is the file format; a PNG in mode ``"I"`` is 16-bit.
    """
    from PIL import Image

    mode = img.mode
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float64)
        # 16-bit data (Pillow opens 16-bit grayscale PNG as "I" or "I;16"):
        # scale 0..65535 to 0..255, never clip.
        if (
            mode == "I"
            and source_format != "PNG"
            and arr.size
            and arr.max() <= 255
            and arr.min() >= 0
        ):
            gray = arr
        else:
            gray = np.clip(arr, 0, 65535) / 257.0
        gray = np.round(gray).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0)
        scale = 255.0 if arr.size and arr.max() <= 1.0 else 1.0
        gray = np.round(np.clip(arr * scale, 0, 255)).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float64)
        alpha = rgba[..., 3:4] / 255.0
        rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
        return np.round(rgb).astype(np.uint8)
    if mode != "RGB":
        img = img.convert("RGB")
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:  # pragma: no cover - Pillow guarantees RGB
        raise ValueError(f"unexpected array shape {arr.shape} from mode {mode}")
    del Image
    return np.ascontiguousarray(arr)


def read_image(path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as RGB uint8.

    Parameters
    ----------
    path : str or os.PathLike
        The image file (any format Pillow decodes: PNG, JPEG, TIFF, BMP,
        GIF, WebP, ...).
    max_pixels : int or None, default=DEFAULT_MAX_PIXELS
        Refuse images with more pixels than this; None disables the check.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8
        The image after its EXIF orientation is applied. Grayscale is
        repeated to 3 channels, palette images are expanded, 16-bit values
        are scaled by 1/257, alpha is composited over white.

    Raises
    ------
    ImageTooLargeError
        If the image has more than ``max_pixels`` pixels.
    ImageReadError
        If the file is missing, not an image, corrupt or truncated.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(os.fspath(path))
    if max_pixels is not None and (int(max_pixels) != max_pixels or max_pixels < 1):
        raise ValueError(f"max_pixels must be a positive integer or None, got {max_pixels!r}")
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if path.is_dir():
        raise ImageReadError(path, "is a directory")
    try:
        with warnings.catch_warnings():
            # Our own check replaces Pillow's warning; Pillow still raises above
            # twice its MAX_IMAGE_PIXELS, which is turned into the same error.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if max_pixels is not None and width * height > max_pixels:
                    raise ImageTooLargeError(path, width * height, max_pixels)
                img.load()
                source_format = img.format
                img = ImageOps.exif_transpose(img)
                return _to_uint8_rgb(img, source_format)
    except Image.DecompressionBombError as err:
        numbers = [int(n) for n in re.findall(r"\d+", str(err))]
        pixels, limit = (numbers + [-1, -1])[:2]
        raise ImageTooLargeError(path, pixels, limit) from None
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(path, "not a recognised image format") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, IndexError) as err:
        reason = str(err).strip() or type(err).__name__
        raise ImageReadError(path, f"corrupt or truncated file ({reason})") from None


def to_float_chw(image: np.ndarray) -> np.ndarray:
    """Convert a uint8 ``(H, W, 3)`` image into float32 ``(3, H, W)`` in [0, 1].

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8

    Returns
    -------
    ndarray of shape (3, H, W), float32
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)
