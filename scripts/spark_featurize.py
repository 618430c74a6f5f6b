r"""The features stage's snapshot rows on a Spark cluster, as a spark-submit application.

    spark-submit --master yarn --deploy-mode cluster --archives env.tar.gz#environment \
        --files params.yaml scripts/spark_featurize.py --params params.yaml \
        --validated hdfs:///rg/validated --sentiment hdfs:///rg/review_sentiment.parquet \
        --out hdfs:///rg/snapshots

Reads the validated tables where Spark reads them (a folder or any URI holding
``<table>.parquet`` for orders, refunds, reviews, buyers and labels), computes the rows
of :func:`refundguard.features.spark.featurize_spark` with the ``features`` and ``base``
blocks of params.yaml, and writes them with
:func:`refundguard.features.spark.write_snapshots` (Parquet, one folder per cutoff, every
task writing its own files; nothing is collected). Without ``--cutoff`` the cutoffs and
the label horizon are the features stage's, found from a few rows
(:func:`refundguard.features.spark.span_tables`). See docs/spark.md, "Running on a
cluster".

Under spark-submit, spark-submit decides where the job runs (``--master``,
``--deploy-mode``, resources); params.yaml's ``spark.master`` is not used, its
``spark.conf`` is applied to the new session and ``spark.partitions`` is the number of
buyer buckets. Run with plain ``python``, the session is the ``spark`` block's. A
refundguard error is one line on stderr and exit code 2, as in the ``refundguard``
command.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from refundguard.config import Params, load_params
from refundguard.errors import InputError, RefundGuardError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PROG = "spark_featurize"
log = logging.getLogger(PROG)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The parsed options.
    """
    ap = argparse.ArgumentParser(
        prog=PROG, description="The features stage's snapshot rows, on a Spark cluster."
    )
    ap.add_argument("--params", type=Path, default=Path("params.yaml"), help="params.yaml")
    ap.add_argument(
        "--validated",
        required=True,
        help="folder or URI holding <table>.parquet for every validated table",
    )
    ap.add_argument(
        "--sentiment",
        help="review_sentiment.parquet (review_id, sentiment) of the sentiment stage; "
        "without it the sentiment features are missing",
    )
    ap.add_argument("--out", required=True, help="destination folder or URI (replaced)")
    ap.add_argument(
        "--cutoff",
        action="append",
        default=[],
        help="a snapshot cutoff (repeatable): a date or date-time, local to "
        "base.timezone unless it has an offset; default: the features stage's cutoffs",
    )
    ap.add_argument(
        "--partitions", type=int, help="buyer buckets (default: params spark.partitions)"
    )
    return ap.parse_args(argv)


def parse_cutoffs(values: Sequence[str], timezone: str) -> list[pd.Timestamp]:
    """Cutoffs from the command line, in UTC, ascending.

    Args:
        values: Dates or date-times; naive ones are local to ``timezone``.
        timezone: ``base.timezone``.

    Returns:
        The cutoffs, sorted, without repeats.

    Raises:
        InputError: A value is not a date.
    """
    out = []
    for value in values:
        try:
            ts = pd.Timestamp(value)
        except (ValueError, TypeError) as exc:
            raise InputError(f"--cutoff {value!r}: not a date or date-time ({exc})") from exc
        ts = ts.tz_localize(timezone) if ts.tzinfo is None else ts
        out.append(ts.tz_convert("UTC"))
    return sorted(set(out))


def session(params: Params, partitions: int) -> SparkSession:
    """The Spark session: spark-submit's when launched by it, else the ``spark`` block's.

    Args:
        params: The parameters.
        partitions: Buyer buckets (shuffle partitions).

    Returns:
        The session, set up by :func:`refundguard.features.spark.spark_session`.
    """
    from pyspark.sql import SparkSession

    from refundguard.features.spark import spark_session

    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        # Plain python: the spark block says where to run.
        return spark_session(params.spark.master, partitions, params.spark.conf)
    # Launched by spark-submit (its JVM is already running): the master, deploy mode and
    # resources are spark-submit's. spark_session would set params' master, which wins
    # over --master; so the session is made here, with params' spark.conf, and
    # spark_session then applies refundguard's runtime SQL settings to it.
    builder = SparkSession.builder.appName("refundguard")
    for key, value in params.spark.conf.items():
        builder = builder.config(key, value)
    running = builder.getOrCreate()
    return spark_session(str(running.sparkContext.master), partitions)


def run(args: argparse.Namespace) -> str:
    """Compute the snapshot rows and write them.

    Args:
        args: The command line.

    Returns:
        A one-line summary.

    Raises:
        RefundGuardError: Bad params or options, missing tables, or data a worker refused.
    """
    from refundguard.features.build import review_evidence
    from refundguard.features.catalog import build_catalog
    from refundguard.features.spark import (
        demand_tables,
        featurize_spark,
        read_validated,
        span_tables,
        write_snapshots,
    )
    from refundguard.features.timesplit import make_cutoffs, resolve_horizon

    params = load_params(args.params)
    partitions = params.spark.partitions if args.partitions is None else args.partitions
    if partitions < 1:
        raise InputError(f"--partitions must be at least 1, got {partitions}")
    sentiment = args.sentiment
    if sentiment and "://" not in sentiment and not Path(sentiment).exists():
        raise InputError(f"--sentiment {sentiment}: not found")
    cutoffs = parse_cutoffs(args.cutoff, params.base.timezone)
    spark = session(params, partitions)
    try:
        if cutoffs and params.base.horizon_days is not None:
            horizon = int(params.base.horizon_days)
        else:
            # A few rows stand in for the tables: the data's span and the label delays.
            span = span_tables(spark, args.validated)
            horizon = resolve_horizon(span, params.base).days
            cutoffs = cutoffs or make_cutoffs(
                span,
                params.base,
                horizon_days=horizon,
                min_history_days=params.features.history_cap_days,
            )
        log.info(
            "%s: %d cutoffs (%s to %s), label horizon %d days, %d buyer buckets on %s",
            PROG, len(cutoffs), cutoffs[0].isoformat() if cutoffs else "-",
            cutoffs[-1].isoformat() if cutoffs else "-", horizon, partitions,
            spark.sparkContext.master,
        )
        # The review demand model learns from every buyer's reviews: trained on the driver
        # from the columns it reads (docs/spark.md, "What stays on the driver").
        evidence = review_evidence(
            demand_tables(read_validated(spark, args.validated)), cutoffs, params.features
        )
        snaps = featurize_spark(
            spark,
            args.validated,
            sentiment,
            cutoffs,
            build_catalog(params.features),
            horizon_days=horizon,
            active_days=params.features.active_days,
            timezone=params.base.timezone,
            partitions=partitions,
            link_max_accounts=params.features.link_max_accounts,
            lexicon=evidence.lexicon,
            demand=evidence.demand,
        )
        write_snapshots(snaps, args.out)
    finally:
        spark.stop()
    return f"{len(cutoffs)} cutoffs -> {args.out}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the application.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0, or 2 after a refundguard error (one line on stderr).
    """
    # As refundguard.cli.main: pyspark warns on import that pandas 3 is not fully
    # supported; refundguard uses pyspark.sql only.
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    args = parse_args(argv)
    try:
        summary = run(args)
    except RefundGuardError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    print(f"{PROG}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
