"""Training and evaluation: metric values, the loss going down, exact resume, refusals."""

from __future__ import annotations

import csv
import json
import logging
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from detector.data import ImageDataset, RealFakeFolders, Sample, SyntheticDoF
from detector.memory import InsufficientMemoryError
from detector.models import build_detector
from detector.train import (
    TrainingDataError,
    TrainingDivergedError,
    evaluate,
    train,
    training_memory,
)

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


def _folders(root, values, size=SIZE, seed=0):
    """Real and fake folders of flat grey images: {"real": [v, ...], "fake": [...]} (uint8)."""
    rng = np.random.default_rng(seed)
    for kind, levels in values.items():
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i, v in enumerate(levels):
            noise = rng.integers(-3, 4, (size, size, 3)) if seed is not None else 0
            pixels = np.clip(np.full((size, size, 3), v) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / kind / f"{i:02d}.png")
    return RealFakeFolders(root / "real", root / "fake")


class FirstPixel(nn.Module):
    """Logit ``4 * x[0, 0, 0] - 2`` of each image: outputs known in closed form."""

    def forward(self, images):
        return 4 * images[:, :1, 0, 0] - 2


def test_evaluate_values_by_hand(tmp_path):
    # catches wrong loss, accuracy, AUC, AP or per-group values (not only missing keys)
    real, fake = [10, 60, 140, 200], [120, 180, 250]
    ds = _folders(tmp_path, {"real": real, "fake": fake}, seed=None)
    m = evaluate(FirstPixel(), ds, batch_size=3, device="cpu", progress=False)
    z = {0: [4 * v / 255 - 2 for v in real], 1: [4 * v / 255 - 2 for v in fake]}
    # BCE by hand: log(1 + exp(-z)) for fakes, log(1 + exp(z)) for reals
    loss = sum(math.log1p(math.exp(-t)) for t in z[1]) + sum(math.log1p(math.exp(t)) for t in z[0])
    assert m["loss"] == pytest.approx(loss / 7, rel=1e-6)
    # threshold 0 is grey level 127.5: reals 10, 60 and fakes 180, 250 are right
    assert m["accuracy"] == pytest.approx(4 / 7) and (m["tp"], m["fp"], m["tn"], m["fn"]) == (
        2, 2, 2, 1,
    )  # fmt: skip
    # AUC = share of (fake, real) pairs ordered right: 120 beats 10, 60; 180 beats 10, 60, 140
    assert m["auc"] == pytest.approx((2 + 3 + 4) / 12)
    # AP: precision at each fake when ranked by score (250, 200r, 180, 140r, 120): 1, 2/3, 3/5
    assert m["ap"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert m["per_group"]["fake"]["auc"] == pytest.approx(m["auc"])


def test_training_learns_a_separable_set_and_reports_true_values(tmp_path):
    # catches a training loop that does not learn, or validation values that are not the
    # model's: dark reals vs bright fakes are separated after a few epochs, and the metrics
    # stored for best.pt are what an independent evaluation of best.pt gives
    levels = {"real": [40, 50, 60, 70, 80, 90], "fake": [160, 170, 180, 190, 200, 210]}
    train_ds = _folders(tmp_path / "train", levels, seed=1)
    val_ds = _folders(tmp_path / "val", {"real": [45, 85], "fake": [165, 205]}, seed=2)
    result = train(_model("rgb"), train_ds, val_ds, tmp_path / "run", epochs=4, batch_size=6,
                   lr=3e-3, seed=0, device="cpu", progress=False)  # fmt: skip
    assert result.best_val["auc"] == 1.0
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]
    from detector.models import load_checkpoint

    best = load_checkpoint(result.best_checkpoint)
    again = evaluate(best, val_ds, device="cpu", progress=False, return_predictions=True)
    for key in ("auc", "accuracy", "loss", "ap"):
        assert again[key] == pytest.approx(result.best_val[key], rel=1e-5, abs=1e-7), key
    logits = np.array([p["logit"] for p in again["predictions"]])
    labels = np.array([p["label"] for p in again["predictions"]])
    bce = np.mean(np.logaddexp(0, logits) - labels * logits)  # BCE with logits, float64
    assert again["loss"] == pytest.approx(bce, rel=1e-5)
    meta = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert meta["best_val"]["auc"] == 1.0 and meta["best_epoch"] == result.best_epoch


# -- refusals: never train or select on data that cannot support it ---------------------------


def _one_class(tmp_path, label, n=4):
    samples = []
    for i in range(n):
        p = tmp_path / f"{label}{i}.png"
        Image.fromarray(np.full((SIZE, SIZE, 3), 30 * i + 10, np.uint8)).save(p)
        samples.append(Sample(str(p), label, f"{label}/{i}", "real" if label == 0 else "fake"))
    return ImageDataset(samples)


@pytest.mark.parametrize(
    ("which", "match"),
    [
        ("train_one_class", "training data holds 4 real and 0 fake"),
        ("val_empty", "validation data is empty"),
        ("val_one_class", "validation data holds 0 real and 4 fake"),
    ],
)
def test_data_that_cannot_train_or_select_is_refused(tmp_path, tiny, which, match):
    # the issue's case: one class, or an empty / one-class validation split, trained and
    # saved best.pt chosen on a NaN AUC without a word
    train_ds, val_ds = tiny
    if which == "train_one_class":
        train_ds = _one_class(tmp_path, 0)
    elif which == "val_empty":
        val_ds = ImageDataset([])
    else:
        val_ds = _one_class(tmp_path, 1)
    with pytest.raises(TrainingDataError, match=match):
        train(_model("rgb"), train_ds, val_ds, tmp_path / "run", epochs=1, device="cpu",
              progress=False)  # fmt: skip
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_best_checkpoint_is_never_chosen_on_nan(tmp_path, tiny, caplog):
    # both classes listed, but every fake unreadable: each epoch's AUC is undefined
    train_ds, _ = tiny
    real = _one_class(tmp_path, 0)
    broken = []
    for i in range(2):
        (tmp_path / f"bad{i}.png").write_bytes(b"not a png")
        broken.append(Sample(str(tmp_path / f"bad{i}.png"), 1, f"bad/{i}", "fake"))
    val_ds = ImageDataset(real.samples + broken)
    with caplog.at_level(logging.WARNING, logger="detector"):
        with pytest.raises(TrainingDataError, match="no epoch had a defined validation auc"):
            train(_model("rgb"), train_ds, val_ds, tmp_path / "run", epochs=2, batch_size=8,
                  device="cpu", progress=False)  # fmt: skip
    assert "validation auc is undefined" in caplog.text
    assert not (tmp_path / "run" / "best.pt").exists()
    assert (tmp_path / "run" / "last.pt").is_file()  # the work is kept


def test_a_diverged_run_stops_with_a_clear_error(tmp_path, tiny):
    # caught: NaN logits reaching the metrics as "scores must be finite"
    model = _model("rgb")
    with torch.no_grad():
        model.backbone.fc.bias.fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="loss became nan in epoch 1.*lower lr"):
        train(model, tiny[0], tiny[1], tmp_path / "run", epochs=1, device="cpu", progress=False)
    assert not (tmp_path / "run" / "best.pt").exists()


def test_training_that_cannot_fit_in_memory_is_refused(tmp_path, tiny, monkeypatch):
    # caught: a MemoryError traceback after an empty output folder was made
    train_ds, val_ds = tiny
    big = build_detector("defocus", backbone="resnet10t", image_size=100_000)
    with pytest.raises(InsufficientMemoryError) as err:
        train(big, train_ds, val_ds, tmp_path / "run", device="cpu", progress=False)
    msg = str(err.value)
    assert "training at image size 100000 with batch size 32 needs about" in msg
    assert "fits at batch size 32" in msg and "\n" not in msg
    assert not (tmp_path / "run").exists()

    # what it says would fit does fit, and one more does not (2 GiB available, 80 % usable)
    monkeypatch.setattr("detector.memory.available_memory", lambda: 2 * 2**30)
    model = _model("rgb")
    model.image_size = 1024
    with pytest.raises(InsufficientMemoryError) as err:
        train(model, train_ds, None, tmp_path / "run", batch_size=64, device="cpu",
              progress=False)  # fmt: skip
    said = str(err.value).split("; ", 1)[1]
    size = int(said.split("image size ")[1].split()[0])
    batch = int(said.split("batch size ")[2].split()[0])
    budget = 0.8 * 2 * 2**30

    def need(s, b):
        return training_memory(model, s, b, data_image_size=SIZE)

    assert need(size, 64) <= budget < need(size + 1, 64)
    assert need(1024, batch) <= budget < need(1024, batch + 1)


def test_training_memory_scales_with_pixels_and_batch():
    # everything but the weights and optimizer state is per image and per pixel
    model = _model("defocus")
    fixed = 16 * sum(p.numel() for p in model.parameters())
    a = training_memory(model, 64, 8) - fixed
    assert training_memory(model, 128, 8) - fixed == pytest.approx(4 * a, rel=1e-6)
    assert training_memory(model, 64, 16) - fixed == pytest.approx(2 * a, rel=1e-6)
    assert training_memory(nn.Linear(2, 2), 64, 8) is None  # not a detector: no estimate


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


def _onecycle_lr(step: int, total: int, max_lr: float) -> float:
    """Closed form (float64) of the one-cycle rate after ``step`` optimizer steps.

    Warm-up from ``max_lr / 25`` to ``max_lr`` over the first ``0.3 * total - 1``
    steps, then a cosine down to ``max_lr / 25 / 1e4`` at step ``total - 1``
    (the defaults of Smith & Topin's one-cycle policy as torch states them).
    """
    start, low = max_lr / 25.0, max_lr / 25.0 / 1e4
    end_up, end_down = 0.3 * total - 1, total - 1

    def cos(a, b, pct):
        return b + (a - b) / 2.0 * (1.0 + math.cos(math.pi * pct))

    if step <= end_up:
        return cos(start, max_lr, step / end_up)
    return cos(max_lr, low, (step - end_up) / (end_down - end_up))


def test_onecycle_rates_follow_the_closed_form(tmp_path, tiny):
    train_ds, val_ds = tiny  # 16 samples, batch 4: 4 steps an epoch, 20 in all
    result = train(
        _model(), train_ds, val_ds, tmp_path, epochs=5, batch_size=4, lr=2e-3, seed=0,
        device="cpu", progress=False, schedule="onecycle",
    )  # fmt: skip
    got = [h["lr"] for h in result.history]  # the rate of each epoch's last step
    want = [_onecycle_lr(4 * e - 1, 20, 2e-3) for e in range(1, 6)]
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert got[0] < got[1] > got[2] > got[3] > got[4] == pytest.approx(2e-3 / 25e4)
    # a constant schedule keeps the rate
    const = train(_model(), train_ds, None, tmp_path / "c", epochs=2, batch_size=8, lr=2e-3,
                  seed=0, device="cpu", progress=False)  # fmt: skip
    assert [h["lr"] for h in const.history] == [2e-3, 2e-3]


def test_onecycle_resumes_exactly_and_refuses_other_epochs(tmp_path, tiny):
    train_ds, val_ds = tiny
    kw = dict(batch_size=8, lr=2e-3, seed=3, device="cpu", progress=False, schedule="onecycle")
    train(_model(seed=0), train_ds, val_ds, tmp_path / "a", epochs=3, **kw)

    # interrupted after epoch 1 of 3: simulated by a callback that stops the run
    class Stop(Exception):
        pass

    def stop(row):
        raise Stop

    with pytest.raises(Stop):
        train(_model(seed=0), train_ds, val_ds, tmp_path / "b", epochs=3, callback=stop, **kw)
    resumed = train(_model(seed=99), train_ds, val_ds, tmp_path / "b", epochs=3, **kw)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    from detector.checkpoints import read_checkpoint

    a = read_checkpoint(tmp_path / "a" / "last.pt").state_dict
    b = read_checkpoint(tmp_path / "b" / "last.pt").state_dict
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)
    with pytest.raises(ValueError, match="one-cycle schedule of 6 steps"):
        train(_model(seed=0), train_ds, val_ds, tmp_path / "a", epochs=4, **kw)


def test_channels_last_trains_the_same_model(tmp_path, tiny):
    train_ds, val_ds = tiny
    kw = dict(epochs=2, batch_size=8, lr=1e-3, seed=1, device="cpu", progress=False)
    plain_model, cl_model = _model(seed=0), _model(seed=0)
    plain = train(plain_model, train_ds, val_ds, tmp_path / "a", **kw)
    cl = train(cl_model, train_ds, val_ds, tmp_path / "b", channels_last=True, **kw)
    # the same arithmetic in another memory layout: equal to float rounding
    np.testing.assert_allclose(
        [h["train_loss"] for h in cl.history], [h["train_loss"] for h in plain.history], rtol=1e-4
    )
    for (name, p), q in zip(plain_model.named_parameters(), cl_model.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-4, msg=name)
    # the model comes back in the default layout
    assert all(p.is_contiguous() for p in cl_model.parameters())


def test_precision_is_resolved_and_checked():
    from detector.train import native_bfloat16, resolve_precision

    assert resolve_precision("float32") == "float32"
    assert resolve_precision("bfloat16") == "bfloat16"
    assert resolve_precision("auto") == ("bfloat16" if native_bfloat16() else "float32")
    with pytest.raises(ValueError, match="precision must be one of .* got 'half'"):
        resolve_precision("half")
    assert native_bfloat16("meta") is False


@pytest.mark.skipif(
    not __import__("detector.train", fromlist=["x"]).native_bfloat16(),
    reason="this CPU has no native bfloat16",
)
def test_bfloat16_training_is_seeded_and_close_to_float32(tmp_path, tiny):
    train_ds, val_ds = tiny
    kw = dict(epochs=2, batch_size=8, lr=1e-3, seed=2, device="cpu", progress=False)
    ref = train(_model(seed=0), train_ds, val_ds, tmp_path / "f32", **kw)
    a = train(_model(seed=0), train_ds, val_ds, tmp_path / "a", precision="bfloat16", **kw)
    b = train(_model(seed=0), train_ds, val_ds, tmp_path / "b", precision="bfloat16", **kw)
    loss = lambda r: [h["train_loss"] for h in r.history]  # noqa: E731
    assert loss(a) == loss(b)  # seeded: the same numbers run after run
    assert loss(a) != loss(ref)  # autocast was on (bfloat16 rounds differently) ...
    np.testing.assert_allclose(loss(a), loss(ref), rtol=0.05)  # ... to bfloat16's precision
    assert (
        json.loads((tmp_path / "a" / "metrics.json").read_text())["settings"]["precision"]
        == "bfloat16"
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"schedule": "cosine"}, "schedule must be one of"), ({"precision": "fp16"}, "precision")],
)
def test_schedule_and_precision_errors(tmp_path, tiny, kwargs, match):
    with pytest.raises(ValueError, match=match):
        train(_model("rgb"), tiny[0], None, tmp_path, device="cpu", progress=False, **kwargs)


def test_the_fused_adam_update_is_adams_rule():
    from detector.train import _adam

    torch.manual_seed(0)
    fused_model, loop_model = nn.Linear(5, 3), nn.Linear(5, 3)
    loop_model.load_state_dict(fused_model.state_dict())
    fused = _adam(fused_model, 1e-2, 1e-4, torch.device("cpu"))
    loop = torch.optim.Adam(loop_model.parameters(), lr=1e-2, weight_decay=1e-4, foreach=False)
    assert fused.defaults["fused"]
    x = torch.randn(8, 5)
    for _ in range(5):
        for model, opt in ((fused_model, fused), (loop_model, loop)):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
    for p, q in zip(fused_model.parameters(), loop_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
