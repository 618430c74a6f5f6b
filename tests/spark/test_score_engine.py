"""`refundguard score --engine spark`: the same scores as the local engine, from raw tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.fixtures import run

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_score_on_spark_equals_the_local_engine(project: Path, tmp_path: Path) -> None:
    orders = pd.read_parquet(project / "data" / "validated" / "orders.parquet")
    listed = [*sorted(orders["buyer_id"].unique())[:400], "NO_SUCH_BUYER"]
    buyers = tmp_path / "buyers.csv"
    pd.DataFrame({"buyer_id": listed}).to_csv(buyers, index=False)
    common = ["refundguard", "score", "--model", "models/scorer", "--data", "data/simulated",
              "--buyers", str(buyers), "--as-of", "2025-01-20"]
    run([*common, "--out", str(tmp_path / "local.parquet")], project)
    done = run([*common, "--engine", "spark", "--out", str(tmp_path / "spark.parquet")], project)
    local = pd.read_parquet(tmp_path / "local.parquet").set_index("buyer_id")
    on_spark = pd.read_parquet(tmp_path / "spark.parquet").set_index("buyer_id")
    # Spark scores the listed buyers active in the scorer's window; the rest are reported.
    assert 100 < len(on_spark) < len(listed)
    assert "NO_SUCH_BUYER" not in on_spark.index
    assert "not scored on Spark" in done.stderr and "appear nowhere" in done.stderr
    same = local.loc[on_spark.index]
    assert np.max(np.abs(on_spark["probability"] - same["probability"])) <= 1e-12
    for col in ("risk_score", "tier", "model_version"):
        assert (on_spark[col].astype(str) == same[col].astype(str)).all(), col
    # Nothing left behind but the output folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["buyers.csv", "local.parquet",
                                                          "spark.parquet"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "s.csv"], "writes a .parquet folder"),
        (["--out", "s.parquet", "--lang", "zh"], "writes a .parquet folder"),
        (["--out", "s.parquet", "--engine", "gpu"], "--engine must be local or spark"),
    ],
)
def test_score_engine_errors_are_one_line(
    project: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    args = ["refundguard", "score", "--model", "models/scorer", "--data", "data/simulated",
            "--as-of", "2025-01-20", *extra]
    if "--engine" not in extra:
        args += ["--engine", "spark"]
    done = run(args, project, check=False)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr
