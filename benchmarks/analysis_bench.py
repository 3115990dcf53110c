"""Speed and memory of the analysis stage.

1. t-SNE: ``analysis.embedding.embed`` (PCA to 50 dims + openTSNE with a tuned
   schedule) against scikit-learn's ``TSNE`` (default settings) measured in the
   same run on the same clustered features, with trustworthiness (k = 5) of
   both: 6,000 x 512, and 12,800 x 2,048 unless ``--skip-big``. Both use the
   same number of threads (``--threads``).
2. Memory: a generated N-sample (default 20,000) cache of S x S (default 299)
   maps written shard by shard with ``cache.CacheWriter``, then the full
   analysis (``summarise_cache`` with every part, plus every figure) in a
   fresh process whose peak resident memory (``ru_maxrss``) is reported.

Run: ``.venv/bin/python benchmarks/analysis_bench.py [--skip-big] [--skip-memory]``.
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


def bench_tsne(n: int, d: int, threads: int, opentsne_defaults: bool) -> dict:
    import openTSNE  # noqa: F401  imports happen before any clock starts, for both sides
    import sklearn.decomposition  # noqa: F401
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    from analysis.embedding import embed, trustworthiness

    x, _ = clustered_features(n, d)
    out = {"n": n, "d": d, "threads": threads}
    t = time.perf_counter()
    ours = embed(x, perplexity=30, seed=0, n_jobs=threads)
    out["ours_s"] = time.perf_counter() - t
    out["ours_trust"] = trustworthiness(x, ours, 5)
    if opentsne_defaults:
        import openTSNE

        t = time.perf_counter()
        y = openTSNE.TSNE(perplexity=30, n_jobs=threads, random_state=0).fit(x)
        out["opentsne_default_s"] = time.perf_counter() - t
        out["opentsne_default_trust"] = trustworthiness(x, np.asarray(y), 5)
    t = time.perf_counter()
    with threadpool_limits(limits=threads):
        ref = TSNE(perplexity=30, random_state=0, init="pca", n_jobs=threads).fit_transform(x)
    out["sklearn_s"] = time.perf_counter() - t
    out["sklearn_trust"] = trustworthiness(x, ref, 5)
    out["speedup"] = out["sklearn_s"] / out["ours_s"]
    out["trust_diff"] = out["ours_trust"] - out["sklearn_trust"]
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
    p.add_argument("--opentsne-defaults", action="store_true", help="also time openTSNE defaults")
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
    print(f"machine: {os.cpu_count()} CPU cores (shared), python {sys.version.split()[0]}")
    if not args.skip_tsne:
        cases = [(6000, 512)] + ([] if args.skip_big else [(12800, 2048)])
        for n, d in cases:
            r = bench_tsne(n, d, args.threads, args.opentsne_defaults)
            line = (
                f"t-SNE {n} x {d} ({r['threads']} thread(s)): ours {r['ours_s']:.1f} s "
                f"(trust {r['ours_trust']:.4f}), sklearn {r['sklearn_s']:.1f} s "
                f"(trust {r['sklearn_trust']:.4f}) -> speed-up {r['speedup']:.2f}x, "
                f"trust diff {r['trust_diff']:+.4f}"
            )
            if "opentsne_default_s" in r:
                line += (
                    f"; openTSNE defaults {r['opentsne_default_s']:.1f} s "
                    f"({r['sklearn_s'] / r['opentsne_default_s']:.2f}x, "
                    f"trust {r['opentsne_default_trust']:.4f})"
                )
            print(line, flush=True)
    if not args.skip_memory:
        r = bench_memory(
            args.n_samples, args.size, args.shard, args.with_rgb, args.workdir, args.keep
        )
        print(
            f"full analysis of a {r['n']}-sample {r['size']}x{r['size']} cache "
            f"({r['cache_gb']:.1f} GB, shards of {r['shard']}, attr_rgb={r['with_rgb']}): "
            f"peak RSS {r['peak_rss_mb']:.0f} MB, {r['seconds']:.0f} s "
            f"(cache generation {r['generate_s']:.0f} s, peak {r['generate_peak_rss_mb']:.0f} MB)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
