"""Streaming batch scoring: score a feature file of any length in bounded memory.

The feature rows (buyer_id and the model's feature columns, as the features stage or
:func:`refundguard.features.compute_features` writes them) are read from Parquet one
batch at a time, scored with :meth:`refundguard.scorer.Scorer.score`, and appended to
the output, so that memory depends on the batch size, not on the number of buyers. The
output is written to a temporary file that is renamed into place at the end: a run
killed part-way leaves the previous output or none.

A file holding a ``cutoff`` column (the features stage's snapshots: one row per buyer and
cutoff) keeps it in the output, right after buyer_id, so that rows of different cutoffs
stay apart. A progress bar (:mod:`refundguard.progress`) shows on a terminal.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from refundguard import progress as bars
from refundguard.data.io import atomic_path
from refundguard.errors import InputError

if TYPE_CHECKING:
    from refundguard.serving.scorer import Scorer


log = logging.getLogger(__name__)


OUTPUT_SUFFIXES = (".parquet", ".csv")


# Read from the feature file when present and copied to the output after buyer_id.
KEPT_COLUMNS = ("cutoff",)


@dataclass(frozen=True)
class BatchResult:
    """What a batch run wrote.

    Attributes:
        out: The output file.
        rows: Buyers scored (one output row per input row, in input order).
        batches: Batches read and scored.
        tiers: Buyers per policy tier.
    """

    out: Path
    rows: int
    batches: int
    tiers: dict[str, int]


def _open_features(path: Path, needed: list[str]) -> pq.ParquetFile:
    if path.suffix != ".parquet":
        raise InputError(f"{path}: feature rows must be a .parquet file")
    if not path.is_file():
        raise InputError(f"feature file not found: {path}")
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: cannot read as Parquet: {exc}") from exc
    names = set(pf.schema_arrow.names)
    missing = [c for c in needed if c not in names]
    if missing:
        raise InputError(
            f"{path}: missing column '{missing[0]}'"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
        )
    return pf


def _batches(
    pf: pq.ParquetFile, path: Path, columns: list[str], chunk_size: int
) -> Iterator[pd.DataFrame]:
    try:
        for batch in pf.iter_batches(batch_size=chunk_size, columns=columns):
            yield batch.to_pandas()
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: cannot read feature rows: {exc}") from exc


class _ParquetSink:
    """Appends scored batches to one Parquet file, one row group per batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: pq.ParquetWriter | None = None

    def write(self, frame: pd.DataFrame) -> None:
        with warnings.catch_warnings():
            # pyarrow reads a tz-aware column (cutoff) through Series.values, which pandas
            # 3.1 deprecates; the values and the zone are converted correctly all the same.
            warnings.filterwarnings("ignore", message=r"Series\.values returning an ndarray")
            table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            # A column with no value at all has Arrow's null type, which no later value
            # fits; such a column is text (ids, reasons).
            schema = pa.schema(
                [
                    f.with_type(pa.large_string()) if pa.types.is_null(f.type) else f
                    for f in table.schema
                ],
                metadata=table.schema.metadata,
            )
            self.writer = pq.ParquetWriter(self.path, schema)
        if table.schema != self.writer.schema:
            table = table.cast(self.writer.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _CsvSink:
    """Appends scored batches to one UTF-8 CSV file (with a BOM, for Excel)."""

    def __init__(self, path: Path) -> None:
        self.fh: IO[str] = path.open("w", encoding="utf-8-sig", newline="")
        self.header = True

    def write(self, frame: pd.DataFrame) -> None:
        frame.to_csv(self.fh, header=self.header, index=False)
        self.header = False

    def close(self) -> None:
        self.fh.close()


def score_file(
    scorer: Scorer,
    features: Path,
    out: Path,
    *,
    chunk_size: int = 100_000,
    progress: Callable[[int, int], None] | None = None,
) -> BatchResult:
    """Score every row of a feature Parquet file, streaming, into a Parquet or CSV file.

    Args:
        scorer: The scorer.
        features: Parquet file with buyer_id and the scorer's feature columns (others,
            such as target, are not read; cutoff is kept in the output).
        out: Output file, .parquet or .csv: the columns ``Scorer.score`` returns, with
            the input's cutoff column after buyer_id when it has one.
        chunk_size: Rows per batch; memory grows with it (about 1 kB per row, plus
            the Parquet row group being read).
        progress: Called after each batch with (rows done, rows in total).

    Returns:
        What was written.

    Raises:
        InputError: The feature file is missing, unreadable or lacks a column, a
            feature is not numeric or out of range, the output type is not supported, or
            chunk_size < 1.
    """
    if out.suffix not in OUTPUT_SUFFIXES:
        raise InputError(f"{out}: the output must end in .parquet or .csv")
    if chunk_size < 1:
        raise InputError(f"chunk size must be at least 1, got {chunk_size}")
    from refundguard.serving.scorer import HISTORY_FEATURES

    needed = ["buyer_id", *scorer.features]
    pf = _open_features(features, needed)
    names = set(pf.schema_arrow.names)
    kept = [c for c in KEPT_COLUMNS if c in names]
    # A history feature the model does not use still tells new buyers (no-history tier).
    history = [c for c in HISTORY_FEATURES if c in names and c not in scorer.features][:1]
    columns = [*needed, *history, *kept]
    total = pf.metadata.num_rows
    done = 0
    n_batches = 0
    tiers: Counter[str] = Counter()
    with atomic_path(out) as tmp, bars.bar("scoring", total=total) as advance:
        sink = _ParquetSink(tmp) if out.suffix == ".parquet" else _CsvSink(tmp)
        try:
            for frame in _batches(pf, features, columns, chunk_size):
                scored = _score(scorer, frame, kept)
                sink.write(scored)
                done += len(scored)
                n_batches += 1
                for tier, n in scored["tier"].value_counts().items():
                    tiers[str(tier)] += int(n)
                advance(len(scored))
                if progress is not None:
                    progress(done, total)
            if n_batches == 0:
                # No rows: still write the header (columns and types) of an empty result.
                empty = pf.schema_arrow.empty_table().select(columns).to_pandas()
                sink.write(_score(scorer, empty, kept))
        finally:
            sink.close()
    return BatchResult(out=out, rows=done, batches=n_batches, tiers=dict(tiers))


def _score(scorer: Scorer, frame: pd.DataFrame, kept: list[str]) -> pd.DataFrame:
    scored = scorer.score(frame.drop(columns=kept))
    for i, col in enumerate(kept, start=1):
        scored.insert(i, col, frame[col].reset_index(drop=True))
    return scored


def log_progress(done: int, total: int) -> None:
    """Log one line per batch: rows scored so far.

    Args:
        done: Rows scored so far.
        total: Rows in the file.
    """
    log.info("score: %s of %s rows", f"{done:,}", f"{total:,}")
