"""Reading input tables and writing outputs atomically.

Every output goes to a temporary file in the same folder and is renamed into place,
so that a run killed part-way leaves the previous file or none, never half of one.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from refundguard.errors import DataContractError

TABLE_SUFFIXES: tuple[str, ...] = (".parquet", ".csv", ".xlsx")


# A column that :func:`read_raw_table` adds when a CSV file holds lines with more fields
# than its header: it says what is wrong with the line (missing elsewhere), so that the
# validator can quarantine that line alone and keep the rest of the file.
MALFORMED_COLUMN = "__malformed_line__"


def find_table_file(folder: Path, name: str) -> Path | None:
    """Find ``<name>.parquet``, ``<name>.csv`` or ``<name>.xlsx`` in a folder.

    Args:
        folder: Folder to look in.
        name: Table name.

    Returns:
        The file, or None when none exists.

    Raises:
        DataContractError: Several of them exist, so the choice is ambiguous.
    """
    found = [folder / f"{name}{s}" for s in TABLE_SUFFIXES if (folder / f"{name}{s}").is_file()]
    if len(found) > 1:
        raise DataContractError(
            f"{folder}: {' and '.join(p.name for p in found)} all exist; keep only one"
            if len(found) > 2
            else f"{folder}: both {found[0].name} and {found[1].name} exist; keep only one"
        )
    return found[0] if found else None


def _decode_attempts(encoding: str) -> list[str]:
    if encoding.lower() in ("auto", ""):
        # utf-8-sig reads UTF-8 with or without a BOM; GB18030 is a superset of GBK.
        return ["utf-8-sig", "gb18030"]
    return [encoding]


def _drop_empty_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose every cell is blank are blank lines, as Excel writes them (",,,")."""
    if df.empty or not len(df.columns):
        return df.reset_index(drop=True)

    def blank(s: pd.Series) -> np.ndarray:
        text = s.astype("str")
        return (s.isna() | (text.str.strip() == "")).to_numpy(dtype=bool)

    # Only rows whose first cell is blank can be blank rows: check those alone, which
    # keeps this cheap on files of millions of rows.
    rows = np.flatnonzero(blank(df.iloc[:, 0]))
    if not rows.size:
        return df.reset_index(drop=True)
    sub = df.iloc[rows]
    empty = np.ones(len(rows), dtype=bool)
    for pos in range(1, len(df.columns)):
        empty &= blank(sub.iloc[:, pos])
    keep = np.ones(len(df), dtype=bool)
    keep[rows[empty]] = False
    return df[keep].reset_index(drop=True)


def _read_csv_fast(path: Path, encoding: str) -> pd.DataFrame:
    with warnings.catch_warnings():
        # pandas only warns when the first data line has too many fields (and then drops
        # the extra ones); treated as an error, it sends the file to the careful reader.
        warnings.simplefilter("error", pd.errors.ParserWarning)
        return pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding=encoding,
            skip_blank_lines=True,
            index_col=False,
        )


def _read_csv_careful(path: Path, encoding: str) -> pd.DataFrame:
    """Read a CSV file line by line, marking lines with more fields than the header.

    Slower than pandas' reader, so it runs only on files that reader refuses.
    """
    # A long review text must not stop the file (the default limit is 128 KiB).
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    with path.open(encoding=encoding, newline="") as fh:
        # strict: a quote left open to the end of the file is an error, not one giant
        # field that silently swallows every line after it.
        reader = csv.reader(fh, strict=True)
        try:
            rows = [r for r in reader if any(f.strip() for f in r)]
        except csv.Error as exc:
            raise csv.Error(f"line {reader.line_num}: {exc}") from exc
    if not rows:
        raise pd.errors.EmptyDataError("no header row")
    header, body = _unique_names(rows[0]), rows[1:]
    n = len(header)
    fields: list[list[str | None]] = []
    marks: list[str | None] = []
    for row in body:
        # Short lines are padded, as pandas does: writers often leave out empty trailing
        # cells. A long line cannot be placed: its cells may have shifted.
        fields.append(list(row[:n]) + [None] * max(0, n - len(row)))
        marks.append(
            f"{len(row)} fields where the header has {n}, extra: {row[n:]!r}"
            if len(row) > n
            else None
        )
    df = pd.DataFrame(fields, columns=header, dtype="str")
    df = df.mask(df == "")
    df[MALFORMED_COLUMN] = pd.Series(marks, dtype="str")
    return df


def _unique_names(header: list[str]) -> list[str]:
    """Repeated header names get ".1", ".2", ... as pandas' own reader does."""
    seen: dict[str, int] = {}
    out = []
    for name in header:
        if name in seen:
            seen[name] += 1
            out.append(f"{name}.{seen[name]}")
        else:
            seen[name] = 0
            out.append(name)
    return out


def _read_csv(path: Path, encoding: str) -> pd.DataFrame:
    last: Exception | None = None
    for enc in _decode_attempts(encoding):
        try:
            try:
                return _read_csv_fast(path, enc)
            except (pd.errors.ParserError, pd.errors.ParserWarning):
                return _read_csv_careful(path, enc)
        except UnicodeDecodeError as exc:
            last = exc
        except LookupError as exc:
            raise DataContractError(f"{path}: unknown encoding {enc!r}") from exc
    raise DataContractError(
        f"{path}: cannot decode as {' or '.join(_decode_attempts(encoding))}: {last}"
    )


def _read_excel(path: Path) -> pd.DataFrame:
    # Only the first sheet: back-ends export one table per workbook.
    df = pd.read_excel(
        path, sheet_name=0, dtype=str, keep_default_na=False, na_values=[""], engine="openpyxl"
    )
    if not len(df.columns):
        raise pd.errors.EmptyDataError("no header row")
    return df


def read_raw_table(path: Path, encoding: str = "auto") -> pd.DataFrame:
    """Read one table file without interpreting its values.

    CSV and Excel columns come back as strings (empty cells missing), so that the
    validator sees exactly what the file holds and can quote it in the quarantine;
    Parquet keeps its own types. Blank lines, and rows whose every cell is blank, are
    skipped; short CSV lines are padded with missing cells. A CSV line with more fields
    than the header does not stop the file: it comes back cut to the header, with its
    problem in :data:`MALFORMED_COLUMN` (a column present only then), for the validator
    to quarantine.

    Args:
        path: A .csv, .xlsx or .parquet file.
        encoding: CSV encoding, or "auto" for UTF-8 (BOM optional) then GB18030.

    Returns:
        The raw table, with a default RangeIndex.

    Raises:
        DataContractError: The file cannot be read or decoded, or holds no header row.
    """
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path).reset_index(drop=True)
        if path.suffix == ".csv":
            return _drop_empty_rows(_read_csv(path, encoding))
        if path.suffix == ".xlsx":
            return _drop_empty_rows(_read_excel(path))
        hint = " (save it as .xlsx or .csv)" if path.suffix == ".xls" else ""
        raise DataContractError(f"{path}: unsupported file type {path.suffix!r}{hint}")
    except DataContractError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise DataContractError(f"{path}: file is empty (no header row)") from exc
    except (OSError, ValueError, csv.Error, pd.errors.ParserError) as exc:
        raise DataContractError(f"{path}: cannot read: {exc}") from exc
    except Exception as exc:  # pyarrow and openpyxl raise their own types for corrupt files
        raise DataContractError(f"{path}: cannot read: {exc}") from exc


_TMP_SUFFIX = ".tmp"


def _remove_stale_temporaries(path: Path) -> None:
    """Remove temporary files that a killed writer left beside ``path``.

    A temporary file's name carries its writer's process id; one whose process is gone
    can never be renamed into place.
    """
    prefix = f".{path.name}."
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*{_TMP_SUFFIX}"):
        pid_text = tmp.name[len(prefix) :].split(".", 1)[0]
        if pid_text.isdigit() and not _process_alive(int(pid_text)):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists but belongs to someone else, or we cannot tell
    return True


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success.

    Args:
        path: Final location.

    Yields:
        Where to write. On an exception the temporary file is removed and ``path``
        is left as it was. A process killed outright (SIGKILL, power cut) leaves the
        temporary file behind, never a partial ``path``; the next write to ``path``
        removes it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=_TMP_SUFFIX, dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes the file private (0600); outputs get the usual mode for new files.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Write a frame to Parquet atomically, without the index.

    Args:
        df: Frame to write.
        path: Destination.
    """
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, engine="pyarrow")


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write a frame to UTF-8 CSV (with BOM, so that Excel shows Chinese) atomically.

    Args:
        df: Frame to write.
        path: Destination.
    """
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, encoding="utf-8-sig")


def write_table(df: pd.DataFrame, path: Path) -> None:
    """Write a frame as CSV or Parquet according to the file's suffix.

    Args:
        df: Frame to write.
        path: Destination ending in .csv or .parquet.
    """
    if path.suffix == ".csv":
        write_csv(df, path)
    else:
        write_parquet(df, path)


def write_json(obj: Any, path: Path) -> None:
    """Write JSON atomically, keys sorted so that equal content gives equal bytes.

    Args:
        obj: JSON-serialisable value.
        path: Destination.
    """
    write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", path)


def write_text(text: str, path: Path) -> None:
    """Write UTF-8 text atomically.

    Args:
        text: Content.
        path: Destination.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_json(path: Path) -> Any:
    """Read a JSON file.

    Args:
        path: Source.

    Returns:
        The parsed value.
    """
    return json.loads(Path(path).read_text(encoding="utf-8"))
