"""``defocus estimate``: defocus maps of image files, with previews."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safeio import atomic_path, atomic_write, atomic_write_json

HELP = "write the defocus map (16-bit PNG or .npy) and a preview of each image"

DESCRIPTION = """\
Estimate the defocus-blur map of every image given (files, or folders
searched recursively for .png .jpg .jpeg .bmp .tif .tiff .webp .gif) and write,
for an input NAME:

  OUT/NAME_defocus.png    the map as a 16-bit grayscale PNG: blur in pixels =
                          value * max_blur / 65535 (max_blur is 5 by default;
                          also stored in the PNG's text chunk "defocus_scale")
  OUT/NAME_defocus.npy    with --format npy: the float32 map itself
  OUT/NAME_preview.png    the image beside its colour-mapped map
  OUT/estimate.json       settings, every output, every skipped file and why

Folder inputs keep their sub-folder layout under OUT. Grayscale, RGBA
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


def _collect(inputs: list[str]):
    """Expand folders; return (list of (path, relative output stem), list of missing)."""
    found, missing = [], []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            found += [(p, p.relative_to(path).with_suffix("")) for p in files]
        elif path.is_file():
            found.append((path, Path(path.stem)))
        else:
            missing.append(item)
    # make output names unique
    seen: dict[str, int] = {}
    unique = []
    for path, rel in found:
        key = str(rel)
        if key in seen:
            seen[key] += 1
            rel = rel.with_name(f"{rel.name}_{seen[key]}")
        else:
            seen[key] = 0
        unique.append((path, rel))
    return unique, missing


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

    from detector.defocus import DefocusConfig, estimate_defocus
    from detector.device import resolve_device
    from detector.imageio import DEFAULT_MAX_PIXELS, ImageReadError, read_image, to_float_chw

    try:
        device = resolve_device(args.device)
        config = DefocusConfig(
            mode=args.mode,
            size=args.size,
            propagation=args.propagation,
            input_range=args.input_range,
        )
    except ValueError as err:
        print(f"defocus estimate: {err}", file=sys.stderr)
        return 2
    max_pixels = DEFAULT_MAX_PIXELS if args.max_pixels is None else args.max_pixels
    if max_pixels < 1:
        print(f"defocus estimate: --max-pixels must be positive, got {max_pixels}", file=sys.stderr)
        return 2
    files, missing = _collect(args.inputs)
    for item in missing:
        print(f"defocus estimate: skipped {item}: no such file or folder", file=sys.stderr)
    if not files:
        print("defocus estimate: no image files found in the inputs", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"defocus estimate: cannot create --out {out}: {err}", file=sys.stderr)
        return 2

    scale = config.max_blur / 65535.0
    written, skipped = [], [{"path": m, "reason": "no such file or folder"} for m in missing]
    for path, rel in tqdm(files, desc="defocus maps", unit="img", file=sys.stderr):
        try:
            image = read_image(path, max_pixels=max_pixels)
        except ImageReadError as err:
            tqdm.write(f"defocus estimate: skipped {path}: {err.reason}", file=sys.stderr)
            skipped.append({"path": str(path), "reason": err.reason})
            continue
        if min(image.shape[:2]) < 8:
            reason = f"image too small ({image.shape[1]}x{image.shape[0]}, at least 8x8 needed)"
            tqdm.write(f"defocus estimate: skipped {path}: {reason}", file=sys.stderr)
            skipped.append({"path": str(path), "reason": reason})
            continue
        x = torch.from_numpy(to_float_chw(image))[None].to(device)
        maps = estimate_defocus(x, config)
        dmap = maps.defocus[0, 0].float().cpu().numpy()
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        record = {"input": str(path), "height": image.shape[0], "width": image.shape[1]}
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
    print(f"wrote {len(written)} map(s) to {out}; skipped {len(skipped)}", file=sys.stderr)
    if not written:
        return 2
    return 1 if skipped else 0
