"""FaceForensics++ extracted face frames, with the paper's split reproduced exactly.

Layout under ``root`` (``<C>`` is ``raw`` for c0, or ``c23`` / ``c40``)::

    original_sequences/youtube/<C>/v1faces/<video>/<frame>.png
    manipulated_sequences/<M>/<C>/v1faces/<target>_<source>/<frame>.png
    manipulated_sequences/<M>/masks/v1faces/<target>_<source>/<frame>.png   (optional)

The split (the paper's ``dataset/FF.py``): within
each group (the real videos; each manipulation) every folder holding PNG
frames is a video; its frames are sorted by name and the first 32 kept;
the videos are sorted by folder path and cut 7:1:2, ``n_train =
int(0.7 n)``, ``n_val = int(0.1 n)``, the rest test. A fake frame's pair is
the real frame with the same file name in its target video ``TTT``.

``defocus prepare ffpp`` (:mod:`detector.data.ffpp_videos`) writes this
layout from the FaceForensics++ videos, cutting the same face box from a
target's real and fake frames.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from detector.data._base import ImageDataset, Sample
from detector.data.pairing import report_pairing
from detector.data.splits import SPLITS

__all__ = [
    "COMPRESSIONS",
    "FaceForensicsPP",
    "MANIPULATIONS",
    "SPLITS",
    "find_compression",
    "split_videos",
]

#: Manipulations of FaceForensics++ (any folder name under manipulated_sequences works).
MANIPULATIONS: tuple[str, ...] = (
    "Deepfakes",
    "Face2Face",
    "FaceShifter",
    "FaceSwap",
    "NeuralTextures",
)
#: Compression levels and their folder names.
COMPRESSIONS: dict[str, str] = {"c0": "raw", "raw": "raw", "c23": "c23", "c40": "c40"}


def split_videos(videos: Sequence[str]) -> dict[str, list[str]]:
    """Cut videos 7:1:2 after sorting, as the paper does.

    Parameters
    ----------
    videos : sequence of str
        Video folder paths (sorted here).

    Returns
    -------
    dict
        ``{"train": [...], "val": [...], "test": [...]}`` with
        ``int(0.7 n)``, ``int(0.1 n)`` and the remaining videos.
    """
    ordered = sorted(videos)
    n = len(ordered)
    n_train, n_val = int(n * 0.7), int(n * 0.1)
    return {
        "train": ordered[:n_train],
        "val": ordered[n_train : n_train + n_val],
        "test": ordered[n_train + n_val :],
    }


def _video_frames(folder: Path, frames_per_video: int) -> dict[str, list[str]]:
    """Map each folder (at any depth) holding PNGs to its first frames by sorted name.

    Hidden files and folders (``.name``, e.g. the temporary folder of an
    interrupted ``defocus prepare``) are skipped.
    """
    out: dict[str, list[str]] = {}
    if not folder.is_dir():
        return out
    for dirpath, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        pngs = sorted(f for f in files if f.endswith(".png") and not f.startswith("."))
        if pngs:
            out[dirpath] = pngs[:frames_per_video]
    return out


def find_compression(
    root: str | os.PathLike,
    faces_dir: str = "v1faces",
    real_dir: str = "original_sequences/youtube",
) -> str:
    """Return the one compression level whose real face frames exist under ``root``.

    Raises
    ------
    FileNotFoundError
        If no level has a ``<real_dir>/<level>/<faces_dir>`` folder.
    ValueError
        If several have one (then the user must choose).
    """
    root = Path(root)
    found = [
        c for c in ("c0", "c23", "c40") if (root / real_dir / COMPRESSIONS[c] / faces_dir).is_dir()
    ]
    if not found:
        where = os.fspath(root / real_dir / "{raw,c23,c40}" / faces_dir)
        raise FileNotFoundError(f"no real face frames under {where!r}")
    if len(found) > 1:
        raise ValueError(
            f"{os.fspath(root)!r} holds face frames of several compression levels "
            f"({', '.join(found)}); choose one with compression=..."
        )
    return found[0]


class FaceForensicsPP(ImageDataset):
    """FaceForensics++ face frames (real and manipulated), one split.

    Parameters
    ----------
    root : str or path-like
        The folder holding ``original_sequences`` and ``manipulated_sequences``.
    manipulations : sequence of str, default=("Deepfakes",)
        Manipulation folders to include as fakes.
    split : {"train", "val", "test", "all"}, default="test"
    compression : {"c0", "raw", "c23", "c40"}, optional
        Default: the one level present under ``root`` (an error if several).
    frames_per_video : int, default=32
        Frames kept per video (first by sorted file name).
    faces_dir : str, default="v1faces"
        The frames folder inside each ``<C>`` folder.
    masks : bool, default=True
        Use ``manipulated_sequences/<M>/masks/<faces_dir>/...`` when that
        folder exists (a frame without a mask file gets a zero mask).
    real_dir : str, default="original_sequences/youtube"
        The real videos' folder under ``root``.
    pooled : bool, default=False
        Split all manipulations' videos together (sorted by path) instead of
        each manipulation separately. The paper's code pools them; with one
        manipulation, as in its experiments, both are the same.
    image_size : int, optional
        Resize to this square size.

    Notes
    -----
    Ids are ``real/<video>/<frame>`` and ``<M>/<target>_<source>/<frame>``;
    ``group`` is ``"real"`` or the manipulation; ``video`` is
    ``<group>/<video folder>``. A fake's ``pair_id`` is set when the real
    frame ``<target>/<frame>`` exists (in any split).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        manipulations: Sequence[str] = ("Deepfakes",),
        split: str = "test",
        compression: str | None = None,
        frames_per_video: int = 32,
        faces_dir: str = "v1faces",
        masks: bool = True,
        real_dir: str = "original_sequences/youtube",
        pooled: bool = False,
        image_size: int | None = None,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"FaceForensics++ root not found: {os.fspath(root)!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if compression is None:
            compression = find_compression(root, faces_dir, real_dir)
        if compression not in COMPRESSIONS:
            raise ValueError(
                f"compression must be one of {sorted(COMPRESSIONS)}, got {compression!r}"
            )
        if isinstance(manipulations, str):
            manipulations = [manipulations]
        if int(frames_per_video) != frames_per_video or frames_per_video < 1:
            raise ValueError(f"frames_per_video must be a positive int, got {frames_per_video!r}")
        level = COMPRESSIONS[compression]
        self.root, self.split, self.compression = root, split, compression
        self.manipulations = list(manipulations)

        real_root = root / real_dir / level / faces_dir
        real = _video_frames(real_root, frames_per_video)
        if not real:
            raise FileNotFoundError(f"no real frames under {os.fspath(real_root)!r}")
        real_names = {Path(d).name: set(files) for d, files in real.items()}

        groups: list[tuple[str, dict[str, list[str]], Path | None]] = [("real", real, None)]
        for m in self.manipulations:
            fake_root = root / "manipulated_sequences" / m / level / faces_dir
            frames = _video_frames(fake_root, frames_per_video)
            if not frames:
                raise FileNotFoundError(
                    f"no frames of manipulation {m!r} under {os.fspath(fake_root)!r}"
                )
            mask_root = root / "manipulated_sequences" / m / "masks" / faces_dir
            groups.append((m, frames, mask_root if masks and mask_root.is_dir() else None))

        chosen: dict[str, set[str]] = {}
        if pooled:
            chosen["real"] = self._pick(real)
            fake_all = {d: f for _g, frames, _m in groups[1:] for d, f in frames.items()}
            picked = self._pick(fake_all)
            for g, frames, _m in groups[1:]:
                chosen[g] = picked & set(frames)
        else:
            for g, frames, _m in groups:
                chosen[g] = self._pick(frames)

        samples: list[Sample] = []
        for g, frames, mask_root in groups:
            for d in sorted(chosen[g]):
                video = Path(d).name
                for f in frames[d]:
                    stem = f"{video}/{f}"
                    if g == "real":
                        samples.append(
                            Sample(
                                os.path.join(d, f), 0, f"real/{stem}", "real", video=f"real/{video}"
                            )
                        )
                        continue
                    target = video.split("_")[0]
                    pair = f"real/{target}/{f}" if f in real_names.get(target, ()) else ""
                    mask = ""
                    if mask_root is not None:
                        mp = (
                            mask_root
                            / Path(d).relative_to(self._fake_root(g, level, faces_dir))
                            / f
                        )
                        mask = os.fspath(mp) if mp.is_file() else ""
                    samples.append(
                        Sample(os.path.join(d, f), 1, f"{g}/{stem}", g, pair, mask, f"{g}/{video}")
                    )
        super().__init__(samples, image_size=image_size)
        # masks folder present -> every item carries a mask (zeros where none)
        self.has_masks = self.has_masks or any(m is not None for _g, _f, m in groups)
        all_real = {f"real/{Path(d).name}/{f}" for d, files in real.items() for f in files}
        self.pairing = report_pairing(samples, f"ffpp root={os.fspath(root)}", real_ids=all_real)

    def _fake_root(self, manipulation: str, level: str, faces_dir: str) -> Path:
        return self.root / "manipulated_sequences" / manipulation / level / faces_dir

    def _pick(self, frames: dict[str, list[str]]) -> set[str]:
        if self.split == "all":
            return set(frames)
        return set(split_videos(list(frames))[self.split])
