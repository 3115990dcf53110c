"""The summary table: one config gives one set of numbers; levels and p resolutions are labelled."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis.alignment import alignment_from_cache
from analysis.config import AnalysisConfig
from analysis.summary import COLUMNS, summarise_cache, write_summary

CFG = AnalysisConfig(
    n_boot=40, n_permutations=99, null_samples=4, perplexities=(2.0,), window=5, seed=2
)


def _rows(df, **where):
    sel = df
    for k, v in where.items():
        sel = sel[sel[k] == v]
    return sel


def _value(df, analysis, group, model, metric):
    sel = _rows(df, analysis=analysis, group=group, model=model, metric=metric)
    assert len(sel) == 1, (analysis, group, model, metric, len(sel))
    return sel["value"].iloc[0]


def test_one_config_gives_the_same_numbers_as_the_keywords(small_cache, tmp_path):
    c, _ = small_cache
    by_config = summarise_cache(c, config=CFG)
    by_keywords = summarise_cache(
        c, n_boot=40, n_permutations=99, null_samples=4, perplexities=(2,), window=5, seed=2
    )
    pd.testing.assert_frame_equal(by_config, by_keywords)
    assert by_config.attrs["config"] == CFG.to_dict()
    cfg_rows = _rows(by_config, analysis="config").set_index("metric")["value"]
    assert cfg_rows["n_permutations"] == 99 and cfg_rows["padding"] == "zeros"
    assert json.loads(cfg_rows["thresholds"]) == list(CFG.thresholds)
    # the analyses the table came from agree with the stand-alone function at the same config
    a = alignment_from_cache(c, config=CFG)
    ref = a.summary.set_index(["group", "model"]).loc[("pasted", "defocus")]
    for metric in ("mean", "skill_mean", "skill_ci_low", "skill_p_signflip", "p_value"):
        assert _value(by_config, "alignment", "pasted", "defocus", metric) == pytest.approx(
            ref[metric]
        ), metric
    paths = write_summary(by_config, tmp_path)
    back = pd.read_csv(paths["csv"])
    assert list(back.columns) == COLUMNS and "## config" in paths["markdown"].read_text()


def test_skill_beside_the_raw_score_and_p_resolution(small_cache):
    c, _ = small_cache
    df = summarise_cache(c, config=CFG, embedding=False)
    al = _rows(df, analysis="alignment", group="pasted", model="defocus")
    metrics = set(al["metric"])
    assert {"mean", "floor_mean", "skill_mean", "skill_ci_low", "skill_ci_high"} <= metrics
    assert "no information" in al.set_index("metric").loc["floor_mean", "note"]
    # every permutation p-value says how many permutations and the smallest p it can reach
    perm = df[df["metric"].str.contains("p_signflip") | (df["metric"] == "p_value")]
    assert len(perm) > 0
    for note in perm["note"]:
        assert "n_permutations=99" in note and "smallest reachable p=0.01" in note, note
    # the paired defocus-vs-RGB comparison is in the table
    comp = _rows(df, analysis="alignment", group="pasted", model="defocus-rgb")
    assert {"skill_diff_mean", "skill_diff_ci_low", "skill_diff_p_signflip"} <= set(comp["metric"])
    assert "frame-level" in comp.set_index("metric").loc["skill_diff_mean", "note"]
    # the local-variance padding and border share are stated
    var = _rows(df, analysis="variance", group="all")
    assert var.set_index("metric").loc["padding", "value"] == "zeros"
    assert 0 < var.set_index("metric").loc["border_mass_share", "value"] <= 1


def test_video_level_is_labelled_and_frame_level_kept(video_cache):
    c, _ = video_cache
    df = summarise_cache(c, config=CFG, embedding=False)
    al = _rows(df, analysis="alignment", group="pasted", model="defocus").set_index("metric")
    assert "video-level (4 videos" in al.loc["skill_ci_low", "note"]
    assert "frame-level" in al.loc["skill_ci_low[frame-level]", "note"]
    assert al.loc["n_clusters", "value"] == 4
    var = _rows(df, analysis="variance", group="pasted").set_index("metric")
    assert var.loc["n_fake", "value"] == 4 and "video-level" in var.loc["ks_pvalue", "note"]
    assert var.loc["n_fake[frame-level]", "value"] == 8
    assert "video-level" in var.loc["paired_p_signflip", "note"]
    # the frame-level KS test (near-duplicate frames taken as independent) stays available
    assert not np.isnan(var.loc["ks_pvalue[frame-level]", "value"])
