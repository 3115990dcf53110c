"""Draw the README pictures of the defocus estimator (docs/img/defocus_*.png).

Usage::

    .venv/bin/python benchmarks/defocus_readme_figures.py [--out docs/img]

``defocus_photos.png``: real photos (scikit-image, scikit-learn) beside their
maps in reference and accurate mode. ``defocus_thin_lens.png``: scenes of the
accuracy benchmark (the Middlebury motorcycle focused near, a held-out photo
scene) with the true blur and both estimates, on one colour scale in pixels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from detector.defocus import DefocusConfig, estimate_defocus  # noqa: E402
from detector.thin_lens import motorcycle_scene, photo_scene  # noqa: E402
from safeio import atomic_path, check_output_dir  # noqa: E402


def _maps(image: np.ndarray, **kw) -> np.ndarray:
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
    return estimate_defocus(x.contiguous(), DefocusConfig(**kw)).defocus[0, 0].numpy()


def _save(fig, path: Path) -> None:
    """Save as a 256-colour PNG (a third of the size, no visible change)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, dpi=80, format="png")
    plt.close(fig)
    buf.seek(0)
    img = Image.open(buf).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", optimize=True)


def photos_figure(path: Path) -> None:
    from skimage import data
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    photos = {
        "astronaut": data.astronaut(),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
        "flower": flower,
    }
    fig, axes = plt.subplots(len(photos), 3, figsize=(10.5, 3.1 * len(photos)))
    for row, (name, img) in enumerate(photos.items()):
        ref = _maps(img, mode="reference")
        acc = _maps(img, mode="accurate", size=None)
        axes[row, 0].imshow(img)
        axes[row, 0].set_title(f"{name} ({img.shape[1]}x{img.shape[0]})", fontsize=9)
        im = axes[row, 1].imshow(ref, cmap="magma")
        axes[row, 1].set_title("reference mode (299x299, paper units)", fontsize=9)
        fig.colorbar(im, ax=axes[row, 1], fraction=0.046)
        im = axes[row, 2].imshow(acc, cmap="magma", vmin=0)
        axes[row, 2].set_title("accurate mode (native size, sigma in px)", fontsize=9)
        fig.colorbar(im, ax=axes[row, 2], fraction=0.046)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.tight_layout()
    _save(fig, path)


def thin_lens_figure(path: Path) -> None:
    fig, axes = plt.subplots(2, 4, figsize=(15, 5.4))
    scenes = [motorcycle_scene("near"), photo_scene(3, ("rocket", "china", "flower"), "back")]
    for row, scene in enumerate(scenes):
        ref = _maps(scene.image, mode="reference", size=None)
        acc = _maps(scene.image, mode="accurate", size=None)
        panels = [
            (scene.image, scene.name, None),
            (np.where(scene.valid, scene.sigma, np.nan), "true blur sigma (px)", 3.0),
            (ref, "reference mode", None),
            (acc, "accurate mode (px)", 3.0),
        ]
        for col, (img, title, vmax) in enumerate(panels):
            ax = axes[row, col]
            if img.ndim == 3:
                ax.imshow(img)
            else:
                im = ax.imshow(img, cmap="magma", vmin=0, vmax=vmax)
                fig.colorbar(im, ax=ax, fraction=0.035)
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
    fig.tight_layout()
    _save(fig, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/img")
    args = parser.parse_args(argv)
    out = check_output_dir(args.out)
    photos_figure(out / "defocus_photos.png")
    thin_lens_figure(out / "defocus_thin_lens.png")
    print(f"wrote {out / 'defocus_photos.png'} and {out / 'defocus_thin_lens.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
