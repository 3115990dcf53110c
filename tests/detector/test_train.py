"""Training and evaluation: the loss goes down, outputs are written, resume is exact."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from detector.data import RealFakeFolders, SyntheticDoF
from detector.models import build_detector
from detector.train import evaluate, train

SIZE = 32


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on shared, oversubscribed cores this is several times faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model(kind="defocus", seed=0):
    torch.manual_seed(seed)
    return build_detector(kind, backbone="resnet10t", image_size=SIZE)


@pytest.fixture(scope="module")
def tiny():
    return SyntheticDoF(16, size=SIZE, seed=4), SyntheticDoF(8, size=SIZE, seed=5)


def test_training_lowers_the_loss(tmp_path, tiny):
    # full-batch Adam on 16 samples: the training loss falls epoch after epoch
    train_ds, _ = tiny
    result = train(
        _model(),
        train_ds,
        None,
        tmp_path,
        epochs=6,
        batch_size=16,
        lr=1e-3,
        seed=0,
        device="cpu",
        progress=False,
    )
    losses = [h["train_loss"] for h in result.history]
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses
    assert losses[-1] < 0.6 * losses[0], losses


def test_outputs_and_exact_resume(tmp_path, tiny):
    train_ds, val_ds = tiny
    kw = dict(batch_size=8, lr=1e-3, seed=3, device="cpu", progress=False)
    straight = train(_model(seed=0), train_ds, val_ds, tmp_path / "a", epochs=2, **kw)
    for name in ("best.pt", "last.pt", "history.csv", "metrics.json"):
        assert (tmp_path / "a" / name).is_file(), name
    with open(tmp_path / "a" / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1", "2"] and "val_auc" in rows[0]
    meta = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert meta["best_epoch"] in (1, 2) and meta["model"]["kind"] == "defocus"
    assert meta["train_data"]["dataset"] == "SyntheticDoF"

    # the same run in two parts: one epoch, then a second call resumes from last.pt
    first = train(_model(seed=0), train_ds, val_ds, tmp_path / "b", epochs=1, **kw)
    assert len(first.history) == 1
    resumed_model = _model(seed=99)  # its own weights are replaced by last.pt
    resumed = train(resumed_model, train_ds, val_ds, tmp_path / "b", epochs=2, **kw)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    from detector.checkpoints import read_checkpoint

    a = read_checkpoint(tmp_path / "a" / "last.pt").state_dict
    b = read_checkpoint(tmp_path / "b" / "last.pt").state_dict
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)
    assert resumed.history[1]["train_loss"] == pytest.approx(
        straight.history[1]["train_loss"], abs=0
    )


def test_resume_with_another_model_is_refused(tmp_path, tiny):
    train_ds, _ = tiny
    train(
        _model("rgb"),
        train_ds,
        None,
        tmp_path,
        epochs=1,
        batch_size=8,
        device="cpu",
        progress=False,
    )
    with pytest.raises(ValueError, match="was trained with model config"):
        train(_model("defocus"), train_ds, None, tmp_path, epochs=2, device="cpu", progress=False)


def test_unreadable_images_are_skipped_and_listed(tmp_path):
    for i in range(4):
        for kind, value in (("real", 60), ("fake", 180)):
            p = tmp_path / kind / f"{i}.png"
            p.parent.mkdir(exist_ok=True)
            Image.fromarray(np.full((SIZE, SIZE, 3), value + i, np.uint8)).save(p)
    (tmp_path / "fake" / "corrupt.png").write_bytes(b"not an image at all")
    ds = RealFakeFolders(tmp_path / "real", tmp_path / "fake")
    result = train(
        _model("rgb"),
        ds,
        ds,
        tmp_path / "run",
        epochs=1,
        batch_size=4,
        device="cpu",
        progress=False,
    )
    assert result.n_skipped == 2  # once in training, once in validation
    assert [s["path"] for s in result.skipped] == [str(tmp_path / "fake" / "corrupt.png")]
    meta = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert meta["n_skipped"] == 2 and meta["skipped"][0]["path"].endswith("corrupt.png")
    assert result.best_val["n"] == 8  # evaluated on the readable images only
    m = evaluate(_model("rgb"), ds, device="cpu", progress=False)
    assert m["n_skipped"] == 1 and m["skipped"][0]["reason"]


def test_evaluate_reports_every_metric_and_group(tiny):
    _, val_ds = tiny
    m = evaluate(_model(), val_ds, device="cpu", progress=False, return_predictions=True)
    for key in ("accuracy", "auc", "ap", "eer", "loss", "video_auc", "n_skipped"):
        assert key in m
    assert m["n"] == 8 and m["n_real"] == 4 and math.isnan(m["video_auc"])
    assert set(m["per_group"]) <= {"all_in_focus", "inconsistent_blur", "pasted_region"}
    preds = m["predictions"]
    assert [p["id"] for p in preds] == [s.id for s in val_ds.samples]
    logits = np.array([p["logit"] for p in preds])
    labels = np.array([p["label"] for p in preds])
    assert m["accuracy"] == pytest.approx(float(((logits > 0) == labels).mean()))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"select": "f1"}, "select"),
    ],
)
def test_train_argument_errors(tmp_path, tiny, kwargs, match):
    with pytest.raises(ValueError, match=match):
        train(_model("rgb"), tiny[0], None, tmp_path, device="cpu", progress=False, **kwargs)
