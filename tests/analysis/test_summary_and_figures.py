import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis import alignment, comparison, embedding, localisation, masks, overlays, variance
from analysis.config import AnalysisConfig
from analysis.style import caption_of, group_colors, save_figure, unavailable_figure
from analysis.summary import COLUMNS, summarise_cache, write_summary

FAST = dict(n_boot=50, n_permutations=10, null_samples=4, perplexities=(2, 5))


def _value(df, analysis, group, model, metric):
    sel = df.query(
        "analysis == @analysis and group == @group and model == @model and metric == @metric"
    )
    assert len(sel) == 1, (analysis, group, model, metric, len(sel))
    return sel["value"].iloc[0]


def test_summary_numbers_agree_with_the_modules(small_cache, tmp_path):
    c, _ = small_cache
    df, analyses = summarise_cache(c, **FAST, return_analyses=True)
    assert list(df.columns) == COLUMNS
    assert set(analyses) == {"masks", "variance", "alignment", "localisation", "embedding",
                             "detection"}  # fmt: skip
    m = masks.masks_from_cache(c)
    ref = m.stats.set_index(["group", "threshold"]).loc[("pasted", 0.1), "mean"]
    assert _value(df, "masks", "pasted", "", "mean@T=0.1") == pytest.approx(ref)
    a = alignment.alignment_from_cache(c, n_permutations=10, null_samples=4, n_boot=50)
    ref = a.summary.set_index(["group", "model"]).loc[("blurred", "rgb"), "mean"]
    assert _value(df, "alignment", "blurred", "rgb", "mean") == pytest.approx(ref)
    v = variance.variance_from_cache(c, n_boot=50)
    ref = v.tests.set_index("group").loc["pasted", "statistic"]
    assert _value(df, "variance", "pasted", "", "ks_statistic") == pytest.approx(ref)
    assert _value(df, "localisation", "pasted", "defocus", "pointing@truth") == 1.0
    paths = write_summary(df, tmp_path / "out")
    back = pd.read_csv(paths["csv"])
    assert len(back) == len(df) and list(back.columns) == COLUMNS
    text = paths["markdown"].read_text()
    for section in ("## masks", "## variance", "## alignment", "## localisation", "## embedding"):
        assert section in text


def test_minimal_cache_marks_everything_unavailable(minimal_cache, tmp_path):
    c, _ = minimal_cache
    df = summarise_cache(c, **FAST)
    notes = " ".join(df.loc[df.metric == "unavailable", "note"])
    for needle in ("attr_defocus", "attr_rgb", "mask", "features_defocus", "deletion"):
        assert needle in notes
    # what the cache does support is still there
    assert _value(df, "masks", "pasted", "", "n@T=0.1") == 8
    write_summary(df, tmp_path)


def _all_figures(c):
    m = masks.masks_from_cache(c, thresholds=(0.1, 0.01))
    v = variance.variance_from_cache(c, window=5, n_boot=20)
    a = alignment.alignment_from_cache(c, n_permutations=5, null_samples=4, n_boot=20)
    loc = localisation.localisation_from_cache(c)
    e = embedding.embedding_from_cache(c, perplexities=(2,))
    return {
        "gallery": masks.plot_mask_gallery(m),
        "sweep": masks.plot_threshold_sweep(m),
        "heatmaps": variance.plot_variance_heatmaps(v),
        "ecdf": variance.plot_variance_ecdf(v),
        "alignment": alignment.plot_alignment_histograms(a),
        "null": alignment.plot_permutation_null(a),
        "localisation": localisation.plot_localisation_bars(loc),
        "deletion": localisation.plot_deletion_curves(loc),
        "embedding": embedding.plot_embedding_sweep(e),
        "overlays": overlays.plot_attribution_overlays(overlays.overlays_from_cache(c, n=1)),
        "skill": alignment.plot_alignment_skill(a),
        "paired": comparison.plot_model_comparison(a),
    }


@pytest.mark.slow
def test_every_figure_renders_to_pdf_and_png(small_cache, tmp_path):
    c, _ = small_cache
    figs = _all_figures(c)
    for name, fig in figs.items():
        assert isinstance(fig, Figure), name
        # default: a double-column figure (7 in) that carries its caption
        assert fig.get_size_inches()[0] == 7.0, name
        assert caption_of(fig), name
        # low-resolution PNG keeps the test fast; the PDF path is checked once below
        (path,) = save_figure(fig, tmp_path / name, formats=("png",), dpi=40)
        assert path.stat().st_size > 1000, name
    paths = save_figure(figs["ecdf"], tmp_path / "ecdf.pdf")  # an extension given is replaced
    assert [p.name for p in paths] == ["ecdf.pdf", "ecdf.png"]
    assert paths[0].read_bytes().startswith(b"%PDF")
    # no deletion model was given: that figure is the explicit marker, the others are real plots
    assert hasattr(figs["deletion"], "_analysis_unavailable")
    assert not hasattr(figs["gallery"], "_analysis_unavailable")


def test_figures_on_a_minimal_cache_do_not_crash(minimal_cache):
    c, _ = minimal_cache
    figs = _all_figures(c)
    for name in ("alignment", "null", "localisation", "embedding", "skill", "paired"):
        assert hasattr(figs[name], "_analysis_unavailable"), name
        # the marker says why in the figure and in its caption
        reason = figs[name]._analysis_unavailable
        assert caption_of(figs[name]) == f"Not drawn: {reason}"
        texts = " ".join(t.get_text() for ax in figs[name].axes for t in ax.texts)
        assert reason.split()[0] in texts, name
    assert not hasattr(figs["gallery"], "_analysis_unavailable")


def test_figures_leave_no_pyplot_state(small_cache):
    import matplotlib
    import matplotlib.pyplot as plt

    before = dict(matplotlib.rcParams)
    n_before = len(plt.get_fignums())
    unavailable_figure("x")
    masks.plot_threshold_sweep(masks.masks_from_cache(small_cache[0]))
    assert len(plt.get_fignums()) == n_before
    assert dict(matplotlib.rcParams) == before


def test_group_colors_are_stable():
    a = group_colors(["real", "x", "y"])
    b = group_colors(["y", "real", "x"])
    assert a["real"] == b["real"] == "#0072B2"
    assert len(set(a.values())) == 3


def test_deletion_figure_with_a_model(small_cache):
    c, _ = small_cache
    w = np.random.default_rng(0).normal(size=(24, 24))
    loc = localisation.localisation_from_cache(
        c, predict={"defocus": lambda x: (x * w).sum(axis=(1, 2))}, deletion_samples=2
    )
    fig = localisation.plot_deletion_curves(loc)
    assert not hasattr(fig, "_analysis_unavailable")


# ------------------------------------------------ unit of inference and padding in captions

FIG_CFG = dict(n_boot=50, n_permutations=19, null_samples=8, window=5)


def test_captions_say_video_level_when_the_cache_has_videos(video_cache):
    from analysis.stats import cluster_labels, cluster_means

    c, arrays = video_cache
    a = alignment.alignment_from_cache(c, config=AnalysisConfig(**FIG_CFG))
    v = variance.variance_from_cache(c, config=AnalysisConfig(**FIG_CFG))
    assert a.level == v.level == "video"
    figs = [alignment.plot_alignment_histograms(a), alignment.plot_alignment_skill(a),
            comparison.plot_model_comparison(a), alignment.plot_permutation_null(a)]  # fmt: skip
    for fig in figs:
        cap = caption_of(fig)
        assert "video-level" in cap and "frame-level" not in cap, cap
    ecdf = variance.plot_variance_ecdf(v)
    cap = caption_of(ecdf)
    assert "per-video mean" in cap and "Video-level" in cap
    assert "counted as independent" not in cap  # frames are not treated so here
    # the curves are the per-video means the KS test compares (5 real videos of 2 frames)
    (ax,) = ecdf.axes
    real = next(line for line in ax.lines if line.get_label().startswith("real"))
    assert real.get_label().startswith("real (n=5 videos)")
    df = v.per_image[v.per_image.label == 0]
    means = cluster_means(df["mean_local_variance"], cluster_labels(df["video"], df["id"]))[1]
    np.testing.assert_allclose(np.unique(real.get_xdata()), np.sort(means), rtol=1e-12)
    assert v.tests.set_index("group").loc["pasted", "n_real"] == 5


def test_captions_say_frame_level_without_videos(small_cache):
    c, _ = small_cache
    cfg = AnalysisConfig(**FIG_CFG)
    a = alignment.alignment_from_cache(c, config=cfg)
    v = variance.variance_from_cache(c, config=cfg)
    loc = localisation.localisation_from_cache(c, config=cfg)
    figs = [alignment.plot_alignment_histograms(a), alignment.plot_alignment_skill(a),
            comparison.plot_model_comparison(a),
            localisation.plot_localisation_bars(loc)]  # fmt: skip
    for fig in figs:
        assert "rame-level" in caption_of(fig) and "video-level" not in caption_of(fig)
    cap = caption_of(variance.plot_variance_ecdf(v))
    assert "Frame-level: every image is counted as independent (the cache names no videos)" in cap


@pytest.mark.parametrize("padding", ["zeros", "reflect"])
def test_variance_captions_name_the_padding_and_the_border_share(small_cache, padding):
    c, _ = small_cache
    v = variance.variance_from_cache(c, config=AnalysisConfig(**FIG_CFG, padding=padding))
    # the shares the caption quotes, recomputed from the per-image maps of every sample
    maps = np.concatenate([c.load("defocus", g).astype(np.float64) for g in c.groups])
    lv = np.maximum(variance.local_variance(maps, 5, padding=padding), 0)
    band = np.ones(lv.shape[1:], bool)
    band[2:-2, 2:-2] = False
    share = lv[:, band].sum() / lv.sum()
    assert v.border_mass_share == pytest.approx(share, rel=1e-9)
    name = "Zero padding (the paper's)" if padding == "zeros" else "Reflect padding"
    expected = (
        f"{name}: the 2-px border band holds {100 * share:.0f} % of the local-variance mass of "
        f"all {len(maps)} maps on {100 * band.mean():.0f} % of their area"
    )
    for fig in (variance.plot_variance_heatmaps(v), variance.plot_variance_ecdf(v)):
        assert expected in caption_of(fig)
        assert f"5×5 window, {'zero' if padding == 'zeros' else 'reflect'} padding" in caption_of(
            fig
        )
