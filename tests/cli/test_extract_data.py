"""``defocus extract --data``: the test split by default, its background from the train split."""

from __future__ import annotations

import json

import pytest
import torch

from defocus_forensics.cli import main
from detector.data import open_data

SPEC = "synthetic:n=40,size=32,seed=2"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from detector.models import build_detector, save_checkpoint

    torch.set_num_threads(1)
    model = build_detector("defocus", backbone="mobilenetv3_small_050", image_size=32)
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "defocus.safetensors")


def _extract(tmp_path, checkpoint, *extra):
    return main(["extract", "--data", SPEC, "--defocus-model", str(checkpoint), "--nsamples",
                 "2", "--background", "3", "--shard-size", "8", "--out",
                 str(tmp_path / "cache"), "--quiet", *extra])  # fmt: skip


def test_the_test_split_with_a_background_from_the_train_split(tmp_path, checkpoint, capsys):
    from cache import open_cache

    assert _extract(tmp_path, checkpoint) == 0
    cache = open_cache(tmp_path / "cache")
    test_ids = [s.id for s in open_data(SPEC, "test").samples]
    assert sorted(cache.load("id").tolist()) == sorted(test_ids)
    train_reals = {s.id for s in open_data(SPEC, "train").samples if s.label == 0}
    background = cache.manifest["config"]["background"]["ids"]
    assert len(background) == 3 and set(background) <= train_reals
    info = json.dumps(cache.manifest)
    assert f"{SPEC},split=test" in info and f"{SPEC},split=train" in info


def test_the_background_never_comes_from_the_images_explained(tmp_path, checkpoint, capsys):
    assert _extract(tmp_path, checkpoint, "--background-data", SPEC + ",split=test") == 2
    err = capsys.readouterr().err
    assert "holds no real image that is not being explained" in err
    argv = ["extract", "--data", SPEC + ",split=all", "--defocus-model", str(checkpoint),
            "--out", str(tmp_path / "c2"), "--quiet"]  # fmt: skip
    assert main(argv) == 2
    assert "give --background-data SPEC" in capsys.readouterr().err
    # another seed's reals may serve as the background of split=all
    other = "synthetic:n=8,size=32,seed=9"
    assert main([*argv[:-1], "--nsamples", "2", "--background", "2", "--background-data",
                 other, "--quiet"]) == 0  # fmt: skip
