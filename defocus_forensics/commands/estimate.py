"""``defocus estimate``: defocus maps of image files, with previews."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from safeio import atomic_path, atomic_write, atomic_write_json, is_temporary

HELP = "write the defocus map (16-bit PNG or .npy) and a preview of each image"

DESCRIPTION = """\
Estimate the defocus-blur map of every image given (files, or folders
searched recursively for .png .jpg .jpeg .bmp .tif .tiff .webp .gif) and write,
for an input file NAME (its full name, extension included, so that a.jpg and
a.png give two maps):

  OUT/NAME_defocus.png    the map as a 16-bit grayscale PNG: blur in pixels =
                          value * max_blur / 65535 (max_blur is 5 by default;
                          also stored in the PNG's text chunk "defocus_scale")
  OUT/NAME_defocus.npy    with --format npy: the float32 map itself
  OUT/NAME_preview.png    the image beside its colour-mapped map
  OUT/estimate.json       settings, every output, every skipped file and why

Outputs mirror the inputs' paths below their common folder (one folder:
its sub-folders), so no two inputs share an output. An --out inside an
input folder is skipped when that folder is searched, so a second run never
reads its own maps as images; an input folder inside --out is refused.
Maps are written atomically. Grayscale, RGBA
(composited over white), palette, 16-bit and EXIF-rotated images are read
correctly; unreadable or corrupt files are reported and skipped (exit status
1 when some were skipped); images larger than --max-pixels are refused.
Each image is processed on its own (the reference mode's batch-wide edge
normalisation therefore sees one image at a time).

  --mode reference   the paper's pipeline (values are not calibrated)
  --mode accurate    blur sigma in pixels, checked against ground truth

example:
  defocus estimate photos/ extra.jpg --out runs/maps --mode accurate --size native
"""

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


def _size(text: str):
    if text.lower() in ("native", "none"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must be a positive integer or 'native', got {text!r}"
        ) from None
    if value < 8:
        raise argparse.ArgumentTypeError(f"size must be at least 8 or 'native', got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``defocus estimate``."""
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="images or folders")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--mode", choices=("reference", "accurate"), default="reference", help="estimator"
    )
    parser.add_argument(
        "--size", type=_size, default=299, metavar="N|native",
        help="side of the square maps, or 'native' to keep each image's size (default 299)",
    )  # fmt: skip
    parser.add_argument("--format", choices=("png", "npy"), default="png", help="map file type")
    parser.add_argument(
        "--propagation", choices=("guided", "matting"), default="guided",
        help="sparse-to-dense propagation (default guided)",
    )  # fmt: skip
    parser.add_argument(
        "--input-range", choices=("unit", "symmetric"), default="unit",
        help="'symmetric' reproduces the paper's [-1, 1] data loader (reference checkpoints)",
    )  # fmt: skip
    parser.add_argument("--no-preview", action="store_true", help="do not write previews")
    parser.add_argument(
        "--max-pixels", type=int, default=None, metavar="N",
        help="refuse images with more pixels than this (default: about 179 million)",
    )  # fmt: skip
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (both absolute)."""
    return path == folder or folder in path.parents


def _collect(inputs: list[str], out: Path):
    """Expand folders into image files and give each a unique output name.

    Returns ``(files, missing)``: ``files`` is a list of ``(path, rel)``
    where ``rel`` is the input's path relative to the common folder of all
    inputs, file name and extension included, so that two inputs never
    share an output name (``a.jpg`` and ``a.png`` give ``a.jpg_defocus.png``
    and ``a.png_defocus.png``). Files inside ``out`` are never collected
    from a folder: maps written there are not read back as images.

    Raises
    ------
    OutputPathError
        If an input folder lies inside ``out`` (every image in it would be
        mixed with the maps).
    """
    from safeio import OutputPathError

    out_abs, out_real = out, out.resolve()
    found: list[Path] = []
    anchors: list[Path] = []
    missing: list[str] = []
    for item in inputs:
        path = Path(os.path.abspath(Path(item).expanduser()))
        if path.is_dir():
            if _inside(path, out_abs) or _inside(path.resolve(), out_real):
                raise OutputPathError(
                    f"--out {os.fspath(out)!r} contains the input folder {item!r}: its maps "
                    "would be read back as images on the next run; give an --out outside it "
                    "(a new sub-folder of the input is fine)"
                )
            anchors.append(path)
            for p in sorted(path.rglob("*")):
                if not p.is_file() or p.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                if _inside(p, out_abs) or _inside(p.resolve(), out_real) or is_temporary(p):
                    continue  # our own outputs (an --out inside the input folder)
                found.append(p)
        elif path.is_file():
            anchors.append(path.parent)
            found.append(path)
        else:
            missing.append(item)
    unique: dict[Path, None] = dict.fromkeys(found)  # a file given twice is mapped once
    if not unique:
        return [], missing
    anchor = Path(os.path.commonpath([os.fspath(a) for a in anchors]))
    return [(p, p.relative_to(anchor)) for p in unique], missing


def _map_bytes(height: int, width: int, size: int | None) -> int:
    """Estimate the peak memory (bytes) of one map.

    About 12 float32 planes at the image's size (image, gray, Canny stages)
    and 36 at the map's size (gradients, ratios, guided-filter sums).
    """
    map_pixels = height * width if size is None else size * size
    return 4 * (12 * height * width + 36 * map_pixels)


def _colourise(values, vmax: float):
    """Map ``(H, W)`` values in [0, vmax] to uint8 RGB with matplotlib's magma."""
    import numpy as np
    from matplotlib import colormaps

    norm = np.clip(values / max(vmax, 1e-12), 0.0, 1.0)
    return (colormaps["magma"](norm)[..., :3] * 255).round().astype(np.uint8)


def _preview(image, dmap, vmax: float):
    """Put the image (resized to the map) beside its colour-mapped map, uint8 ``(H, 2W+4, 3)``."""
    import numpy as np
    from PIL import Image

    h, w = dmap.shape
    resized = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
    gap = np.full((h, 4, 3), 255, dtype=np.uint8)
    return np.concatenate([resized, gap, _colourise(dmap, vmax)], axis=1)


def run(args: argparse.Namespace) -> int:
    """Estimate and write the maps; see ``DESCRIPTION``."""
    import json

    import numpy as np
    import torch
    from PIL import Image, PngImagePlugin
    from tqdm import tqdm

    from defocus_forensics.logs import start_run_log
    from detector.defocus import DefocusConfig, estimate_defocus
    from detector.device import resolve_device
    from detector.imageio import DEFAULT_MAX_PIXELS, ImageReadError, read_image, to_float_chw
    from detector.memory import available_memory, format_bytes, largest_fitting, require_memory
    from safeio import check_output_dir

    device = resolve_device(args.device)
    config = DefocusConfig(
        mode=args.mode,
        size=args.size,
        propagation=args.propagation,
        input_range=args.input_range,
    )
    max_pixels = DEFAULT_MAX_PIXELS if args.max_pixels is None else args.max_pixels
    if max_pixels < 1:
        raise ValueError(f"--max-pixels must be positive, got {max_pixels}")
    if args.size is not None:
        fit = largest_fitting(lambda s: _map_bytes(8, 8, s), args.size, lower=8)
        require_memory(
            _map_bytes(8, 8, args.size),
            f"--size {args.size}",
            hint=f"--size {fit} fits" if fit else "no map size fits",
        )
    out_given = Path(os.path.abspath(Path(args.out).expanduser()))
    files, missing = _collect(args.inputs, out_given)
    for item in missing:
        print(f"defocus estimate: skipped {item}: no such file or folder", file=sys.stderr)
    if not files:
        raise ValueError("no image files found in the inputs")
    out = check_output_dir(args.out, "--out")
    start_run_log(out)

    scale = config.max_blur / 65535.0
    written, skipped = [], [{"path": m, "reason": "no such file or folder"} for m in missing]
    bar = tqdm(files, desc="defocus maps", unit="img", file=sys.stderr, disable=args.quiet)

    def skip(path: Path, reason: str) -> None:
        tqdm.write(f"defocus estimate: skipped {path}: {reason}", file=sys.stderr)
        skipped.append({"path": str(path), "reason": reason})

    for path, rel in bar:
        try:
            image = read_image(path, max_pixels=max_pixels)
        except ImageReadError as err:
            skip(path, err.reason)
            continue
        h, w = image.shape[:2]
        if min(h, w) < 8:
            skip(path, f"image too small ({w}x{h}, at least 8x8 needed)")
            continue
        need, have = _map_bytes(h, w, args.size), available_memory()
        if have is not None and need > 0.8 * have:
            skip(path, f"needs about {format_bytes(need)} of memory, {format_bytes(have)} "
                       "available")  # fmt: skip
            continue
        x = torch.from_numpy(to_float_chw(image))[None].to(device)
        maps = estimate_defocus(x, config)
        dmap = maps.defocus[0, 0].float().cpu().numpy()
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        record = {"input": str(path), "height": h, "width": w}
        if args.format == "npy":
            map_path = target.with_name(target.name + "_defocus.npy")
            with atomic_write(map_path, "wb") as fh:
                np.save(fh, dmap.astype(np.float32))
        else:
            map_path = target.with_name(target.name + "_defocus.png")
            q = np.round(np.clip(dmap, 0.0, config.max_blur) / scale).astype(np.uint16)
            info = PngImagePlugin.PngInfo()
            info.add_text("defocus_scale", repr(scale))
            info.add_text("defocus_config", json.dumps(config.to_dict()))
            with atomic_path(map_path) as tmp:
                Image.fromarray(q).save(tmp, pnginfo=info)
        record["map"] = str(map_path)
        if not args.no_preview:
            preview_path = target.with_name(target.name + "_preview.png")
            vmax = max(float(np.percentile(dmap, 99.5)), 1e-6)
            with atomic_path(preview_path) as tmp:
                Image.fromarray(_preview(image, dmap, vmax)).save(tmp)
            record["preview"] = str(preview_path)
        written.append(record)

    summary = {
        "config": config.to_dict(),
        "format": args.format,
        "png_scale_px_per_unit": scale if args.format == "png" else None,
        "written": written,
        "skipped": skipped,
    }
    atomic_write_json(out / "estimate.json", summary)
    if not written:
        raise ValueError(f"no map could be written ({len(skipped)} inputs skipped; see above)")
    print(f"wrote {len(written)} defocus map(s) to {out}; skipped {len(skipped)}")
    return 1 if skipped else 0
