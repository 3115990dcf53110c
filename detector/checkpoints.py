"""Checkpoints: ours (self-describing, checksummed) and the paper's, turned into ours.

The file format lives in :mod:`detector.checkpoint_format` and is re-exported
here with :func:`load_checkpoint` (from :mod:`detector.models`), so that one
import gives every checkpoint function::

    from detector.checkpoints import load_checkpoint, read_checkpoint, save_checkpoint

This module adds the paper's checkpoints. Its released weights are state
dicts (``torch.save(model.state_dict())``, or ``{"model_state_dict": ...}``
from its training script, with DataParallel's ``module.`` prefix when
trained on several GPUs) of one of three models:

``DefocusNet`` (``--kind defocus``)
    the timm backbone under ``classifier.``; it sees images resized to 299
    px and normalised to [-1, 1] by the data loader, turns them into
    defocus maps at 299 px (Canny on ``clip(gray, 0, 1)`` of the [-1, 1]
    gray image, guided filter guided by it), resizes the map to 299,
    min-max normalises it per sample and repeats it to 3 channels;
a bare timm model (``--kind rgb``)
    the RGB detector, on the same [-1, 1] images;
``MultiBranchDefocusNet`` (``--kind fusion``)
    ``rgb_backbone.`` (features), ``defocus_backbone.`` (one input
    channel), ``classifier.`` (a linear layer on their product).

:func:`paper_detector` builds our detector with the settings that reproduce
these models exactly (defocus estimator ``input_range="symmetric"`` at 299
px, RGB input range ``"symmetric"``); :func:`import_checkpoint` loads a
paper file into it and saves it in our format, after which every command
that takes a model accepts it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from detector.checkpoint_format import (
    FORMAT,
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    adapt_state_dict,
    checkpoint_digest,
    load_weights,
    read_checkpoint,
    read_state_dict,
    save_checkpoint,
    strip_prefix,
)
from detector.models import Detector, build_detector, load_checkpoint

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "PAPER_BACKBONE",
    "PAPER_MAP_SIZE",
    "Checkpoint",
    "CheckpointError",
    "adapt_state_dict",
    "checkpoint_digest",
    "import_checkpoint",
    "load_checkpoint",
    "load_weights",
    "paper_defocus_config",
    "paper_detector",
    "paper_layout",
    "read_checkpoint",
    "read_state_dict",
    "save_checkpoint",
]

#: The backbone of every released checkpoint of the paper.
PAPER_BACKBONE = "legacy_xception"
#: Side of the paper's defocus maps and of its loader's images (hard-coded there).
PAPER_MAP_SIZE = 299

_KINDS = ("defocus", "rgb", "fusion")

#: What :func:`paper_layout` answers, described for messages.
_LAYOUT_NAMES = {
    "DefocusNet": "the paper's DefocusNet (its timm model under 'classifier.')",
    "MultiBranchDefocusNet": "the paper's MultiBranchDefocusNet (rgb_backbone., "
    "defocus_backbone., classifier.)",
    "timm": "a bare timm model (the paper's RGB detector)",
    "ours": "a defocus-forensics checkpoint",
}


def paper_defocus_config():
    """Return the defocus estimator settings of the paper's ``DefocusNet`` (a ``DefocusConfig``).

    Reference mode at 299 px on images the way its data loader gives them,
    ``2 * x - 1`` (``input_range="symmetric"``): Canny sees
    ``clip(gray, 0, 1)`` of the [-1, 1] gray image, and the guided filter a
    guide of twice the range.
    """
    from detector.defocus import DefocusConfig

    return DefocusConfig(mode="reference", size=PAPER_MAP_SIZE, input_range="symmetric")


def paper_detector(
    kind: str,
    backbone: str = PAPER_BACKBONE,
    image_size: int = PAPER_MAP_SIZE,
    defocus_backbone: str | None = None,
) -> Detector:
    """Build our detector with the input pipeline of the paper's model of that kind.

    Parameters
    ----------
    kind : {"defocus", "rgb", "fusion"}
    backbone : str, default="legacy_xception"
        timm name (fusion: the RGB branch).
    image_size : int, default=299
        Side ``S`` of the backbone's input. The defocus map is always
        estimated at 299 px (as the paper does) and then resized to ``S``.
    defocus_backbone : str, optional
        Fusion only: the defocus branch (default: ``backbone``).

    Returns
    -------
    Detector
        Random weights (``pretrained=False``); images go in as ``(B, 3, H,
        W)`` in [0, 1], 299 x 299 for the paper's exact maps.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if kind == "rgb":
        return build_detector("rgb", backbone, image_size=image_size, rgb_input_range="symmetric")
    cfg = paper_defocus_config()
    if kind == "defocus":
        return build_detector("defocus", backbone, image_size=image_size, defocus_config=cfg)
    return build_detector(
        "fusion",
        backbone,
        image_size=image_size,
        defocus_config=cfg,
        rgb_input_range="symmetric",
        defocus_backbone=defocus_backbone or backbone,
    )


def paper_layout(state: dict[str, Any]) -> str:
    """Name the layout of a state dict: ``"DefocusNet"``, ``"MultiBranchDefocusNet"`` or ``"timm"``.

    Parameters
    ----------
    state : dict of str to torch.Tensor
        Keys as stored (a ``module.`` prefix is ignored).

    Returns
    -------
    str
    """
    keys = list(strip_prefix(dict(state), "module."))
    tops = {k.split(".", 1)[0] for k in keys}
    if {"rgb_backbone", "defocus_backbone"} <= tops:
        return "MultiBranchDefocusNet"
    if keys and all(k.startswith("classifier.") for k in keys):
        return "DefocusNet"
    return "timm"


_EXPECTED = {"defocus": "DefocusNet", "rgb": "timm", "fusion": "MultiBranchDefocusNet"}


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _plain(extra: dict[str, Any]) -> dict[str, Any]:
    """Keep the plain scalar entries of a foreign wrapper (epoch, best_val_acc), nothing else."""
    return {
        str(k): v for k, v in extra.items() if v is None or isinstance(v, str | int | float | bool)
    }


def import_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    kind: str,
    backbone: str = PAPER_BACKBONE,
    image_size: int = PAPER_MAP_SIZE,
    defocus_backbone: str | None = None,
) -> dict[str, Any]:
    """Turn a checkpoint in one of the paper's layouts into our self-describing format.

    Parameters
    ----------
    src : path
        The paper's file (``.pth``): a state dict of ``DefocusNet``, a bare
        timm model or ``MultiBranchDefocusNet``, bare or wrapped in
        ``{"model_state_dict": ...}``, with or without ``module.`` keys.
    dst : path
        Where our checkpoint is written (``.safetensors`` or a ``torch.save``
        file), atomically.
    kind : {"defocus", "rgb", "fusion"}
    backbone, image_size, defocus_backbone
        As :func:`paper_detector`; the defaults are the paper's.

    Returns
    -------
    dict
        ``src``, ``dst``, ``kind``, ``layout``, ``n_tensors``,
        ``source_sha256`` and the detector ``config``.

    Raises
    ------
    CheckpointError
        If ``src`` is unreadable, already in our format, holds the layout of
        another kind, or does not fit the detector built (the message names
        the first missing key; a wrong ``backbone`` is the usual cause).
    ValueError
        If ``dst`` is ``src``, or an argument is out of range.
    """
    src, dst = Path(src), Path(dst)
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if dst.exists() and src.exists() and os.path.samefile(src, dst):
        raise ValueError(f"the output {os.fspath(dst)!r} is the input file; give another name")
    ckpt = read_checkpoint(src)
    if ckpt.layout == "ours":
        raise CheckpointError(
            src, "is already a defocus-forensics checkpoint; every command takes it as it is"
        )
    layout = paper_layout(ckpt.state_dict)
    if layout != _EXPECTED[kind]:
        better = next(k for k, v in _EXPECTED.items() if v == layout)
        raise CheckpointError(
            src,
            f"holds {_LAYOUT_NAMES[layout]}, not the layout of a {kind!r} model; "
            f"use --kind {better}",
        )
    model = paper_detector(kind, backbone, image_size, defocus_backbone)
    try:
        load_weights(model, ckpt)
    except CheckpointError as err:
        if backbone == PAPER_BACKBONE:
            hint = f"built with the paper's backbone {backbone}; give --backbone NAME if the "
            hint += "file holds another timm model"
        else:
            hint = f"built with --backbone {backbone}; the paper's is {PAPER_BACKBONE}"
        raise CheckpointError(src, f"{err.problem} ({hint})") from None
    source_sha = _file_sha256(src)
    save_checkpoint(
        model,
        dst,
        imported_from=os.fspath(src.absolute()),
        source_sha256=source_sha,
        source_layout=layout,
        source_extra=_plain(ckpt.extra),
    )
    return {
        "src": os.fspath(src),
        "dst": os.fspath(dst),
        "kind": kind,
        "layout": layout,
        "n_tensors": len(ckpt.state_dict),
        "source_sha256": source_sha,
        "config": model.config,
    }
