from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from refundguard.evaluate import (
    baseline_score,
    curves,
    evaluate_scores,
    nest,
    sample_rows,
    truth_at_cutoff,
)


def test_evaluate_scores_model_beats_a_useless_baseline(rng: np.random.Generator) -> None:
    y = (rng.random(2000) < 0.05).astype(int)
    model = np.clip(0.6 * y + rng.random(2000) * 0.5, 0, 1)
    baseline = rng.random(2000)
    m = evaluate_scores(y, model, baseline, top_share=0.01, max_fpr=0.01, review_from=0.5,
                        baseline_threshold=0.5)
    assert m["model.average_precision"] > m["baseline.average_precision"]
    assert m["model.k"] == 20 and m["model.n"] == 2000
    assert m["model.flag_rate"] == pytest.approx(float((model >= 0.5).mean()))
    assert not any(k.startswith("segment.") for k in m)


def test_segment_flag_rates() -> None:
    y = np.array([0, 0, 1, 1])
    prob = np.array([0.1, 0.9, 0.9, 0.1])
    truth = pd.DataFrame({"segment": ["honest", "size_bracketer", "wardrober", "wardrober"],
                          "abuser_by_cutoff": [False, False, True, True]})
    m = evaluate_scores(y, prob, prob, top_share=0.5, max_fpr=0.5, review_from=0.5,
                        baseline_threshold=0.95, truth=truth)
    assert m["segment.size_bracketer.model_flag_rate"] == 1.0
    assert m["segment.honest.model_flag_rate"] == 0.0
    assert m["segment.wardrober.model_flag_rate"] == 0.5
    assert m["segment.wardrober.baseline_flag_rate"] == 0.0
    assert m["truth.model.positives"] == 2


def test_truth_at_cutoff_counts_abuse_started_before_the_cutoff() -> None:
    rows = pd.DataFrame({"buyer_id": ["a", "b", "c"],
                         "cutoff": pd.to_datetime(["2024-03-01"] * 3, utc=True)})
    truth = pd.DataFrame({"buyer_id": ["a", "b"], "segment": ["wardrober", "wardrober"],
                          "is_abuser": [True, True],
                          "abuse_start": pd.to_datetime(["2024-02-01", "2024-04-01"])})
    out = truth_at_cutoff(rows, truth, "Asia/Shanghai")
    assert out["abuser_by_cutoff"].tolist() == [True, False, False]
    assert out["segment"].tolist() == ["wardrober", "wardrober", "unknown"]


def test_nest_and_nan() -> None:
    assert nest({"a.b": 1.0, "a.c": math.nan, "d": 2.0}) == {"a": {"b": 1.0, "c": None},
                                                           "d": 2.0}


def test_baseline_score_treats_missing_as_zero() -> None:
    frame = pd.DataFrame({"refund_rate_count_90d": [0.5, np.nan]})
    assert baseline_score(frame, "refund_rate_count_90d").tolist() == [0.5, 0.0]
    with pytest.raises(KeyError, match="not a feature"):
        baseline_score(frame, "nope")


@pytest.mark.parametrize("cap", [5, 50, 1000])
def test_sample_rows_keeps_every_positive(cap: int, rng: np.random.Generator) -> None:
    frame = pd.DataFrame({"target": (rng.random(200) < 0.02).astype(int), "x": range(200)})
    out = sample_rows(frame, cap, seed=1)
    assert len(out) == min(max(cap, int(frame["target"].sum())), 200)
    assert out["target"].sum() == frame["target"].sum()
    assert out["x"].is_monotonic_increasing
    pd.testing.assert_frame_equal(out, sample_rows(frame, cap, seed=1))


def test_curves_are_thinned_and_monotone(rng: np.random.Generator) -> None:
    y = (rng.random(5000) < 0.1).astype(int)
    roc, pr = curves(y, rng.random(5000) + y, points=50)
    assert len(roc) <= 50 and len(pr) <= 50
    assert roc["fpr"].is_monotonic_increasing
    assert roc["fpr"].iloc[0] == 0 and roc["tpr"].iloc[-1] == 1
