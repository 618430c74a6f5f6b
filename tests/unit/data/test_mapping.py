"""Header and value mappings: Chinese exports (CSV in any encoding, Excel) load unchanged."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from tests.fixtures import assert_accounting, raw_tables

from refundguard.config import params_from_dict
from refundguard.contract.tables import TABLES
from refundguard.data.mapping import (
    InputMapping,
    build_mapping,
    header_key,
    layer_from_dict,
    mapping_from_params,
    read_mapping_file,
    shipped_mappings,
    value_key,
)
from refundguard.data.validate import read_tables, validate_tables
from refundguard.errors import ConfigError, DataContractError
from refundguard.stages.validate import main

TZ = "Asia/Shanghai"

# How a Chinese back-end would name the test tables' columns (several spellings per
# column across tables, as real exports do), and write their enum values.
ZH_HEADERS = {
    "orders": {"order_id": "订单编号", "buyer_id": "买家ID", "seller_id": "店铺ID",
               "created_at": "下单时间", "amount": "实付金额", "category": "商品类目",
               "delivered_at": "签收时间"},
    "refunds": {"refund_id": "退款编号", "order_id": "订单号", "requested_at": "申请时间",
                "amount": "退款金额", "type": "售后类型", "reason": "退款原因",
                "status": "退款状态", "resolved_at": "完结时间", "instant": "是否极速退款"},
    "reviews": {"review_id": "评价ID", "order_id": "订单号", "created_at": "评价时间",
                "rating": "评分", "text": "评价内容"},
    "labels": {"buyer_id": "买家ID", "label": "判定结果", "labeled_at": "判定时间",
               "source": "判定来源"},
    "buyers": {"buyer_id": "买家ID", "registered_at": "注册时间"},
}
ZH_VALUES = {
    ("refunds", "type"): {"refund_only": "仅退款", "return_refund": "退货退款",
                          "compensation": "补偿"},
    ("refunds", "reason"): {"damaged": "商品破损", "size_fit": "尺码不合适",
                            "not_received": "未收到货", "quality": "质量问题"},
    ("refunds", "status"): {"approved": "退款成功", "rejected": "卖家拒绝退款",
                            "pending": "等待卖家同意"},
    ("refunds", "instant"): {"true": "是", "false": "否", "0": "否"},
    ("labels", "label"): {"1": "恶意", "0": "正常"},
}


def chinese_tables() -> dict[str, pd.DataFrame]:
    """test_validate's raw tables as a Chinese back-end exports them."""
    out = {}
    for name, df in raw_tables().items():
        df = df.copy()
        for (table, column), values in ZH_VALUES.items():
            if table == name:
                df[column] = df[column].map(lambda v, m=values: m.get(v, v))
        out[name] = df.rename(columns=ZH_HEADERS[name])
    return out


def zh() -> InputMapping:
    return build_mapping("zh_cn", root=Path("."))


@pytest.fixture(scope="module")
def english() -> dict[str, pd.DataFrame]:
    res = validate_tables(raw_tables(), timezone=TZ, max_text_chars=2000)
    assert res.quarantine.empty
    return res.tables


def assert_same_tables(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame]) -> None:
    for name in TABLES:
        pd.testing.assert_frame_equal(got[name], want[name], obj=name)


def test_chinese_headers_and_values_give_the_english_tables(
    english: dict[str, pd.DataFrame],
) -> None:
    raw = chinese_tables()
    # Guard: the test really is about Chinese headers and values.
    assert "售后类型" in raw["refunds"].columns and "仅退款" in set(raw["refunds"]["售后类型"])
    res = validate_tables(raw, timezone=TZ, max_text_chars=2000, mapping=zh())
    assert res.quarantine.empty, res.quarantine
    assert_same_tables(res.tables, english)
    assert res.report["refunds"]["mapped_columns"]["售后类型"] == "type"
    assert res.report["orders"]["ignored_columns"] == []
    assert_accounting(res)


def test_without_the_mapping_the_chinese_file_is_refused() -> None:
    with pytest.raises(DataContractError, match=r"orders: required column\(s\) missing") as info:
        validate_tables(chinese_tables(), timezone=TZ, max_text_chars=2000)
    # The message shows the file's headers and where to map them.
    assert "订单编号" in str(info.value) and "data.columns.orders" in str(info.value)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "gbk"])
def test_chinese_csv_files_in_every_encoding(tmp_path: Path, encoding: str,
                                             english: dict[str, pd.DataFrame]) -> None:
    for name, df in chinese_tables().items():
        df.to_csv(tmp_path / f"{name}.csv", index=False, encoding=encoding)
    # Detected ...
    res = validate_tables(read_tables(tmp_path), timezone=TZ, max_text_chars=2000,
                          mapping=zh())
    assert res.quarantine.empty
    assert_same_tables(res.tables, english)
    # ... or given.
    given = validate_tables(read_tables(tmp_path, encoding=encoding), timezone=TZ,
                            max_text_chars=2000, mapping=zh())
    assert_same_tables(given.tables, english)


def test_excel_exports_load(tmp_path: Path, english: dict[str, pd.DataFrame]) -> None:
    for name, df in chinese_tables().items():
        df.to_excel(tmp_path / f"{name}.xlsx", index=False, engine="openpyxl")
    res = validate_tables(read_tables(tmp_path), timezone=TZ, max_text_chars=2000,
                          mapping=zh())
    assert res.quarantine.empty, res.quarantine
    assert_same_tables(res.tables, english)


def test_excel_typed_cells(tmp_path: Path) -> None:
    """Excel stores dates and numbers as such; they come back as the text the contract reads."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["订单号", "买家ID", "店铺ID", "下单时间", "实付金额"])
    ws.append(["o1", 1001, "s1", pd.Timestamp("2024-01-02 03:04:05").to_pydatetime(), 99.5])
    ws.append([None, None, None, None, None])  # a formatted but empty row
    ws.append(["o2", "b2", "s1", "2024-01-03 10:00", 100])
    wb.save(tmp_path / "orders.xlsx")
    raw = read_tables(tmp_path)["orders"]
    assert raw is not None
    assert raw["买家ID"].tolist() == ["1001", "b2"]
    assert raw["实付金额"].tolist() == ["99.5", "100"]
    mapped = zh().apply("orders", raw).frame
    res = validate_tables({"orders": mapped, "refunds": None, "reviews": None, "labels": None}
                          | {k: pd.DataFrame({c: pd.Series(dtype="str")
                                              for c in TABLES[k].required_names})
                             for k in ("refunds", "reviews", "labels")},
                          timezone=TZ, max_text_chars=2000)
    orders = res.tables["orders"]
    assert orders["created_at"].tolist() == [pd.Timestamp("2024-01-01 19:04:05", tz="UTC"),
                                             pd.Timestamp("2024-01-03 02:00", tz="UTC")]
    assert orders["amount"].tolist() == [99.5, 100.0]


def test_params_mapping_loads_a_file_without_code_changes(tmp_path: Path) -> None:
    """A platform with its own words: params.yaml alone makes the file load."""
    raw = chinese_tables()
    raw["orders"] = raw["orders"].rename(columns={"下单时间": "成交时间"})
    raw["refunds"]["售后类型"] = raw["refunds"]["售后类型"].replace({"仅退款": "只退款不退货"})
    in_dir = tmp_path / "input"
    in_dir.mkdir()
    for name, df in raw.items():
        df.to_csv(in_dir / f"{name}.csv", index=False, encoding="gb18030")
    params = {
        "base": {"timezone": TZ},
        "data": {"input_dir": str(in_dir), "truth_file": None, "mapping": "zh_cn",
                 "columns": {"orders": {"成交时间": "created_at"}},
                 "values": {"refunds": {"type": {"只退款不退货": "refund_only"}}}},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    res = main(path, tmp_path / "out")
    assert res.quarantine.empty
    assert res.tables["refunds"]["type"].tolist()[:2] == ["refund_only", "return_refund"]
    assert res.report["orders"]["mapped_columns"]["成交时间"] == "created_at"
    # Without the params entries, the unknown type is quarantined and the header missing.
    params["data"] = {**params["data"], "columns": {}, "values": {}}
    path.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    with pytest.raises(DataContractError, match="created_at"):
        main(path, tmp_path / "out2")


def test_unknown_enum_value_is_quarantined_unless_mapped() -> None:
    raw = chinese_tables()
    raw["refunds"].loc[1, "售后类型"] = "神秘类型"
    res = validate_tables(raw, timezone=TZ, max_text_chars=2000, mapping=zh())
    q = res.quarantine
    assert q["reason"].tolist() == ["type: unknown value ('神秘类型')"]
    assert "神秘类型" in q["record"].iloc[0] and "售后类型" in q["record"].iloc[0]
    assert_accounting(res)
    extra = layer_from_dict({}, {"refunds": {"type": {"神秘类型": "exchange"}}}, "test")
    mapped = InputMapping((extra, *zh().layers))
    res = validate_tables(raw, timezone=TZ, max_text_chars=2000, mapping=mapped)
    assert res.quarantine.empty
    assert res.tables["refunds"]["type"].iloc[1] == "exchange"


def test_contract_header_wins_and_first_mapping_entry_wins() -> None:
    raw = raw_tables()
    orders = raw["orders"]
    # The file has both the contract's name and a mapped synonym: the contract name is used.
    orders["下单时间"] = "2099-01-01 00:00"
    # Two synonyms of one column: the one listed first in the mapping (实付金额) is used.
    orders = orders.rename(columns={"amount": "订单金额"})
    orders["实付金额"] = orders["订单金额"]
    orders["订单金额"] = "1"
    raw["orders"] = orders
    res = validate_tables(raw, timezone=TZ, max_text_chars=2000, mapping=zh())
    assert res.quarantine.empty
    assert res.tables["orders"]["amount"].tolist() == [100.0, 200.0, 300.0, 400.0, 500.0]
    assert res.report["orders"]["ignored_columns"] == ["订单金额", "下单时间"]
    assert res.report["orders"]["mapped_columns"] == {"实付金额": "amount"}


def test_params_layer_takes_precedence_over_the_file() -> None:
    inline = layer_from_dict({"orders": {"订单金额": "amount"}}, {}, "params")
    mapping = InputMapping((inline, *zh().layers))
    frame = pd.DataFrame({"实付金额": ["1"], "订单金额": ["2"]})
    assert mapping.apply("orders", frame).frame["amount"].tolist() == ["2"]
    assert zh().apply("orders", frame).frame["amount"].tolist() == ["1"]


@pytest.mark.parametrize(
    ("table", "header", "expected"),
    [("orders", "买家ID", "buyer_id"), ("labels", "买家id", "buyer_id"),
     ("orders", " 买家 ID ", "buyer_id"), ("buyers", "买家ＩＤ", "buyer_id"),
     ("refunds", "退款金额（元）", "amount"), ("refunds", "ORDER_ID", "order_id"),
     ("reviews", "\ufeff订单号", "order_id")],
)
def test_headers_match_across_width_case_and_blanks(table: str, header: str,
                                                     expected: str) -> None:
    frame = pd.DataFrame({header: ["x"]})
    assert list(zh().apply(table, frame).frame.columns) == [expected]


def test_all_scope_applies_only_where_the_column_exists() -> None:
    # 买家ID is mapped for every table, but refunds have no buyer_id: it is ignored there.
    mapped = zh().apply("refunds", pd.DataFrame({"买家ID": ["b1"]}))
    assert mapped.frame.columns.empty and mapped.ignored == ["买家ID"]


@pytest.mark.parametrize("value", ["仅退款", " 仅退款 ", "仅退款（未发货）", "仅退款(未发货)"])
def test_values_match_after_normalisation(value: str) -> None:
    frame = pd.DataFrame({"type": [value, None, "exchange"]}, dtype="str")
    out = zh().apply("refunds", frame).frame["type"]
    assert out.iloc[0] == "refund_only"
    assert pd.isna(out.iloc[1]) and out.iloc[2] == "exchange"


def test_apply_does_not_modify_its_input() -> None:
    raw = chinese_tables()["refunds"]
    before = raw.copy()
    zh().apply("refunds", raw)
    pd.testing.assert_frame_equal(raw, before)


def test_typed_columns_pass_through() -> None:
    frame = pd.DataFrame({"判定结果": [1, 0]})
    out = zh().apply("labels", frame).frame
    assert out["label"].tolist() == [1, 0]


def test_duplicate_headers_take_the_leftmost() -> None:
    frame = pd.DataFrame([["a", "b"]], columns=["订单号", "订单号"])
    mapped = zh().apply("refunds", frame)
    assert mapped.frame["order_id"].tolist() == ["a"]
    assert mapped.ignored == ["订单号"]


def test_shipped_mapping_is_listed_and_valid() -> None:
    assert "zh_cn" in shipped_mappings()
    layer = read_mapping_file("zh_cn", Path("."))
    # Every issue example is covered.
    for header in ("订单号", "买家ID", "下单时间"):
        assert header_key(header) in layer.columns["all"] | layer.columns["orders"]
    for header in ("退款金额", "售后类型", "退款原因"):
        assert header_key(header) in layer.columns["refunds"]
    assert layer.values["refunds"]["type"][value_key("仅退款")] == "refund_only"
    assert layer.values["refunds"]["type"][value_key("退货退款")] == "return_refund"
    assert layer.values["refunds"]["reason"][value_key("未收到货")] == "not_received"
    assert layer.values["refunds"]["reason"][value_key("质量问题")] == "quality"


def test_shipped_mapping_is_package_data() -> None:
    import tomllib

    from tests.fixtures import REPO

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["refundguard"]
    assert "data/mappings/*.yaml" in patterns


def test_mapping_from_params_defaults_to_zh_cn() -> None:
    params = params_from_dict({})
    assert params.data.mapping == "zh_cn"
    mapping = mapping_from_params(params.data)
    assert mapping.columns_for("refunds")[header_key("退款金额")] == "amount"
    assert mapping_from_params(params_from_dict({"data": {"mapping": None}}).data).layers == ()


def test_own_mapping_file(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("columns:\n  refunds:\n    工单号: refund_id\n"
                    "values:\n  refunds:\n    status:\n      已完成: approved\n",
                    encoding="utf-8")
    for spec in (str(path), "m.yaml"):
        mapping = build_mapping(spec, root=tmp_path)
        frame = pd.DataFrame({"工单号": ["r1"], "status": ["已完成"]}, dtype="str")
        out = mapping.apply("refunds", frame).frame
        assert out.to_dict("list") == {"refund_id": ["r1"], "status": ["approved"]}


@pytest.mark.parametrize(
    ("columns", "values", "message"),
    [
        ({"orderz": {"x": "order_id"}}, {}, "unknown table 'orderz'"),
        ({"orders": {"x": "order_idd"}}, {}, "'order_idd' is not a contract column"),
        ({"all": {"x": "nonsense"}}, {}, "'nonsense' is not a contract column"),
        ({"orders": ["a"]}, {}, "must be a mapping"),
        ({}, {"refunds": {"type": {"仅退款": "refund"}}}, "'refund' is not one of"),
        ({}, {"refunds": {"kind": {"a": "b"}}}, "'kind' is not a contract column"),
        ({}, {"nope": {}}, "unknown table 'nope'"),
        ({}, {"labels": {"label": {"恶意": 2}}}, "'2' is not one of"),
    ],
)
def test_bad_mappings_are_named(columns: object, values: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        layer_from_dict(columns, values, "params.yaml data")


@pytest.mark.parametrize(
    ("text", "message"),
    [("columns: [1, 2]\n", "must be a mapping"), ("colums: {}\n", "unknown key 'colums'"),
     ("columns: {orders: {a: b\n", "not valid YAML")],
)
def test_bad_mapping_files(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "m.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        read_mapping_file("m.yaml", tmp_path)


def test_missing_mapping_file_names_the_shipped_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mapping file not found: .*zh_cn"):
        build_mapping("nope.yaml", root=tmp_path)


def test_params_block_is_typed() -> None:
    with pytest.raises(ConfigError, match=r"data\.columns"):
        params_from_dict({"data": {"columns": ["x"]}})
    params = params_from_dict({"data": {"values": {"labels": {"label": {"是": 1}}}}})
    assert params.data.values == {"labels": {"label": {"是": "1"}}}


def test_cli_validate_loads_a_chinese_gbk_export_and_shows_the_mapping(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from refundguard.cli import app

    in_dir = tmp_path / "input"
    in_dir.mkdir()
    for name, df in chinese_tables().items():
        df.to_csv(in_dir / f"{name}.csv", index=False, encoding="gbk")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"input_dir": str(in_dir), "truth_file": None}},
                                     allow_unicode=True), encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", "--params", str(params), "--out",
                                      str(tmp_path / "out")])
    assert result.exit_code == 0, result.stderr
    assert "售后类型 -> type" in result.stdout and "退款原因 -> reason" in result.stdout
    refunds = pd.read_parquet(tmp_path / "out" / "refunds.parquet")
    assert refunds["type"].tolist() == ["refund_only", "return_refund", "refund_only",
                                        "compensation"]
