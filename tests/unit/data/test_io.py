from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from refundguard.data.io import (
    atomic_path,
    find_table_file,
    read_json,
    read_raw_table,
    write_csv,
    write_json,
    write_parquet,
    write_table,
    write_text,
)
from refundguard.errors import DataContractError

CSV_TEXT = (
    "review_id,order_id,rating,text\n"
    "v1,o1,1,质量太差了\n"
    "v2,o2,5,很好，物超所值\n"
    "v3,007,,NA\n"
    "v4,o4,3,\n"
)

EXPECTED = pd.DataFrame(
    {
        "review_id": ["v1", "v2", "v3", "v4"],
        "order_id": ["o1", "o2", "007", "o4"],
        "rating": ["1", "5", None, "3"],
        "text": ["质量太差了", "很好，物超所值", "NA", None],
    },
    dtype="str",
)


def _write(path: Path, text: str, encoding: str) -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_auto_encoding_reads_all_identically(tmp_path: Path, encoding: str) -> None:
    path = _write(tmp_path / "reviews.csv", CSV_TEXT, encoding)
    df = read_raw_table(path, encoding="auto")
    pd.testing.assert_frame_equal(df, EXPECTED)
    # The BOM does not leak into the first column name.
    assert list(df.columns) == ["review_id", "order_id", "rating", "text"]


def test_gb18030_file_is_not_valid_utf8(tmp_path: Path) -> None:
    # Guard for the test above: the GB18030 bytes really differ from UTF-8.
    raw = CSV_TEXT.encode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


def test_default_encoding_is_auto(tmp_path: Path) -> None:
    path = _write(tmp_path / "reviews.csv", CSV_TEXT, "gb18030")
    pd.testing.assert_frame_equal(read_raw_table(path), EXPECTED)


@pytest.mark.parametrize("encoding", ["gb18030", "GBK", "utf-8"])
def test_explicit_encoding(tmp_path: Path, encoding: str) -> None:
    path = _write(tmp_path / "reviews.csv", CSV_TEXT, encoding)
    pd.testing.assert_frame_equal(read_raw_table(path, encoding=encoding), EXPECTED)


def test_explicit_wrong_encoding_fails(tmp_path: Path) -> None:
    path = _write(tmp_path / "reviews.csv", CSV_TEXT, "gb18030")
    with pytest.raises(DataContractError, match="cannot decode"):
        read_raw_table(path, encoding="utf-8")


def test_unknown_encoding(tmp_path: Path) -> None:
    path = _write(tmp_path / "reviews.csv", CSV_TEXT, "utf-8")
    with pytest.raises(DataContractError, match="unknown encoding 'no-such-codec'"):
        read_raw_table(path, encoding="no-such-codec")


def test_values_stay_strings(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "id,amount,flag\n007,1.50,TRUE\nnull,NaN,N/A\n", "utf-8")
    df = read_raw_table(path)
    assert df["id"].tolist() == ["007", "null"]
    assert df["amount"].tolist() == ["1.50", "NaN"]
    assert df["flag"].tolist() == ["TRUE", "N/A"]
    assert all(pd.api.types.is_string_dtype(df[c]) for c in df.columns)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(b"")
    with pytest.raises(DataContractError, match="empty") as info:
        read_raw_table(path)
    assert "orders.csv" in str(info.value)


def test_header_only_gives_empty_frame(tmp_path: Path) -> None:
    path = _write(tmp_path / "orders.csv", "order_id,buyer_id,amount\n", "utf-8")
    df = read_raw_table(path)
    assert df.empty
    assert list(df.columns) == ["order_id", "buyer_id", "amount"]


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "a,b\n\n1,x\n\n\n2,y\n\n", "utf-8")
    df = read_raw_table(path)
    assert df["a"].tolist() == ["1", "2"]
    assert df["b"].tolist() == ["x", "y"]
    assert list(df.index) == [0, 1]


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "a,b\r\n1,x\r\n2,y\r\n", "utf-8")
    assert read_raw_table(path)["b"].tolist() == ["x", "y"]


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.txt", "a\n1\n", "utf-8")
    with pytest.raises(DataContractError, match="unsupported"):
        read_raw_table(path)


def test_missing_file_is_a_contract_error(tmp_path: Path) -> None:
    with pytest.raises(DataContractError, match="cannot read"):
        read_raw_table(tmp_path / "absent.csv")


def test_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "orders.parquet"
    path.write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(DataContractError, match=r"orders\.parquet"):
        read_raw_table(path)


def test_parquet_keeps_types_and_gets_a_range_index(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {"a": [1, 2], "t": pd.to_datetime(["2024-01-01", "2024-01-02"]), "s": ["x", "中"]},
        index=[10, 20],
    )
    path = tmp_path / "x.parquet"
    df.to_parquet(path)
    out = read_raw_table(path)
    assert list(out.index) == [0, 1]
    assert out["a"].dtype == "int64"
    assert pd.api.types.is_datetime64_dtype(out["t"])
    assert out["s"].tolist() == ["x", "中"]


# --- find_table_file --------------------------------------------------------------------


def test_find_table_file_absent(tmp_path: Path) -> None:
    assert find_table_file(tmp_path, "orders") is None
    (tmp_path / "orders.xls").write_bytes(b"")
    (tmp_path / "orders.txt").write_bytes(b"")
    (tmp_path / "orders").mkdir()
    assert find_table_file(tmp_path, "orders") is None


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".xlsx"])
def test_find_table_file_present(tmp_path: Path, suffix: str) -> None:
    (tmp_path / f"orders{suffix}").write_bytes(b"x")
    (tmp_path / "refunds.csv").write_bytes(b"x")
    assert find_table_file(tmp_path, "orders") == tmp_path / f"orders{suffix}"


def test_find_table_file_both_present(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_bytes(b"x")
    (tmp_path / "orders.parquet").write_bytes(b"x")
    with pytest.raises(DataContractError) as info:
        find_table_file(tmp_path, "orders")
    assert "orders.csv" in str(info.value) and "orders.parquet" in str(info.value)


# --- atomic writes ----------------------------------------------------------------------


def test_atomic_path_success(tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "out.txt"
    with atomic_path(dest) as tmp:
        assert tmp.parent == dest.parent
        assert tmp != dest
        tmp.write_text("new", encoding="utf-8")
        assert not dest.exists()
    assert dest.read_text(encoding="utf-8") == "new"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["out.txt"]


def test_atomic_path_failure_keeps_old_content(tmp_path: Path) -> None:
    dest = tmp_path / "out.txt"
    dest.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(dest) as tmp:
        tmp.write_text("half-written", encoding="utf-8")
        raise RuntimeError("boom")
    assert dest.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_path_failure_without_old_file(tmp_path: Path) -> None:
    dest = tmp_path / "out.txt"
    with pytest.raises(ValueError), atomic_path(dest) as tmp:
        tmp.write_text("x", encoding="utf-8")
        raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_failed_parquet_write_leaves_old_file(tmp_path: Path) -> None:
    dest = tmp_path / "t.parquet"
    write_parquet(pd.DataFrame({"a": [1]}), dest)
    bad = pd.DataFrame({"a": [object()]})  # pyarrow cannot store this
    with pytest.raises(Exception):  # noqa: B017 - whatever pyarrow raises
        write_parquet(bad, dest)
    assert pd.read_parquet(dest)["a"].tolist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_write_json_is_deterministic_and_keeps_chinese(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_json({"b": 1, "a": {"z": "质量", "y": [1, 2]}}, a)
    write_json({"a": {"y": [1, 2], "z": "质量"}, "b": 1}, b)
    assert a.read_bytes() == b.read_bytes()
    text = a.read_bytes().decode("utf-8")
    assert "质量" in text and "\\u" not in text
    assert text.index('"a"') < text.index('"b"')
    assert text.endswith("\n")
    assert read_json(a) == {"a": {"y": [1, 2], "z": "质量"}, "b": 1}
    assert json.loads(text) == read_json(b)


def test_write_csv_has_bom_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    df = pd.DataFrame({"reason": ["金额: 不是数字", "ok"], "n": [1, 2]})
    write_csv(df, path)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.count(b"\xef\xbb\xbf") == 1
    back = pd.read_csv(path, encoding="utf-8-sig")
    assert list(back.columns) == ["reason", "n"]  # no index column
    assert back["reason"].tolist() == ["金额: 不是数字", "ok"]
    # And our own reader reads it back with "auto".
    assert read_raw_table(path)["reason"].tolist() == ["金额: 不是数字", "ok"]


def test_write_table_dispatches_on_suffix(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": [1, 2]})
    write_table(df, tmp_path / "t.csv")
    write_table(df, tmp_path / "t.parquet")
    assert (tmp_path / "t.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert pd.read_parquet(tmp_path / "t.parquet")["a"].tolist() == [1, 2]


def test_write_text_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    write_text("一", path)
    write_text("二", path)
    assert path.read_text(encoding="utf-8") == "二"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


# --- Excel -----------------------------------------------------------------------------


def _xlsx(path: Path, rows: list[list[object]]) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


def test_xlsx_reads_first_sheet_as_strings(tmp_path: Path) -> None:
    import datetime

    path = _xlsx(tmp_path / "reviews.xlsx", [
        ["review_id", "order_id", "rating", "text"],
        ["v1", "o1", 1, "质量太差了"],
        ["v2", "o2", 5, "很好，物超所值"],
        ["v3", "007", None, "NA"],
        ["v4", "o4", 3, None],
    ])
    pd.testing.assert_frame_equal(read_raw_table(path), EXPECTED)
    typed = _xlsx(tmp_path / "t.xlsx", [["t", "x"], [datetime.datetime(2024, 5, 6, 7, 8), 2.5]])
    assert read_raw_table(typed).to_dict("list") == {"t": ["2024-05-06 07:08:00"], "x": ["2.5"]}


def test_xlsx_empty_workbook_and_header_only(tmp_path: Path) -> None:
    with pytest.raises(DataContractError, match=r"orders\.xlsx: file is empty"):
        read_raw_table(_xlsx(tmp_path / "orders.xlsx", []))
    df = read_raw_table(_xlsx(tmp_path / "refunds.xlsx", [["refund_id", "order_id"]]))
    assert df.empty and list(df.columns) == ["refund_id", "order_id"]


def test_xlsx_blank_rows_are_skipped(tmp_path: Path) -> None:
    path = _xlsx(tmp_path / "t.xlsx", [["a", "b"], [1, "x"], [None, None], ["  ", None],
                                       [2, "y"]])
    assert read_raw_table(path).to_dict("list") == {"a": ["1", "2"], "b": ["x", "y"]}


@pytest.mark.parametrize(("name", "content"), [("t.xlsx", b"not a zip"),
                                               ("t.xlsx", b"PK\x03\x04 broken")])
def test_corrupt_xlsx(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataContractError, match=r"t\.xlsx: cannot read"):
        read_raw_table(path)


def test_old_xls_gets_a_hint(tmp_path: Path) -> None:
    path = _write(tmp_path / "orders.xls", "x", "utf-8")
    with pytest.raises(DataContractError, match=r"save it as \.xlsx or \.csv"):
        read_raw_table(path)


# --- lines that do not fit the header -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "marks"),
    [
        # pandas' own reader refuses these (a later long line) or silently drops a field
        # (the first data line long): both go to the careful reader.
        ("a,b\n1,x\n2,y,z\n3,w\n", [None, "3 fields where the header has 2, extra: ['z']", None]),
        ("a,b\n1,x,z\n2,y\n", ["3 fields where the header has 2, extra: ['z']", None]),
    ],
)
def test_long_lines_are_marked_not_fatal(tmp_path: Path, text: str,
                                         marks: list[str | None]) -> None:
    from refundguard.data.io import MALFORMED_COLUMN

    df = read_raw_table(_write(tmp_path / "t.csv", text, "utf-8"))
    assert df["a"].tolist() == ["1", "2", "3"][: len(marks)]
    assert [None if pd.isna(m) else m for m in df[MALFORMED_COLUMN]] == marks


def test_careful_reader_matches_the_fast_one(tmp_path: Path) -> None:
    """Same strings, blanks and missing cells whichever reader runs."""
    from refundguard.data.io import MALFORMED_COLUMN

    body = CSV_TEXT + "v5,o5,2,\"多行\n评价, 带逗号\"\n\n,,,\nv6,o6\n"
    fast = read_raw_table(_write(tmp_path / "a.csv", body, "gb18030"))
    careful = read_raw_table(_write(tmp_path / "b.csv", body + "v7,o7,1,x,extra\n", "gb18030"))
    assert MALFORMED_COLUMN not in fast.columns
    pd.testing.assert_frame_equal(careful.drop(columns=[MALFORMED_COLUMN]).iloc[:-1], fast)
    assert fast["text"].iloc[4] == "多行\n评价, 带逗号"
    assert fast["review_id"].tolist() == ["v1", "v2", "v3", "v4", "v5", "v6"]
    assert pd.isna(fast["rating"].iloc[5]) and pd.isna(careful["text"].iloc[5])


def test_huge_field_and_nul_bytes(tmp_path: Path) -> None:
    long = "好" * 200_000
    text = f"a,b\n1,{long}\n2,x\x00y\n3,z,extra\n"
    df = read_raw_table(_write(tmp_path / "t.csv", text, "utf-8"))
    assert df["b"].tolist() == [long, "x\x00y", "z"]


def test_repeated_headers_are_numbered_in_both_readers(tmp_path: Path) -> None:
    fast = read_raw_table(_write(tmp_path / "a.csv", "a,a,b\n1,2,3\n", "utf-8"))
    careful = read_raw_table(_write(tmp_path / "b.csv", "a,a,b\n1,2,3\n4,5,6,7\n", "utf-8"))
    assert list(fast.columns) == ["a", "a.1", "b"]
    assert list(careful.columns)[:3] == ["a", "a.1", "b"]


# --- leftovers of killed writers ------------------------------------------------------


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    import os

    dest = tmp_path / "out.parquet"
    stale = tmp_path / f".out.parquet.{_dead_pid()}.abc123.tmp"
    alive = tmp_path / f".out.parquet.{os.getppid()}.def456.tmp"  # a live process's
    other = tmp_path / f".other.parquet.{_dead_pid()}.x.tmp"  # another file's
    for p in (stale, alive, other):
        p.write_bytes(b"half")
    write_parquet(pd.DataFrame({"a": [1]}), dest)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([dest.name, alive.name, other.name])


def test_temporary_name_carries_the_pid(tmp_path: Path) -> None:
    import os

    with atomic_path(tmp_path / "x.csv") as tmp:
        assert tmp.name.startswith(f".x.csv.{os.getpid()}.") and tmp.name.endswith(".tmp")


def test_quote_left_open_is_a_clear_error_not_a_swallowed_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "reviews.csv", 'a,b\n1,x\n2,"unclosed\n3,z\n4,w\n', "utf-8")
    with pytest.raises(DataContractError, match=r"reviews\.csv: cannot read: line \d+: "
                                                r"unexpected end of data"):
        read_raw_table(path)
