"""``defocus demo --quick``: every stage, the layout, the headline numbers, stage reuse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from defocus_forensics.cli import main
from defocus_forensics.demo import DemoConfig, DemoResult, format_closing_summary, run_demo


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The quick demo, run once per session (reruns reuse the finished stages)."""
    out = tmp_path_factory.getbasetemp() / "demo-quick"
    return run_demo(DemoConfig(out=out, quick=True, progress=False))


def test_config_presets_and_validation():
    quick, full = DemoConfig(quick=True), DemoConfig()
    assert quick.image_size < full.image_size and quick.n_train < full.n_train
    assert DemoConfig(quick=True, epochs=5).epochs == 5
    with pytest.raises(ValueError, match="n_test must be at least 8"):
        DemoConfig(quick=True, n_test=4)
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        DemoConfig(seed=-1)
    with pytest.raises(ValueError, match="image_size must be an integer >= 32, got 16"):
        DemoConfig(image_size=16)
    assert "out" not in quick.settings()
    assert quick.to_dict()["out"] == str(Path.cwd() / "runs" / "demo")  # absolute at once


def test_demo_refuses_a_folder_with_other_settings(tmp_path, capsys):
    (tmp_path / "run.json").write_text(json.dumps({"settings": {"seed": 5}}))
    with pytest.raises(ValueError, match="holds a demo run with other settings"):
        run_demo(DemoConfig(out=tmp_path, quick=True, progress=False))
    assert main(["demo", "--quick", "--out", str(tmp_path), "--quiet"]) == 2
    assert "use another --out" in capsys.readouterr().err
    assert main(["demo", "--quick", "--out", str(tmp_path / "new"), "--device", "gpu7"]) == 2
    assert "device" in capsys.readouterr().err


def test_closing_summary_format(tmp_path):
    result = DemoResult(
        out=tmp_path,
        headline={
            "test_auc_defocus": 0.91,
            "test_auc_rgb": None,
            "alignment_defocus_pasted_region": {"mean": 0.5, "std": 0.1, "n": 3, "null_p": 0.2},
            "ks_mean_local_variance_pasted_region": {"D": 0.25, "p": 0.001},
        },
        paths={"report": "r.html"},
        seconds=12.0,
    )
    text = format_closing_summary(result)
    assert "defocus model 0.910   RGB model n/a" in text
    assert "alignment  defocus  pasted_region" in text and "0.500 ± 0.100 (n=3" in text
    assert "D=0.250 p=0.001" in text and "report  r.html" in text


@pytest.mark.slow
def test_quick_demo_writes_everything(demo_run):
    from cache import open_cache

    out = demo_run.out
    cache = open_cache(out / "cache")
    assert cache.verify().ok
    assert cache.groups == ["real", "all_in_focus", "inconsistent_blur", "pasted_region"]
    for field in ("image", "defocus", "attr_defocus", "attr_rgb", "logit_defocus", "logit_rgb",
                  "features_defocus", "features_rgb", "mask"):  # fmt: skip
        assert field in cache.fields
    assert cache.manifest["config"]["explainer"]["name"] == "shap-gradient"
    for kind in ("defocus", "rgb"):
        assert (out / "models" / kind / "best.pt").is_file()
    assert (out / "summary" / "summary.csv").is_file() and (out / "report.html").is_file()
    figures = json.loads((out / "figures" / "figures_manifest.json").read_text())["figures"]
    assert len(figures) >= 10
    for name in ("overview", "masks", "variance", "embedding", "alignment", "localisation",
                 "explorer"):  # fmt: skip
        assert (out / "notebooks" / f"{name}.html").is_file()
    run = json.loads((out / "run.json").read_text())
    assert set(run["stages"]) == {"data", "train-defocus", "train-rgb", "evaluate", "extract",
                                  "analyse", "notebooks", "report"}  # fmt: skip
    assert all(s["status"] in ("done", "reused") for s in run["stages"].values())


def _mean_local_variance(cache, group: str, window: int) -> np.ndarray:
    """Per-map mean of E[x^2] - E[x]^2 over zero-padded window x window boxes (float64).

    Box sums come from summed-area tables, an independent route from the analysis code's
    uniform filters.
    """
    maps = cache.load("defocus", group).astype(np.float64)
    r = window // 2
    padded = np.pad(maps, ((0, 0), (r + 1, r), (r + 1, r)))
    h, w = maps.shape[1:]

    def box_mean(a):
        s = a.cumsum(1).cumsum(2)
        total = (
            s[:, window:, window:] - s[:, :-window, window:] - s[:, window:, :-window]
            + s[:, :-window, :-window]
        )  # fmt: skip
        return total[:, :h, :w] / window**2

    return (box_mean(padded**2) - box_mean(padded) ** 2).mean(axis=(1, 2))


@pytest.mark.slow
def test_headline_numbers_agree_with_their_sources(demo_run):
    """Recompute the headline from the cache and the summary table, independently."""
    import pandas as pd
    from scipy.stats import ks_2samp
    from sklearn.metrics import roc_auc_score

    from cache import open_cache

    h = demo_run.headline
    cache = open_cache(demo_run.out / "cache")
    labels = cache.load("label")
    # the RGB model's logits do not depend on the batch, so the AUC of the cached
    # test logits equals the evaluation's (the defocus estimator normalises per batch)
    auc_rgb = roc_auc_score(labels, cache.load("logit_rgb"))
    assert h["test_auc_rgb"] == pytest.approx(auc_rgb, abs=1e-9)
    # the defocus maps of these images do not depend on their batch either (their edge
    # maxima reach 1), so the cached logits give the evaluation's AUC: catches an AUC of
    # the wrong model, split or sign
    auc_defocus = roc_auc_score(labels, cache.load("logit_defocus"))
    assert h["test_auc_defocus"] == pytest.approx(auc_defocus, abs=1e-9)
    real_var = _mean_local_variance(cache, "real", window=15)  # FigureParams' window
    table = pd.read_csv(demo_run.out / "summary" / "summary.csv")
    for group in ("all_in_focus", "inconsistent_blur", "pasted_region"):
        for model in ("defocus", "rgb"):
            rows = table[(table.analysis == "alignment") & (table.group == group)
                         & (table.model == model) & (table.metric == "mean")]  # fmt: skip
            head = h[f"alignment_{model}_{group}"]
            assert head["mean"] == pytest.approx(float(rows.value.iloc[0]), rel=1e-9)
            assert 0.0 <= head["mean"] <= 1.0 and head["n"] == cache.n_samples(group)
        # KS of per-image mean local variance recomputed from the cache's maps (summed-area
        # tables in float64, not the analysis code): catches a wrong quantity, window,
        # group or sample orientation
        ks = h[f"ks_mean_local_variance_{group}"]
        fake_var = _mean_local_variance(cache, group, window=15)
        want = ks_2samp(fake_var, real_var)
        assert ks["D"] == pytest.approx(want.statistic, rel=1e-12, abs=0)
        assert ks["p"] == pytest.approx(want.pvalue, rel=1e-9, abs=0)
        assert ks["mean_real"] == pytest.approx(real_var.mean(), rel=1e-9)
        assert ks["mean_fake"] == pytest.approx(fake_var.mean(), rel=1e-9)
    text = format_closing_summary(demo_run)
    assert f"RGB model {auc_rgb:.3f}" in text and "KS test" in text


@pytest.mark.slow
def test_rerun_reuses_finished_stages(demo_run):
    again = run_demo(DemoConfig(out=demo_run.out, quick=True, progress=False))
    status = {k: v["status"] for k, v in again.stages.items()}
    for stage in ("train-defocus", "train-rgb", "extract", "analyse", "notebooks"):
        assert status[stage] == "reused", status
    assert again.headline == demo_run.headline
    assert np.isfinite(again.seconds)


def test_demo_stops_before_training_without_the_notebook_packages(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "papermill" else real(name, *a),
    )
    assert main(["demo", "--quick", "--out", str(tmp_path / "d"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "pip install papermill" in err and "--no-notebooks" in err
    assert not (tmp_path / "d" / "models").exists()  # nothing trained
