"""``defocus make-data``, ``defocus train`` and ``defocus evaluate`` end to end."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from defocus_forensics.cli import main


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_make_data_train_evaluate(tmp_path, capsys):
    data = tmp_path / "syn"
    assert main(["make-data", "--out", str(data), "--n", "20", "--size", "32", "--seed", "1",
                 "--no-progress"]) == 0
    assert (data / "index.csv").is_file() and list((data / "masks").glob("*.png"))
    common = ["--dataset", "index", "--root", str(data), "--kind", "defocus",
              "--backbone", "resnet10t", "--image-size", "32"]
    run = tmp_path / "run"
    assert main(["train", *common, "--epochs", "1", "--batch-size", "8", "--lr", "1e-3",
                 "--out", str(run), "--device", "cpu", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["best_epoch"] == 1 and summary["n_skipped"] == 0
    for name in ("best.pt", "last.pt", "history.csv", "metrics.json"):
        assert (run / name).is_file()

    ev = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--dataset", "index",
                 "--root", str(data), "--split", "test", "--out", str(ev), "--device", "cpu",
                 "--no-progress"]) == 0
    report = json.loads((ev / "metrics.json").read_text())
    assert report["split"] == "test" and report["model"]["kind"] == "defocus"
    assert report["metrics"]["n"] == 4  # 2 test scenes of 10, a real and a fake each
    with open(ev / "predictions.csv") as fh:
        preds = list(csv.DictReader(fh))
    assert len(preds) == 4 and {"id", "group", "label", "logit"} == set(preds[0])
    with open(ev / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["group"] == "all"


def test_train_synthetic_resumes(tmp_path, capsys):
    args = ["train", "--dataset", "synthetic", "--n", "8", "--kind", "rgb", "--backbone",
            "resnet10t", "--image-size", "32", "--batch-size", "4", "--out", str(tmp_path),
            "--device", "cpu", "--no-progress"]
    assert main([*args, "--epochs", "1"]) == 0
    assert main([*args, "--epochs", "2"]) == 0
    with open(tmp_path / "history.csv") as fh:
        assert [r["epoch"] for r in csv.DictReader(fh)] == ["1", "2"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--dataset", "index", "--root", "/no/such/dir", "--backbone", "resnet10t"],
         "index not found"),
        (["train", "--dataset", "cifake", "--backbone", "resnet10t"], "needs a root"),
        (["train", "--dataset", "synthetic", "--backbone", "not_a_net"], "unknown timm backbone"),
        (["evaluate", "--checkpoint", "/no/such.pt"], "checkpoint not found"),
    ],
)
def test_user_errors_exit_2_with_a_message(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
