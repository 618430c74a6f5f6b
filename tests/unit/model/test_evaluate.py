from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from refundguard.config import (
    EvaluateParams,
    LightGBMParams,
    Params,
    PolicyParams,
    TrainParams,
    TuningParams,
)
from refundguard.errors import ConfigError
from refundguard.model.bundle import TrainedModel, TrainingInfo
from refundguard.model.evaluation import (
    MAX_HEADLINE,
    OPTIONS,
    PLAIN_FEATURES,
    SCORERS,
    baseline_score,
    calibration_metrics,
    cost_table,
    curves,
    evaluate,
    evaluate_scores,
    fit_comparators,
    fit_logistic,
    fit_plain_lightgbm,
    headline,
    nest,
    option_tiers,
    reliability,
    truth_at_cutoff,
    write_plot_csv,
)
from refundguard.model.policy import PolicyChoice
from refundguard.model.train import sample_rows, train


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


def test_option_tiers_cover_every_option() -> None:
    prob = np.array([0.001, 0.5, 0.9])
    t = option_tiers({"model": (prob, (0.01, 0.4, 0.8)), "logistic": (prob, (0.6, 0.7, 0.95)),
                      "plain": (prob, (0.0005, 0.002, 0.6))},
                     np.array([True, False, False]))
    assert tuple(t) == OPTIONS
    assert t["no_model"].tolist() == ["standard"] * 3
    assert t["baseline"].tolist() == ["review", "standard", "standard"]
    assert t["model"].tolist() == ["trusted", "review", "restrict"]
    assert t["logistic"].tolist() == ["trusted", "trusted", "review"]
    assert t["plain"].tolist() == ["standard", "review", "restrict"]


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


def _plain_world(rng: np.random.Generator, n: int = 4000) -> pd.DataFrame:
    """Rows with the plain features: abuse follows the 90-day refund rate, in steps."""
    frame = pd.DataFrame({f: rng.random(n) for f in PLAIN_FEATURES})
    rate = frame["refund_rate_count_90d"].to_numpy()
    frame["target"] = (rng.random(n) < np.where(rate > 0.8, 0.4, 0.01)).astype(int)
    frame.loc[::5, "mean_rating_365d"] = np.nan  # no reviews: LightGBM handles the gap
    frame["cutoff"] = np.repeat(pd.date_range("2024-01-01", periods=4, freq="28D", tz="UTC"),
                                n // 4)
    frame["junk"] = rng.random(n)
    return frame


def test_plain_lightgbm_uses_defaults_ranks_and_repeats(rng: np.random.Generator) -> None:
    frame = _plain_world(rng)
    train, cal, test = frame.iloc[:2000], frame.iloc[2000:3000], frame.iloc[3000:]
    before = train.copy()
    m = fit_plain_lightgbm(train, cal, seed=3, num_threads=1, calibration="platt")
    pd.testing.assert_frame_equal(train, before)  # the input is not modified
    assert m.features == PLAIN_FEATURES
    assert m.booster.num_trees() == 100  # LightGBM's default rounds, no early stopping
    assert "junk" not in m.booster.feature_name()
    p = m.predict(test)
    assert ((p >= 0) & (p <= 1)).all()
    high = test["refund_rate_count_90d"].to_numpy() > 0.8
    assert p[high].mean() > 5 * p[~high].mean()
    # Calibrated on the calibration rows: mean probability near the observed rate.
    assert abs(m.predict(cal).mean() - cal["target"].mean()) < 0.02
    again = fit_plain_lightgbm(train, cal, seed=3, num_threads=1, calibration="platt")
    np.testing.assert_array_equal(again.predict(test), p)


def test_plain_lightgbm_needs_its_features(rng: np.random.Generator) -> None:
    frame = _plain_world(rng).drop(columns=["refunds_90d"])
    with pytest.raises(ConfigError, match=r"refunds_90d.*windows_days"):
        fit_plain_lightgbm(frame, frame, seed=0, num_threads=1)


def test_comparators_share_rows_and_are_tiered_on_the_calibration_window(
    rng: np.random.Generator,
) -> None:
    frame = _plain_world(rng)
    cutoffs = sorted(frame["cutoff"].unique())
    rows = {"train": frame[frame["cutoff"].isin(cutoffs[:2])],
            "valid": frame[frame["cutoff"] == cutoffs[2]].iloc[:0],
            "calibration": frame[frame["cutoff"] == cutoffs[2]],
            "test": frame[frame["cutoff"] == cutoffs[3]]}
    policy = PolicyParams(max_honest_above_standard=0.05, review_capacity_per_day=100)
    out = fit_comparators(rows, ("refund_rate_count_90d", "junk"), seed=0, num_threads=1,
                          max_train_rows=10_000, calibration="platt", policy=policy,
                          period_days=28)
    assert set(out) == {"logistic", "plain"}
    for model, choice in out.values():
        b = choice.bounds
        assert b[0] <= b[1] <= b[2]
        assert model.predict(rows["test"]).shape == (len(rows["test"]),)
    plain = fit_plain_lightgbm(rows["train"], rows["calibration"], seed=0, num_threads=1,
                               max_train_rows=10_000, calibration="platt")
    np.testing.assert_array_equal(out["plain"][0].predict(rows["test"]),
                                  plain.predict(rows["test"]))


def _flat_metrics(truth: bool) -> dict[str, float]:
    m = {f"{s}.{k}": v for s, base in (("model", 0.3), ("plain", 0.2), ("logistic", 0.1),
                                       ("baseline", 0.05))
         for k, v in (("roc_auc", 0.6 + base), ("average_precision", base),
                      ("recall_at_fpr", base), ("precision_at_capacity", base),
                      ("precision_at_top", base), ("flag_rate", 0.01), ("n", 100.0))}
    m.update({"cost.model.cost_per_buyer": 0.65, "cost.plain.cost_per_buyer": 0.9,
              "calibration.ece": 0.002, "calibration.brier": 0.005, "capacity_k": 50.0,
              "ablation.full.average_precision": 0.3})
    if truth:
        m.update({f"truth.{k}": v for k, v in list(m.items())
                  if k.split(".")[0] in ("model", "plain", "logistic", "baseline")})
        m["cost.model.truth_cost_per_buyer"] = 5.6
        m.update({"segment.household.model_flag_rate": 0.004,
                  "segment.size_bracketer.model_flag_rate": 0.015,
                  "segment.wardrober.model_flag_rate": 0.6})
    return m


def test_headline_has_at_most_15_numbers_and_the_key_figures() -> None:
    full = _flat_metrics(truth=True)
    h = headline(full)
    assert len(h) <= MAX_HEADLINE == 15
    assert h["model.average_precision"] == 0.3 and h["plain.average_precision"] == 0.2
    assert h["plain.roc_auc"] == pytest.approx(0.8)
    assert h["model.cost_per_buyer"] == 0.65 and h["model.ece"] == 0.002
    assert h["model.worst_lookalike_fpr"] == 0.015  # abusive segments are not counted
    assert h["truth.plain.average_precision"] == 0.2
    assert h["truth.model.cost_per_buyer"] == 5.6
    assert not any(k.startswith(("ablation", "segment", "logistic", "baseline")) for k in h)
    labels_only = headline(_flat_metrics(truth=False))
    assert not any(k.startswith("truth.") for k in labels_only)
    assert "model.worst_lookalike_fpr" not in labels_only
    nan = headline({**full, "plain.roc_auc": math.nan})
    assert "plain.roc_auc" not in nan  # never a NaN in the DVC metrics


def test_plot_csv_has_no_bom(tmp_path: Path) -> None:
    out = tmp_path / "plots" / "roc_model.csv"
    write_plot_csv(pd.DataFrame({"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]}), out)
    raw = out.read_bytes()
    assert raw.startswith(b"fpr,tpr\n")
    assert list(pd.read_csv(out, encoding="utf-8").columns) == ["fpr", "tpr"]
    assert [p.name for p in out.parent.iterdir()] == ["roc_model.csv"]  # no temporary left


def _snapshots(seed: int = 0, n_cutoffs: int = 10, rows: int = 250) -> pd.DataFrame:
    """A small snapshot table in memory: two informative features among the plain ones."""
    rng = np.random.default_rng(seed)
    frames = []
    for cutoff in pd.date_range("2024-01-01", periods=n_cutoffs, freq="28D", tz="UTC"):
        x = rng.random((rows, len(PLAIN_FEATURES)))
        p = 1 / (1 + np.exp(-(3 * x[:, 0] + 2 * x[:, 1] - 4)))
        frame = pd.DataFrame(x, columns=list(PLAIN_FEATURES))
        frame.insert(0, "buyer_id", [f"b{i}" for i in range(rows)])
        frame.insert(1, "cutoff", cutoff)
        frame["target"] = (rng.random(rows) < p).astype(int)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _trained(snaps: pd.DataFrame, params: Params) -> tuple[TrainedModel, PolicyChoice,
                                                         TrainingInfo]:
    result = train(snaps, list(PLAIN_FEATURES), {}, params.train, params.policy,
                   seed=params.base.seed, horizon_days=28, period_days=28)
    info = result.info(run_id="r", git_commit=None, data_hash=None, catalog_version="v")
    return result.holdout, result.holdout_policy, info.for_model(result.holdout)


def _params() -> Params:
    fast = LightGBMParams(num_boost_round=60, early_stopping_rounds=20, min_data_in_leaf=5,
                          num_leaves=8, learning_rate=0.2, num_threads=1)
    return Params(
        train=TrainParams(lightgbm=fast, tuning=TuningParams(n_trials=0), n_test_cutoffs=1,
                          refit=False, monotone_increasing=()),
        evaluate=EvaluateParams(ablation_max_train_rows=2000),
    )


def test_evaluate_core_runs_in_memory_and_leaves_its_inputs_alone() -> None:
    params = _params()
    snaps = _snapshots()
    model, policy, info = _trained(snaps, params)
    truth = pd.DataFrame({"buyer_id": [f"b{i}" for i in range(250)],
                          "segment": ["size_bracketer"] * 200 + ["abuser"] * 50,
                          "is_abuser": [False] * 200 + [True] * 50})
    before, truth_before = snaps.copy(deep=True), truth.copy(deep=True)
    result = evaluate(snaps, model, policy, info, params, truth=truth)
    pd.testing.assert_frame_equal(snaps, before)
    pd.testing.assert_frame_equal(truth, truth_before)
    m = result.metrics
    assert len(result.test) == 250 and set(result.test["cutoff"]) == set(info.time_split.test)
    for name in SCORERS:
        assert 0.0 <= m[f"{name}.average_precision"] <= 1.0
        assert set(result.curves[name][0].columns) == {"fpr", "tpr"}
    assert m["model.average_precision"] > m["model.positives"] / m["model.n"]
    assert "ablation.full.average_precision" in m and "tuning.trials" in m
    assert "truth.model.roc_auc" in m and "segment.size_bracketer.model_flag_rate" in m
    assert m["policy.review_from"] == policy.bounds[1] and result.bounds == policy.bounds
    assert list(result.score_frame.columns) == ["segment", "probability"]
    assert sorted(result.importance["feature"]) == sorted(PLAIN_FEATURES)
    assert 0 < len(headline(m)) <= MAX_HEADLINE
    # Same inputs, same figures: nothing in the core depends on a file or the clock.
    again = evaluate(snaps, model, policy, info, params, truth=truth).metrics
    assert json.dumps(nest(again)) == json.dumps(nest(m))


def test_evaluate_core_without_truth_labels_the_segments_by_target() -> None:
    params = dataclasses.replace(_params(), evaluate=EvaluateParams(ablation=False))
    snaps = _snapshots(seed=1)
    model, policy, info = _trained(snaps, params)
    result = evaluate(snaps, model, policy, info, params)
    assert set(result.score_frame["segment"]) <= {"labeled abuser", "not labeled"}
    assert not any(k.startswith(("truth.", "ablation.")) for k in result.metrics)
