"""Detection metrics against independent references written here."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from detector.metrics import binary_metrics, equal_error_rate, video_scores


def _auc_pairwise(y, s):
    """AUC as P(score_fake > score_real) + 0.5 P(tie), by enumerating all pairs."""
    pos, neg = s[y == 1], s[y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def _ap_by_hand(y, s):
    """Average precision: mean over positives of precision at their rank (no ties)."""
    order = np.argsort(-s)
    y = y[order]
    hits = np.cumsum(y)
    return float(np.mean([hits[i] / (i + 1) for i in range(len(y)) if y[i] == 1]))


def test_binary_metrics_match_references(rng):
    y = rng.integers(0, 2, 60)
    s = rng.normal(size=60) + 1.2 * y
    m = binary_metrics(y, s)
    assert m["n"] == 60 and m["n_real"] == int((y == 0).sum()) and m["n_fake"] == int(y.sum())
    assert m["accuracy"] == pytest.approx(float(((s > 0) == y).mean()), abs=1e-12)
    assert m["auc"] == pytest.approx(_auc_pairwise(y, s), abs=1e-12)
    assert m["ap"] == pytest.approx(_ap_by_hand(y, s), abs=1e-12)
    assert m["tp"] + m["fn"] == m["n_fake"] and m["tn"] + m["fp"] == m["n_real"]
    assert m["tp"] == int(((s > 0) & (y == 1)).sum())
    assert math.isnan(m["video_auc"]) and m["n_videos"] == 0


def test_eer_on_a_case_with_known_answer():
    # reals score 0..9, fakes 5..14. Thresholds in (7, 8] give FPR 0.2 (reals 8, 9)
    # and FNR 0.3 (fakes 5, 6, 7); thresholds in (6, 7] give FPR 0.3 and FNR 0.2.
    # The rates cross halfway between these two ROC points: EER = 0.25.
    y = np.array([0] * 10 + [1] * 10)
    s = np.concatenate([np.arange(10), np.arange(5, 15)]).astype(float)
    eer, thr = equal_error_rate(y, s)
    assert eer == pytest.approx(0.25, abs=1e-12)
    assert 7.0 <= thr <= 8.0


def test_eer_perfect_and_inverted():
    y = np.array([0, 0, 1, 1])
    assert equal_error_rate(y, [0.0, 1.0, 2.0, 3.0])[0] == pytest.approx(0.0, abs=1e-12)
    assert equal_error_rate(y, [3.0, 2.0, 1.0, 0.0])[0] == pytest.approx(1.0, abs=1e-12)


def test_one_class_gives_nan_not_an_error():
    m = binary_metrics([1, 1, 1], [0.2, -1.0, 3.0])
    assert math.isnan(m["auc"]) and math.isnan(m["ap"]) and math.isnan(m["eer"])
    assert m["accuracy"] == pytest.approx(2 / 3)


def test_video_auc_averages_frames_per_video():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    s = np.array([0.1, 0.9, -1.0, -0.5, 0.0, 0.2, 2.0, -2.0])
    vids = ["r/a", "r/a", "r/b", "r/b", "f/c", "f/c", "f/d", "f/d"]
    vy, vs, names = video_scores(y, s, vids)
    assert names == ["f/c", "f/d", "r/a", "r/b"]
    np.testing.assert_allclose(vs, [0.1, 0.0, 0.5, -0.75], atol=1e-12)
    m = binary_metrics(y, s, video_ids=vids)
    assert m["n_videos"] == 4
    assert m["video_auc"] == pytest.approx(_auc_pairwise(vy, vs), abs=1e-12)


def test_video_with_mixed_labels_is_an_error():
    with pytest.raises(ValueError, match="video 'v'"):
        video_scores([0, 1], [0.0, 1.0], ["v", "v"])


@pytest.mark.parametrize(
    ("labels", "scores", "match"),
    [
        ([0, 2], [0.0, 1.0], "labels must be 0"),
        ([0, 1], [0.0], "same length"),
        ([0, 1], [0.0, float("nan")], "finite"),
    ],
)
def test_bad_inputs(labels, scores, match):
    with pytest.raises(ValueError, match=match):
        binary_metrics(labels, scores)
