"""The data contract: one pandera schema per input table, the single source of truth.

Readers coerce raw columns to the dtypes below, then :mod:`refundguard.validate` runs
these schemas lazily and quarantines each failing row with its reason. The README's
column table is generated from here by :func:`contract_markdown` (a test keeps the two
in step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import pandera.pandas as pa

from refundguard.contract.vocabulary import (
    LABEL_SOURCES,
    LABEL_VALUES,
    REFUND_REASONS,
    REFUND_STATUSES,
    REFUND_TYPES,
)

ColumnKind = Literal["id", "text", "time", "amount", "int", "bool", "enum"]


# Dtypes after reading; every table is brought to these before validation.
TIME_DTYPE: Final = "datetime64[us, UTC]"


DTYPES: Final[dict[str, str]] = {
    "id": "str",
    "text": "str",
    "enum": "str",
    "time": TIME_DTYPE,
    "amount": "float64",
    "int": "float64",  # float so that missing values survive; integrality is a check
    "bool": "boolean",
}


@dataclass(frozen=True)
class ColumnSpec:
    """What the contract says of one column.

    Attributes:
        name: Column name in the file.
        kind: How the column is parsed (id, text, time, amount, int, bool, enum).
        required: A file without this column is unusable.
        nullable: Missing values are allowed.
        unique: Values must be unique across the table.
        description: Plain-language meaning, for the README.
        values: Allowed values, for enums and labels.
        min_value: Smallest allowed value.
        max_value: Largest allowed value.
    """

    name: str
    kind: ColumnKind
    required: bool
    nullable: bool
    description: str
    unique: bool = False
    values: tuple[str | int, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None


@dataclass(frozen=True)
class TableSpec:
    """A table of the contract.

    Attributes:
        name: Table name; the file is ``<name>.csv`` or ``<name>.parquet``.
        required: The pipeline needs this table.
        key: Column whose values identify a row, if any.
        description: What one row is.
        columns: Columns in file order.
    """

    name: str
    required: bool
    key: str | None
    description: str
    columns: tuple[ColumnSpec, ...]

    def column(self, name: str) -> ColumnSpec:
        """The spec of one column.

        Args:
            name: Column name.

        Returns:
            Its spec.

        Raises:
            KeyError: No such column in this table.
        """
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in contract order."""
        return tuple(c.name for c in self.columns)

    @property
    def required_names(self) -> tuple[str, ...]:
        """Names of the columns a file must have."""
        return tuple(c.name for c in self.columns if c.required)


def _c(
    name: str,
    kind: ColumnKind,
    description: str,
    *,
    required: bool = True,
    nullable: bool | None = None,
    unique: bool = False,
    values: tuple[str | int, ...] | None = None,
    min_value: float | None = None,
    max_value: float | None = None,
) -> ColumnSpec:
    return ColumnSpec(
        name=name,
        kind=kind,
        required=required,
        nullable=(not required) if nullable is None else nullable,
        description=description,
        unique=unique,
        values=values,
        min_value=min_value,
        max_value=max_value,
    )


ORDERS = TableSpec(
    name="orders",
    required=True,
    key="order_id",
    description="One row per order placed by a buyer.",
    columns=(
        _c("order_id", "id", "Order id.", unique=True),
        _c("buyer_id", "id", "Buyer account id."),
        _c("seller_id", "id", "Seller (shop) id."),
        _c("created_at", "time", "When the order was paid (下单时间)."),
        _c("amount", "amount", "Order value in CNY.", min_value=0.0),
        _c("category", "text", "Product category.", required=False),
        _c("shipped_at", "time", "When the parcel left the seller.", required=False),
        _c("delivered_at", "time", "When the parcel was signed for.", required=False),
        _c("device_id", "id", "Device the order was placed from.", required=False),
        _c("address_id", "id", "Delivery address id.", required=False),
        _c("payment_id", "id", "Payment instrument id.", required=False),
    ),
)


REFUNDS = TableSpec(
    name="refunds",
    required=True,
    key="refund_id",
    description="One row per after-sales request (售后申请).",
    columns=(
        _c("refund_id", "id", "After-sales request id.", unique=True),
        _c("order_id", "id", "Order the request is about; must exist in orders."),
        _c("requested_at", "time", "When the buyer asked; not before the order."),
        _c("amount", "amount", "Amount asked for; not above the order's amount.", min_value=0.0),
        _c(
            "type",
            "enum",
            "refund_only 仅退款, return_refund 退货退款, exchange 换货, compensation 补偿.",
            values=REFUND_TYPES,
        ),
        _c("reason", "enum", "Reason the buyer chose.", values=REFUND_REASONS),
        _c("status", "enum", "Outcome as last known.", values=REFUND_STATUSES),
        _c("resolved_at", "time", "When the status became final (knowledge time).", required=False),
        _c("instant", "bool", "Auto-approved instant refund (极速退款).", required=False),
        _c("reason_text", "text", "Buyer's free-text explanation.", required=False),
    ),
)


REVIEWS = TableSpec(
    name="reviews",
    required=True,
    key="review_id",
    description="One row per product review.",
    columns=(
        _c("review_id", "id", "Review id.", unique=True),
        _c("order_id", "id", "Order reviewed; must exist in orders."),
        _c("created_at", "time", "When the review was posted."),
        _c("rating", "int", "Stars, 1 to 5.", required=False, min_value=1, max_value=5),
        _c("text", "text", "Review text, any language.", required=False),
    ),
)


LABELS = TableSpec(
    name="labels",
    required=True,
    key=None,
    description="One row per decision about a buyer; a buyer may have several.",
    columns=(
        _c("buyer_id", "id", "Buyer account id."),
        _c("label", "int", "1 confirmed abuser, 0 confirmed legitimate.", values=LABEL_VALUES),
        _c("labeled_at", "time", "When the decision was made (knowledge time)."),
        _c(
            "source",
            "text",
            f"Who decided: {', '.join(LABEL_SOURCES)}, ...",
            required=False,
        ),
    ),
)


BUYERS = TableSpec(
    name="buyers",
    required=False,
    key="buyer_id",
    description="Optional: one row per buyer account.",
    columns=(
        _c("buyer_id", "id", "Buyer account id.", unique=True),
        _c("registered_at", "time", "When the account was opened.", required=False),
    ),
)


TABLES: Final[dict[str, TableSpec]] = {
    t.name: t for t in (ORDERS, REFUNDS, REVIEWS, LABELS, BUYERS)
}


# Every table name, in contract order; the specs above are where each name is declared.
TABLE_NAMES: Final[tuple[str, ...]] = tuple(TABLES)


def _list_table(name: str, zh: str, effect: str) -> TableSpec:
    return TableSpec(
        name=name,
        required=False,
        key=None,
        description=f"Optional: the team's {zh}; one row per entry. {effect}",
        columns=(
            _c("buyer_id", "id", "Buyer account id."),
            _c("added_at", "time", "When the buyer was put on the list; applies from then on."),
            _c("reason", "text", "Why, in the team's words; shown next to the override."),
            _c("added_by", "text", "Who put the buyer on the list.", required=False),
        ),
    )


DENY_LIST = _list_table(
    "deny_list", "deny list (黑名单)", "A listed buyer is placed in restrict, whatever the score."
)


ALLOW_LIST = _list_table(
    "allow_list",
    "allow list (白名单)",
    "A listed buyer is placed at most in standard, whatever the score.",
)


# The team's own lists: read and validated like the tables above, but applied only when
# scoring (:mod:`refundguard.serving.lists`); they never feed features or training, so
# they are not in TABLES/TABLE_NAMES, which the simulator, features and training read.
LIST_TABLES: Final[dict[str, TableSpec]] = {t.name: t for t in (DENY_LIST, ALLOW_LIST)}


# Every table the contract knows: the model's inputs, then the lists.
CONTRACT_TABLES: Final[dict[str, TableSpec]] = {**TABLES, **LIST_TABLES}


def _checks(col: ColumnSpec) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if col.values is not None:
        if col.kind == "int":
            allowed = [float(v) for v in col.values]
            checks.append(pa.Check.isin(allowed, error=f"must be one of {list(col.values)}"))
        else:
            checks.append(pa.Check.isin(list(col.values), error="unknown value"))
    if col.min_value is not None:
        checks.append(pa.Check.ge(col.min_value, error=f"must be >= {col.min_value:g}"))
    if col.max_value is not None:
        checks.append(pa.Check.le(col.max_value, error=f"must be <= {col.max_value:g}"))
    if col.kind == "int":
        checks.append(
            pa.Check(lambda s: s.isna() | (s == s.round()), element_wise=False, error="not whole")
        )
    if col.kind in ("id", "text", "enum") and not col.nullable:
        checks.append(pa.Check.str_length(min_value=1, error="empty"))
    return checks


def schema(table: str) -> pa.DataFrameSchema:
    """The pandera schema of one contract table.

    Args:
        table: Table name (orders, refunds, reviews, labels, buyers, deny_list,
            allow_list).

    Returns:
        A schema over the coerced dtypes. Optional columns are not required to be
        present; uniqueness of keys is enforced by :mod:`refundguard.validate`, which
        first collapses exact duplicate rows.
    """
    spec = CONTRACT_TABLES[table]
    return pa.DataFrameSchema(
        {
            c.name: pa.Column(
                DTYPES[c.kind],
                checks=_checks(c),
                nullable=c.nullable,
                required=c.required,
                description=c.description,
            )
            for c in spec.columns
        },
        name=table,
        strict=False,
    )


def contract_markdown() -> str:
    """Render the contract as the README's markdown table.

    Returns:
        One markdown table listing every column of every table.
    """
    lines = [
        "| table | column | type | required | rule | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for spec in TABLES.values():
        for c in spec.columns:
            rules: list[str] = []
            if c.unique:
                rules.append("unique")
            if c.values is not None:
                rules.append(" \\| ".join(str(v) for v in c.values))
            if c.min_value is not None:
                rules.append(f">= {c.min_value:g}")
            if c.max_value is not None:
                rules.append(f"<= {c.max_value:g}")
            if not c.nullable:
                rules.append("not empty")
            table_name = spec.name if spec.required else f"{spec.name} (optional)"
            lines.append(
                f"| {table_name} | {c.name} | {c.kind} | {'yes' if c.required else 'no'} "
                f"| {'; '.join(rules)} | {c.description} |"
            )
    return "\n".join(lines) + "\n"
