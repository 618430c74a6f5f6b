from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from refundguard import Scorer
from refundguard.errors import InputError, ModelError
from refundguard.features.build import compute_features, load_validated
from refundguard.features.catalog import NO_HISTORY, has_history
from refundguard.features.events import prepare_events
from refundguard.model.bundle import load_model
from refundguard.model.policy import assign_tiers
from refundguard.serving.reasons import SEPARATOR, format_value
from refundguard.serving.scorer import (
    HISTORY_FEATURES,
    OUTPUT_COLUMNS,
    UNIT_RANGES,
    check_as_of,
    feature_ranges,
    last_event_time,
    unknown_buyers,
)


@pytest.fixture(scope="module")
def scorer(project: Path) -> Scorer:
    return Scorer.load(project / "models/scorer")


@pytest.fixture(scope="module")
def rows(project: Path) -> pd.DataFrame:
    snaps = pd.read_parquet(project / "data/features/snapshots.parquet")
    last = snaps[snaps["cutoff"] == snaps["cutoff"].max()].drop(columns=["target"])
    # Every tier present: the 300 riskiest by the raw model plus 300 others.
    model = load_model(project / "models/model")
    order = np.argsort(-model.raw(last), kind="stable")
    pick = np.concatenate([order[:300], order[-300:]])
    return last.iloc[np.sort(pick)].reset_index(drop=True)


def test_score_matches_trained_model(scorer: Scorer, rows: pd.DataFrame, project: Path) -> None:
    out = scorer.score(rows)
    assert tuple(out.columns) == OUTPUT_COLUMNS
    trained = load_model(project / "models/model").predict(rows)
    np.testing.assert_allclose(out["probability"], trained, atol=1e-12)
    assert (out["risk_score"] == np.rint(out["probability"] * 1000)).all()
    bounds = json.loads((project / "models/model/policy.json").read_text())["bounds"]
    fresh = ~has_history(rows)
    expected = assign_tiers(out["probability"].to_numpy(), tuple(bounds))
    assert (out["tier"][~fresh] == expected[~fresh]).all()
    cfg = json.loads((project / "models/scorer/artifacts/scorer.json").read_text())
    assert set(out["model_version"]) == {cfg["model_version"]}


def test_flagged_buyers_and_only_they_get_reasons(scorer: Scorer, rows: pd.DataFrame) -> None:
    out = scorer.score(rows)
    flagged = out["tier"].isin(["review", "restrict"]).to_numpy()
    fresh = ~has_history(rows)
    assert flagged.any(), "the riskiest rows reach review"
    for col in ("reasons_zh", "reasons_en"):
        assert (out.loc[flagged, col] != "").all()
        assert (out.loc[~flagged & ~fresh, col] == "").all()
        parts = out.loc[flagged, col].str.split(SEPARATOR, regex=False)
        assert parts.map(len).between(1, 3).all()
    assert out.loc[flagged, "reasons_zh"].str.contains("的买家").any()
    assert out.loc[flagged, "reasons_en"].str.contains("of buyers").any()
    quiet = scorer.score(rows, reasons=False)
    assert (quiet.loc[~fresh, "reasons_en"] == "").all()
    pd.testing.assert_frame_equal(quiet.drop(columns=["reasons_zh", "reasons_en"]),
                                  out.drop(columns=["reasons_zh", "reasons_en"]))


def test_reasons_follow_the_largest_shap_contributions(
    scorer: Scorer, rows: pd.DataFrame
) -> None:
    out = scorer.score(rows)
    flagged = rows[out["tier"].isin(["review", "restrict"]).to_numpy()].head(20)
    x = flagged.loc[:, list(scorer.features)].to_numpy(dtype="float64")
    contrib = scorer.booster.predict(x, pred_contrib=True)[:, :-1]
    explained = scorer.explain(flagged)
    for i, reasons in enumerate(explained):
        top = [scorer.features[j] for j in np.argsort(-np.where(np.isfinite(x[i]),
                                                                 contrib[i], -np.inf))[:3]
               if contrib[i, j] > 0 and np.isfinite(x[i, j])]
        assert [r.feature for r in reasons] == top
        for r in reasons:
            unit = scorer.catalog[r.feature].unit
            assert format_value(r.value, unit) in r.en
            assert format_value(r.value, unit, lang="zh") in r.zh


def test_no_history_buyer_gets_the_catalog_tier_and_reason(
    scorer: Scorer, rows: pd.DataFrame
) -> None:
    fresh = rows.head(1).copy()
    fresh[NO_HISTORY.feature] = np.nan
    out = scorer.score(fresh)
    assert out["tier"].iloc[0] == NO_HISTORY.tier
    assert out["reasons_zh"].iloc[0] == NO_HISTORY.zh
    assert out["reasons_en"].iloc[0] == NO_HISTORY.en


def test_chunking_does_not_change_scores(scorer: Scorer, rows: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(scorer.score(rows), scorer.score(rows, chunk_size=7))


@pytest.mark.parametrize("drop", ["buyer_id", "orders_30d", "refund_rate_count_90d"])
def test_missing_column_is_named(scorer: Scorer, rows: pd.DataFrame, drop: str) -> None:
    with pytest.raises(InputError, match=drop):
        scorer.score(rows.drop(columns=[drop]))


def test_wrong_dtype_is_named(scorer: Scorer, rows: pd.DataFrame) -> None:
    bad = rows.copy()
    bad["spend_30d"] = "lots"
    with pytest.raises(InputError, match="spend_30d"):
        scorer.score(bad)


def test_nan_is_missing_where_the_catalog_allows_it(scorer: Scorer, rows: pd.DataFrame) -> None:
    nullable = [f for f in scorer.features if scorer.catalog[f].nullable]
    strict = [f for f in scorer.features if not scorer.catalog[f].nullable]
    assert nullable and strict
    ok = rows.copy()
    ok.loc[:, nullable] = np.nan
    out = scorer.score(ok)
    assert out["probability"].notna().all()
    bad = rows.copy()
    bad.loc[3, strict[0]] = np.nan
    with pytest.raises(InputError, match=strict[0]):
        scorer.score(bad)


@pytest.mark.parametrize("column", ["target", "Unnamed: 0"])
def test_unexpected_column_is_named(scorer: Scorer, rows: pd.DataFrame, column: str) -> None:
    with pytest.raises(InputError, match=f"unexpected column '{column}'"):
        scorer.score(rows.assign(**{column: 1}))


def test_duplicate_column_is_named(scorer: Scorer, rows: pd.DataFrame) -> None:
    doubled = pd.concat([rows, rows[["spend_30d"]]], axis=1)
    with pytest.raises(InputError, match="'spend_30d' more than once"):
        scorer.score(doubled)


@pytest.mark.parametrize("dtype", ["Int64", "Float64", "float32", "bool"])
def test_numeric_dtypes_are_accepted(scorer: Scorer, rows: pd.DataFrame, dtype: str) -> None:
    converted = rows.copy()
    converted["orders_30d"] = (converted["orders_30d"] > 0) if dtype == "bool" else (
        converted["orders_30d"].astype(dtype))
    out = scorer.score(converted)
    assert out["probability"].notna().all()


def test_infinite_value_is_named(scorer: Scorer, rows: pd.DataFrame) -> None:
    bad = rows.copy()
    bad.loc[0, "spend_30d"] = np.inf
    with pytest.raises(InputError, match="spend_30d"):
        scorer.score(bad)


def test_score_events_equals_features_then_score(scorer: Scorer, project: Path,
                                                 rows: pd.DataFrame) -> None:
    tables = load_validated(project / "data/validated")
    cutoff = rows["cutoff"].iloc[0]
    buyers = [*rows["buyer_id"].head(50), "never-seen-buyer"]
    out = scorer.score_events(tables, cutoff, buyers)
    assert list(out["buyer_id"]) == buyers
    expected = scorer.score(rows.head(50))
    np.testing.assert_allclose(out["probability"].head(50), expected["probability"], atol=1e-9)
    assert (out["tier"].head(50) == expected["tier"]).all()
    assert out["tier"].iloc[-1] == NO_HISTORY.tier
    assert out["reasons_en"].iloc[-1] == NO_HISTORY.en


def test_load_rejects_other_catalog(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "scorer"
    shutil.copytree(project / "models/scorer", copy)
    cfg_file = copy / "artifacts/scorer.json"
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    cfg["catalog_version"] = "000000000000"
    cfg_file.write_text(json.dumps(cfg), encoding="utf-8")
    with pytest.raises(ModelError, match="feature catalog"):
        Scorer.load(copy)


@pytest.mark.parametrize("damage", ["truncate_model", "delete_calibration", "not_a_folder"])
def test_load_rejects_broken_folders(project: Path, tmp_path: Path, damage: str) -> None:
    copy = tmp_path / "scorer"
    shutil.copytree(project / "models/scorer", copy)
    if damage == "truncate_model":
        (copy / "artifacts/model.txt").write_text("tree\nversion=v4\n", encoding="utf-8")
    elif damage == "delete_calibration":
        (copy / "artifacts/calibration.json").unlink()
    else:
        copy = tmp_path / "nothing"
    with pytest.raises(ModelError):
        Scorer.load(copy)


def test_feature_ranges_follow_the_catalog_units(scorer: Scorer, project: Path) -> None:
    ranges = feature_ranges(list(scorer.catalog.values()))
    assert set(ranges) == set(scorer.catalog)
    for name, f in scorer.catalog.items():
        assert ranges[name] == UNIT_RANGES[f.unit]
    assert ranges["refunds_30d"] == (0.0, np.inf)
    assert ranges["refund_rate_count_30d"] == (0.0, 1.0)
    assert ranges["mean_rating_365d"] == (1.0, 5.0)
    # Every value the features stage computed lies in its range: the checks refuse no
    # honest row.
    snaps = pd.read_parquet(project / "data/features/snapshots.parquet")
    for name, (low, high) in ranges.items():
        values = snaps[name].dropna()
        assert values.between(low, high).all(), name


@pytest.mark.parametrize(
    ("column", "value", "bound"),
    [("refunds_30d", -5.0, ">= 0 (count)"), ("spend_30d", -0.5, ">= 0 (cny)"),
     ("refund_rate_count_30d", 1.5, "<= 1 (share)"), ("mean_rating_365d", 0.0, ">= 1 (stars)"),
     ("mean_rating_365d", 6.0, "<= 5 (stars)"), ("days_since_last_order", -1.0, ">= 0 (days)")],
)
def test_out_of_range_values_are_refused(scorer: Scorer, rows: pd.DataFrame, column: str,
                                         value: float, bound: str) -> None:
    bad = rows.copy()
    bad.loc[[2, 5, 7], column] = value
    with pytest.raises(InputError) as err:
        scorer.score(bad)
    message = str(err.value)
    assert f"'{column}'" in message and bound in message and "3 rows" in message
    # Also through explain, which shares the checks.
    with pytest.raises(InputError, match=column):
        scorer.explain(bad.head(8))


def test_negative_count_no_longer_lowers_the_tier(scorer: Scorer, rows: pd.DataFrame) -> None:
    """The bug: refunds_30d = -5 was accepted and moved a buyer to a laxer tier."""
    risky = rows.head(1).assign(refunds_30d=-5.0)
    with pytest.raises(InputError, match="refunds_30d"):
        scorer.score(risky)


@pytest.mark.parametrize("bad_id", [None, np.nan, "", "   "])
def test_missing_buyer_id_is_refused(scorer: Scorer, rows: pd.DataFrame, bad_id: object) -> None:
    bad = rows.head(4).astype({"buyer_id": object})
    bad.loc[2, "buyer_id"] = bad_id
    with pytest.raises(InputError) as err:
        scorer.score(bad)
    assert "'buyer_id' is missing or empty in 1 row (first at row 2)" in str(err.value)


@pytest.mark.parametrize(
    ("values", "shown"),
    [(["abc", 1.0, 2.0], "'abc'"), (["5", 1.0, 2.0], "'5'"), ([[1], 1.0, 2.0], "[1]"),
     ([10**400, 1.0, 2.0], "1000")],
)
def test_non_numbers_in_an_object_column_are_named(scorer: Scorer, rows: pd.DataFrame,
                                                   values: list[object], shown: str) -> None:
    bad = rows.head(3).copy()
    bad["spend_30d"] = pd.Series(values, dtype=object)
    with pytest.raises(InputError, match=re.escape(f"'spend_30d' must hold numbers, got {shown}")):
        scorer.score(bad)


def test_numbers_and_nulls_as_objects_are_numeric(scorer: Scorer, rows: pd.DataFrame) -> None:
    """JSON gives a column of nulls only, or numbers mixed with nulls, as Python objects."""
    nullable = next(f for f in scorer.features if scorer.catalog[f].nullable)
    plain = rows.head(3).copy()
    plain[nullable] = np.nan
    objects = plain.copy()
    objects[nullable] = pd.Series([None, None, None], dtype=object)
    objects["orders_30d"] = pd.Series(plain["orders_30d"].astype(int).tolist(), dtype=object)
    pd.testing.assert_frame_equal(scorer.score(objects), scorer.score(plain))


def test_output_never_holds_nan(scorer: Scorer, rows: pd.DataFrame) -> None:
    out = scorer.score(rows)
    assert not out.isna().any().any()
    assert out["buyer_id"].map(type).eq(str).all()


def test_last_event_time_and_as_of_check(hand_tables: dict[str, pd.DataFrame]) -> None:
    last = last_event_time(hand_tables)
    # The latest action is order o5 at 2024-03-05 10:00 local (02:00 UTC).
    assert last == pd.Timestamp("2024-03-05 02:00", tz="UTC")
    check_as_of(last + pd.Timedelta(days=7), last, 7)
    check_as_of(last - pd.Timedelta(days=300), last, 0)
    as_of = pd.Timestamp("2030-01-01", tz="Asia/Shanghai")
    with pytest.raises(InputError) as err:
        check_as_of(as_of, last, 7)
    message = str(err.value)
    assert "2024-03-05T10:00:00+08:00" in message and "at most 7 days" in message
    assert "max_days_after_data" in message and "2,127.6 days after" in message
    with pytest.raises(InputError, match=r"0\.5 days after"):
        check_as_of(last + pd.Timedelta(hours=12), last, 0)
    empty = {k: v.iloc[0:0] for k, v in hand_tables.items()}
    assert last_event_time(empty) is None
    with pytest.raises(InputError, match="no orders, refunds or reviews"):
        check_as_of(as_of, None, 7)


def test_unknown_buyers_are_found_case_sensitively(hand_tables: dict[str, pd.DataFrame]) -> None:
    asked = ["b1", "B1", "b2", "zz", "b1"]
    assert unknown_buyers(hand_tables, asked).tolist() == [False, True, False, True, False]
    # A buyer known only from the buyers table (no order yet) is known.
    extra = {**hand_tables, "buyers": pd.concat(
        [hand_tables["buyers"], hand_tables["buyers"].head(1).assign(buyer_id="b9")])}
    assert unknown_buyers(extra, ["b9"]).tolist() == [False]
    assert unknown_buyers({}, ["b1"]).tolist() == [True]


def test_pyfunc_turns_input_errors_into_short_client_errors(scorer: Scorer,
                                                            rows: pd.DataFrame) -> None:
    from mlflow.exceptions import MlflowException

    from refundguard.serving.pyfunc import RefundGuardModel, RequestError

    model = RefundGuardModel()
    model.scorer = scorer
    good = rows.head(3).drop(columns=["cutoff"])
    pd.testing.assert_frame_equal(model.predict(None, good), scorer.score(good))
    with pytest.raises(RequestError) as err:
        model.predict(None, good.assign(refunds_30d=-5.0))
    exc = err.value
    assert isinstance(exc, MlflowException) and exc.get_http_status_code() == 400
    # MLflow's scoring server prefixes the whole request to the message; it is kept short.
    exc.message = f"Failed to predict data '{good}'. \nError: {exc.message}"
    body = json.loads(exc.serialize_as_json())
    assert body["message"] == (
        "feature column 'refunds_30d' must be >= 0 (count), 3 rows below (e.g. -5)"
    )
    assert "stack_trace" not in body and exc.__cause__ is None
    with pytest.raises(RequestError, match="'reasons' must be true or false"):
        model.predict(None, good, params={"reasons": "no"})
    with pytest.raises(RequestError, match="must be a table"):
        model.predict(None, [1, 2])


def test_no_history_is_told_without_days_since_first_order(scorer: Scorer, rows: pd.DataFrame,
                                                           hand_tables: dict[str, pd.DataFrame]
                                                           ) -> None:
    """The time-consistency check may leave days_since_first_order out of the model."""
    first, last = HISTORY_FEATURES
    frame = rows.head(6).copy()
    frame.loc[[1, 4], [first, last]] = np.nan
    expected = [False, True, False, False, True, False]
    trimmed = dataclasses.replace(scorer, features=tuple(f for f in scorer.features
                                                         if f != first))
    # From the input's column when the model lacks it ...
    x = frame.loc[:, list(trimmed.features)].to_numpy(dtype="float64")
    assert trimmed._fresh(frame, x).tolist() == expected
    # ... else from days_since_last_order, NaN in exactly the same rows.
    assert trimmed._fresh(frame.drop(columns=[first]), x).tolist() == expected
    # Both features are NaN for the same buyers: b2 has no order before the cutoff.
    hand = compute_features(prepare_events(hand_tables["orders"], hand_tables["refunds"],
                                           hand_tables["reviews"], hand_tables["buyers"],
                                           extra_buyer_ids=["b3"]),
                            pd.Timestamp("2024-01-01", tz="Asia/Shanghai"),
                            list(scorer.catalog.values()), buyer_ids=["b1", "b2", "b3"])
    assert hand[first].isna().tolist() == hand[last].isna().tolist() == [True, False, True]
    neither = dataclasses.replace(trimmed, features=tuple(f for f in trimmed.features
                                                          if f != last))
    assert not neither._fresh(frame.drop(columns=[first, last]), x).any()
