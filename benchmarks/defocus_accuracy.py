"""Accuracy of the defocus maps against ground truth (thin-lens renderings, step edges).

Usage::

    .venv/bin/python benchmarks/defocus_accuracy.py [--no-matting] [--markdown]

Scenes: the Middlebury motorcycle (``skimage.data.stereo_motorcycle``, left
view at half resolution, 370x250) rendered through a thin lens focused near
(95th percentile of the disparity) and far (5th percentile), and three
synthetic layered dead-leaves scenes (320x240, seeds 0-2); the largest blur
is 3 px. Every map is computed at native resolution (``size=None``) and
compared with the true blur: Spearman correlation and mean absolute error
(px) of the dense map over the pixels of known truth, and the MAE of the
sparse edge estimates. Step edges: straight edges at random angles and
sub-pixel offsets blurred by sigma in 0.5..3 px (closed form, 8-bit).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.special import erf
from scipy.stats import spearmanr

from detector.defocus import DefocusConfig, estimate_defocus
from detector.thin_lens import layered_scene, motorcycle_scene


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


def scene_rows(configs, scenes):
    rows = []
    for scene in scenes:
        x = _tensor(scene.image)
        for label, config in configs:
            t0 = time.perf_counter()
            maps = estimate_defocus(x, config)
            seconds = time.perf_counter() - t0
            dense = maps.defocus[0, 0].numpy().astype(np.float64)
            sparse = maps.sparse[0, 0].numpy().astype(np.float64)
            v = scene.valid
            has = (sparse > 0) & v
            rows.append(
                (
                    scene.name,
                    label,
                    spearmanr(dense[v], scene.sigma[v]).statistic,
                    np.abs(dense - scene.sigma)[v].mean(),
                    np.abs(sparse - scene.sigma)[has].mean() if has.any() else float("nan"),
                    seconds,
                )
            )
    return rows


def step_rows(configs, seed=0, n=64):
    rng = np.random.default_rng(seed)
    rows = []
    for label, config in configs:
        errs = []
        for sigma in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0):
            imgs = []
            for _ in range(8):
                y, x = np.mgrid[:n, :n] - (n - 1) / 2
                a, o = rng.uniform(0, np.pi), rng.uniform(-0.5, 0.5)
                d = x * np.cos(a) + y * np.sin(a) - o
                img = 0.2 + 0.6 * 0.5 * (1 + erf(d / (sigma * np.sqrt(2))))
                imgs.append(np.round(img * 255) / 255)
            batch = torch.from_numpy(np.stack(imgs)).float()[:, None].expand(-1, 3, -1, -1)
            est = estimate_defocus(batch.contiguous(), config).sparse[:, 0].numpy()
            inner = np.zeros(est.shape, dtype=bool)
            inner[:, 8:-8, 8:-8] = True
            errs.append(np.abs(est[(est > 0) & inner] - sigma))
        rows.append((label, float(np.concatenate(errs).mean())))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-matting", action="store_true", help="skip the slower matting runs")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="scenes not looked at while choosing the defaults: motorcycle focused at the "
        "30th and 70th disparity percentiles, layered seeds 3-5",
    )
    args = parser.parse_args(argv)

    configs = [
        ("reference", DefocusConfig(mode="reference", size=None)),
        ("accurate, guided", DefocusConfig(mode="accurate", size=None)),
    ]
    if not args.no_matting:
        configs.append(
            ("accurate, matting", DefocusConfig(mode="accurate", size=None, propagation="matting"))
        )
    if args.held_out:
        scenes = [motorcycle_scene(30.0), motorcycle_scene(70.0)]
        scenes += [layered_scene(seed) for seed in range(3, 6)]
    else:
        scenes = [motorcycle_scene("near"), motorcycle_scene("far")]
        scenes += [layered_scene(seed) for seed in range(3)]
    rows = scene_rows(configs, scenes)
    steps = step_rows(configs[:2])
    if args.markdown:
        print("| scene | mode | Spearman | MAE (px) | sparse MAE (px) | time (s) |")
        print("| --- | --- | ---: | ---: | ---: | ---: |")
        for name, label, rho, mae, smae, sec in rows:
            print(f"| {name} | {label} | {rho:.3f} | {mae:.3f} | {smae:.3f} | {sec:.1f} |")
        print()
        print("| step edges, sigma 0.5..3 px | sparse MAE (px) |")
        print("| --- | ---: |")
        for label, mae in steps:
            print(f"| {label} | {mae:.3f} |")
    else:
        print(f"{'scene':16s} {'mode':18s} {'Spearman':>8s} {'MAE':>6s} {'sparse':>7s} {'s':>5s}")
        for name, label, rho, mae, smae, sec in rows:
            print(f"{name:16s} {label:18s} {rho:8.3f} {mae:6.3f} {smae:7.3f} {sec:5.1f}")
        for label, mae in steps:
            print(f"step edges       {label:18s} sparse MAE {mae:.3f} px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
