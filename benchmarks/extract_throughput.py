"""Speed and memory of the cached-inference stage, each figure against a named baseline.

Run on a quiet machine for the final table (each figure prints one line and the
load average; everything is written to ``runs/benchmarks/extract_throughput.json``):

  python benchmarks/extract_throughput.py --only 1 --configs legacy_xception:128 resnet10t:128
  python benchmarks/extract_throughput.py --only 3 --dask-images 128 --dask-shard-size 64 8
  python benchmarks/extract_throughput.py --only 4 --backbone resnet10t --size 128
  python benchmarks/extract_throughput.py --quick     (tiny settings: a smoke run only)

(1) Per-image cost of ``shap-gradient`` at 200 evaluations for both models (CPU, one
    torch thread, same models, same images), each way in its own fresh process,
    alternating, best of ``--rounds``:

    ``ours``               ``cache.extract.extract`` end to end (maps, logits, features,
                           both attributions, shards written and checksummed)
    ``paper_nofig``        THE BASELINE: the loop of the paper's "Shapley Save" notebook
                           (visualize/Shapley Save/Shapley Save.ipynb): defocus maps per
                           batch, then per image one ``shap.GradientExplainer(...)(x)`` call
                           per model, values kept in memory -- without its figure
    ``paper``              the same loop with the notebook's 3-panel matplotlib figure per
                           image saved as PNG (an extra: the figure is not attribution work)
    ``ours_stratified66``  ours with ``sampling="stratified"`` at 66 evaluations (the count
                           that matches shap's error at 200, figure 2)
    ``attr_ours``          attribution compute alone: the job's explainers (batch norms
                           folded, channels-last, stem shortcut) on precomputed inputs
    ``attr_shap``          attribution compute alone: ``shap.GradientExplainer`` calls on
                           the same precomputed inputs
    ``floor_forward``      a lower bound, not a way to attribute: the forward passes alone
                           (no gradient) over the same interpolation points, on our
                           prepared models (batch norms folded, channels-last), in passes
                           of the same size. Any method that evaluates the gradient at the
                           same ``nsamples`` points pays at least this, so
                           ``paper_nofig / floor_forward`` bounds every speed-up that keeps
                           shap's sampling and float32 arithmetic
    ``floor_forward_paper`` the same forward passes on the unmodified models, contiguous
                           layout (what one forward costs in the paper's way)

    ``--configs BACKBONE:SIZE ...`` picks the models: the paper's backbone
    (``legacy_xception``; the paper runs 299 px) and the demo's (``resnet10t`` at 128).
(2) Attribution error against a 4,000-evaluation estimate as a function of the number
    of gradient evaluations, for shap's sampling, iid sampling and the stratified scheme.
(3) Wall time of the same extraction on a Dask LocalCluster with 2 worker processes
    against 1 (one thread each; the cluster ``--workers`` starts). Reported with and
    without cluster start-up (and the first shard's warm-up), for every shard size of
    ``--dask-shard-size`` (the job's default is 64 samples per shard; shards never mix
    groups, so few large shards balance badly over two workers).
(4) Peak memory of an extraction over 64 and over 512 samples with a real timm
    backbone (``--backbone``/``--size``), each in a fresh process: peak resident set
    (``VmHWM`` of /proc/self/status, and ``ru_maxrss``), which counts torch's tensors
    (tracemalloc does not), and the same process's peak before the extraction (models
    built, imports done) for comparison.

Timings on a shared machine are noisy: figures are ratios of measurements taken in
the same run, and each line states the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _models(backbone: str, size: int):
    if backbone == "tiny":  # cache.testing.TinyDetector: two 3x3 convolutions, width 16
        from cache.testing import TinyDetector

        return TinyDetector("defocus", size, 16, 0).eval(), TinyDetector("rgb", size, 16, 1).eval()
    from detector.models import build_detector

    d = build_detector("defocus", backbone=backbone, image_size=size).eval()
    r = build_detector("rgb", backbone=backbone, image_size=size).eval()
    return d, r


def _dataset(n: int, size: int):
    from detector.data import SyntheticDoF

    return SyntheticDoF(n, size=max(32, size), seed=0)


_WAYS = (
    "ours",
    "paper_nofig",
    "paper",
    "ours_stratified66",
    "attr_ours",
    "attr_shap",
    "floor_forward",
    "floor_forward_paper",
)


class _Logit:
    """``model.classify`` as the torch module shap.GradientExplainer wants: ``(B, 1)``."""

    def __new__(cls, model):
        import torch

        class Logit(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x):
                return self.m.classify(x).reshape(len(x), 1)

        return Logit(model)


def _figure1_way(way: str, n_images: int, backbone: str, size: int, nsamples: int):
    """Seconds per image of one way of figure 1, measured in this (fresh) process.

    See the module docstring for the ways. The ``attr_*`` ways return
    ``{"total", "defocus", "rgb"}`` (seconds per image, each model's share). The
    images are generated before timing (in memory for every way); a warm-up call
    of each way runs untimed first.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap
    import torch

    from cache.extract import ExtractConfig, extract

    if way not in _WAYS:
        raise ValueError(f"unknown way {way!r}; one of {_WAYS}")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    d, r = _models(backbone, size)
    ds = _Materialized(_dataset(n_images + 20, size))
    bg_ids = [i for i in range(20) if ds.samples[i].label == 0][:10]
    bg = torch.stack([ds[i]["image"] for i in bg_ids])
    images = torch.stack([ds[i]["image"] for i in range(20, 20 + n_images)])
    work = _Subset(ds, range(20, 20 + n_images))
    if way in ("ours", "ours_stratified66"):
        sampling = {"nsamples": 66, "sampling": "stratified"} if way != "ours" else {}
        cfg = ExtractConfig(
            **{"nsamples": nsamples, **sampling}, n_background=10, shard_size=16, batch_size=16
        )
        with tempfile.TemporaryDirectory() as tmp:
            warm = ExtractConfig(nsamples=8, n_background=2, shard_size=16)
            extract(_Subset(ds, range(18, 20)), Path(tmp) / "w", d, r, warm, bg, progress=False)
            t0 = time.perf_counter()
            extract(work, Path(tmp) / "c", d, r, cfg, background=bg, progress=False)
            return (time.perf_counter() - t0) / n_images

    if way.startswith("floor"):
        return _floor_forward(way, d, r, images, bg, work, nsamples)

    if way.startswith("attr"):
        # attribution compute alone, on the models' inputs computed beforehand
        inputs, bgs = _model_inputs(d, r, images, bg)
        ids = [f"img{i}" for i in range(n_images)]
        if way == "attr_ours":
            from cache.extract import _Job

            cfg = ExtractConfig(nsamples=nsamples, n_background=10)
            # only the job's explainer set-up is used (nothing is written)
            job = _Job(work, ROOT, d, r, cfg, bgs, [], "cpu", 1)
            job.prepare()  # folds batch norms, channels-last, builds the explainers
            for kind in ("defocus", "rgb"):  # warm-up (first call probes the stem)
                job._explainers[kind].attribute(inputs[kind][0], ["warm"])
            per_kind = {}
            for kind in ("defocus", "rgb"):
                t0 = time.perf_counter()
                for x, sid in zip(inputs[kind], ids, strict=True):
                    job._explainers[kind].attribute(x, [sid])
                per_kind[kind] = (time.perf_counter() - t0) / n_images
            return {"total": per_kind["defocus"] + per_kind["rgb"], **per_kind}
        explainers = {k: shap.GradientExplainer(_Logit(m), bgs[k]) for k, m in
                      (("defocus", d), ("rgb", r))}  # fmt: skip
        for kind in ("defocus", "rgb"):
            explainers[kind](inputs[kind][0], nsamples=8)
        per_kind = {}
        for kind in ("defocus", "rgb"):
            t0 = time.perf_counter()
            for x in inputs[kind]:
                explainers[kind](x, nsamples=nsamples)
            per_kind[kind] = (time.perf_counter() - t0) / n_images
        return {"total": per_kind["defocus"] + per_kind["rgb"], **per_kind}

    figure = way == "paper"
    bg_maps = d.defocus_input(bg)
    e_def = shap.GradientExplainer(_Logit(d), bg_maps)
    e_rgb = shap.GradientExplainer(_Logit(r), r.model_input(bg))
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up, not timed
        e_rgb(r.model_input(bg[:1]), nsamples=8)
        fig = plt.figure()
        fig.savefig(Path(tmp) / "w.png")
        plt.close(fig)
        t0 = time.perf_counter()
        # the "Shapley Save" notebook: maps per batch, then per image one explainer call
        # per model (explainer(x).values, as the notebook does), values kept in lists
        dmaps, dshaps, rshaps = [], [], []
        for start in range(0, n_images, 16):
            batch = images[start : start + 16]
            maps = d.defocus_input(batch)
            for i in range(len(batch)):
                rgb, dmap = r.model_input(batch[i : i + 1]), maps[i : i + 1]
                ds_ = np.asarray(e_def(dmap, nsamples=nsamples).values[0]).squeeze()
                rs_ = np.asarray(e_rgb(rgb, nsamples=nsamples).values[0]).squeeze()[0]
                dmaps.append(dmap.squeeze().numpy())
                dshaps.append(ds_)
                rshaps.append(rs_)
                if not figure:
                    continue
                rgb_np = rgb[0].permute(1, 2, 0).numpy()
                fig, axes = plt.subplots(1, 3, figsize=(15, 5))
                axes[0].imshow(rgb_np)
                axes[1].imshow(rgb_np, alpha=0.2)
                axes[1].imshow(rs_, cmap="seismic", vmin=-abs(rs_).max(), vmax=abs(rs_).max())
                axes[2].imshow(dmap[0, 0].numpy(), cmap="gray", alpha=0.8)
                axes[2].imshow(ds_, cmap="seismic", vmin=-abs(ds_).max(), vmax=abs(ds_).max())
                for ax in axes:
                    ax.axis("off")
                plt.tight_layout()
                plt.savefig(Path(tmp) / f"{start + i}.png")
                plt.close()
        return (time.perf_counter() - t0) / n_images


def _model_inputs(d, r, images, bg):
    """Each model's input per image (lists of ``(1, C, S, S)``) and its background batch."""
    import torch

    pairs = (("defocus", d), ("rgb", r))
    inputs = {k: [m.model_input(images[i : i + 1]) for i in range(len(images))] for k, m in pairs}
    bgs = {k: torch.cat([m.model_input(bg[i : i + 1]) for i in range(len(bg))]) for k, m in pairs}
    return inputs, bgs


def _floor_forward(way, d, r, images, bg, work, nsamples) -> dict:
    """Seconds per image of the forward passes alone over ``nsamples`` points per model.

    The points are those of the job's ``shap-gradient`` explainer (the interpolations
    ``t x + (1 - t) b`` of its draws), evaluated under ``torch.inference_mode`` in
    passes of the explainer's size, on the prepared models (``floor_forward``) or the
    unmodified ones in contiguous layout (``floor_forward_paper``). Returns
    ``{"total", "defocus", "rgb"}``.
    """
    import torch

    from cache.explainers import _balanced_passes
    from cache.extract import ExtractConfig, _Job
    from cache.sampling import draw_points

    n_images = len(images)
    inputs, bgs = _model_inputs(d, r, images, bg)
    job = _Job(work, ROOT, d, r, ExtractConfig(nsamples=nsamples, n_background=10), bgs, [],
               "cpu", 1)  # fmt: skip
    job.prepare()
    per_kind = {}
    for kind, model in (("defocus", d), ("rgb", r)):
        ex = job._explainers[kind]
        if way == "floor_forward":
            fmt, forward = ex._memory_format(), ex.forward
        else:
            fmt, forward = torch.contiguous_format, _Logit(model)
        background = bgs[kind].contiguous(memory_format=fmt)
        passes = _balanced_passes(nsamples, ex.points_per_pass)

        def run(x, seed, ex=ex, fmt=fmt, forward=forward, background=background, passes=passes):
            index, t, _ = draw_points("shap", nsamples, len(background), seed)
            x = x.contiguous(memory_format=fmt)
            with torch.inference_mode():
                for sl in passes:
                    tt = torch.from_numpy(t[sl]).float().reshape(-1, 1, 1, 1)
                    points = tt * x + (1 - tt) * background[torch.from_numpy(index[sl])]
                    forward(points.contiguous(memory_format=fmt))

        run(inputs[kind][0], 0)  # warm-up
        t0 = time.perf_counter()
        for i, x in enumerate(inputs[kind]):
            run(x, i + 1)
        per_kind[kind] = (time.perf_counter() - t0) / n_images
    return {"total": per_kind["defocus"] + per_kind["rgb"], **per_kind}


def figure1(
    n_images: int, backbone: str, size: int, nsamples: int, rounds: int = 3, ways=_WAYS
) -> dict:
    """Per-image cost of every way of figure 1 (fresh process each, alternating, best of rounds).

    The minimum over ``rounds`` is kept (the least disturbed by other load on a
    shared machine). Ratios are against ``paper_nofig``, the paper's loop without
    its figure.
    """
    times: dict[str, list[float]] = {w: [] for w in ways}
    per_model: dict[str, list[dict]] = {w: [] for w in ways if w.startswith(("attr", "floor"))}
    for _ in range(rounds):
        for way in ways:
            args = [way, str(n_images), backbone, str(size), str(nsamples)]
            proc = subprocess.run(
                [sys.executable, __file__, "--figure1-way", *args],
                capture_output=True,
                text=True,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            if proc.returncode != 0:
                raise RuntimeError(f"figure 1 way {way!r} failed:\n{proc.stderr[-3000:]}")
            value = json.loads(proc.stdout.strip().splitlines()[-1])
            if isinstance(value, dict):
                per_model[way].append(value)
                value = value["total"]
            times[way].append(float(value))
    best = {w: min(v) for w, v in times.items()}
    out = {
        "backbone": backbone,
        "image_size": size,
        "nsamples": nsamples,
        "n_images": n_images,
        "baseline": "paper_nofig: the Shapley Save notebook's loop without its figure",
        "s_per_image": best,
        "rounds": times,
        "load_average_1min": os.getloadavg()[0],
    }
    if "paper_nofig" in best:
        base = best["paper_nofig"]
        for way in ("ours", "ours_stratified66"):
            if way in best:
                out[f"speedup_{way}"] = base / best[way]
    if "attr_ours" in best and "attr_shap" in best:
        out["speedup_attribution_alone"] = best["attr_shap"] / best["attr_ours"]
        for kind in ("defocus", "rgb"):
            shap_s = min(v[kind] for v in per_model["attr_shap"])
            ours_s = min(v[kind] for v in per_model["attr_ours"])
            out[f"attribution_alone_{kind}_s_per_image"] = {"shap": shap_s, "ours": ours_s}
            out[f"speedup_attribution_alone_{kind}"] = shap_s / ours_s
    if "paper" in best and "ours" in best:
        out["speedup_vs_paper_with_figure"] = best["paper"] / best["ours"]
    if "floor_forward" in best and "paper_nofig" in best:
        out["flops_per_image"] = _flops(backbone, size)
        # the gradient at a point costs 2 forwards' multiply-adds (counted): the bound
        # with backward passes as fast per multiply-add as the best forward passes
        ratio = min(v["ratio"] for v in out["flops_per_image"].values())
        floor = best["floor_forward"]
        out["bound_speedup_backward_free"] = best["paper_nofig"] / floor
        out["bound_speedup_at_counted_flops"] = best["paper_nofig"] / (ratio * floor)
        if "ours" in best:
            out["ours_over_forward_floor"] = best["ours"] / floor
    return out


def _flops(backbone: str, size: int) -> dict:
    """Count the FLOPs per image of a forward and of a forward + input gradient.

    ``torch.utils.flop_counter.FlopCounterMode`` on each model of :func:`_models`, 4
    images of ``size`` px, weights frozen (only the input's gradient is computed, as
    the explainers do). Returns ``{kind: {"forward", "forward_backward", "ratio"}}``.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    out = {}
    for kind, model in zip(("defocus", "rgb"), _models(backbone, size), strict=True):
        model.requires_grad_(False)
        x = model.model_input(torch.rand(4, 3, size, size)).detach()
        with FlopCounterMode(display=False) as fwd, torch.no_grad():
            model.classify(x)
        x.requires_grad_(True)
        with FlopCounterMode(display=False) as both:
            torch.autograd.grad(model.classify(x).sum(), x)
        f, fb = fwd.get_total_flops() / 4, both.get_total_flops() / 4
        out[kind] = {"forward": f, "forward_backward": fb, "ratio": fb / f}
    return out


def _print_figure1(r: dict) -> None:
    t = r["s_per_image"]
    parts = [f"(1) {r['backbone']} {r['image_size']}px, shap-gradient {r['nsamples']} "
             f"evaluations, both models, s/image:"]  # fmt: skip
    if "paper_nofig" in t and "ours" in t:
        parts.append(
            f"paper's loop without figure (baseline) {t['paper_nofig']:.3f}, "
            f"ours {t['ours']:.3f} -> {r['speedup_ours']:.2f}x"
        )
    if "ours_stratified66" in t and "paper_nofig" in t:
        parts.append(
            f"ours stratified@66 {t['ours_stratified66']:.3f} -> "
            f"{r['speedup_ours_stratified66']:.2f}x"
        )
    if "attr_ours" in t and "attr_shap" in t:
        parts.append(
            f"attribution alone: shap {t['attr_shap']:.3f}, ours {t['attr_ours']:.3f} -> "
            f"{r['speedup_attribution_alone']:.2f}x (defocus model "
            f"{r['speedup_attribution_alone_defocus']:.2f}x, RGB model "
            f"{r['speedup_attribution_alone_rgb']:.2f}x)"
        )
    if "bound_speedup_backward_free" in r:
        fl = r["flops_per_image"]
        parts.append(
            f"forward passes alone over the same points {t['floor_forward']:.3f} "
            f"(unmodified models {t.get('floor_forward_paper', float('nan')):.3f}); "
            f"a gradient counts {min(v['ratio'] for v in fl.values()):.2f}x a forward's "
            f"FLOPs -> bound on any speed-up keeping these {r['nsamples']} points in float32: "
            f"{r['bound_speedup_at_counted_flops']:.2f}x at the forward's FLOP rate, "
            f"{r['bound_speedup_backward_free']:.2f}x were the backward free; ours = "
            f"{r['ours_over_forward_floor']:.2f}x the forward floor"
        )
    if "paper" in t and "ours" in t:
        parts.append(
            f"[extra, not like for like: the paper's loop WITH its matplotlib figure "
            f"{t['paper']:.3f} -> ours {r['speedup_vs_paper_with_figure']:.2f}x]"
        )
    parts.append(f"load average {r['load_average_1min']:.1f}")
    print(parts[0] + " " + "; ".join(parts[1:]), flush=True)


class _Materialized:
    """A dataset whose items are computed once, up front (images in memory)."""

    def __init__(self, ds):
        self.ds = ds
        self.items = [ds[i] for i in range(len(ds))]
        self.samples = ds.samples
        self.has_masks = getattr(ds, "has_masks", False)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def describe(self):
        return {"materialized": self.ds.describe()}


class _Subset:
    """Items ``indices`` of a dataset, with its ``.samples`` and ``has_masks``."""

    def __init__(self, ds, indices):
        self.ds, self.indices = ds, list(indices)
        self.samples = [ds.samples[i] for i in self.indices]
        self.has_masks = getattr(ds, "has_masks", False)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.ds[self.indices[i]]

    def describe(self):
        return {"subset_of": self.ds.describe(), "indices": [self.indices[0], self.indices[-1]]}


def figure2(n_images: int, backbone: str, size: int, ref_n: int, grid) -> dict:
    """Relative L2 error vs gradient evaluations, per sampling scheme."""
    import torch

    from cache.explainers import get_explainer

    torch.set_num_threads(1)
    d, _ = _models(backbone, size)
    ds = _dataset(n_images + 20, size)
    bg_img = torch.stack([ds[i]["image"] for i in range(20) if ds.samples[i].label == 0][:10])
    bg = d.defocus_input(bg_img)
    x = d.defocus_input(torch.stack([ds[i]["image"] for i in range(20, 20 + n_images)]))
    ids = [f"img{i}" for i in range(n_images)]
    refs = {}
    for scheme in ("stratified", "shap"):
        e = get_explainer(
            "shap-gradient", d.classify, bg, nsamples=ref_n, sampling=scheme, seed=12345
        )
        refs[scheme] = e.attribute(x, ids).double()
    ref_gap = float(
        ((refs["shap"] - refs["stratified"]).flatten(1).norm(dim=1)
         / refs["stratified"].flatten(1).norm(dim=1)).mean()
    )  # fmt: skip
    curves: dict[str, dict[int, float]] = {}
    for scheme in ("shap", "iid", "stratified"):
        curves[scheme] = {}
        for n in grid:
            errs = []
            for seed in range(3):
                e = get_explainer(
                    "shap-gradient", d.classify, bg, nsamples=n, sampling=scheme, seed=seed
                )
                a = e.attribute(x, ids).double()
                ref = refs["stratified"]
                errs.append(((a - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)).mean())
            curves[scheme][n] = float(np.mean([float(v) for v in errs]))
    target = curves["shap"][200]
    enough = [n for n in grid if curves["stratified"][n] <= target]
    return {
        "backbone": backbone,
        "image_size": size,
        "n_images": n_images,
        "reference": f"stratified, {ref_n} evaluations",
        "reference_gap_shap_vs_stratified": ref_gap,
        "curves": curves,
        "shap_error_at_200": target,
        "stratified_evals_for_same_error": min(enough) if enough else None,
        "eval_ratio": (min(enough) / 200) if enough else None,
    }


def _cpu_seconds() -> float:
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system


def _warm() -> None:
    """Import what the extraction tasks need, so that import time is not measured."""
    import torch  # noqa: F401

    import cache.extract  # noqa: F401
    import detector.models  # noqa: F401
    from detector.data.synthetic import photo_bank

    photo_bank()


def figure3(n_images: int, backbone: str, size: int, nsamples: int, shard_size: int = 8) -> dict:
    """Dask LocalCluster: 2 single-thread workers vs 1, plus the CPU the workers obtained."""
    import torch
    from dask.distributed import Client

    from cache.distributed import local_cluster
    from cache.extract import ExtractConfig, extract, plan_shards

    d, r = _models(backbone, size)
    ds = _dataset(n_images + 20, size)
    bg = torch.stack([ds[i]["image"] for i in range(20) if ds.samples[i].label == 0][:10])
    work = _Subset(ds, range(20, 20 + n_images))
    cfg = ExtractConfig(
        nsamples=nsamples, n_background=10, shard_size=shard_size, batch_size=min(shard_size, 16)
    )
    out = {}
    for workers in (1, 2):
        t0 = time.perf_counter()
        # the cluster `--workers N` starts (cache.distributed.local_cluster)
        with local_cluster(workers) as cluster, Client(cluster) as client:
            client.run(_warm)
            with tempfile.TemporaryDirectory() as tmp:  # first use in the workers
                warm = _Subset(ds, range(20, 20 + 4 * workers))
                wcfg = ExtractConfig(nsamples=8, n_background=10, shard_size=1, batch_size=1)
                extract(warm, Path(tmp) / "w", d, r, wcfg, bg,
                        scheduler=cluster.scheduler_address, progress=False)  # fmt: skip
            startup = time.perf_counter() - t0
            cpu0 = sum(client.run(_cpu_seconds).values())
            with tempfile.TemporaryDirectory() as tmp:
                t1 = time.perf_counter()
                res = extract(
                    work, Path(tmp) / "c", d, r, cfg, bg, scheduler=cluster.scheduler_address,
                    progress=False,
                )  # fmt: skip
                wall = time.perf_counter() - t1
                assert res.cache.n_samples() == n_images
            cpu = sum(client.run(_cpu_seconds).values()) - cpu0
        out[workers] = {
            "wall_s": wall,
            "startup_s": startup,
            "worker_cpu_s": cpu,
            "cores_obtained": cpu / wall,
        }
    return {
        "n_images": n_images,
        "nsamples": nsamples,
        "backbone": backbone,
        "image_size": size,
        "shard_size": shard_size,
        "shard_sizes_planned": [len(t.indices) for t in plan_shards(work, shard_size)],
        "workers": out,
        "speedup": out[1]["wall_s"] / out[2]["wall_s"],
        # the speedup divided by the ratio of CPU the OS gave the workers: 1.0 = perfect
        # scaling of the CPU actually obtained (other users' load caps what is obtained)
        "scaling_efficiency_per_cpu_obtained": (out[1]["wall_s"] / out[2]["wall_s"])
        / (out[2]["cores_obtained"] / out[1]["cores_obtained"]),
        "speedup_with_startup_and_warmup": (out[1]["wall_s"] + out[1]["startup_s"])
        / (out[2]["wall_s"] + out[2]["startup_s"]),
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
    }


_MEM_SCRIPT = """
import resource, sys, tempfile, time, torch
from pathlib import Path
torch.set_num_threads(1)
from cache.extract import ExtractConfig, extract
from detector.data import SyntheticDoF
from detector.models import build_detector

def vm_hwm_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return -1

n, backbone, size, nsamples = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
d = build_detector("defocus", backbone=backbone, image_size=size).eval()
r = build_detector("rgb", backbone=backbone, image_size=size).eval()
ds = SyntheticDoF(n + 20, size=size, seed=0)
bg = torch.stack([ds[i]["image"] for i in range(20) if ds.samples[i].label == 0][:10])
with torch.no_grad():
    d.classify(d.model_input(bg[:2])); r.classify(r.model_input(bg[:2]))
before = vm_hwm_kib()
cfg = ExtractConfig(nsamples=nsamples, n_background=10)  # the job's default shard size (64)


class Part:
    def __init__(self, ds, lo, hi):
        self.ds, self.idx = ds, list(range(lo, hi))
        self.samples = [ds.samples[i] for i in self.idx]
        self.has_masks = ds.has_masks

    def __len__(self):
        return len(self.idx)

    def __getitem__(self, i):
        return self.ds[self.idx[i]]

    def describe(self):
        return {"part": [self.idx[0], self.idx[-1]]}


with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    c = extract(Part(ds, 20, 20 + n), Path(tmp) / "c", d, r, cfg, background=bg,
                progress=False).cache
    dt = time.perf_counter() - t0
    assert c.n_samples() == n
    size_b = sum(f.stat().st_size for f in (Path(tmp) / "c" / "shards").iterdir())
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(vm_hwm_kib(), rss, before, dt, size_b)
"""


def figure4(backbone: str, size: int, nsamples: int, sizes=(64, 512)) -> dict:
    """Peak RSS of extraction runs over different sample counts, each in a new process."""
    out: dict = {"backbone": backbone, "image_size": size, "nsamples": nsamples}
    for n in sizes:
        proc = subprocess.run(
            [sys.executable, "-c", _MEM_SCRIPT, str(n), backbone, str(size), str(nsamples)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        if proc.returncode != 0:
            raise RuntimeError(f"figure 4 with {n} samples failed:\n{proc.stderr[-3000:]}")
        hwm, maxrss, before, seconds, nbytes = proc.stdout.split()
        out[n] = {
            "peak_rss_mib": int(hwm) / 1024,
            "ru_maxrss_mib": int(maxrss) / 1024,
            "peak_rss_before_extraction_mib": int(before) / 1024,
            "seconds": float(seconds),
            "cache_mib": int(nbytes) / 2**20,
        }
    a, b = sizes
    out["ratio"] = out[b]["peak_rss_mib"] / out[a]["peak_rss_mib"]
    out["load_average_1min"] = os.getloadavg()[0]
    return out


def _config(text: str) -> tuple[str, int]:
    backbone, _, size = text.partition(":")
    if not backbone or not size.isdigit():
        raise argparse.ArgumentTypeError(f"expected BACKBONE:SIZE, got {text!r}")
    return backbone, int(size)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=int, choices=[1, 2, 3, 4], action="append")
    parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke run")
    parser.add_argument(
        "--configs",
        type=_config,
        nargs="+",
        default=[("legacy_xception", 128), ("resnet10t", 128)],
        help="figure 1: BACKBONE:SIZE pairs (default: the paper's legacy_xception and the "
        "demo's resnet10t, both at 128 px)",
    )
    parser.add_argument("--images", type=int, default=16, help="figure 1: images per way (16)")
    parser.add_argument("--rounds", type=int, default=3, help="figure 1: rounds, best kept (3)")
    parser.add_argument(
        "--ways",
        nargs="+",
        choices=_WAYS,
        default=list(_WAYS),
        help="figure 1: the ways to time (default: all; paper_nofig and ours are needed)",
    )
    parser.add_argument("--nsamples", type=int, default=200, help="gradient evaluations (200)")
    parser.add_argument(
        "--backbone",
        default="resnet10t",
        help="figures 2-4: timm backbone of detector.models, or 'tiny' (cache.testing)",
    )
    parser.add_argument("--size", type=int, default=64, help="figures 2-4: image size (64)")
    parser.add_argument(
        "--dask-images", type=int, default=128, help="images extracted in figure 3 (128)"
    )
    parser.add_argument(
        "--dask-shard-size",
        type=int,
        nargs="+",
        default=[64, 8],
        help="samples per shard (one Dask task) in figure 3 (default: 64, the job's "
        "default, and 8)",
    )
    parser.add_argument(
        "--memory-nsamples", type=int, default=50, help="figure 4: gradient evaluations (50)"
    )
    parser.add_argument("--out", default=str(ROOT / "runs" / "benchmarks"))
    parser.add_argument(
        "--figure1-way",
        nargs=5,
        metavar=("WAY", "N", "BACKBONE", "SIZE", "NSAMPLES"),
        help="internal: time one way of figure 1 in this process and print s/image",
    )
    args = parser.parse_args(argv)
    if args.figure1_way:
        way, n, backbone, size, nsamples = args.figure1_way
        print(json.dumps(_figure1_way(way, int(n), backbone, int(size), int(nsamples))))
        return 0
    from safeio import atomic_write_json, check_output_dir

    out = check_output_dir(args.out)
    which = args.only or [1, 2, 3, 4]
    q = args.quick
    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared), "
        f"python {platform.python_version()}",
        "quick": q,
    }
    if 1 in which:
        results["1_per_image_cost"] = []
        for backbone, size in args.configs:
            r = figure1(
                2 if q else args.images,
                backbone,
                32 if q else size,
                8 if q else args.nsamples,
                rounds=1 if q else args.rounds,
                ways=tuple(args.ways),
            )
            results["1_per_image_cost"].append(r)
            _print_figure1(r)
    if 2 in which:
        grid = [8, 16, 24, 32, 50, 66, 100, 200] if not q else [10, 30, 66, 200]
        r = figure2(4 if q else 8, args.backbone, args.size, 1000 if q else 4000, grid)
        results["2_error_vs_evaluations"] = r
        print("(2) relative L2 error vs gradient evaluations (reference: " + r["reference"] + ")")
        print("    n     " + "  ".join(f"{s:>10}" for s in r["curves"]))
        for n in grid:
            print(f"    {n:<5} " + "  ".join(f"{r['curves'][s][n]:>10.4f}" for s in r["curves"]))
        print(
            f"    stratified matches shap@200 ({r['shap_error_at_200']:.4f}) with "
            f"{r['stratified_evals_for_same_error']} evaluations "
            f"(ratio {r['eval_ratio']}); shap-vs-stratified reference gap "
            f"{r['reference_gap_shap_vs_stratified']:.4f}",
            flush=True,
        )
    if 3 in which:
        results["3_dask_workers"] = []
        for shard_size in [2] if q else args.dask_shard_size:
            r = figure3(
                8 if q else args.dask_images,
                args.backbone,
                32 if q else args.size,
                8 if q else args.nsamples,
                shard_size=shard_size,
            )
            results["3_dask_workers"].append(r)
            w = r["workers"]
            print(
                f"(3) Dask LocalCluster, {r['n_images']} images ({r['backbone']} "
                f"{r['image_size']}px), shards of {r['shard_size']} "
                f"(sizes {r['shard_sizes_planned']}): 1 worker {w[1]['wall_s']:.1f} s, "
                f"2 workers {w[2]['wall_s']:.1f} s -> {r['speedup']:.2f}x without start-up; "
                f"with cluster start-up and warm-up {w[1]['wall_s'] + w[1]['startup_s']:.1f} s "
                f"vs {w[2]['wall_s'] + w[2]['startup_s']:.1f} s -> "
                f"{r['speedup_with_startup_and_warmup']:.2f}x; cores obtained "
                f"{w[1]['cores_obtained']:.2f} / {w[2]['cores_obtained']:.2f}; "
                f"load average {r['load_average_1min']:.1f} on {r['cpus']} cores",
                flush=True,
            )
    if 4 in which:
        r = figure4(
            args.backbone,
            32 if q else args.size,
            4 if q else args.memory_nsamples,
            (8, 32) if q else (64, 512),
        )
        results["4_peak_memory"] = r
        keys = [k for k in r if isinstance(k, int)]
        print(
            f"(4) peak RSS (VmHWM, fresh process), {r['backbone']} {r['image_size']}px, "
            f"{r['nsamples']} evaluations: "
            + ", ".join(
                f"{k} samples {r[k]['peak_rss_mib']:.0f} MiB "
                f"({r[k]['peak_rss_before_extraction_mib']:.0f} MiB before extracting)"
                for k in keys
            )
            + f" -> ratio {r['ratio']:.3f} (cache sizes "
            + ", ".join(f"{r[k]['cache_mib']:.1f} MiB" for k in keys)
            + f"); load average {r['load_average_1min']:.1f}",
            flush=True,
        )
    path = atomic_write_json(out / "extract_throughput.json", results, default=str)
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
