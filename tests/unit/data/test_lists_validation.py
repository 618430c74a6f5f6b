"""The team's deny and allow lists: read from the data folder in any format, mapped from
Chinese headers, validated with their contract schema; a bad row is quarantined."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from refundguard.config import Params
from refundguard.contract.tables import CONTRACT_TABLES, LIST_TABLES, TABLE_NAMES, TABLES
from refundguard.data.mapping import build_mapping
from refundguard.data.validate import validate_lists, validate_tables
from refundguard.errors import DataContractError

TZ = "Asia/Shanghai"


def _params() -> Params:
    return Params()  # default mapping zh_cn, zone Asia/Shanghai


def test_lists_are_optional_contract_tables_outside_the_model_inputs() -> None:
    assert set(LIST_TABLES) == {"deny_list", "allow_list"}
    for spec in LIST_TABLES.values():
        assert not spec.required
        assert spec.names == ("buyer_id", "added_at", "reason", "added_by")
        assert spec.required_names == ("buyer_id", "added_at", "reason")
    # Lists never feed features or training: the model's tables do not include them.
    assert not set(LIST_TABLES) & set(TABLES) and not set(LIST_TABLES) & set(TABLE_NAMES)
    assert CONTRACT_TABLES == {**TABLES, **LIST_TABLES}


def test_absent_lists_are_fine(tmp_path: Path) -> None:
    result = validate_lists(_params(), tmp_path)
    assert result.tables == {} and result.quarantine.empty and result.report == {}


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet"])
def test_chinese_headers_in_every_format(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame(
        {
            "买家ID": ["B1", "B2"],
            "加入时间": ["2024-05-01 10:00:00", "2024-05-02 08:30:00"],
            "原因": ["多次仅退款未退货", "敲诈差评"],
            "添加人": ["张三", None],
        }
    )
    path = tmp_path / f"deny_list{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False, encoding="utf-8-sig")
    elif suffix == ".xlsx":
        frame.to_excel(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    result = validate_lists(_params(), tmp_path)
    assert set(result.tables) == {"deny_list"}
    deny = result.tables["deny_list"]
    assert deny["buyer_id"].tolist() == ["B1", "B2"]
    assert deny["reason"].tolist() == ["多次仅退款未退货", "敲诈差评"]
    assert deny["added_by"].iloc[0] == "张三" and pd.isna(deny["added_by"].iloc[1])
    # Naive times are local (Asia/Shanghai) and come out in UTC.
    assert deny["added_at"].iloc[0] == pd.Timestamp("2024-05-01 02:00", tz="UTC")
    assert result.report["deny_list"]["mapped_columns"] == {
        "买家ID": "buyer_id", "加入时间": "added_at", "原因": "reason", "添加人": "added_by"
    }


def test_bad_rows_are_quarantined_with_their_reason(tmp_path: Path) -> None:
    pd.DataFrame(
        {
            "buyer_id": ["A1", "", "A3", "A4", "A5"],
            "added_at": ["2024-05-01", "2024-05-01", "not a date", "2024-05-01", "2999-01-01"],
            "reason": ["vip", "vip", "vip", "", "vip"],
        }
    ).to_csv(tmp_path / "allow_list.csv", index=False)
    result = validate_lists(_params(), tmp_path)
    assert result.tables["allow_list"]["buyer_id"].tolist() == ["A1"]
    q = result.quarantine.set_index("row")
    assert set(q["table"]) == {"allow_list"} and set(q["action"]) == {"row_rejected"}
    assert "buyer_id" in q.loc[2, "reason"]
    assert "added_at: unparseable time" in q.loc[3, "reason"]
    assert "reason" in q.loc[4, "reason"]
    assert "added_at: in the future" in q.loc[5, "reason"]
    report = result.report["allow_list"]
    assert report["rows_in"] == 5 and report["rows_valid"] == 1
    assert report["rows_quarantined"] == 4


def test_a_list_without_a_required_column_is_refused(tmp_path: Path) -> None:
    pd.DataFrame({"buyer_id": ["B1"], "reason": ["x"]}).to_csv(
        tmp_path / "deny_list.csv", index=False
    )
    with pytest.raises(DataContractError, match=r"deny_list: required column.*added_at"):
        validate_lists(_params(), tmp_path)


def test_both_lists_and_repeated_buyers(tmp_path: Path) -> None:
    pd.DataFrame(
        {"buyer_id": ["B1", "B1", "B1"], "added_at": ["2024-01-01", "2024-03-01", "2024-03-01"],
         "reason": ["first", "again", "again"]}
    ).to_csv(tmp_path / "deny_list.csv", index=False)
    pd.DataFrame(
        {"buyer_id": ["B1"], "added_at": ["2024-02-01"], "reason": ["ok"]}
    ).to_parquet(tmp_path / "allow_list.parquet", index=False)
    result = validate_lists(_params(), tmp_path)
    assert set(result.tables) == {"deny_list", "allow_list"}
    # A buyer may be listed more than once; exact copies collapse.
    assert len(result.tables["deny_list"]) == 2
    assert result.report["deny_list"]["duplicates_collapsed"] == 1


def test_validate_tables_with_list_specs_and_the_mapping() -> None:
    raw = {"deny_list": pd.DataFrame({"买家账号": ["b9"], "拉黑时间": ["2024-05-01"],
                                      "拉黑原因": ["恶意"], "操作人": ["李四"]})}
    result = validate_tables(raw, timezone=TZ, max_text_chars=100, specs=LIST_TABLES,  # type: ignore[arg-type]
                             mapping=build_mapping("zh_cn", root=Path(".")))
    deny = result.tables["deny_list"]
    assert deny[["buyer_id", "reason", "added_by"]].iloc[0].tolist() == ["b9", "恶意", "李四"]
    # The absent allow list is an empty table of the contract's columns.
    assert result.tables["allow_list"].empty
    assert list(result.tables["allow_list"].columns) == list(LIST_TABLES["allow_list"].names)
