from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from refundguard.config import PolicyParams
from refundguard.evaluate import (
    baseline_score,
    calibration_metrics,
    cost_table,
    curves,
    evaluate_scores,
    fit_logistic,
    nest,
    option_tiers,
    reliability,
    truth_at_cutoff,
)
from refundguard.train import sample_rows


def test_evaluate_scores_model_beats_a_useless_baseline(rng: np.random.Generator) -> None:
    y = (rng.random(2000) < 0.05).astype(int)
    model = np.clip(0.6 * y + rng.random(2000) * 0.5, 0, 1)
    baseline = rng.random(2000)
    m = evaluate_scores(y, {"model": model, "baseline": baseline},
                        {"model": model >= 0.5, "baseline": baseline >= 0.5},
                        top_share=0.01, max_fpr=0.01, capacity=50)
    assert m["model.average_precision"] > m["baseline.average_precision"]
    assert m["model.k"] == 20 and m["model.n"] == 2000
    assert m["model.flag_rate"] == pytest.approx(float((model >= 0.5).mean()))
    top50 = np.argsort(-model, kind="stable")[:50]
    assert m["model.precision_at_capacity"] == pytest.approx(y[top50].mean())
    assert m["capacity_k"] == 50
    assert not any(k.startswith("segment.") for k in m)


def test_segment_flag_rates() -> None:
    y = np.array([0, 0, 1, 1])
    prob = np.array([0.1, 0.9, 0.9, 0.1])
    truth = pd.DataFrame({"segment": ["honest", "size_bracketer", "wardrober", "wardrober"],
                          "abuser_by_cutoff": [False, False, True, True]})
    m = evaluate_scores(y, {"model": prob, "baseline": prob},
                        {"model": prob >= 0.5, "baseline": prob >= 0.95},
                        top_share=0.5, max_fpr=0.5, capacity=2, truth=truth)
    assert m["segment.size_bracketer.model_flag_rate"] == 1.0
    assert m["segment.honest.model_flag_rate"] == 0.0
    assert m["segment.wardrober.model_flag_rate"] == 0.5
    assert m["segment.wardrober.baseline_flag_rate"] == 0.0
    assert m["segment.wardrober.abusers"] == 2
    assert m["truth.model.positives"] == 2


def test_cost_table_compares_options_on_the_same_rows() -> None:
    y = np.array([1, 0, 0, 0])
    tiers = {"no_model": np.array(["standard"] * 4, dtype=object),
             "model": np.array(["review", "trusted", "trusted", "standard"], dtype=object)}
    p = PolicyParams(abuse_loss=100.0, friction_cost=10.0)
    m = cost_table(y, tiers, p, periods=1, period_days=2)
    # no model: abuser in standard loses 100 * (1 - 0.3); 3 honest pay 10 * 0.1 each.
    assert m["cost.no_model.cost"] == pytest.approx(70.0 + 3.0)
    # model: abuser in review loses 100 * 0.15; one honest in standard pays 1.
    assert m["cost.model.cost"] == pytest.approx(15.0 + 1.0)
    assert m["cost.model.count.review"] == 1 and m["cost.model.count.trusted"] == 2
    assert m["cost.model.flagged_per_day"] == 0.5
    assert m["cost.model.honest_above_standard"] == 0.0


def test_calibration_metrics_by_hand() -> None:
    y = np.array([0, 0, 1, 1])
    prob = np.array([0.05, 0.05, 0.95, 0.55])
    m = calibration_metrics(y, prob, bins=10)
    # bins: [0, .1) holds 2 rows, mean .05, rate 0; [.5, .6) one row .55 vs 1; [.9, 1] .95 vs 1.
    assert m["ece"] == pytest.approx((2 * 0.05 + 0.45 + 0.05) / 4)
    assert m["brier"] == pytest.approx((0.05**2 * 2 + 0.05**2 + 0.45**2) / 4)
    rel = reliability(y, prob, bins=10)
    assert rel["rows"].tolist() == [2, 1, 1]


def test_option_tiers_cover_the_four_options() -> None:
    prob = np.array([0.001, 0.5, 0.9])
    t = option_tiers(prob, (0.01, 0.4, 0.8), prob, (0.6, 0.7, 0.95),
                     np.array([True, False, False]))
    assert t["no_model"].tolist() == ["standard"] * 3
    assert t["baseline"].tolist() == ["review", "standard", "standard"]
    assert t["model"].tolist() == ["trusted", "review", "restrict"]
    assert t["logistic"].tolist() == ["trusted", "trusted", "review"]


def test_logistic_comparator_ranks_a_signal(rng: np.random.Generator) -> None:
    n = 3000
    signal = rng.random(n)
    y = (rng.random(n) < 0.02 + 0.3 * (signal > 0.9)).astype(int)
    frame = pd.DataFrame({"a": signal * 10, "b": rng.random(n), "target": y,
                          "cutoff": pd.Timestamp("2024-01-01", tz="UTC")})
    frame.loc[::7, "b"] = np.nan
    m = fit_logistic(frame.iloc[:2000], frame.iloc[2000:], ("a", "b"), seed=0,
                     max_train_rows=10_000, calibration="platt")
    p = m.predict(frame.iloc[2000:])
    assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    assert p[signal[2000:] > 0.9].mean() > 2 * p[signal[2000:] < 0.5].mean()


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
