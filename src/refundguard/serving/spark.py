"""Scoring on Spark: an exported scorer applied to feature rows or to raw tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
from refundguard.features.spark import (
    demand_frame,
    demand_tables,
    featurize_tables,
    for_arrow,
    read_validated,
    sentiment_spark,
)

SCORE_SCHEMA = (
    "buyer_id string, probability double, risk_score long, tier string, "
    "reasons_zh string, reasons_en string, model_version string"
)


def score_spark(features: DataFrame, model_dir: Path, *, reasons: bool = True) -> DataFrame:
    """Scores of feature rows with an exported scorer, on Spark (no MLflow code loading).

    Each worker loads the scorer's data files once (:meth:`refundguard.scorer.Scorer.load`)
    and scores its Arrow batches.

    Args:
        features: buyer_id and the model's feature columns (e.g. a snapshot table).
        model_dir: An exported scorer folder readable from every worker.
        reasons: Write the top 3 reasons for buyers in review or restrict.

    Returns:
        buyer_id, probability, risk_score, tier, reasons_zh, reasons_en, model_version.

    Raises:
        ModelError: The scorer cannot be read (checked here, before any work is sent).
    """
    from pyspark.sql import functions as F

    from refundguard.serving.scorer import Scorer

    scorer = Scorer.load(Path(model_dir))
    names = ["buyer_id", *scorer.features]
    folder = str(Path(model_dir).resolve())
    schema = SCORE_SCHEMA

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        worker = Scorer.load(Path(folder))
        for batch in batches:
            batch = batch.assign(buyer_id=batch["buyer_id"].astype("str"))
            yield for_arrow(worker.score(batch, reasons=reasons))

    return features.select(*[F.col(n) for n in names]).mapInPandas(score, schema)


def score_tables_spark(
    spark: SparkSession,
    validated_dir: Path | str,
    as_of: pd.Timestamp,
    model_dir: Path,
    *,
    partitions: int,
    reasons: bool = True,
) -> DataFrame:
    """Score every buyer active at ``as_of`` from validated tables, on Spark.

    The Spark counterpart of :meth:`refundguard.scorer.Scorer.score_events` with no buyer
    list: the scorer's own sentiment model scores the reviews, the features are computed
    as of ``as_of`` with the scorer's feature settings, and every row is scored.

    Args:
        spark: The session.
        validated_dir: Folder (or URI) of the validated tables.
        as_of: Only what was known before this time is used (tz-aware, or UTC).
        model_dir: An exported scorer folder readable from every worker.
        partitions: Number of buyer buckets.
        reasons: Write the top 3 reasons for buyers in review or restrict.

    Returns:
        A lazy DataFrame with the columns of :data:`SCORE_SCHEMA`; write it with
        ``.write.parquet`` (each worker writes its own part, nothing is collected).

    Raises:
        ModelError: The scorer cannot be read.
        DataContractError: A table is missing or unusable.
    """
    from refundguard.features.catalog import build_catalog
    from refundguard.serving.scorer import Scorer

    scorer = Scorer.load(Path(model_dir))
    tables = read_validated(spark, validated_dir)
    sentiment = (
        sentiment_spark(tables["reviews"], scorer.sentiment_dir)
        if scorer.sentiment_dir is not None
        else None
    )
    fp = scorer.feature_params
    # The demand model trains (or scores) on one machine, as Scorer.score_events does.
    demand = scorer.demand_scores(demand_tables(tables), as_of)
    feats = featurize_tables(
        tables,
        sentiment,
        [as_of],
        build_catalog(fp),
        horizon_days=0,
        active_days=fp.active_days,
        timezone=scorer.timezone,
        partitions=partitions,
        link_max_accounts=fp.link_max_accounts,
        keep_known_abusers=True,
        lexicon=scorer.lexicon,
        demand=demand_frame(spark, demand),
        demand_at=demand.trained_at,
    )
    return score_spark(feats, Path(model_dir), reasons=reasons)
