"""The torch-free side of the model-randomisation check: Spearman per sample, the flag, files."""

import json

import numpy as np
import pytest
from scipy import stats

from analysis.sanity import SanityResult, rank_correlation, read_sanity, sanity_result, write_sanity
from analysis.summary import summary_frames

STAGES = [
    {"name": "top-1", "n_layers": 1, "layers": ["head"], "lowest": "head"},
    {"name": "all", "n_layers": 2, "layers": ["head", "conv"], "lowest": "conv"},
]


def test_rank_correlation_matches_scipy_per_sample(rng):
    a = rng.normal(size=(4, 6, 7))
    b = a + rng.normal(scale=0.8, size=a.shape)
    b[2] = np.round(b[2])  # ties: average ranks
    got = rank_correlation(a, b)
    for i in range(4):
        ref = stats.spearmanr(np.abs(a[i]).ravel(), np.abs(b[i]).ravel()).statistic
        assert got[i] == pytest.approx(ref, abs=1e-12)
    # channels: |attr| summed over them first
    c = rng.normal(size=(3, 2, 5, 5))
    d = rng.normal(size=(3, 2, 5, 5))
    ref = stats.spearmanr(np.abs(c[1]).sum(0).ravel(), np.abs(d[1]).sum(0).ravel()).statistic
    assert rank_correlation(c, d)[1] == pytest.approx(ref, abs=1e-12)
    # the sign does not matter, a constant map has no ranking
    assert rank_correlation(a, -3 * a) == pytest.approx(1.0)
    assert np.isnan(rank_correlation(np.ones((1, 3, 3)), a[:1, :3, :3])[0])


def test_flag_rule_and_round_trip(rng, tmp_path):
    trained = rng.normal(size=(5, 8, 8))
    unrelated = rng.normal(size=(5, 8, 8))
    scaled = 2.0 * trained + rng.normal(scale=1e-3, size=trained.shape)
    passes = sanity_result("defocus", list("abcde"), trained, [scaled, unrelated], STAGES)
    assert passes.full_median < 0.5 and not passes.flagged and "passes" in passes.message
    assert passes.medians[0] > 0.99
    flagged = sanity_result("rgb", list("abcde"), trained, [unrelated, scaled], STAGES)
    assert flagged.flagged and "FLAGGED" in flagged.message
    assert flagged.summary()["stage"].tolist() == ["top-1", "all"]
    back = SanityResult.from_dict(json.loads(json.dumps(flagged.to_dict())))
    np.testing.assert_allclose(back.spearman, flagged.spearman)
    assert back.flagged and back.stages == STAGES
    files = write_sanity([passes, flagged], tmp_path, extra={"data_spec": "x"})
    data = json.loads(files["json"].read_text())
    assert data["flagged"] == ["rgb"] and data["run"]["data_spec"] == "x"
    table = files["csv"].read_text().splitlines()
    assert table[0] == "model,stage,n_layers,id,spearman" and len(table) == 1 + 2 * 2 * 5
    assert [r.model for r in read_sanity(tmp_path)] == ["defocus", "rgb"]
    rows = summary_frames({"sanity": flagged})
    assert rows.set_index("metric").loc["flagged", "value"] == 1
    with pytest.raises(ValueError, match="one attribution array per stage"):
        sanity_result("rgb", list("abcde"), trained, [scaled], STAGES)
