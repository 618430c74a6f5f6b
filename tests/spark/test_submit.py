"""The documented cluster route: spark-submit runs scripts/spark_featurize.py (docs/spark.md).

spark-submit (the one in pyspark's package) runs the script in local mode on a tiny
simulated world, as it would on YARN or Kubernetes with another ``--master``; the rows it
writes must be the local features stage's. Everything, Spark's scratch included, stays
in the test's temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tests.fixtures import REPO, VENV_BIN, assert_same_feature_values, tiny_params_dict

from refundguard.config import load_params
from refundguard.data.io import write_parquet
from refundguard.data.validate import validate_tables
from refundguard.features.catalog import build_catalog
from refundguard.features.sentiment import ReviewSentiment, predict_reviews, training_pairs
from refundguard.sim.simulate import simulate_world
from refundguard.stages import features

pytestmark = [
    pytest.mark.spark,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

SCRIPT = REPO / "scripts" / "spark_featurize.py"


def _world(root: Path) -> Path:
    """A tiny world (1,500 buyers, about 12,500 orders) as the pipeline's stages leave it.

    Writes params.yaml, validated/<table>.parquet and sentiment/review_sentiment.parquet
    under ``root``; returns the params file.
    """
    raw = tiny_params_dict()
    # spark-submit's --master (local[2]) must win over this one.
    raw["spark"] = {"master": "local[1]", "partitions": 4, "conf": {}}
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    params = load_params(params_file)
    sim = simulate_world(params.simulate, seed=params.base.seed)
    tables = validate_tables(
        {k: getattr(sim, k) for k in ("orders", "refunds", "reviews", "labels", "buyers")},
        timezone=params.base.timezone,
        max_text_chars=2000,
    ).tables
    for name, table in tables.items():
        write_parquet(table, root / "validated" / f"{name}.parquet")
    texts, y = training_pairs(tables["reviews"])
    model = ReviewSentiment(hash_bits=16, random_state=params.base.seed).fit(texts, y)
    write_parquet(
        predict_reviews(model, tables["reviews"]),
        root / "sentiment" / "review_sentiment.parquet",
    )
    return params_file


def _submit_env(root: Path, scratch: Path) -> dict[str, str]:
    """This environment without Spark settings of its own, scratch files under ``scratch``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SPARK_", "PYSPARK_")) and k != "REFUNDGUARD_ROOT"
    }
    jvm = f"-XX:-UsePerfData -Djava.io.tmpdir={scratch}"
    env.update(
        # Driver and Python workers: this virtualenv (on a cluster, ./environment/bin/python).
        PYSPARK_PYTHON=sys.executable,
        SPARK_LOCAL_DIRS=str(scratch),
        SPARK_LAUNCHER_OPTS=jvm,
        TMPDIR=str(scratch),
        REFUNDGUARD_ROOT=str(root),
    )
    return env


def test_spark_submit_writes_the_features_stages_rows(tmp_path: Path) -> None:
    params_file = _world(tmp_path)
    validated = tmp_path / "validated"
    sentiment = tmp_path / "sentiment" / "review_sentiment.parquet"

    # The features stage on the local engine: the reference, at its last cutoff (where the
    # stage's review demand model is the one trained at that cutoff, as the script's is).
    local = features.main(params_file, validated, sentiment.parent, tmp_path / "local")
    cutoff = local["cutoff"].max()
    expected = local[local["cutoff"] == cutoff].drop(columns="cutoff")
    expected = expected.sort_values("buyer_id", ignore_index=True)

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / "snapshots"
    cmd = [
        str(VENV_BIN / "spark-submit"),
        "--master", "local[2]",
        "--driver-java-options", f"-XX:-UsePerfData -Djava.io.tmpdir={scratch}",
        "--conf", f"spark.local.dir={scratch}",
        "--conf", f"spark.sql.warehouse.dir={scratch / 'warehouse'}",
        "--conf", "spark.ui.enabled=false",
        str(SCRIPT),
        "--params", str(params_file),
        "--validated", str(validated),
        "--sentiment", str(sentiment),
        "--out", str(out),
        "--cutoff", cutoff.isoformat(),
    ]  # fmt: skip
    proc = subprocess.run(
        cmd,
        cwd=tmp_path,
        env=_submit_env(tmp_path, scratch),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    # spark-submit hands on the driver's stderr merged into its stdout.
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert f"spark_featurize: 1 cutoffs -> {out}" in proc.stdout
    assert "4 buyer buckets on local[2]" in proc.stdout  # spark-submit's master, not params'

    # write_snapshots: one folder per cutoff, named by the cutoff in UTC.
    folders = sorted(out.glob("cutoff=*"))
    assert len(folders) == 1
    written = pd.Timestamp(urllib.parse.unquote(folders[0].name.split("=", 1)[1]), tz="UTC")
    assert written == cutoff
    got = pd.read_parquet(folders[0]).sort_values("buyer_id", ignore_index=True)

    catalog = build_catalog(load_params(params_file).features)
    assert list(got.columns) == ["buyer_id", *[f.name for f in catalog], "target"]
    assert len(got) == len(expected) >= 300
    assert (got["buyer_id"].to_numpy() == expected["buyer_id"].to_numpy()).all()
    assert (got["target"].to_numpy() == expected["target"].to_numpy()).all()
    assert_same_feature_values(expected, got, catalog)
    # What crosses buckets or comes from the driver is in the comparison: links, the
    # category medians, the sentiment table and the review demand model's scores.
    assert (got["linked_accounts_any"] > 0).sum() > 50
    assert (got["high_value_share_365d"] > 0).sum() > 50
    assert got["mean_sentiment_365d"].notna().sum() > 100
    assert got["max_demand_score_365d"].notna().sum() > 50
    assert got["target"].sum() > 0
