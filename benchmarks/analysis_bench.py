"""Speed and memory of the analysis stage.

1. t-SNE: ``analysis.embedding.embed`` (PCA to 50 dims + openTSNE, FFT gradients above
   2,000 points, 100 early-exaggeration + 250 normal iterations) against scikit-learn's
   ``TSNE`` (Barnes-Hut, 250 + 750 iterations by default), both on one thread (or
   ``--threads``), same input, same run:

   - at their default schedules (ours 350 iterations, scikit-learn 1,000);
   - at equal iterations: ours at scikit-learn's 250 + 750, and scikit-learn at ours'
     total of 350 (``max_iter=350``: its 250 exploration iterations are fixed, then 100);
   - quality of every embedding: trustworthiness at k = 5 (local), k-NN preservation at
     k = 10 and k = 100, and the Spearman correlation of pairwise distances on 2,000
     points (global structure);
   - on clustered synthetic features (6,000 x 512; 12,800 x 2,048 unless
     ``--skip-big``) and on a real feature set: the penultimate features of a cache
     (``--cache runs/demo/cache``: the demo's trained detectors), or, without
     ``--cache``, features of untrained ``resnet10t`` detectors on ``--real-n``
     SyntheticDoF images computed here (real CNN features of real photos, but not a
     trained model's; say which in a table).
2. Memory: a generated N-sample (default 20,000) cache of S x S (default 299)
   maps written shard by shard with ``cache.CacheWriter``, then the full
   analysis (``summarise_cache`` with every part, plus every figure) in a
   fresh process whose peak resident memory (``ru_maxrss``) is reported.

Run (a quiet machine for the final table):
``python benchmarks/analysis_bench.py --cache runs/demo/cache [--skip-big] [--skip-memory]``
(``--quick``: tiny sizes, a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def clustered_features(n: int, d: int, k: int = 10, seed: int = 0):
    """Features with real cluster structure: k Gaussian clusters in a 16-dim latent, ReLU'd."""
    rng = np.random.default_rng(seed)
    latent = 16
    centres = rng.normal(0, 4, (k, latent))
    labels = rng.integers(0, k, n)
    z = centres[labels] + rng.normal(0, 1, (n, latent))
    w = rng.normal(0, 1, (latent, d)) / np.sqrt(latent)
    x = np.maximum(z @ w + 0.5 * rng.normal(0, 1, (n, d)), 0.0)
    return x.astype(np.float32), labels


def knn_preservation(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """Mean fraction of each point's ``k`` nearest neighbours in ``x`` that stay so in ``y``."""
    from sklearn.neighbors import NearestNeighbors

    a = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]
    b = NearestNeighbors(n_neighbors=k + 1).fit(y).kneighbors(y, return_distance=False)[:, 1:]
    a.sort(axis=1)
    b.sort(axis=1)
    shared = [np.intersect1d(p, q, assume_unique=True).size for p, q in zip(a, b, strict=True)]
    return float(np.mean(shared) / k)


def distance_correlation(x: np.ndarray, y: np.ndarray, n: int = 2000, seed: int = 0) -> float:
    """Spearman correlation of pairwise distances in ``x`` and ``y`` on ``n`` seeded points."""
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr

    idx = np.random.default_rng(seed).permutation(len(x))[:n]
    return float(spearmanr(pdist(x[idx]), pdist(y[idx]))[0])


def quality(x: np.ndarray, y: np.ndarray) -> dict:
    """Local and global quality of an embedding ``y`` of ``x``."""
    from analysis.embedding import trustworthiness

    k_big = min(100, max(1, len(x) // 3))
    return {
        "trustworthiness_k5": trustworthiness(x, y, 5),
        "knn_preservation_k10": knn_preservation(x, y, 10),
        f"knn_preservation_k{k_big}": knn_preservation(x, y, k_big),
        "spearman_pairwise_distances": distance_correlation(x, y),
    }


def bench_tsne(x: np.ndarray, threads: int, name: str, equal: bool = True) -> dict:
    """Time and quality of ours and scikit-learn's t-SNE on ``x`` at several schedules."""
    import openTSNE  # noqa: F401  imports happen before any clock starts, for both sides
    import sklearn.decomposition  # noqa: F401
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    from analysis.embedding import embed

    x = np.asarray(x, dtype=np.float32)
    n, d = x.shape
    perplexity = min(30.0, (n - 1) / 3.0 - 1)
    out: dict = {"data": name, "n": n, "d": d, "threads": threads, "perplexity": perplexity}

    def ours(ee, it):
        return embed(x, perplexity=perplexity, seed=0, n_jobs=threads, n_iter=it,
                     early_exaggeration_iter=ee)  # fmt: skip

    def sklearn(max_iter):
        with threadpool_limits(limits=threads):
            return TSNE(perplexity=perplexity, random_state=0, init="pca", n_jobs=threads,
                        max_iter=max_iter).fit_transform(x)  # fmt: skip

    runs = {
        "ours_default_100+250": lambda: ours(100, 250),
        "sklearn_default_250+750": lambda: sklearn(1000),
    }
    if equal:
        runs["ours_at_sklearn_schedule_250+750"] = lambda: ours(250, 750)
        runs["sklearn_at_ours_total_250+100"] = lambda: sklearn(350)
    for key, run in runs.items():
        t = time.perf_counter()
        y = run()
        out[key] = {"seconds": time.perf_counter() - t, **quality(x, np.asarray(y))}
    base = out["sklearn_default_250+750"]["seconds"]
    out["speedup_default"] = base / out["ours_default_100+250"]["seconds"]
    if equal:
        out["speedup_equal_schedule_1000"] = (
            base / out["ours_at_sklearn_schedule_250+750"]["seconds"]
        )
        out["speedup_equal_total_350"] = (
            out["sklearn_at_ours_total_250+100"]["seconds"] / out["ours_default_100+250"]["seconds"]
        )
    out["load_average_1min"] = os.getloadavg()[0]
    return out


def print_tsne(r: dict) -> None:
    """One block of lines per data set: time and every quality measure of every run."""
    print(
        f"t-SNE on {r['data']} ({r['n']} x {r['d']}, perplexity {r['perplexity']:g}, "
        f"{r['threads']} thread(s), load average {r['load_average_1min']:.1f}):",
        flush=True,
    )
    for key, v in r.items():
        if isinstance(v, dict):
            measures = ", ".join(f"{m} {val:.4f}" for m, val in v.items() if m != "seconds")
            print(f"    {key:<34} {v['seconds']:8.1f} s  {measures}", flush=True)
    line = f"    speed-up at default schedules {r['speedup_default']:.2f}x"
    if "speedup_equal_schedule_1000" in r:
        line += (
            f"; at scikit-learn's 1,000 iterations {r['speedup_equal_schedule_1000']:.2f}x"
            f"; at ours' 350 {r['speedup_equal_total_350']:.2f}x"
        )
    print(line, flush=True)


def real_features(cache: str | None, n: int, size: int = 64) -> dict[str, np.ndarray]:
    """Penultimate features: a cache's fields, or untrained detectors on SyntheticDoF images."""
    if cache:
        from cache import open_cache

        c = open_cache(cache)
        fields = [f for f in ("features_defocus", "features_rgb") if f in c.fields]
        if not fields:
            raise ValueError(f"the cache {cache} holds no penultimate features")
        return {f"{f} of {cache}": np.asarray(c.load(f), dtype=np.float32) for f in fields}
    import torch

    from detector.data import SyntheticDoF
    from detector.models import build_detector

    torch.manual_seed(0)
    ds = SyntheticDoF(n, size=size, seed=0)
    out = {}
    for kind in ("defocus", "rgb"):
        model = build_detector(kind, backbone="resnet10t", image_size=size).eval()
        feats = []
        with torch.no_grad():
            for start in range(0, n, 64):
                images = torch.stack([ds[i]["image"] for i in range(start, min(n, start + 64))])
                feats.append(model.features(images).numpy())
        name = f"features_{kind} of untrained resnet10t, {n} SyntheticDoF {size}px images"
        out[name] = np.concatenate(feats).astype(np.float32)
    return out


# --------------------------------------------------------------------------- memory


def generate_cache(path: Path, n: int, size: int, shard: int, with_rgb: bool, seed: int = 0):
    """Write an n-sample cache (half real, two fake groups) shard by shard; return its bytes."""
    from scipy import ndimage

    from cache import CacheWriter

    rng = np.random.default_rng(seed)
    bank = ndimage.gaussian_filter(rng.random((32, size, size)), sigma=(0, 12, 12))
    bank = (bank - bank.min(axis=(1, 2), keepdims=True)) / np.ptp(bank, axis=(1, 2), keepdims=True)
    bank = bank.astype(np.float32)
    n_real = n // 2
    groups = {"Deepfakes": n_real // 2, "FaceSwap": n_real - n_real // 2}
    w = CacheWriter(path, config={"benchmark": "analysis", "n": n, "size": size})
    d = 512

    def real_map(i):
        r = np.random.default_rng(seed * 1_000_003 + i)
        m = np.roll(bank[i % len(bank)], tuple(r.integers(0, size, 2)), axis=(0, 1))
        return np.clip(m + 0.02 * r.standard_normal((size, size), np.float32), 0, 1)

    def write(group, ids, label, pair, maps, masks):
        k = len(ids)
        arrays = {
            "id": ids,
            "group": np.full(k, group),
            "label": np.full(k, label, np.int8),
            "pair_id": pair,
            "defocus": maps.astype(np.float16),
            "attr_defocus": (
                0.01 * rng.standard_normal((k, size, size), np.float32) + masks * 0.05
            ).astype(np.float32),
            "logit_defocus": rng.normal(1.0 if label else -1.0, 1.0, k).astype(np.float32),
            "features_defocus": (
                rng.normal(0.5 if label else -0.5, 1.0, (k, d)).astype(np.float32)
            ),
            "mask": masks.astype(np.uint8),
        }
        if with_rgb:
            arrays["attr_rgb"] = rng.standard_normal((k, 3, size, size), np.float32)
        w.write_shard(group, arrays)

    real_ids = np.array([f"real_{i:06d}" for i in range(n_real)])
    for start in range(0, n_real, shard):
        idx = np.arange(start, min(n_real, start + shard))
        maps = np.stack([real_map(i) for i in idx])
        write("real", real_ids[idx], 0, np.full(idx.size, ""), maps, np.zeros_like(maps))
    for g, count in groups.items():
        # fakes come in a different order from their reals (permuted in windows of 1000)
        order = np.concatenate(
            [rng.permutation(np.arange(s, min(count, s + 1000))) for s in range(0, count, 1000)]
        )
        for start in range(0, count, shard):
            idx = order[start : start + shard]
            maps = np.stack([real_map(i) for i in idx])
            masks = np.zeros_like(maps)
            for j in range(idx.size):
                y, x = rng.integers(0, size - size // 3, 2)
                masks[j, y : y + size // 4, x : x + size // 4] = 1
            maps = np.clip(maps + 0.3 * masks, 0, 1)
            ids = np.array([f"{g}_{i:06d}" for i in idx])
            write(g, ids, 1, real_ids[idx], maps, masks)
    return sum(f.stat().st_size for f in (path / "shards").glob("*.npz"))


def analyse(path: str, out: str) -> None:
    """Child process: the full analysis and every figure; prints JSON with peak RSS."""
    from analysis import alignment, embedding, localisation, masks, overlays, variance
    from analysis.style import save_figure
    from analysis.summary import summarise_cache, write_summary
    from cache import open_cache

    t = time.perf_counter()
    c = open_cache(path)
    df, an = summarise_cache(c, progress=True, return_analyses=True)
    write_summary(df, out)
    figs = {
        "gallery": masks.plot_mask_gallery(an["masks"]),
        "sweep": masks.plot_threshold_sweep(an["masks"]),
        "heatmaps": variance.plot_variance_heatmaps(an["variance"]),
        "ecdf": variance.plot_variance_ecdf(an["variance"]),
        "alignment": alignment.plot_alignment_histograms(an["alignment"]),
        "null": alignment.plot_permutation_null(an["alignment"]),
        "localisation": localisation.plot_localisation_bars(an["localisation"]),
        "deletion": localisation.plot_deletion_curves(an["localisation"]),
        "tsne": embedding.plot_embedding_sweep(an["embedding"]),
        "overlays": overlays.plot_attribution_overlays(overlays.overlays_from_cache(c, n=2)),
    }
    for name, fig in figs.items():
        save_figure(fig, Path(out) / name)
    secs = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"seconds": secs, "peak_rss_mb": peak_mb, "rows": len(df)}))


def bench_memory(n: int, size: int, shard: int, with_rgb: bool, workdir: str | None, keep: bool):
    base = Path(workdir or tempfile.mkdtemp(prefix="analysis-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    cache_dir = base / "cache"
    out_dir = base / "out"
    try:
        if not (cache_dir / "manifest.json").exists():
            t = time.perf_counter()
            nbytes = generate_cache(cache_dir, n, size, shard, with_rgb)
            gen_s = time.perf_counter() - t
        else:
            nbytes = sum(f.stat().st_size for f in (cache_dir / "shards").glob("*.npz"))
            gen_s = float("nan")
        gen_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.run(
            [sys.executable, __file__, "--_analyse", str(cache_dir), str(out_dir)],
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-4000:])
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res.update(
            n=n,
            size=size,
            shard=shard,
            cache_gb=nbytes / 1e9,
            generate_s=gen_s,
            generate_peak_rss_mb=gen_peak,
            with_rgb=with_rgb,
            out=str(out_dir),
        )
        return res
    finally:
        if not keep:
            shutil.rmtree(cache_dir, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--skip-big", action="store_true", help="skip the 12,800 x 2,048 t-SNE case")
    p.add_argument("--skip-tsne", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="threads for BOTH t-SNE implementations")
    p.add_argument("--cache", help="t-SNE on this cache's penultimate features (the demo's)")
    p.add_argument(
        "--real-n", type=int, default=2000, help="images for features without --cache (2000)"
    )
    p.add_argument("--no-equal", action="store_true", help="skip the equal-iteration runs")
    p.add_argument(
        "--skip-synthetic", action="store_true", help="t-SNE on the real feature set only"
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    p.add_argument("--out", default=str(ROOT / "runs" / "benchmarks"), help="JSON goes here")
    p.add_argument("--n-samples", type=int, default=20000)
    p.add_argument("--size", type=int, default=299)
    p.add_argument("--shard", type=int, default=200, help="samples per shard")
    p.add_argument("--with-rgb", action="store_true", help="add attr_rgb (+1 MB per sample)")
    p.add_argument("--workdir", default=None, help="where the generated cache goes (temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the generated cache")
    p.add_argument("--_analyse", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._analyse:
        analyse(*args._analyse)
        return 0
    from safeio import atomic_write_json, check_output_dir

    out_dir = check_output_dir(args.out)
    print(f"machine: {os.cpu_count()} CPU cores (shared), python {sys.version.split()[0]}")
    results: dict = {"tsne": [], "quick": args.quick}
    if not args.skip_tsne:
        cases = [(6000, 512)] + ([] if args.skip_big else [(12800, 2048)])
        if args.quick:
            cases = [(300, 64)]
        if args.skip_synthetic:
            cases = []
        sets = {f"clustered synthetic {n} x {d}": clustered_features(n, d)[0] for n, d in cases}
        sets.update(real_features(args.cache, 200 if args.quick else args.real_n))
        for name, x in sets.items():
            r = bench_tsne(x, args.threads, name, equal=not args.no_equal)
            results["tsne"].append(r)
            print_tsne(r)
    if not args.skip_memory:
        n, size = (200, 64) if args.quick else (args.n_samples, args.size)
        r = bench_memory(n, size, args.shard, args.with_rgb, args.workdir, args.keep)
        results["memory"] = r
        print(
            f"full analysis of a {r['n']}-sample {r['size']}x{r['size']} cache "
            f"({r['cache_gb']:.1f} GB, shards of {r['shard']}, attr_rgb={r['with_rgb']}): "
            f"peak RSS {r['peak_rss_mb']:.0f} MB, {r['seconds']:.0f} s "
            f"(cache generation {r['generate_s']:.0f} s, peak {r['generate_peak_rss_mb']:.0f} MB)",
            flush=True,
        )
    path = atomic_write_json(out_dir / "analysis_bench.json", results, default=str)
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
