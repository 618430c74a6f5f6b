from __future__ import annotations

import re

import pandas as pd
import pandera.pandas as pa
import pytest
from tests.fixtures import REPO

from refundguard.contract.tables import (
    DTYPES,
    TABLE_NAMES,
    TABLES,
    TIME_DTYPE,
    contract_markdown,
    schema,
)
from refundguard.contract.vocabulary import (
    LABEL_SOURCES,
    LABEL_VALUES,
    REFUND_REASONS,
    REFUND_STATUSES,
    REFUND_TYPES,
)

CONTRACT_DOC = REPO / "docs" / "contract.md"
START, END = "<!-- contract:start -->", "<!-- contract:end -->"

REQUIRED = {
    "orders": ("order_id", "buyer_id", "seller_id", "created_at", "amount"),
    "refunds": ("refund_id", "order_id", "requested_at", "amount", "type", "reason", "status"),
    "reviews": ("review_id", "order_id", "created_at"),
    "labels": ("buyer_id", "label", "labeled_at"),
    "buyers": ("buyer_id",),
}
KEYS = {"orders": "order_id", "refunds": "refund_id", "reviews": "review_id", "labels": None,
        "buyers": "buyer_id"}


def test_table_names() -> None:
    assert list(TABLES) == ["orders", "refunds", "reviews", "labels", "buyers"]
    assert TABLE_NAMES == tuple(TABLES)
    assert {n: t.required for n, t in TABLES.items()} == {
        "orders": True, "refunds": True, "reviews": True, "labels": True, "buyers": False
    }
    for name, spec in TABLES.items():
        assert spec.name == name


@pytest.mark.parametrize("table", list(REQUIRED))
def test_required_columns(table: str) -> None:
    spec = TABLES[table]
    assert spec.required_names == REQUIRED[table]
    # Required columns are not nullable; optional ones are.
    for col in spec.columns:
        assert col.nullable == (not col.required), col.name


@pytest.mark.parametrize("table", list(KEYS))
def test_keys_are_unique_required_columns(table: str) -> None:
    spec = TABLES[table]
    assert spec.key == KEYS[table]
    if spec.key is not None:
        key = spec.column(spec.key)
        assert key.unique and key.required and key.kind == "id"
    assert [c.name for c in spec.columns if c.unique] == ([spec.key] if spec.key else [])


def test_column_lookup() -> None:
    assert TABLES["refunds"].column("type").kind == "enum"
    with pytest.raises(KeyError):
        TABLES["refunds"].column("nope")
    assert TABLES["orders"].names[0] == "order_id"
    assert len(set(TABLES["orders"].names)) == len(TABLES["orders"].names)


def test_enums_match_the_constants() -> None:
    refunds = TABLES["refunds"]
    assert refunds.column("type").values == REFUND_TYPES
    assert refunds.column("reason").values == REFUND_REASONS
    assert refunds.column("status").values == REFUND_STATUSES
    assert TABLES["labels"].column("label").values == LABEL_VALUES
    assert all(source in TABLES["labels"].column("source").description for source in LABEL_SOURCES)
    assert REFUND_TYPES == ("refund_only", "return_refund", "exchange", "compensation")
    assert REFUND_STATUSES == ("pending", "approved", "rejected", "cancelled")
    assert LABEL_VALUES == (0, 1)
    assert "not_received" in REFUND_REASONS and "other" in REFUND_REASONS
    for values in (REFUND_TYPES, REFUND_REASONS, REFUND_STATUSES):
        assert len(set(values)) == len(values)
        # Validation lower-cases enum cells, so the allowed values must be lower case.
        assert all(v == v.lower() for v in values)


def test_ranges() -> None:
    assert TABLES["orders"].column("amount").min_value == 0
    assert TABLES["refunds"].column("amount").min_value == 0
    rating = TABLES["reviews"].column("rating")
    assert (rating.min_value, rating.max_value, rating.kind) == (1, 5, "int")


def test_every_kind_has_a_dtype() -> None:
    kinds = {c.kind for t in TABLES.values() for c in t.columns}
    assert kinds <= set(DTYPES)
    assert DTYPES["time"] == TIME_DTYPE == "datetime64[us, UTC]"


@pytest.mark.parametrize("table", list(TABLES))
def test_schema_builds(table: str) -> None:
    s = schema(table)
    spec = TABLES[table]
    assert isinstance(s, pa.DataFrameSchema)
    assert s.name == table
    assert list(s.columns) == list(spec.names)
    for col in spec.columns:
        assert s.columns[col.name].required == col.required
        assert s.columns[col.name].nullable == col.nullable


def _empty(table: str) -> pd.DataFrame:
    return pd.DataFrame(
        {c.name: pd.Series(dtype=DTYPES[c.kind]) for c in TABLES[table].columns}
    )


@pytest.mark.parametrize("table", list(TABLES))
def test_schema_accepts_an_empty_table_in_contract_dtypes(table: str) -> None:
    schema(table).validate(_empty(table))


def _refund(**overrides: object) -> pd.DataFrame:
    row: dict[str, object] = {
        "refund_id": "r1", "order_id": "o1",
        "requested_at": pd.Timestamp("2024-01-01", tz="UTC"), "amount": 10.0,
        "type": "refund_only", "reason": "damaged", "status": "approved",
    }
    row.update(overrides)
    df = pd.DataFrame([row])
    for c in TABLES["refunds"].columns:
        if c.name in df:
            df[c.name] = df[c.name].astype(DTYPES[c.kind])
    return df


def test_schema_accepts_a_good_refund() -> None:
    schema("refunds").validate(_refund())


@pytest.mark.parametrize(
    "overrides",
    [{"type": "refund_all"}, {"reason": "because"}, {"status": "done"}, {"amount": -1.0},
     {"refund_id": ""}],
)
def test_schema_rejects_bad_refund(overrides: dict[str, object]) -> None:
    with pytest.raises(pa.errors.SchemaError):
        schema("refunds").validate(_refund(**overrides))


@pytest.mark.parametrize(("rating", "ok"), [(1.0, True), (5.0, True), (0.0, False),
                                            (6.0, False), (3.5, False)])
def test_schema_rating(rating: float, ok: bool) -> None:
    df = pd.DataFrame({"review_id": ["v1"], "order_id": ["o1"],
                       "created_at": pd.Series([pd.Timestamp("2024-01-01", tz="UTC")]),
                       "rating": [rating]}).astype({"review_id": "str", "order_id": "str",
                                                    "created_at": TIME_DTYPE})
    if ok:
        schema("reviews").validate(df)
    else:
        with pytest.raises(pa.errors.SchemaError):
            schema("reviews").validate(df)


# --- markdown ---------------------------------------------------------------------------


def _rows(md: str) -> list[list[str]]:
    lines = md.rstrip("\n").split("\n")
    # Split on pipes not escaped with a backslash.
    return [[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in lines]


def test_markdown_header() -> None:
    md = contract_markdown()
    lines = md.split("\n")
    assert lines[0] == "| table | column | type | required | rule | meaning |"
    assert lines[1] == "|---|---|---|---|---|---|"
    assert md.endswith("\n") and not md.endswith("\n\n")


def test_markdown_lists_every_column_of_every_table() -> None:
    rows = _rows(contract_markdown())[2:]
    n_columns = sum(len(t.columns) for t in TABLES.values())
    assert len(rows) == n_columns
    for row in rows:
        assert len(row) == 6, row  # enum values' pipes must be escaped
    listed = [(r[0].removesuffix(" (optional)"), r[1]) for r in rows]
    expected = [(t.name, c.name) for t in TABLES.values() for c in t.columns]
    assert listed == expected
    by_key = {(r[0].removesuffix(" (optional)"), r[1]): r for r in rows}
    for t in TABLES.values():
        for c in t.columns:
            row = by_key[(t.name, c.name)]
            assert row[0] == (t.name if t.required else f"{t.name} (optional)")
            assert row[2] == c.kind
            assert row[3] == ("yes" if c.required else "no")
            assert row[5] == c.description
            assert ("not empty" in row[4]) == (not c.nullable)
            assert ("unique" in row[4]) == c.unique


def test_markdown_rules_show_values_and_ranges() -> None:
    by_key = {(r[0], r[1]): r for r in _rows(contract_markdown())[2:]}
    assert by_key[("refunds", "type")][4] == (
        "refund_only \\| return_refund \\| exchange \\| compensation; not empty"
    )
    assert by_key[("reviews", "rating")][4] == ">= 1; <= 5"
    assert by_key[("orders", "amount")][4] == ">= 0; not empty"
    assert by_key[("orders", "order_id")][4] == "unique; not empty"
    assert by_key[("labels", "label")][4] == "0 \\| 1; not empty"
    assert by_key[("buyers (optional)", "registered_at")][4] == ""


def test_markdown_is_deterministic() -> None:
    assert contract_markdown() == contract_markdown()


def test_docs_contract_section_matches_contract_markdown() -> None:
    assert CONTRACT_DOC.is_file(), (
        f"{CONTRACT_DOC} is missing; it must hold the generated contract table"
    )
    text = CONTRACT_DOC.read_text(encoding="utf-8")
    assert text.count(START) == 1, f"docs/contract.md needs exactly one {START}"
    assert text.count(END) == 1, f"docs/contract.md needs exactly one {END}"
    start = text.index(START) + len(START)
    end = text.index(END)
    assert start <= end, "contract markers are in the wrong order"
    section = text[start:end].strip("\n")
    assert section == contract_markdown().rstrip("\n"), (
        "docs/contract.md's contract table is out of date; run `python scripts/docs.py`"
    )
