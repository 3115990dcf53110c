"""A small FaceForensics++-shaped tree of real videos, face-swapped fakes and mask videos.

For tests, and to try ``defocus prepare ffpp`` without the real download:
:func:`make_ffpp_videos` writes lossless H.264 videos (PyAV, ``libx264rgb``
at ``qp=0``) made from scikit-image's ``astronaut`` photo, which ships with
the package. Each real video is a window moving across the photo (a face
dlib finds); each fake ``<target>_<source>.mp4`` equals its target frame for
frame except inside an ellipse around the face, where it shows the source
video's face blurred, and its mask video is 255 exactly there. Being
lossless, a fake's pixels outside the ellipse equal the real's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["make_ffpp_videos", "write_video"]

#: Side of the frames.
FRAME_SIZE = 224
_WINDOW = 320  # px of the 512 px photo shown by a frame, before resizing
_FACE_CENTRE = (121.0, 220.0)  # (y, x) of the astronaut's face in the 512 px photo


def write_video(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: int = 25) -> Path:
    """Write uint8 RGB frames ``(H, W, 3)`` as a lossless H.264 ``.mp4`` (libx264rgb, qp 0)."""
    import av

    from safeio import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    with atomic_path(path) as tmp, av.open(os.fspath(tmp), "w", format="mp4") as container:
        stream = container.add_stream(
            "libx264rgb", rate=fps, options={"qp": "0", "preset": "ultrafast"}
        )
        stream.width, stream.height, stream.pix_fmt = w, h, "rgb24"
        for frame in frames:
            image = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(frame, np.uint8), format="rgb24"
            )
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _real_frames(video: int, n_frames: int) -> tuple[list[np.ndarray], list[tuple[float, float]]]:
    """Frames of real video ``video`` and the face centre (y, x) in each."""
    from PIL import Image
    from skimage import data

    photo = data.astronaut()
    tint = np.array([1.0 - 0.04 * (video % 5), 1.0, 0.85 + 0.03 * (video % 5)])
    frames, centres = [], []
    scale = FRAME_SIZE / _WINDOW
    for f in range(n_frames):
        ox, oy = 30 + 9 * video + 2 * f, 10 + 5 * video + f
        window = photo[oy : oy + _WINDOW, ox : ox + _WINDOW].astype(np.float64) * tint
        image = Image.fromarray(np.clip(window, 0, 255).astype(np.uint8))
        frames.append(np.asarray(image.resize((FRAME_SIZE, FRAME_SIZE), Image.BILINEAR)))
        centres.append(((_FACE_CENTRE[0] - oy) * scale, (_FACE_CENTRE[1] - ox) * scale))
    return frames, centres


def _ellipse(centre: tuple[float, float], ry: float = 34.0, rx: float = 27.0) -> np.ndarray:
    yy, xx = np.mgrid[0:FRAME_SIZE, 0:FRAME_SIZE] + 0.5
    return ((yy - centre[0]) / ry) ** 2 + ((xx - centre[1]) / rx) ** 2 <= 1.0


def make_ffpp_videos(
    root: str | os.PathLike,
    n_videos: int = 10,
    n_frames: int = 4,
    manipulations: Sequence[str] = ("Deepfakes",),
    compression: str = "c23",
    masks: bool = True,
) -> dict:
    """Write a FaceForensics++-shaped tree of small lossless videos under ``root``.

    Parameters
    ----------
    root : str or path-like
    n_videos : int
        Real videos ``000`` ... (each manipulation gets one fake per real,
        ``<i>_<i+1 mod n>``).
    n_frames : int
    manipulations : sequence of str
    compression : {"raw", "c23", "c40"}
        The level folder the videos go to (they are lossless whatever its name).
    masks : bool
        Write mask videos for the first manipulation.

    Returns
    -------
    dict
        ``regions``: {fake video name: list of bool ndarray of shape (224, 224),
        the changed pixels of each frame}.
    """
    from skimage.filters import gaussian

    root = Path(root)
    level = "raw" if compression == "c0" else compression
    reals = [_real_frames(v, n_frames) for v in range(n_videos)]
    for v, (frames, _) in enumerate(reals):
        write_video(root / "original_sequences/youtube" / level / "videos" / f"{v:03d}.mp4", frames)
    regions: dict[str, list[np.ndarray]] = {}
    for k, m in enumerate(manipulations):
        for v, (frames, centres) in enumerate(reals):
            source = (v + 1 + k) % n_videos
            name = f"{v:03d}_{source:03d}"
            fakes, masks_frames, changed = [], [], []
            for f, (frame, centre) in enumerate(zip(frames, centres, strict=True)):
                region = _ellipse(centre)
                swapped = gaussian(
                    reals[source][0][f], sigma=3, channel_axis=-1, preserve_range=True
                )
                fake = frame.copy()
                fake[region] = np.clip(np.rint(swapped[region]), 0, 255).astype(np.uint8)
                fakes.append(fake)
                masks_frames.append(
                    np.repeat((region * 255).astype(np.uint8)[..., None], 3, axis=2)
                )
                changed.append(np.any(fake != frame, axis=2))
            folder = root / "manipulated_sequences" / m
            write_video(folder / level / "videos" / f"{name}.mp4", fakes)
            if masks and k == 0:
                write_video(folder / "masks" / "videos" / f"{name}.mp4", masks_frames)
            regions[name] = changed
    return {"regions": regions}
