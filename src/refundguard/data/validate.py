"""Validate stage: bring raw tables to the data contract, quarantining bad rows.

Every input row ends in exactly one place: the validated table, the quarantine file
(with its reasons), or the count of exact duplicates collapsed into an identical row.
A table is refused as a whole only when it is unusable (a required column is missing,
the file cannot be read, or more than ``validate.max_reject_share`` of its rows fail).

A bad value in a required field rejects its row. A value of an optional (nullable)
field that is unusable in itself (unparseable, out of range, in the future) is set to
null and the row kept, since rejecting the row would lose a real order and everything
tied to it; the quarantine file still lists that row with ``action`` ``field_nulled``,
its reasons and its raw record, so that nothing is hidden. A contradiction between two
fields (delivered before created) rejects the row: which of the two is wrong is unknown.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pandera.pandas as pa

from refundguard.config import Params
from refundguard.contract.tables import (
    DTYPES,
    LIST_TABLES,
    TABLES,
    TIME_DTYPE,
    ColumnSpec,
    TableSpec,
    schema,
)
from refundguard.data.frames import isin
from refundguard.data.io import (
    MALFORMED_COLUMN,
    find_table_file,
    read_raw_table,
    write_csv,
    write_json,
    write_parquet,
)
from refundguard.data.mapping import InputMapping, mapping_from_params
from refundguard.errors import ConfigError, DataContractError
from refundguard.paths import (
    QUARANTINE_FILE_NAME,
    VALIDATED_TABLE_SUFFIX,
    VALIDATION_REPORT_FILE_NAME,
)

QUARANTINE_COLUMNS: tuple[str, ...] = ("table", "row", "action", "reason", "record")


ROW_REJECTED = "row_rejected"


FIELD_NULLED = "field_nulled"


_TZ_SUFFIX = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


_TRUE = {"true", "t", "1", "yes", "y", "是", "真"}


_FALSE = {"false", "f", "0", "no", "n", "否", "假"}


@dataclass(frozen=True)
class ValidationResult:
    """What validation produced.

    Attributes:
        tables: Contract-conforming tables, keyed by name, in contract dtypes (times UTC).
        quarantine: One row per input row that was rejected or kept with fields nulled:
            table, row (1-based data row in its file), action (``row_rejected`` or
            ``field_nulled``), reason (all reasons joined by "; ", each naming the field
            and quoting the raw value), record (the raw row as JSON).
        report: Per table: rows_in, rows_valid, rows_quarantined (rejected rows),
            duplicates_collapsed, reasons (count of rejected rows per reason),
            rows_fields_nulled (kept rows with at least one field nulled), fields_nulled
            (count of kept rows per field reason), ignored_columns, mapped_columns
            ({header in the file: contract column} for headers a mapping renamed).
            rows_in = rows_valid + rows_quarantined + duplicates_collapsed.
    """

    tables: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    report: dict[str, dict[str, Any]] = field(default_factory=dict)


def check_timezone(timezone: str) -> ZoneInfo:
    """Resolve a time-zone name.

    Args:
        timezone: IANA name such as "Asia/Shanghai".

    Returns:
        The zone.

    Raises:
        ConfigError: Unknown zone.
    """
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {timezone!r}") from exc


def _as_text(s: pd.Series) -> pd.Series:
    """Strings with surrounding blanks removed and blank cells missing."""
    if not (pd.api.types.is_string_dtype(s) or s.dtype == object):
        s = s.astype("str")
    out = s.astype("str").str.strip()
    return out.mask(out == "")


def _parse_time(s: pd.Series, tz: ZoneInfo) -> pd.Series:
    """Parse times; naive ones are wall-clock times in ``tz``. Failures become NaT."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC").dt.as_unit("us")
    if pd.api.types.is_datetime64_dtype(s):
        local = s.dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
        return local.dt.tz_convert("UTC").dt.as_unit("us")
    text = _as_text(s)
    out = pd.Series(pd.NaT, index=s.index, dtype=TIME_DTYPE)
    aware = text.str.contains(_TZ_SUFFIX, na=False)
    if aware.any():
        parsed = pd.to_datetime(text[aware], format="ISO8601", errors="coerce", utc=True)
        out[aware] = parsed.dt.as_unit("us")
    naive = text.notna() & ~aware
    if naive.any():
        parsed = pd.to_datetime(text[naive], format="ISO8601", errors="coerce")
        retry = parsed.isna()
        if retry.any():
            parsed[retry] = pd.to_datetime(text[naive][retry], format="mixed", errors="coerce")
        local = parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
        out[naive] = local.dt.tz_convert("UTC").dt.as_unit("us")
    return out


def _parse_number(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        out = s.astype("float64")
    else:
        # Chinese exports often write money as "¥1,299.00".
        text = _as_text(s).str.replace(r"[¥￥,，\s]", "", regex=True)
        out = pd.to_numeric(text, errors="coerce").astype("float64")
    # "inf" and 1e999 parse, but no amount, rating or label is infinite.
    return out.mask(np.isinf(out.to_numpy()))


def _parse_bool(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s):
        return s.astype("boolean")
    text = _as_text(s).str.lower()
    out = pd.Series(pd.NA, index=s.index, dtype="boolean")
    out[isin(text, _TRUE)] = True
    out[isin(text, _FALSE)] = False
    return out


def _clean_text(s: pd.Series, max_chars: int) -> pd.Series:
    text = _as_text(s)
    return text.str.replace(_CONTROL, "", regex=True).str.slice(0, max_chars)


def _coerce_column(
    raw: pd.Series, col: ColumnSpec, tz: ZoneInfo, max_chars: int
) -> tuple[pd.Series, pd.Series]:
    """Coerce one column; also return a mask of cells that held an unparseable value."""
    if col.kind == "time":
        out = _parse_time(raw, tz)
    elif col.kind in ("amount", "int"):
        out = _parse_number(raw)
    elif col.kind == "bool":
        out = _parse_bool(raw)
    elif col.kind == "text":
        out = _clean_text(raw, max_chars)
    elif col.kind == "enum":
        out = _as_text(raw).str.lower()
    else:
        out = _as_text(raw)
    present = raw.notna()
    if raw.dtype == object or pd.api.types.is_string_dtype(raw):
        present &= _as_text(raw).notna()
    bad = present & out.isna()
    return out.astype(DTYPES[col.kind]), bad


def _record_json(raw: pd.DataFrame, rows: list[int]) -> list[str]:
    sub = raw.loc[rows]
    records = sub.astype(object).where(sub.notna(), None).to_dict(orient="records")
    return [json.dumps(r, ensure_ascii=False, default=str, sort_keys=False) for r in records]


class _Reasons:
    """Reasons per (table, row), collected across all the checks.

    ``by_table`` rejects rows; ``nulled`` only records optional fields that were set to
    null, and rejects nothing.
    """

    def __init__(self) -> None:
        self.by_table: dict[str, dict[int, list[str]]] = defaultdict(dict)
        self.nulled: dict[str, dict[int, list[str]]] = defaultdict(dict)
        # Cells whose raw value could not be used; their "missing" follow-up is noise.
        self.cells: set[tuple[str, int, str]] = set()

    def add(self, table: str, rows: pd.Index | np.ndarray | list[int], reason: str) -> None:
        bucket = self.by_table[table]
        for r in rows:
            bucket.setdefault(int(r), []).append(reason)

    def null(self, table: str, row: int, column: str, reason: str) -> None:
        self.nulled[table].setdefault(int(row), []).append(reason)
        self.cells.add((table, int(row), column))

    def bad_value(self, table: str, row: int, col: ColumnSpec, reason: str) -> None:
        """An unusable value: its field is nulled if the contract allows, else the row goes."""
        if col.nullable:
            self.null(table, row, col.name, reason)
        else:
            self.add(table, [row], reason)
            self.cells.add((table, int(row), col.name))

    def forget(self, table: str, row: int) -> None:
        self.by_table.get(table, {}).pop(int(row), None)
        self.nulled.get(table, {}).pop(int(row), None)

    def rows(self, table: str) -> set[int]:
        return set(self.by_table.get(table, {}))


def _pandera_failures(df: pd.DataFrame, table: str) -> list[tuple[int, str, str]]:
    try:
        schema(table).validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        out: list[tuple[int, str, str]] = []
        for rec in cases.itertuples(index=False):
            idx = rec.index
            if idx is None or (isinstance(idx, float) and np.isnan(idx)):
                # A whole-column failure means our own coercion is wrong, not the data.
                raise RuntimeError(f"{table}: column-level contract failure: {rec}") from exc
            check = str(rec.check)
            if check == "not_nullable":
                reason = f"{rec.column}: missing"
            else:
                reason = f"{rec.column}: {check} ({rec.failure_case!r})"
            out.append((int(idx), str(rec.column), reason))
        return out
    return []


def _coerce_table(
    raw: pd.DataFrame,
    spec: TableSpec,
    tz: ZoneInfo,
    max_chars: int,
    reasons: _Reasons,
    latest: pd.Timestamp | None,
    headers: list[str],
) -> pd.DataFrame:
    """Coerce a table whose headers are contract names; ``headers`` are the file's own."""
    missing = [c for c in spec.required_names if c not in raw.columns]
    if missing:
        raise DataContractError(
            f"{spec.name}: required column(s) missing: {', '.join(missing)} "
            f"(found: {', '.join(headers) or 'none'}); if the file names it otherwise, "
            f"map that header under data.columns.{spec.name} in params.yaml"
        )
    out = {}
    for col in spec.columns:
        if col.name in raw.columns:
            series, bad = _coerce_column(raw[col.name], col, tz, max_chars)
            if bad.any():
                what = {"time": "unparseable time", "bool": "not true/false"}.get(
                    col.kind, "not a number" if col.kind in ("amount", "int") else "bad value"
                )
                for row in np.flatnonzero(bad.to_numpy()):
                    value = _plain(raw[col.name].iloc[row])
                    reasons.bad_value(spec.name, int(row), col, f"{col.name}: {what} {value!r}")
            if col.kind == "time" and latest is not None:
                future = (series > latest).fillna(False).to_numpy(dtype=bool)
                for row in np.flatnonzero(future):
                    value = _plain(raw[col.name].iloc[row])
                    if col.nullable:
                        reasons.null(
                            spec.name, int(row), col.name, f"{col.name}: in the future {value!r}"
                        )
                    else:
                        reasons.add(spec.name, [row], f"{col.name}: in the future {value!r}")
                if col.nullable and future.any():
                    series = series.mask(future)
        else:
            # An absent optional column is all missing (pd.NA cannot be cast to float64).
            series = pd.Series(index=raw.index, dtype=DTYPES[col.kind])
        out[col.name] = series
    return pd.DataFrame(out, index=raw.index)


def _collapse_duplicates(
    df: pd.DataFrame,
    raw: pd.DataFrame,
    spec: TableSpec,
    reasons: _Reasons,
    malformed: np.ndarray,
) -> tuple[pd.DataFrame, int]:
    """Drop exact duplicate rows; quarantine rows whose key repeats with other values.

    Malformed lines are never taken for copies: what they hold is uncertain.
    """
    failed = [(row, col) for (table, row, col) in reasons.cells if table == spec.name]
    if failed:
        # Unparseable cells are missing after coercion; compare their raw text instead,
        # so that rows with different bad values are not taken for copies.
        key = df.astype(object)
        for row, col in failed:
            key.at[row, col] = f"\x00{raw.at[row, col]}"
        exact = key.duplicated(keep="first")
    else:
        exact = df.duplicated(keep="first")
    exact &= ~malformed
    n_exact = int(exact.sum())
    # A collapsed copy is accounted for by the count; the copy that stays carries any
    # reasons, so that each input row is counted exactly once.
    for row in df.index[exact]:
        reasons.forget(spec.name, int(row))
    df = df[~exact]
    if spec.key is not None:
        keyed = df[spec.key].notna()
        conflicting = df[keyed & df[spec.key].duplicated(keep=False)]
        if len(conflicting):
            reasons.add(
                spec.name, conflicting.index, f"{spec.key}: duplicate id with different values"
            )
    return df, n_exact


def _cross_table_checks(tables: dict[str, pd.DataFrame], reasons: _Reasons) -> None:
    """Rules that span tables or columns: orphans, order of events, amounts."""
    orders = tables["orders"]
    bad_delivery = (orders["delivered_at"] < orders["created_at"]).fillna(False)
    reasons.add(
        "orders", orders.index[bad_delivery.to_numpy(dtype=bool)], "delivered before created"
    )
    # Only orders that survive every check may anchor refunds and reviews.
    ok_orders = orders.drop(index=list(reasons.rows("orders")), errors="ignore")
    ok_ids = pd.Index(ok_orders["order_id"].to_numpy(dtype=object))
    ok_time = ok_orders["created_at"].to_numpy()
    ok_amount = ok_orders["amount"].to_numpy(dtype="float64")

    for name, time_col in (("refunds", "requested_at"), ("reviews", "created_at")):
        df = tables[name]
        pos = ok_ids.get_indexer(df["order_id"].to_numpy(dtype=object))
        known = pos >= 0
        quarantined_order = isin(df["order_id"], orders["order_id"]) & ~known
        orphan = ~known & ~quarantined_order & df["order_id"].notna().to_numpy()
        reasons.add(name, df.index[orphan], "order_id: no such order")
        reasons.add(name, df.index[quarantined_order], "order_id: its order was quarantined")
        if len(ok_ids) and known.any():
            placed = ok_time[np.where(known, pos, 0)]
            before = known & (df[time_col].to_numpy() < placed)
            reasons.add(name, df.index[before], f"{time_col}: before its order was created")
            if name == "refunds":
                limit = ok_amount[np.where(known, pos, 0)] + 1e-9
                above = known & (df["amount"].to_numpy(dtype="float64") > limit)
                reasons.add(name, df.index[above], "amount: above the order's amount")

    refunds = tables["refunds"]
    early = (refunds["resolved_at"] < refunds["requested_at"]).fillna(False)
    reasons.add(
        "refunds", refunds.index[early.to_numpy(dtype=bool)], "resolved_at: before requested_at"
    )

    # A label about an account the platform never mentions elsewhere is a typo or a
    # foreign id: it would teach the model about nobody, or about the wrong buyer.
    labels = tables["labels"]
    known_buyers = pd.concat([orders["buyer_id"], tables["buyers"]["buyer_id"]]).dropna().unique()
    unknown = labels["buyer_id"].notna().to_numpy(dtype=bool) & ~isin(
        labels["buyer_id"], known_buyers
    )
    reasons.add(
        "labels", labels.index[unknown], "buyer_id: unknown buyer (in no order and not in buyers)"
    )


def validate_tables(
    raw_tables: dict[str, pd.DataFrame | None],
    *,
    timezone: str,
    max_text_chars: int,
    mapping: InputMapping | None = None,
    now: pd.Timestamp | None = None,
    max_future_days: float = 1.0,
    specs: Mapping[str, TableSpec] = TABLES,
) -> ValidationResult:
    """Bring raw tables to the contract; every row is kept, quarantined or collapsed.

    Args:
        raw_tables: Raw frames by table name, as read from files (CSV as strings);
            None or absent for an optional table that has no file. Not modified.
        timezone: Zone of naive timestamps; every time comes out in UTC.
        max_text_chars: Texts are cut to this length after control characters go.
        mapping: Renames headers and translates values first (see
            :mod:`refundguard.mapping`); None maps nothing. The quarantine shows rows as
            the file held them.
        now: The time of the run; a time later than ``now`` plus ``max_future_days`` is
            quarantined. None skips that check.
        max_future_days: How far after ``now`` a time may lie (clock skew, time zones).
        specs: The tables to validate: the model's inputs (``TABLES``, with the checks
            across them), or the team's lists (``LIST_TABLES``, each on its own).

    Returns:
        The validated tables, the quarantine and the report.

    Raises:
        DataContractError: A required table is absent or misses a required column.
        ConfigError: Unknown time zone.
    """
    tz = check_timezone(timezone)
    mapping = mapping if mapping is not None else InputMapping()
    latest = None if now is None else _utc(now) + pd.Timedelta(days=max_future_days)
    reasons = _Reasons()
    coerced: dict[str, pd.DataFrame] = {}
    raws: dict[str, pd.DataFrame] = {}
    report: dict[str, dict[str, Any]] = {}
    for name, spec in specs.items():
        raw = raw_tables.get(name)
        if raw is None:
            if spec.required:
                raise DataContractError(f"{name}: table is missing (no {name}.csv or .parquet)")
            raw = pd.DataFrame({c: pd.Series(dtype="str") for c in spec.required_names})
        raw = raw.reset_index(drop=True)
        raw.columns = [str(c).strip().lstrip("\ufeff") for c in raw.columns]
        raws[name] = raw
        malformed = np.zeros(len(raw), dtype=bool)
        if MALFORMED_COLUMN in raw.columns:
            marks = raw[MALFORMED_COLUMN]
            malformed = marks.notna().to_numpy(dtype=bool)
            for line in np.flatnonzero(malformed):
                reasons.add(name, [line], f"malformed line: {marks.iloc[line]}")
            raw = raw.drop(columns=[MALFORMED_COLUMN])
        mapped = mapping.apply(name, raw)
        df = _coerce_table(
            mapped.frame, spec, tz, max_text_chars, reasons, latest, list(map(str, raw.columns))
        )
        df, n_exact = _collapse_duplicates(df, mapped.frame, spec, reasons, malformed)
        to_null: dict[str, list[int]] = defaultdict(list)
        for row, column, reason in _pandera_failures(df, name):
            if (name, row, column) not in reasons.cells:
                reasons.bad_value(name, row, spec.column(column), reason)
                if spec.column(column).nullable:
                    to_null[column].append(row)
        for column, rows in to_null.items():
            df = df.assign(**{column: df[column].mask(df.index.isin(rows))})
        coerced[name] = df
        report[name] = {
            "rows_in": len(raw),
            "duplicates_collapsed": n_exact,
            "ignored_columns": mapped.ignored,
            "mapped_columns": mapped.renamed,
        }

    if "orders" in coerced:
        _cross_table_checks(coerced, reasons)

    tables: dict[str, pd.DataFrame] = {}
    quarantine_parts: list[pd.DataFrame] = []
    for name, df in coerced.items():
        table_reasons = reasons.by_table.get(name, {})
        table_nulled = reasons.nulled.get(name, {})
        bad_rows = sorted(table_reasons)
        # A rejected row lists its nulled fields too: all it held that was wrong.
        row_reasons = {r: [*table_reasons[r], *table_nulled.get(r, [])] for r in bad_rows}
        kept_rows = sorted(set(table_nulled) - set(table_reasons))
        row_reasons.update({r: table_nulled[r] for r in kept_rows})
        listed = sorted(row_reasons)
        tables[name] = df.drop(index=bad_rows, errors="ignore").reset_index(drop=True)
        if listed:
            quarantine_parts.append(
                pd.DataFrame(
                    {
                        "table": name,
                        "row": np.asarray(listed, dtype="int64") + 1,
                        "action": [
                            ROW_REJECTED if r in table_reasons else FIELD_NULLED for r in listed
                        ],
                        # Deduplicated per row but kept in the order they were found.
                        "reason": ["; ".join(dict.fromkeys(row_reasons[r])) for r in listed],
                        "record": _record_json(raws[name], listed),
                    }
                )
            )
        report[name].update(
            rows_valid=len(tables[name]),
            rows_quarantined=len(bad_rows),
            reasons=_count_kinds(row_reasons[r] for r in bad_rows),
            rows_fields_nulled=len(kept_rows),
            fields_nulled=_count_kinds(row_reasons[r] for r in kept_rows),
        )
    quarantine = (
        pd.concat(quarantine_parts, ignore_index=True)
        if quarantine_parts
        else pd.DataFrame({c: pd.Series(dtype="str") for c in QUARANTINE_COLUMNS})
    )
    return ValidationResult(tables=tables, quarantine=quarantine, report=report)


def _count_kinds(per_row: Iterable[list[str]]) -> dict[str, int]:
    """How many rows carry each kind of reason (each row counted once per kind)."""
    counts: Counter[str] = Counter()
    for row_reasons in per_row:
        counts.update({_reason_kind(reason) for reason in row_reasons})
    return dict(sorted(counts.items()))


def _reason_kind(reason: str) -> str:
    """A reason without the offending value, for counting ("amount: must be >= 0")."""
    if reason.startswith("malformed line:"):
        return "malformed line"
    return re.sub(r"""\s*\(.*\)$|\s+'.*'$|\s+".*"$""", "", reason)


def _plain(value: object) -> object:
    """A numpy scalar as the Python value, so that reasons read 'inf', not 'np.float64(inf)'."""
    return value.item() if isinstance(value, np.generic) else value


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def check_reject_shares(report: dict[str, dict[str, Any]], max_share: float) -> None:
    """Refuse the run when a table lost too many rows to the quarantine.

    Args:
        report: The validation report.
        max_share: Largest acceptable share of quarantined rows per table.

    Raises:
        DataContractError: Names the first table over the limit and its main reason.
    """
    for name, r in report.items():
        n = r["rows_in"]
        if n and r["rows_quarantined"] / n > max_share:
            top = max(r["reasons"].items(), key=lambda kv: kv[1])[0] if r["reasons"] else "?"
            raise DataContractError(
                f"{name}: {r['rows_quarantined']} of {n} rows rejected "
                f"({r['rows_quarantined'] / n:.0%} > limit {max_share:.0%}); "
                f"most common reason: {top}"
            )


def read_tables(
    folder: Path, encoding: str = "auto", specs: Mapping[str, TableSpec] = TABLES
) -> dict[str, pd.DataFrame | None]:
    """Read every contract table present in a folder, uninterpreted.

    Args:
        folder: Folder with ``<table>.csv``, ``.xlsx`` or ``.parquet`` files.
        encoding: CSV encoding or "auto".
        specs: The tables to look for (default: the model's inputs).

    Returns:
        Raw frames by table name; None for a table without a file.

    Raises:
        DataContractError: The folder does not exist or a file cannot be read.
    """
    if not folder.is_dir():
        raise DataContractError(f"input folder not found: {folder}")
    out: dict[str, pd.DataFrame | None] = {}
    for name in specs:
        path = find_table_file(folder, name)
        out[name] = read_raw_table(path, encoding) if path is not None else None
    return out


def write_result(result: ValidationResult, out_dir: Path) -> None:
    """Write validated tables, the quarantine and the report into a folder.

    The file names are :mod:`refundguard.paths`'s ``<table>`` + ``VALIDATED_TABLE_SUFFIX``,
    ``QUARANTINE_FILE_NAME`` and ``VALIDATION_REPORT_FILE_NAME``.

    Args:
        result: What :func:`validate_tables` returned.
        out_dir: Destination folder.
    """
    for name, df in result.tables.items():
        write_parquet(df, out_dir / f"{name}{VALIDATED_TABLE_SUFFIX}")
    write_csv(result.quarantine, out_dir / QUARANTINE_FILE_NAME)
    write_json(result.report, out_dir / VALIDATION_REPORT_FILE_NAME)


def validate_folder(
    params: Params, input_dir: Path | None = None, encoding: str | None = None
) -> ValidationResult:
    """Read and validate an input folder as params.yaml says (mapping, zone, limits).

    Args:
        params: The parameters.
        input_dir: Input folder; default ``data.input_dir``.
        encoding: CSV encoding; default ``data.encoding``.

    Returns:
        The validation result; the reject-share limit is not checked here.

    Raises:
        DataContractError: A file is unreadable or a table unusable.
        ConfigError: The mapping or the time zone is invalid.
    """
    mapping = mapping_from_params(params.data)
    raw = read_tables(input_dir or params.data.input_path(), encoding or params.data.encoding)
    return validate_tables(
        raw,
        timezone=params.base.timezone,
        max_text_chars=params.validate.max_text_chars,
        mapping=mapping,
        now=pd.Timestamp.now(tz="UTC"),
        max_future_days=params.validate.max_future_days,
    )


def validate_lists(
    params: Params, input_dir: Path | None = None, encoding: str | None = None
) -> ValidationResult:
    """Read and validate the team's deny and allow lists found in an input folder.

    The lists (``deny_list`` and ``allow_list``, see
    :data:`refundguard.contract.tables.LIST_TABLES`) are optional: a folder without them
    gives no tables. They are mapped (Chinese headers such as 买家ID, 加入时间, 原因) and
    validated like the other inputs, a bad row going to the quarantine with its reason,
    but on their own: they feed no feature and no training.

    Args:
        params: The parameters (mapping, time zone, limits).
        input_dir: Input folder; default ``data.input_dir``.
        encoding: CSV encoding; default ``data.encoding``.

    Returns:
        The validated lists that have a file (absent lists are not in ``tables``), their
        quarantine and report.

    Raises:
        DataContractError: A list file is unreadable or lacks a required column.
        ConfigError: The mapping or the time zone is invalid.
    """
    folder = input_dir or params.data.input_path()
    raw = read_tables(folder, encoding or params.data.encoding, LIST_TABLES)
    present: dict[str, pd.DataFrame | None] = {n: f for n, f in raw.items() if f is not None}
    result = validate_tables(
        present,
        timezone=params.base.timezone,
        max_text_chars=params.validate.max_text_chars,
        mapping=mapping_from_params(params.data),
        now=pd.Timestamp.now(tz="UTC"),
        max_future_days=params.validate.max_future_days,
        specs=LIST_TABLES,
    )
    return ValidationResult(
        tables={n: result.tables[n] for n in present},
        quarantine=result.quarantine,
        report={n: result.report[n] for n in present},
    )
