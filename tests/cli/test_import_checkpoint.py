"""``defocus import-checkpoint``: the paper's checkpoints give the paper's logits through our code.

Three independent computations of the same logits on the same 299 px photos:

(a) the paper's own model code, run unmodified from a checkout of
    irissun9602/Defocus-Deepfake-Detection (the mirror at ``PAPER_MIRROR``,
    or a checkout named by ``DEFOCUS_PAPER_CODE``; skipped when absent);
(b) a re-implementation written here from the paper's code path (data
    loader normalisation to [-1, 1], gray mean, scikit-image Canny on
    ``clip(gray, 0, 1)``, 11x11 derivative-of-Gaussian ratio in float64 with
    scipy, guided filter on integral images in float64, min-max per sample,
    3 channels, the timm model); always runs;
(c) this project's detector loaded from the file ``import-checkpoint`` wrote,
    called directly and through ``cache.extract``.

Random weights in the paper's layouts (``pretrained=False`` everywhere,
nothing downloaded); resnet10t keeps the tests fast, one test uses the
paper's legacy_xception.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from scipy import ndimage
from skimage.feature import canny
from torch import nn

from defocus_forensics.cli import main
from detector.checkpoints import load_checkpoint, read_checkpoint

PAPER_MIRROR = Path("/work/.mirror/irissun9602+Defocus-Deepfake-Detection/repo")
SIZE = 299  # hard-coded in the paper's pipeline and loader
TOL = dict(rtol=1e-4, atol=1e-5)  # float32 rounding through a CNN


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def images():
    """Two real photos as the paper's loader sizes them: (2, 3, 299, 299) in [0, 1]."""
    from skimage import data

    arrays = [
        np.asarray(Image.fromarray(img).resize((SIZE, SIZE), Image.BILINEAR))
        for img in (data.astronaut(), data.coffee())
    ]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


# -- (b) the re-implementation ----------------------------------------------------------------


def _dog(s):
    c = np.arange(-5, 6, dtype=np.float64)
    x, y = np.meshgrid(c, c, indexing="ij")
    g = np.exp(-(x**2 + y**2) / (2 * s**2))
    return -x / (2 * math.pi * s**4) * g, -y / (2 * math.pi * s**4) * g


def _box_mean(a, r):
    """Mean over the part of each (2r+1)^2 window inside the image, by integral images."""
    h, w = a.shape
    ii = np.zeros((h + 1, w + 1))
    ii[1:, 1:] = a.cumsum(0).cumsum(1)
    i0, i1 = np.clip(np.arange(h) - r, 0, h), np.clip(np.arange(h) + r + 1, 0, h)
    j0, j1 = np.clip(np.arange(w) - r, 0, w), np.clip(np.arange(w) + r + 1, 0, w)
    total = ii[i1][:, j1] - ii[i0][:, j1] - ii[i1][:, j0] + ii[i0][:, j0]
    return total / np.outer(i1 - i0, j1 - j0)


def paper_maps(images01: torch.Tensor) -> torch.Tensor:
    """The paper's DefocusNet input from [0, 1] images of 299 px: (B, 1, 299, 299) in [0, 1]."""
    x = (images01 - 0.5) / 0.5  # transforms.Normalize(mean=0.5, std=0.5) of its loader
    gray = x.mean(dim=1)  # float32, as torch.mean in its pipeline
    edges = np.stack([canny(np.clip(g.numpy(), 0, 1), sigma=1.5) for g in gray]).astype(np.float64)
    emax = edges.max()
    maps = []
    for g, e, img in zip(gray.double().numpy(), edges, x.double().numpy(), strict=True):
        mags = []
        for s in (1.5, 2.0):
            kx, ky = _dog(s)
            gx = ndimage.correlate(g, kx, mode="constant")
            gy = ndimage.correlate(g, ky, mode="constant")
            mags.append(np.sqrt(gx**2 + gy**2))
        r = mags[0] / (mags[1] + 1e-8) * e / (emax + 1e-8)
        sparse = np.sqrt(np.clip((r**2 * 1.5**2 - 2.0**2) / (1 - r**2 + 1e-8), 0, None))
        sparse = np.minimum(np.nan_to_num(sparse, nan=0.0), 5.0)
        guide = img.mean(axis=0)  # the guided filter's guide: the [-1, 1] image's mean
        mi, mp = _box_mean(guide, 7), _box_mean(sparse, 7)
        a = (_box_mean(guide * sparse, 7) - mi * mp) / (_box_mean(guide * guide, 7) - mi**2 + 1e-2)
        b = mp - a * mi
        dense = _box_mean(a, 7) * guide + _box_mean(b, 7)
        maps.append((dense - dense.min()) / (dense.max() - dense.min() + 1e-8))
    return torch.from_numpy(np.stack(maps)[:, None]).float()


class ReimplementedDefocusNet(nn.Module):
    """DefocusNet's parameter layout (the timm model under ``classifier``) and forward."""

    def __init__(self, backbone):
        super().__init__()
        self.classifier = timm.create_model(backbone, pretrained=False, num_classes=1)

    def forward(self, images01):
        return self.classifier(paper_maps(images01).repeat(1, 3, 1, 1))


class ReimplementedMultiBranch(nn.Module):
    """MultiBranchDefocusNet's layout; fed [-1, 1] RGB and the normalised one-channel map."""

    def __init__(self, backbone):
        super().__init__()
        self.rgb_backbone = timm.create_model(backbone, pretrained=False, num_classes=0)
        self.defocus_backbone = timm.create_model(backbone, pretrained=False, num_classes=0,
                                                  in_chans=1)  # fmt: skip
        self.classifier = nn.Linear(self.rgb_backbone.num_features, 1)

    def forward(self, images01):
        rgb = self.rgb_backbone((images01 - 0.5) / 0.5)
        return self.classifier(rgb * self.defocus_backbone(paper_maps(images01)))


def _paper_rgb(backbone):
    """The paper's RGB detector: a bare timm model on the loader's [-1, 1] images."""
    model = timm.create_model(backbone, pretrained=False, num_classes=1)
    return model, lambda images01: model((images01 - 0.5) / 0.5)


def _save_paper_layout(model: nn.Module, path: Path, layout: str) -> Path:
    state = model.state_dict()
    if layout in ("module", "wrapped"):  # nn.DataParallel(model).state_dict()
        state = {"module." + k: v for k, v in state.items()}
    if layout == "wrapped":  # its training script's torch.save({...})
        optimizer = torch.optim.Adam(model.parameters()).state_dict()
        state = {"epoch": 3, "model_state_dict": state, "best_val_acc": 0.91,
                 "optimizer_state_dict": optimizer}  # fmt: skip
    torch.save(state, path)
    return path


def _import(src, kind, dst, *extra):
    return main(["import-checkpoint", str(src), "--kind", kind, "--out", str(dst), *extra])


# -- (c) against (b): always runs -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "layout"),
    [
        ("defocus", "bare"),
        ("defocus", "module"),
        ("defocus", "wrapped"),
        ("rgb", "bare"),
        ("rgb", "wrapped"),
        ("fusion", "module"),
    ],
)
def test_imported_checkpoint_gives_the_reimplemented_papers_logits(
    tmp_path, images, kind, layout, capsys
):
    # catches: another input normalisation than the paper's (maps from [0, 1] images
    # correlate r = 0.44 with the paper's), wrong key mapping, or a config that is not stored
    torch.manual_seed(7)
    if kind == "defocus":
        paper = ReimplementedDefocusNet("resnet10t").eval()
        forward = paper
    elif kind == "rgb":
        paper, forward = _paper_rgb("resnet10t")
        paper.eval()
    else:
        paper = ReimplementedMultiBranch("resnet10t").eval()
        forward = paper
    src = _save_paper_layout(paper, tmp_path / "paper.pth", layout)
    dst = tmp_path / "out" / "ours.pt"
    assert _import(src, kind, dst, "--backbone", "resnet10t") == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and str(dst) in line
    ours = load_checkpoint(dst).eval()  # self-describing: no flags needed any more
    with torch.no_grad():
        expected = forward(images)
        torch.testing.assert_close(ours(images), expected, **TOL)
    extra = read_checkpoint(dst).extra
    assert extra["source_layout"] == {"defocus": "DefocusNet", "rgb": "timm",
                                      "fusion": "MultiBranchDefocusNet"}[kind]  # fmt: skip
    if layout == "wrapped":
        assert extra["source_extra"] == {"epoch": 3, "best_val_acc": 0.91}


def test_the_default_normalisation_would_not_reproduce_the_paper(images):
    # the test above has power: with [0, 1] images the estimator gives other maps
    from detector.checkpoints import paper_detector
    from detector.defocus import DefocusConfig
    from detector.models import build_detector

    expected = paper_maps(images)
    ours = paper_detector("defocus", "resnet10t").defocus_input(images)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-4)
    default = build_detector("defocus", "resnet10t", image_size=SIZE,
                             defocus_config=DefocusConfig(size=SIZE))  # fmt: skip
    unit = default.defocus_input(images)
    r = np.corrcoef(unit.flatten().numpy(), expected.flatten().numpy())[0, 1]
    assert r < 0.8 and (unit - expected).abs().max() > 0.1


@pytest.mark.slow
def test_imported_checkpoint_through_cache_extract(tmp_path, images):
    # the logits a cache stores for the paper's model are the paper's
    from cache import open_cache
    from cache.extract import ExtractConfig, extract
    from detector.data import RealFakeFolders

    torch.manual_seed(11)
    paper = ReimplementedDefocusNet("resnet10t").eval()
    src = _save_paper_layout(paper, tmp_path / "paper.pth", "wrapped")
    assert _import(src, "defocus", tmp_path / "ours.safetensors", "--backbone", "resnet10t") == 0
    for i, label in enumerate(("real", "fake")):
        (tmp_path / label).mkdir()
        pixels = (images[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / label / "x.png")
    data = RealFakeFolders(tmp_path / "real", tmp_path / "fake")
    config = ExtractConfig(explainer="captum-gradientshap", nsamples=1, n_background=1,
                           save_image=False)  # fmt: skip
    model = load_checkpoint(tmp_path / "ours.safetensors")
    extract(data, tmp_path / "cache", model, config=config, device="cpu", progress=False)
    cache = open_cache(tmp_path / "cache")
    got = {}
    for group in cache.groups:
        ids = cache.load("id", group)
        for sid, logit in zip(ids, cache.load("logit_defocus", group), strict=True):
            got[str(sid)] = float(logit)
    with torch.no_grad():
        expected = paper(images).reshape(-1).tolist()
    np.testing.assert_allclose([got["real/x.png"], got["fake/x.png"]], expected, **TOL)


# -- (c) against (a): the paper's own code, unmodified ----------------------------------------


def _paper_checkout(tmp_path_factory) -> Path | None:
    given = os.environ.get("DEFOCUS_PAPER_CODE")
    if given:
        return Path(given) if (Path(given) / "model").is_dir() else None
    if not PAPER_MIRROR.exists():
        return None
    out = tmp_path_factory.mktemp("paper-code")
    archive = subprocess.run(
        ["git", f"--git-dir={PAPER_MIRROR}", "archive", "HEAD", "model", "util"],
        capture_output=True,
    )
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out


@pytest.fixture(scope="module")
def paper_code(tmp_path_factory):
    """The paper's ``model`` and ``util`` packages, imported from a checkout; skip if absent."""
    root = _paper_checkout(tmp_path_factory)
    if root is None:
        pytest.skip("the paper's code is not here (set DEFOCUS_PAPER_CODE to a checkout)")
    pytest.importorskip("guided_filter_pytorch", reason="the paper's code needs it")
    pytest.importorskip("cv2", reason="the paper's code needs opencv")
    names = ("model", "util")
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in names}
    sys.path.insert(0, str(root))
    try:
        for k in saved:
            del sys.modules[k]
        import importlib

        module = importlib.import_module("model.DefocusNet_backbone_defocus_gt")
        yield module
    finally:
        sys.path.remove(str(root))
        for k in [k for k in sys.modules if k.split(".")[0] in names]:
            del sys.modules[k]
        sys.modules.update(saved)


def _no_download(monkeypatch):
    """The paper's classes ask timm for pretrained weights: build them without (random)."""
    real = timm.create_model

    def create(name, pretrained=False, **kw):
        return real(name, pretrained=False, **kw)

    monkeypatch.setattr(timm, "create_model", create)


def _run_paper(net, images01, tmp_path, monkeypatch):
    """Its forward prints and appends to ./timer_log.csv: run it in a scratch folder."""
    monkeypatch.chdir(tmp_path)
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        _maps, logits = net((images01 - 0.5) / 0.5)  # what its loader feeds it
    return logits


@pytest.mark.parametrize(
    ("backbone", "layout"),
    [("resnet10t", "wrapped"), pytest.param("legacy_xception", "module", marks=pytest.mark.slow)],
)
def test_imported_checkpoint_gives_the_paper_codes_logits(
    tmp_path, images, paper_code, monkeypatch, backbone, layout
):
    _no_download(monkeypatch)
    torch.manual_seed(3)
    net = paper_code.DefocusNet(num_classes=1, backbone=backbone).eval()
    monkeypatch.undo()
    src = _save_paper_layout(net, tmp_path / f"defocus_gt_{backbone}_Deepfakes.pth", layout)
    flags = [] if backbone == "legacy_xception" else ["--backbone", backbone]  # the default
    assert _import(src, "defocus", tmp_path / "ours.pt", *flags) == 0
    ours = load_checkpoint(tmp_path / "ours.pt").eval()
    expected = _run_paper(net, images, tmp_path, monkeypatch)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), expected, **TOL)
        # and the re-implementation agrees with the paper's code (the two oracles agree)
        torch.testing.assert_close(
            net.classifier(paper_maps(images).repeat(1, 3, 1, 1)), expected, **TOL
        )


def test_paper_multibranch_code_loads_into_fusion(tmp_path, images, paper_code, monkeypatch):
    _no_download(monkeypatch)
    torch.manual_seed(4)
    net = paper_code.MultiBranchDefocusNet(1, "resnet10t", "resnet10t").eval()
    monkeypatch.undo()
    src = _save_paper_layout(net, tmp_path / "mb.pth", "module")
    assert _import(src, "fusion", tmp_path / "ours.pt", "--backbone", "resnet10t") == 0
    ours = load_checkpoint(tmp_path / "ours.pt").eval()
    with torch.no_grad():
        expected = net((images - 0.5) / 0.5, paper_maps(images))
        torch.testing.assert_close(ours(images), expected, **TOL)


# -- user errors ------------------------------------------------------------------------------


def test_errors_are_one_line_and_leave_nothing(tmp_path, capsys):
    torch.manual_seed(0)
    defocusnet = _save_paper_layout(ReimplementedDefocusNet("resnet10t"), tmp_path / "d.pth",
                                    "wrapped")  # fmt: skip
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "notes.pth").write_text("epoch 3: val acc 0.91\n")
    cases = [
        (["empty.pth", "--kind", "defocus"], "is empty"),
        (["notes.pth", "--kind", "defocus"], "is a text file"),
        (["none.pth", "--kind", "defocus"], "checkpoint not found"),
        (["d.pth", "--kind", "rgb", "--backbone", "resnet10t"], "DefocusNet.*use --kind defocus"),
        (
            ["d.pth", "--kind", "defocus"],
            "first missing key.*backbone legacy_xception; give --backbone NAME",
        ),
        (["d.pth", "--kind", "defocus", "--image-size", "4"], "--image-size must be at least 8"),
    ]
    for args, says in cases:
        out = tmp_path / "new" / "dir" / "x.pt"
        rc = main(["import-checkpoint", str(tmp_path / args[0]), *args[1:], "--out", str(out)])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and err.startswith("defocus import-checkpoint:")
        assert re.search(says, err), (says, err)
        assert not (tmp_path / "new").exists(), args  # nothing half-made
    rc = main(["import-checkpoint", str(defocusnet), "--kind", "defocus", "--out", str(defocusnet)])
    assert rc == 2 and "is the input file" in capsys.readouterr().err
    assert _import(defocusnet, "defocus", tmp_path / "ours.pt", "--backbone", "resnet10t") == 0
    capsys.readouterr()
    assert _import(tmp_path / "ours.pt", "defocus", tmp_path / "again.pt") == 2
    assert "already a defocus-forensics checkpoint" in capsys.readouterr().err
