"""The scorer behind `mlflow models serve`: REST answers equal the Python API's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.serving_support import _post, assert_short_client_error, cells, serving

from refundguard import Scorer
from refundguard.model.bundle import split_from_info
from refundguard.model.train import split_rows


@pytest.fixture(scope="module")
def server(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with serving(project / "models/scorer", project, log) as url:
        yield url


@pytest.fixture(scope="module")
def rows(project: Path) -> pd.DataFrame:
    info = json.loads((project / "models/model/training.json").read_text(encoding="utf-8"))
    snaps = pd.read_parquet(project / "data/features/snapshots.parquet")
    scorer = Scorer.load(project / "models/scorer")
    test = split_rows(snaps, split_from_info(info))["test"].loc[:, ["buyer_id", *scorer.features]]
    # Rows of every tier the window has, so that the answers are not all alike.
    tiers = scorer.score(test)["tier"]
    picked = pd.concat([test[tiers == t].head(40) for t in tiers.unique()])
    return picked.reset_index(drop=True)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _assert_same(answer: list[dict[str, Any]], expected: pd.DataFrame) -> None:
    got = pd.DataFrame(answer)
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected)
    for col in expected.columns:
        if pd.api.types.is_float_dtype(expected[col]):
            np.testing.assert_allclose(got[col].to_numpy(dtype="float64"),
                                       expected[col].to_numpy(), rtol=0, atol=1e-12)
        else:
            assert [_plain(v) for v in got[col]] == [_plain(v) for v in expected[col]], col


def test_dataframe_split_equals_python_api(server: str, project: Path,
                                           rows: pd.DataFrame) -> None:
    expected = Scorer.load(project / "models/scorer").score(rows)
    body = {"dataframe_split": {"columns": list(rows.columns), "data": cells(rows)}}
    status, answer = _post(f"{server}/invocations", body)
    assert status == 200, answer
    _assert_same(answer["predictions"], expected)


def test_dataframe_records_equals_python_api(server: str, project: Path,
                                             rows: pd.DataFrame) -> None:
    expected = Scorer.load(project / "models/scorer").score(rows)
    cols = list(rows.columns)
    records = [dict(zip(cols, r, strict=True)) for r in cells(rows)]
    status, answer = _post(f"{server}/invocations", {"dataframe_records": records})
    assert status == 200, answer
    _assert_same(answer["predictions"], expected)


def test_bad_request_is_a_client_error(server: str, rows: pd.DataFrame) -> None:
    """The bug: 3,650 characters (the request and the schema echoed), the column at the end."""
    partial = rows.drop(columns=["refunds_90d"]).head(3)
    body = {"dataframe_split": {"columns": list(partial.columns), "data": cells(partial)}}
    status, answer = _post(f"{server}/invocations", body)
    assert_short_client_error(status, answer, "refunds_90d", "missing")


def _split_with(rows: pd.DataFrame, column: str, value: Any, row: int = 1) -> dict[str, Any]:
    data = cells(rows.head(3))
    data[row][list(rows.columns).index(column)] = value
    return {"dataframe_split": {"columns": list(rows.columns), "data": data}}


@pytest.mark.parametrize(
    ("column", "value", "words"),
    [
        # The bug: 400 "unexpected error" with a full stack trace and server paths.
        ("refunds_30d", None, ["refunds_30d", "missing values"]),
        # The bug: 200 with "buyer_id": NaN, which is not JSON.
        ("buyer_id", None, ["buyer_id", "missing or empty"]),
        # The bug: accepted, and the tier went down.
        ("refunds_30d", -5, ["refunds_30d", ">= 0", "1 row"]),
        ("refund_rate_count_90d", 1.5, ["refund_rate_count_90d", "<= 1", "1 row"]),
        ("spend_30d", "lots", ["spend_30d", "numbers", "'lots'"]),
    ],
)
def test_bad_values_get_one_short_message(server: str, rows: pd.DataFrame, column: str,
                                          value: Any, words: list[str]) -> None:
    status, answer = _post(f"{server}/invocations", _split_with(rows, column, value))
    assert_short_client_error(status, answer, *words)


def test_unexpected_column_is_refused(server: str, rows: pd.DataFrame) -> None:
    extra = rows.head(2).assign(target=1.0)
    body = {"dataframe_split": {"columns": list(extra.columns), "data": cells(extra)}}
    status, answer = _post(f"{server}/invocations", body)
    assert_short_client_error(status, answer, "unexpected column 'target'")


def test_null_in_a_nullable_feature_is_scored(server: str, project: Path,
                                              rows: pd.DataFrame) -> None:
    scorer = Scorer.load(project / "models/scorer")
    nullable = next(f for f in scorer.features if scorer.catalog[f].nullable)
    body = _split_with(rows, nullable, None)
    status, answer = _post(f"{server}/invocations", body)
    assert status == 200, answer
    expected = rows.head(3).copy()
    expected.loc[1, nullable] = np.nan
    _assert_same(answer["predictions"], scorer.score(expected))


def test_reasons_can_be_switched_off_per_request(server: str, project: Path,
                                                 rows: pd.DataFrame) -> None:
    scorer = Scorer.load(project / "models/scorer")
    expected = scorer.score(rows, reasons=False)
    # The rows include flagged buyers, whose reasons would otherwise be filled in.
    assert (scorer.score(rows)["reasons_en"] != expected["reasons_en"]).any()
    body = {"dataframe_split": {"columns": list(rows.columns), "data": cells(rows)},
            "params": {"reasons": False}}
    status, answer = _post(f"{server}/invocations", body)
    assert status == 200, answer
    _assert_same(answer["predictions"], expected)
