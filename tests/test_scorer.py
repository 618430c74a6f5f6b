from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from refundguard import Scorer
from refundguard.errors import InputError, ModelError
from refundguard.features import NO_HISTORY, has_history, load_validated
from refundguard.policy import assign_tiers
from refundguard.reasons import SEPARATOR, format_value
from refundguard.scorer import OUTPUT_COLUMNS
from refundguard.train import load_model


@pytest.fixture(scope="module")
def scorer(project: Path) -> Scorer:
    return Scorer.load(project / "models/scorer")


@pytest.fixture(scope="module")
def rows(project: Path) -> pd.DataFrame:
    snaps = pd.read_parquet(project / "data/features/snapshots.parquet")
    last = snaps[snaps["cutoff"] == snaps["cutoff"].max()].drop(columns=["target"])
    # Every tier present: the 300 riskiest by the raw model plus 300 others.
    model = load_model(project / "models/model")
    order = np.argsort(-model.raw(last), kind="stable")
    pick = np.concatenate([order[:300], order[-300:]])
    return last.iloc[np.sort(pick)].reset_index(drop=True)


def test_score_matches_trained_model(scorer: Scorer, rows: pd.DataFrame, project: Path) -> None:
    out = scorer.score(rows)
    assert tuple(out.columns) == OUTPUT_COLUMNS
    trained = load_model(project / "models/model").predict(rows)
    np.testing.assert_allclose(out["probability"], trained, atol=1e-12)
    assert (out["risk_score"] == np.rint(out["probability"] * 1000)).all()
    bounds = json.loads((project / "models/model/policy.json").read_text())["bounds"]
    fresh = ~has_history(rows)
    expected = assign_tiers(out["probability"].to_numpy(), tuple(bounds))
    assert (out["tier"][~fresh] == expected[~fresh]).all()
    cfg = json.loads((project / "models/scorer/artifacts/scorer.json").read_text())
    assert set(out["model_version"]) == {cfg["model_version"]}


def test_flagged_buyers_and_only_they_get_reasons(scorer: Scorer, rows: pd.DataFrame) -> None:
    out = scorer.score(rows)
    flagged = out["tier"].isin(["review", "restrict"]).to_numpy()
    fresh = ~has_history(rows)
    assert flagged.any(), "the riskiest rows reach review"
    for col in ("reasons_zh", "reasons_en"):
        assert (out.loc[flagged, col] != "").all()
        assert (out.loc[~flagged & ~fresh, col] == "").all()
        parts = out.loc[flagged, col].str.split(SEPARATOR, regex=False)
        assert parts.map(len).between(1, 3).all()
    assert out.loc[flagged, "reasons_zh"].str.contains("的买家").any()
    assert out.loc[flagged, "reasons_en"].str.contains("of buyers").any()
    quiet = scorer.score(rows, reasons=False)
    assert (quiet.loc[~fresh, "reasons_en"] == "").all()
    pd.testing.assert_frame_equal(quiet.drop(columns=["reasons_zh", "reasons_en"]),
                                  out.drop(columns=["reasons_zh", "reasons_en"]))


def test_reasons_follow_the_largest_shap_contributions(
    scorer: Scorer, rows: pd.DataFrame
) -> None:
    out = scorer.score(rows)
    flagged = rows[out["tier"].isin(["review", "restrict"]).to_numpy()].head(20)
    x = flagged.loc[:, list(scorer.features)].to_numpy(dtype="float64")
    contrib = scorer.booster.predict(x, pred_contrib=True)[:, :-1]
    explained = scorer.explain(flagged)
    for i, reasons in enumerate(explained):
        top = [scorer.features[j] for j in np.argsort(-np.where(np.isfinite(x[i]),
                                                                 contrib[i], -np.inf))[:3]
               if contrib[i, j] > 0 and np.isfinite(x[i, j])]
        assert [r.feature for r in reasons] == top
        for r in reasons:
            shown = format_value(r.value, scorer.catalog[r.feature].unit)
            assert shown in r.en and shown in r.zh


def test_no_history_buyer_gets_the_catalog_tier_and_reason(
    scorer: Scorer, rows: pd.DataFrame
) -> None:
    fresh = rows.head(1).copy()
    fresh[NO_HISTORY.feature] = np.nan
    out = scorer.score(fresh)
    assert out["tier"].iloc[0] == NO_HISTORY.tier
    assert out["reasons_zh"].iloc[0] == NO_HISTORY.zh
    assert out["reasons_en"].iloc[0] == NO_HISTORY.en


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


def test_nan_is_missing_where_the_catalog_allows_it(scorer: Scorer, rows: pd.DataFrame) -> None:
    nullable = [f for f in scorer.features if scorer.catalog[f].nullable]
    strict = [f for f in scorer.features if not scorer.catalog[f].nullable]
    assert nullable and strict
    ok = rows.copy()
    ok.loc[:, nullable] = np.nan
    out = scorer.score(ok)
    assert out["probability"].notna().all()
    bad = rows.copy()
    bad.loc[3, strict[0]] = np.nan
    with pytest.raises(InputError, match=strict[0]):
        scorer.score(bad)


@pytest.mark.parametrize("column", ["target", "Unnamed: 0"])
def test_unexpected_column_is_named(scorer: Scorer, rows: pd.DataFrame, column: str) -> None:
    with pytest.raises(InputError, match=f"unexpected column '{column}'"):
        scorer.score(rows.assign(**{column: 1}))


def test_duplicate_column_is_named(scorer: Scorer, rows: pd.DataFrame) -> None:
    doubled = pd.concat([rows, rows[["spend_30d"]]], axis=1)
    with pytest.raises(InputError, match="'spend_30d' more than once"):
        scorer.score(doubled)


@pytest.mark.parametrize("dtype", ["Int64", "Float64", "float32", "bool"])
def test_numeric_dtypes_are_accepted(scorer: Scorer, rows: pd.DataFrame, dtype: str) -> None:
    converted = rows.copy()
    converted["orders_30d"] = (converted["orders_30d"] > 0) if dtype == "bool" else (
        converted["orders_30d"].astype(dtype))
    out = scorer.score(converted)
    assert out["probability"].notna().all()


def test_infinite_value_is_named(scorer: Scorer, rows: pd.DataFrame) -> None:
    bad = rows.copy()
    bad.loc[0, "spend_30d"] = np.inf
    with pytest.raises(InputError, match="spend_30d"):
        scorer.score(bad)


def test_score_events_equals_features_then_score(scorer: Scorer, project: Path,
                                                 rows: pd.DataFrame) -> None:
    tables = load_validated(project / "data/validated")
    cutoff = rows["cutoff"].iloc[0]
    buyers = [*rows["buyer_id"].head(50), "never-seen-buyer"]
    out = scorer.score_events(tables, cutoff, buyers)
    assert list(out["buyer_id"]) == buyers
    expected = scorer.score(rows.head(50))
    np.testing.assert_allclose(out["probability"].head(50), expected["probability"], atol=1e-9)
    assert (out["tier"].head(50) == expected["tier"]).all()
    assert out["tier"].iloc[-1] == NO_HISTORY.tier
    assert out["reasons_en"].iloc[-1] == NO_HISTORY.en


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
