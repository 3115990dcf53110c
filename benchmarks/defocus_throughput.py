"""Throughput and memory of the reference mode against the paper's own code, like for like.

Usage::

    git --git-dir=PAPER_MIRROR archive HEAD | tar -x -C /tmp/paper-code   # a checkout, outside
    .venv/bin/python benchmarks/defocus_throughput.py --paper-code /tmp/paper-code
        [--batch 32] [--threads 2] [--rounds 5] [--runs 3] [--memory-batch 256] [--accurate]

Three ways compute the same maps of a batch of real 299x299 photo crops:

``paper``
    The paper's own code, imported unmodified from ``--paper-code`` (a
    checkout of irissun9602/Defocus-Deepfake-Detection): ``run_defocus_pipeline``
    of ``model/DefocusNet_backbone_defocus_gt.py``, which calls
    ``util/defocus_processing.py`` (scikit-image Canny per image, four
    single-channel 11x11 ``conv2d``, ``guided_filter_pytorch.GuidedFilter``).
    It needs ``guided-filter-pytorch`` and ``opencv-python-headless`` (the
    ``paper`` extra of this project).
``efficient``
    The same maths with the paper's one obvious inefficiency removed: the
    four 11x11 derivative-of-Gaussian kernels in one ``conv2d`` with four
    output channels; Canny and the guided filter as the paper does them.
``ours``
    ``estimate_defocus(images, DefocusConfig(mode="reference"))``.

The ways run interleaved in one process (the order rotates every round),
``--rounds`` times; the best round of each gives images/s, the ratios and
the CPU time per image (process CPU time, all threads). The load average
(``os.getloadavg``) is printed with every run. The maps are compared
(paper vs ours, efficient vs ours). Memory: each way runs once more in a
fresh Python process on a batch of ``--memory-batch`` images, which reports
its peak resident set size (``getrusage``; it sees torch tensors, numpy
arrays and everything else) before and after the computation.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def real_photos(n: int, size: int = 299, seed: int = 0) -> torch.Tensor:
    """Random ``size`` x ``size`` crops of the photos shipped with skimage/sklearn.

    Returns
    -------
    torch.Tensor of shape (n, 3, size, size), float32 in [0, 1]
    """
    from skimage import data
    from sklearn.datasets import load_sample_images

    pool = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    pool += list(load_sample_images().images)
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        img = pool[i % len(pool)]
        y = rng.integers(0, img.shape[0] - size + 1)
        x = rng.integers(0, img.shape[1] - size + 1)
        out[i] = img[y : y + size, x : x + size]
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().contiguous() / 255.0


# ---- the ways ------------------------------------------------------------------------


def paper_way(paper_code: str):
    """Return the paper's pipeline imported from its checkout: images -> (dense, sparse, edges)."""
    root = str(Path(paper_code).resolve())
    if not (Path(root) / "util" / "defocus_processing.py").is_file():
        raise SystemExit(f"--paper-code {paper_code}: no util/defocus_processing.py there")
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        from model.DefocusNet_backbone_defocus_gt import run_defocus_pipeline
    except ImportError as exc:
        raise SystemExit(
            f"cannot import the paper's code from {root}: {exc} "
            "(pip install guided-filter-pytorch opencv-python-headless)"
        ) from exc
    device = torch.device("cpu")

    def run(images):
        with torch.no_grad():
            dense, sparse, edges, _ = run_defocus_pipeline(images, device)
        return dense, sparse, edges

    return run


def efficient_way(paper_code: str):
    """Return the paper's maths with the four DoG convolutions as one 4-channel ``conv2d``."""
    paper_way(paper_code)  # puts the checkout on sys.path and checks it imports
    from guided_filter_pytorch.guided_filter import GuidedFilter
    from util.defocus_processing import compute_edge_map

    c = torch.arange(-5, 6, dtype=torch.float32)
    x, y = torch.meshgrid(c, c, indexing="ij")
    kernels = []
    for s in (1.5, 2.0):
        g = torch.exp(-(x**2 + y**2) / (2 * s**2))
        kernels += [-x / (2 * math.pi * s**4) * g, -y / (2 * math.pi * s**4) * g]
    weight = torch.stack(kernels)[:, None]  # (4, 1, 11, 11)
    guided = GuidedFilter(7, 1e-2)
    device = torch.device("cpu")

    def run(images):
        with torch.no_grad():
            gray = images.mean(dim=1, keepdim=True)
            edges = compute_edge_map(gray, device)
            size = (299, 299)
            gray = F.interpolate(gray, size=size, mode="bilinear", align_corners=False)
            edges = F.interpolate(edges, size=size, mode="bilinear", align_corners=False)
            g = F.conv2d(gray, weight, padding=5)
            m1 = torch.sqrt(g[:, 0:1] ** 2 + g[:, 1:2] ** 2)
            m2 = torch.sqrt(g[:, 2:3] ** 2 + g[:, 3:4] ** 2)
            ratio = m1 / (m2 + 1e-8) * (edges / (edges.max() + 1e-8))
            val = torch.clamp((ratio**2 * 1.5**2 - 2.0**2) / (1 - ratio**2 + 1e-8), min=0)
            sparse = torch.nan_to_num(torch.sqrt(val), nan=0.0).clamp(max=5)
            guide = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
            dense = guided(guide.mean(dim=1, keepdim=True), sparse)
        return dense, sparse, edges

    return run


def our_way(threads: int, mode: str = "reference"):
    from detector.defocus import DefocusConfig, estimate_defocus

    config = DefocusConfig(mode=mode, n_threads=threads)

    def run(images):
        maps = estimate_defocus(images, config)
        return maps.defocus, maps.sparse, maps.edges

    return run


def make_way(name: str, paper_code: str, threads: int):
    if name == "paper":
        return paper_way(paper_code)
    if name == "efficient":
        return efficient_way(paper_code)
    if name == "accurate":
        return our_way(threads, "accurate")
    return our_way(threads)


# ---- measurement ---------------------------------------------------------------------


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def compare(ours, other) -> dict:
    """How far ``other``'s maps are from ours: edges, sparse and dense maps."""
    dense = (ours[0] - other[0]).abs()
    sparse = (ours[1] - other[1]).abs()
    return {
        "edges_equal": float((ours[2] == other[2]).float().mean()),
        "sparse_within_1e-4": float((sparse <= 1e-4).float().mean()),
        "sparse_max": float(sparse.max()),
        "dense_max": float(dense.max()),
        "dense_mean": float(dense.mean()),
    }


def time_ways(ways: dict, images: torch.Tensor, rounds: int) -> dict:
    """Best wall and CPU seconds of each way over ``rounds`` interleaved rounds."""
    names = list(ways)
    for name in names:  # warm-up (numba compilation, allocator, caches)
        ways[name](images)
    best = {name: (math.inf, math.inf) for name in names}
    per_round = []
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        this = {}
        for name in order:
            c0, t0 = time.process_time(), time.perf_counter()
            ways[name](images)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            this[name] = wall
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
        per_round.append(this)
    return {"best": best, "rounds": per_round}


def memory_in_fresh_process(way: str, args) -> dict:
    """Run one way once in a new interpreter; its peak RSS before and after, MiB."""
    cmd = [
        sys.executable,
        __file__,
        "--memory-worker",
        way,
        "--memory-batch",
        str(args.memory_batch),
        "--threads",
        str(args.threads),
    ]
    if args.paper_code:
        cmd += ["--paper-code", args.paper_code]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise OSError(f"no {field} in /proc/self/status")


def memory_worker(args) -> int:
    torch.set_num_threads(args.threads)
    run = make_way(args.memory_worker, args.paper_code, args.threads)
    images = real_photos(args.memory_batch, seed=1)
    run(images[:2])  # imports and compilation happen before the baseline
    try:  # reset the peak (VmHWM) to the current RSS, so that import-time peaks do not hide ours
        Path("/proc/self/clear_refs").write_text("5")
        before, reset = _status_mib("VmRSS"), True
    except OSError:
        before, reset = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, False
    run(images)
    peak = _status_mib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_mib": before, "peak_mib": peak, "reset": reset}))
    return 0


def one_run(k: int, ways: dict, images: torch.Tensor, args) -> dict:
    load_before = _load()
    timing = time_ways(ways, images, args.rounds)
    load_after = _load()
    n = images.shape[0]
    best = timing["best"]
    rate = {name: n / wall for name, (wall, _) in best.items()}
    cpu_ms = {name: 1000.0 * cpu / n for name, (_, cpu) in best.items()}
    print(f"run {k}: load average before {load_before}, after {load_after}")
    for name in ways:
        print(f"  {name:10s} {rate[name]:8.1f} images/s   CPU {cpu_ms[name]:6.2f} ms/image")
    for base in ("paper", "efficient"):
        if base in rate and "ours" in rate:
            rounds = [r[base] / r["ours"] for r in timing["rounds"]]
            print(
                f"  ours vs {base:9s}: {rate['ours'] / rate[base]:6.2f}x images/s (best of "
                f"{args.rounds}; per round {min(rounds):.2f}-{max(rounds):.2f}x), "
                f"{cpu_ms[base] / cpu_ms['ours']:.2f}x less CPU per image"
            )
    return {"load": [load_before, load_after], "rate": rate, "cpu_ms": cpu_ms}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paper-code", help="checkout of irissun9602/Defocus-Deepfake-Detection")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--memory-batch", type=int, default=256)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--accurate", action="store_true", help="also time mode='accurate'")
    parser.add_argument("--memory-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        return memory_worker(args)

    torch.set_num_threads(args.threads)
    images = real_photos(args.batch)
    names = (["paper", "efficient"] if args.paper_code else []) + ["ours"]
    if not args.paper_code:
        print("no --paper-code: timing our reference mode alone")
    ways = {name: make_way(name, args.paper_code, args.threads) for name in names}
    print(
        f"batch of {args.batch} real 299x299 photo crops, {args.threads} threads, "
        f"torch {torch.__version__}, {os.cpu_count()} CPUs"
    )
    ours = ways["ours"](images)
    for name in names[:-1]:
        d = compare(ours, ways[name](images))
        print(
            f"maps, {name} vs ours: edges equal at {100 * d['edges_equal']:.4f}% of pixels; "
            f"sparse within 1e-4 at {100 * d['sparse_within_1e-4']:.4f}% (max "
            f"{d['sparse_max']:.1e}); dense max {d['dense_max']:.1e}, mean {d['dense_mean']:.1e}"
        )
    for k in range(1, args.runs + 1):
        one_run(k, ways, images, args)
    if args.accurate:
        acc = make_way("accurate", args.paper_code, args.threads)
        result = time_ways({"accurate": acc}, images, args.rounds)["best"]["accurate"]
        print(
            f"accurate mode (299x299, {args.threads} threads): "
            f"{args.batch / result[0]:.1f} images/s, CPU {1000 * result[1] / args.batch:.1f} "
            f"ms/image, load average {_load()}"
        )
    if not args.no_memory:
        print(f"peak RSS of a fresh process computing {args.memory_batch} maps:")
        input_mib = args.memory_batch * 3 * 299 * 299 * 4 / 2**20
        for name in names:
            m = memory_in_fresh_process(name, args)
            grew = m["peak_mib"] - m["before_mib"]
            print(
                f"  {name:10s} peak {m['peak_mib']:7.0f} MiB, {grew:5.0f} MiB over the "
                f"{m['before_mib']:.0f} MiB before (imports, input of {input_mib:.0f} MiB)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
