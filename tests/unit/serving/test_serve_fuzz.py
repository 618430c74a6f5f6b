"""Malformed requests to the served scorer: 4xx, valid JSON, short messages, still serving.

A seeded list of mutations of a good request (wrong types, nulls, missing and extra
columns, huge and out-of-range numbers, broken bodies, wrong content types) is sent to
`mlflow models serve`; then a good request must still get the same 200 answer.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.serving_support import assert_short_client_error, cells, serving, strict_json

from refundguard import Scorer

pytestmark = pytest.mark.slow

SEED = 20261130
N_MUTATIONS = 50


@dataclass(frozen=True)
class Case:
    """One request to send and what its answer must be.

    Attributes:
        name: What was done to the good request.
        body: The request body.
        content_type: Its Content-Type header.
        bad: It must be refused with a 4xx (else a 200 is allowed too).
        words: Words the refusal's message must contain (the column, the problem).
        short: The refusal's message must be one short line (MLflow's own messages for
            bad params and bodies are out of refundguard's hands).
    """

    name: str
    body: bytes
    content_type: str = "application/json"
    bad: bool = True
    words: tuple[str, ...] = ()
    short: bool = True


@pytest.fixture(scope="module")
def server(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("serve_fuzz") / "server.log"
    with serving(project / "models/scorer", project, log) as url:
        yield url


@pytest.fixture(scope="module")
def scorer(project: Path) -> Scorer:
    return Scorer.load(project / "models/scorer")


@pytest.fixture(scope="module")
def good(project: Path, scorer: Scorer) -> pd.DataFrame:
    snaps = pd.read_parquet(project / "data/features/snapshots.parquet")
    return snaps.loc[:, ["buyer_id", *scorer.features]].head(4).reset_index(drop=True)


def _send(url: str, body: bytes, content_type: str) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return int(r.status), r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.headers.get("Content-Type", ""), e.read()


def _split(columns: list[str], data: list[list[Any]], **extra: Any) -> bytes:
    # Python's json writes huge ints exactly and refuses NaN: the body is what a client sends.
    return json.dumps({"dataframe_split": {"columns": columns, "data": data}, **extra},
                      allow_nan=False).encode()


def _mutations(good: pd.DataFrame, scorer: Scorer, rng: np.random.Generator) -> list[Case]:
    columns = list(good.columns)
    features = list(scorer.features)
    strict = [f for f in features if not scorer.catalog[f].nullable]
    nullable = [f for f in features if scorer.catalog[f].nullable]
    bounded = [f for f in features if scorer.catalog[f].unit in ("share", "score", "stars")]

    def good_cells() -> list[list[Any]]:
        return cells(good)

    def pick(names: list[str]) -> str:
        return names[int(rng.integers(len(names)))]

    def row() -> int:
        return int(rng.integers(len(good)))

    def set_cell(column: str, value: Any) -> bytes:
        data = good_cells()
        data[row()][columns.index(column)] = value
        return _split(columns, data)

    def wrong_type() -> Case:
        col = pick(features)
        value = [str(rng.integers(10)), "abc", "", [1, 2], {"a": 1}][int(rng.integers(5))]
        return Case(f"{col} = {value!r}", set_cell(col, value), words=(col, "numbers"))

    def null_strict() -> Case:
        col = pick(strict)
        return Case(f"{col} = null", set_cell(col, None), words=(col, "missing values"))

    def null_nullable() -> Case:
        col = pick(nullable)
        return Case(f"{col} = null (allowed)", set_cell(col, None), bad=False)

    def null_id() -> Case:
        value = [None, "", "  "][int(rng.integers(3))]
        return Case(f"buyer_id = {value!r}", set_cell("buyer_id", value),
                    words=("buyer_id", "missing or empty"))

    def missing_column() -> Case:
        col = pick(columns)
        i = columns.index(col)
        data = [r[:i] + r[i + 1:] for r in good_cells()]
        return Case(f"no {col}", _split(columns[:i] + columns[i + 1:], data),
                    words=(col,))

    def extra_column() -> Case:
        name = ["target", "Unnamed: 0", "refunds_7d", "x"][int(rng.integers(4))]
        data = [[*r, 1.0] for r in good_cells()]
        return Case(f"extra {name}", _split([*columns, name], data),
                    words=(name, "unexpected"))

    def negative() -> Case:
        col = pick(features)
        value = -float(rng.integers(1, 1000))
        return Case(f"{col} = {value}", set_cell(col, value), words=(col, ">= "))

    def above_one() -> Case:
        col = pick(bounded)
        value = 5.0 + float(rng.integers(1, 100))
        return Case(f"{col} = {value}", set_cell(col, value), words=(col, "<= "))

    def huge() -> Case:
        col = pick(features)
        unit = scorer.catalog[col].unit
        value = [1e308, 10**30][int(rng.integers(2))]
        # In range for counts, money, days and ratios: a valid, if odd, request.
        return Case(f"{col} = {value!r}", set_cell(col, value),
                    bad=unit in ("share", "score", "stars"), words=(col,))

    def too_big_for_float() -> Case:
        col = pick(features)
        return Case(f"{col} = 10**400", set_cell(col, 10**400), words=(col, "numbers"))

    kinds: list[Callable[[], Case]] = [
        wrong_type, null_strict, null_nullable, null_id, missing_column, extra_column,
        negative, above_one, huge, too_big_for_float,
    ]
    cases = [kinds[int(rng.integers(len(kinds)))]() for _ in range(N_MUTATIONS - 12)]
    good_body = _split(columns, good_cells())
    return [
        *cases,
        Case("empty body", b"", short=False),
        Case("invalid JSON", b'{"dataframe_split": {"columns": [', short=False),
        Case("JSON list", b"[1, 2, 3]", short=False),
        Case("JSON null", b"null", short=False),
        Case("no data key", b'{"rows": []}', short=False),
        Case("dataframe_split null", b'{"dataframe_split": null}', short=False),
        Case("records of numbers", b'{"dataframe_records": [1, 2]}', short=False),
        Case("text/plain", good_body, content_type="text/plain", short=False),
        Case("xml", b"<rows/>", content_type="application/xml", short=False),
        Case("csv without features", b"buyer_id\nB1\n", content_type="text/csv",
             words=("orders_30d", "missing")),
        Case("latin-1 charset", good_body, content_type="application/json; charset=latin-1",
             short=False),
        Case("reasons = 'no'", _split(columns, good_cells(), params={"reasons": "no"}),
             short=False),
    ]


def test_malformed_requests_get_clean_client_errors(server: str, good: pd.DataFrame,
                                                    scorer: Scorer) -> None:
    url = f"{server}/invocations"
    status, _, first = _send(url, _split(list(good.columns), cells(good)), "application/json")
    assert status == 200, first
    cases = _mutations(good, scorer, np.random.default_rng(SEED))
    assert len(cases) == N_MUTATIONS
    assert sum(c.bad for c in cases) >= 40, "most mutations must be bad requests"
    failures = []
    for case in cases:
        status, content_type, raw = _send(url, case.body, case.content_type)
        try:
            assert status < 500, f"server error {status}"
            if case.bad:
                assert 400 <= status < 500, f"status {status} for a bad request"
            if content_type.startswith("application/json"):
                answer = strict_json(raw)
            else:
                # MLflow answers an unsupported content type with plain text before any
                # refundguard code runs; it must still be a short line.
                assert status == 415 and len(raw) < 400 and b"Traceback" not in raw, raw
                continue
            if status == 200:
                predictions = pd.DataFrame(answer["predictions"])
                assert predictions["probability"].between(0, 1).all()
                assert predictions["buyer_id"].map(type).eq(str).all()
            elif case.short:
                assert_short_client_error(status, answer, *case.words)
            else:
                assert "Traceback" not in json.dumps(answer) and "stack_trace" not in answer
        except AssertionError as exc:
            failures.append(f"{case.name}: {exc}"[:500])
    assert not failures, "\n".join(failures)
    # The server still answers, and the same as before.
    status, _, last = _send(url, _split(list(good.columns), cells(good)), "application/json")
    assert status == 200 and strict_json(last) == strict_json(first)
