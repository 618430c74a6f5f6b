"""The Spark tier: Spark (local mode) gives the local path's features, sentiment and scores.

Run it alone with ``pytest -m spark``. One SparkSession (``local[2]``) serves every test.
Features and sentiment are compared on a tiny simulated world built here exactly as the
pipeline's stages build it; scoring uses the session's ``project`` (a full ``dvc repro``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.fixtures import REPO, assert_same_feature_values, tiny_params

from refundguard.config import FeaturesParams, Params, load_params
from refundguard.data.io import write_parquet
from refundguard.data.validate import validate_tables
from refundguard.errors import DataContractError
from refundguard.features import spark as se
from refundguard.features.build import build_snapshots
from refundguard.features.catalog import Feature, build_catalog
from refundguard.features.events import prepare_events
from refundguard.features.sentiment import ReviewSentiment, predict_reviews, training_pairs
from refundguard.features.timesplit import label_delays, make_cutoffs, resolve_horizon
from refundguard.serving import spark as ss
from refundguard.serving.scorer import Scorer
from refundguard.sim.simulate import simulate_world

pytestmark = [
    pytest.mark.spark,
    pytest.mark.slow,
    # pyspark 4.3's own warnings about pandas 3, raised inside pyspark's conversions.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

PARTITIONS = 4
HORIZON = 42


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    session = se.spark_session("local[2]", PARTITIONS, work_dir=tmp_path_factory.mktemp("spark"))
    yield session
    session.stop()


@dataclass(frozen=True)
class World:
    root: Path
    params: Params
    tables: dict[str, pd.DataFrame]
    sentiment: pd.DataFrame
    cutoffs: list[pd.Timestamp]

    @property
    def validated(self) -> Path:
        return self.root / "validated"

    @property
    def sentiment_file(self) -> Path:
        return self.root / "review_sentiment.parquet"

    @property
    def sentiment_model(self) -> Path:
        return self.root / "sentiment_model"

    def local_snapshots(
        self, catalog: Sequence[Feature], cutoffs: Sequence[pd.Timestamp]
    ) -> pd.DataFrame:
        # As features.main does, with the sentiment stage's output joined.
        t = self.tables
        events = prepare_events(
            t["orders"],
            t["refunds"],
            t["reviews"],
            t["buyers"],
            self.sentiment,
            labels=t["labels"],
            timezone=self.params.base.timezone,
        )
        return build_snapshots(
            events,
            t["labels"],
            cutoffs,
            catalog,
            horizon_days=HORIZON,
            active_days=self.params.features.active_days,
        )


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A tiny marketplace, validated, with its sentiment model and scores, as Parquet."""
    root = tmp_path_factory.mktemp("spark-world")
    params = tiny_params(root)
    sim = simulate_world(params.simulate, seed=params.base.seed)
    raw = {k: getattr(sim, k) for k in ("orders", "refunds", "reviews", "labels", "buyers")}
    tables = validate_tables(raw, timezone=params.base.timezone, max_text_chars=2000).tables
    for name, table in tables.items():
        write_parquet(table, root / "validated" / f"{name}.parquet")
    texts, y = training_pairs(tables["reviews"])
    model = ReviewSentiment(hash_bits=16, random_state=params.base.seed).fit(texts, y)
    model.save(root / "sentiment_model")
    sentiment = predict_reviews(model, tables["reviews"])
    write_parquet(sentiment, root / "review_sentiment.parquet")
    base = replace(params.base, horizon_days=HORIZON)
    cutoffs = make_cutoffs(
        tables, base, horizon_days=HORIZON, min_history_days=params.features.history_cap_days
    )
    assert len(cutoffs) >= 5
    return World(root, params, tables, sentiment, cutoffs)


def _featurize(
    spark: object,
    world: World,
    catalog: Sequence[Feature],
    cutoffs: Sequence[pd.Timestamp],
    *,
    sentiment: bool = True,
    cap: int | None = None,
) -> pd.DataFrame:
    fp = world.params.features
    return se.to_local(
        se.featurize_spark(
            spark,  # type: ignore[arg-type]
            world.validated,
            world.sentiment_file if sentiment else None,
            cutoffs,
            catalog,
            horizon_days=HORIZON,
            active_days=fp.active_days,
            timezone=world.params.base.timezone,
            partitions=PARTITIONS,
            link_max_accounts=fp.link_max_accounts if cap is None else cap,
        )
    )


def _assert_same_snapshots(local: pd.DataFrame, spark: pd.DataFrame, catalog: object) -> None:
    assert list(spark.columns) == list(local.columns)
    assert len(spark) == len(local)
    assert (spark["buyer_id"].to_numpy() == local["buyer_id"].to_numpy()).all()
    assert (spark["cutoff"].to_numpy() == local["cutoff"].to_numpy()).all()
    assert (spark["target"].to_numpy() == local["target"].to_numpy()).all()
    assert_same_feature_values(local, spark, catalog)  # type: ignore[arg-type]


def test_spark_features_equal_local_for_every_buyer_and_cutoff(spark: object, world: World) -> None:
    catalog = build_catalog(world.params.features)
    local = world.local_snapshots(catalog, world.cutoffs)
    got = _featurize(spark, world, catalog, world.cutoffs)

    _assert_same_snapshots(local, got, catalog)
    # The comparison covers what crosses buckets: links, labels of linked accounts,
    # category medians, and the sentiment joined from its own table.
    assert (got["linked_accounts_any"] > 0).sum() > 50
    assert (got["linked_known_abusers"] > 0).sum() > 5
    assert got["linked_refund_rate_365d"].notna().sum() > 50
    assert got["mean_sentiment_365d"].notna().sum() > 100
    assert got["high_value_share_365d"].gt(0).sum() > 50
    assert got["target"].sum() > 10
    assert got["cutoff"].nunique() == len(world.cutoffs)


def test_spark_link_cap_and_no_sentiment_match_local(spark: object, world: World) -> None:
    # A cap of 2: every id held by 3 or more accounts links nobody, at each cutoff as
    # counted then; the holders of one id fall in different buckets. Without the
    # sentiment table, the sentiment features are missing on both engines.
    catalog = build_catalog(replace(world.params.features, link_max_accounts=2))
    cutoffs = world.cutoffs[-2:]
    no_sentiment = replace(world, sentiment=world.sentiment.iloc[:0])
    local = no_sentiment.local_snapshots(catalog, cutoffs)
    got = _featurize(spark, world, catalog, cutoffs, sentiment=False, cap=2)
    _assert_same_snapshots(local, got, catalog)

    default = world.local_snapshots(build_catalog(world.params.features), cutoffs)
    # The cap changed the links (else this test would not test it) but not the holders.
    assert (default["linked_accounts_any"] > got["linked_accounts_any"]).any()
    assert (default["max_accounts_per_id"] > 2).any()
    assert (default["max_accounts_per_id"].to_numpy() == got["max_accounts_per_id"]).all()
    assert got["mean_sentiment_365d"].isna().all() and got["reviews_365d"].gt(0).any()


def test_spark_sentiment_equals_the_local_stage(spark: object, world: World) -> None:
    reviews = se.read_table(spark, world.validated / "reviews.parquet")  # type: ignore[arg-type]
    got = se.sentiment_spark(reviews, world.sentiment_model).toPandas()
    local = world.sentiment
    assert len(local) > 100
    got = got.set_index("review_id").sort_index()
    local = local.set_index("review_id").sort_index()
    assert got.index.equals(local.index)
    worst = np.max(np.abs(got["sentiment"].to_numpy() - local["sentiment"].to_numpy()))
    assert worst <= 1e-12


def _assert_same_scores(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert len(got) == len(expected)
    got = got.set_index("buyer_id").loc[expected["buyer_id"]].reset_index()
    assert np.max(np.abs(got["probability"] - expected["probability"])) <= 1e-12
    for col in ("risk_score", "tier", "reasons_zh", "reasons_en", "model_version"):
        same = got[col].astype(str).to_numpy() == expected[col].astype(str).to_numpy()
        assert same.all(), col


def test_spark_udf_and_score_spark_equal_the_scorer(
    spark: object, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    model_dir = project / "models" / "scorer"
    scorer = Scorer.load(model_dir)
    snaps = pd.read_parquet(project / "data" / "features" / "snapshots.parquet")
    rows = snaps.loc[snaps["cutoff"] == snaps["cutoff"].max(), ["buyer_id", *scorer.features]]
    rows = rows.reset_index(drop=True)
    expected = scorer.score(rows)
    assert expected["tier"].isin(["review", "restrict"]).any()

    frame = spark.createDataFrame(se.for_arrow(rows))  # type: ignore[attr-defined]
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    udf = mlflow.pyfunc.spark_udf(
        spark, str(model_dir), result_type=ss.SCORE_SCHEMA, env_manager="local"
    )
    names = ["buyer_id", *scorer.features]
    by_udf = frame.select(udf(F.struct(*names)).alias("s")).select("s.*").toPandas()
    _assert_same_scores(by_udf, expected)
    _assert_same_scores(ss.score_spark(frame, model_dir).toPandas(), expected)


def test_score_tables_spark_equals_score_events(spark: object, project: Path) -> None:
    model_dir = project / "models" / "scorer"
    validated = project / "data" / "validated"
    as_of = pd.Timestamp("2025-01-20", tz="Asia/Shanghai")
    tables = {n: pd.read_parquet(validated / f"{n}.parquet") for n in se.TABLES}
    expected = Scorer.load(model_dir).score_events(tables, as_of)
    assert len(expected) > 500

    got = ss.score_tables_spark(
        spark,  # type: ignore[arg-type]
        validated,
        as_of,
        model_dir,
        partitions=PARTITIONS,
    ).toPandas()
    _assert_same_scores(got, expected)


def test_missing_validated_table_is_one_clear_error(spark: object, tmp_path: Path) -> None:
    with pytest.raises(DataContractError, match=r"orders\.parquet: not found"):
        se.featurize_spark(
            spark,  # type: ignore[arg-type]
            tmp_path,
            None,
            [pd.Timestamp("2024-06-01", tz="UTC")],
            build_catalog(load_params(REPO / "params.yaml").features),
            horizon_days=42,
            active_days=365,
            timezone="Asia/Shanghai",
            partitions=PARTITIONS,
            link_max_accounts=30,
        )


def test_refund_of_an_unknown_order_is_one_clear_error(
    spark: object, hand_tables: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    # The local path refuses it in prepare_events; a bucket does the same, and the
    # driver raises the worker's DataContractError itself, not a Python traceback.
    refunds = hand_tables["refunds"].copy()
    refunds.loc[0, "order_id"] = "no-such-order"
    for name, table in {**hand_tables, "refunds": refunds}.items():
        write_parquet(table, tmp_path / f"{name}.parquet")
    snaps = se.featurize_spark(
        spark,  # type: ignore[arg-type]
        tmp_path,
        None,
        [pd.Timestamp("2024-03-01", tz="Asia/Shanghai")],
        build_catalog(load_params(REPO / "params.yaml").features),
        horizon_days=42,
        active_days=365,
        timezone="Asia/Shanghai",
        partitions=PARTITIONS,
        link_max_accounts=30,
    )
    with pytest.raises(DataContractError, match=r"^refunds for unknown orders"):
        se.to_local(snaps)


def test_span_tables_give_the_same_cutoffs_and_horizon(spark: object, world: World) -> None:
    span = se.span_tables(spark, world.validated)  # type: ignore[arg-type]
    assert len(span["orders"]) < 200 and len(span["refunds"]) < 200
    derived = replace(world.params.base, horizon_days=None)
    full = resolve_horizon(world.tables, derived)
    assert full.source == "data" and full.n_delays >= 20  # measured, not the fallback
    assert resolve_horizon(span, derived) == full
    assert np.array_equal(label_delays(span), label_delays(world.tables))
    for base in (derived, world.params.base):
        assert make_cutoffs(span, base) == make_cutoffs(world.tables, base)


def test_features_stage_on_spark_writes_the_local_snapshots(
    spark: object, world: World, tmp_path: Path
) -> None:
    import yaml

    from refundguard.stages import features

    def stage(engine: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        raw = {"base": {"seed": world.params.base.seed, "horizon_days": HORIZON,
                        "min_history_days": world.params.base.min_history_days,
                        "cutoff_step_days": world.params.base.cutoff_step_days},
               "features": {"history_cap_days": world.params.features.history_cap_days,
                            "engine": engine},
               "spark": {"master": "local[2]", "partitions": PARTITIONS}}
        params_file = tmp_path / f"{engine}.yaml"
        params_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
        out = tmp_path / engine
        features.main(params_file, world.validated, world.root, out,
                      spark_build=se.snapshots_on_spark)
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["cutoffs"] and manifest["horizon"]["days"] == HORIZON
        return (pd.read_parquet(out / "snapshots.parquet"),
                pd.read_parquet(out / "known_abusers.parquet"))

    (local, local_known), (on_spark, spark_known) = stage("local"), stage("spark")
    _assert_same_snapshots(local, on_spark, build_catalog(FeaturesParams()))
    # The known abusers' rows (extra positives for training) match too, and are there.
    assert len(local_known) > 10 and (local_known["target"] == 1).all()
    _assert_same_snapshots(local_known, spark_known, build_catalog(FeaturesParams()))
    # The test's own session is still running: the stage does not stop a session it
    # did not start.
    assert spark.sparkContext._jsc is not None  # type: ignore[attr-defined]
