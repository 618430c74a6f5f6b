"""The Spark engine: the same features, sentiment and scores as the local path, on Spark.

Nothing here reimplements a feature. A buyer's features depend on that buyer's own rows
except for a few global lookups, so the work splits in two:

- **Global lookups, with Spark SQL**: each category's median order value (and the median
  of all orders) at every cutoff; how many accounts hold each device, address and payment
  id; which accounts are linked through an id held by 2 to ``link_max_accounts``
  accounts; and whose latest label before a cutoff says abuser. From them come the
  ``linked`` feature group (:func:`refundguard.features._linked_features`).
- **Per buyer, with the local core**: the validated tables are hash-partitioned by buyer
  into ``partitions`` buckets, and each bucket runs :func:`refundguard.features.
  prepare_events` and the catalog's own functions through ``applyInPandas`` (Arrow), with
  the category medians handed in through the snapshot's cache, the very slot the local
  path fills itself. Rows keep their order in the files, so sums add up in the same
  order as on one machine.

The ``linked`` features are then joined on; the linked refund rate averages the
``refund_rate_count_<long>d`` that the buckets computed for every buyer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from refundguard import errors
from refundguard.config import Params
from refundguard.errors import ConfigError, DataContractError
from refundguard.features.build import ReviewEvidence, SnapshotTables
from refundguard.features.catalog import Feature
from refundguard.features.events import LINK_KINDS, prepare_events, snapshot
from refundguard.features.extortion import DemandScores, Lexicon
from refundguard.features.timesplit import label_targets
from refundguard.paths import PROJECT_ROOT

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


log = logging.getLogger(__name__)


# pandera imports pyspark.pandas whenever pyspark is installed, and pyspark 4.3 warns on
# every import that it does not fully support pandas 3. refundguard uses pyspark.sql only
# (Arrow conversions, which pyspark does support), so the warning says nothing to users.
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)


TABLES: tuple[str, ...] = ("orders", "refunds", "reviews", "buyers", "labels")


# Columns added to every table on its way into a bucket: the bucket, which table the row
# belongs to, and the row's position in its file (so a bucket restores the file order).
BUCKET, TABLE, FILE, POS = "_bucket", "_table", "_file", "_pos"


# Output columns of a bucket besides the features: whether the row is a snapshot row
# (active, not a known abuser) rather than a row kept only for the linked refund rate.
ROW = "_row"
# Whether the row's buyer was a labeled abuser before the cutoff (and active at it).
KNOWN = "_known"
# The output column that marks those rows when they are asked for (``known_rows``).
KNOWN_COLUMN = "known_abuser"


# The columns the local core reads from each validated table; the others stay unread.
NEEDED: dict[str, tuple[str, ...]] = {
    "orders": (
        "order_id",
        "buyer_id",
        "seller_id",
        "created_at",
        "delivered_at",
        "amount",
        "category",
        "device_id",
        "address_id",
        "payment_id",
    ),
    "refunds": (
        "order_id",
        "requested_at",
        "resolved_at",
        "amount",
        "type",
        "reason",
        "status",
        "instant",
    ),
    "reviews": ("review_id", "order_id", "created_at", "rating", "text"),
    "buyers": ("buyer_id", "registered_at"),
    "labels": ("buyer_id", "label", "labeled_at", "source"),
}
# Columns the contract makes optional: a table without one gets it empty.
OPTIONAL: dict[str, dict[str, str]] = {"labels": {"source": "string"}}


JAVA_HINT = "install Java 17 (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"


def spark_session(
    master: str = "local[*]",
    partitions: int = 8,
    conf: Mapping[str, str] | None = None,
    *,
    work_dir: Path | None = None,
) -> SparkSession:
    """A SparkSession set up for refundguard (or the running one, reconfigured).

    Times are UTC in the session (every table's times are UTC instants), Arrow carries
    rows between the JVM and Python, there is no web UI or console progress bar, and the
    warehouse, scratch and Derby folders are inside the project folder.

    Args:
        master: Spark master URL: ``local[*]``, ``local[2]``, ``yarn``, ``k8s://...``.
        partitions: Shuffle partitions, and the number of buyer buckets.
        conf: More Spark settings, passed through; they win over the defaults here.
        work_dir: Folder for the warehouse and scratch files; default ``.spark`` in the
            project folder.

    Returns:
        The session.

    Raises:
        ConfigError: ``partitions`` is not positive, or Java is not installed.
    """
    if partitions < 1:
        raise ConfigError(f"spark.partitions must be at least 1, got {partitions}")
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise ConfigError(f"the Spark engine needs Java, and java was not found: {JAVA_HINT}")
    from pyspark.sql import SparkSession

    base = (work_dir or PROJECT_ROOT / ".spark").resolve()
    (base / "tmp").mkdir(parents=True, exist_ok=True)
    # Python workers are started with PYSPARK_PYTHON (default "python3", which is not
    # this virtualenv); in local mode they must run this interpreter.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings: dict[str, str] = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(partitions),
        "spark.default.parallelism": str(partitions),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
        # A bucket is a unit of work of the local core; merging them would only make
        # fewer, larger Python workers.
        "spark.sql.adaptive.coalescePartitions.enabled": "false",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.warehouse.dir": str(base / "warehouse"),
        "spark.local.dir": str(base / "tmp"),
        "spark.driver.extraJavaOptions": (
            f"-Djava.io.tmpdir={base / 'tmp'} -Dderby.system.home={base / 'derby'}"
        ),
        "spark.executor.extraJavaOptions": f"-Djava.io.tmpdir={base / 'tmp'}",
        # pyspark warns in every worker that pandas 3 is not fully supported; see above.
        "spark.executorEnv.PYTHONWARNINGS": "ignore::FutureWarning",
        **dict(conf or {}),
    }
    builder = SparkSession.builder.master(master).appName("refundguard")
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    for key, value in settings.items():
        # getOrCreate returns a running session as it is; runtime SQL settings still apply.
        # Static ones (spark.sql.extensions, the catalog) cannot change once it runs.
        if key.startswith("spark.sql.") and spark.conf.isModifiable(key):
            spark.conf.set(key, value)
    return spark


def read_table(spark: SparkSession, path: Path | str) -> DataFrame:
    """A Parquet table (file or folder) with each row's file and position in it.

    Args:
        spark: The session.
        path: A Parquet file or folder (local path or any URI Spark reads).

    Returns:
        The table with two more columns, ``_file`` and ``_pos``.
    """
    from pyspark.sql import functions as F

    df = spark.read.parquet(str(path))
    return df.select(
        "*",
        F.col("_metadata.file_path").alias(FILE),
        F.col("_metadata.row_index").alias(POS),
    )


def read_validated(spark: SparkSession, validated_dir: Path | str) -> dict[str, DataFrame]:
    """The validate stage's tables as Spark DataFrames.

    Args:
        spark: The session.
        validated_dir: Folder (or URI) holding ``<table>.parquet`` for each table.

    Returns:
        Tables by name, each with ``_file`` and ``_pos``.

    Raises:
        DataContractError: A table is missing.
    """
    base = str(validated_dir).rstrip("/")
    out: dict[str, DataFrame] = {}
    for name in TABLES:
        path = f"{base}/{name}.parquet"
        if "://" not in path and not Path(path).exists():
            raise DataContractError(f"{path}: not found (run the validate stage first)")
        out[name] = read_table(spark, path)
    return out


def span_tables(spark: SparkSession, validated_dir: Path | str) -> dict[str, pd.DataFrame]:
    """Small pandas stand-ins of the validated tables for the cutoffs and the horizon.

    :func:`refundguard.timesplit.make_cutoffs` and :func:`~refundguard.timesplit.
    resolve_horizon` read only the first and last times of the tables and, for each abuser
    label, the buyer's latest refund request before it. Spark finds those rows; the
    frames returned hold only them (the orders of those requests get stand-in ids), so
    both functions give the same answer as on the full tables without loading them.

    Args:
        spark: The session.
        validated_dir: Folder (or URI) of the validated tables.

    Returns:
        orders, refunds, reviews and labels, each a few rows (labels: every abuser label).

    Raises:
        DataContractError: A table is missing.
    """
    from pyspark.sql import functions as F

    t = read_validated(spark, validated_dir)
    utc = pd.DatetimeTZDtype("us", "UTC")

    def frame(df: DataFrame, cols: Sequence[str]) -> pd.DataFrame:
        with warnings.catch_warnings(), worker_errors():
            warnings.simplefilter("ignore")
            out = cast(pd.DataFrame, df.select(*cols).toPandas())
        for c in cols:
            if c.endswith("_at"):
                out[c] = _naive(out[c]).dt.tz_localize("UTC").astype(utc)
        return out

    def extremes(df: DataFrame, col: str, cols: Sequence[str]) -> DataFrame:
        return (
            df.orderBy(F.col(col).asc_nulls_last())
            .limit(1)
            .unionByName(df.orderBy(F.col(col).desc_nulls_last()).limit(1))
            .select(*cols)
        )

    positives = t["labels"].where(F.col("label") == 1).select("buyer_id", "label", "labeled_at")
    requests = (
        t["refunds"]
        .join(t["orders"].select("order_id", "buyer_id"), "order_id")
        .select("buyer_id", "requested_at")
    )
    latest = (
        positives.join(requests, "buyer_id")
        .where(F.col("requested_at") < F.col("labeled_at"))
        .groupBy("buyer_id", "labeled_at")
        .agg(F.max("requested_at").alias("requested_at"))
        .select("buyer_id", "requested_at")
        .distinct()
    )
    orders = frame(
        extremes(t["orders"], "created_at", ["order_id", "buyer_id", "created_at"]),
        ["order_id", "buyer_id", "created_at"],
    ).drop_duplicates("order_id")
    last = frame(latest, ["buyer_id", "requested_at"])
    # Stand-in orders for the requests: inside the data span, so they move neither end.
    stand_in = pd.DataFrame(
        {
            "order_id": [f"_request_{i}" for i in range(len(last))],
            "buyer_id": last["buyer_id"].astype("str"),
            "created_at": pd.Series([orders["created_at"].min()] * len(last), dtype=utc),
        }
    )
    # The last decision's time, as a stand-in that is no abuser label (it must not count
    # one label twice in the delays).
    labels_end = frame(extremes(t["labels"], "labeled_at", ["labeled_at"]), ["labeled_at"])
    labels_end.insert(0, "buyer_id", "_span_end")
    labels_end.insert(1, "label", 0.0)
    refunds_end = frame(
        extremes(t["refunds"], "requested_at", ["order_id", "requested_at"]),
        ["order_id", "requested_at"],
    )
    return {
        "orders": pd.concat([orders, stand_in], ignore_index=True),
        "refunds": pd.concat(
            [
                pd.DataFrame(
                    {"order_id": stand_in["order_id"], "requested_at": last["requested_at"]}
                ),
                refunds_end,
            ],
            ignore_index=True,
        ),
        "reviews": frame(extremes(t["reviews"], "created_at", ["created_at"]), ["created_at"]),
        "labels": pd.concat(
            [frame(positives, ["buyer_id", "label", "labeled_at"]), labels_end], ignore_index=True
        ),
    }


def linked_names(catalog: Sequence[Feature]) -> list[str]:
    """The catalog's features that need other buyers' rows (computed with Spark SQL).

    Args:
        catalog: The feature catalog.

    Returns:
        Their names, in catalog order.

    Raises:
        ConfigError: A linked feature this engine does not know how to compute.
    """
    names = [f.name for f in catalog if f.group == "linked"]
    known = {f"linked_accounts_{k}" for k in (*LINK_KINDS, "any")} | {
        "linked_known_abusers",
        "max_accounts_per_id",
    }
    for name in names:
        if name not in known and not (
            name.startswith("linked_refund_rate_") and name.endswith("d")
        ):
            raise ConfigError(f"the Spark engine cannot compute linked feature {name!r}")
    return names


def _rate_feature(catalog: Sequence[Feature], linked: Sequence[str]) -> str | None:
    """The per-buyer rate the linked refund rate averages (refund_rate_count_<long>d)."""
    for name in linked:
        if name.startswith("linked_refund_rate_"):
            window = name.removeprefix("linked_refund_rate_")
            rate = f"refund_rate_count_{window}"
            if rate not in {f.name for f in catalog}:
                raise ConfigError(f"{name} needs {rate} in the catalog")
            return rate
    return None


def _cutoff_frame(spark: SparkSession, cutoffs: Sequence[pd.Timestamp]) -> DataFrame:
    from pyspark.sql import functions as F

    # Microseconds since the epoch, so that no time zone conversion touches the cutoffs.
    micros = [int(_utc(c).value // 1000) for c in cutoffs]
    return spark.createDataFrame([(m,) for m in micros], "us long").select(
        F.timestamp_micros("us").alias("cutoff")
    )


def _utc(cutoff: pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(cutoff)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def category_medians(
    orders: DataFrame, cutoffs: Sequence[pd.Timestamp]
) -> dict[pd.Timestamp, tuple[float, dict[str, float]]]:
    """Median order value of each category, and of all orders, before each cutoff.

    Spark's ``percentile(x, 0.5)`` interpolates the two middle values as
    0.5 * a + 0.5 * b, which rounds exactly as numpy's and pandas' (a + b) / 2.

    Args:
        orders: Validated orders (Spark).
        cutoffs: The cutoffs.

    Returns:
        For each cutoff (UTC): the median of all orders before it (NaN if none), and the
        median per category (categories with no order before it are absent).
    """
    from pyspark.sql import functions as F

    spark = orders.sparkSession
    before = orders.select("category", "amount", "created_at").join(
        F.broadcast(_cutoff_frame(spark, cutoffs)), F.col("created_at") < F.col("cutoff")
    )
    # One job for both: the rollup's rows with grouping("category") == 1 are the overall
    # medians (a null category of its own is a grouping-0 row, and is left out below).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rolled = cast(
            pd.DataFrame,
            before.rollup("cutoff", "category")
            .agg(
                F.percentile("amount", 0.5).alias("median"),
                F.grouping("category").alias("overall"),
                F.grouping("cutoff").alias("everything"),
            )
            .where(F.col("everything") == 0)
            .toPandas(),
        )
    is_overall = rolled["overall"].to_numpy() == 1
    per_cat = rolled[~is_overall & rolled["category"].notna().to_numpy()]
    overall = rolled[is_overall]
    out: dict[pd.Timestamp, tuple[float, dict[str, float]]] = {}
    for cutoff in cutoffs:
        t = _utc(cutoff)
        at = _naive(per_cat["cutoff"]) == t.tz_localize(None)
        all_at = overall.loc[_naive(overall["cutoff"]) == t.tz_localize(None), "median"]
        out[t] = (
            float(all_at.iloc[0]) if len(all_at) and pd.notna(all_at.iloc[0]) else np.nan,
            dict(
                zip(
                    per_cat.loc[at, "category"].astype(str),
                    per_cat.loc[at, "median"].astype("float64"),
                    strict=True,
                )
            ),
        )
    return out


def _naive(s: pd.Series) -> pd.Series:
    """Spark hands times over as naive UTC (session time zone UTC); drop any zone."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.astype("datetime64[us]")


def linked_features(
    orders: DataFrame,
    labels: DataFrame,
    rates: DataFrame | None,
    cutoffs: Sequence[pd.Timestamp],
    *,
    cap: int,
    names: Sequence[str],
) -> DataFrame:
    """The ``linked`` features of every buyer with an order before each cutoff.

    The same definitions as :mod:`refundguard.features` (``_links``, ``_linked_count``,
    ``_linked_mean``, ``_linked_known_abusers``, ``_max_holders``): an id links the 2 to
    ``cap`` distinct accounts that used it before the cutoff; a buyer's known-abuser flag
    is the label of its latest decision before the cutoff (ties: the larger label).

    Args:
        orders: Validated orders (Spark).
        labels: Validated labels (Spark).
        rates: cutoff, buyer_id, rate (the per-buyer refund rate the linked refund rate
            averages); None when the catalog has no linked refund rate.
        cutoffs: The cutoffs.
        cap: ``features.link_max_accounts``.
        names: The linked feature names to return (see :func:`linked_names`).

    Returns:
        cutoff, buyer_id and the named features (missing buyers have 0 counts and a NaN
        rate, as on one machine).
    """
    from pyspark.sql import functions as F

    spark = orders.sparkSession
    cuts = F.broadcast(_cutoff_frame(spark, cutoffs))
    held = None
    for kind in LINK_KINDS:
        part = orders.select(
            "buyer_id",
            F.lit(kind).alias("kind"),
            F.col(f"{kind}_id").alias("id"),
            "created_at",
        ).where(F.col("id").isNotNull() & F.col("buyer_id").isNotNull())
        held = part if held is None else held.unionByName(part)
    assert held is not None
    # When each account first used each id: it holds the id at every later cutoff.
    first = held.groupBy("buyer_id", "kind", "id").agg(F.min("created_at").alias("first_at"))
    holding = first.join(cuts, F.col("first_at") < F.col("cutoff")).drop("first_at")
    holders = holding.groupBy("cutoff", "kind", "id").agg(F.count("*").alias("holders"))
    holding = holding.join(holders, ["cutoff", "kind", "id"])
    out = holding.select("cutoff", "buyer_id").distinct()
    if "max_accounts_per_id" in names:
        out = out.join(
            holding.groupBy("cutoff", "buyer_id").agg(
                F.max("holders").cast("double").alias("max_accounts_per_id")
            ),
            ["cutoff", "buyer_id"],
            "left",
        )
    small = holding.where((F.col("holders") >= 2) & (F.col("holders") <= cap)).select(
        "cutoff", "kind", "id", "buyer_id"
    )
    pairs = (
        small.join(small.withColumnRenamed("buyer_id", "other"), ["cutoff", "kind", "id"])
        .where(F.col("buyer_id") != F.col("other"))
        .select("cutoff", "kind", "buyer_id", "other")
        .distinct()
    )
    any_pairs = pairs.select("cutoff", "buyer_id", "other").distinct()
    counts = []
    for kind in LINK_KINDS:
        name = f"linked_accounts_{kind}"
        if name in names:
            counts.append(
                pairs.where(F.col("kind") == kind)
                .groupBy("cutoff", "buyer_id")
                .agg(F.count("*").cast("double").alias(name))
            )
    if "linked_accounts_any" in names:
        counts.append(
            any_pairs.groupBy("cutoff", "buyer_id").agg(
                F.count("*").cast("double").alias("linked_accounts_any")
            )
        )
    if "linked_known_abusers" in names:
        decided = labels.where(F.col("buyer_id").isNotNull()).join(
            cuts, F.col("labeled_at") < F.col("cutoff")
        )
        latest = decided.groupBy("cutoff", "buyer_id").agg(
            F.max(F.struct("labeled_at", "label")).alias("latest")
        )
        abusers = latest.where(F.col("latest.label") == 1).select(
            "cutoff", F.col("buyer_id").alias("other"), F.lit(1.0).alias("known")
        )
        counts.append(
            any_pairs.join(abusers, ["cutoff", "other"])
            .groupBy("cutoff", "buyer_id")
            .agg(F.sum("known").alias("linked_known_abusers"))
        )
    rate_name = next((n for n in names if n.startswith("linked_refund_rate_")), None)
    if rate_name is not None:
        if rates is None:
            raise ConfigError(f"{rate_name} needs the per-buyer refund rates")
        other_rates = rates.where(~F.isnan("rate") & F.col("rate").isNotNull()).select(
            "cutoff", F.col("buyer_id").alias("other"), "rate"
        )
        counts.append(
            any_pairs.join(other_rates, ["cutoff", "other"])
            .groupBy("cutoff", "buyer_id")
            .agg((F.sum("rate") / F.count("*")).alias(rate_name))
        )
    for frame in counts:
        out = out.join(frame, ["cutoff", "buyer_id"], "left")
    zero_filled = [n for n in names if not n.startswith("linked_refund_rate_")]
    out = out.fillna(0.0, subset=[n for n in zero_filled if n in out.columns])
    if rate_name is not None:
        # Spark's fillna skips a column it just created empty; NaN (not null) is the
        # local path's "no linked account with a rate".
        out = out.withColumn(
            rate_name, F.coalesce(F.col(rate_name), F.lit(float("nan")).cast("double"))
        )
    return out.select("cutoff", "buyer_id", *names)


def _bucket_of(buyer: Column, partitions: int) -> Column:
    from pyspark.sql import functions as F

    return F.pmod(F.xxhash64(buyer), F.lit(partitions)).cast("int")


def _bucketed(
    tables: Mapping[str, DataFrame],
    sentiment: DataFrame | None,
    partitions: int,
    demand: DataFrame | None = None,
) -> tuple[DataFrame, dict[str, list[tuple[str, str]]]]:
    """Every table's rows in one frame, each tagged with its buyer's bucket.

    Refunds and reviews carry no buyer of their own: they take their order's.

    Returns:
        The tagged rows (columns ``<table>__<column>``), and each table's columns with
        their Spark types.
    """
    from pyspark.sql import functions as F

    tables = {name: _needed(tables[name], name) for name in TABLES}
    orders = tables["orders"]
    order_buyer = orders.select(F.col("order_id").alias("_oid"), F.col("buyer_id").alias("_buyer"))
    reviews = tables["reviews"]
    if sentiment is not None:
        reviews = reviews.join(
            sentiment.select("review_id", F.col("sentiment").cast("double").alias("sentiment")),
            "review_id",
            "left",
        )
    else:
        reviews = reviews.withColumn("sentiment", F.lit(None).cast("double"))
    if demand is not None:
        # review_id and demand_<k>: each review carries its scores under every model.
        reviews = reviews.join(demand, "review_id", "left")
    parts: dict[str, DataFrame] = {
        "orders": orders.withColumn("_buyer", F.col("buyer_id")),
        "refunds": tables["refunds"]
        .join(order_buyer, F.col("order_id") == F.col("_oid"), "left")
        .drop("_oid"),
        "reviews": reviews.join(order_buyer, F.col("order_id") == F.col("_oid"), "left").drop(
            "_oid"
        ),
        "buyers": tables["buyers"].withColumn("_buyer", F.col("buyer_id")),
        "labels": tables["labels"].withColumn("_buyer", F.col("buyer_id")),
    }
    # A refund or review of an unknown order has no buyer; it lands in some bucket that
    # lacks its order, where prepare_events refuses it as on one machine (DataContractError,
    # raised again on the driver by :func:`worker_errors`).
    columns = {
        name: [(c, ty) for c, ty in df.dtypes if c not in (FILE, POS, "_buyer")]
        for name, df in parts.items()
    }
    files: DataFrame | None = None
    for name in TABLES:
        select = [
            _bucket_of(F.col("_buyer"), partitions).alias(BUCKET),
            F.lit(name).alias(TABLE),
            F.col(FILE),
            F.col(POS),
        ]
        for table in TABLES:
            for col, dtype in columns[table]:
                value = F.col(col) if table == name else F.lit(None).cast(dtype)
                select.append(value.alias(f"{table}__{col}"))
        tagged = parts[name].select(*select)
        files = tagged if files is None else files.unionByName(tagged)
    assert files is not None
    return files, columns


def for_arrow(df: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text columns are plain Python objects.

    pyspark 4.3 cannot yet turn pandas 3's Arrow-backed ``str`` columns into the Arrow
    batches it sends back to the JVM (it expects one Array, and gets a ChunkedArray).

    Args:
        df: Rows a pandas UDF returns.

    Returns:
        The same rows, text columns as object.
    """
    text = [c for c in df.columns if pd.api.types.is_string_dtype(df[c].dtype)]
    return df.astype(dict.fromkeys(text, object)) if text else df


def _needed(df: DataFrame, name: str) -> DataFrame:
    from pyspark.sql import functions as F

    for col, dtype in OPTIONAL.get(name, {}).items():
        if col not in df.columns:
            df = df.withColumn(col, F.lit(None).cast(dtype))
    missing = [c for c in NEEDED[name] if c not in df.columns]
    if missing:
        raise DataContractError(
            f"{name}: column {missing[0]!r} missing (validate the tables first)"
        )
    return df.select(*NEEDED[name], FILE, POS)


@contextlib.contextmanager
def worker_errors() -> Iterator[None]:
    """Raise a refundguard error a Python worker raised as itself, on the driver.

    Spark wraps an exception from a worker in a ``PythonException`` holding the worker's
    traceback; a user's mistake (a refund of an unknown order, a bad feature value) must
    still be one clear line.

    Yields:
        Nothing; the body runs Spark actions.

    Raises:
        RefundGuardError: The subclass and message the worker raised.
    """
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    try:
        yield
    # A worker's exception reaches the driver as a PythonException, or (through Arrow
    # collection) inside a Py4JJavaError; both carry the worker's last line.
    except (PySparkException, Py4JJavaError) as exc:
        found = re.findall(r"refundguard\.errors\.(\w+): ([^\n]*)", str(exc))
        kind = getattr(errors, found[-1][0], None) if found else None
        if isinstance(kind, type) and issubclass(kind, errors.RefundGuardError):
            raise kind(found[-1][1].strip()) from None
        raise


def _table_of(pdf: pd.DataFrame, name: str, columns: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """One table's rows of a bucket, in file order, with the local path's dtypes."""
    rows = pdf[pdf[TABLE].to_numpy() == name].sort_values([FILE, POS], kind="stable")
    out: dict[str, Any] = {}
    for col, dtype in columns:
        values = rows[f"{name}__{col}"].reset_index(drop=True)
        if dtype.startswith("timestamp"):
            # Spark hands times over naive, in the session time zone (UTC).
            out[col] = _naive(values).dt.tz_localize("UTC")
        elif dtype == "string":
            out[col] = values.astype("str")
        elif dtype == "boolean":
            out[col] = values.astype("boolean")
        else:
            out[col] = values
    return pd.DataFrame(out, index=pd.RangeIndex(len(rows)))


def bucket_features(
    pdf: pd.DataFrame,
    *,
    columns: Mapping[str, Sequence[tuple[str, str]]],
    cutoffs: Sequence[pd.Timestamp],
    catalog: Sequence[Feature],
    local_names: Sequence[str],
    medians: Mapping[pd.Timestamp, tuple[float, Mapping[str, float]]],
    rate_name: str | None,
    horizon_days: int,
    active_days: int,
    timezone: str,
    keep_known_abusers: bool = False,
    lexicon: Lexicon | None = None,
    demand_at: Sequence[pd.Timestamp] = (),
    trusted_sources: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Features of one bucket of buyers at every cutoff, with the local core.

    Args:
        pdf: The bucket's rows of every table (see :func:`_bucketed`).
        columns: Each table's columns and Spark types.
        cutoffs: The cutoffs.
        catalog: The feature catalog.
        local_names: Features to compute here (every one but the linked group).
        medians: :func:`category_medians`.
        rate_name: The per-buyer rate the linked refund rate averages, or None.
        horizon_days: Label horizon (the target).
        active_days: A buyer gets a row at T if they ordered in [T - active_days, T).
        timezone: Zone of the local clock features.
        keep_known_abusers: Known abusers keep their snapshot rows (for scoring).
        lexicon: The extortion lexicon (None: the shipped one).
        demand_at: The demand models' training cutoffs; the reviews then carry
            ``demand_<k>`` columns (:meth:`DemandScores.wide`).
        trusted_sources: ``features.known_abuser_sources`` (None: every source).

    Returns:
        buyer_id, cutoff, the local features, target, ``_row``: True for snapshot
        rows; False for buyers kept only for their refund rate (inactive, or already
        known abusers, whom linked accounts still average over); and ``_known``: active
        buyers labeled abusers before the cutoff by a trusted source.
    """
    t = {name: _table_of(pdf, name, columns[name]) for name in TABLES}
    reviews = t["reviews"]
    sentiment = reviews.loc[reviews["sentiment"].notna(), ["review_id", "sentiment"]]
    demand_cols = [f"demand_{k}" for k in range(len(demand_at))]
    demand = (
        DemandScores.from_wide(reviews[["review_id", *demand_cols]], demand_at)
        if demand_cols
        else None
    )
    events = prepare_events(
        t["orders"],
        t["refunds"],
        reviews.drop(columns=["sentiment", *demand_cols]),
        t["buyers"],
        sentiment,
        labels=t["labels"],
        timezone=timezone,
        lexicon=lexicon,
        demand=demand,
    )
    # Category codes as prepare_events made them (factorize, sorted), back to names.
    categories = pd.factorize(t["orders"]["category"].to_numpy(dtype=object), sort=True)[1]
    by_name = {f.name: f for f in catalog}
    parts = []
    for cutoff in cutoffs:
        cut = _utc(cutoff)
        snap = snapshot(events, cut)
        overall, per_category = medians[cut]
        code = snap.orders["category_code"].to_numpy()
        lookup = np.array([per_category.get(str(c), np.nan) for c in categories], dtype="float64")
        med = np.where(code >= 0, lookup[np.maximum(code, 0)] if len(lookup) else np.nan, np.nan)
        # _category_median's own rule: no category, or none known, means all orders' median.
        snap.cache["category_median"] = np.where(np.isnan(med), overall, med)
        recent = snap.count("orders", snap.since("orders", active_days)) > 0
        keep = recent.copy()
        values = {n: np.asarray(by_name[n].compute(snap), dtype="float64") for n in local_names}
        if rate_name is not None:
            keep |= ~np.isnan(values[rate_name])
        codes = np.flatnonzero(keep)
        out = pd.DataFrame({"buyer_id": events.buyer_ids.to_numpy()[codes]})
        out["cutoff"] = cut
        for n in local_names:
            out[n] = values[n][codes]
        targets = label_targets(t["labels"], cut, horizon_days, trusted_sources)
        ids = out["buyer_id"]
        out["target"] = ids.isin(targets.positives).astype("int32").to_numpy()
        known = ids.isin(targets.known_abusers).to_numpy()
        out[ROW] = recent[codes]
        out[KNOWN] = out[ROW].to_numpy() & ids.isin(targets.trusted_abusers).to_numpy()
        if not keep_known_abusers:
            out[ROW] &= ~known
        parts.append(out)
    return for_arrow(pd.concat(parts, ignore_index=True))


def featurize_spark(
    spark: SparkSession,
    validated_dir: Path | str,
    sentiment_file: Path | str | None,
    cutoffs: Sequence[pd.Timestamp],
    catalog: Sequence[Feature],
    *,
    horizon_days: int,
    active_days: int,
    timezone: str,
    partitions: int,
    link_max_accounts: int,
    lexicon: Lexicon | None = None,
    demand: DemandScores | None = None,
    known_rows: bool = False,
    trusted_sources: Sequence[str] | None = None,
) -> DataFrame:
    """The snapshot table of :func:`refundguard.features.build_snapshots`, on Spark.

    Args:
        spark: The session (:func:`spark_session`).
        validated_dir: The validate stage's folder (or a URI).
        sentiment_file: ``review_sentiment.parquet`` (review_id, sentiment), or None.
        cutoffs: Snapshot cutoffs.
        catalog: The feature catalog.
        horizon_days: The target is "labeled abuser within this many days after T".
        active_days: Only buyers who ordered in this many days before T get a row.
        timezone: Zone of the local clock features (``base.timezone``).
        partitions: Number of buyer buckets (each runs the local core once).
        link_max_accounts: ``features.link_max_accounts``.
        lexicon: The extortion lexicon (None: the shipped one).
        demand: Demand-model scores by training cutoff, as the local path's (computed
            once on the driver: the model learns from every buyer's reviews), or None.
        known_rows: Also return the known abusers' rows (see :func:`featurize_tables`).
        trusted_sources: ``features.known_abuser_sources`` (None: every source).

    Returns:
        A lazy Spark DataFrame: buyer_id, cutoff, the catalog's features in order, target;
        the same rows as the local path. Collect it with :func:`to_local` or write it with
        :func:`write_snapshots`.

    Raises:
        DataContractError: No cutoffs, a table missing, or rows of unknown orders.
        ConfigError: A linked feature this engine does not know.
    """
    tables = read_validated(spark, validated_dir)
    sentiment = None
    if sentiment_file is not None and (
        "://" in str(sentiment_file) or Path(sentiment_file).exists()
    ):
        sentiment = spark.read.parquet(str(sentiment_file))
    return featurize_tables(
        tables,
        sentiment,
        cutoffs,
        catalog,
        horizon_days=horizon_days,
        active_days=active_days,
        timezone=timezone,
        partitions=partitions,
        link_max_accounts=link_max_accounts,
        lexicon=lexicon,
        demand=demand_frame(spark, demand),
        demand_at=demand.trained_at if demand is not None else (),
        known_rows=known_rows,
        trusted_sources=trusted_sources,
    )


def demand_frame(spark: SparkSession, demand: DemandScores | None) -> DataFrame | None:
    """Demand scores as a Spark DataFrame (review_id, ``demand_<k>``), or None.

    Args:
        spark: The session.
        demand: The scores.

    Returns:
        The frame, to join onto the reviews.
    """
    if demand is None or not len(demand.trained_at):
        return None
    schema = ", ".join(
        ["review_id string"] + [f"demand_{k} double" for k in range(len(demand.trained_at))]
    )
    return spark.createDataFrame(for_arrow(demand.wide()), schema)


def demand_tables(tables: Mapping[str, DataFrame]) -> dict[str, pd.DataFrame]:
    """The columns the demand model reads, collected to the driver (it trains on one machine).

    Args:
        tables: Validated orders, refunds and reviews on Spark (UTC session: naive
            timestamps are UTC, as the demand model reads them).

    Returns:
        orders, refunds and reviews as pandas frames.
    """
    columns = {
        "orders": ("order_id", "buyer_id", "amount"),
        "refunds": ("order_id", "requested_at", "amount", "type"),
        "reviews": ("review_id", "order_id", "created_at", "rating", "text"),
    }
    return {name: tables[name].select(*cols).toPandas() for name, cols in columns.items()}


def featurize_tables(
    tables: Mapping[str, DataFrame],
    sentiment: DataFrame | None,
    cutoffs: Sequence[pd.Timestamp],
    catalog: Sequence[Feature],
    *,
    horizon_days: int,
    active_days: int,
    timezone: str,
    partitions: int,
    link_max_accounts: int,
    keep_known_abusers: bool = False,
    known_rows: bool = False,
    lexicon: Lexicon | None = None,
    demand: DataFrame | None = None,
    demand_at: Sequence[pd.Timestamp] = (),
    trusted_sources: Sequence[str] | None = None,
) -> DataFrame:
    """:func:`featurize_spark` from Spark DataFrames (e.g. warehouse tables).

    Args:
        tables: orders, refunds, reviews, buyers and labels, validated, each with the
            ``_file`` and ``_pos`` columns of :func:`read_table` (any stable row order).
        sentiment: review_id and sentiment, or None.
        cutoffs: Snapshot cutoffs.
        catalog: The feature catalog.
        horizon_days: The target is "labeled abuser within this many days after T".
        active_days: Only buyers who ordered in this many days before T get a row.
        timezone: Zone of the local clock features (``base.timezone``).
        partitions: Number of buyer buckets (each runs the local core once).
        link_max_accounts: ``features.link_max_accounts``.
        keep_known_abusers: Keep buyers already labeled abusers before T (scoring does,
            as :func:`refundguard.features.compute_features`; training rows do not).
        known_rows: Also return the rows of active buyers labeled abusers before T, with a
            boolean ``known_abuser`` column (:func:`split_known` makes the local path's
            two tables of them).
        lexicon: The extortion lexicon (None: the shipped one).
        demand: review_id and ``demand_<k>`` (:func:`demand_frame`), or None.
        demand_at: The training cutoff of each ``demand_<k>``.
        trusted_sources: Label sources whose abuser decisions put a known abuser among
            the ``known_rows`` (None: every source).

    Returns:
        As :func:`featurize_spark`.

    Raises:
        DataContractError: No cutoffs, or rows of unknown orders.
        ConfigError: A linked feature this engine does not know.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    if not cutoffs:
        raise DataContractError("no cutoffs: the data span is too short for the horizon")
    linked = linked_names(catalog)
    rate_name = _rate_feature(catalog, linked)
    local_names = [f.name for f in catalog if f.name not in linked]
    cuts = [_utc(c) for c in cutoffs]
    medians = category_medians(tables["orders"], cuts)
    if demand is None:
        demand_at = ()
    rows, columns = _bucketed(tables, sentiment, partitions, demand)
    demand_at_ = tuple(pd.Timestamp(t) for t in demand_at)
    schema = ", ".join(
        ["buyer_id string", "cutoff timestamp"]
        + [f"`{n}` double" for n in local_names]
        + ["target int", f"{ROW} boolean", f"{KNOWN} boolean"]
    )
    catalog_ = tuple(catalog)
    trusted = tuple(trusted_sources) if trusted_sources is not None else None

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        return bucket_features(
            pdf,
            columns=columns,
            cutoffs=cuts,
            catalog=catalog_,
            local_names=local_names,
            medians=medians,
            rate_name=rate_name,
            horizon_days=horizon_days,
            active_days=active_days,
            timezone=timezone,
            keep_known_abusers=keep_known_abusers,
            lexicon=lexicon,
            demand_at=demand_at_,
            trusted_sources=trusted,
        )

    per_buyer = (
        rows.groupBy(BUCKET).applyInPandas(run, schema).persist(StorageLevel.MEMORY_AND_DISK)
    )
    rates = (
        per_buyer.select("cutoff", "buyer_id", F.col(rate_name).alias("rate"))
        if rate_name is not None
        else None
    )
    snaps = per_buyer.where(F.col(ROW) | F.col(KNOWN) if known_rows else F.col(ROW)).drop(ROW)
    if linked:
        extra = linked_features(
            tables["orders"],
            tables["labels"],
            rates,
            cuts,
            cap=link_max_accounts,
            names=linked,
        )
        snaps = snaps.join(extra, ["cutoff", "buyer_id"], "left")
        # Buyers who never used an id are in no linked row: 0 accounts, no linked rate.
        snaps = snaps.select(
            *[c for c in snaps.columns if c not in linked],
            *[
                F.coalesce(
                    F.col(n),
                    F.lit(float("nan") if n == rate_name else 0.0).cast("double"),
                ).alias(n)
                for n in linked
            ],
        )
    marks = [F.col(KNOWN).alias(KNOWN_COLUMN)] if known_rows else []
    out = snaps.select("buyer_id", "cutoff", *[f.name for f in catalog], "target", *marks)
    _PERSISTED[id(out)] = (out, per_buyer)
    return out


# The per-bucket results each featurize_tables output reads twice (snapshot rows and the
# linked refund rates), cached by Spark; :func:`to_local` and :func:`write_snapshots`
# release them once written, so a long session does not keep every run's rows.
# Each entry holds the output too, so its id cannot be reused while the entry lives.
_PERSISTED: dict[int, tuple[DataFrame, DataFrame]] = {}


def release(snaps: DataFrame) -> None:
    """Drop the cached per-bucket rows behind a :func:`featurize_spark` output.

    Args:
        snaps: The output; nothing happens for any other DataFrame.
    """
    entry = _PERSISTED.get(id(snaps))
    if entry is not None and entry[0] is snaps:
        del _PERSISTED[id(snaps)]
        entry[1].unpersist()


def to_local(snaps: DataFrame) -> pd.DataFrame:
    """Collect a Spark snapshot table as the local path's DataFrame (same dtypes, order).

    Args:
        snaps: :func:`featurize_spark`'s output.

    Returns:
        Rows sorted by cutoff then buyer_id; buyer_id str, cutoff UTC, target int8.
    """
    with warnings.catch_warnings(), worker_errors():
        # pyspark's own conversion code warns about pandas 3 (see the top of this module).
        warnings.simplefilter("ignore")
        out = cast(pd.DataFrame, snaps.toPandas())
    release(snaps)
    out["buyer_id"] = out["buyer_id"].astype("str")
    out["cutoff"] = _naive(out["cutoff"]).dt.tz_localize("UTC")
    out["target"] = out["target"].astype("int8")
    return out.sort_values(["cutoff", "buyer_id"], kind="stable", ignore_index=True)


def split_known(frame: pd.DataFrame) -> SnapshotTables:
    """The local path's two tables from a collected ``known_rows`` output.

    Args:
        frame: :func:`to_local` of a :func:`featurize_spark` output with ``known_rows``.

    Returns:
        The snapshot rows and the known abusers' rows (target 1), as
        :func:`refundguard.features.build.build_snapshot_tables` gives them.
    """
    known = frame[KNOWN_COLUMN].to_numpy(dtype=bool)
    rows = frame.loc[~known].drop(columns=KNOWN_COLUMN).reset_index(drop=True)
    abusers = frame.loc[known].drop(columns=KNOWN_COLUMN).reset_index(drop=True)
    abusers["target"] = np.ones(len(abusers), dtype="int8")
    return SnapshotTables(rows=rows, known=abusers)


def write_snapshots(snaps: DataFrame, out: Path | str) -> None:
    """Write a Spark snapshot table as Parquet, one folder per cutoff.

    Every task writes its own files (no single writer), each sorted by buyer_id.

    Args:
        snaps: :func:`featurize_spark`'s output.
        out: Destination folder (or URI); replaced if it exists.

    Raises:
        RefundGuardError: A worker refused the data (see :func:`worker_errors`).
    """
    from pyspark.sql import functions as F

    with worker_errors():
        (
            snaps.withColumn("target", F.col("target").cast("byte"))
            .sortWithinPartitions("cutoff", "buyer_id")
            .write.mode("overwrite")
            .partitionBy("cutoff")
            .parquet(str(out))
        )
    release(snaps)


def write_parquet_spark(df: DataFrame, out: Path | str) -> None:
    """Write any Spark result (e.g. scores) as a Parquet folder, workers writing in parallel.

    Args:
        df: The rows.
        out: Destination folder (or URI); replaced if it exists.

    Raises:
        RefundGuardError: A worker refused the data (see :func:`worker_errors`).
    """
    with worker_errors():
        df.write.mode("overwrite").parquet(str(out))


def sentiment_spark(reviews: DataFrame, model_dir: Path) -> DataFrame:
    """Sentiment of every review with its own text, with the saved weights, on Spark.

    The model is read once here, from its data files (``weights.npz`` with
    ``allow_pickle=False``, ``config.json``), and its arrays go to the workers, which
    score each Arrow batch with :func:`refundguard.sentiment.predict_reviews`.

    Args:
        reviews: Reviews with review_id and text (and rating, unused).
        model_dir: The sentiment stage's model folder.

    Returns:
        review_id and sentiment, as the local stage's ``review_sentiment.parquet``; empty
        when the stage trained no model.

    Raises:
        ModelError: The model folder cannot be read.
    """
    from pyspark.sql import functions as F

    from refundguard.features.sentiment import ReviewSentiment, read_model

    schema = "review_id string, sentiment double"
    model = read_model(Path(model_dir))
    if model is None:
        return reviews.sparkSession.createDataFrame([], schema)
    params = model.get_params()
    coef = np.asarray(model.coef_, dtype=np.float32).ravel()
    index = np.flatnonzero(coef).astype(np.int64)
    weight = coef[index]
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    classes = np.asarray(model.classes_).tolist()

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from refundguard.features.sentiment import predict_reviews

        worker = ReviewSentiment(**params)
        full = np.zeros(1 << worker.hash_bits, dtype=np.float32)
        full[index] = weight
        worker.coef_ = full.reshape(1, -1)
        worker.intercept_ = intercept
        worker.classes_ = np.asarray(classes)
        for batch in batches:
            batch = batch.assign(text=batch["text"].astype("str"))
            yield for_arrow(predict_reviews(worker, batch))

    return reviews.select("review_id", F.col("text")).mapInPandas(score, schema)


def stop(spark: SparkSession) -> None:
    """Stop a session made by :func:`spark_session`.

    Args:
        spark: The session.
    """
    spark.stop()


__all__: list[str] = [
    "bucket_features",
    "category_medians",
    "featurize_spark",
    "featurize_tables",
    "linked_features",
    "read_validated",
    "release",
    "sentiment_spark",
    "span_tables",
    "spark_session",
    "split_known",
    "to_local",
    "worker_errors",
    "write_parquet_spark",
    "write_snapshots",
]


def snapshots_on_spark(
    params: Params,
    validated_dir: Path,
    sentiment_file: Path,
    cutoffs: Sequence[pd.Timestamp],
    catalog: Sequence[Feature],
    horizon_days: int,
    evidence: ReviewEvidence | None = None,
) -> SnapshotTables:
    """The features stage's snapshot tables, computed per bucket of buyers on Spark.

    Args:
        params: The parameters (``spark`` block: the session).
        validated_dir: The validated tables.
        sentiment_file: The sentiment stage's scores (may not exist).
        cutoffs: Snapshot cutoffs.
        catalog: Features to compute.
        horizon_days: H.
        evidence: The lexicon and demand scores
            (:func:`refundguard.features.build.review_evidence`); None: the shipped
            lexicon and no demand scores.

    Returns:
        The same tables as :func:`refundguard.features.build.build_snapshot_tables`.
    """
    from pyspark.sql import SparkSession

    running = SparkSession.getActiveSession()
    spark = spark_session(
        params.spark.master, params.spark.partitions, params.spark.conf
    )
    try:
        log.info("features: %d cutoffs on Spark (%s, %d buckets)", len(cutoffs),
                 params.spark.master, params.spark.partitions)
        return split_known(to_local(
            featurize_spark(
                spark,
                validated_dir,
                sentiment_file if sentiment_file.exists() else None,
                cutoffs,
                catalog,
                horizon_days=horizon_days,
                active_days=params.features.active_days,
                timezone=params.base.timezone,
                partitions=params.spark.partitions,
                link_max_accounts=params.features.link_max_accounts,
                lexicon=evidence.lexicon if evidence is not None else None,
                demand=evidence.demand if evidence is not None else None,
                known_rows=True,
                trusted_sources=params.features.known_abuser_sources,
            )
        ))
    finally:
        # A session the caller already had (a notebook, a test) stays theirs to stop.
        if running is None:
            spark.stop()
