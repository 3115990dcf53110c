"""``defocus figures`` and the figure functions: paper widths, scales, colour maps, true captions.

The figures are checked against the arrays written into small caches here,
not against the analysis code: colour scales against the values drawn,
counts against ``|fake - real| > T`` recomputed, captions against what the
figure holds.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from PIL import Image

from analysis import (
    alignment,
    comparison,
    embedding,
    localisation,
    masks,
    overlays,
    sanity,
    variance,
)
from analysis.config import AnalysisConfig
from analysis.style import (
    DEFOCUS_CMAP,
    DIVERGING_CMAP,
    MASK_CMAP,
    SEQUENTIAL_CMAP,
    caption_of,
    sample_label,
    save_figure,
)
from cache import CacheWriter, open_cache
from defocus_forensics.cli import main
from defocus_forensics.figures import FIGURE_TYPES, FigureOptions, draw_figures

FAST = AnalysisConfig(n_boot=10, n_permutations=5, perplexities=(2,))

S = 16
WIDTHS = {"single": 3.5, "double": 7.0}
NAMES = {"defocus": "defocus model (toy-a)", "rgb": "RGB model (toy-b)"}


def _tiny_cache(path, rng, n=6, paired=True):
    """Reals and fakes paired by id, with only the fields the mask figures need."""
    real = rng.random((n, S, S)).astype(np.float16)
    fake = np.clip(real.astype(np.float32) + 0.3 * (rng.random((n, S, S)) > 0.7), 0, 1)
    w = CacheWriter(path, config={"test": "figures"})
    ids = [f"r{i}" for i in range(n)]
    w.write_shard("real", {"id": ids, "group": ["real"] * n, "label": np.zeros(n, np.int8),
                           "pair_id": [""] * n, "defocus": real})  # fmt: skip
    w.write_shard("swap", {"id": [f"f{i}" for i in range(n)], "group": ["swap"] * n,
                           "label": np.ones(n, np.int8),
                           "pair_id": ids if paired else [""] * n,
                           "defocus": fake.astype(np.float16)})  # fmt: skip
    return open_cache(path)


def _rich_cache(path, seed=0, n=8, side=S):
    """Every field: a 'pasted' group (square masks, attributions in the square), a 'global'
    group (all-zero masks), reals; model backbones 'toy-a' and 'toy-b' in the manifest."""
    rng = np.random.default_rng(seed)
    real = rng.random((n, side, side)).astype(np.float16)
    ids = np.array([f"clip-{i:03d}-real" for i in range(n)])
    models = {
        "defocus": {"config": {"backbone": "toy-a"}, "sha256": "a" * 64},
        "rgb": {"config": {"backbone": "toy-b"}, "sha256": "b" * 64},
    }
    w = CacheWriter(path, config={"test": "rich", "models": models})
    groups = {"real": (real, np.zeros((n, side, side), np.uint8), np.full(n, ""))}
    sq = np.zeros((n, side, side), np.uint8)
    sq[:, 4:10, 4:10] = 1
    pasted = np.where(sq == 1, np.clip(real + 0.5, 0, 1), real).astype(np.float16)
    glob = np.clip(real.astype(np.float32) * 0.6 + 0.2, 0, 1).astype(np.float16)
    groups["pasted"] = (pasted, sq, ids)
    groups["global"] = (glob, np.zeros_like(sq), ids)
    out = {}
    for g, (maps, mask, pair) in groups.items():
        k = len(maps)
        label = np.zeros(k, np.int8) if g == "real" else np.ones(k, np.int8)
        attr = rng.normal(size=(k, side, side)).astype(np.float32) * 0.01
        attr += mask * 0.05 * (1 + np.arange(k))[:, None, None]  # grows from sample to sample
        arrays = {
            "id": ids if g == "real" else np.array([f"clip-{i:03d}-{g}" for i in range(k)]),
            "group": np.full(k, g),
            "label": label,
            "pair_id": pair,
            "defocus": maps,
            "mask": mask,
            "attr_defocus": attr,
            "attr_rgb": (rng.normal(size=(k, 3, side, side)) * 0.002).astype(np.float32),
            "image": rng.integers(0, 256, (k, 3, side, side)).astype(np.uint8),
            "features_defocus": (rng.normal(size=(k, 6)) + 2.0 * label[:, None]).astype(np.float32),
            "features_rgb": rng.normal(size=(k, 6)).astype(np.float32),
            "logit_defocus": rng.normal(size=k).astype(np.float32),
            "logit_rgb": rng.normal(size=k).astype(np.float32),
        }
        w.write_shard(g, arrays)
        out[g] = arrays
    return open_cache(path), out


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    """The rich cache and its analyses, computed once for this module."""
    c, arrays = _rich_cache(tmp_path_factory.mktemp("rich") / "cache")
    w = np.random.default_rng(1).normal(size=(S, S))
    an = {
        "masks": masks.masks_from_cache(c, thresholds=(0.2, 0.1, 0.01)),
        "variance": variance.variance_from_cache(c, window=5, n_boot=20),
        "alignment": alignment.alignment_from_cache(
            c, n_permutations=9, null_samples=4, n_boot=50
        ),  # fmt: skip
        "localisation": localisation.localisation_from_cache(
            c, predict={"defocus": lambda x: (x * w).sum(axis=(1, 2))}, deletion_samples=3
        ),
        "embedding": embedding.embedding_from_cache(c, perplexities=(3,)),
        "overlays": overlays.overlays_from_cache(c, n=1),
        "sanity": _sanity_results(),
    }
    return c, arrays, an


#: Spearman correlations of a hand-made randomisation check: 3 stages x 5 samples per model.
SANITY_RHO = {
    "defocus": [
        [0.9, 0.8, 0.7, 0.95, 0.85],
        [0.5, 0.4, 0.3, 0.6, 0.2],
        [0.1, 0.0, -0.1, 0.2, 0.05],
    ],
    "rgb": [[0.95, 0.9, 0.92, 0.97, 0.9], [0.9, 0.85, 0.8, 0.88, 0.7], [0.8, 0.75, 0.6, 0.9, 0.7]],
}


def _sanity_results():
    stages = [{"name": n, "n_layers": k, "layers": [], "lowest": n} for n, k in
              (("top-1", 1), ("top-5", 5), ("all", 9))]  # fmt: skip
    return [
        sanity.SanityResult(m, [f"s{i}" for i in range(5)], stages, np.array(rho), 0.5,
                            {"explainer": {"name": "shap-gradient"},
                             "ceiling": [0.9, 0.8, None, 0.7, 0.95]})
        for m, rho in SANITY_RHO.items()
    ]  # fmt: skip


def _images(fig) -> list[AxesImage]:
    return [im for ax in fig.axes for im in ax.get_images()]


def _colorbar_labels(fig) -> list[str]:
    return [ax.get_xlabel() or ax.get_ylabel() for ax in fig.axes if hasattr(ax, "_colorbar")]


def _draw_all(an, width):
    kw = {"width": width}
    return {
        "overlays": overlays.plot_attribution_overlays(an["overlays"], model_names=NAMES, **kw),
        "gallery": masks.plot_mask_gallery(an["masks"], threshold=0.1, n=2, **kw),
        "sweep": masks.plot_threshold_sweep(an["masks"], **kw),
        "heatmaps": variance.plot_variance_heatmaps(an["variance"], **kw),
        "ecdf": variance.plot_variance_ecdf(an["variance"], **kw),
        "embedding": embedding.plot_embedding_sweep(an["embedding"], model_names=NAMES, **kw),
        "alignment": alignment.plot_alignment_histograms(
            an["alignment"], model_names=NAMES, **kw
        ),  # fmt: skip
        "null": alignment.plot_permutation_null(an["alignment"], model_names=NAMES, **kw),
        "localisation": localisation.plot_localisation_bars(
            an["localisation"], model_names=NAMES, **kw
        ),  # fmt: skip
        "deletion": localisation.plot_deletion_curves(
            an["localisation"], model_names=NAMES, **kw
        ),  # fmt: skip
        "skill": alignment.plot_alignment_skill(an["alignment"], model_names=NAMES, **kw),
        "paired": comparison.plot_model_comparison(an["alignment"], model_names=NAMES, **kw),
        "sanity": sanity.plot_sanity_cascade(an["sanity"], model_names=NAMES, **kw),
    }


# ------------------------------------------------------------------ widths, files, captions


@pytest.mark.parametrize("width", ["single", "double"])
def test_every_figure_is_exactly_a_paper_width_and_says_what_it_shows(rich, width, tmp_path):
    _, _, an = rich
    figs = _draw_all(an, width)
    for name, fig in figs.items():
        assert isinstance(fig, Figure)
        assert not hasattr(fig, "_analysis_unavailable"), (name, fig._analysis_unavailable)
        assert fig.get_size_inches()[0] == pytest.approx(WIDTHS[width]), name
        assert len(caption_of(fig)) > 80, name
        assert "unavailable" not in caption_of(fig), name
    # saved at that width: PDF media box in points, PNG in pixels (no cropping)
    pdf, png = save_figure(figs["overlays"], tmp_path / "o", dpi=100)
    box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf.read_bytes())
    assert float(box.group(1)) == pytest.approx(72 * WIDTHS[width])
    with Image.open(png) as img:
        assert img.size[0] == round(100 * WIDTHS[width])


def test_per_model_figures_name_the_model(rich):
    _, _, an = rich
    figs = _draw_all(an, "double")
    for name in ("alignment", "null", "localisation", "deletion", "overlays"):
        cap = caption_of(figs[name])
        assert NAMES["defocus"] in cap, name
        if name != "deletion":  # the deletion curves here have only the defocus model
            assert NAMES["rgb"] in cap, name
    emb = figs["embedding"]
    assert NAMES["defocus"] in emb.get_suptitle() and NAMES["defocus"] in caption_of(emb)
    rgb = embedding.embedding_from_cache(rich[0], "features_rgb", perplexities=(3,))
    fig = embedding.plot_embedding_sweep(rgb, model_names=NAMES)
    assert NAMES["rgb"] in fig.get_suptitle()
    # in-figure text names the model on every panel grid
    titles = " ".join(ax.get_title() + ax.get_ylabel() for ax in figs["alignment"].axes)
    assert NAMES["defocus"] in titles and NAMES["rgb"] in titles


def test_nothing_is_drawn_translucent(rich):
    _, _, an = rich
    for name, fig in _draw_all(an, "double").items():
        for ax in fig.axes:
            for artist in [*ax.patches, *ax.collections, *ax.images, *ax.lines]:
                alpha = artist.get_alpha()
                assert alpha is None or alpha == 1, (name, artist)
            assert not any(isinstance(c, PolyCollection) for c in ax.collections), name


# ------------------------------------------------------------------ maps and colour scales


def test_overlays_signed_share_one_scale_centred_on_zero(rich):
    _, _, an = rich
    samples = an["overlays"]
    fig = overlays.plot_attribution_overlays(samples, percentile=100.0, model_names=NAMES)
    attr_images = [im for ax in fig.axes if hasattr(ax, "model") for im in ax.get_images()]
    assert len(attr_images) == 2 * len(samples["id"])
    norms = {(im.norm.vmin, im.norm.vmax) for im in attr_images}
    assert len(norms) == 1  # both models, every sample: one scale
    ((vmin, vmax),) = norms
    assert vmin == -vmax
    # the scale ends at the largest |value| drawn: the defocus attribution, or the RGB one
    # summed over channels (independent recomputation from the cache arrays)
    rgb = samples["attr_rgb"].astype(np.float64).sum(axis=1)
    expected = max(np.abs(samples["attr_defocus"]).max(), np.abs(rgb).max())
    assert vmax == pytest.approx(expected, rel=1e-6)
    assert {im.get_cmap().name for im in attr_images} == {DIVERGING_CMAP}
    maps = [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name == DEFOCUS_CMAP]
    assert maps and all((im.norm.vmin, im.norm.vmax) == (0.0, 1.0) for im in maps)
    labels = _colorbar_labels(fig)
    assert any("logit" in lab for lab in labels) and any("defocus" in lab for lab in labels)


def test_overlays_magnitudes_use_the_sequential_map_from_zero(rich):
    _, _, an = rich
    fig = overlays.plot_attribution_overlays(an["overlays"], signed=False, percentile=99.0)
    ims = [im for ax in fig.axes if hasattr(ax, "model") for im in ax.get_images()]
    assert {im.get_cmap().name for im in ims} == {SEQUENTIAL_CMAP}
    assert {im.norm.vmin for im in ims} == {0.0} and len({im.norm.vmax for im in ims}) == 1
    assert "99th percentile" in caption_of(fig)


def test_mask_gallery_counts_colour_bars_and_na_panels(rich):
    _, arrays, an = rich
    fig = masks.plot_mask_gallery(an["masks"], threshold=0.1, n=1)
    # one colour map per quantity, the same as in the overlays
    cmaps = {im.get_cmap().name for im in _images(fig)}
    assert cmaps == {DEFOCUS_CMAP, MASK_CMAP.name}
    assert len(_colorbar_labels(fig)) == 2
    # "k of N px (p %)" recomputed from the cache's maps
    f = arrays["pasted"]["defocus"][0].astype(np.float64)
    r = arrays["real"]["defocus"][0].astype(np.float64)
    k = int((np.abs(f - r) > 0.1).sum())
    labels = [ax.get_xlabel().replace("\n", " ") for ax in fig.axes]
    assert f"{k} of {S * S} px ({100 * k / S**2:.0f} %)" in labels
    assert f"36 of {S * S} px ({100 * 36 / S**2:.0f} %)" in labels  # the 6x6 truth square
    # the 'global' fakes have all-zero masks: an n/a panel, not a black image
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert sum(t.startswith("n/a") for t in texts) == 1
    assert "n/a (1 panels)" in caption_of(fig)


def test_threshold_sweep_draws_median_and_iqr_of_fractions(rich):
    _, arrays, an = rich
    fig = masks.plot_threshold_sweep(an["masks"])
    (ax,) = fig.axes
    f = arrays["pasted"]["defocus"].astype(np.float64)
    r = arrays["real"]["defocus"].astype(np.float64)
    frac = {t: (np.abs(f - r) > t).mean(axis=(1, 2)) for t in (0.2, 0.1, 0.01)}
    pasted = next(c for c in ax.containers if c.get_label().startswith("pasted")).lines[0]
    order = np.argsort(pasted.get_xdata())
    expected = [np.median(frac[t]) for t in sorted(frac)]
    np.testing.assert_allclose(np.asarray(pasted.get_ydata(), float)[order], expected, atol=1e-12)
    assert "fraction of pixels" in ax.get_ylabel()
    cap = caption_of(fig)
    assert "interquartile range" in cap and "min-max" not in cap


def test_variance_heatmaps_leave_the_padded_band_out_of_the_scale(rich):
    _, _, an = rich
    v = an["variance"]
    fig = variance.plot_variance_heatmaps(v, n=1)
    ims = _images(fig)
    seq = [im for im in ims if im.get_cmap().name == SEQUENTIAL_CMAP]
    div = [im for im in ims if im.get_cmap().name == DIVERGING_CMAP]
    assert len({(im.norm.vmin, im.norm.vmax) for im in seq}) == 1  # real and fake share it
    band = v.window // 2
    inner = [h[k][0][band:-band, band:-band] for h in v.heatmaps.values() for k in ("real", "fake")]
    assert seq[0].norm.vmax == pytest.approx(max(float(m.max()) for m in inner))
    whole = max(float(h[k][0].max()) for h in v.heatmaps.values() for k in ("real", "fake"))
    assert whole > seq[0].norm.vmax  # the border band would have set the scale
    assert all(im.norm.vmin == -im.norm.vmax for im in div)
    cap = caption_of(fig)
    assert f"outer {band} px" in cap and "zero padding" in cap


# ------------------------------------------------------------------ plots


def test_embedding_markers_and_trustworthiness_label(rich):
    _, _, an = rich
    fig = embedding.plot_embedding_sweep(an["embedding"], model_names=NAMES)
    ax = fig.axes[0]
    assert "trust." in ax.get_title() and "T=" not in ax.get_title()
    sizes = [float(np.max(c.get_sizes())) for c in ax.collections]
    assert min(sizes) >= 3.0
    assert len({c.get_paths()[0].vertices.tobytes() for c in ax.collections}) == 3  # 3 markers


def test_alignment_histograms_share_scales_with_integer_counts(rich):
    _, _, an = rich
    fig = alignment.plot_alignment_histograms(an["alignment"], model_names=NAMES)
    axes = [ax for ax in fig.axes if ax.patches]
    assert len(axes) == 4  # 2 fake groups x 2 models, one histogram each
    assert len({ax.get_ylim() for ax in axes}) == 1 and len({ax.get_xlim() for ax in axes}) == 1
    for ax in axes:
        ticks = ax.get_yticks()
        assert np.allclose(ticks, np.round(ticks))
    per = an["alignment"].per_sample
    sub = per[(per["group"] == "pasted") & (per["model"] == "defocus")]["score"]
    titles = " ".join(ax.get_title() for ax in axes)
    assert f"n={len(sub)}, mean {sub.mean():.2f} [" in titles
    legend = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert "mean" in legend and "mean under shuffled attributions" in legend
    assert "95 % bootstrap confidence interval" in caption_of(fig)


def test_permutation_null_is_a_grid_with_the_p_value_resolution(rich):
    _, _, an = rich
    fig = alignment.plot_permutation_null(an["alignment"], width="single", model_names=NAMES)
    assert fig.get_size_inches()[0] == 3.5
    axes = [ax for ax in fig.axes if ax.patches]
    assert len(axes) == 4
    assert all(ax.get_legend() is None for ax in axes) and fig.legends  # legend outside data
    assert "9 perm.; min 0.1" in " ".join(ax.get_title() for ax in axes)


def test_localisation_bars_sit_on_their_ticks_with_no_empty_slots(rich):
    _, _, an = rich
    fig = localisation.plot_localisation_bars(an["localisation"], model_names=NAMES)
    truth = next(ax for ax in fig.axes if "ground-truth" in ax.get_title())
    # only 'pasted' has a non-empty ground-truth region: 2 models x 3 metrics, centred on ticks
    bars = truth.patches
    assert len(bars) == 6
    centres = sorted(b.get_x() + b.get_width() / 2 for b in bars)
    for k in range(3):
        pair = centres[2 * k : 2 * k + 2]
        assert np.mean(pair) == pytest.approx(k)
    assert len(truth.containers) >= 6  # bars and error bars
    n = len(an["localisation"].per_sample.query("region == 'truth' and group == 'pasted'")) // 2
    assert [t.get_text() for t in truth.texts] == [str(n)] * 6


def test_deletion_curves_have_no_bands_and_explain_the_auc(rich):
    _, _, an = rich
    fig = localisation.plot_deletion_curves(an["localisation"], model_names=NAMES)
    (ax,) = [a for a in fig.axes if a.lines]
    legend = {t.get_text() for leg in fig.legends for t in leg.get_texts()}
    assert legend == {"most-attributed first", "random order"}
    drawn = {c.get_label(): c.lines[0] for c in ax.containers}
    assert set(drawn) == legend
    assert len({line.get_color() for line in drawn.values()}) == 2
    assert len({str(line.get_linestyle()) for line in drawn.values()}) == 2
    cap = caption_of(fig)
    assert "negative" in cap and "ΔAUC" in cap and "unavailable" not in cap


def test_sample_labels_are_short_and_wrapped():
    assert sample_label("syn2000-00003-all_in_focus", "all_in_focus") == (
        "all_in_focus\nsyn2000-00003"
    )
    label = sample_label("a_very_long_identifier_with_many_parts", "g", 12)
    assert all(len(line) <= 12 for line in label.split("\n")) and label.endswith("parts")


def test_width_must_be_a_paper_width(rich):
    _, _, an = rich
    with pytest.raises(ValueError, match=r"width must be 'single' \(3.5 in\) or 'double'"):
        masks.plot_threshold_sweep(an["masks"], width="wide")


# ------------------------------------------------------------------ draw_figures


def test_options_validation():
    assert FigureOptions().to_dict() == {"gallery_threshold": 0.1, "n_overlay": 2}
    with pytest.raises(ValueError, match=r"gallery_threshold must be in \(0, 1\), got 1.5"):
        FigureOptions(gallery_threshold=1.5)
    with pytest.raises(ValueError, match="n_overlay must be a positive integer, got 0"):
        FigureOptions(n_overlay=0)


def test_stems_are_unique_and_descriptive():
    stems = [t.stem for t in FIGURE_TYPES]
    assert len(stems) == len(set(stems)) >= 10
    assert all(t.stem.startswith(t.section.rstrip("s")[:5]) or t.section == "attributions"
               for t in FIGURE_TYPES)  # fmt: skip
    paper = {t.section for t in FIGURE_TYPES if t.paper}
    assert paper == {"attributions", "masks", "variance", "embedding", "alignment"}


@pytest.mark.parametrize("width", ["single", "double"])
def test_mask_figures_from_a_tiny_cache(tmp_path, rng, width):
    cache = _tiny_cache(tmp_path / "cache", rng)
    options = FigureOptions(gallery_threshold=0.2)
    manifest = draw_figures(cache, tmp_path / "figs", config=FAST, options=options, only=["masks"],
                            progress=False, width=width, dpi=100)  # fmt: skip
    stems = [f["stem"] for f in manifest["figures"]]
    assert stems == ["masks_binary_gallery_T0.2", "masks_threshold_sweep"]
    on_disk = json.loads((tmp_path / "figs" / "figures_manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["groups"] == ["real", "swap"] and manifest["n_samples"] == 12
    assert manifest["analysis_config"] == FAST.to_dict()  # the one config, recorded
    assert manifest["options"] == options.to_dict() and manifest["level"] == "frame"
    assert len(manifest["cache_manifest_sha256"]) == 64
    assert manifest["width"] == width and manifest["width_inches"] == WIDTHS[width]
    for entry in manifest["figures"]:
        assert entry["fields"] == ["defocus", "pair_id"] and entry["unavailable"] is None
        assert entry["missing_fields"] == (["mask"] if "gallery" in entry["stem"] else [])
        pdf = tmp_path / "figs" / entry["pdf"]
        assert pdf.read_bytes()[:5] == b"%PDF-"
        with Image.open(tmp_path / "figs" / entry["png"]) as img:
            assert img.size[0] == round(100 * WIDTHS[width])
    gallery = manifest["figures"][0]["caption"]
    assert "6 fake/real pairs" not in gallery and "2 fake/real pairs (2 swap" in gallery
    assert "|fake − real| > 0.2" in gallery and "no ground-truth 'mask' field" in gallery


def test_figures_missing_fields_are_marked_unavailable(tmp_path, rng):
    cache = _tiny_cache(tmp_path / "cache", rng)
    manifest = draw_figures(cache, tmp_path / "figs", only=["embedding"], progress=False,
                            config=FAST)  # fmt: skip
    assert [f["unavailable"] for f in manifest["figures"]] == [
        "the cache has no 'features_defocus' field (extract with --defocus-model CKPT)",
        "the cache has no 'features_rgb' field (extract with --rgb-model CKPT)",
    ]
    assert all(f["caption"].startswith("Not drawn: the cache has no") for f in manifest["figures"])


def test_paired_figures_without_pairs_say_how_to_give_pairs(tmp_path, rng):
    cache = _tiny_cache(tmp_path / "cache", rng, paired=False)
    manifest = draw_figures(cache, tmp_path / "figs", only=["masks", "variance", "alignment"],
                            progress=False, config=FAST,
                            width="single")  # fmt: skip
    by_stem = {f["stem"]: f for f in manifest["figures"]}
    for stem in ("masks_binary_gallery_T0.1", "masks_threshold_sweep",
                 "variance_local_variance_pairs", "alignment_histograms_by_model",
                 "alignment_skill_by_model", "alignment_paired_difference"):  # fmt: skip
        reason = by_stem[stem]["unavailable"]
        assert reason.startswith("no fake has a real partner"), stem
        assert "pair=stem" in reason and "pair_id column" in reason, stem
    # unpaired data still gives the ECDF of the two groups
    assert by_stem["variance_mean_local_variance_ecdf"]["unavailable"] is None


def test_figures_cli_errors(tmp_path, capsys):
    assert main(["figures", "--cache", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "defocus figures:" in capsys.readouterr().err
    assert main(["figures", "--cache", str(tmp_path), "--out", str(tmp_path),
                 "--window", "4"]) == 2  # fmt: skip
    assert "window must be odd" in capsys.readouterr().err


def test_figures_cli_width(tmp_path, rng, capsys):
    _tiny_cache(tmp_path / "cache", rng)
    code = main(["figures", "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "f"),
                 "--only", "masks", "--width", "single", "--formats", "pdf", "--quiet",
                 "--n-boot", "10"])  # fmt: skip
    assert code == 0
    assert "2 figures, single width" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "f" / "figures_manifest.json").read_text())
    pdf = (tmp_path / "f" / manifest["figures"][1]["pdf"]).read_bytes()
    assert float(re.search(rb"/MediaBox \[\s*0 0 ([\d.]+)", pdf).group(1)) == pytest.approx(252)


# ------------------------------------------------------------- the demo's cache


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The quick demo, run once per session (reruns reuse the finished stages)."""
    from defocus_forensics.demo import DemoConfig, run_demo

    out = tmp_path_factory.getbasetemp() / "demo-quick"
    return run_demo(DemoConfig(out=out, quick=True, progress=False))


@pytest.mark.slow
def test_demo_drew_every_figure_type(demo_run):
    figs = demo_run.out / "figures"
    manifest = json.loads((figs / "figures_manifest.json").read_text())
    stems = [f["stem"] for f in manifest["figures"]]
    assert stems == [
        "masks_binary_gallery_T0.1" if t.stem == "masks_binary_gallery" else t.stem
        for t in FIGURE_TYPES
    ]
    for entry in manifest["figures"]:
        # with the models at hand every figure type is drawn, none is a marker
        assert entry["unavailable"] is None, entry
        assert entry["missing_fields"] == []
        assert "unavailable" not in entry["caption"], entry
        for name in entry["files"].values():
            assert (figs / name).stat().st_size > 1000
    assert manifest["cache"] == str((demo_run.out / "cache").resolve())


@pytest.mark.slow
def test_figures_cli_on_demo_cache(demo_run, tmp_path, capsys):
    out = tmp_path / "figs"
    code = main(["figures", "--cache", str(demo_run.out / "cache"), "--out", str(out),
                 "--only", "variance", "localisation", "--n-boot", "20",
                 "--n-permutations", "5", "--perplexities", "5", "--quiet"])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    manifest = json.loads((out / "figures_manifest.json").read_text())
    assert {f["section"] for f in manifest["figures"]} == {"variance", "localisation"}
    # without the models the deletion curves are a marker that says why
    deletion = next(f for f in manifest["figures"] if f["stem"] == "localisation_deletion_curves")
    assert "predict" in deletion["unavailable"]
    assert deletion["caption"].startswith("Not drawn: ")
    assert "marked unavailable" in text and "localisation_deletion_curves" in text


@pytest.mark.slow
def test_figures_explorer_and_report_need_no_torch(tmp_path, rng):
    """A meta-path finder makes any ``import torch`` raise ImportError.

    (``sys.modules['torch'] = None`` would also break scipy, which probes
    ``sys.modules`` for array libraries.)
    """
    import subprocess
    import sys

    _tiny_cache(tmp_path / "cache", rng)
    code = f"""
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, NoTorch())
from defocus_forensics.figures import draw_figures
from defocus_forensics.explorer import Explorer
from defocus_forensics.report import build_report
m = draw_figures({str(tmp_path / "cache")!r}, {str(tmp_path / "run" / "figures")!r},
                 only=["masks"], progress=False, config={{"n_boot": 10}})
view = Explorer({str(tmp_path / "cache")!r}).view("swap", 0, 0.2)
build_report({str(tmp_path / "run")!r})
assert "torch" not in sys.modules
print("ok", len(m["figures"]), int(view.mask.sum()))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok 2 ")
    assert (tmp_path / "run" / "report.html").is_file()


def test_alignment_histograms_draw_the_floor_and_the_skill_when_the_analysis_has_them(rich):
    """The statistics work adds ``floor`` and ``skill`` columns; the figure uses them."""
    import dataclasses

    _, _, an = rich
    a = an["alignment"]
    per = a.per_sample.copy()
    per["floor"] = 0.5 + 0.01 * np.arange(len(per))
    per["skill"] = (per["score"] - per["floor"]) / (1 - per["floor"])
    b = dataclasses.replace(a, per_sample=per)
    fig = alignment.plot_alignment_histograms(b, model_names=NAMES)
    legend = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert "no-information floor (constant attribution)" in legend
    sel = (per["group"] == "pasted") & (per["model"] == "rgb")
    ax = next(ax for ax in fig.axes if getattr(ax, "panel_key", None) == ("pasted", "rgb"))
    xs = [line.get_xdata()[0] for line in ax.lines]
    assert per.loc[sel, "floor"].mean() == pytest.approx(xs[1])
    assert "constant attribution" in caption_of(fig)
    fig = alignment.plot_alignment_histograms(b, value="skill")
    assert "skill" in fig.axes[-1].get_xlabel() or any(
        "skill" in ax.get_xlabel() for ax in fig.axes
    )
    assert "0 = no better than a constant attribution" in caption_of(fig)
    with pytest.raises(ValueError, match="value must be 'score' or 'skill', got 'kl2'"):
        alignment.plot_alignment_histograms(b, value="kl2")


def test_embedding_without_perplexity_is_one_panel(rich):
    e = embedding.embedding_from_cache(rich[0], method="pca")
    fig = embedding.plot_embedding_sweep(e, width="single", model_names=NAMES)
    assert [ax.get_title().split("\n")[0] for ax in fig.axes if ax.collections] == ["PCA"]
    assert "principal components" in caption_of(fig)


# ------------------------------------------------------- skill, paired comparison, sanity


def _ref_hist(fake: np.ndarray, weights: np.ndarray, bins: int = 20) -> np.ndarray:
    """float64 reference of the paper's normalised histogram over the fake map's levels."""
    idx = np.minimum((fake * bins).astype(int), bins - 1).ravel()
    h = np.bincount(idx, weights=weights.ravel(), minlength=bins)
    return h / (h.sum() + 1e-8)


def _ref_scores(fake, real, attr):
    """Raw score, floor and skill of one pair, re-implemented in float64 from the formulas."""
    f, r = fake.astype(np.float64), real.astype(np.float64)
    w = np.abs(attr.astype(np.float64))
    w = w.sum(axis=0) if w.ndim == 3 else w
    a = _ref_hist(f, np.abs(f - r))
    score = np.minimum(a, _ref_hist(f, w)).sum()
    floor = np.minimum(a, _ref_hist(f, np.ones_like(f))).sum()
    return score, floor, (score - floor) / (1 - floor)


def _pair_scores(arrays, group, model):
    field = {"defocus": "attr_defocus", "rgb": "attr_rgb"}[model]
    real = {i: k for k, i in enumerate(arrays["real"]["id"])}
    fakes = arrays[group]
    return np.array([
        _ref_scores(fakes["defocus"][k], arrays["real"]["defocus"][real[p]], fakes[field][k])
        for k, p in enumerate(fakes["pair_id"])
    ])  # fmt: skip


def test_skill_figure_draws_raw_floor_and_skill_of_every_group_and_model(rich):
    _, arrays, an = rich
    fig = alignment.plot_alignment_skill(an["alignment"], model_names=NAMES)
    ax_raw, ax_skill = [ax for ax in fig.axes if ax.containers]
    for ax, col in ((ax_raw, 0), (ax_skill, 2)):
        drawn = sorted(float(c.lines[0].get_xdata()[0]) for c in ax.containers)
        expected = sorted(
            _pair_scores(arrays, g, m)[:, col].mean()
            for g in ("pasted", "global")
            for m in ("defocus", "rgb")
        )
        np.testing.assert_allclose(drawn, expected, rtol=1e-6, atol=1e-9)
    floors = sorted(line.get_xdata()[0] for line in ax_raw.lines if line.get_linewidth() == 3.0)
    ref = sorted(_pair_scores(arrays, g, "defocus")[:, 1].mean() for g in ("pasted", "global"))
    np.testing.assert_allclose(floors, ref, rtol=1e-6)
    # the p-value with its resolution beside each model (9 permutations: p >= 0.1)
    texts = [t.get_text() for t in ax_skill.texts]
    assert len(texts) == 4 and all(t.startswith(("p = ", "p ≤ 0.1")) for t in texts)
    cap = caption_of(fig)
    assert "0 (dashed) = no better than a constant attribution" in cap
    assert "9 permutations; smallest reachable p 0.1" in cap and "frame-level" in cap


def test_paired_difference_figure_draws_every_fake_and_the_paired_test(rich):
    _, arrays, an = rich
    fig = comparison.plot_model_comparison(an["alignment"], model_names=NAMES)
    skill_ax = next(ax for ax in fig.axes if ax.get_title() == "skill difference")
    dots = [line for line in skill_ax.lines if line.get_marker() == "o"]
    drawn = sorted(float(y) for line in dots for y in line.get_ydata())
    expected = []
    for g in ("pasted", "global"):
        expected += list(
            _pair_scores(arrays, g, "defocus")[:, 2] - _pair_scores(arrays, g, "rgb")[:, 2]
        )
    np.testing.assert_allclose(drawn, sorted(expected), rtol=1e-6, atol=1e-9)
    comp = an["alignment"].comparison.set_index(["group", "metric"])
    labels = [t.get_text() for t in skill_ax.get_xticklabels()]
    for label, g in zip(labels, ("pasted", "global"), strict=True):
        row = comp.loc[(g, "skill")]
        assert f"n={int(row['n'])}, p" in label
    means = [float(c.lines[0].get_ydata()[0]) for c in skill_ax.containers]
    np.testing.assert_allclose(means, [comp.loc[(g, "skill"), "mean_diff"] for g in
                                       ("pasted", "global")], rtol=1e-9)  # fmt: skip
    cap = caption_of(fig)
    assert NAMES["defocus"] in cap and NAMES["rgb"] in cap and "sign-flip" in cap
    assert "smallest reachable p 0.1" in cap


def test_sanity_cascade_draws_medians_and_interquartile_ranges(rich):
    fig = sanity.plot_sanity_cascade(rich[2]["sanity"], model_names=NAMES)
    (ax,) = [a for a in fig.axes if a.containers]
    for container, rho in zip(ax.containers, SANITY_RHO.values(), strict=True):
        y = container.lines[0].get_ydata()
        np.testing.assert_allclose(y, np.r_[1.0, np.median(rho, axis=1)])
        (bars,) = container.lines[2]
        segs = bars.get_segments()
        q1, q3 = np.quantile(rho, [0.25, 0.75], axis=1)
        np.testing.assert_allclose([s[0][1] for s in segs[1:]], q1)
        np.testing.assert_allclose([s[1][1] for s in segs[1:]], q3)
    flat = [ln for ln in ax.lines if len(set(ln.get_ydata())) == 1 and len(ln.get_ydata()) == 2]
    axh = [ln.get_ydata()[0] for ln in flat if list(ln.get_xdata()) == [0, 1]]  # axhline
    assert axh == [0.5, 0.0]  # the flag threshold (dashed) and 0
    ceilings = [ln.get_ydata()[0] for ln in flat if list(ln.get_xdata()) != [0, 1]]
    assert ceilings == pytest.approx([np.median([0.9, 0.8, 0.7, 0.95])] * 2)  # None left out
    cap = caption_of(fig)
    assert "noise ceiling 0.85" in cap
    assert "RGB model (toy-b): median 0.75 with every layer re-initialised, FLAGGED" in cap
    assert "defocus model (toy-a): median 0.05 with every layer re-initialised, passes" in cap


def test_figures_record_the_one_analysis_config_and_take_its_options(tmp_path, rng, capsys):
    _tiny_cache(tmp_path / "cache", rng)
    out = tmp_path / "f"
    code = main(["figures", "--cache", str(tmp_path / "cache"), "--out", str(out),
                 "--only", "variance", "--quiet", "--padding", "reflect", "--unit", "frame",
                 "--n-boot", "10", "--window", "5"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "figures_manifest.json").read_text())
    expected = AnalysisConfig(padding="reflect", unit="frame", n_boot=10, window=5)
    assert manifest["analysis_config"] == expected.to_dict()
    assert manifest["analysis_config"]["n_permutations"] == 999  # the class default
    assert "999 permutations" in capsys.readouterr().out
    cap = next(f["caption"] for f in manifest["figures"] if f["stem"].endswith("ecdf"))
    assert "5×5 window, reflect padding" in cap and "Reflect padding: the 2-px border band" in cap
    # --config reads it back (from the manifest itself); an option given still wins
    again = tmp_path / "g"
    assert main(["figures", "--cache", str(tmp_path / "cache"), "--out", str(again), "--only",
                 "variance", "--quiet", "--config", str(out / "figures_manifest.json"),
                 "--seed", "3"]) == 0  # fmt: skip
    recorded = json.loads((again / "figures_manifest.json").read_text())["analysis_config"]
    assert recorded == expected.replace(seed=3).to_dict()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"n_permutation": 5}))
    assert main(["figures", "--cache", str(tmp_path / "cache"), "--out", str(again),
                 "--config", str(bad)]) == 2  # fmt: skip
    assert "unknown analysis settings ['n_permutation']" in capsys.readouterr().err


def test_figures_without_pairs_say_so_in_the_summary_too(tmp_path, rng):
    """Item 9: the reason is the missing pairs, never a missing attribution field."""
    from analysis.summary import summarise_cache

    cache = _tiny_cache(tmp_path / "cache", rng, paired=False)
    df = summarise_cache(cache, config=FAST, embedding=False)
    rows = df[(df.metric == "unavailable") & ~df.note.str.contains("ground-truth 'mask'")
              & ~df.model.str.startswith("deletion")]  # fmt: skip
    notes = rows[rows.analysis.isin(["alignment", "masks", "localisation"])]["note"]
    assert len(notes) >= 6
    assert all("no fake has a real partner" in n and "pair=stem" in n for n in notes), list(notes)
    assert not any("'attr_defocus' field" in n for n in df.note)


def test_pairing_hint_is_the_data_layer_s_own():
    from analysis.pairing import PAIRING_HINT
    from detector.data.pairing import PAIRING_HINT as DATA_HINT

    assert PAIRING_HINT == DATA_HINT
