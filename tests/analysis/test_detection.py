"""Detection numbers: video-level AUC, ECE / Brier / NLL, cross-fitted temperature scaling.

References are independent of :mod:`analysis.detection`: scikit-learn's
``roc_auc_score``, ``brier_score_loss`` and ``log_loss``, per-video means by
pandas, a float64 loop over the bins, a hand-computed ECE, and the
stationarity condition of the NLL for the fitted temperature.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from analysis.config import AnalysisConfig
from analysis.detection import (
    ECE_BINS,
    auc_with_ci,
    calibration,
    detection_from_cache,
    fit_temperature,
    plot_reliability,
    temperature_crossfit,
    video_scores,
)
from analysis.style import caption_of

FAST = AnalysisConfig(n_boot=200, n_permutations=5, perplexities=(2,))


def _calibrated(rng, n, scale=2.0):
    """Logits ~ N(0, scale^2) and labels ~ Bernoulli(sigmoid(logit)): calibrated by design."""
    z = rng.normal(0.0, scale, n)
    y = (rng.random(n) < expit(z)).astype(np.int64)
    return y, z


def _ece_loop(y, p, n_bins=15):
    """Float64 loop: bin k holds k/n_bins <= p < (k+1)/n_bins (p = 1 in the last bin)."""
    total = 0.0
    for k in range(n_bins):
        lo, hi = k / n_bins, (k + 1) / n_bins
        inside = [i for i in range(len(p)) if lo <= p[i] < hi or (k == n_bins - 1 and p[i] == 1)]
        if inside:
            frac = sum(float(y[i]) for i in inside) / len(inside)
            conf = sum(float(p[i]) for i in inside) / len(inside)
            total += len(inside) / len(p) * abs(frac - conf)
    return total


# ------------------------------------------------------------------------------- calibration


def test_ece_hand_computed_example():
    # p = 0.1 (bin 1 of 15), 0.9 (bin 13), 0.5 (bin 7):
    # ECE = 2/5 |1/2 - 0.1| + 2/5 |1 - 0.9| + 1/5 |0 - 0.5| = 0.16 + 0.04 + 0.10 = 0.30
    p = np.array([0.1, 0.1, 0.9, 0.9, 0.5])
    y = np.array([0, 1, 1, 1, 0])
    cal = calibration(y, logit(p), n_boot=10)
    assert cal.ece == pytest.approx(0.30, abs=1e-12)
    assert cal.n_bins == ECE_BINS == 15
    assert cal.bin_count.tolist() == [0, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2, 0]
    assert cal.bin_fake_fraction[[1, 7, 13]] == pytest.approx([0.5, 0.0, 1.0])
    assert cal.bin_mean_prob[[1, 7, 13]] == pytest.approx([0.1, 0.5, 0.9])
    assert np.isnan(cal.bin_fake_fraction[0]) and np.isnan(cal.bin_mean_prob[0])
    # Brier: (0.01 + 0.81 + 0.01 + 0.01 + 0.25) / 5
    assert cal.brier == pytest.approx(1.09 / 5, abs=1e-12)


@pytest.mark.parametrize("n_bins", [15, 7])
def test_ece_matches_a_float64_loop(rng, n_bins):
    y, z = _calibrated(rng, 700, scale=3.0)
    z = z * 1.7 + 0.4  # miscalibrated, so the ECE is far from 0
    z[:5] = logit(np.array([1, 2, 7, 14, 3]) / 15)  # probabilities on bin edges
    p = expit(z)
    cal = calibration(y, z, n_bins=n_bins, n_boot=10)
    assert cal.ece == pytest.approx(_ece_loop(y, p, n_bins), rel=1e-12, abs=1e-15)
    assert cal.ece > 0.05


def test_brier_and_nll_match_scikit_learn(rng):
    y, z = _calibrated(rng, 500)
    cal = calibration(y, z, n_boot=10)
    assert cal.brier == pytest.approx(brier_score_loss(y, expit(z)), rel=1e-12)
    assert cal.nll == pytest.approx(log_loss(y, expit(z)), rel=1e-9)


def test_a_calibrated_set_has_a_small_ece_and_an_overconfident_one_is_fixed_by_crossfit(rng):
    y, z = _calibrated(rng, 20_000)
    good = calibration(y, z, n_boot=50)
    assert good.ece < 0.015
    # over-confident: logits x 3; cross-fitted temperature scaling recovers T near 3
    bad = calibration(y, 3 * z, n_boot=50)
    assert bad.ece > 0.1
    fit = temperature_crossfit(y, 3 * z, seed=1)
    assert fit.split == "sample" and fit.fold_units == (10_000, 10_000)
    assert fit.temperatures == pytest.approx((3.0, 3.0), abs=0.2)
    fixed = calibration(y, fit.scaled_logits, n_boot=50)
    assert fixed.ece < 0.02 and fixed.ece < bad.ece / 5
    assert fixed.nll < bad.nll and fixed.brier < bad.brier


def test_fitted_temperature_is_where_the_nll_is_flat(rng):
    y, z = _calibrated(rng, 3000)
    z = 2.5 * z
    t = fit_temperature(y, z)
    # d NLL / d(1/T) = mean((sigmoid(z / T) - y) * z) = 0 at the optimum
    grad = np.mean((expit(z / t) - y) * z)
    assert abs(grad) < 1e-5
    nll = [log_loss(y, expit(z / s)) for s in (t * 0.95, t, t * 1.05)]
    assert nll[1] < nll[0] and nll[1] < nll[2]


def test_crossfit_splits_whole_videos_and_applies_the_other_folds_temperature(rng):
    y, z = _calibrated(rng, 600)
    video = np.array([f"v{i // 6}" for i in range(600)])
    y = np.repeat(y[::6], 6)  # one label per video
    fit = temperature_crossfit(y, z, video, seed=3)
    assert fit.split == "video"
    per_video = pd.Series(fit.fold).groupby(video).nunique()
    assert (per_video == 1).all()  # no video in both folds
    t0, t1 = fit.temperatures
    assert fit.scaled_logits == pytest.approx(np.where(fit.fold == 0, z / t1, z / t0))
    assert t0 == pytest.approx(fit_temperature(y[fit.fold == 0], z[fit.fold == 0]))
    for lab in (0, 1):  # both classes in both folds
        assert set(fit.fold[y == lab]) == {0, 1}


def test_cluster_bootstrap_resamples_whole_videos(rng):
    y, z = _calibrated(rng, 120)
    y[:2] = [0, 1]
    frame = calibration(y, z, n_boot=300, seed=4)
    # each sample copied 4 times as the frames of one video: resampling whole videos must give
    # exactly the intervals of the samples alone; resampling frames would give narrower ones
    video = np.repeat(np.arange(120).astype(str), 4)
    clustered = calibration(np.repeat(y, 4), np.repeat(z, 4), clusters=video, n_boot=300, seed=4)
    assert clustered.n_units == 120 and clustered.level == "video"
    for key in ("ece", "brier", "nll"):
        assert getattr(clustered, key) == pytest.approx(getattr(frame, key), rel=1e-12)
        assert getattr(clustered, f"{key}_ci") == pytest.approx(getattr(frame, f"{key}_ci"))
    assert frame.brier_ci[0] < frame.brier < frame.brier_ci[1]


@pytest.mark.parametrize(
    ("labels", "logits", "kwargs", "match"),
    [
        ([0, 2], [0.1, 0.2], {}, "labels must be 0 .real. or 1 .fake., got 2"),
        ([0, 1], [0.1], {}, "labels and logits must have the same length, got 2 and 1"),
        ([0, 1], [0.1, np.nan], {}, "logits must be finite, got 1 non-finite"),
        ([0, 1], [0.1, 0.2], {"n_bins": 0}, "n_bins must be a positive integer, got 0"),
        ([0, 1], [0.1, 0.2], {"confidence": 1.5}, r"confidence must be in \(0, 1\), got 1.5"),
    ],
)
def test_calibration_errors(labels, logits, kwargs, match):
    with pytest.raises(ValueError, match=match):
        calibration(labels, logits, **kwargs)


def test_crossfit_needs_two_units_of_each_class():
    with pytest.raises(ValueError, match="at least 2 videos of each class, got 1 real and 2 fake"):
        temperature_crossfit([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], ["a", "a", "b", "c"])


# ------------------------------------------------------------------------------ video level


def _frames(rng, n_videos=30, frames=5):
    """Frames of videos: one label per video, logits scattered around a per-video level."""
    label = np.repeat(rng.integers(0, 2, n_videos), frames)
    label[:frames], label[frames : 2 * frames] = 0, 1
    level = np.repeat(rng.normal(0, 1, n_videos), frames) + 0.8 * label
    z = level + rng.normal(0, 2.0, label.size)
    video = np.repeat([f"{'fake' if i % 2 else 'real'}/v{i:03d}" for i in range(n_videos)], frames)
    order = rng.permutation(label.size)  # frames of a video need not be adjacent
    return label[order], z[order], video[order]


def test_video_scores_are_mean_probabilities(rng):
    y, z, video = _frames(rng)
    vs = video_scores(y, z, video)
    ref = (
        pd.DataFrame({"v": video, "p": expit(z), "y": y})
        .groupby("v")
        .agg(p=("p", "mean"), y=("y", "first"), n=("p", "size"))
    )
    got = pd.DataFrame({"p": vs.score, "y": vs.label, "n": vs.n_frames}, index=vs.video)
    got = got.loc[ref.index]
    np.testing.assert_allclose(got["p"], ref["p"], rtol=1e-12)
    assert (got["y"] == ref["y"]).all() and (got["n"] == ref["n"]).all()
    # the video-level AUC is the AUC of those means (not of mean logits)
    res = auc_with_ci(vs.label, vs.score, n_boot=50)
    assert res["auc"] == pytest.approx(roc_auc_score(ref["y"], ref["p"]), abs=1e-12)
    mean_logit = pd.Series(z).groupby(video).mean().loc[ref.index]
    assert roc_auc_score(ref["y"], mean_logit) != pytest.approx(res["auc"], abs=1e-6)


def test_frames_without_a_video_are_videos_of_their_own(rng):
    vs = video_scores([0, 0, 1, 1], [0.0, 1.0, 2.0, 3.0], ["a", "", "b", "b"], ["i0", "i1", "i2",
                                                                             "i3"])  # fmt: skip
    assert vs.video.tolist() == ["a", "id:i1", "b"] and vs.n_frames.tolist() == [1, 1, 2]
    assert vs.score[2] == pytest.approx((expit(2.0) + expit(3.0)) / 2)


# ----------------------------------------------------------------------------- from a cache


def _write(path, rng, videos=True, n_videos=16, frames=3):
    from cache import CacheWriter, open_cache

    y, z, video = _frames(rng, n_videos, frames)
    w = CacheWriter(path, config={"test": "detection"})
    for g, lab in (("real", 0), ("fakes", 1)):
        sel = y == lab
        arrays = {
            "id": np.array([f"{g}-{i}" for i in range(sel.sum())]),
            "group": np.full(sel.sum(), g),
            "label": np.full(sel.sum(), lab, np.int8),
            "pair_id": np.full(sel.sum(), ""),
            "logit_defocus": z[sel].astype(np.float32),
            "logit_rgb": (0.5 * z[sel] + 0.3).astype(np.float32),
        }
        if videos:
            arrays["video"] = video[sel]
        w.write_shard(g, arrays)
    return open_cache(path)


def test_detection_from_a_cache_with_videos(tmp_path, rng):
    cache = _write(tmp_path / "cache", rng)
    det = detection_from_cache(cache, FAST)
    arrays = cache.arrays(["label", "logit_defocus", "logit_rgb", "video"])
    for kind in ("defocus", "rgb"):
        m = det.models[kind]
        z = arrays[f"logit_{kind}"].astype(np.float64)
        assert m.auc["auc"] == pytest.approx(roc_auc_score(arrays["label"], z), abs=1e-12)
        assert m.auc["level"] == "video" and m.auc["n_units"] == 16
        per_video = pd.DataFrame({"v": arrays["video"], "p": expit(z), "y": arrays["label"]})
        per_video = per_video.groupby("v").mean()
        want = roc_auc_score(per_video["y"], per_video["p"])
        assert m.video_auc["auc"] == pytest.approx(want, abs=1e-12)
        assert m.video_auc["n"] == 16 and m.video_auc["n_frames"] == 48
        assert m.video_auc["ci_low"] <= m.video_auc["auc"] <= m.video_auc["ci_high"]
        assert m.calibration.ece == pytest.approx(_ece_loop(arrays["label"], expit(z)), abs=1e-12)
        assert m.calibration.n_units == 16 and m.crossfit.split == "video"
    assert det.has_videos and det.level == "video"


def test_headline_rows_and_report_show_the_detection_numbers(tmp_path, rng):
    from defocus_forensics.headline import headline_numbers, headline_rows, json_safe
    from defocus_forensics.report import ReportFigure, ReportInputs, render_report

    cache = _write(tmp_path / "cache", rng)
    head = json_safe(headline_numbers({}, cache=cache, config=FAST))
    v = head["video_auc_defocus"]
    rows = {r["quantity"]: r for r in headline_rows(head)}
    row = rows["video-level AUC, defocus model"]
    assert row["value"].startswith(f"{v['auc']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]")
    assert "mean of sigmoid(logit)" in row["measures"] and "each video one unit" in row["measures"]
    c, s = head["calibration_rgb"], head["calibration_scaled_rgb"]
    ece = rows["ECE (15 bins), RGB model"]["value"]
    assert ece.startswith(f"{c['ece']:.3f} [{c['ece_ci_low']:.3f}, {c['ece_ci_high']:.3f}] → ")
    assert f"→ {s['ece']:.3f}" in ece and f"T = {s['temperatures'][0]:.3f}" in ece
    assert f"{c['brier']:.3f}" in rows["Brier score, RGB model"]["value"]
    assert f"{c['nll']:.3f}" in rows["NLL, RGB model"]["value"]
    assert "split by video" in rows["NLL, RGB model"]["measures"]
    png = tmp_path / "f.png"
    png.write_bytes(b"\x89PNG")
    html = render_report(ReportInputs(figures=[ReportFigure(png, "f")],
                                      summary={"headline": head}), tmp_path)  # fmt: skip
    assert "video-level AUC, defocus model" in html and "ECE (15 bins), RGB model" in html
    assert f"{v['auc']:.3f}" in html


def test_without_videos_the_video_level_auc_is_not_available(tmp_path, rng):
    from defocus_forensics.headline import headline_numbers, headline_rows

    cache = _write(tmp_path / "cache", rng, videos=False)
    head = headline_numbers({}, cache=cache, config=FAST)
    assert head["video_auc_defocus"] == {"auc": None, "reason": "no video field"}
    assert head["auc_defocus"]["level"] == "frame"
    assert head["calibration_scaled_defocus"]["split"] == "sample"
    rows = {r["quantity"]: r["value"] for r in headline_rows(head)}
    assert rows["video-level AUC, defocus model"] == "n/a (no video field)"


@pytest.mark.parametrize("width", ["single", "double"])
def test_reliability_figure_draws_the_bins_and_says_so(tmp_path, rng, width):
    from matplotlib.patches import Rectangle

    cache = _write(tmp_path / "cache", rng)
    det = detection_from_cache(cache, FAST)
    fig = plot_reliability(det, width=width, model_names={"defocus": "defocus model (toy)"})
    axes = fig.axes
    assert len(axes) == 4  # a panel and its histogram per model
    cal = det.models["defocus"].calibration
    heights = [p.get_height() for p in axes[0].patches if isinstance(p, Rectangle)]
    np.testing.assert_allclose(heights, cal.bin_fake_fraction[cal.bin_count > 0])
    counts = [p.get_height() for p in axes[1].patches if isinstance(p, Rectangle)]
    np.testing.assert_allclose(np.nan_to_num(counts), cal.bin_count)
    assert axes[0].get_shared_x_axes().joined(axes[0], axes[2])
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[2])
    legend = " ".join(t.get_text() for t in axes[0].get_legend().get_texts())
    assert f"ECE = {cal.ece:.3f}" in legend
    caption = caption_of(fig)
    assert "15 equal-width bins" in caption and "split by video" in caption
    assert (
        f"defocus model (toy): {cal.n} test samples ({cal.n_real} real, {cal.n_fake} fake), "
        f"ECE {cal.ece:.3f}" in caption
    )
    t0, t1 = det.models["rgb"].crossfit.temperatures
    assert f"(T = {t0:.2f}, {t1:.2f})" in caption


def test_figures_manifest_lists_the_reliability_diagram(tmp_path, rng):
    from defocus_forensics.figures import draw_figures

    cache = _write(tmp_path / "cache", rng)
    manifest = draw_figures(cache, tmp_path / "figs", config=FAST, only=["detection"],
                            progress=False, formats=["png"], dpi=60)  # fmt: skip
    (entry,) = manifest["figures"]
    assert entry["stem"] == "detection_reliability_diagram" and entry["unavailable"] is None
    assert entry["fields"] == ["label", "logit_defocus", "logit_rgb"]
    assert entry["caption"].startswith("Reliability of each model's predicted probability")
    assert (tmp_path / "figs" / entry["png"]).stat().st_size > 1000


def test_reliability_figure_without_logits_says_why(tmp_path):
    from cache import CacheWriter, open_cache
    from defocus_forensics.figures import draw_figures

    w = CacheWriter(tmp_path / "cache", config={})
    w.write_shard("real", {"id": ["a", "b"], "group": ["real"] * 2, "label": np.zeros(2, np.int8),
                           "pair_id": ["", ""]})  # fmt: skip
    manifest = draw_figures(open_cache(tmp_path / "cache"), tmp_path / "figs", config=FAST,
                            only=["detection"], progress=False, formats=["png"],
                            dpi=60)  # fmt: skip
    why = manifest["figures"][0]["unavailable"]
    assert "the cache has no 'logit_defocus' field" in why and "--defocus-model" in why
