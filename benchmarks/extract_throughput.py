"""Speed and memory of the cached-inference stage: the four figures of the README.

Run:  .venv/bin/python benchmarks/extract_throughput.py            (all four, ~5-10 min)
      .venv/bin/python benchmarks/extract_throughput.py --only 2   (one figure)
      .venv/bin/python benchmarks/extract_throughput.py --quick    (smaller, for a smoke run)
      .venv/bin/python benchmarks/extract_throughput.py --only 3 --dask-images 192

(1) per-image cost of ``shap-gradient`` at 200 samples, our extraction job
    against the paper's way (one ``shap.GradientExplainer`` call per image
    for each model plus a matplotlib figure per image, as its "Shapley Save"
    notebook does), same models, same images, CPU, one torch thread each;
    every way in its own fresh process, alternating, best of three rounds.
(2) attribution error against a 4,000-sample estimate as a function of the
    number of gradient evaluations, for shap's sampling, iid sampling and the
    stratified scheme (background stratification + stratified interpolation
    points); how many evaluations the stratified scheme needs to match shap's
    error at 200.
(3) wall time of the same extraction on a Dask LocalCluster with 2 worker
    processes against 1 (one thread each; the cluster ``--workers`` starts,
    ``cache.distributed.local_cluster``), cluster start-up included and not;
    ``--dask-images 192`` for the README's figure.
(4) peak resident memory of an extraction over 64 and over 512 samples (each
    in a fresh process).

Timings on a shared machine are noisy: every figure is a ratio of two
measurements taken in the same run. Results are printed and written to
``runs/benchmarks/extract_throughput.json``.
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


_WAYS = ("ours", "paper", "paper_nofig", "ours_stratified66")


def _figure1_way(way: str, n_images: int, backbone: str, size: int, nsamples: int) -> float:
    """Seconds per image of one way of figure 1, measured in this (fresh) process.

    ``ours``: ``extract`` end to end (maps, logits, features, both attributions,
    shards written); ``ours_stratified66``: the same with ``sampling="stratified"``
    at 66 evaluations; ``paper``: per image one ``shap.GradientExplainer`` call per
    model and a 3-panel figure saved as PNG (the "Shapley Save" notebook);
    ``paper_nofig``: the calls without the figure. The images are generated
    before timing (in memory for every way).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap
    import torch

    from cache.explainers import _Forward
    from cache.extract import ExtractConfig, extract

    torch.set_num_threads(1)
    torch.manual_seed(0)
    d, r = _models(backbone, size)
    ds = _Materialized(_dataset(n_images + 20, size))
    bg_ids = [i for i in range(20) if ds.samples[i].label == 0][:10]
    bg = torch.stack([ds[i]["image"] for i in bg_ids])
    images = torch.stack([ds[i]["image"] for i in range(20, 20 + n_images)])
    work = _Subset(ds, range(20, 20 + n_images))
    if way.startswith("ours"):
        # ours_stratified66: the scheme at the evaluations that match shap@200's error
        sampling = {"nsamples": 66, "sampling": "stratified"} if way != "ours" else {}
        cfg = ExtractConfig(
            **{"nsamples": nsamples, **sampling}, n_background=10, shard_size=16, batch_size=16
        )
        with tempfile.TemporaryDirectory() as tmp:
            # warm-up (imports, first-call allocations), not timed
            warm = ExtractConfig(nsamples=8, n_background=2, shard_size=16)
            extract(_Subset(ds, range(18, 20)), Path(tmp) / "w", d, r, warm, bg, progress=False)
            t0 = time.perf_counter()
            extract(work, Path(tmp) / "c", d, r, cfg, background=bg, progress=False)
            return (time.perf_counter() - t0) / n_images

    if way not in ("paper", "paper_nofig"):
        raise ValueError(f"unknown way {way!r}; one of {_WAYS}")
    figure = way != "paper_nofig"
    bg_maps = d.defocus_input(bg)
    e_def = shap.GradientExplainer(_Forward(d.classify, keepdim=True), bg_maps)
    e_rgb = shap.GradientExplainer(_Forward(r.classify, keepdim=True), r.model_input(bg))
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up, not timed
        e_rgb.shap_values(r.model_input(bg[:1]), nsamples=8)
        fig = plt.figure()
        fig.savefig(Path(tmp) / "w.png")
        plt.close(fig)
        t0 = time.perf_counter()
        # the "Shapley Save" notebook: maps per batch, then per image one explainer call
        # per model and a 3-panel figure saved as PNG
        for start in range(0, n_images, 16):
            batch = images[start : start + 16]
            maps = d.defocus_input(batch)
            for i in range(len(batch)):
                rgb, dmap = r.model_input(batch[i : i + 1]), maps[i : i + 1]
                ds_ = np.asarray(e_def.shap_values(dmap, nsamples=nsamples)).squeeze()
                rs_ = np.asarray(e_rgb.shap_values(rgb, nsamples=nsamples)).squeeze()[0]
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


def figure1(n_images: int, backbone: str, size: int, nsamples: int, rounds: int = 3) -> dict:
    """Per-image cost: our job vs the paper's per-image explainer calls + figure.

    Every measurement runs in a fresh process (as each way would be run), the
    ways alternate, and the minimum over ``rounds`` is kept (the least
    disturbed by other load on a shared machine).
    """
    times: dict[str, list[float]] = {w: [] for w in _WAYS}
    for _ in range(rounds):
        for way in _WAYS:
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
            times[way].append(float(proc.stdout.strip().splitlines()[-1]))
    best = {w: min(v) for w, v in times.items()}
    ours, paper = best["ours"], best["paper"]
    return {
        "backbone": backbone,
        "image_size": size,
        "nsamples": nsamples,
        "n_images": n_images,
        "ours_s_per_image": ours,
        "paper_s_per_image": paper,
        "paper_without_figure_s_per_image": best["paper_nofig"],
        "speedup": paper / ours,
        "speedup_without_figure": best["paper_nofig"] / ours,
        "ours_stratified66_s_per_image": best["ours_stratified66"],
        "speedup_stratified66": paper / best["ours_stratified66"],
        "rounds": times,
        "load_average_1min": os.getloadavg()[0],
    }


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
    from cache.extract import ExtractConfig, extract

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
            with tempfile.TemporaryDirectory() as tmp:  # first use in the workers, not timed
                warm = _Subset(ds, range(20, 20 + shard_size * workers))
                extract(warm, Path(tmp) / "w", d, r, cfg, bg,
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
from cache.testing import TinyDataset, TinyDetector
n = int(sys.argv[1])
d, r = TinyDetector("defocus", 64, 8, 0).eval(), TinyDetector("rgb", 64, 8, 1).eval()
cfg = ExtractConfig(nsamples=16, n_background=4, shard_size=32, batch_size=8)
with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    c = extract(TinyDataset(n, 64), Path(tmp) / "c", d, r, cfg, progress=False).cache
    dt = time.perf_counter() - t0
    assert c.n_samples() == n
    size = sum(f.stat().st_size for f in (Path(tmp) / "c" / "shards").iterdir())
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, dt, size)
"""


def figure4(sizes=(64, 512)) -> dict:
    """Peak RSS of extraction runs over different sample counts, each in a new process."""
    out = {}
    for n in sizes:
        proc = subprocess.run(
            [sys.executable, "-c", _MEM_SCRIPT, str(n)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=True,
        )
        rss_kb, seconds, nbytes = proc.stdout.split()
        out[n] = {
            "peak_rss_mib": int(rss_kb) / 1024,
            "seconds": float(seconds),
            "cache_mib": int(nbytes) / 2**20,
        }
    a, b = sizes
    out["ratio"] = out[b]["peak_rss_mib"] / out[a]["peak_rss_mib"]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=int, choices=[1, 2, 3, 4], action="append")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--backbone",
        default="mobilenetv3_small_050",
        help="timm backbone of detector.models, or 'tiny' (cache.testing.TinyDetector)",
    )
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument(
        "--dask-images", type=int, default=24, help="images extracted in figure 3 (default 24)"
    )
    parser.add_argument(
        "--dask-shard-size",
        type=int,
        default=8,
        help="samples per shard (one Dask task) in figure 3 (default 8; the job's default is 64)",
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
        print(_figure1_way(way, int(n), backbone, int(size), int(nsamples)))
        return 0
    which = args.only or [1, 2, 3, 4]
    q = args.quick
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared), "
        f"python {platform.python_version()}",
    }
    if 1 in which:
        r = figure1(4 if q else 32, args.backbone, args.size, 200)
        results["1_per_image_cost"] = r
        print(
            f"(1) per image, shap-gradient 200 samples, both models ({r['backbone']} "
            f"{r['image_size']}px): paper's way {r['paper_s_per_image']:.3f} s "
            f"(without figure {r['paper_without_figure_s_per_image']:.3f} s), ours "
            f"{r['ours_s_per_image']:.3f} s -> {r['speedup']:.2f}x "
            f"({r['speedup_without_figure']:.2f}x against the paper's calls without figure); "
            f"ours with sampling=stratified at 66 evaluations "
            f"{r['ours_stratified66_s_per_image']:.3f} s -> {r['speedup_stratified66']:.2f}x; "
            f"load average {r['load_average_1min']:.1f}",
            flush=True,
        )
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
        r = figure3(
            8 if q else args.dask_images,
            args.backbone,
            args.size,
            100 if q else 200,
            shard_size=2 if q else args.dask_shard_size,
        )
        results["3_dask_workers"] = r
        w = r["workers"]
        print(
            f"(3) Dask LocalCluster, {r['n_images']} images: 1 worker {w[1]['wall_s']:.1f} s "
            f"({w[1]['cores_obtained']:.2f} cores obtained), 2 workers {w[2]['wall_s']:.1f} s "
            f"({w[2]['cores_obtained']:.2f} cores obtained) -> {r['speedup']:.2f}x "
            f"({r['speedup_with_startup_and_warmup']:.2f}x with cluster start-up and warm-up; "
            f"scaling efficiency per CPU obtained {r['scaling_efficiency_per_cpu_obtained']:.2f}); "
            f"load average {r['load_average_1min']:.1f} on {r['cpus']} cores",
            flush=True,
        )
    if 4 in which:
        r = figure4((64, 512) if not q else (32, 128))
        results["4_peak_memory"] = r
        keys = [k for k in r if k != "ratio"]
        print(
            "(4) peak RSS: "
            + ", ".join(f"{k} samples {r[k]['peak_rss_mib']:.0f} MiB" for k in keys)
            + f" -> ratio {r['ratio']:.3f} (cache sizes "
            + ", ".join(f"{r[k]['cache_mib']:.1f} MiB" for k in keys)
            + ")",
            flush=True,
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "extract_throughput.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"written {out / 'extract_throughput.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
