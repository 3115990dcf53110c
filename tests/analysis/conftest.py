"""A small synthetic cache written with the real CacheWriter, shared by the analysis tests."""

from __future__ import annotations

import numpy as np
import pytest

S = 24  # map side of the test caches
N_REAL = 10
D = 6


def _smooth(rng, n, s):
    """Random smooth maps in [0, 1] (per-sample min-max normalised)."""
    from scipy import ndimage

    m = ndimage.gaussian_filter(rng.random((n, s, s)), sigma=(0, 3, 3))
    lo = m.min(axis=(1, 2), keepdims=True)
    hi = m.max(axis=(1, 2), keepdims=True)
    return (m - lo) / (hi - lo + 1e-8)


def write_cache(path, seed=0, fields="all", shard_size=4, shuffle_fakes=False, videos=False):
    """Write a cache: group 'real' and two fake groups; fake pairs known by pair id.

    'pasted' fakes differ from their real in a square that is also their
    ground-truth mask; their defocus attributions sit in the square.
    With ``videos=True`` every sample gets a ``video`` (reals: two frames per
    video ``v0``..``v4``; a fake: its real's video plus ``_<group>``, as
    FaceForensics++ names ``TTT_SSS``); the caller must make the schema know
    the field (fixture ``video_schema``).
    Returns the dict of all arrays per group (for independent references).
    """
    from cache import CacheWriter

    rng = np.random.default_rng(seed)
    real = _smooth(rng, N_REAL, S).astype(np.float16)
    ids = np.array([f"r{i:03d}" for i in range(N_REAL)])
    out = {}
    arrays = {
        "real": {"id": ids, "label": np.zeros(N_REAL, np.int8), "pair_id": np.full(N_REAL, "")}
    }
    arrays["real"]["defocus"] = real
    arrays["real"]["mask"] = np.zeros((N_REAL, S, S), np.uint8)
    for g, shift in (("pasted", 0.5), ("blurred", 0.1)):
        order = rng.permutation(N_REAL) if shuffle_fakes else np.arange(N_REAL)
        n = N_REAL - 2  # two reals without a fake
        src = order[:n]
        fake = real[src].astype(np.float64)
        mask = np.zeros((n, S, S), np.uint8)
        for i in range(n):
            y, x = rng.integers(2, S - 10, 2)
            mask[i, y : y + 8, x : x + 8] = 1
            fake[i] = np.where(mask[i] == 1, np.clip(fake[i] + shift, 0, 1), fake[i])
        arrays[g] = {
            "id": np.array([f"{g}_{ids[j]}" for j in src]),
            "label": np.ones(n, np.int8),
            "pair_id": ids[src],
            "defocus": fake.astype(np.float16),
            "mask": mask,
        }
    for g, a in arrays.items():
        n = len(a["id"])
        a["group"] = np.full(n, g)
        a["attr_defocus"] = (rng.normal(size=(n, S, S)) * 0.01).astype(np.float32)
        if g == "pasted":
            a["attr_defocus"] += a["mask"].astype(np.float32)
        a["attr_rgb"] = rng.normal(size=(n, 3, S, S)).astype(np.float32)
        a["image"] = rng.integers(0, 256, (n, 3, S, S)).astype(np.uint8)
        a["logit_defocus"] = (rng.normal(size=n) + (1.5 if g != "real" else -1.5)).astype(
            np.float32
        )
        a["logit_rgb"] = rng.normal(size=n).astype(np.float32)
        centre = 2.0 if g != "real" else -2.0
        a["features_defocus"] = (rng.normal(size=(n, D)) + centre).astype(np.float32)
        a["features_rgb"] = rng.normal(size=(n, D)).astype(np.float32)
    if videos:
        real_video = {rid: f"v{i // 2}" for i, rid in enumerate(ids)}
        for g, a in arrays.items():
            if g == "real":
                a["video"] = np.array([real_video[r] for r in a["id"]])
            else:
                a["video"] = np.array([f"{real_video[p]}_{g}" for p in a["pair_id"]])
    if fields != "all":
        for a in arrays.values():
            for f in list(a):
                if f not in fields and f not in ("id", "group", "label", "pair_id", "video"):
                    del a[f]
    w = CacheWriter(path, config={"test": seed})
    for g, a in arrays.items():
        n = len(a["id"])
        for start in range(0, n, shard_size):
            w.write_shard(g, {f: v[start : start + shard_size] for f, v in a.items()})
        out[g] = a
    return out


@pytest.fixture
def small_cache(tmp_path, seed):
    from cache import open_cache

    arrays = write_cache(tmp_path / "cache", seed=seed)
    return open_cache(tmp_path / "cache"), arrays


@pytest.fixture
def minimal_cache(tmp_path, seed):
    """Only the required fields plus defocus maps: every optional analysis must say unavailable."""
    from cache import open_cache

    arrays = write_cache(tmp_path / "cache", seed=seed, fields=("defocus",))
    return open_cache(tmp_path / "cache"), arrays


@pytest.fixture
def video_schema(monkeypatch):
    """Make sure the cache schema knows the ``video`` field (added to main by the data work)."""
    from cache import schema

    if "video" not in schema.FIELDS:
        spec = schema.FieldSpec("video", "str", (), doc="video a frame was cut from")
        monkeypatch.setitem(schema.FIELDS, "video", spec)


@pytest.fixture
def video_cache(tmp_path, seed, video_schema):
    """The small cache with a ``video`` field: 5 real videos of 2 frames, fakes per video."""
    from cache import open_cache

    arrays = write_cache(tmp_path / "video_cache", seed=seed, videos=True)
    return open_cache(tmp_path / "video_cache"), arrays


@pytest.fixture
def make_cache(tmp_path):
    """Factory: ``make_cache(name, **write_cache_kwargs) -> (cache, arrays)``."""
    from cache import open_cache

    def make(name="cache", **kwargs):
        arrays = write_cache(tmp_path / name, **kwargs)
        return open_cache(tmp_path / name), arrays

    return make
