"""Features stage: the snapshot table for every cutoff, on the local or the Spark engine."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from refundguard import progress
from refundguard.config import load_params
from refundguard.data.io import write_json, write_parquet
from refundguard.errors import ConfigError
from refundguard.features.build import (
    SparkBuild,
    build_snapshot_tables,
    load_validated,
    review_evidence,
)
from refundguard.features.catalog import build_catalog, catalog_version
from refundguard.features.events import prepare_events
from refundguard.features.extortion import REVIEW_MODELS_DIR, save_review_models
from refundguard.features.timesplit import make_cutoffs, resolve_horizon
from refundguard.paths import (
    FEATURES_DIR,
    KNOWN_ABUSERS_FILE_NAME,
    MANIFEST_FILE_NAME,
    PARAMS_FILE,
    REVIEW_SENTIMENT_FILE_NAME,
    SENTIMENT_DIR,
    SNAPSHOTS_FILE_NAME,
    VALIDATED_DIR,
)

log = logging.getLogger(__name__)


def main(
    params_path: Path = PARAMS_FILE,
    validated_dir: Path = VALIDATED_DIR,
    sentiment_dir: Path = SENTIMENT_DIR,
    out_dir: Path = FEATURES_DIR,
    spark_build: SparkBuild | None = None,
) -> pd.DataFrame:
    """Build the snapshot table of every cutoff and write it with the catalog.

    Also writes ``out_dir/known_abusers.parquet``, the rows of buyers already labeled
    abusers at each cutoff (extra positives for the train stage), and
    ``out_dir/review_models``: the review demand model trained on the data before the
    last cutoff (and the user's extortion lexicon), which the train stage puts in the
    model folder for the scorer.

    Args:
        params_path: params.yaml.
        validated_dir: Output of the validate stage.
        sentiment_dir: Output of the sentiment stage.
        out_dir: Destination folder.
        spark_build: The Spark engine's builder, for ``features.engine: spark``
            (:func:`refundguard.features.spark.snapshots_on_spark`; passed in by the CLI so
            that this module never imports the engine built on it).

    Returns:
        The snapshot table written to ``out_dir/snapshots.parquet``.

    Raises:
        ConfigError: ``features.engine`` is spark and no builder was given.
    """
    params = load_params(params_path)
    tables = load_validated(validated_dir)
    sentiment_file = sentiment_dir / REVIEW_SENTIMENT_FILE_NAME
    horizon = resolve_horizon(tables, params.base)
    log.info(
        "features: label horizon %d days (%s, %d label delays measured)",
        horizon.days, horizon.source, horizon.n_delays,
    )
    cutoffs = make_cutoffs(
        tables, params.base, horizon_days=horizon.days,
        min_history_days=params.features.history_cap_days,
    )
    catalog = build_catalog(params.features)
    evidence = review_evidence(tables, cutoffs, params.features)
    if evidence.model is not None:
        log.info(
            "features: review demand model at %s: %d demand-like, %d complaint-like reviews%s",
            evidence.model.cutoff, evidence.model.n_demand_like,
            evidence.model.n_complaint_like, "" if evidence.model.trained else " (too few)",
        )
    if params.features.engine == "spark":
        if spark_build is None:
            raise ConfigError(
                "features.engine is spark: run the stage as `refundguard featurize`, or pass "
                "refundguard.features.spark.snapshots_on_spark as spark_build"
            )
        tables_out = spark_build(params, validated_dir, sentiment_file, cutoffs, catalog,
                                 horizon.days, evidence)
    else:
        events = prepare_events(
            tables["orders"],
            tables["refunds"],
            tables["reviews"],
            tables["buyers"],
            pd.read_parquet(sentiment_file) if sentiment_file.exists() else None,
            labels=tables["labels"],
            timezone=params.base.timezone,
            lexicon=evidence.lexicon,
            demand=evidence.demand,
        )
        with progress.bar("features: cutoffs", total=len(cutoffs)) as advance:

            def step(done: int, total: int, cutoff: pd.Timestamp) -> None:
                log.info("features: cutoff %d/%d (%s)", done, total, cutoff.date())
                advance(1)

            tables_out = build_snapshot_tables(
                events,
                tables["labels"],
                cutoffs,
                catalog,
                horizon_days=horizon.days,
                active_days=params.features.active_days,
                progress=step,
                trusted_sources=params.features.known_abuser_sources,
            )
    snaps = tables_out.rows
    write_parquet(snaps, out_dir / SNAPSHOTS_FILE_NAME)
    write_parquet(tables_out.known, out_dir / KNOWN_ABUSERS_FILE_NAME)
    save_review_models(out_dir / REVIEW_MODELS_DIR, evidence.model, params.features.lexicon_path())
    write_json(
        {
            "catalog_version": catalog_version(catalog),
            "features": [f.name for f in catalog],
            "cutoffs": [c.isoformat() for c in cutoffs],
            "horizon": horizon.to_dict(),
            "rows": len(snaps),
            "positives": int(snaps["target"].sum()),
            "known_abuser_rows": len(tables_out.known),
        },
        out_dir / MANIFEST_FILE_NAME,
    )
    return snaps
