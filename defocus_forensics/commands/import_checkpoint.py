"""``defocus import-checkpoint``: the paper's released weights as a self-describing checkpoint."""

from __future__ import annotations

import argparse

HELP = "turn the paper's released weights into a checkpoint every command takes"

DESCRIPTION = """\
Read a checkpoint in one of the paper's layouts and write it in this
toolkit's format (model config, checksum), with the input pipeline that
reproduces the paper's model exactly:

  --kind defocus   the paper's DefocusNet (its timm model under 'classifier.');
                   defocus maps as its data loader made them: images in [-1, 1]
                   (input range 'symmetric'), reference pipeline at 299 px,
                   map resized to --image-size, min-max per sample
  --kind rgb       a bare timm model on [-1, 1] images (the paper's RGB detector)
  --kind fusion    the paper's MultiBranchDefocusNet (rgb_backbone.,
                   defocus_backbone., classifier.)

Accepted: a bare state dict, {'model_state_dict': ...} (the paper's training
script), DataParallel 'module.' keys. Nothing is unpickled except tensors and
plain containers, and nothing is downloaded. The output (.pt, .pth or
.safetensors) is then given wherever a command takes a model, e.g.
`defocus extract --defocus-model DST`, `defocus evaluate --checkpoint DST`.
Give the models 299 x 299 images (the paper's loader size) for the paper's
exact maps.

example:
  defocus import-checkpoint weights/defocus_gt_legacy_xception_Deepfakes.pth \\
      --kind defocus --out runs/paper/defocus_Deepfakes.pt
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus import-checkpoint``."""
    parser.add_argument("src", metavar="SRC", help="the paper's checkpoint file (.pth)")
    parser.add_argument(
        "--kind", required=True, choices=("defocus", "rgb", "fusion"), help="the model it holds"
    )
    parser.add_argument("--out", required=True, metavar="DST", help="checkpoint to write")
    parser.add_argument(
        "--backbone", default="legacy_xception",
        help="timm backbone it was trained with (default legacy_xception, the paper's)",
    )  # fmt: skip
    parser.add_argument(
        "--image-size", type=int, default=299, metavar="S",
        help="side of the backbone's input (default 299, the paper's)",
    )  # fmt: skip
    parser.add_argument(
        "--defocus-backbone", default=None, metavar="NAME",
        help="fusion only: the defocus branch's backbone (default: --backbone)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Import the checkpoint; print one line; return the exit status."""
    import os
    import shutil
    from pathlib import Path

    from safeio import check_output_file

    if args.image_size < 8:
        raise ValueError(f"--image-size must be at least 8, got {args.image_size}")
    if args.defocus_backbone is not None and args.kind != "fusion":
        raise ValueError("--defocus-backbone is for --kind fusion only")
    src = Path(args.src).expanduser().absolute()
    if not src.exists():
        raise FileNotFoundError(f"checkpoint not found: {args.src!r}")
    wanted = Path(args.out).expanduser().absolute()
    # the first folder this command creates, removed again if the import fails
    created = next((p for p in (*reversed(wanted.parents),) if not p.exists()), None)
    dst = check_output_file(args.out, "--out")
    if dst == src or (dst.exists() and os.path.samefile(src, dst)):
        raise ValueError(f"--out {args.out!r} is the input file; give another name")

    from detector.checkpoints import import_checkpoint

    try:
        info = import_checkpoint(
            src,
            dst,
            args.kind,
            backbone=args.backbone,
            image_size=args.image_size,
            defocus_backbone=args.defocus_backbone,
        )
    except BaseException:
        if created is not None and not any(p.is_file() for p in created.rglob("*")):
            shutil.rmtree(created, ignore_errors=True)
        raise
    print(
        f"imported {args.src} ({info['layout']} layout, {info['n_tensors']} tensors) as a "
        f"{args.kind} detector ({args.backbone}, {args.image_size} px, the paper's input "
        f"normalisation) -> {dst}"
    )
    return 0
