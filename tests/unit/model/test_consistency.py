"""Time consistency of features: PSI, adversarial validation and the transfer test."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from refundguard.config import BaseParams, FeaturesParams, SimulateParams
from refundguard.data.validate import validate_tables
from refundguard.errors import ConfigError, DataContractError, ModelError
from refundguard.features.build import build_snapshots
from refundguard.features.catalog import build_catalog
from refundguard.features.events import prepare_events
from refundguard.features.timesplit import TimeSplit, make_cutoffs, split_cutoffs
from refundguard.model.consistency import (
    PSI_EPSILON,
    ConsistencyParams,
    ConsistencyReport,
    FeatureCheck,
    check_time_consistency,
    consistency_sides,
    psi,
    quantile_edges,
    rank_auc,
    separation_auc,
)
from refundguard.sim.simulate import simulate_world

# One thread: the tests share two cores with other processes.
PARAMS = ConsistencyParams(num_threads=1)
CUTOFFS = tuple(pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(days=28 * k) for k in range(8))
EARLY, LATE = CUTOFFS[:6], CUTOFFS[-1:]
FEATURES = ["stable", "calendar", "seasonal", "noise"]
# The seasonal feature's level at each cutoff: it goes up and down, the late level (2.0)
# is one the early side also saw.
SEASON = (1.0, 1.5, 2.0, 1.5, 1.0, 2.0, 1.5, 2.0)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def synthetic_rows(seed: int = 0, n: int = 1500) -> pd.DataFrame:
    """Snapshot rows at 8 cutoffs with a stable, a calendar, a seasonal and a noise feature.

    ``calendar`` is days since a fixed date plus noise; at the early cutoffs (the first 6)
    buyers above day 80 are riskier, a threshold every late row is past. ``seasonal`` is a
    per-buyer propensity times the season's level: its level moves, its ranking holds.
    """
    rng = np.random.default_rng(seed)
    parts = []
    for k, cutoff in enumerate(CUTOFFS):
        stable = rng.normal(size=n)
        propensity = rng.normal(size=n)
        calendar = 28.0 * k + rng.normal(0, 10, n)
        early = k < 6
        logit = -3.2 + 1.2 * stable + 1.0 * propensity + (2.0 * (calendar > 80) if early else 0)
        target = (rng.random(n) < _sigmoid(logit)).astype("int8")
        parts.append(
            pd.DataFrame(
                {
                    "buyer_id": [f"b{i:05d}" for i in range(n)],
                    "cutoff": cutoff,
                    "stable": stable,
                    "calendar": calendar,
                    "seasonal": SEASON[k] * np.exp(0.5 * propensity),
                    "noise": rng.normal(size=n),
                    "target": target,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return synthetic_rows()


@pytest.fixture(scope="module")
def report(rows: pd.DataFrame) -> ConsistencyReport:
    return check_time_consistency(
        rows, FEATURES, early_cutoffs=EARLY, late_cutoffs=LATE, params=PARAMS, seed=3
    )


def _by_name(report: ConsistencyReport) -> dict[str, FeatureCheck]:
    return {c.name: c for c in report.checks}


# --- the decision on planted features ---------------------------------------------------


def test_stable_informative_feature_passes(report: ConsistencyReport) -> None:
    c = _by_name(report)["stable"]
    assert c.passed and c.reason == ""
    assert c.psi < 0.05 and c.adversarial_auc < 0.55
    assert c.auc_early > 0.65 and c.auc_late > 0.65


def test_calendar_feature_whose_threshold_stops_holding_fails(report: ConsistencyReport) -> None:
    c = _by_name(report)["calendar"]
    assert not c.passed
    assert c.psi > 1 and c.adversarial_auc > 0.95
    assert c.auc_early > 0.6 and c.auc_late <= 0.5
    assert "does not transfer" in c.reason and f"{c.auc_early:.3f}" in c.reason
    # The all-feature adversarial model finds the calendar and credits it.
    assert report.adversarial_auc > 0.95
    assert c.adversarial_importance > 0.5
    assert report.failed() == ["calendar"]


def test_seasonal_feature_that_keeps_its_ranking_passes(report: ConsistencyReport) -> None:
    c = _by_name(report)["seasonal"]
    assert c.psi > PARAMS.psi_max or c.adversarial_auc > PARAMS.adversarial_auc_max, "drifts"
    assert c.passed
    assert c.auc_late > 0.6
    assert "signal transfers" in c.reason


def test_noise_feature_passes(report: ConsistencyReport) -> None:
    c = _by_name(report)["noise"]
    assert c.passed and c.reason == ""


def _class_shifted(
    rows: pd.DataFrame, early_shift: float, late_shift: float, drift: float
) -> np.ndarray:
    """Noise moved up by ``early_shift`` / ``late_shift`` for positives, plus ``drift`` late."""
    rng = np.random.default_rng(2)
    late = rows["cutoff"].isin(LATE).to_numpy()
    positive = rows["target"].to_numpy() == 1
    shift = np.where(late, late_shift, early_shift) * positive
    return rng.normal(size=len(rows)) + shift + drift * late


@pytest.mark.parametrize(("drift", "passed"), [(1.0, False), (0.0, True)])
def test_weakening_signal_fails_only_with_drift(
    rows: pd.DataFrame, drift: float, passed: bool
) -> None:
    frame = rows.assign(weakening=_class_shifted(rows, 0.8, 0.2, drift))
    rep = check_time_consistency(
        frame,
        ["weakening", "stable"],
        early_cutoffs=EARLY,
        late_cutoffs=LATE,
        params=PARAMS,
        seed=3,
    )
    c = _by_name(rep)["weakening"]
    # The signal weakens late either way; only with drift is that a changed meaning.
    assert c.auc_early > 0.65 and 0.5 < c.auc_late < c.auc_early - 0.08
    assert c.passed is passed
    if passed:
        assert c.reason == "" and c.psi < PARAMS.psi_max
    else:
        assert "a drop of" in c.reason


def test_drifting_feature_without_any_signal_fails_as_chance_late() -> None:
    # Same drift as the calendar feature, but no early threshold: the late rows all fall
    # in the top early bin, the late score is flat, and a flat score is chance.
    rows = synthetic_rows()
    rng = np.random.default_rng(1)
    rows["calendar"] = (rows["cutoff"] - CUTOFFS[0]).dt.days + rng.normal(0, 10, len(rows))
    rows["target"] = (rng.random(len(rows)) < _sigmoid(-3 + 1.5 * rows["stable"])).astype(int)
    rep = check_time_consistency(
        rows, ["calendar", "stable"], early_cutoffs=EARLY, late_cutoffs=LATE, params=PARAMS, seed=3
    )
    calendar = _by_name(rep)["calendar"]
    assert calendar.auc_late == 0.5 and not calendar.passed
    assert _by_name(rep)["stable"].passed


def test_exempt_feature_is_measured_but_passes(
    rows: pd.DataFrame, report: ConsistencyReport
) -> None:
    rep = check_time_consistency(
        rows,
        FEATURES,
        early_cutoffs=EARLY,
        late_cutoffs=LATE,
        params=PARAMS,
        seed=3,
        exempt=["calendar"],
    )
    c = _by_name(rep)["calendar"]
    assert c.passed and c.reason.startswith("exempt")
    assert c.psi == _by_name(report)["calendar"].psi
    assert rep.failed() == []


def test_tighter_transfer_margin_cannot_pass_more_features(rows: pd.DataFrame) -> None:
    loose = dataclasses.replace(PARAMS, min_transfer=0.3, transfer_z=0.0)
    strict = dataclasses.replace(PARAMS, min_transfer=0.0, transfer_z=0.0)
    a = check_time_consistency(
        rows, FEATURES, early_cutoffs=EARLY, late_cutoffs=LATE, params=loose, seed=3
    )
    b = check_time_consistency(
        rows, FEATURES, early_cutoffs=EARLY, late_cutoffs=LATE, params=strict, seed=3
    )
    assert set(a.failed()) <= set(b.failed())


# --- determinism, purity, serialisation -------------------------------------------------


def test_same_input_gives_identical_report(rows: pd.DataFrame, report: ConsistencyReport) -> None:
    again = check_time_consistency(
        rows, FEATURES, early_cutoffs=EARLY, late_cutoffs=LATE, params=PARAMS, seed=3
    )
    assert again == report
    shuffled = rows.sample(frac=1.0, random_state=5)
    # Another seed changes the sampling and folds, never the verdicts on planted features.
    other = check_time_consistency(
        shuffled, FEATURES, early_cutoffs=EARLY, late_cutoffs=LATE, params=PARAMS, seed=4
    )
    assert other.failed() == ["calendar"]


def test_inputs_are_not_modified(rows: pd.DataFrame) -> None:
    frame = rows.copy()
    frame.loc[frame.index[:50], "noise"] = np.nan
    before = frame.copy(deep=True)
    early, late, features = list(EARLY), list(LATE), list(FEATURES)
    check_time_consistency(
        frame,
        features,
        early_cutoffs=early,
        late_cutoffs=late,
        params=PARAMS,
        seed=3,
        exempt=["noise"],
    )
    pd.testing.assert_frame_equal(frame, before)
    assert early == list(EARLY) and late == list(LATE) and features == FEATURES


def test_to_dict_from_dict_round_trip(report: ConsistencyReport) -> None:
    text = json.dumps(report.to_dict())
    back = ConsistencyReport.from_dict(json.loads(text))
    assert back == report
    assert json.loads(text)["failed"] == ["calendar"]
    assert back.early_cutoffs == tuple(c.isoformat() for c in EARLY)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("checks"),
        lambda d: d["checks"][0].pop("psi"),
        lambda d: d["checks"][0].update(passed="yes"),
        lambda d: d["checks"][0].update(auc_late="high"),
    ],
)
def test_damaged_report_is_one_clear_error(report: ConsistencyReport, damage: object) -> None:
    raw = json.loads(json.dumps(report.to_dict()))
    damage(raw)  # type: ignore[operator]
    with pytest.raises(ModelError, match="consistency report is damaged"):
        ConsistencyReport.from_dict(raw)


def test_to_frame_lists_failures_first(report: ConsistencyReport) -> None:
    frame = report.to_frame()
    assert list(frame.columns) == [f.name for f in dataclasses.fields(FeatureCheck)]
    assert frame["name"].iloc[0] == "calendar"
    assert len(frame) == len(FEATURES)
    assert frame["passed"].tolist() == sorted(frame["passed"].tolist())


# --- building blocks --------------------------------------------------------------------


def _psi_oracle(expected: list[float], actual: list[float], bins: int) -> float:
    """PSI by brute force: right-closed bins at expected's quantiles, NaN its own bin."""
    finite = [v for v in expected if not math.isnan(v)]
    cuts = sorted(set(float(q) for q in np.quantile(finite, [i / bins for i in range(1, bins)])))

    def which(v: float) -> int:
        if math.isnan(v):
            return len(cuts) + 1
        for i, c in enumerate(cuts):
            if v <= c:
                return i
        return len(cuts)

    total = 0.0
    for b in range(len(cuts) + 2):
        e = sum(which(v) == b for v in expected) / len(expected) + PSI_EPSILON
        a = sum(which(v) == b for v in actual) / len(actual) + PSI_EPSILON
        total += (a - e) * math.log(a / e)
    return total


@pytest.mark.parametrize("seed", range(6))
def test_psi_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    expected = np.round(rng.normal(size=40), 1)  # rounded: ties at the edges
    actual = np.round(rng.normal(0.4 * seed, 1 + 0.2 * seed, size=25), 1)
    expected[rng.random(40) < 0.1] = np.nan
    actual[rng.random(25) < 0.1 * (seed % 3)] = np.nan
    for bins in (2, 4, 10):
        assert psi(expected, actual, bins) == pytest.approx(
            _psi_oracle(expected.tolist(), actual.tolist(), bins), rel=1e-12, abs=1e-12
        )


def test_psi_by_hand() -> None:
    # Median 2.5: bins (-inf, 2.5], (2.5, inf), missing. Early 2/2/0, late 0/3/1 of 4.
    got = psi(np.array([1.0, 2.0, 3.0, 4.0]), np.array([3.0, 4.0, 4.0, np.nan]), bins=2)
    e = np.array([0.5, 0.5, 0.0]) + PSI_EPSILON
    a = np.array([0.0, 0.75, 0.25]) + PSI_EPSILON
    assert got == pytest.approx(float(np.sum((a - e) * np.log(a / e))))
    assert psi(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0


def test_zero_inflated_feature_keeps_zeros_apart() -> None:
    values = np.array([0.0] * 95 + [1.0, 2.0, 3.0, 4.0, 5.0])
    assert quantile_edges(values, 10).tolist() == [0.0]
    # Late rows that are all non-zero have moved: PSI must see it.
    assert psi(values, np.array([3.0] * 20)) > 1


def test_rank_auc_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.3).astype(int)
    score = np.round(rng.normal(size=300) + y, 1)
    assert rank_auc(y, score) == pytest.approx(roc_auc_score(y, score))
    assert rank_auc(np.zeros(5, dtype=int), np.arange(5.0)) == 0.5


def test_separation_auc_is_direction_free_and_uses_missing_values() -> None:
    side = np.array([0, 0, 0, 1, 1, 1])
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert separation_auc(side, values) == 1.0
    assert separation_auc(side, -values) == 1.0
    # Only missingness separates the sides: still a perfect separation.
    gappy = np.array([1.0, 1.0, 1.0, np.nan, np.nan, np.nan])
    assert separation_auc(side, gappy) == 1.0


def test_consistency_sides() -> None:
    c = CUTOFFS
    split = TimeSplit(train=c[:4], valid=c[5:6], calibration=c[6:7], test=c[7:])
    assert consistency_sides(split) == (c[:4], c[7:])
    assert consistency_sides(split, 2) == (c[:4], c[6:])
    with pytest.raises(ConfigError):
        consistency_sides(split, 0)


# --- edge cases -------------------------------------------------------------------------


def _small(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rows = synthetic_rows(seed, n=n)
    return rows[rows["cutoff"].isin(EARLY + LATE)].reset_index(drop=True)


def _edge_case(case: str) -> tuple[pd.DataFrame, str]:
    rows = _small()
    late = rows["cutoff"].isin(LATE)
    if case == "constant":
        rows["x"] = 7.0
    elif case == "all_missing":
        rows["x"] = np.nan
    elif case == "missing_only_late":
        rows["x"] = np.where(late, np.nan, rows["stable"])
    elif case == "no_positives_late_mild":
        rows.loc[late, "target"] = 0
        rows["x"] = rows["stable"] + np.where(late, 0.6, 0.0)
    elif case == "no_positives_late_extreme":
        rows.loc[late, "target"] = 0
        rows["x"] = rows["calendar"]
    elif case == "no_positives_anywhere":
        rows["target"] = 0
        rows["x"] = rows["calendar"]
    elif case == "single_buyer":
        rows = rows[rows["buyer_id"] == "b00000"].reset_index(drop=True)
        rows["x"] = rows["calendar"]
    elif case == "no_buyer_column":
        rows = rows.drop(columns="buyer_id")
        rows["x"] = rows["stable"]
    elif case == "tiny":
        rows = pd.concat([rows[~late].head(3), rows[late].head(2)], ignore_index=True)
        rows["x"] = rows["stable"]
    elif case == "infinite":
        rows["x"] = rows["stable"].where(rows.index % 7 != 0, np.inf)
    return rows, case


@pytest.mark.parametrize(
    ("case", "passed", "reason_part"),
    [
        ("constant", True, "constant or missing"),
        ("all_missing", True, "constant or missing"),
        ("missing_only_late", False, "drifts"),
        ("no_positives_late_mild", True, "No positives late"),
        ("no_positives_late_extreme", False, "No positives late"),
        ("no_positives_anywhere", False, "No positives early, no positives late"),
        ("single_buyer", None, None),
        ("no_buyer_column", True, ""),
        ("tiny", None, None),
        ("infinite", True, ""),
    ],
)
def test_edge_cases(case: str, passed: bool | None, reason_part: str | None) -> None:
    rows, _ = _edge_case(case)
    before = rows.copy()
    rep = check_time_consistency(
        rows, ["x", "stable"], early_cutoffs=EARLY, late_cutoffs=LATE, params=PARAMS, seed=1
    )
    pd.testing.assert_frame_equal(rows, before)
    x = _by_name(rep)["x"]
    for value in (x.psi, x.adversarial_auc, x.auc_early, x.auc_late, rep.adversarial_auc):
        assert math.isfinite(value)
    assert 0.5 <= x.adversarial_auc <= 1 and 0 <= x.adversarial_importance <= 1
    if passed is not None:
        assert x.passed is passed, x.reason
    if reason_part == "":
        assert x.reason == ""
    elif reason_part is not None:
        assert reason_part in x.reason
    if case in ("constant", "all_missing"):
        assert (x.psi, x.adversarial_auc, x.auc_early, x.auc_late) == (0.0, 0.5, 0.5, 0.5)
    assert json.loads(json.dumps(rep.to_dict())) == rep.to_dict()


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda r: r.drop(columns="target"), DataContractError, "lack columns"),
        (lambda r: r.drop(columns="stable"), DataContractError, "lack columns"),
        (lambda r: r.assign(target=2), DataContractError, "only 0 and 1"),
        (lambda r: r.assign(stable="high"), DataContractError, "numeric"),
        (lambda r: r[r["cutoff"].isin(LATE)], DataContractError, "no rows at the early"),
    ],
)
def test_unusable_rows_are_one_clear_error(
    change: object, error: type[Exception], match: str
) -> None:
    rows = change(_small(100))  # type: ignore[operator]
    with pytest.raises(error, match=match):
        check_time_consistency(
            rows, ["stable"], early_cutoffs=EARLY, late_cutoffs=LATE, params=PARAMS, seed=1
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"late_cutoffs": EARLY[-1:]}, "overlap"),
        ({"late_cutoffs": ()}, "both early and late"),
        ({"exempt": ["nope"]}, "not checked features"),
        ({"params": dataclasses.replace(PARAMS, psi_max=0.0)}, "psi_max"),
        ({"params": dataclasses.replace(PARAMS, adversarial_auc_max=1.2)}, "adversarial_auc"),
        ({"params": dataclasses.replace(PARAMS, max_rows=1)}, "max_rows"),
        ({"features": []}, "no features"),
        ({"features": ["stable", "stable"]}, "twice"),
    ],
)
def test_bad_settings_are_one_clear_error(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "features": ["stable"],
        "early_cutoffs": EARLY,
        "late_cutoffs": LATE,
        "params": PARAMS,
        "seed": 1,
    }
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        check_time_consistency(_small(100), **args)  # type: ignore[arg-type]


def test_row_cap_samples_each_side(rows: pd.DataFrame) -> None:
    capped = dataclasses.replace(PARAMS, max_rows=800)
    a = check_time_consistency(
        rows, FEATURES, early_cutoffs=EARLY, late_cutoffs=LATE, params=capped, seed=3
    )
    b = check_time_consistency(
        rows, FEATURES, early_cutoffs=EARLY, late_cutoffs=LATE, params=capped, seed=3
    )
    assert a == b
    assert _by_name(a)["calendar"].adversarial_auc > 0.95
    assert _by_name(a)["stable"].passed


# --- a tiny simulated world -------------------------------------------------------------


def test_planted_calendar_feature_is_caught_in_a_simulated_world() -> None:
    world = simulate_world(
        SimulateParams(n_buyers=1500, days=420, start="2024-01-01", label_coverage=0.9), seed=7
    )
    raw = {
        "orders": world.orders,
        "refunds": world.refunds,
        "reviews": world.reviews,
        "labels": world.labels,
        "buyers": world.buyers,
    }
    tables = validate_tables(raw, timezone="Asia/Shanghai", max_text_chars=2000).tables
    horizon = 42
    base = BaseParams(cutoff_step_days=28, horizon_days=horizon, min_history_days=84)
    cutoffs = make_cutoffs(tables, base)
    events = prepare_events(
        tables["orders"],
        tables["refunds"],
        tables["reviews"],
        tables["buyers"],
        labels=tables["labels"],
        timezone=base.timezone,
    )
    catalog = build_catalog(FeaturesParams())
    snaps = build_snapshots(
        events, tables["labels"], cutoffs, catalog, horizon_days=horizon, active_days=365
    )
    split = split_cutoffs(cutoffs, horizon_days=horizon, n_valid=1, n_test=1)
    early, late = consistency_sides(split)

    # Days from the data's start to the cutoff, plus noise; at the early cutoffs the
    # future abusers sit far above their cutoff's value, as a censored "account age"
    # would make them look; the late cutoff has no such relation.
    rng = np.random.default_rng(0)
    start = tables["orders"]["created_at"].min()
    days = (snaps["cutoff"] - start).dt.total_seconds().to_numpy() / 86400
    planted = days + rng.normal(0, 3, len(snaps))
    is_early_positive = snaps["cutoff"].isin(early).to_numpy() & (snaps["target"] == 1).to_numpy()
    snaps["planted_calendar_days"] = planted + np.where(is_early_positive, 150.0, 0.0)
    names = [f.name for f in catalog] + ["planted_calendar_days"]

    rep = check_time_consistency(
        snaps, names, early_cutoffs=early, late_cutoffs=late, params=PARAMS, seed=11
    )
    planted_check = _by_name(rep)["planted_calendar_days"]
    assert not planted_check.passed
    assert planted_check.auc_early > 0.8 and planted_check.auc_late <= 0.5
    assert planted_check.psi > 1
    failed = rep.failed()
    assert "planted_calendar_days" in failed
    assert len(failed) <= 0.1 * len(names), failed
    # The features that fail are the planted one and calendar-bound ones only.
    assert set(failed) <= {"planted_calendar_days", "days_since_first_order", "account_age_days"}, (
        failed
    )


def test_any_column_name_works() -> None:
    # LightGBM refuses some characters in feature names; the check must not care.
    name = '退款率: 30d ["%"], {x}'
    rows = _small(200).rename(columns={"calendar": name})
    rep = check_time_consistency(
        rows, [name, "stable"], early_cutoffs=EARLY, late_cutoffs=LATE, params=PARAMS, seed=1
    )
    assert rep.checks[0].name == name and rep.failed() == [name]
