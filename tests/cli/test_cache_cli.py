"""``defocus extract / inspect / verify / import-legacy`` end to end on the synthetic data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from defocus_forensics.cli import main


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # shared 2-core machine: see tests/cache/conftest.py
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from detector.models import build_detector, save_checkpoint

    folder = tmp_path_factory.mktemp("ckpt")
    out = {}
    gen = torch.Generator().manual_seed(0)
    for kind in ("defocus", "rgb"):
        model = build_detector(kind, backbone="mobilenetv3_small_050", image_size=32)
        # batch-norm statistics and affine parameters as after training (a fresh model has
        # mean 0, variance 1, weight 1, bias 0, under which a fold that drops the mean or
        # the bias would go unnoticed)
        with torch.no_grad():
            for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
                n = bn.num_features
                bn.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                bn.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                bn.weight.copy_(1 + 0.2 * torch.randn(n, generator=gen))
                bn.bias.copy_(0.2 * torch.randn(n, generator=gen))
        out[kind] = save_checkpoint(model, folder / f"{kind}.safetensors")
    return out


@pytest.fixture(scope="module")
def built(checkpoints, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "cache"
    argv = [
        "extract",
        "--data",
        "synthetic:n=40,size=32,seed=0",
        "--defocus-model",
        str(checkpoints["defocus"]),
        "--rgb-model",
        str(checkpoints["rgb"]),
        "--out",
        str(out),
        "--nsamples",
        "8",
        "--background",
        "2",
        "--shard-size",
        "3",
        "--quiet",
    ]
    assert main(argv) == 0
    return out, argv


def test_extract_builds_a_verified_cache_with_both_models(built, capsys):
    from cache import open_cache

    out, argv = built
    c = open_cache(out)
    assert c.n_samples() == 8 and c.groups[0] == "real"
    for f in ("defocus", "attr_defocus", "attr_rgb", "logit_rgb", "features_rgb", "mask"):
        assert f in c.fields
    assert c.load("attr_rgb").shape == (8, 3, 32, 32) and np.abs(c.load("attr_rgb")).sum() > 0
    assert c.config["models"]["defocus"]["config"]["backbone"] == "mobilenetv3_small_050"
    assert main(["verify", str(out)]) == 0
    assert "COMPLETE: " in capsys.readouterr().out
    assert main(argv) == 0  # resume: nothing left to do
    assert "0 written now" in capsys.readouterr().out


class _Logit(torch.nn.Module):
    """``model.classify`` as the module shap.GradientExplainer wants, ``(B, 1)`` logits."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.classify(x).reshape(len(x), 1)


def test_extract_through_a_timm_backbone_equals_shap_on_the_unfolded_model(built, checkpoints):
    # The job folds batch norms, feeds channels-last tensors and takes the stem shortcut;
    # shap.GradientExplainer on the plain model from the checkpoint, with the sample's
    # seed, gives the same attributions (4e-10 of the largest measured): catches a wrong
    # fold, layout or shortcut, and any drift from the paper's explainer
    import shap

    from cache import open_cache
    from cache.explainers import fold_batchnorm, get_explainer
    from cache.sampling import sample_seed
    from detector.checkpoints import load_checkpoint
    from detector.data import open_data

    out, _ = built
    c = open_cache(out)
    ds = open_data("synthetic:n=40,size=32,seed=0", "all")  # explained and background images
    index = {s.id: i for i, s in enumerate(ds.samples)}
    ids = c.load("id").tolist()
    images = torch.stack([ds[index[i]]["image"] for i in ids])
    bg_images = torch.stack([ds[index[i]]["image"] for i in c.config["background"]["ids"]])
    run_seed = c.config["extraction"]["seed"]
    nsamples = c.config["explainer"]["nsamples"]
    for kind, field in (("defocus", "attr_defocus"), ("rgb", "attr_rgb")):
        model = load_checkpoint(checkpoints[kind]).eval()
        # the folding does apply to this backbone (else the job runs the plain model)
        one = [model.model_input(images[i : i + 1]) for i in range(len(ids))]
        bg = torch.cat([model.model_input(bg_images[i : i + 1]) for i in range(len(bg_images))])
        # the folding and the stem shortcut do apply to this backbone (else the job would
        # run the plain model and this test would not cover them)
        folded, n_folded = fold_batchnorm(model, bg)
        probe = get_explainer("shap-gradient", folded.classify, bg, nsamples=2)
        probe.attribute(one[0], ["probe"])
        assert n_folded > 5 and probe._stem is not None
        explainer = shap.GradientExplainer(_Logit(model), bg)
        want = np.concatenate(
            [
                np.asarray(
                    explainer.shap_values(x, nsamples=nsamples, rseed=sample_seed(run_seed, sid))
                ).reshape(x.shape)
                for x, sid in zip(one, ids, strict=True)
            ]
        )
        got = c.load(field).astype(np.float64)
        want = want[:, 0] if kind == "defocus" else want
        scale = np.abs(want).max()
        assert scale > 0
        # float32 rounding: 2e-7 to 5e-7 of the largest value measured
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * scale)
        # the logits the job cached are the plain model's
        with torch.no_grad():
            logits = torch.cat([model.classify(x) for x in one])[:, 0].numpy()
        np.testing.assert_allclose(c.load(f"logit_{kind}"), logits, rtol=1e-5, atol=1e-6)


def test_verify_fails_on_tampered_copies_naming_the_shard(built, tmp_path, capsys):
    from cache import open_cache

    out, _ = built
    flipped, cut = tmp_path / "flipped", tmp_path / "cut"
    shutil.copytree(out, flipped)
    shutil.copytree(out, cut)
    entry = open_cache(flipped).shards[1]
    raw = bytearray((flipped / entry["file"]).read_bytes())
    raw[len(raw) // 3] ^= 0x10
    (flipped / entry["file"]).write_bytes(bytes(raw))
    assert main(["verify", str(flipped)]) == 1
    err = capsys.readouterr().err
    assert entry["name"] in err and "sha256" in err
    data = (cut / entry["file"]).read_bytes()
    (cut / entry["file"]).write_bytes(data[:-7])
    assert main(["verify", str(cut)]) == 1
    assert "truncated" in capsys.readouterr().err
    assert main(["verify", str(tmp_path)]) == 2


def test_inspect(built, capsys):
    out, _ = built
    assert main(["inspect", str(out), "--shards"]) == 0
    text = capsys.readouterr().out
    assert "shap-gradient" in text and "attr_rgb" in text and "(N, 3, 32, 32)" in text
    assert "00000-real" in text
    assert main(["inspect", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["format_version"] == 1


def test_extract_user_errors_exit_2(built, checkpoints, tmp_path, capsys):
    out, argv = built
    assert main(["extract", "--out", str(tmp_path / "x"), "--data", "synthetic:n=4"]) == 2
    assert "required" in capsys.readouterr().err
    bad = argv.copy()
    bad[bad.index("--defocus-model") + 1] = str(tmp_path / "missing.pt")
    assert main(bad) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    bad = argv.copy()
    bad[bad.index("--data") + 1] = "nonsense:x=1"
    assert main(bad) == 2
    assert "unknown data kind" in capsys.readouterr().err
    other = argv.copy()
    other[other.index("--nsamples") + 1] = "16"
    assert main(other) == 2
    assert "extraction.nsamples: 8 != 16" in capsys.readouterr().err


def test_import_legacy_cli(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "shap_data_real.npz"
    maps = [rng.random((8, 8)) for _ in range(3)]
    np.savez(
        path, **{k: np.array(maps, dtype=object) for k in ("dmaps", "defocus_shaps", "rgb_shaps")}
    )
    assert main(["import-legacy", str(path), "--out", str(tmp_path / "c")]) == 2
    assert "--trust-pickle" in capsys.readouterr().err
    assert main(["import-legacy", str(path), "--out", str(tmp_path / "c"), "--trust-pickle"]) == 0
    captured = capsys.readouterr()
    assert "warning: unpickling runs code" in captured.err and "imported 3 samples" in captured.out
    assert main(["verify", str(tmp_path / "c")]) == 0
