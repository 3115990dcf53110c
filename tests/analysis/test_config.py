"""The one analysis config: validation, round trip, the functions' defaults come from it."""

import inspect
import json

import pytest

from analysis import alignment, localisation, masks, stats, variance
from analysis.config import PAPER_THRESHOLDS, AnalysisConfig, resolve_config


def test_defaults_and_resolution():
    cfg = AnalysisConfig()
    assert cfg.thresholds == PAPER_THRESHOLDS and cfg.window == 15 and cfg.bins == 20
    assert cfg.padding == "zeros" and cfg.unit == "video"
    # the default permutation count can reach p < 0.01
    assert cfg.min_pvalue < 0.01 and cfg.min_pvalue == pytest.approx(1 / (cfg.n_permutations + 1))


def test_round_trip_through_json():
    cfg = AnalysisConfig(window=7, padding="reflect", perplexities=(3, 9), n_permutations=99)
    back = AnalysisConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.perplexities == (3.0, 9.0)
    assert AnalysisConfig.from_dict({"seed": 4}) == AnalysisConfig(seed=4)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(window=4), "window must be odd"),
        (dict(window=0), "window"),
        (dict(padding="wrap"), "padding must be one of"),
        (dict(n_permutations=0), "n_permutations"),
        (dict(n_boot=True), "n_boot"),
        (dict(thresholds=(0.1, 1.5)), "threshold"),
        (dict(thresholds=()), "thresholds must not be empty"),
        (dict(perplexities=(5, -1)), "perplexities must be positive"),
        (dict(confidence=1.0), "confidence"),
        (dict(unit="clip"), "unit must be one of"),
        (dict(sanity_threshold=1.0), "sanity_threshold"),
        (dict(seed=-1), "seed"),
    ],
)
def test_validation_names_the_bad_value(bad, match):
    with pytest.raises(ValueError, match=match):
        AnalysisConfig(**bad)


def test_unknown_settings_are_named():
    with pytest.raises(ValueError, match=r"\['windw'\]"):
        AnalysisConfig.from_dict({"windw": 3})
    with pytest.raises(ValueError, match="nboot"):
        AnalysisConfig().replace(nboot=3)


def test_resolve_config_overrides_only_given_values():
    base = AnalysisConfig(window=5, seed=2)
    got = resolve_config(base, window=None, seed=7, n_boot=None)
    assert got.window == 5 and got.seed == 7
    assert resolve_config(None) == AnalysisConfig()
    assert resolve_config({"bins": 8}).bins == 8
    with pytest.raises(ValueError, match="config must be"):
        resolve_config(15)


@pytest.mark.parametrize(
    "func, name, field",
    [
        (variance.local_variance, "window", "window"),
        (variance.local_variance, "padding", "padding"),
        (variance.test_means, "n_boot", "n_boot"),
        (variance.variance_ks_test, "window", "window"),
        (alignment.alignment_score, "bins", "bins"),
        (alignment.permutation_null, "n_permutations", "n_permutations"),
        (stats.bootstrap_mean_ci, "n_boot", "n_boot"),
        (stats.sign_flip_test, "n_permutations", "n_permutations"),
        (masks.threshold_sweep, "thresholds", "thresholds"),
        (localisation.LocalisationAccumulator.__init__, "threshold", "localisation_threshold"),
    ],
)
def test_low_level_defaults_come_from_the_config(func, name, field):
    default = inspect.signature(func).parameters[name].default
    assert default == getattr(AnalysisConfig(), field)


def test_every_from_cache_function_records_its_config(small_cache):
    c, _ = small_cache
    cfg = AnalysisConfig(n_boot=20, n_permutations=19, null_samples=4, window=5, seed=3)
    results = [
        masks.masks_from_cache(c, config=cfg),
        variance.variance_from_cache(c, config=cfg),
        alignment.alignment_from_cache(c, config=cfg),
        localisation.localisation_from_cache(c, config=cfg),
    ]
    for r in results:
        assert r.config == cfg.to_dict(), type(r).__name__
    # an explicit keyword wins over the config, and is recorded
    v = variance.variance_from_cache(c, window=3, config=cfg)
    assert v.window == 3 and v.config["window"] == 3
