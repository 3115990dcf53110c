"""FaceForensics++ videos to paired face crops: one face box per real frame, cut from every fake.

Input, the FaceForensics++ download at one compression level ``<C>``
(``raw``, ``c23`` or ``c40``)::

    original_sequences/youtube/<C>/videos/<target>.mp4
    manipulated_sequences/<M>/<C>/videos/<target>_<source>.mp4
    manipulated_sequences/<M>/masks/videos/<target>_<source>.mp4      (optional)

Output, the layout the ``ffpp:`` data kind (:class:`FaceForensicsPP`) reads::

    original_sequences/youtube/<C>/v1faces/<target>/<frame>.png
    manipulated_sequences/<M>/<C>/v1faces/<target>_<source>/<frame>.png
    manipulated_sequences/<M>/masks/v1faces/<target>_<source>/<frame>.png   (0 or 255)
    boxes/<target>.json      the face box of every frame (x, y, side)
    index.csv                id,path,label,group,pair_id,mask_path,video,frame,split
    prepare.json             settings, counts, every skipped video with its reason

Which frames: the paper's loader (its ``dataset/FF.py``) keeps the first 32
PNG files of each video folder by sorted name. Frames are named here by
their index in the video (``0000.png``, ``0001.png``, ...) and the first
``frames`` frames in which a face is found are written, so those 32 are
exactly the first 32 frames of the video that show a face.

Which box: the face is detected on the REAL (target) video's frame with
dlib's HOG frontal-face detector (the detector of the FaceForensics++
authors' own preprocessing; its model is built into the ``dlib-bin`` wheel,
nothing is downloaded), upsampling once, on the frame downscaled so that
its longer side is at most ``detect_size``. The largest face gives a square
of side ``int(scale * max(w, h))`` centred on the face, shifted inside the
frame where it would cross an edge (shrunk only when the frame is smaller).
The same box is cut from every manipulated video ``<target>_<source>`` of
that target at the same frame index, and from its mask video, so a fake
crop and its real crop show the same pixels wherever the manipulation did
not touch them.

Every video folder is written whole or not at all (a hidden temporary
folder renamed into place), so a rerun skips finished videos and redoes
the rest; a video that cannot be read, has no frame or shows no face is
recorded in ``prepare.json`` with the reason and skipped.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detector.data._output import atomic_folder, remove_leftovers
from detector.data.faceforensics import COMPRESSIONS, FaceForensicsPP, split_videos
from safeio import atomic_path, atomic_write_json

__all__ = [
    "VIDEO_EXTENSIONS",
    "PrepareConfig",
    "PrepareResult",
    "VideoReadError",
    "detect_faces",
    "face_box",
    "prepare_ffpp",
    "read_frames",
]

#: File name endings treated as videos.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm")
_REAL_DIR = "original_sequences/youtube"


class VideoReadError(OSError):
    """A video file could not be opened or decoded.

    Parameters
    ----------
    path : str or os.PathLike
    reason : str
    """

    def __init__(self, path, reason: str):
        self.path, self.reason = os.fspath(path), str(reason)
        super().__init__(f"cannot read video {self.path}: {self.reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


class _Skip(Exception):
    """A video that is skipped, with the reason recorded."""


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of :func:`prepare_ffpp` (recorded in ``prepare.json``; a rerun must match).

    Parameters
    ----------
    compression : {"c0", "raw", "c23", "c40"}
        Which level of the download to read (``c0`` and ``raw`` are the same).
    frames : int
        Frames written per video (the first ones that show a face); the
        paper's loader keeps 32.
    scale : float
        Side of the square box as a multiple of the face's larger side (>= 1).
    detect_size : int
        Longer side of the frame the detector sees (frames are downscaled for
        detection only); 0 uses the full frame.
    upsample : int
        dlib's upsampling of the detection image (finds smaller faces, slower).
    """

    compression: str = "c23"
    frames: int = 32
    scale: float = 1.3
    detect_size: int = 640
    upsample: int = 1

    def __post_init__(self):
        if self.compression not in COMPRESSIONS:
            raise ValueError(
                f"compression must be one of {', '.join(COMPRESSIONS)}, got {self.compression!r}"
            )
        object.__setattr__(
            self, "compression", "c0" if self.compression == "raw" else self.compression
        )
        if isinstance(self.frames, bool) or int(self.frames) != self.frames or self.frames < 1:
            raise ValueError(f"frames must be a positive integer, got {self.frames!r}")
        if not 1.0 <= float(self.scale) <= 10.0:
            raise ValueError(f"scale must be in [1, 10], got {self.scale!r}")
        if int(self.detect_size) != self.detect_size or not (
            self.detect_size == 0 or self.detect_size >= 64
        ):
            raise ValueError(
                f"detect_size must be 0 (full frame) or >= 64, got {self.detect_size!r}"
            )
        if int(self.upsample) != self.upsample or not 0 <= self.upsample <= 3:
            raise ValueError(f"upsample must be 0, 1, 2 or 3, got {self.upsample!r}")

    @property
    def level(self) -> str:
        """The folder name of the compression level (``raw``, ``c23``, ``c40``)."""
        return COMPRESSIONS[self.compression]

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-ready dict, with the detector's name."""
        return {**asdict(self), "detector": "dlib.get_frontal_face_detector (HOG)"}


@dataclass
class PrepareResult:
    """What :func:`prepare_ffpp` did.

    Attributes
    ----------
    out : Path
    index : Path or None
        The index CSV (None when no video could be prepared).
    n_targets : int
        Real (target) videos found.
    n_done : int
        Targets worked on in this run.
    n_reused : int
        Targets finished by an earlier run (skipped).
    n_frames : int
        Rows of the index (real and fake frames).
    n_videos : dict of str to int
        Video folders in the index per group (``real`` and each manipulation).
    failed : list of dict
        ``{"video": path under the root, "reason": str}`` of every skipped video.
    seconds : float
    """

    out: Path
    index: Path | None
    n_targets: int
    n_done: int
    n_reused: int
    n_frames: int
    n_videos: dict[str, int] = field(default_factory=dict)
    failed: list[dict] = field(default_factory=list)
    seconds: float = 0.0


# ----------------------------------------------------------------------- frames and faces


def read_frames(
    path: str | os.PathLike, stop: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, frame)`` of a video in presentation order (PyAV).

    Parameters
    ----------
    path : str or path-like
    stop : int, optional
        Stop after this many frames.

    Yields
    ------
    index : int
        0 for the first frame.
    frame : ndarray of shape (H, W, 3), uint8 RGB

    Raises
    ------
    VideoReadError
        If the file cannot be opened, has no video stream, or decoding fails.
    """
    try:
        import av
    except ImportError as err:  # pragma: no cover - av is a dependency
        raise ImportError("reading videos needs PyAV: pip install av") from err
    errors = (av.FFmpegError, OSError, ValueError, EOFError)
    try:
        container = av.open(os.fspath(path))
    except errors as err:
        raise VideoReadError(path, _reason(err)) from None
    with container:
        if not container.streams.video:
            raise VideoReadError(path, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        try:
            for frame in container.decode(stream):
                yield index, frame.to_ndarray(format="rgb24")
                index += 1
                if stop is not None and index >= stop:
                    return
        except errors as err:
            raise VideoReadError(
                path, f"decoding failed after {index} frames: {_reason(err)}"
            ) from None


def _reason(err: BaseException) -> str:
    """Return the error's message without errno and file name (the record names the file)."""
    text = getattr(err, "strerror", None) or str(err)
    return " ".join(str(text).split()) or type(err).__name__


@functools.lru_cache(maxsize=1)
def _dlib_detector():
    try:
        import dlib
    except ImportError as err:  # pragma: no cover - dlib-bin is a dependency
        raise ImportError("the face detector needs dlib: pip install dlib-bin") from err
    return dlib.get_frontal_face_detector()


def detect_faces(
    frame: np.ndarray, detect_size: int = 640, upsample: int = 1
) -> list[tuple[float, float, float, float]]:
    """Find frontal faces with dlib's HOG detector.

    Parameters
    ----------
    frame : ndarray of shape (H, W, 3), uint8 RGB
    detect_size : int
        Downscale the frame so that its longer side is at most this before
        detecting (0: never).
    upsample : int
        dlib's upsampling count.

    Returns
    -------
    list of (left, top, right, bottom)
        Face rectangles in the frame's pixel coordinates (may extend past
        its edges).
    """
    from PIL import Image

    h, w = frame.shape[:2]
    factor = 1.0
    image = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
    if detect_size and max(h, w) > detect_size:
        factor = detect_size / max(h, w)
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    rects = _dlib_detector()(image, int(upsample))
    return [
        (r.left() / factor, r.top() / factor, r.right() / factor, r.bottom() / factor)
        for r in rects
    ]


def face_box(
    face: tuple[float, float, float, float], width: int, height: int, scale: float = 1.3
) -> tuple[int, int, int]:
    """Return the square crop ``(x, y, side)`` around a face.

    Parameters
    ----------
    face : (left, top, right, bottom)
    width, height : int
        The frame's size.
    scale : float
        Side as a multiple of the face's larger side.

    Returns
    -------
    tuple of int
        Top-left corner and side: a square of side ``int(scale * max(w, h))``
        (at most the frame's shorter side) centred on the face, shifted
        inside the frame where it would cross an edge.
    """
    left, top, right, bottom = face
    side = int(scale * max(right - left, bottom - top))
    side = max(1, min(side, int(width), int(height)))
    cx, cy = (left + right) / 2.0, (top + bottom) / 2.0
    x = min(max(int(np.floor(cx - side / 2.0 + 0.5)), 0), int(width) - side)
    y = min(max(int(np.floor(cy - side / 2.0 + 0.5)), 0), int(height) - side)
    return x, y, side


def _largest(faces: Sequence[tuple[float, float, float, float]]):
    return max(faces, key=lambda f: (f[2] - f[0]) * (f[3] - f[1]))


def _frame_name(index: int) -> str:
    return f"{index:04d}.png"


def _save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, compress_level=1)


# ----------------------------------------------------------------------- one target video


@dataclass(frozen=True)
class _Fake:
    manipulation: str
    name: str  # <target>_<source>
    video: str
    mask: str  # "" when there is no mask video


@dataclass(frozen=True)
class _Job:
    target: str
    video: str
    fakes: tuple[_Fake, ...]


def _paths(out: Path, level: str) -> dict[str, Any]:
    return {
        "real": out / _REAL_DIR / level / "v1faces",
        "fake": lambda m: out / "manipulated_sequences" / m / level / "v1faces",
        "mask": lambda m: out / "manipulated_sequences" / m / "masks" / "v1faces",
        "boxes": out / "boxes",
    }


def _job_done(job: _Job, out: Path, level: str) -> bool:
    p = _paths(out, level)
    if not ((p["real"] / job.target).is_dir() and (p["boxes"] / f"{job.target}.json").is_file()):
        return False
    return all((p["fake"](f.manipulation) / f.name).is_dir() for f in job.fakes)


def _real_crops(job: _Job, out: Path, config: PrepareConfig, root: Path) -> dict:
    """Detect and crop the target video's frames; return its boxes record."""
    p = _paths(out, config.level)
    folder, boxes_file = p["real"] / job.target, p["boxes"] / f"{job.target}.json"
    if folder.is_dir() and boxes_file.is_file():
        return json.loads(boxes_file.read_text())
    if folder.is_dir():  # made by hand or by another tool: its boxes are unknown
        raise _Skip(f"{folder} exists without its boxes file {boxes_file}; remove one of them")
    boxes: dict[str, list[int]] = {}
    shape = None
    scanned = 0
    with atomic_folder(folder) as tmp:
        for index, frame in read_frames(job.video):
            scanned += 1
            shape = frame.shape[:2]
            faces = detect_faces(frame, config.detect_size, config.upsample)
            if not faces:
                continue
            x, y, side = face_box(_largest(faces), shape[1], shape[0], config.scale)
            name = _frame_name(index)
            _save_png(tmp / name, frame[y : y + side, x : x + side])
            boxes[name] = [x, y, side]
            if len(boxes) == config.frames:
                break
        if scanned == 0:
            raise _Skip("the video has no frames")
        if not boxes:
            raise _Skip(f"no face found in any of its {scanned} frames")
        record = {
            "video": os.fspath(Path(job.video).relative_to(root)),
            "height": int(shape[0]),
            "width": int(shape[1]),
            "frames_scanned": scanned,
            "boxes": boxes,
            "settings": config.to_dict(),
        }
        atomic_write_json(boxes_file, record, indent=1)
    return record


def _cut(video: str, record: dict, folder: Path, binary: bool) -> int:
    """Cut every box of ``record`` from ``video`` into ``folder``; return the frames written."""
    boxes = {int(name[:-4]): (name, box) for name, box in record["boxes"].items()}
    written = 0
    with atomic_folder(folder) as tmp:
        for index, frame in read_frames(video, stop=max(boxes) + 1):
            if frame.shape[:2] != (record["height"], record["width"]):
                raise _Skip(
                    f"frames are {frame.shape[1]}x{frame.shape[0]}, the target's "
                    f"{record['width']}x{record['height']}: the same box would not match"
                )
            if index not in boxes:
                continue
            name, (x, y, side) = boxes[index]
            crop = frame[y : y + side, x : x + side]
            if binary:
                crop = np.where(crop.max(axis=2) > 127, 255, 0).astype(np.uint8)
            _save_png(tmp / name, crop)
            written += 1
        if written == 0:
            raise _Skip(f"none of the target's {len(boxes)} frames could be read")
    return written


def _run_job(job: _Job, out: str, config: dict, root: str) -> dict:
    """Prepare one target and its manipulated videos (runs in a worker process)."""
    out_p, root_p, cfg = Path(out), Path(root), PrepareConfig(**config)
    p = _paths(out_p, cfg.level)
    failed: list[dict] = []

    def rel(path: str) -> str:
        return os.fspath(Path(path).relative_to(root_p))

    try:
        record = _real_crops(job, out_p, cfg, root_p)
    except (_Skip, VideoReadError, OSError, ValueError) as err:
        reason = err.reason if isinstance(err, VideoReadError) else " ".join(str(err).split())
        failed.append({"video": rel(job.video), "reason": reason})
        for f in job.fakes:
            failed.append({"video": rel(f.video), "reason": f"its target {job.target} was skipped"})
        return {"target": job.target, "failed": failed, "frames": 0}
    n_expected = len(record["boxes"])
    for f in job.fakes:
        folder = p["fake"](f.manipulation) / f.name
        if folder.is_dir():
            continue
        try:
            if f.mask and not (p["mask"](f.manipulation) / f.name).is_dir():
                try:
                    _cut(f.mask, record, p["mask"](f.manipulation) / f.name, binary=True)
                except (_Skip, VideoReadError, OSError, ValueError) as err:
                    reason = err.reason if isinstance(err, VideoReadError) else str(err)
                    failed.append({"video": rel(f.mask), "reason": f"mask skipped: {reason}"})
            n = _cut(f.video, record, folder, binary=False)
            if n < n_expected:
                failed.append({"video": rel(f.video), "reason": f"only {n} of the target's "
                               f"{n_expected} frames exist (written)"})  # fmt: skip
        except (_Skip, VideoReadError, OSError, ValueError) as err:
            reason = err.reason if isinstance(err, VideoReadError) else " ".join(str(err).split())
            failed.append({"video": rel(f.video), "reason": reason})
    return {"target": job.target, "failed": failed, "frames": n_expected}


# ----------------------------------------------------------------------- the whole download


def _videos(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith(".")
    )


def _plan(root: Path, level: str, manipulations: Sequence[str] | None):
    real_folder = root / _REAL_DIR / level / "videos"
    reals = _videos(real_folder)
    if not reals:
        raise FileNotFoundError(f"no real videos under {os.fspath(real_folder)!r}")
    fake_root = root / "manipulated_sequences"
    if manipulations is None:
        manipulations = sorted(
            p.name for p in fake_root.iterdir() if (p / level / "videos").is_dir()
        ) if fake_root.is_dir() else []  # fmt: skip
    fakes: dict[str, list[_Fake]] = {}
    failed = []
    targets = {v.stem for v in reals}
    for m in manipulations:
        folder = fake_root / m / level / "videos"
        videos = _videos(folder)
        if not videos:
            raise FileNotFoundError(f"no videos of manipulation {m!r} under {os.fspath(folder)!r}")
        for v in videos:
            target = v.stem.split("_")[0]
            mask = next(
                (q for q in (fake_root / m / "masks" / "videos" / (v.stem + e)
                             for e in VIDEO_EXTENSIONS) if q.is_file()), None,
            )  # fmt: skip
            if target not in targets:
                reason = f"its target video {target} is not under {_REAL_DIR}/{level}/videos"
                failed.append({"video": os.fspath(v.relative_to(root)), "reason": reason})
                continue
            fakes.setdefault(target, []).append(
                _Fake(m, v.stem, os.fspath(v), os.fspath(mask) if mask else "")
            )
    jobs = [_Job(v.stem, os.fspath(v), tuple(fakes.get(v.stem, ()))) for v in reals]
    return jobs, list(manipulations), failed


def _check_settings(out: Path, root: Path, config: PrepareConfig) -> dict:
    state_file = out / "prepare.json"
    settings = config.to_dict()
    if state_file.is_file():
        try:
            old = json.loads(state_file.read_text()).get("settings", {})
        except (OSError, ValueError):
            old = {}
        diffs = [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in settings.items() if old.get(k) != v]
        if old and diffs:
            raise ValueError(
                f"{out} holds crops made with other settings ({'; '.join(diffs)}); "
                "use another --out"
            )
    return settings


def _write_index(out: Path, manipulations: Sequence[str], config: PrepareConfig):
    from detector.data.folders import write_index

    present = [
        m for m in manipulations
        if any((out / "manipulated_sequences" / m / config.level / "v1faces").glob("*/*.png"))
    ]  # fmt: skip
    ds = FaceForensicsPP(out, manipulations=present, split="all", compression=config.compression,
                         frames_per_video=config.frames)  # fmt: skip
    # the split column: the loader's own cut (each group's videos sorted, 7:1:2)
    split_of: dict[str, str] = {}
    for group in ["real", *present]:
        folders = sorted({os.path.dirname(s.path) for s in ds.samples if s.group == group})
        for name, part in split_videos(folders).items():
            split_of.update(dict.fromkeys(part, name))
    rows = []
    for s in ds.samples:
        rows.append(
            {
                **s.to_dict(),
                "path": Path(s.path).relative_to(out).as_posix(),
                "mask_path": Path(s.mask_path).relative_to(out).as_posix() if s.mask_path else "",
                "frame": int(Path(s.path).stem),
                "split": split_of[os.path.dirname(s.path)],
            }
        )
    videos: dict[str, set] = {}
    for s in ds.samples:
        videos.setdefault(s.group, set()).add(s.video)
    return write_index(out / "index.csv", rows), len(rows), {g: len(v) for g, v in videos.items()}


def prepare_ffpp(
    root: str | os.PathLike,
    out: str | os.PathLike,
    config: PrepareConfig | None = None,
    manipulations: Sequence[str] | None = None,
    workers: int = 0,
    progress: bool = True,
) -> PrepareResult:
    """Turn FaceForensics++ videos into paired face crops (see the module docstring).

    Parameters
    ----------
    root : str or path-like
        The download: holds ``original_sequences`` and ``manipulated_sequences``.
    out : str or path-like
        Output folder (created); rerunning with the same folder resumes.
    config : PrepareConfig, optional
    manipulations : sequence of str, optional
        Manipulation folders to prepare (default: every one with videos at
        this compression level).
    workers : int
        Processes working on target videos in parallel (0 or 1: this one).
    progress : bool
        Show a progress bar (one step per target video).

    Returns
    -------
    PrepareResult

    Raises
    ------
    FileNotFoundError
        If ``root`` has no real videos, or a named manipulation has none.
    ValueError
        If ``out`` holds crops made with other settings, or no video at all
        could be prepared.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    config = config or PrepareConfig()
    if isinstance(workers, bool) or int(workers) != workers or workers < 0:
        raise ValueError(f"workers must be a non-negative integer, got {workers!r}")
    root, out = Path(root).expanduser().absolute(), Path(out).expanduser().absolute()
    if not root.is_dir():
        raise FileNotFoundError(f"FaceForensics++ root not found: {os.fspath(root)!r}")
    jobs, manipulations, failed = _plan(root, config.level, manipulations)
    settings = _check_settings(out, root, config)
    out.mkdir(parents=True, exist_ok=True)
    p = _paths(out, config.level)
    for folder in [p["real"], p["boxes"]] + [
        f(m) for m in manipulations for f in (p["fake"], p["mask"])
    ]:
        folder.mkdir(parents=True, exist_ok=True)  # here, not in the workers: no race
        remove_leftovers(folder)  # temporary folders of a run that was killed

    state = {"settings": settings, "root": os.fspath(root), "manipulations": manipulations,
             "n_targets": len(jobs), "failed": list(failed)}  # fmt: skip
    atomic_write_json(out / "prepare.json", state, indent=1)
    pending = [j for j in jobs if not _job_done(j, out, config.level)]
    n_reused = len(jobs) - len(pending)
    bar = tqdm(total=len(pending), desc="prepare", unit="video", disable=not progress)
    args = (os.fspath(out), asdict(config), os.fspath(root))

    def record(res: dict) -> None:
        state["failed"].extend(res["failed"])
        bar.update(1)
        bar.set_postfix_str(f"skipped={len(state['failed'])}", refresh=False)
        atomic_write_json(out / "prepare.json", state, indent=1)

    try:
        if workers > 1 and len(pending) > 1:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(workers, len(pending)), mp_context=ctx) as pool:
                futures = [pool.submit(_run_job, job, *args) for job in pending]
                for fut in as_completed(futures):
                    record(fut.result())
        else:
            for job in pending:
                record(_run_job(job, *args))
    finally:
        bar.close()
    try:
        index, n_rows, n_videos = _write_index(out, manipulations, config)
    except FileNotFoundError:
        raise ValueError(
            f"no video could be prepared ({len(state['failed'])} skipped; reasons in "
            f"{out / 'prepare.json'})"
        ) from None
    state["failed"].sort(key=lambda f: f["video"])
    state.update(n_frames=n_rows, n_videos=n_videos, index=os.fspath(index))
    atomic_write_json(out / "prepare.json", state, indent=1)
    return PrepareResult(out, index, len(jobs), len(pending), n_reused, n_rows, n_videos,
                         state["failed"], time.perf_counter() - t0)  # fmt: skip
