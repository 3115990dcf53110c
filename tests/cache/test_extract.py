"""The extraction job: content, failures, resume, slices, merge, refusal, Dask, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cache import CacheMismatchError, merge_caches, open_cache
from cache.explainers import ExplainerConfig, get_explainer
from cache.extract import ExtractConfig, extract, parse_shard, plan_shards
from cache.testing import TinyDataset, TinyDetector

ROOT = Path(__file__).resolve().parents[2]
CFG = ExtractConfig(nsamples=8, n_background=3, shard_size=3, batch_size=2, seed=5)


def _models():
    return TinyDetector("defocus", 16, 4, seed=0).eval(), TinyDetector("rgb", 16, 4, seed=1).eval()


def _shas(cache):
    return {e["name"]: e.get("sha256") for e in cache.manifest["shards"]}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run over 11 samples (sample 3 unreadable), both models."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ref") / "cache"
    d, r = _models()
    res = extract(TinyDataset(11, 16, broken=[3]), out, d, r, config=CFG, progress=False)
    return res


def test_plan_and_shard_spec():
    tasks = plan_shards(TinyDataset(11), 3)
    assert [t.name for t in tasks] == [
        "00000-real",
        "00001-real",
        "00002-fake_a",
        "00003-fake_b",
    ]
    assert tasks[0].indices == (0, 2, 4) and tasks[2].indices == (1, 5, 9)
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "a/b", "1"):
        with pytest.raises(ValueError, match="K/N"):
            parse_shard(bad)


def test_content_matches_direct_computation(reference):
    c = reference.cache
    assert reference.n_written == 4 and c.verify().ok
    assert c.groups == ["real", "fake_a", "fake_b"] and c.n_samples() == 10
    assert reference.failed == [
        {
            "id": "s0003",
            "group": "fake_b",
            "reason": "OSError: cannot identify image file for sample s0003",
        }  # fmt: skip
    ]
    assert "attr_rgb" in c.fields and "mask" in c.fields and "image" in c.fields
    ids = c.load("id").tolist()
    assert "s0003" not in ids and len(ids) == 10
    d, r = _models()
    ds = TinyDataset(11, 16)
    idx = [int(i[1:]) for i in ids]
    images = torch.stack([ds[i]["image"] for i in idx])
    maps = torch.cat([d.defocus_input(images[i : i + 1]) for i in range(len(idx))])
    np.testing.assert_allclose(c.load("defocus"), maps[:, 0].numpy(), atol=1e-3)  # float16
    with torch.no_grad():
        np.testing.assert_allclose(c.load("logit_defocus"), d.classify(maps)[:, 0], rtol=1e-5)
        np.testing.assert_allclose(c.load("logit_rgb"), r.classify(images)[:, 0], rtol=1e-5)
        feats = d.features_from_input(maps).numpy()
    np.testing.assert_allclose(c.load("features_defocus"), feats, rtol=1e-5, atol=1e-6)
    # attributions: the explainer called directly with the recorded background
    bg_ids = c.config["background"]["ids"]
    assert len(bg_ids) == 3 and all(ds.samples[int(i[1:])].label == 0 for i in bg_ids)
    bg = torch.stack([ds[int(i[1:])]["image"] for i in bg_ids])
    bg_maps = torch.cat([d.defocus_input(bg[i : i + 1]) for i in range(3)])
    e = get_explainer("shap-gradient", d.classify, bg_maps, nsamples=8, seed=5)
    attr, comp = e.attribute(maps, ids, return_completeness=True)
    np.testing.assert_allclose(c.load("attr_defocus"), attr[:, 0].numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(c.load("completeness_defocus"), comp.numpy(), rtol=1e-4, atol=1e-6)
    er = get_explainer("shap-gradient", r.classify, bg, nsamples=8, seed=5)
    np.testing.assert_allclose(
        c.load("attr_rgb"), er.attribute(images, ids).numpy(), rtol=1e-5, atol=1e-7
    )
    # labels, pairs, masks, images as seen
    assert c.load("label", "real").tolist() == [0] * 6
    assert c.load("pair_id", "fake_a").tolist() == ["s0000", "s0004", "s0008"]
    assert c.load("mask", "real").max() == 0 and c.load("mask", "fake_a").max() == 1
    np.testing.assert_array_equal(
        c.load("image"), np.clip(np.rint(images.numpy() * 255), 0, 255).astype(np.uint8)
    )
    assert c.manifest["config"]["explainer"]["completeness_reference"] == "mean f(background)"


def test_batch_size_and_worker_layout_do_not_change_bytes(reference, tmp_path):
    d, r = _models()
    cfg = ExtractConfig(**{**CFG.__dict__, "batch_size": 7})
    res = extract(TinyDataset(11, 16, broken=[3]), tmp_path / "c", d, r, cfg, progress=False)
    assert _shas(res.cache) == _shas(reference.cache)


def test_shard_layout_does_not_change_values(reference, tmp_path):
    d, r = _models()
    cfg = ExtractConfig(**{**CFG.__dict__, "shard_size": 4})
    c = extract(TinyDataset(11, 16, broken=[3]), tmp_path / "c", d, r, cfg, progress=False).cache
    ref = reference.cache
    order = np.argsort(c.load("id"))
    ref_order = np.argsort(ref.load("id"))
    for f in ("attr_defocus", "attr_rgb", "logit_rgb", "features_rgb", "defocus"):
        np.testing.assert_allclose(
            c.load(f)[order].astype(np.float64),
            ref.load(f)[ref_order].astype(np.float64),
            rtol=1e-5,
            atol=1e-7,
        )


def test_resume_redoes_missing_and_corrupt_shards(reference, tmp_path):
    import shutil

    shutil.copytree(reference.cache.path, tmp_path / "c")
    c = open_cache(tmp_path / "c")
    first, second = c.shards[0], c.shards[2]
    raw = bytearray((c.path / first["file"]).read_bytes())
    raw[100] ^= 0xFF
    (c.path / first["file"]).write_bytes(bytes(raw))
    os.unlink(c.path / second["file"])
    (c.path / "shards" / ".00003-fake_b.npz.junk.tmp").write_bytes(b"half")  # an interrupted write
    d, r = _models()
    res = extract(TinyDataset(11, 16, broken=[3]), c.path, d, r, CFG, progress=False)
    assert (res.n_written, res.n_skipped) == (2, 2)
    assert _shas(res.cache) == _shas(reference.cache) and res.cache.verify().ok
    before = (c.path / "manifest.json").read_bytes()
    again = extract(TinyDataset(11, 16, broken=[3]), c.path, d, r, CFG, progress=False)
    assert again.n_written == 0 and (c.path / "manifest.json").read_bytes() == before


def test_slices_then_merge_equal_the_full_run(reference, tmp_path):
    d, r = _models()
    ds = TinyDataset(11, 16, broken=[3])
    a = extract(ds, tmp_path / "a", d, r, CFG, shard="0/2", progress=False)
    b = extract(ds, tmp_path / "b", d, r, CFG, shard="1/2", progress=False)
    assert a.n_planned == 2 and b.n_planned == 2
    assert [e["name"] for e in a.cache.shards] == ["00000-real", "00002-fake_a"]
    merged = merge_caches(tmp_path / "m", [tmp_path / "a", tmp_path / "b"])
    assert _shas(merged) == _shas(reference.cache)
    assert merged.failed == reference.cache.failed
    # slices written into one folder merge by themselves
    extract(ds, tmp_path / "one", d, r, CFG, shard="1/2", progress=False)
    one = extract(ds, tmp_path / "one", d, r, CFG, shard="0/2", progress=False).cache
    assert _shas(one) == _shas(reference.cache)


def test_mixing_configs_or_models_is_refused(reference, tmp_path):
    import shutil

    shutil.copytree(reference.cache.path, tmp_path / "c")
    d, r = _models()
    ds = TinyDataset(11, 16, broken=[3])
    with pytest.raises(CacheMismatchError, match=r"extraction\.nsamples: 8 != 16"):
        extract(ds, tmp_path / "c", d, r, ExtractConfig(**{**CFG.__dict__, "nsamples": 16}))
    other = TinyDetector("rgb", 16, 4, seed=9).eval()
    with pytest.raises(CacheMismatchError, match=r"models\.rgb\.sha256"):
        extract(ds, tmp_path / "c", d, other, CFG, progress=False)
    with pytest.raises(CacheMismatchError, match=r"data\."):
        extract(TinyDataset(11, 16, seed=1), tmp_path / "c", d, r, CFG, progress=False)
    with pytest.raises(CacheMismatchError, match="configs differ"):
        cfg = ExtractConfig(**{**CFG.__dict__, "seed": 6})
        extract(ds, tmp_path / "z", d, r, cfg, progress=False)
        merge_caches(tmp_path / "c", [tmp_path / "z"])


def test_defocus_only_and_errors(tmp_path):
    d, r = _models()
    d.train()
    c = extract(TinyDataset(4, 16), tmp_path / "c", d, None, CFG, progress=False).cache
    assert "attr_rgb" not in c.fields and c.load("image").shape == (4, 3, 16, 16)
    assert d.training and all(p.requires_grad for p in d.parameters())  # restored
    with pytest.raises(ValueError, match="must be a 'defocus' detector"):
        extract(TinyDataset(4, 16), tmp_path / "x", r, None, CFG)
    with pytest.raises(ValueError, match="explainer must be one of"):
        ExtractConfig(explainer="lime")
    with pytest.raises(ValueError, match="shard_size must be a positive integer"):
        ExtractConfig(shard_size=0)
    with pytest.raises(ValueError, match="set 'seed' through ExtractConfig"):
        ExtractConfig(explainer_options={"seed": 1})


def _job_inputs(cache):
    """The cached samples' classifier inputs and the background maps, recomputed."""
    d, _ = _models()
    ds = TinyDataset(4, 16)
    ids = cache.load("id").tolist()
    images = torch.stack([ds[int(i[1:])]["image"] for i in ids])
    maps = torch.cat([d.defocus_input(images[i : i + 1]) for i in range(len(ids))])
    bg = torch.stack([ds[int(i[1:])]["image"] for i in cache.config["background"]["ids"]])
    bg_maps = torch.cat([d.defocus_input(bg[i : i + 1]) for i in range(len(bg))])
    return d, ids, maps, bg_maps


@pytest.mark.parametrize("name", ["captum-ig", "captum-occlusion", "captum-gradientshap"])
def test_other_explainers_in_the_job(tmp_path, name):
    # the job passes the explainer's options, background and seeds through: its cached
    # attributions equal the explainer called directly (catches dropped options, another
    # background or seed)
    d, _ = _models()
    opts = {"n_steps": 4, "window": 4, "stride": 4}
    cfg = ExtractConfig(explainer=name, n_background=2, shard_size=4, seed=3, nsamples=6,
                        explainer_options=opts)  # fmt: skip
    c = extract(TinyDataset(4, 16), tmp_path / "c", d, None, cfg, progress=False).cache
    assert c.config["explainer"]["name"] == name
    d, ids, maps, bg_maps = _job_inputs(c)
    params = {k: v for k, v in {**opts, "nsamples": 6}.items()
              if k in ExplainerConfig(name=name).to_dict()}  # fmt: skip
    e = get_explainer(name, d.classify, bg_maps, seed=3, **params)
    want = e.attribute(maps, ids)[:, 0].numpy()
    got = c.load("attr_defocus")
    assert np.abs(want).max() > 0
    # float32 rounding of the logits (channels-last in the job): ~3e-8 for occlusion
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_occlusion_in_the_job_equals_window_deletions(tmp_path):
    # an oracle outside captum: 4 x 4 windows at stride 4 tile the 16 x 16 map, so each
    # pixel's attribution is f(x) - f(x with its tile set to the mean background map)
    d, _ = _models()
    cfg = ExtractConfig(explainer="captum-occlusion", n_background=2, shard_size=4,
                        explainer_options={"window": 4, "stride": 4})  # fmt: skip
    c = extract(TinyDataset(4, 16), tmp_path / "c", d, None, cfg, progress=False).cache
    d, ids, maps, bg_maps = _job_inputs(c)
    base = bg_maps.double().mean(0)
    m64 = TinyDetector("defocus", 16, 4, seed=0).double().eval()
    want = np.empty((len(ids), 16, 16))
    with torch.no_grad():
        for j in range(len(ids)):
            x = maps[j].double()
            fx = float(m64.classify(x[None]))
            for ti in range(0, 16, 4):
                for tj in range(0, 16, 4):
                    y = x.clone()
                    y[:, ti : ti + 4, tj : tj + 4] = base[:, ti : ti + 4, tj : tj + 4]
                    want[j, ti : ti + 4, tj : tj + 4] = fx - float(m64.classify(y[None]))
    assert np.abs(want).max() > 1e-4
    np.testing.assert_allclose(c.load("attr_defocus"), want, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_two_dask_workers_write_the_same_cache(reference, tmp_path):
    d, r = _models()
    res = extract(
        TinyDataset(11, 16, broken=[3]), tmp_path / "c", d, r, CFG, workers=2, progress=False
    )
    c, ref = res.cache, reference.cache
    assert c.verify().ok and res.n_written == 4 and c.failed == ref.failed
    for f in c.fields:
        a, b = c.load(f), ref.load(f)
        if a.dtype.kind in "fc":
            np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=1e-5, atol=1e-7)
        else:
            np.testing.assert_array_equal(a, b)


def _worker_env():
    import os

    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")


@pytest.mark.slow
def test_local_cluster_workers_keep_glibcs_dynamic_mmap_threshold():
    from dask.distributed import Client

    from cache.distributed import local_cluster

    with local_cluster(1) as cluster, Client(cluster) as client:
        (env,) = client.run(_worker_env).values()
        n_threads = sum(w.nthreads for w in cluster.workers.values())
    # the nanny's MALLOC_TRIM_THRESHOLD_ is dropped, its one-thread settings are kept
    assert env == (None, "1") and n_threads == 1


_KILL_SCRIPT = """
import sys, time, torch
torch.set_num_threads(1)
from cache.extract import ExtractConfig, extract
from cache.testing import TinyDataset, TinyDetector

class Slow(TinyDataset):
    def __getitem__(self, i):
        time.sleep(float(sys.argv[2]))
        return super().__getitem__(i)

d, r = TinyDetector("defocus", 16, 4, seed=0).eval(), TinyDetector("rgb", 16, 4, seed=1).eval()
cfg = ExtractConfig(nsamples=8, n_background=3, shard_size=2, batch_size=2, seed=5)
extract(Slow(12, 16), sys.argv[1], d, r, cfg, progress=False)
"""


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(_KILL_SCRIPT)
    run = [sys.executable, str(script)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    clean = subprocess.run(run + [str(tmp_path / "clean"), "0"], env=env, cwd=ROOT, timeout=120)
    assert clean.returncode == 0
    proc = subprocess.Popen(run + [str(tmp_path / "killed"), "0.15"], env=env, cwd=ROOT)
    manifest = tmp_path / "killed" / "manifest.json"
    deadline = time.time() + 60
    while time.time() < deadline:  # kill once some but not all shards are written
        if manifest.exists():
            shards = [e for e in json.loads(manifest.read_text())["shards"] if e.get("file")]
            if len(shards) >= 2:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    partial = open_cache(tmp_path / "killed")
    assert 2 <= len(partial.shards) < 7 and partial.verify().ok
    again = subprocess.run(run + [str(tmp_path / "killed"), "0"], env=env, cwd=ROOT, timeout=120)
    assert again.returncode == 0
    done, ref = open_cache(tmp_path / "killed"), open_cache(tmp_path / "clean")
    assert _shas(done) == _shas(ref) and len(ref.shards) == 7 and done.verify().ok
    for f in ref.fields:
        np.testing.assert_array_equal(done.load(f), ref.load(f))


def test_a_shard_whose_samples_all_fail(tmp_path):
    d, _ = _models()
    ds = TinyDataset(6, 16, broken=[0, 2, 4])  # every real
    bg = torch.stack([TinyDataset(6, 16)[i]["image"] for i in (0, 2)])
    res = extract(ds, tmp_path / "c", d, None, CFG, background=bg, progress=False)
    c = res.cache
    assert c.groups == ["fake_a", "fake_b"] and c.n_samples() == 3 and c.verify().ok
    assert [f["id"] for f in c.failed] == ["s0000", "s0002", "s0004"]
    assert extract(ds, tmp_path / "c", d, None, CFG, background=bg, progress=False).n_written == 0
