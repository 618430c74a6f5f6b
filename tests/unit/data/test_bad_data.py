"""Bad data, as files on disk: each case is quarantined (or cleaned), the rest survives,
and report.json's counts match quarantine.csv.

Every case runs the validate stage's ``main`` on CSV files and reads its outputs back
from disk, as a user would.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.fixtures import KEYS, raw_tables
from typer.testing import CliRunner

from refundguard.cli import app
from refundguard.contract.tables import TABLES
from refundguard.data.validate import ValidationResult, validate_tables
from refundguard.errors import DataContractError
from refundguard.paths import QUARANTINE_FILE_NAME, VALIDATION_REPORT_FILE_NAME
from refundguard.stages.validate import main

TZ = "Asia/Shanghai"
MAX_TEXT = 2000  # validate.max_text_chars, as in the shipped params.yaml

Tables = dict[str, pd.DataFrame]
Mutation = Callable[[Tables], None]


def write_inputs(folder: Path, raw: Tables, encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in raw.items():
        df.to_csv(folder / f"{name}.csv", index=False, encoding=encoding)
    return folder


def write_params(tmp_path: Path, input_dir: Path, **data: object) -> Path:
    params = {
        "base": {"timezone": TZ},
        "data": {"input_dir": str(input_dir), "truth_file": None, **data},
        # Accept any share of bad rows: these tests look at the rows, not the limit.
        "validate": {"max_reject_share": 1.0, "max_text_chars": MAX_TEXT},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    return path


def run_files(tmp_path: Path, raw: Tables, **data: object) -> tuple[ValidationResult, Path]:
    in_dir = write_inputs(tmp_path / "input", raw)
    out = tmp_path / "validated"
    return main(write_params(tmp_path, in_dir, **data), out), out


def reason_kind(reason: str) -> str:
    if reason.startswith("malformed line:"):
        return "malformed line"
    return re.sub(r"\s*\(.*\)$|\s+(['\"]).*\1$", "", reason)


def assert_report_matches_quarantine_file(out: Path) -> None:
    """report.json's counts are exactly what quarantine.csv holds; no row unaccounted."""
    report = json.loads((out / VALIDATION_REPORT_FILE_NAME).read_text(encoding="utf-8"))
    q = pd.read_csv(out / QUARANTINE_FILE_NAME, encoding="utf-8-sig", dtype={"row": "int64"})
    assert set(q["table"]) <= set(report)
    assert set(q["action"]) <= {"row_rejected", "field_nulled"}
    for name, r in report.items():
        listed = q[q["table"] == name]
        assert listed["row"].is_unique, name
        valid = pd.read_parquet(out / f"{name}.parquet")
        assert len(valid) == r["rows_valid"], name
        assert r["rows_in"] == r["rows_valid"] + r["rows_quarantined"] + r[
            "duplicates_collapsed"
        ], name
        for action, rows_key, counts_key in (("row_rejected", "rows_quarantined", "reasons"),
                                             ("field_nulled", "rows_fields_nulled",
                                              "fields_nulled")):
            rows = listed[listed["action"] == action]
            assert len(rows) == r[rows_key], (name, action)
            counts: Counter[str] = Counter()
            for joined in rows["reason"]:
                counts.update({reason_kind(p) for p in joined.split("; ")})
            assert r[counts_key] == dict(counts), (name, action)
        for record in listed["record"]:
            assert isinstance(json.loads(record), dict)


def quarantined(out: Path, table: str, action: str = "row_rejected") -> dict[int, str]:
    """1-based row -> reasons of one table's quarantine.csv lines with this action."""
    q = pd.read_csv(out / QUARANTINE_FILE_NAME, encoding="utf-8-sig", dtype={"row": "int64"})
    q = q[(q["table"] == table) & (q["action"] == action)]
    return dict(zip(q["row"], q["reason"], strict=True))


def set_cell(table: str, row: int, column: str, value: object) -> Mutation:
    def mutate(raw: Tables) -> None:
        raw[table].loc[row, column] = value

    return mutate


def append_copy(table: str, row: int, **changes: object) -> Mutation:
    def mutate(raw: Tables) -> None:
        copy = raw[table].iloc[[row]].copy()
        for column, value in changes.items():
            copy[column] = value
        raw[table] = pd.concat([raw[table], copy], ignore_index=True)

    return mutate


# (mutation, {table: {1-based row: reason substring}})
CASES = [
    pytest.param(set_cell("refunds", 2, "order_id", "o404"),
                 {"refunds": {3: "order_id: no such order"}}, id="orphan-refund"),
    pytest.param(set_cell("reviews", 1, "order_id", "o404"),
                 {"reviews": {2: "order_id: no such order"}}, id="orphan-review"),
    pytest.param(append_copy("refunds", 1, amount="49"),
                 {"refunds": {2: "refund_id: duplicate id with different values",
                              5: "refund_id: duplicate id with different values"}},
                 id="conflicting-duplicate-refund"),
    pytest.param(append_copy("reviews", 0, rating="2"),
                 {"reviews": {1: "review_id: duplicate id with different values",
                              5: "review_id: duplicate id with different values"}},
                 id="conflicting-duplicate-review"),
    pytest.param(append_copy("orders", 0, buyer_id="b9"),
                 {"orders": {1: "order_id: duplicate id with different values",
                             6: "order_id: duplicate id with different values"},
                  "refunds": {1: "order_id: its order was quarantined"},
                  "reviews": {1: "order_id: its order was quarantined"}},
                 id="conflicting-duplicate-order"),
    pytest.param(set_cell("orders", 2, "amount", "-300"),
                 {"orders": {3: "amount: must be >= 0"},
                  "refunds": {3: "order_id: its order was quarantined"},
                  "reviews": {3: "order_id: its order was quarantined"}},
                 id="negative-order-amount"),
    pytest.param(set_cell("refunds", 0, "amount", "-0.01"),
                 {"refunds": {1: "amount: must be >= 0"}}, id="negative-refund-amount"),
    pytest.param(set_cell("refunds", 3, "amount", "400.5"),
                 {"refunds": {4: "amount: above the order's amount"}}, id="refund-above-order"),
    pytest.param(set_cell("refunds", 1, "requested_at", "2024-01-02 09:00"),
                 {"refunds": {2: "requested_at: before its order was created"}},
                 id="refund-before-order"),
    pytest.param(set_cell("refunds", 1, "requested_at", "2025/13/45"),
                 {"refunds": {2: "requested_at: unparseable time '2025/13/45'"}},
                 id="time-2025/13/45"),
    pytest.param(set_cell("reviews", 2, "created_at", "昨天"),
                 {"reviews": {3: "created_at: unparseable time '昨天'"}}, id="time-yesterday"),
    pytest.param(set_cell("orders", 4, "created_at", "2924-01-05 10:00"),
                 {"orders": {5: "created_at: in the future '2924-01-05 10:00'"},
                  "reviews": {4: "order_id: its order was quarantined"}},
                 id="order-time-far-future"),
    pytest.param(set_cell("refunds", 2, "reason", "外星人劫走了包裹"),
                 {"refunds": {3: "reason: unknown value ('外星人劫走了包裹')"}},
                 id="unknown-enum"),
    pytest.param(set_cell("refunds", 0, "status", "refunded"),
                 {"refunds": {1: "status: unknown value ('refunded')"}}, id="unknown-status"),
    pytest.param(set_cell("orders", 0, "amount", "inf"),
                 {"orders": {1: "amount: not a number 'inf'"},
                  "refunds": {1: "order_id: its order was quarantined"},
                  "reviews": {1: "order_id: its order was quarantined"}},
                 id="infinite-amount"),
    pytest.param(lambda raw: raw.__setitem__("labels", pd.concat(
                     [raw["labels"], pd.DataFrame([("b404", "1", "2024-02-04 10:00", "x")],
                                                  columns=raw["labels"].columns)],
                     ignore_index=True)),
                 {"labels": {4: "buyer_id: unknown buyer"}}, id="label-unknown-buyer"),
]

# An unusable value of an optional field: (table, 0-based row, column, value, reason).
FIELD_CASES = [
    pytest.param("orders", 0, "delivered_at", "2025/13/45",
                 "delivered_at: unparseable time '2025/13/45'", id="delivered-2025/13/45"),
    pytest.param("orders", 2, "shipped_at", "下周", "shipped_at: unparseable time '下周'",
                 id="shipped-next-week"),
    pytest.param("refunds", 0, "resolved_at", "2099-01-01 00:00",
                 "resolved_at: in the future '2099-01-01 00:00'", id="time-far-future"),
    pytest.param("refunds", 1, "instant", "maybe", "instant: not true/false 'maybe'",
                 id="instant-maybe"),
    pytest.param("reviews", 0, "rating", "0", "rating: must be >= 1", id="rating-0"),
    pytest.param("reviews", 3, "rating", "7", "rating: must be <= 5", id="rating-7"),
    pytest.param("reviews", 1, "rating", "五星", "rating: not a number '五星'", id="rating-text"),
    pytest.param("buyers", 1, "registered_at", "2025/13/45",
                 "registered_at: unparseable time '2025/13/45'", id="registered-2025/13/45"),
]


@pytest.mark.parametrize(("table", "row", "column", "value", "reason"), FIELD_CASES)
def test_unusable_optional_field_is_nulled_in_the_files_and_the_row_kept(
    tmp_path: Path, table: str, row: int, column: str, value: str, reason: str
) -> None:
    raw = raw_tables()
    if column not in raw[table]:
        raw[table][column] = None
    raw[table].loc[row, column] = value
    _, out = run_files(tmp_path, raw)
    for name in TABLES:
        assert quarantined(out, name) == {}, name
        key = KEYS[name]
        assert pd.read_parquet(out / f"{name}.parquet")[key].tolist() == raw[name][key].tolist()
    kept = pd.read_parquet(out / f"{table}.parquet")
    assert pd.isna(kept[column].iloc[row])
    got = quarantined(out, table, "field_nulled")
    assert set(got) == {row + 1} and reason in got[row + 1], got
    q = pd.read_csv(out / QUARANTINE_FILE_NAME, encoding="utf-8-sig", dtype={"row": "int64"})
    assert json.loads(q["record"].iloc[0])[column] == value
    report = json.loads((out / VALIDATION_REPORT_FILE_NAME).read_text(encoding="utf-8"))
    assert report[table]["rows_fields_nulled"] == 1
    assert report[table]["rows_quarantined"] == 0
    assert_report_matches_quarantine_file(out)


@pytest.mark.parametrize(("mutate", "expected"), CASES)
def test_bad_row_is_quarantined_and_every_other_row_survives(
    tmp_path: Path, mutate: Mutation, expected: dict[str, dict[int, str]]
) -> None:
    raw = raw_tables()
    mutate(raw)
    _, out = run_files(tmp_path, raw)
    for name in TABLES:
        got = quarantined(out, name)
        want = expected.get(name, {})
        assert set(got) == set(want), (name, got)
        for row, reason in want.items():
            assert reason in got[row], (name, row, got[row])
        # Every other row is in the validated table, in input order.
        key = KEYS[name]
        survivors = [v for i, v in enumerate(raw[name][key]) if i + 1 not in want]
        assert pd.read_parquet(out / f"{name}.parquet")[key].tolist() == survivors, name
    assert_report_matches_quarantine_file(out)


@pytest.mark.parametrize(("table", "row"), [("orders", 2), ("refunds", 0), ("reviews", 3),
                                            ("labels", 1)])
def test_exact_duplicates_are_collapsed_and_counted(tmp_path: Path, table: str,
                                                    row: int) -> None:
    raw = raw_tables()
    for _ in range(2):
        append_copy(table, row)(raw)
    _, out = run_files(tmp_path, raw)
    report = json.loads((out / VALIDATION_REPORT_FILE_NAME).read_text(encoding="utf-8"))
    assert report[table]["duplicates_collapsed"] == 2
    assert report[table]["rows_in"] == len(raw[table])
    assert pd.read_csv(out / QUARANTINE_FILE_NAME, encoding="utf-8-sig").empty
    ids = pd.read_parquet(out / f"{table}.parquet")[KEYS[table]].tolist()
    assert ids == raw_tables()[table][KEYS[table]].tolist()
    assert_report_matches_quarantine_file(out)


def test_unknown_enum_is_kept_when_the_mapping_covers_it(tmp_path: Path) -> None:
    raw = raw_tables()
    raw["refunds"].loc[2, "reason"] = "外星人劫走了包裹"
    res, out = run_files(tmp_path, raw,
                         values={"refunds": {"reason": {"外星人劫走了包裹": "not_received"}}})
    assert res.quarantine.empty
    assert pd.read_parquet(out / "refunds.parquet")["reason"].iloc[2] == "not_received"
    assert_report_matches_quarantine_file(out)


def test_long_text_and_control_characters_are_kept_cleaned_and_cut(tmp_path: Path) -> None:
    raw = raw_tables()
    raw["reviews"].loc[0, "text"] = "差" * 20_000
    raw["reviews"].loc[1, "text"] = "很\x00好\x07用\x1b\x7f，第二行\n完"
    raw["refunds"].loc[0, "reason_text"] = "\x00" * 10 + "x" * 30_000
    _, out = run_files(tmp_path, raw)
    assert pd.read_csv(out / QUARANTINE_FILE_NAME, encoding="utf-8-sig").empty
    reviews = pd.read_parquet(out / "reviews.parquet")
    assert reviews["text"].iloc[0] == "差" * MAX_TEXT
    assert reviews["text"].iloc[1] == "很好用，第二行\n完"
    refunds = pd.read_parquet(out / "refunds.parquet")
    assert refunds["reason_text"].iloc[0] == "x" * MAX_TEXT
    assert_report_matches_quarantine_file(out)


def test_malformed_line_is_quarantined_alone(tmp_path: Path) -> None:
    """A review text with an unquoted comma splits its line into too many fields."""
    in_dir = write_inputs(tmp_path / "input", raw_tables())
    lines = (in_dir / "reviews.csv").read_text(encoding="utf-8").splitlines()
    lines[2] = "v2,o2,2024-01-05 12:00,5,很好,下次还买"  # data row 2
    (in_dir / "reviews.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = main(write_params(tmp_path, in_dir), tmp_path / "validated")
    out = tmp_path / "validated"
    got = quarantined(out, "reviews")
    assert list(got) == [2]
    assert got[2].startswith("malformed line: 6 fields where the header has 5, extra:")
    assert "下次还买" in got[2]
    assert pd.read_parquet(out / "reviews.parquet")["review_id"].tolist() == ["v1", "v3", "v4"]
    assert res.report["reviews"]["reasons"] == {"malformed line": 1}
    assert_report_matches_quarantine_file(out)


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    in_dir = write_inputs(tmp_path / "input", raw_tables())
    text = (in_dir / "orders.csv").read_text(encoding="utf-8").splitlines()
    # Blank lines, and an Excel-style row of empty cells, between and after the data.
    padded = [text[0], "", text[1], ",,,,,,", text[2], "   ", *text[3:], "", ""]
    (in_dir / "orders.csv").write_text("\n".join(padded) + "\n", encoding="utf-8")
    res = main(write_params(tmp_path, in_dir), tmp_path / "validated")
    assert res.quarantine.empty
    assert res.tables["orders"]["order_id"].tolist() == ["o1", "o2", "o3", "o4", "o5"]
    assert res.report["orders"]["rows_in"] == 5
    assert_report_matches_quarantine_file(tmp_path / "validated")


@pytest.mark.parametrize("table", ["refunds", "reviews", "labels", "buyers"])
def test_header_only_file_is_an_empty_table(tmp_path: Path, table: str) -> None:
    raw = raw_tables()
    raw[table] = raw[table].iloc[0:0]
    _, out = run_files(tmp_path, raw)
    back = pd.read_parquet(out / f"{table}.parquet")
    assert back.empty and list(back.columns) == list(TABLES[table].names)
    assert len(pd.read_parquet(out / "orders.parquet")) == 5
    assert_report_matches_quarantine_file(out)


runner = CliRunner()


def _cli_validate(tmp_path: Path, raw: Tables, edit: Callable[[Path], None],
                  max_reject_share: float = 0.2) -> tuple[int, str]:
    in_dir = write_inputs(tmp_path / "input", raw)
    edit(in_dir)
    params = write_params(tmp_path, in_dir)
    text = params.read_text(encoding="utf-8").replace("max_reject_share: 1.0",
                                                      f"max_reject_share: {max_reject_share}")
    params.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["validate", "--params", str(params), "--out",
                                 str(tmp_path / "validated")])
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "orders.csv: file is empty (no header row)"),
     (b"\xef\xbb\xbf", "orders.csv: file is empty (no header row)"),
     (b"\n\n  \n", "orders.csv: file is empty (no header row)"),
     (b"order_id,buyer_id\no1,b1\n", "orders: required column(s) missing: seller_id"),
     (b'order_id,buyer_id\no1,"b1\no2,b2\n', "cannot read: line 3: unexpected end of data")],
)
def test_unusable_file_gives_one_clear_line(tmp_path: Path, content: bytes,
                                            message: str) -> None:
    code, err = _cli_validate(tmp_path, raw_tables(),
                              lambda d: (d / "orders.csv").write_bytes(content))
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("refundguard: error:"), err
    assert message in lines[0]


def test_header_only_orders_file_refuses_with_the_reason(tmp_path: Path) -> None:
    """No orders at all: every refund and review is an orphan; one line says so."""

    def edit(folder: Path) -> None:
        header = (folder / "orders.csv").read_text(encoding="utf-8").splitlines()[0]
        (folder / "orders.csv").write_text(header + "\n", encoding="utf-8")

    code, err = _cli_validate(tmp_path, raw_tables(), edit)
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "refunds: 4 of 4 rows rejected" in err and "order_id: no such order" in err
    # The quarantine was written first, so the user can see every row and why.
    assert_report_matches_quarantine_file(tmp_path / "validated")


# --- the core function: the clock is an argument -----------------------------------------


@pytest.mark.parametrize(
    ("value", "bad"),
    [("2024-06-30 23:59", False), ("2024-07-02 07:59", False), ("2024-07-02 08:01", True),
     ("2024-07-01T00:00:00+08:00", False), ("2030-01-01", True)],
)
def test_future_limit_is_now_plus_max_future_days(value: str, bad: bool) -> None:
    raw = raw_tables()
    raw["labels"].loc[0, "labeled_at"] = value
    now = pd.Timestamp("2024-07-01 00:00", tz="UTC")
    res = validate_tables(raw, timezone=TZ, max_text_chars=MAX_TEXT, now=now,
                          max_future_days=1.0)
    reasons = res.quarantine["reason"].tolist()
    assert reasons == ([f"labeled_at: in the future {value!r}"] if bad else [])
    # Without a clock the check is off.
    assert validate_tables(raw, timezone=TZ, max_text_chars=MAX_TEXT).quarantine.empty


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_typed_non_finite_amounts(value: float) -> None:
    raw: dict[str, pd.DataFrame | None] = dict(raw_tables())
    orders = raw_tables()["orders"]
    orders["amount"] = orders["amount"].astype("float64")
    orders.loc[1, "amount"] = value
    raw["orders"] = orders
    res = validate_tables(raw, timezone=TZ, max_text_chars=MAX_TEXT)
    reason = res.quarantine.loc[res.quarantine["table"] == "orders", "reason"].tolist()
    assert reason == ["amount: missing" if np.isnan(value) else f"amount: not a number {value!r}"]


def test_validate_refuses_before_reading_with_a_bad_mapping(tmp_path: Path) -> None:
    in_dir = write_inputs(tmp_path / "input", raw_tables())
    params = write_params(tmp_path, in_dir, columns={"orders": {"x": "no_such_column"}})
    from refundguard.errors import ConfigError

    with pytest.raises(ConfigError, match="no_such_column"):
        main(params, tmp_path / "validated")
    assert not (tmp_path / "validated").exists()


def test_gb18030_file_given_by_flag(tmp_path: Path) -> None:
    raw = raw_tables()
    in_dir = write_inputs(tmp_path / "input", raw)
    raw["reviews"].to_csv(in_dir / "reviews.csv", index=False, encoding="gb18030")
    params = write_params(tmp_path, in_dir, encoding="utf-8")
    with pytest.raises(DataContractError, match="cannot decode"):
        main(params, tmp_path / "v1")
    result = runner.invoke(app, ["validate", "--params", str(params), "--encoding", "gb18030",
                                 "--out", str(tmp_path / "v2")])
    # The other files are plain ASCII-compatible UTF-8, which GB18030 reads the same.
    assert result.exit_code == 0, result.stderr
    assert pd.read_parquet(tmp_path / "v2" / "reviews.parquet")["text"].iloc[0] == "质量太差了"
