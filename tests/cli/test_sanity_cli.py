"""``defocus sanity`` end to end on the synthetic data, and its one-line errors."""

from __future__ import annotations

import json

import pytest

from defocus_forensics.cli import main


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # shared 2-core machine
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from detector.models import build_detector, save_checkpoint

    folder = tmp_path_factory.mktemp("ckpt")
    out = {}
    for kind in ("defocus", "rgb"):
        model = build_detector(kind, backbone="mobilenetv3_small_050", image_size=32)
        out[kind] = save_checkpoint(model, folder / f"{kind}.safetensors")
    return out


@pytest.mark.slow
def test_sanity_writes_json_and_csv_for_both_models(checkpoints, tmp_path, capsys):
    out = tmp_path / "sanity"
    argv = ["sanity", "--defocus-model", str(checkpoints["defocus"]),
            "--rgb-model", str(checkpoints["rgb"]), "--data", "synthetic:n=40,size=32,seed=0",
            "--out", str(out), "--n", "3", "--stages", "3", "--nsamples", "4",
            "--background", "2", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and printed[0].startswith("sanity: defocus model")
    data = json.loads((out / "sanity.json").read_text())
    assert [r["model"] for r in data["results"]] == ["defocus", "rgb"]
    for r in data["results"]:
        assert [s["name"] for s in r["stages"]][-1] == "all" and len(r["stages"]) == 3
        assert len(r["ids"]) == 3 and r["info"]["explainer"]["nsamples"] == 4
        assert isinstance(r["flagged"], bool) and r["threshold"] == 0.5
    rows = (out / "sanity.csv").read_text().splitlines()
    assert rows[0] == "model,stage,n_layers,id,spearman" and len(rows) == 1 + 2 * 3 * 3


def test_sanity_errors_are_one_line(tmp_path, capsys):
    missing = str(tmp_path / "missing.pt")
    base = ["sanity", "--data", "synthetic:n=8,size=32", "--out", str(tmp_path / "o")]
    assert main([*base, "--defocus-model", missing]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint not found" in err[0]
    # settings are checked before anything is loaded
    assert main([*base, "--defocus-model", missing, "--n", "0"]) == 2
    assert "--n must be a positive integer, got 0" in capsys.readouterr().err
    assert main([*base, "--defocus-model", missing, "--threshold", "2"]) == 2
    assert "sanity_threshold must be in (-1, 1), got 2" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing created before the inputs are checked
