"""Reading input tables and writing outputs atomically.

Every output goes to a temporary file in the same folder and is renamed into place,
so that a run killed part-way leaves the previous file or none, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from refundguard.errors import DataContractError

TABLE_SUFFIXES: tuple[str, ...] = (".parquet", ".csv")


def find_table_file(folder: Path, name: str) -> Path | None:
    """Find ``<name>.parquet`` or ``<name>.csv`` in a folder.

    Args:
        folder: Folder to look in.
        name: Table name.

    Returns:
        The file, or None when neither exists.

    Raises:
        DataContractError: Both a Parquet and a CSV file exist, so the choice is ambiguous.
    """
    found = [folder / f"{name}{s}" for s in TABLE_SUFFIXES if (folder / f"{name}{s}").is_file()]
    if len(found) > 1:
        raise DataContractError(
            f"{folder}: both {found[0].name} and {found[1].name} exist; keep only one"
        )
    return found[0] if found else None


def _decode_attempts(encoding: str) -> list[str]:
    if encoding.lower() in ("auto", ""):
        # utf-8-sig reads UTF-8 with or without a BOM; GB18030 is a superset of GBK.
        return ["utf-8-sig", "gb18030"]
    return [encoding]


def read_raw_table(path: Path, encoding: str = "auto") -> pd.DataFrame:
    """Read one table file without interpreting its values.

    CSV columns come back as strings (empty cells missing), so that the validator sees
    exactly what the file holds and can quote it in the quarantine; Parquet keeps its
    own types.

    Args:
        path: A .csv or .parquet file.
        encoding: CSV encoding, or "auto" for UTF-8 (BOM optional) then GB18030.

    Returns:
        The raw table, with a default RangeIndex.

    Raises:
        DataContractError: The file cannot be read or decoded.
    """
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path).reset_index(drop=True)
        if path.suffix != ".csv":
            raise DataContractError(f"{path}: unsupported file type {path.suffix!r}")
        last: Exception | None = None
        for enc in _decode_attempts(encoding):
            try:
                return pd.read_csv(
                    path,
                    dtype=str,
                    keep_default_na=False,
                    na_values=[""],
                    encoding=enc,
                    skip_blank_lines=True,
                )
            except UnicodeDecodeError as exc:
                last = exc
            except LookupError as exc:
                raise DataContractError(f"{path}: unknown encoding {enc!r}") from exc
        raise DataContractError(
            f"{path}: cannot decode as {' or '.join(_decode_attempts(encoding))}: {last}"
        )
    except DataContractError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise DataContractError(f"{path}: file is empty (no header row)") from exc
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataContractError(f"{path}: cannot read: {exc}") from exc
    except Exception as exc:  # pyarrow raises its own types for corrupt Parquet files
        raise DataContractError(f"{path}: cannot read: {exc}") from exc


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success.

    Args:
        path: Final location.

    Yields:
        Where to write. On an exception the temporary file is removed and ``path``
        is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
