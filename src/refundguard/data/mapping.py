"""Column and value mappings: load a platform's own export without changing code.

A mapping renames a file's headers to the contract's column names (订单号 -> order_id)
and translates values (仅退款 -> refund_only) before validation. It comes from up to two
layers, the first taking precedence: ``data.columns``/``data.values`` in params.yaml, then
the mapping file named by ``data.mapping`` (a path, or the name of a mapping shipped in
``refundguard/mappings``, such as ``zh_cn``).

Matching ignores the differences that exports introduce without meaning anything:
headers and values are compared after Unicode NFKC normalisation (full-width letters,
digits and brackets become half-width) and case folding; headers also lose every blank,
values only their surrounding ones. The quarantine still shows each row as the file held it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from refundguard.config import DataParams
from refundguard.contract.tables import CONTRACT_TABLES
from refundguard.errors import ConfigError
from refundguard.paths import PROJECT_ROOT

ALL_TABLES = "all"


MAPPINGS_PACKAGE = "refundguard.data.mappings"


def header_key(name: object) -> str:
    """The form in which headers are compared.

    Args:
        name: A header as found in a file or written in a mapping.

    Returns:
        NFKC-normalised, case-folded text without any blank.
    """
    text = unicodedata.normalize("NFKC", str(name)).casefold()
    return "".join(text.split()).lstrip("\ufeff")


def value_key(value: object) -> str:
    """The form in which cell values are compared.

    Args:
        value: A value as found in a file or written in a mapping.

    Returns:
        NFKC-normalised, case-folded text without surrounding blanks.
    """
    return unicodedata.normalize("NFKC", str(value)).casefold().strip()


@dataclass(frozen=True)
class MappingLayer:
    """One source of mappings (params.yaml's inline block, or a mapping file).

    Attributes:
        columns: Per table name, or "all": {header key: contract column}, in priority order.
        values: Per table name: per contract column: {value key: contract value}.
        source: Where the layer came from, for messages.
    """

    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    values: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    source: str = "params.yaml"


@dataclass(frozen=True)
class MappedTable:
    """A raw table with its headers and values brought to the contract's names.

    Attributes:
        frame: The columns that were kept, renamed to contract names; values mapped.
        renamed: {header in the file: contract column} for every header that a mapping
            renamed.
        ignored: Headers of the file that no contract column uses.
    """

    frame: pd.DataFrame
    renamed: dict[str, str]
    ignored: list[str]


@dataclass(frozen=True)
class InputMapping:
    """Every mapping layer, the first taking precedence.

    Attributes:
        layers: The layers, highest precedence first.
    """

    layers: tuple[MappingLayer, ...] = ()

    def columns_for(self, table: str) -> dict[str, str]:
        """The header mapping that applies to one table, in priority order.

        Args:
            table: Contract table name.

        Returns:
            {header key: contract column}; earlier entries win over later ones.
        """
        names = set(CONTRACT_TABLES[table].names)
        out: dict[str, str] = {}
        for layer in self.layers:
            for scope in (table, ALL_TABLES):
                for key, target in layer.columns.get(scope, {}).items():
                    if target in names:
                        out.setdefault(key, target)
        return out

    def values_for(self, table: str, column: str) -> dict[str, str]:
        """The value mapping of one column.

        Args:
            table: Contract table name.
            column: Contract column name.

        Returns:
            {value key: contract value}; empty when nothing is mapped.
        """
        out: dict[str, str] = {}
        for layer in self.layers:
            for key, target in layer.values.get(table, {}).get(column, {}).items():
                out.setdefault(key, target)
        return out

    def apply(self, table: str, raw: pd.DataFrame) -> MappedTable:
        """Rename a raw table's headers and translate its values.

        A header spelt as a contract column (ignoring case, width and blanks) keeps that
        column; among the other headers that map to one column, the mapping's first entry
        wins. Unused headers are returned as ``ignored``.

        Args:
            table: Contract table name.
            raw: The raw table as read (any index); it is not modified.

        Returns:
            The mapped table, with the same index as ``raw``.
        """
        spec = CONTRACT_TABLES[table]
        contract = {header_key(n): n for n in spec.names}
        columns = self.columns_for(table)
        priority = {key: i for i, key in enumerate(columns)}
        # Each contract column takes the best-ranked header: its own name first (rank -1),
        # then mapping entries in order; ties between equal headers go to the leftmost.
        best: dict[str, tuple[int, int]] = {}
        for pos, header in enumerate(raw.columns):
            key = header_key(header)
            if key in contract:
                target, rank = contract[key], -1
            elif key in columns:
                target, rank = columns[key], priority[key]
            else:
                continue
            if target not in best or (rank, pos) < best[target]:
                best[target] = (rank, pos)
        chosen = {pos: target for target, (_, pos) in best.items()}
        data: dict[str, pd.Series] = {}
        renamed: dict[str, str] = {}
        ignored: list[str] = []
        for pos, header in enumerate(raw.columns):
            if pos not in chosen:
                ignored.append(str(header))
                continue
            target = chosen[pos]
            if str(header) != target:
                renamed[str(header)] = target
            data[target] = self._map_values(table, target, raw.iloc[:, pos])
        frame = pd.DataFrame(data, index=raw.index)
        return MappedTable(frame=frame, renamed=renamed, ignored=ignored)

    def _map_values(self, table: str, column: str, s: pd.Series) -> pd.Series:
        mapping = self.values_for(table, column)
        if not mapping or not (pd.api.types.is_string_dtype(s) or s.dtype == object):
            return s
        # Distinct values only: exports repeat a handful of enum values millions of times.
        distinct = pd.unique(s.dropna())
        lookup = {v: mapping[value_key(v)] for v in distinct if value_key(v) in mapping}
        if not lookup:
            return s
        mapped = s.map(lookup)
        return mapped.where(mapped.notna(), s).astype(s.dtype)


def _as_mapping(value: Any, where: str) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping, got {value!r}")
    return value


def _text(value: Any, where: str) -> str:
    if isinstance(value, bool):
        # YAML 1.1 reads yes/no/true/false as booleans; the contract's words are lower case.
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ConfigError(f"{where} must be text, got {value!r}")


def layer_from_dict(columns: Any, values: Any, source: str) -> MappingLayer:
    """Check and normalise one mapping layer.

    Args:
        columns: {table or "all": {header: contract column}}.
        values: {table: {contract column: {value: contract value}}}.
        source: Name of the layer's origin, used in error messages.

    Returns:
        The layer, with header and value keys normalised.

    Raises:
        ConfigError: An unknown table or column, or a value that the contract does not
            allow for an enum column.
    """
    cols: dict[str, dict[str, str]] = {}
    for scope, entries in _as_mapping(columns, f"{source}: columns").items():
        scope = str(scope)
        if scope != ALL_TABLES and scope not in CONTRACT_TABLES:
            raise ConfigError(
                f"{source}: columns: unknown table {scope!r} "
                f"(known: {ALL_TABLES}, {', '.join(CONTRACT_TABLES)})"
            )
        known = (
            {n for t in CONTRACT_TABLES.values() for n in t.names}
            if scope == ALL_TABLES
            else set(CONTRACT_TABLES[scope].names)
        )
        out: dict[str, str] = {}
        for header, target in _as_mapping(entries, f"{source}: columns.{scope}").items():
            target_name = _text(target, f"{source}: columns.{scope}.{header}")
            if target_name not in known:
                raise ConfigError(
                    f"{source}: columns.{scope}.{header}: {target_name!r} is not a contract "
                    f"column of {scope}"
                )
            out.setdefault(header_key(header), target_name)
        cols[scope] = out
    vals: dict[str, dict[str, dict[str, str]]] = {}
    for table, per_column in _as_mapping(values, f"{source}: values").items():
        table = str(table)
        if table not in CONTRACT_TABLES:
            raise ConfigError(f"{source}: values: unknown table {table!r}")
        vals[table] = {}
        for column, entries in _as_mapping(per_column, f"{source}: values.{table}").items():
            column = str(column)
            try:
                spec = CONTRACT_TABLES[table].column(column)
            except KeyError:
                raise ConfigError(
                    f"{source}: values.{table}: {column!r} is not a contract column"
                ) from None
            allowed = {str(v) for v in spec.values} if spec.values is not None else None
            out_values: dict[str, str] = {}
            where = f"{source}: values.{table}.{column}"
            for value, target in _as_mapping(entries, where).items():
                target_value = _text(target, f"{where}.{value}")
                if allowed is not None and target_value not in allowed:
                    raise ConfigError(
                        f"{where}.{value}: {target_value!r} is not one of {sorted(allowed)}"
                    )
                out_values.setdefault(value_key(value), target_value)
            vals[table][column] = out_values
    return MappingLayer(columns=cols, values=vals, source=source)


def shipped_mappings() -> list[str]:
    """Names of the mappings that ship with refundguard.

    Returns:
        Sorted names, usable as ``data.mapping``.
    """
    folder = resources.files(MAPPINGS_PACKAGE)
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_mapping_file(spec: str, root: Path) -> MappingLayer:
    """Read a mapping file: a shipped mapping's name, or a path to a YAML file.

    Args:
        spec: A name from :func:`shipped_mappings`, or a path (relative to ``root``).
        root: Folder that relative paths start from.

    Returns:
        The file's mapping layer.

    Raises:
        ConfigError: The file is missing, unreadable or malformed.
    """
    if spec in shipped_mappings():
        text = resources.files(MAPPINGS_PACKAGE).joinpath(f"{spec}.yaml").read_text("utf-8")
        source = f"mapping {spec}"
    else:
        path = Path(spec) if Path(spec).is_absolute() else root / spec
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"mapping file not found: {path} (shipped mappings: "
                f"{', '.join(shipped_mappings())})"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read mapping file {path}: {exc}") from exc
        source = str(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    raw = _as_mapping(raw, source)
    unknown = sorted(set(map(str, raw)) - {"columns", "values"})
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r} (known: columns, values)")
    return layer_from_dict(raw.get("columns"), raw.get("values"), source)


def build_mapping(
    mapping_file: str | None,
    columns: Mapping[str, Mapping[str, str]] | None = None,
    values: Mapping[str, Mapping[str, Mapping[str, str]]] | None = None,
    *,
    root: Path,
) -> InputMapping:
    """The mapping that params.yaml describes.

    Args:
        mapping_file: ``data.mapping``: a shipped mapping's name, a path, or None.
        columns: ``data.columns``, which takes precedence over the file.
        values: ``data.values``, which takes precedence over the file.
        root: Folder that a relative mapping path starts from.

    Returns:
        The mapping (possibly empty).

    Raises:
        ConfigError: A layer is malformed or names something the contract lacks.
    """
    layers: list[MappingLayer] = []
    if columns or values:
        layers.append(layer_from_dict(dict(columns or {}), dict(values or {}), "params.yaml data"))
    if mapping_file:
        layers.append(read_mapping_file(mapping_file, root))
    return InputMapping(tuple(layers))


def mapping_from_params(data: DataParams) -> InputMapping:
    """The mapping that the ``data`` block of params.yaml asks for.

    Args:
        data: The data parameters.

    Returns:
        The mapping: ``data.columns``/``data.values`` first, then ``data.mapping``'s file.

    Raises:
        ConfigError: A layer is malformed or names something the contract lacks.
    """
    return build_mapping(data.mapping, data.columns, data.values, root=PROJECT_ROOT)
