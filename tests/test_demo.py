"""``defocus demo --quick``: every stage, the layout, the headline numbers, stage reuse."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from analysis.config import AnalysisConfig
from defocus_forensics.cli import main
from defocus_forensics.demo import (
    ANALYSIS_FULL,
    ANALYSIS_QUICK,
    DemoAnalysis,
    DemoConfig,
    DemoResult,
    format_closing_summary,
    run_demo,
)


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


def test_analysis_presets_are_one_config_per_preset():
    quick, full = DemoConfig(quick=True), DemoConfig(seed=3)
    assert quick.analysis.config == ANALYSIS_QUICK.config.replace(seed=0)
    assert full.analysis.config == ANALYSIS_FULL.config.replace(seed=3)
    # p < 0.01 is reachable in both presets (999 permutations: p >= 0.001)
    assert quick.analysis.config.min_pvalue == full.analysis.config.min_pvalue == 1 / 1000
    assert "analysis" not in quick.settings()  # reruns only the analysis stages
    assert quick.to_dict()["analysis"]["config"]["n_permutations"] == 999
    mine = DemoConfig(quick=True, analysis={"config": {"n_boot": 50}, "sanity_samples": 0})
    assert mine.analysis.config == AnalysisConfig(n_boot=50) and mine.analysis.sanity_samples == 0
    with pytest.raises(ValueError, match="sanity_stages must be an integer >= 1, got 0"):
        DemoAnalysis(sanity_stages=0)
    with pytest.raises(ValueError, match=r"unknown analysis settings \['n_perm'\]"):
        DemoConfig(analysis={"config": {"n_perm": 5}})


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
            "auc_defocus": {"auc": 0.91, "ci_low": 0.8, "ci_high": 0.97, "n": 40,
                            "n_real": 20, "n_fake": 20, "level": "frame"},
            "alignment_defocus_pasted_region": {
                "mean": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 3, "floor": 0.45,
                "skill_mean": 0.09, "skill_ci_low": -0.1, "skill_ci_high": 0.3, "skill_p": 0.2,
                "n_permutations": 999, "p_min": 0.001, "level": "frame",
            },
            "paired_pasted_region": {"model_a": "defocus", "model_b": "rgb", "n": 3,
                                     "skill_mean_diff": 0.05, "skill_ci_low": -0.2,
                                     "skill_ci_high": 0.3, "skill_p": 0.7, "level": "frame"},
            "ks_mean_local_variance_pasted_region": {"D": 0.25, "p": 0.001, "n_real": 8,
                                                     "n_fake": 3, "level": "frame"},
            "sanity_rgb": {"full_median": 0.9, "flagged": True, "threshold": 0.5,
                           "message": "rgb model FLAGGED: ...", "n_samples": 4},
            "level": "frame",
            "analysis_config": {"n_permutations": 999},
        },
        paths={"report": "r.html"},
        seconds=12.0,
    )  # fmt: skip
    text = format_closing_summary(result)
    assert "frame-level; p-values from 999 permutations (none below 0.001)" in text
    assert "skill = (raw - floor) / (1 - floor)" in text  # what the numbers mean, once
    lines = {ln.split("  ")[1].strip(): ln.split("  ")[-1].strip() for ln in text.splitlines()
             if ln.startswith("  ") and "  " in ln.strip()}  # fmt: skip
    assert lines["test AUC, defocus model"] == "0.910 [0.800, 0.970]"
    assert (
        lines["alignment, raw score, defocus model, pasted_region"]
        == "0.500 [0.400, 0.600]; floor 0.450"
    )
    assert (
        lines["alignment skill, defocus model, pasted_region"] == "0.090 [-0.100, 0.300], p = 0.200"
    )
    assert lines["paired difference, skill, defocus model - RGB model, pasted_region"] == (
        "0.050 [-0.200, 0.300], p = 0.700"
    )
    assert "D = 0.250, p = 0.001" in text and "report  r.html" in text
    assert "  ! rgb model FLAGGED" in text


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
                                  "sanity", "analyse", "notebooks", "report"}  # fmt: skip
    assert (out / "sanity" / "sanity.json").is_file() and (out / "sanity" / "sanity.csv").is_file()
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
        for model in ("defocus", "rgb"):
            head = h[f"alignment_{model}_{group}"]
            per = table[(table.analysis == "alignment") & (table.group == group)
                        & (table.model == model)].set_index("metric")["value"]  # fmt: skip
            assert head["skill_mean"] == pytest.approx(float(per["skill_mean"]), rel=1e-9)
            assert head["floor"] == pytest.approx(float(per["floor_mean"]), rel=1e-9)
            assert head["n_permutations"] == 999 and head["p_min"] == pytest.approx(1 / 1000)
        paired = h[f"paired_{group}"]
        diff = table[(table.group == group) & (table.model == "defocus-rgb")
                     & (table.metric == "skill_diff_mean")].value  # fmt: skip
        assert paired["skill_mean_diff"] == pytest.approx(float(diff.iloc[0]), rel=1e-9)
    # the AUC row of the cached logits: the evaluation's for the RGB model (see above)
    assert h["auc_rgb"]["auc"] == pytest.approx(auc_rgb, abs=1e-9)
    assert h["auc_rgb"]["ci_low"] <= auc_rgb <= h["auc_rgb"]["ci_high"]
    text = format_closing_summary(demo_run)
    assert "test AUC, RGB model    " in text and f"{auc_rgb:.3f} [" in text and "KS test" in text


@pytest.mark.slow
def test_one_analysis_config_everywhere(demo_run):
    """run.json, summary.json, the figures manifest and every notebook use the same config."""
    out = demo_run.out
    expected = DemoConfig(quick=True).analysis.config.to_dict()
    run = json.loads((out / "run.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    figures = json.loads((out / "figures" / "figures_manifest.json").read_text())
    assert run["analysis_config"] == summary["analysis_config"] == expected
    assert figures["analysis_config"] == expected
    assert summary["headline"]["analysis_config"] == expected
    for name in ("overview", "alignment", "variance", "masks", "embedding", "localisation"):
        nb = json.loads((out / "notebooks" / f"{name}.ipynb").read_text())
        injected = next(c for c in nb["cells"]
                        if "injected-parameters" in c["metadata"].get("tags", []))  # fmt: skip
        line = next(ln for ln in injected["source"] if ln.startswith("analysis_config = "))
        assert ast.literal_eval(line.split(" = ", 1)[1]) == expected, name


@pytest.mark.slow
def test_sanity_check_separates_the_trained_models_from_randomised_ones(demo_run):
    """With every layer re-initialised the attributions change: median Spearman well below 1."""
    from analysis.sanity import read_sanity

    results = {r.model: r for r in read_sanity(demo_run.out / "sanity")}
    assert set(results) == {"defocus", "rgb"}
    for r in results.values():
        assert [st["name"] for st in r.stages] == ["all"]  # the quick preset: whole model only
        assert len(r.ids) == ANALYSIS_QUICK.sanity_samples
        assert r.full_median < r.threshold and not r.flagged, r.message
        # separated: two explanations of the trained model itself (another explainer seed)
        # agree far better than the trained and the randomised model do
        ceiling = float(np.nanmedian(np.array(r.info["ceiling"], float)))
        assert ceiling - r.full_median > 0.15, (r.model, ceiling, r.full_median)
    assert demo_run.headline["sanity_defocus"]["flagged"] is False
    assert demo_run.headline["sanity_defocus"]["ceiling"] > 0.5


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
