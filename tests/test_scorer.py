from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from refundguard import Scorer
from refundguard.errors import InputError, ModelError
from refundguard.features import load_validated
from refundguard.train import load_model


@pytest.fixture(scope="module")
def scorer(project: Path) -> Scorer:
    return Scorer.load(project / "models/scorer")


@pytest.fixture(scope="module")
def rows(project: Path) -> pd.DataFrame:
    snaps = pd.read_parquet(project / "data/features/snapshots.parquet")
    return snaps[snaps["cutoff"] == snaps["cutoff"].max()].head(300).reset_index(drop=True)


def test_score_matches_trained_model(scorer: Scorer, rows: pd.DataFrame, project: Path) -> None:
    out = scorer.score(rows)
    assert list(out.columns) == ["buyer_id", "probability", "risk_score", "tier"]
    trained = load_model(project / "models/model").predict(rows)
    np.testing.assert_allclose(out["probability"], trained, atol=1e-12)
    assert (out["risk_score"] == np.rint(out["probability"] * 1000)).all()


def test_chunking_does_not_change_scores(scorer: Scorer, rows: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(scorer.score(rows), scorer.score(rows, chunk_size=7))


@pytest.mark.parametrize("drop", ["buyer_id", "orders_30d", "refund_rate_count_90d"])
def test_missing_column_is_named(scorer: Scorer, rows: pd.DataFrame, drop: str) -> None:
    with pytest.raises(InputError, match=drop):
        scorer.score(rows.drop(columns=[drop]))


def test_wrong_dtype_is_named(scorer: Scorer, rows: pd.DataFrame) -> None:
    bad = rows.copy()
    bad["spend_30d"] = "lots"
    with pytest.raises(InputError, match="spend_30d"):
        scorer.score(bad)


def test_nan_features_are_scored_as_missing(scorer: Scorer, rows: pd.DataFrame) -> None:
    bad = rows.copy()
    bad.loc[:, list(scorer.features)] = np.nan
    out = scorer.score(bad)
    assert out["probability"].notna().all()


def test_score_events_equals_features_then_score(scorer: Scorer, project: Path,
                                                 rows: pd.DataFrame) -> None:
    tables = load_validated(project / "data/validated")
    cutoff = rows["cutoff"].iloc[0]
    buyers = [*rows["buyer_id"].head(50), "never-seen-buyer"]
    out = scorer.score_events(tables, cutoff, buyers)
    assert list(out["buyer_id"]) == buyers
    expected = scorer.score(rows.head(50))
    np.testing.assert_allclose(out["probability"].head(50), expected["probability"], atol=1e-9)
    assert out["tier"].iloc[-1] in {"trusted", "standard", "review", "restrict"}


def test_load_rejects_other_catalog(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "scorer"
    shutil.copytree(project / "models/scorer", copy)
    cfg_file = copy / "artifacts/scorer.json"
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    cfg["catalog_version"] = "000000000000"
    cfg_file.write_text(json.dumps(cfg), encoding="utf-8")
    with pytest.raises(ModelError, match="feature catalog"):
        Scorer.load(copy)


@pytest.mark.parametrize("damage", ["truncate_model", "delete_calibration", "not_a_folder"])
def test_load_rejects_broken_folders(project: Path, tmp_path: Path, damage: str) -> None:
    copy = tmp_path / "scorer"
    shutil.copytree(project / "models/scorer", copy)
    if damage == "truncate_model":
        (copy / "artifacts/model.txt").write_text("tree\nversion=v4\n", encoding="utf-8")
    elif damage == "delete_calibration":
        (copy / "artifacts/calibration.json").unlink()
    else:
        copy = tmp_path / "nothing"
    with pytest.raises(ModelError):
        Scorer.load(copy)
