"""A cache imported from the paper's own files gives the RGB alignment too (from attr_rgb_c0)."""

import warnings

import numpy as np
import pytest

from analysis.alignment import alignment_from_cache
from analysis.localisation import localisation_from_cache
from analysis.summary import summarise_cache
from cache import open_cache
from cache.legacy import import_legacy


def _paper_file(path, rng, n, size=12):
    """As the paper's "Shapley Save" notebook: lists of (H, W) arrays as object arrays."""
    dmaps = [rng.random((size, size)).astype(np.float32) for _ in range(n)]
    defocus_shaps = [rng.standard_normal((size, size)) * 1e-3 for _ in range(n)]
    rgb_shaps = [rng.standard_normal((size, size)) * 1e-3 for _ in range(n)]
    np.savez(
        path,
        dmaps=np.array(dmaps, dtype=object),
        defocus_shaps=np.array(defocus_shaps, dtype=object),
        rgb_shaps=np.array(rgb_shaps, dtype=object),
    )


def _paper_score(fake, real, shap, num_bins=20):
    """The paper's compare_shap_diff for one sample (float32 maps, numpy histograms)."""
    fake = fake.astype(np.float32).ravel()
    real = real.astype(np.float32).ravel()
    shap = np.clip(np.abs(shap.astype(np.float32).ravel()), 0, None)
    bins = np.linspace(0, 1, num_bins + 1)
    hist_diff, _ = np.histogram(fake, bins=bins, weights=np.abs(fake - real))
    hist_shap, _ = np.histogram(fake, bins=bins, weights=shap)
    a = hist_diff / (hist_diff.sum() + 1e-8)
    b = hist_shap / (hist_shap.sum() + 1e-8)
    return np.minimum(a, b).sum()


@pytest.fixture
def legacy_cache(tmp_path, rng):
    _paper_file(tmp_path / "shap_data_real.npz", rng, 6)
    _paper_file(tmp_path / "shap_data_fake_Deepfakes.npz", rng, 5)
    files = [tmp_path / "shap_data_real.npz", tmp_path / "shap_data_fake_Deepfakes.npz"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        import_legacy(files, tmp_path / "cache", trust_pickle=True)
    return open_cache(tmp_path / "cache")


def test_imported_cache_gives_the_rgb_alignment(legacy_cache):
    c = legacy_cache
    assert "attr_rgb" not in c.fields and "attr_rgb_c0" in c.fields
    res = alignment_from_cache(c, n_boot=20, n_permutations=19, null_samples=4)
    assert "rgb" not in res.unavailable
    assert res.sources == {"defocus": "attr_defocus", "rgb": "attr_rgb_c0"}
    fake = c.load("defocus", "Deepfakes")
    real = c.load("defocus", "real")[:5]  # paired by list position, as the paper pairs them
    shap = c.load("attr_rgb_c0", "Deepfakes")
    rgb = res.per_sample[res.per_sample.model == "rgb"]["score"].to_numpy()
    ref = [_paper_score(fake[i], real[i], shap[i]) for i in range(5)]
    np.testing.assert_allclose(rgb, ref, atol=1e-6)  # float32 (paper) vs float64 (ours)
    assert set(res.comparison["metric"]) == {"skill", "score"}
    loc = localisation_from_cache(c)
    assert "rgb" in set(loc.summary["model"]) and loc.sources["rgb"] == "attr_rgb_c0"
    df = summarise_cache(c, n_boot=20, n_permutations=19, null_samples=4, embedding=False)
    row = df[(df.analysis == "alignment") & (df.metric == "attribution_field")]
    assert row["value"].tolist() == ["attr_rgb_c0"] and "channel 0" in row["note"].iloc[0]
