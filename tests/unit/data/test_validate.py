from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.fixtures import KEYS, assert_accounting, raw_tables, reason_kind

from refundguard.contract.tables import DTYPES, TABLES
from refundguard.data.io import write_csv
from refundguard.data.validate import (
    QUARANTINE_COLUMNS,
    ValidationResult,
    check_reject_shares,
    check_timezone,
    read_tables,
    validate_tables,
    write_result,
)
from refundguard.errors import ConfigError, DataContractError
from refundguard.paths import (
    QUARANTINE_FILE_NAME,
    VALIDATED_TABLE_SUFFIX,
    VALIDATION_REPORT_FILE_NAME,
)
from refundguard.stages.validate import main

TZ = "Asia/Shanghai"


def run(raw: dict[str, pd.DataFrame | None], *, timezone: str = TZ,
        max_text_chars: int = 2000) -> ValidationResult:
    return validate_tables(raw, timezone=timezone, max_text_chars=max_text_chars)


def quarantined(res: ValidationResult, table: str) -> dict[int, str]:
    """1-based data row -> joined reasons, for the rejected rows of one table."""
    q = res.quarantine
    q = q[(q["table"] == table) & (q["action"] == "row_rejected")]
    return dict(zip(q["row"].astype(int), q["reason"], strict=True))


def nulled(res: ValidationResult, table: str) -> dict[int, str]:
    """1-based data row -> joined reasons, for the rows of one table kept with fields nulled."""
    q = res.quarantine
    q = q[(q["table"] == table) & (q["action"] == "field_nulled")]
    return dict(zip(q["row"].astype(int), q["reason"], strict=True))


def assert_only_these_lost(res: ValidationResult, lost: dict[str, set[str]],
                           raw: dict[str, pd.DataFrame] | None = None) -> None:
    """Every table keeps every original row but the ids named in ``lost``."""
    raw = raw_tables() if raw is None else raw
    for name, key in KEYS.items():
        before = raw[name][key].dropna().tolist()
        expected = [v for v in before if v not in lost.get(name, set())]
        assert res.tables[name][key].tolist() == expected, name


# --- the clean tables -------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean() -> ValidationResult:
    return run(raw_tables())


def test_clean_tables_pass_whole(clean: ValidationResult) -> None:
    res = clean
    assert res.quarantine.empty
    assert list(res.quarantine.columns) == list(QUARANTINE_COLUMNS)
    assert_only_these_lost(res, {})
    assert_accounting(res)
    for name, r in res.report.items():
        assert r["rows_quarantined"] == 0 and r["duplicates_collapsed"] == 0
        assert r["reasons"] == {} and r["ignored_columns"] == []
        assert r["rows_in"] == len(raw_tables()[name])


def test_output_columns_and_dtypes(clean: ValidationResult) -> None:
    res = clean
    for name, spec in TABLES.items():
        df = res.tables[name]
        assert list(df.columns) == list(spec.names), name
        for col in spec.columns:
            assert str(df[col.name].dtype) == str(pd.Series(dtype=DTYPES[col.kind]).dtype), (
                name, col.name)
        assert list(df.index) == list(range(len(df)))


def test_values_are_parsed(clean: ValidationResult) -> None:
    res = clean
    refunds = res.tables["refunds"]
    assert refunds["amount"].tolist() == [100.0, 50.0, 300.0, 10.0]
    assert refunds["instant"].tolist()[:2] == [False, True]
    assert refunds["instant"].isna().tolist() == [False, False, True, False]
    assert refunds["resolved_at"].isna().tolist() == [False, False, True, False]
    assert res.tables["reviews"]["rating"].tolist()[:2] == [1.0, 5.0]
    assert np.isnan(res.tables["reviews"]["rating"].iloc[2])
    assert res.tables["labels"]["label"].tolist() == [1.0, 0.0, 1.0]
    # Columns absent from the input come out all missing.
    assert res.tables["orders"]["device_id"].isna().all()
    assert res.tables["refunds"]["reason_text"].isna().all()


def test_shared_hand_tables(hand_raw: dict[str, pd.DataFrame],
                            hand_tables: dict[str, pd.DataFrame]) -> None:
    """conftest's hand-built tables: local times come out in UTC, nothing is lost."""
    for name, df in hand_raw.items():
        assert len(hand_tables[name]) == len(df), name
    orders = hand_tables["orders"].set_index("order_id")
    assert orders.loc["o1", "created_at"] == pd.Timestamp("2024-01-10 02:00", tz="UTC")
    assert pd.isna(orders.loc["o3", "delivered_at"])
    refunds = hand_tables["refunds"].set_index("refund_id")
    assert pd.isna(refunds.loc["r4", "resolved_at"])
    assert bool(refunds.loc["r3", "instant"]) is True
    assert hand_tables["reviews"]["text"].tolist() == hand_raw["reviews"]["text"].tolist()


# --- one bad row at a time --------------------------------------------------------------

Mutation = Callable[[dict[str, pd.DataFrame]], None]


def set_cell(table: str, row: int, column: str, value: object) -> Mutation:
    def mutate(raw: dict[str, pd.DataFrame]) -> None:
        raw[table].loc[row, column] = value

    return mutate


def append_copy(table: str, row: int, **changes: object) -> Mutation:
    def mutate(raw: dict[str, pd.DataFrame]) -> None:
        copy = raw[table].iloc[[row]].copy()
        for column, value in changes.items():
            copy[column] = value
        raw[table] = pd.concat([raw[table], copy], ignore_index=True)

    return mutate


# (mutation, {table: {1-based row: reason substring}}, {table: ids lost})
BAD_ROWS = [
    pytest.param(set_cell("refunds", 1, "amount", "abc"),
                 {"refunds": {2: "amount: not a number 'abc'"}}, {"refunds": {"r2"}},
                 id="bad-number"),
    pytest.param(set_cell("refunds", 0, "type", "refund_all"),
                 {"refunds": {1: "type: unknown value ('refund_all')"}}, {"refunds": {"r1"}},
                 id="unknown-enum"),
    pytest.param(set_cell("refunds", 3, "amount", "-5"),
                 {"refunds": {4: "amount: must be >= 0"}}, {"refunds": {"r4"}},
                 id="negative-refund-amount"),
    pytest.param(set_cell("refunds", 2, "order_id", "o999"),
                 {"refunds": {3: "order_id: no such order"}}, {"refunds": {"r3"}},
                 id="refund-unknown-order"),
    pytest.param(set_cell("reviews", 3, "order_id", "o999"),
                 {"reviews": {4: "order_id: no such order"}}, {"reviews": {"v4"}},
                 id="review-unknown-order"),
    pytest.param(set_cell("refunds", 0, "requested_at", "2024-01-01 09:59"),
                 {"refunds": {1: "requested_at: before its order was created"}},
                 {"refunds": {"r1"}}, id="refund-before-order"),
    pytest.param(set_cell("refunds", 1, "amount", "200.01"),
                 {"refunds": {2: "amount: above the order's amount"}}, {"refunds": {"r2"}},
                 id="refund-above-order"),
    pytest.param(set_cell("refunds", 1, "resolved_at", "2024-01-05 09:00"),
                 {"refunds": {2: "resolved_at: before requested_at"}}, {"refunds": {"r2"}},
                 id="resolved-before-requested"),
    pytest.param(set_cell("reviews", 0, "created_at", "2025/13/45"),
                 {"reviews": {1: "created_at: unparseable time '2025/13/45'"}},
                 {"reviews": {"v1"}}, id="time-2025/13/45"),
    pytest.param(set_cell("reviews", 3, "created_at", "昨天"),
                 {"reviews": {4: "created_at: unparseable time '昨天'"}}, {"reviews": {"v4"}},
                 id="time-yesterday"),
    pytest.param(set_cell("labels", 1, "label", "2"),
                 {"labels": {2: "label: must be one of [0, 1]"}}, {"labels": {"b2"}},
                 id="label-2"),
    pytest.param(set_cell("refunds", 2, "reason", None),
                 {"refunds": {3: "reason: missing"}}, {"refunds": {"r3"}},
                 id="missing-enum"),
    pytest.param(set_cell("refunds", 1, "requested_at", None),
                 {"refunds": {2: "requested_at: missing"}}, {"refunds": {"r2"}},
                 id="missing-time"),
    pytest.param(set_cell("labels", 0, "buyer_id", "   "),
                 {"labels": {1: "buyer_id: missing"}}, {"labels": set()},
                 id="blank-id"),
    # Orders: the bad order's refund and review follow it into the quarantine.
    pytest.param(set_cell("orders", 1, "amount", "abc"),
                 {"orders": {2: "amount: not a number 'abc'"},
                  "refunds": {2: "order_id: its order was quarantined"},
                  "reviews": {2: "order_id: its order was quarantined"}},
                 {"orders": {"o2"}, "refunds": {"r2"}, "reviews": {"v2"}},
                 id="order-bad-amount"),
    pytest.param(set_cell("orders", 4, "buyer_id", None),
                 {"orders": {5: "buyer_id: missing"},
                  "reviews": {4: "order_id: its order was quarantined"}},
                 {"orders": {"o5"}, "reviews": {"v4"}}, id="order-missing-buyer"),
    pytest.param(set_cell("orders", 3, "delivered_at", "2024-01-04 09:00"),
                 {"orders": {4: "delivered before created"},
                  "refunds": {4: "order_id: its order was quarantined"}},
                 {"orders": {"o4"}, "refunds": {"r4"}}, id="delivered-before-created"),
    # Duplicates with different values: every copy goes.
    pytest.param(append_copy("refunds", 0, amount="90"),
                 {"refunds": {1: "refund_id: duplicate id with different values",
                              5: "refund_id: duplicate id with different values"}},
                 {"refunds": {"r1"}}, id="duplicate-refund-id"),
    pytest.param(append_copy("orders", 4, amount="501"),
                 {"orders": {5: "order_id: duplicate id with different values",
                             6: "order_id: duplicate id with different values"},
                  "reviews": {4: "order_id: its order was quarantined"}},
                 {"orders": {"o5"}, "reviews": {"v4"}}, id="duplicate-order-id"),
]


@pytest.mark.parametrize(("mutate", "expected", "lost"), BAD_ROWS)
def test_bad_row_is_quarantined_and_the_rest_survive(
    mutate: Mutation, expected: dict[str, dict[int, str]], lost: dict[str, set[str]]
) -> None:
    raw = raw_tables()
    mutate(raw)
    res = run(raw)
    for name in TABLES:
        got = quarantined(res, name)
        want = expected.get(name, {})
        assert set(got) == set(want), (name, got)
        for row, reason in want.items():
            assert reason in got[row], (name, row, got[row])
    # Every other row survives, in input order.
    for name, key in KEYS.items():
        before = raw[name][key].tolist()
        bad_positions = {r - 1 for r in expected.get(name, {})}
        survivors = [v for i, v in enumerate(before) if i not in bad_positions]
        assert res.tables[name][key].tolist() == survivors, name
        assert set(res.tables[name][key].dropna()).isdisjoint(lost.get(name, set())), name
    assert_accounting(res)


def test_quarantine_record_holds_the_raw_row() -> None:
    raw = raw_tables()
    raw["refunds"].loc[1, "amount"] = "¥abc"
    res = run(raw)
    q = res.quarantine
    assert q["table"].tolist() == ["refunds"]
    assert q["row"].tolist() == [2]
    record = json.loads(q["record"].iloc[0])
    assert record["amount"] == "¥abc"
    assert record["refund_id"] == "r2"
    assert list(record) == list(raw["refunds"].columns)
    assert "¥abc" in q["record"].iloc[0]  # not escaped


def test_several_reasons_on_one_row_are_all_listed() -> None:
    raw = raw_tables()
    raw["refunds"].loc[0, "type"] = "refund_all"
    raw["refunds"].loc[0, "amount"] = "oops"
    raw["refunds"].loc[0, "status"] = None
    res = run(raw)
    reason = quarantined(res, "refunds")[1]
    assert "type: unknown value" in reason
    assert "amount: not a number 'oops'" in reason
    assert "status: missing" in reason
    # An unparseable cell is not reported a second time as "missing".
    assert "amount: missing" not in reason
    assert res.report["refunds"]["rows_quarantined"] == 1
    assert res.report["refunds"]["reasons"] == {
        "amount: not a number": 1, "status: missing": 1, "type: unknown value": 1
    }
    assert_accounting(res)


def test_exact_duplicates_are_collapsed_and_counted() -> None:
    raw = raw_tables()
    append_copy("refunds", 1)(raw)
    append_copy("refunds", 1)(raw)
    append_copy("labels", 0)(raw)
    res = run(raw)
    assert res.quarantine.empty
    assert res.tables["refunds"]["refund_id"].tolist() == ["r1", "r2", "r3", "r4"]
    assert res.report["refunds"]["duplicates_collapsed"] == 2
    assert res.report["refunds"]["rows_in"] == 6
    assert res.report["labels"]["duplicates_collapsed"] == 1
    assert len(res.tables["labels"]) == 3
    assert_accounting(res)


def test_exact_duplicates_of_a_bad_row_are_quarantined_once() -> None:
    raw = raw_tables()
    raw["refunds"].loc[3, "amount"] = "abc"
    append_copy("refunds", 3)(raw)
    res = run(raw)
    assert set(quarantined(res, "refunds")) == {4}
    assert res.report["refunds"]["duplicates_collapsed"] == 1
    assert res.report["refunds"]["rows_quarantined"] == 1
    assert_accounting(res)


def test_exact_copy_plus_conflicting_copy() -> None:
    raw = raw_tables()
    append_copy("refunds", 0)(raw)  # exact: collapsed
    append_copy("refunds", 0, status="rejected")(raw)  # conflicting: every copy quarantined
    res = run(raw)
    assert set(quarantined(res, "refunds")) == {1, 6}
    assert res.report["refunds"]["duplicates_collapsed"] == 1
    assert "r1" not in set(res.tables["refunds"]["refund_id"])
    assert_accounting(res)


def test_exact_duplicates_after_normalisation() -> None:
    raw = raw_tables()
    append_copy("refunds", 0, amount=" ¥100.00 ", type="REFUND_ONLY")(raw)
    res = run(raw)
    assert res.quarantine.empty
    assert res.report["refunds"]["duplicates_collapsed"] == 1
    assert_accounting(res)


def test_review_of_a_quarantined_order_is_quarantined() -> None:
    raw = raw_tables()
    raw["orders"].loc[0, "seller_id"] = None
    res = run(raw)
    assert quarantined(res, "orders") == {1: "seller_id: missing"}
    assert quarantined(res, "reviews") == {1: "order_id: its order was quarantined"}
    assert quarantined(res, "refunds") == {1: "order_id: its order was quarantined"}
    assert_only_these_lost(res, {"orders": {"o1"}, "reviews": {"v1"}, "refunds": {"r1"}}, raw)
    assert_accounting(res)


def test_validated_refunds_and_reviews_only_point_at_validated_orders() -> None:
    raw = raw_tables()
    raw["orders"].loc[0, "delivered_at"] = "2024-01-01 09:00"  # before created_at
    raw["orders"].loc[1, "amount"] = "abc"
    raw["reviews"].loc[3, "order_id"] = "o404"
    res = run(raw)
    valid_orders = set(res.tables["orders"]["order_id"])
    assert valid_orders == {"o3", "o4", "o5"}
    assert set(res.tables["refunds"]["order_id"]) <= valid_orders
    assert set(res.tables["reviews"]["order_id"]) <= valid_orders
    assert_accounting(res)


def test_boundary_values_are_valid() -> None:
    raw = raw_tables()
    raw["refunds"].loc[0, "amount"] = "100"  # equal to the order's amount
    raw["refunds"].loc[1, "requested_at"] = "2024-01-02 10:00"  # same time as the order
    raw["refunds"].loc[1, "resolved_at"] = "2024-01-02 10:00"  # same time as the request
    raw["refunds"].loc[2, "requested_at"] = "2024-01-03T02:00:00Z"  # = o3's 10:00 Shanghai
    raw["refunds"].loc[3, "amount"] = "0"
    raw["orders"].loc[0, "delivered_at"] = "2024-01-01 10:00"  # delivered as it was placed
    raw["reviews"].loc[0, "rating"] = "5.0"
    raw["reviews"].loc[1, "rating"] = "1"
    raw["reviews"].loc[3, "created_at"] = "2024-01-05 10:00"  # same time as its order
    raw["orders"].loc[2, "amount"] = "0"
    raw["refunds"].loc[2, "amount"] = "0"
    res = run(raw)
    assert res.quarantine.empty, res.quarantine["reason"].tolist()
    assert_only_these_lost(res, {})


def test_many_problems_at_once_keep_the_accounting() -> None:
    raw = raw_tables()
    raw["orders"].loc[0, "amount"] = "-1"
    raw["orders"].loc[4, "created_at"] = "??"
    append_copy("orders", 2)(raw)
    append_copy("orders", 3, seller_id="s9")(raw)
    raw["refunds"].loc[1, "type"] = "refund_all"
    raw["refunds"].loc[1, "amount"] = "999"
    append_copy("refunds", 1)(raw)
    raw["reviews"].loc[1, "rating"] = "3.5"
    raw["reviews"].loc[2, "created_at"] = None
    append_copy("reviews", 2)(raw)
    raw["labels"].loc[2, "label"] = "yes"
    append_copy("labels", 0)(raw)
    append_copy("buyers", 1, registered_at="2020-01-01")(raw)
    res = run(raw)
    assert_accounting(res)
    rep = res.report
    assert (rep["orders"]["rows_in"], rep["orders"]["rows_valid"],
            rep["orders"]["duplicates_collapsed"]) == (7, 2, 1)
    assert res.tables["orders"]["order_id"].tolist() == ["o2", "o3"]
    assert rep["refunds"]["duplicates_collapsed"] == 1
    assert res.tables["refunds"]["refund_id"].tolist() == ["r3"]
    assert rep["reviews"]["duplicates_collapsed"] == 1
    # v2's rating is not whole: nulled, the review kept; v3: missing time.
    assert res.tables["reviews"]["review_id"].tolist() == ["v2"]
    assert np.isnan(res.tables["reviews"]["rating"].iloc[0])
    assert nulled(res, "reviews") == {2: "rating: not whole (3.5)"}
    assert rep["labels"]["rows_valid"] == 2 and rep["labels"]["duplicates_collapsed"] == 1
    assert res.tables["buyers"]["buyer_id"].tolist() == ["b1", "b3"]


def test_report_reason_kinds_drop_the_value() -> None:
    raw = raw_tables()
    raw["reviews"].loc[0, "created_at"] = "2024/13/45"
    raw["reviews"].loc[1, "created_at"] = "O'Brien"  # repr uses double quotes
    raw["reviews"].loc[3, "rating"] = "it's five"
    res = run(raw)
    assert set(quarantined(res, "reviews")) == {1, 2}
    assert res.report["reviews"]["reasons"] == {"created_at: unparseable time": 2}
    assert set(nulled(res, "reviews")) == {4}
    assert res.report["reviews"]["fields_nulled"] == {"rating: not a number": 1}


# --- times ------------------------------------------------------------------------------


def _with_order_times(values: list[str | None]) -> dict[str, pd.DataFrame]:
    raw = raw_tables()
    orders = pd.DataFrame(
        {"order_id": [f"x{i}" for i in range(len(values))], "buyer_id": "b1",
         "seller_id": "s1", "created_at": values, "amount": "1"}
    ).astype("str")
    raw["orders"] = pd.concat([raw["orders"], orders], ignore_index=True)
    return raw


def test_time_formats_are_converted_to_utc() -> None:
    cases = {
        "2024-01-01 08:00": "2024-01-01 00:00",  # naive: Asia/Shanghai wall clock
        "2024-01-01T08:00:00": "2024-01-01 00:00",
        "2024-01-01 08:00:00.250": "2024-01-01 00:00:00.250",
        "2024-01-01T08:00:00+08:00": "2024-01-01 00:00",
        "2024-01-01T08:00:00+0800": "2024-01-01 00:00",
        "2024-01-01T00:00:00Z": "2024-01-01 00:00",
        "2024-01-01T09:00:00+09:00": "2024-01-01 00:00",
        "2024-01-01T08:00:00-05:00": "2024-01-01 13:00",
        "2024-01-01": "2023-12-31 16:00",
        "2024/01/01 08:00": "2024-01-01 00:00",
        " 2024-01-01 08:00 ": "2024-01-01 00:00",
    }
    res = run(_with_order_times(list(cases)))
    assert res.quarantine.empty, res.quarantine["reason"].tolist()
    got = res.tables["orders"].set_index("order_id")["created_at"]
    for i, expected in enumerate(cases.values()):
        assert got[f"x{i}"] == pd.Timestamp(expected, tz="UTC"), list(cases)[i]
    assert str(got.dtype) == "datetime64[us, UTC]"


@pytest.mark.parametrize(
    ("timezone", "expected"),
    [("UTC", "2024-01-01 08:00"), ("Europe/Berlin", "2024-01-01 07:00")],
)
def test_naive_times_use_the_configured_zone(timezone: str, expected: str) -> None:
    raw = _with_order_times(["2024-01-01 08:00", "2024-01-01T08:00:00+08:00"])
    res = run(raw, timezone=timezone)
    got = res.tables["orders"].set_index("order_id")["created_at"]
    assert got["x0"] == pd.Timestamp(expected, tz="UTC")
    # A time with an explicit offset ignores the configured zone.
    assert got["x1"] == pd.Timestamp("2024-01-01 00:00", tz="UTC")


def test_typed_parquet_like_inputs(clean: ValidationResult) -> None:
    """Tables read from Parquet keep their types; validation gives the same result."""
    csv_res = clean
    raw: dict[str, pd.DataFrame] = raw_tables()
    orders = raw["orders"].copy()
    orders["created_at"] = pd.to_datetime(orders["created_at"])  # naive datetime64
    orders["delivered_at"] = (
        pd.to_datetime(orders["delivered_at"]).dt.tz_localize("Asia/Shanghai")
        .dt.tz_convert("Asia/Tokyo")  # aware, in another zone
    )
    orders["amount"] = orders["amount"].astype("int64")
    refunds = raw["refunds"].copy()
    refunds["amount"] = refunds["amount"].astype("float64")
    refunds["requested_at"] = pd.to_datetime(refunds["requested_at"]).dt.tz_localize(
        "Asia/Shanghai").dt.tz_convert("UTC").dt.as_unit("ns")
    refunds["instant"] = pd.array([False, True, None, False], dtype="boolean")
    reviews = raw["reviews"].copy()
    reviews["rating"] = pd.array([1, 5, None, 4], dtype="Int64")
    labels = raw["labels"].copy()
    labels["label"] = labels["label"].astype("int64")
    labels["labeled_at"] = pd.to_datetime(labels["labeled_at"]).dt.as_unit("ms")
    typed = {"orders": orders, "refunds": refunds, "reviews": reviews, "labels": labels,
             "buyers": raw["buyers"]}
    res = run(typed)  # type: ignore[arg-type]
    assert res.quarantine.empty, res.quarantine["reason"].tolist()
    for name in TABLES:
        pd.testing.assert_frame_equal(res.tables[name], csv_res.tables[name], check_names=True)
    assert res.tables["orders"]["created_at"].iloc[0] == pd.Timestamp("2024-01-01 02:00",
                                                                       tz="UTC")


def test_python_bool_column() -> None:
    raw = raw_tables()
    raw["refunds"]["instant"] = pd.Series([True, False, True, False], dtype=bool)
    res = run(raw)  # type: ignore[arg-type]
    assert res.tables["refunds"]["instant"].tolist() == [True, False, True, False]


# --- values -----------------------------------------------------------------------------


MONEY = {"¥1,299.00": 1299.0, "￥1，299": 1299.0, " 12.5 ": 12.5, "1 000": 1000.0,
         "0": 0.0, "1e3": 1000.0, "3": 3.0}
FLAGS = {"true": True, "false": False, "1": True, "0": False, "是": True, "否": False,
         "TRUE": True, "False": False, "yes": True, "no": False, " y ": True, "真": True,
         "假": False, None: None, "": None}


def _extra_refunds(column: str, values: list[str | None]) -> dict[str, pd.DataFrame]:
    """The clean tables plus one valid refund of o5 per value, in ``column``."""
    raw = raw_tables()
    extra = pd.DataFrame(
        {"refund_id": [f"x{i}" for i in range(len(values))], "order_id": "o5",
         "requested_at": "2024-01-08 10:00", "amount": "1", "type": "exchange",
         "reason": "other", "status": "pending", "resolved_at": None, "instant": None}
    )
    extra[column] = values
    raw["orders"].loc[4, "amount"] = "5000"
    raw["refunds"] = pd.concat([raw["refunds"], extra.astype("str")], ignore_index=True)
    return raw


def test_money_is_parsed() -> None:
    res = run(_extra_refunds("amount", list(MONEY)))
    assert res.quarantine.empty, res.quarantine["reason"].tolist()
    got = res.tables["refunds"].set_index("refund_id")["amount"]
    for i, (text, expected) in enumerate(MONEY.items()):
        assert got[f"x{i}"] == expected, text


def test_instant_flags() -> None:
    res = run(_extra_refunds("instant", list(FLAGS)))
    assert res.quarantine.empty, res.quarantine["reason"].tolist()
    got = res.tables["refunds"].set_index("refund_id")["instant"]
    assert str(got.dtype) == "boolean"
    for i, (text, expected) in enumerate(FLAGS.items()):
        value = got[f"x{i}"]
        if expected is None:
            assert value is pd.NA, text
        else:
            assert bool(value) is expected, text


def test_bad_flag_and_money_are_quarantined_alone() -> None:
    raw = _extra_refunds("instant", ["true", "maybe", "2", "false"])
    raw["refunds"].loc[4, "amount"] = "1.2.3"
    res = run(raw)
    assert quarantined(res, "refunds") == {5: "amount: not a number '1.2.3'"}
    # instant is optional: an unreadable flag is dropped, the refund kept.
    assert nulled(res, "refunds") == {
        6: "instant: not true/false 'maybe'",
        7: "instant: not true/false '2'",
    }
    refunds = res.tables["refunds"]
    assert refunds["refund_id"].tolist() == ["r1", "r2", "r3", "r4", "x1", "x2", "x3"]
    assert refunds["instant"].iloc[4:].tolist() == [pd.NA, pd.NA, False]
    assert_accounting(res)


def test_enum_values_are_normalised() -> None:
    raw = raw_tables()
    raw["refunds"].loc[0, "type"] = " Refund_Only "
    raw["refunds"].loc[1, "status"] = "REJECTED"
    res = run(raw)
    assert res.quarantine.empty
    assert res.tables["refunds"]["type"].iloc[0] == "refund_only"
    assert res.tables["refunds"]["status"].iloc[1] == "rejected"


def test_ids_and_texts_are_stripped() -> None:
    raw = raw_tables()
    raw["reviews"].loc[3, "order_id"] = "  o5 "
    raw["reviews"].loc[3, "text"] = "  ok  "
    res = run(raw)
    assert res.quarantine.empty
    assert res.tables["reviews"]["order_id"].iloc[3] == "o5"
    assert res.tables["reviews"]["text"].iloc[3] == "ok"


def test_control_characters_are_stripped_and_texts_cut() -> None:
    raw = raw_tables()
    raw["reviews"].loc[0, "text"] = "质量\x00太差\x07了\x1b"
    raw["reviews"].loc[1, "text"] = "第一行\n第二行\t完"
    raw["reviews"].loc[3, "text"] = "\x00\x00abcdefghij"
    raw["orders"].loc[0, "category"] = "apparel-and-shoes"
    res = run(raw, max_text_chars=8)
    assert res.quarantine.empty
    texts = res.tables["reviews"]["text"].tolist()
    assert texts[0] == "质量太差了"
    assert texts[1] == "第一行\n第二行\t"  # newlines and tabs stay; cut at 8 characters
    assert texts[3] == "abcdefgh"  # control characters go before the cut
    assert res.tables["orders"]["category"].iloc[0] == "apparel-"
    # The quarantine and report are unaffected; ids are never cut.
    assert res.tables["reviews"]["review_id"].tolist() == ["v1", "v2", "v3", "v4"]


def test_default_length_keeps_long_text() -> None:
    raw = raw_tables()
    raw["reviews"].loc[0, "text"] = "好" * 2500
    res = run(raw)
    assert res.tables["reviews"]["text"].iloc[0] == "好" * 2000


# --- columns and tables -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "column"),
    [("orders", "amount"), ("refunds", "type"), ("labels", "labeled_at"),
     ("buyers", "buyer_id")],
)
def test_missing_required_column(table: str, column: str) -> None:
    raw = raw_tables()
    raw[table] = raw[table].drop(columns=[column])
    with pytest.raises(DataContractError) as info:
        run(raw)
    message = str(info.value)
    assert message.startswith(f"{table}:")
    assert column in message and "missing" in message


def test_missing_optional_column_is_fine() -> None:
    raw = raw_tables()
    raw["orders"] = raw["orders"].drop(columns=["delivered_at", "category"])
    raw["refunds"] = raw["refunds"].drop(columns=["instant", "resolved_at"])
    res = run(raw)
    assert res.quarantine.empty
    assert res.tables["orders"]["delivered_at"].isna().all()
    assert res.tables["refunds"]["instant"].isna().all()
    assert str(res.tables["refunds"]["instant"].dtype) == "boolean"


def test_extra_columns_are_ignored_and_reported() -> None:
    raw = raw_tables()
    raw["orders"]["coupon"] = "x"
    raw["orders"]["备注"] = "y"
    res = run(raw)
    assert "coupon" not in res.tables["orders"].columns
    assert res.report["orders"]["ignored_columns"] == ["coupon", "备注"]


def test_column_names_are_cleaned() -> None:
    raw = raw_tables()
    raw["orders"] = raw["orders"].rename(columns={"order_id": "\ufefforder_id",
                                                  "amount": " amount "})
    res = run(raw)
    assert res.quarantine.empty
    assert res.tables["orders"]["order_id"].tolist() == ["o1", "o2", "o3", "o4", "o5"]


def test_any_index_is_accepted() -> None:
    raw = raw_tables()
    raw["refunds"].index = [10, 20, 30, 40]
    raw["refunds"].loc[30, "amount"] = "abc"
    res = run(raw)
    assert quarantined(res, "refunds") == {3: "amount: not a number 'abc'"}


@pytest.mark.parametrize(
    ("table", "how"),
    [("orders", "none"), ("refunds", "none"), ("reviews", "absent"), ("labels", "none"),
     ("labels", "absent")],
)
def test_required_table_missing(table: str, how: str) -> None:
    raw: dict[str, pd.DataFrame | None] = dict(raw_tables())
    if how == "none":
        raw[table] = None
    else:
        del raw[table]
    with pytest.raises(DataContractError, match=f"^{table}: table is missing"):
        run(raw)


@pytest.mark.parametrize("how", ["none", "absent"])
def test_optional_buyers_table_missing(how: str) -> None:
    raw: dict[str, pd.DataFrame | None] = dict(raw_tables())
    if how == "none":
        raw["buyers"] = None
    else:
        del raw["buyers"]
    res = run(raw)
    buyers = res.tables["buyers"]
    assert buyers.empty
    assert list(buyers.columns) == ["buyer_id", "registered_at"]
    assert str(buyers["registered_at"].dtype) == "datetime64[us, UTC]"
    assert res.report["buyers"]["rows_in"] == 0
    assert len(res.tables["orders"]) == 5
    assert_accounting(res)


@pytest.mark.parametrize("table", ["refunds", "reviews", "labels", "buyers"])
def test_header_only_table_is_valid(table: str) -> None:
    """A shop with no refunds (or reviews, labels) yet: an empty table, not an error."""
    raw = raw_tables()
    raw[table] = raw[table].iloc[0:0]
    res = run(raw)
    assert res.tables[table].empty
    assert list(res.tables[table].columns) == list(TABLES[table].names)
    assert res.quarantine.empty
    assert res.report[table]["rows_in"] == 0
    assert len(res.tables["orders"]) == 5
    assert_accounting(res)


def test_header_only_orders_table_orphans_everything() -> None:
    raw = raw_tables()
    raw["orders"] = raw["orders"].iloc[0:0]
    res = run(raw)
    assert res.tables["orders"].empty
    assert res.tables["refunds"].empty and res.tables["reviews"].empty
    assert res.report["refunds"]["reasons"] == {"order_id: no such order": 4}
    assert res.report["reviews"]["reasons"] == {"order_id: no such order": 4}
    assert_accounting(res)


def test_every_order_quarantined() -> None:
    """All orders fail (say, a date format nobody can read): report it, do not crash."""
    raw = raw_tables()
    raw["orders"]["created_at"] = "10/01/2024 at noon"
    res = run(raw)
    assert res.report["orders"]["rows_quarantined"] == 5
    assert res.report["refunds"]["reasons"] == {"order_id: its order was quarantined": 4}
    assert res.report["reviews"]["reasons"] == {"order_id: its order was quarantined": 4}
    assert_accounting(res)
    with pytest.raises(DataContractError, match=r"^orders: 5 of 5 rows rejected"):
        check_reject_shares(res.report, 0.2)


def test_input_is_not_modified() -> None:
    raw = raw_tables()
    raw["refunds"].loc[0, "amount"] = "abc"
    copy = {k: v.copy() for k, v in raw.items()}
    run(raw)
    for name in raw:
        pd.testing.assert_frame_equal(raw[name], copy[name])


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "not a zone"])
def test_unknown_timezone(zone: str) -> None:
    with pytest.raises(ConfigError, match="time zone"):
        run(raw_tables(), timezone=zone)
    with pytest.raises(ConfigError):
        check_timezone(zone)


def test_check_timezone_known() -> None:
    assert str(check_timezone("Asia/Shanghai")) == "Asia/Shanghai"


# --- reject shares ----------------------------------------------------------------------


def _report(rows_in: int, bad: int, reasons: dict[str, int] | None = None) -> dict[str, Any]:
    return {"rows_in": rows_in, "rows_valid": rows_in - bad, "rows_quarantined": bad,
            "duplicates_collapsed": 0, "reasons": reasons or {}, "ignored_columns": []}


@pytest.mark.parametrize(("bad", "raises"), [(0, False), (1, False), (2, False), (3, True),
                                             (10, True)])
def test_check_reject_shares_limit(bad: int, raises: bool) -> None:
    report = {"orders": _report(10, 0), "refunds": _report(10, bad, {"amount: x": bad})}
    if raises:
        with pytest.raises(DataContractError) as info:
            check_reject_shares(report, 0.2)
        message = str(info.value)
        assert message.startswith("refunds:")
        assert f"{bad} of 10" in message
        assert "amount: x" in message
    else:
        check_reject_shares(report, 0.2)


def test_check_reject_shares_names_the_most_common_reason() -> None:
    report = {"reviews": _report(4, 4, {"rating: not whole": 1, "created_at: missing": 3})}
    with pytest.raises(DataContractError, match="most common reason: created_at: missing"):
        check_reject_shares(report, 0.5)


def test_check_reject_shares_empty_table_and_full_limit() -> None:
    check_reject_shares({"buyers": _report(0, 0)}, 0.2)
    check_reject_shares({"orders": _report(5, 5, {"a": 5})}, 1.0)


def test_check_reject_shares_on_a_real_report() -> None:
    raw = raw_tables()
    raw["labels"].loc[0, "label"] = "x"  # 1 of 3 labels
    res = run(raw)
    check_reject_shares(res.report, 0.34)
    with pytest.raises(DataContractError, match=r"^labels:"):
        check_reject_shares(res.report, 0.33)


# --- files ------------------------------------------------------------------------------


def _write_inputs(folder: Path, raw: dict[str, pd.DataFrame], *, parquet: tuple[str, ...] = (),
                  skip: tuple[str, ...] = ()) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in raw.items():
        if name in skip:
            continue
        if name in parquet:
            df.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            df.to_csv(folder / f"{name}.csv", index=False, encoding="utf-8")


def test_read_tables(tmp_path: Path) -> None:
    raw = raw_tables()
    _write_inputs(tmp_path, raw, parquet=("labels",), skip=("buyers",))
    (tmp_path / "notes.txt").write_text("ignored")
    got = read_tables(tmp_path)
    assert set(got) == set(TABLES)
    assert got["buyers"] is None
    orders = got["orders"]
    assert orders is not None
    assert orders["order_id"].tolist() == ["o1", "o2", "o3", "o4", "o5"]
    assert pd.isna(orders["delivered_at"].iloc[2])
    labels = got["labels"]
    assert labels is not None and labels["label"].tolist() == ["1", "0", "1"]


def test_read_tables_gb18030(tmp_path: Path) -> None:
    raw = raw_tables()
    _write_inputs(tmp_path, raw)
    raw["reviews"].to_csv(tmp_path / "reviews.csv", index=False, encoding="gb18030")
    got = read_tables(tmp_path)
    assert got["reviews"] is not None
    assert got["reviews"]["text"].iloc[0] == "质量太差了"
    with pytest.raises(DataContractError, match=r"reviews\.csv"):
        read_tables(tmp_path, encoding="utf-8")


def test_read_tables_errors(tmp_path: Path) -> None:
    with pytest.raises(DataContractError, match="input folder not found"):
        read_tables(tmp_path / "nope")
    _write_inputs(tmp_path, raw_tables())
    raw_tables()["orders"].to_parquet(tmp_path / "orders.parquet")
    with pytest.raises(DataContractError, match="keep only one"):
        read_tables(tmp_path)


def test_read_validate_write_round_trip(tmp_path: Path) -> None:
    raw = raw_tables()
    raw["refunds"].loc[0, "type"] = "refund_all"
    raw["orders"].loc[4, "amount"] = "oops"
    append_copy("labels", 1)(raw)
    _write_inputs(tmp_path / "in", raw, parquet=("buyers",))
    res = run(read_tables(tmp_path / "in"))
    out = tmp_path / "out"
    write_result(res, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{n}{VALIDATED_TABLE_SUFFIX}" for n in TABLES]
        + [QUARANTINE_FILE_NAME, VALIDATION_REPORT_FILE_NAME]
    )
    for name in TABLES:
        back = pd.read_parquet(out / f"{name}.parquet")
        pd.testing.assert_frame_equal(back, res.tables[name])
        for col in TABLES[name].columns:
            assert str(back[col.name].dtype) == str(res.tables[name][col.name].dtype)
    q = pd.read_csv(out / QUARANTINE_FILE_NAME, encoding="utf-8-sig")
    total = sum(r["rows_quarantined"] for r in res.report.values())
    assert total == 3  # r1, o5 and o5's review v4
    assert len(q) == total
    assert list(q.columns) == list(QUARANTINE_COLUMNS)
    assert (out / QUARANTINE_FILE_NAME).read_bytes().startswith(b"\xef\xbb\xbf")
    report = json.loads((out / VALIDATION_REPORT_FILE_NAME).read_text(encoding="utf-8"))
    assert report == json.loads(json.dumps(res.report))
    assert report["labels"]["duplicates_collapsed"] == 1
    assert_accounting(res)


def test_write_result_with_empty_quarantine(tmp_path: Path, clean: ValidationResult) -> None:
    write_result(clean, tmp_path)
    q = pd.read_csv(tmp_path / QUARANTINE_FILE_NAME, encoding="utf-8-sig")
    assert q.empty and list(q.columns) == list(QUARANTINE_COLUMNS)


def _params(tmp_path: Path, input_dir: Path, max_reject_share: float = 0.2) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(
        "base:\n  timezone: Asia/Shanghai\n"
        f"data:\n  input_dir: {input_dir.as_posix()}\n  truth_file: null\n  encoding: auto\n"
        f"validate:\n  max_reject_share: {max_reject_share}\n  max_text_chars: 3\n",
        encoding="utf-8",
    )
    return path


def test_main_uses_params_input_dir(tmp_path: Path) -> None:
    in_dir = tmp_path / "input"
    _write_inputs(in_dir, raw_tables())
    out = tmp_path / "validated"
    res = main(_params(tmp_path, in_dir), out)
    assert res.quarantine.empty
    assert (out / VALIDATION_REPORT_FILE_NAME).is_file() and (out / QUARANTINE_FILE_NAME).is_file()
    reviews = pd.read_parquet(out / "reviews.parquet")
    assert reviews["text"].iloc[0] == "质量太"  # max_text_chars from the params file
    orders = pd.read_parquet(out / "orders.parquet")
    assert orders["created_at"].iloc[0] == pd.Timestamp("2024-01-01 02:00", tz="UTC")


def test_main_input_dir_argument_wins(tmp_path: Path) -> None:
    params = _params(tmp_path, tmp_path / "does-not-exist")
    in_dir = tmp_path / "other"
    _write_inputs(in_dir, raw_tables(), parquet=("orders",))
    res = main(params, tmp_path / "out", input_dir=in_dir)
    assert len(res.tables["orders"]) == 5
    with pytest.raises(DataContractError, match="input folder not found"):
        main(params, tmp_path / "out2")


def test_main_writes_quarantine_and_report_before_refusing(tmp_path: Path) -> None:
    raw = raw_tables()
    raw["orders"].loc[0, "amount"] = "abc"
    raw["orders"].loc[1, "amount"] = "-3"  # 2 of 5 orders > 20 %
    in_dir = tmp_path / "input"
    _write_inputs(in_dir, raw)
    out = tmp_path / "validated"
    with pytest.raises(DataContractError, match=r"^orders: 2 of 5 rows rejected"):
        main(_params(tmp_path, in_dir), out, input_dir=in_dir)
    q = pd.read_csv(out / QUARANTINE_FILE_NAME, encoding="utf-8-sig")
    report = json.loads((out / VALIDATION_REPORT_FILE_NAME).read_text(encoding="utf-8"))
    assert report["orders"]["rows_quarantined"] == 2
    assert len(q) == sum(r["rows_quarantined"] for r in report.values())
    assert set(q.loc[q["table"] == "orders", "row"]) == {1, 2}
    assert "amount: not a number 'abc'" in q["reason"].tolist()


def test_main_accepts_the_same_data_with_a_higher_limit(tmp_path: Path) -> None:
    raw = raw_tables()
    raw["orders"].loc[0, "amount"] = "abc"
    raw["orders"].loc[1, "amount"] = "-3"
    in_dir = tmp_path / "input"
    _write_inputs(in_dir, raw)
    res = main(_params(tmp_path, in_dir, max_reject_share=0.6), tmp_path / "out",
               input_dir=in_dir)
    assert res.report["orders"]["rows_quarantined"] == 2
    assert res.report["refunds"]["rows_quarantined"] == 2  # r1, r2 follow their orders


def test_main_missing_required_file(tmp_path: Path) -> None:
    in_dir = tmp_path / "input"
    _write_inputs(in_dir, raw_tables(), skip=("labels",))
    with pytest.raises(DataContractError, match="labels: table is missing"):
        main(_params(tmp_path, in_dir), tmp_path / "out", input_dir=in_dir)


def test_bom_csv_written_by_excel_validates(tmp_path: Path) -> None:
    in_dir = tmp_path / "input"
    _write_inputs(in_dir, raw_tables())
    write_csv(raw_tables()["orders"], in_dir / "orders.csv")  # UTF-8 with BOM
    res = run(read_tables(in_dir))
    assert res.quarantine.empty
    assert res.tables["orders"]["order_id"].tolist() == ["o1", "o2", "o3", "o4", "o5"]


@pytest.mark.parametrize(("table", "column"), [("reviews", "rating"), ("reviews", "text"),
                                               ("refunds", "reason_text"),
                                               ("buyers", "registered_at"),
                                               ("labels", "source"), ("orders", "device_id")])
def test_every_optional_column_may_be_absent(table: str, column: str) -> None:
    raw = raw_tables()
    raw[table] = raw[table].drop(columns=[column], errors="ignore")
    res = run(raw)
    assert res.quarantine.empty
    assert res.tables[table][column].isna().all()
    assert str(res.tables[table][column].dtype) == DTYPES[TABLES[table].column(column).kind]


# --- optional fields: an unusable value is nulled, the row kept --------------------------

# The raw row (0-based) of each table whose optional field is spoiled; the order o1 has a
# refund and a review that must survive with it.
SPOILED_ROW = {"orders": 0, "refunds": 0, "reviews": 0, "labels": 0, "buyers": 0}
# Unusable values per column kind, with the reason each gets.
UNUSABLE = {
    "time": [("2025/13/45", "unparseable time '2025/13/45'"),
             ("2099-01-01 00:00", "in the future '2099-01-01 00:00'")],
    "bool": [("maybe", "not true/false 'maybe'")],
    "int": [("many", "not a number 'many'")],
    "amount": [("lots", "not a number 'lots'")],
}
# Range and integrality rules of optional columns (rating is the only one today).
RULE_CASES = [("reviews", "rating", "0", "must be >= 1 (0.0)"),
              ("reviews", "rating", "7", "must be <= 5 (7.0)"),
              ("reviews", "rating", "3.5", "not whole (3.5)")]


def _optional_columns() -> list[tuple[str, str]]:
    """Every optional column of the contract that can hold an unusable value.

    Ids and texts take any string, so no value of theirs is unusable.
    """
    return [(t.name, c.name) for t in TABLES.values() for c in t.columns
            if c.nullable and c.kind in UNUSABLE]


OPTIONAL_CASES = [
    pytest.param(table, column, value, f"{column}: {reason}", id=f"{table}.{column}={value}")
    for table, column in _optional_columns()
    for value, reason in UNUSABLE[TABLES[table].column(column).kind]
] + [pytest.param(t, c, v, f"{c}: {r}", id=f"{t}.{c}={v}") for t, c, v, r in RULE_CASES]


def test_optional_cases_cover_every_optional_column() -> None:
    covered = {(p.values[0], p.values[1]) for p in OPTIONAL_CASES}
    assert covered == set(_optional_columns())
    # The contract's optional columns today; a new one must be covered above.
    assert {("orders", "delivered_at"), ("orders", "shipped_at"), ("refunds", "resolved_at"),
            ("refunds", "instant"), ("reviews", "rating"), ("buyers", "registered_at")} == covered


@pytest.mark.parametrize(("table", "column", "value", "reason"), OPTIONAL_CASES)
def test_unusable_optional_field_is_nulled_and_the_row_kept(
    table: str, column: str, value: str, reason: str
) -> None:
    raw = raw_tables()
    row = SPOILED_ROW[table]
    raw[table][column] = raw[table][column] if column in raw[table] else None
    raw[table] = raw[table].astype("str")
    raw[table].loc[row, column] = value
    clean = validate_tables(raw_tables(), timezone=TZ, max_text_chars=2000,
                            now=pd.Timestamp("2024-06-01", tz="UTC"))
    res = validate_tables(raw, timezone=TZ, max_text_chars=2000,
                          now=pd.Timestamp("2024-06-01", tz="UTC"))
    assert_accounting(res)
    # Nothing is lost: every table keeps every row, this one and its dependants too.
    for name in TABLES:
        assert len(res.tables[name]) == len(clean.tables[name]), name
        assert res.report[name]["rows_quarantined"] == 0, (name, quarantined(res, name))
    out = res.tables[table]
    assert pd.isna(out[column].iloc[row])
    # Only that field changed.
    others = [c for c in out.columns if c != column]
    pd.testing.assert_frame_equal(out[others], clean.tables[table][others])
    # Nothing is hidden: the quarantine names the row, the field and the raw value.
    assert nulled(res, table) == {row + 1: reason}
    line = res.quarantine.iloc[0]
    assert (line["table"], line["action"]) == (table, "field_nulled")
    assert json.loads(line["record"])[column] == value
    assert res.report[table]["rows_fields_nulled"] == 1
    assert res.report[table]["fields_nulled"] == {reason_kind(reason): 1}
    assert res.report[table]["rows_valid"] == res.report[table]["rows_in"]


def test_delivered_at_2025_13_45_keeps_the_order_and_everything_tied_to_it() -> None:
    # The defect a dirty export found: the whole order, its refund and review were lost.
    raw = raw_tables()
    raw["orders"].loc[0, "delivered_at"] = "2025/13/45"
    res = run(raw)
    assert res.tables["orders"]["order_id"].tolist() == ["o1", "o2", "o3", "o4", "o5"]
    assert pd.isna(res.tables["orders"]["delivered_at"].iloc[0])
    assert "r1" in set(res.tables["refunds"]["refund_id"])
    assert "v1" in set(res.tables["reviews"]["review_id"])
    assert nulled(res, "orders") == {1: "delivered_at: unparseable time '2025/13/45'"}
    assert quarantined(res, "orders") == {}


def test_required_field_still_rejects_its_row_and_lists_nulled_fields_too() -> None:
    raw = raw_tables()
    raw["orders"].loc[4, "delivered_at"] = "2025/13/45"
    raw["orders"].loc[4, "created_at"] = "2025/13/46"
    res = run(raw)
    assert_accounting(res)
    assert "o5" not in set(res.tables["orders"]["order_id"])
    got = quarantined(res, "orders")
    assert set(got) == {5}
    assert "created_at: unparseable time '2025/13/46'" in got[5]
    assert "delivered_at: unparseable time '2025/13/45'" in got[5]
    assert nulled(res, "orders") == {}
    assert res.report["orders"]["rows_fields_nulled"] == 0


def test_quarantine_file_shows_the_action(tmp_path: Path) -> None:
    raw = raw_tables()
    raw["orders"].loc[0, "delivered_at"] = "2025/13/45"
    raw["orders"].loc[1, "amount"] = "-1"
    write_result(run(raw), tmp_path)
    q = pd.read_csv(tmp_path / QUARANTINE_FILE_NAME, encoding="utf-8-sig")
    assert list(q.columns) == list(QUARANTINE_COLUMNS)
    orders = q[q["table"] == "orders"].set_index("row")
    assert orders.loc[1, "action"] == "field_nulled"
    assert orders.loc[2, "action"] == "row_rejected"
    report = json.loads((tmp_path / VALIDATION_REPORT_FILE_NAME).read_text(encoding="utf-8"))
    assert report["orders"]["fields_nulled"] == {"delivered_at: unparseable time": 1}
    assert report["orders"]["reasons"] == {"amount: must be >= 0": 1}


# --- labels about unknown buyers -----------------------------------------------------------


def _with_label(buyer: str) -> dict[str, pd.DataFrame]:
    raw = raw_tables()
    extra = pd.DataFrame([(buyer, "1", "2024-02-04 10:00", "manual_review")],
                         columns=raw["labels"].columns)
    raw["labels"] = pd.concat([raw["labels"], extra], ignore_index=True)
    return raw


def test_label_of_a_buyer_in_no_order_and_not_in_buyers_is_quarantined() -> None:
    res = run(_with_label("b404"))
    assert_accounting(res)
    assert quarantined(res, "labels") == {
        4: "buyer_id: unknown buyer (in no order and not in buyers)"
    }
    assert res.tables["labels"]["buyer_id"].tolist() == ["b1", "b2", "b3"]
    assert res.report["labels"]["reasons"] == {"buyer_id: unknown buyer": 1}


def test_label_of_a_registered_buyer_without_orders_is_kept() -> None:
    raw = _with_label("b4")
    raw["buyers"] = pd.concat(
        [raw["buyers"], pd.DataFrame([("b4", "2024-01-01 00:00")], columns=["buyer_id",
                                                                        "registered_at"])],
        ignore_index=True)
    res = run(raw)
    assert res.quarantine.empty, res.quarantine["reason"].tolist()
    assert res.tables["labels"]["buyer_id"].tolist() == ["b1", "b2", "b3", "b4"]


def test_label_of_a_buyer_with_orders_is_kept_without_a_buyers_table() -> None:
    raw: dict[str, pd.DataFrame | None] = dict(raw_tables())
    raw["buyers"] = None
    res = run(raw)
    assert res.quarantine.empty, res.quarantine["reason"].tolist()
    assert res.tables["labels"]["buyer_id"].tolist() == ["b1", "b2", "b3"]
    # An order whose row is quarantined still tells that its buyer exists.
    raw["orders"] = raw_tables()["orders"]
    raw["orders"].loc[4, "amount"] = "-1"
    res = run(raw)
    assert "b3" in set(res.tables["labels"]["buyer_id"])
