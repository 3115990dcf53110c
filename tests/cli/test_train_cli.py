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
    assert (
        main(
            [
                "make-data",
                "--out",
                str(data),
                "--data",
                "synthetic:n=20,size=32,seed=1",
                "--quiet",
            ]
        )
        == 0
    )
    assert (data / "index.csv").is_file() and list((data / "masks").glob("*.png"))
    common = [
        "--data",
        f"index:{data / 'index.csv'}",
        "--kind",
        "defocus",
        "--backbone",
        "resnet10t",
        "--image-size",
        "32",
    ]
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                *common,
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--lr",
                "1e-3",
                "--out",
                str(run),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["best_epoch"] == 1 and summary["n_skipped"] == 0
    for name in ("best.pt", "last.pt", "history.csv", "metrics.json"):
        assert (run / name).is_file()

    ev = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(run / "best.pt"),
                "--data",
                f"index:{data},split=test",
                "--out",
                str(ev),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
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
    args = [
        "train",
        "--data",
        "synthetic:n=16",
        "--kind",
        "rgb",
        "--backbone",
        "resnet10t",
        "--image-size",
        "32",
        "--batch-size",
        "4",
        "--out",
        str(tmp_path),
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main([*args, "--epochs", "1"]) == 0
    assert main([*args, "--epochs", "2"]) == 0
    with open(tmp_path / "history.csv") as fh:
        assert [r["epoch"] for r in csv.DictReader(fh)] == ["1", "2"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["train", "--data", "index:/no/such/dir/index.csv", "--backbone", "resnet10t"],
            "index not found: '/no/such/dir/index.csv'",
        ),
        (["train", "--data", "cifake:", "--backbone", "resnet10t"], "cifake data needs root="),
        (["train", "--data", "synthetic:n=16", "--backbone", "not_a_net"], "unknown timm backbone"),
        (["train", "--data", "synthetic:n=0"], "synthetic data: n must be a positive integer"),
        (["train", "--data", "synthetic:n=16,colour=red"], "unknown key 'colour' in synthetic"),
        (["train", "--data", "synthetic:n=16,split=dev"], "split must be one of"),
        (["train", "--data", "synthetic:n=16,split=test"], "remove split= from the spec"),
        (["train", "--data", "folders:real=/no/r,fake=/no/f"], "real folder not found: '/no/r'"),
        (["evaluate", "--checkpoint", "/no/such.pt"], "checkpoint not found"),
        (["make-data", "--data", "index:x.csv"], "make-data writes the built-in synthetic"),
        (["make-data", "--data", "synthetic:n=4,size=100000"], "needs about"),
    ],
)
def test_user_errors_exit_2_with_a_message(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()  # nothing created before the error


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["train", "--dataset", "synthetic"], "--dataset was replaced: give the data as --data"),
        (["evaluate", "--checkpoint", "x.pt", "--split", "val"], "split in the spec"),
        (["train", "--workers", "2"], "use --loader-workers N"),
        (["make-data", "--out", "x", "--n", "20"], "--n was replaced"),
    ],
)
def test_old_options_say_what_replaced_them(capsys, argv, hint):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert hint in capsys.readouterr().err


def _png(path, value, size=16):
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


def _ffpp_tree(root):
    for i in range(10):
        v = f"{i:03d}"
        for f in range(3):
            _png(root / "original_sequences/youtube/raw/v1faces" / v / f"{f:04d}.png", i * 10 + f)
            _png(
                root
                / f"manipulated_sequences/Deepfakes/raw/v1faces/{v}_{(i + 1) % 10:03d}"
                / f"{f:04d}.png",
                500 + i * 10 + f,
            )


def _cifake_tree(root):
    for split, n in (("train", 10), ("test", 4)):
        for cls, base in (("REAL", 0), ("FAKE", 1000)):
            for i in range(n):
                _png(root / split / cls / f"{i}.jpg".replace(".jpg", ".png"), base + i, size=8)


@pytest.mark.parametrize(
    ("dataset", "make_tree", "n_test"), [("ffpp", _ffpp_tree, 12), ("cifake", _cifake_tree, 8)]
)
def test_train_and_evaluate_on_test_made_trees(tmp_path, capsys, dataset, make_tree, n_test):
    root = tmp_path / dataset
    make_tree(root)
    common = [
        "--data",
        f"{dataset}:root={root}",
        "--kind",
        "rgb",
        "--backbone",
        "resnet10t",
        "--image-size",
        "32",
        "--device",
        "cpu",
        "--quiet",
    ]
    assert (
        main(
            ["train", *common, "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / "run")]
        )
        == 0
    )
    assert (
        main(
            [
                "evaluate",
                *common,
                "--checkpoint",
                str(tmp_path / "run" / "best.pt"),
                "--out",
                str(tmp_path / "ev"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert report["metrics"]["n"] == n_test  # ffpp: 2 test videos x 3 frames, real + fake
    if dataset == "ffpp":
        assert report["metrics"]["n_videos"] == 4
