"""``defocus prepare ffpp``: FaceForensics++ videos to paired face crops (the same box per pair)."""

from __future__ import annotations

import argparse
import sys

HELP = "turn FaceForensics++ videos into paired face crops (the ffpp: data the commands read)"

DESCRIPTION = """\
Decode the FaceForensics++ videos of one compression level with PyAV, find
the face in each frame of every REAL (target) video with dlib's HOG
frontal-face detector (built into the dlib-bin package: nothing is
downloaded), and cut a square box of --scale times the face's larger side
around it. The SAME box is cut from every manipulated video <target>_<source>
of that target at the same frame index, and from its mask video, so a fake
crop and its real crop agree pixel for pixel wherever the manipulation did
not change the frame: what the paired analyses (masks, local-variance pairs,
alignment) need.

Frames are named by their index in the video (0000.png, ...); the first
--frames frames that show a face are written, which are the frames the
paper's loader takes (the first 32 by name). Output in --out:

  original_sequences/youtube/<C>/v1faces/<target>/<frame>.png
  manipulated_sequences/<M>/<C>/v1faces/<target>_<source>/<frame>.png
  manipulated_sequences/<M>/masks/v1faces/<target>_<source>/<frame>.png  (0/255)
  boxes/<target>.json   index.csv   prepare.json

Read it with --data ffpp:root=OUT (or index:OUT/index.csv). Each video folder
is written whole or not at all: a rerun skips finished videos and redoes the
rest. Videos that cannot be read, have no frame or show no face are listed
in prepare.json with the reason and skipped (exit status 1 when some were).

example:
  defocus prepare ffpp --root data/FaceForensics++ --out data/ffpp-faces \\
      --compression c23 --frames 32 --manipulations Deepfakes FaceSwap
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus prepare``."""
    parser.add_argument("source", choices=["ffpp"], help="what to prepare: ffpp (FaceForensics++)")
    parser.add_argument(
        "--root",
        required=True,
        metavar="DIR",
        help="the download: holds original_sequences/ and manipulated_sequences/",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (created; a rerun resumes)"
    )
    parser.add_argument(
        "--compression",
        default="c23",
        choices=["c0", "raw", "c23", "c40"],
        help="compression level to read (default c23)",
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=32,
        help="frames per video, the first that show a face (default 32)",
    )
    parser.add_argument(
        "--manipulations",
        nargs="+",
        metavar="M",
        help="manipulation folders (default: every one with videos)",
    )
    parser.add_argument(
        "--scale", type=float, default=1.3, help="box side / the face's larger side (default 1.3)"
    )
    parser.add_argument(
        "--detect-size",
        type=int,
        default=640,
        metavar="PX",
        help="longer side of the frame the face detector sees (default 640; "
        "0 = full frame, slower)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="parallel processes, one target video each (default 0: this one)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Prepare the crops; exit status 1 when some videos were skipped."""
    from pathlib import Path

    from defocus_forensics.logs import start_run_log
    from detector.data.ffpp_videos import PrepareConfig, prepare_ffpp
    from safeio import check_output_dir

    config = PrepareConfig(
        compression=args.compression,
        frames=args.frames,
        scale=args.scale,
        detect_size=args.detect_size,
    )
    out = Path(args.out).expanduser().absolute()
    if out.exists():  # a new folder is made only once the videos are found
        out = check_output_dir(out)
        start_run_log(out)
    result = prepare_ffpp(
        args.root,
        out,
        config,
        manipulations=args.manipulations,
        workers=args.workers,
        progress=not args.quiet,
    )
    n_real = result.n_videos.get("real", 0)
    n_fake = sum(v for g, v in result.n_videos.items() if g != "real")
    print(
        f"prepared {n_real} of {result.n_targets} real videos and {n_fake} manipulated ones "
        f"({result.n_done} worked on now, {result.n_reused} done before): {result.n_frames} "
        f"frames in {out} (index: {result.index})"
    )
    if result.failed:
        print(f"{len(result.failed)} videos skipped (reasons in {out / 'prepare.json'}):",
              file=sys.stderr)  # fmt: skip
        for f in result.failed[:10]:
            print(f"  {f['video']}: {f['reason']}", file=sys.stderr)
        return 1
    return 0
