"""Your own data end to end: FaceForensics++ videos and paired folders through every command.

Done when (issue 12): a FaceForensics++-shaped tree of videos made here goes
through ``prepare``, ``train``, ``extract`` and ``figures`` with the paired
figures drawn, and two folders with ``pair=stem`` give every figure their
content allows.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from defocus_forensics.cli import main

pytest.importorskip("av")
pytest.importorskip("dlib")

#: Figures that need the models themselves (drawn by the demo), not a cache alone.
NEEDS_MODELS = {"localisation_deletion_curves"}
#: Figures that compare a fake with its real partner.
PAIRED = {
    "masks_binary_gallery_T0.1",
    "masks_threshold_sweep",
    "variance_local_variance_pairs",
    "alignment_histograms_by_model",
    "alignment_permutation_null",
}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(argv, capsys, status=0):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == status, err
    return out, err


def _train_extract_figures(data: str, tmp_path, capsys) -> dict:
    """Train both tiny models on ``data``, extract its test split, draw every figure."""
    model = ["--backbone", "resnet10t", "--image-size", "32", "--device", "cpu", "--quiet"]
    for kind in ("defocus", "rgb"):
        train = ["train", "--data", data, "--kind", kind, "--epochs", "1", "--batch-size", "16"]
        out, _ = _run([*train, *model, "--lr", "1e-3", "--out", str(tmp_path / kind)], capsys)
        assert json.loads(out)["best_epoch"] == 1
    cache = tmp_path / "cache"
    extract = ["extract", "--data", data, "--defocus-model", str(tmp_path / "defocus/best.pt"),
               "--rgb-model", str(tmp_path / "rgb/best.pt"), "--nsamples", "4", "--background",
               "4", "--out", str(cache), "--quiet"]  # fmt: skip
    _run(extract, capsys)
    # the model-randomisation check on the same data, for its figure and the report
    sanity = ["sanity", "--data", data, "--defocus-model", str(tmp_path / "defocus/best.pt"),
              "--rgb-model", str(tmp_path / "rgb/best.pt"), "--n", "3", "--stages", "1",
              "--nsamples", "4", "--background", "4", "--out", str(tmp_path / "sanity"),
              "--quiet"]  # fmt: skip
    _run(sanity, capsys)
    figures = ["figures", "--cache", str(cache), "--out", str(tmp_path / "figures"),
               "--sanity", str(tmp_path / "sanity"),
               "--perplexities", "2", "--n-boot", "20", "--n-permutations", "10",
               "--n-per-class", "50", "--formats", "png", "--quiet"]  # fmt: skip
    _run(figures, capsys)
    _check_summary_and_report(cache, tmp_path, capsys)
    manifest = json.loads((tmp_path / "figures" / "figures_manifest.json").read_text())
    return {f["stem"]: f["unavailable"] for f in manifest["figures"]}


def _check_summary_and_report(cache_dir, run_dir, capsys):
    """`figures` writes the run's summary; `report` on the run folder shows its headline."""
    from sklearn.metrics import roc_auc_score

    from cache import open_cache

    summary = json.loads((run_dir / "figures" / "summary.json").read_text())
    cache = open_cache(cache_dir)
    labels = cache.load("label")
    for model in ("defocus", "rgb"):
        # the headline AUC of the cached logits, recomputed with scikit-learn
        want = roc_auc_score(labels, cache.load(f"logit_{model}"))
        assert summary["headline"][f"auc_{model}"]["auc"] == pytest.approx(want, abs=1e-12)
    if "video" in cache.fields:
        # the video-level AUC: per-video mean probabilities, recomputed with pandas and sklearn
        import pandas as pd
        from scipy.special import expit

        frame = pd.DataFrame(
            {
                "v": cache.load("video"),
                "y": labels,
                "p": expit(cache.load("logit_defocus").astype(np.float64)),
            }
        )
        per_video = frame.groupby("v").mean()  # fmt: skip
        want = roc_auc_score(per_video["y"], per_video["p"])
        assert summary["headline"]["video_auc_defocus"]["auc"] == pytest.approx(want, abs=1e-12)
    else:
        assert summary["headline"]["video_auc_defocus"]["reason"] == "no video field"
    assert summary["headline"]["calibration_rgb"]["n_bins"] == 15
    assert summary["analysis_config"]["n_permutations"] == 10
    assert (run_dir / "figures" / summary["files"]["csv"]).is_file()
    _run(["report", "--run", str(run_dir)], capsys)
    html = (run_dir / "report.html").read_text()
    assert "no summary.json in this run" not in html
    assert f"{summary['headline']['auc_defocus']['auc']:.3f}" in html
    assert "video-level AUC, defocus model" in html and "ECE (15 bins), RGB model" in html
    assert "sanity_defocus" in summary["headline"] and "sanity_rgb" in summary["headline"]


@pytest.mark.slow
def test_ffpp_videos_to_figures(tmp_path, capsys):
    from cache import open_cache
    from detector.data.testing import make_ffpp_videos

    make_ffpp_videos(tmp_path / "ffpp", n_videos=10, n_frames=2)
    faces = tmp_path / "faces"
    out, _ = _run(["prepare", "ffpp", "--root", str(tmp_path / "ffpp"), "--out", str(faces),
                   "--frames", "2", "--quiet"], capsys)  # fmt: skip
    assert out.startswith("prepared 10 of 10 real videos and 10 manipulated ones")
    unavailable = _train_extract_figures(f"ffpp:root={faces}", tmp_path, capsys)
    cache = open_cache(tmp_path / "cache")
    # the test split of the paper's cut: the last 2 of 10 videos, real and fake, 2 frames each
    assert sorted(set(cache.load("video").tolist())) == [
        "Deepfakes/008_009", "Deepfakes/009_000", "real/008", "real/009"
    ]  # fmt: skip
    assert cache.n_samples() == 8 and cache.load("mask", "Deepfakes").any()
    drawn = {stem for stem, why in unavailable.items() if not why}
    assert PAIRED <= drawn, unavailable
    assert "localisation_scores_by_model" in drawn  # the mask videos' masks
    assert set(unavailable) - drawn == NEEDS_MODELS, unavailable


@pytest.mark.slow
def test_two_folders_paired_by_stem_to_figures(tmp_path, capsys, caplog):
    from skimage.filters import gaussian

    from detector.data.testing import _ellipse, _real_frames

    # 18 real photos and their fakes: the face region blurred, as a generator might do
    for i in range(18):
        frames, centres = _real_frames(i, 1)
        real = frames[0]
        region = _ellipse(centres[0])
        fake = real.copy()
        blurred = gaussian(real, sigma=3, channel_axis=-1, preserve_range=True)
        fake[region] = np.rint(blurred[region]).astype(np.uint8)
        (tmp_path / "real").mkdir(exist_ok=True)
        (tmp_path / "fake").mkdir(exist_ok=True)
        Image.fromarray(real).save(tmp_path / "real" / f"photo{i:02d}.jpg", quality=95)
        Image.fromarray(fake).save(tmp_path / "fake" / f"photo{i:02d}.png")
    data = f"folders:real={tmp_path / 'real'},fake={tmp_path / 'fake'},pair=stem,val=0.2,test=0.3"
    unavailable = _train_extract_figures(data, tmp_path, capsys)
    drawn = {stem for stem, why in unavailable.items() if not why}
    assert PAIRED <= drawn, unavailable
    # everything but what needs the models; localisation uses the binary defocus mask
    assert set(unavailable) - drawn == NEEDS_MODELS, unavailable
