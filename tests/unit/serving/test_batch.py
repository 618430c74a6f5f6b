"""Streaming batch scoring of a feature file (refundguard.batch and `score --features`)."""

from __future__ import annotations

import io
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from refundguard import Scorer, progress
from refundguard.cli import app
from refundguard.errors import InputError
from refundguard.serving.batch import score_file
from refundguard.serving.scorer import HISTORY_FEATURES

runner = CliRunner()


@pytest.fixture(scope="module")
def scorer(project: Path) -> Scorer:
    return Scorer.load(project / "models/scorer")


@pytest.fixture(scope="module")
def features_file(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every snapshot row of the tiny world (several cutoffs, cutoff/target columns too)."""
    snaps = pd.read_parquet(project / "data/features/snapshots.parquet")
    path = tmp_path_factory.mktemp("batch") / "features.parquet"
    # Small row groups, so that batches cross row-group boundaries.
    snaps.to_parquet(path, index=False, row_group_size=333)
    return path


@pytest.fixture(scope="module")
def expected(scorer: Scorer, features_file: Path) -> pd.DataFrame:
    return scorer.score(pd.read_parquet(features_file, columns=["buyer_id", *scorer.features]))


@pytest.mark.parametrize("chunk_size", [1000, 257, 10**7])
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_streamed_scores_equal_in_memory_scores(scorer: Scorer, features_file: Path,
                                                expected: pd.DataFrame, tmp_path: Path,
                                                chunk_size: int, suffix: str) -> None:
    out = tmp_path / f"scores{suffix}"
    result = score_file(scorer, features_file, out, chunk_size=chunk_size)
    n = len(expected)
    assert result.rows == n
    assert result.batches == math.ceil(n / chunk_size)
    assert sum(result.tiers.values()) == n
    assert result.tiers == expected["tier"].value_counts().to_dict()
    if suffix == ".parquet":
        got = pd.read_parquet(out)
        assert pq.ParquetFile(out).metadata.num_row_groups == result.batches
    else:
        assert out.read_bytes().startswith(b"\xef\xbb\xbf")
        got = pd.read_csv(out, encoding="utf-8-sig", dtype={"buyer_id": "str"})
    # The file's cutoff column is kept, right after buyer_id.
    assert list(got.columns) == ["buyer_id", "cutoff", *expected.columns[1:]]
    assert got["buyer_id"].tolist() == expected["buyer_id"].tolist()
    np.testing.assert_allclose(got["probability"], expected["probability"], rtol=0, atol=1e-12)
    assert got["tier"].tolist() == expected["tier"].tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_each_call_sees_at_most_one_chunk(scorer: Scorer, features_file: Path,
                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory is bounded by the chunk: the scorer never receives more rows than that."""
    sizes: list[int] = []
    real = Scorer.score

    def spy(self: Scorer, features: pd.DataFrame, *args: object, **kwargs: object) -> object:
        sizes.append(len(features))
        # Only the columns the model needs are read (and a history feature the model may
        # lack, for the no-history tier), not cutoff or target.
        needed = {"buyer_id", *self.features}
        assert needed <= set(features.columns) <= needed | set(HISTORY_FEATURES)
        return real(self, features, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Scorer, "score", spy)
    score_file(scorer, features_file, tmp_path / "s.parquet", chunk_size=100)
    total = pq.ParquetFile(features_file).metadata.num_rows
    assert max(sizes) == 100 and sum(sizes) == total


def test_progress_is_reported_per_batch(scorer: Scorer, features_file: Path,
                                        tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    score_file(scorer, features_file, tmp_path / "s.csv", chunk_size=500,
               progress=lambda done, total: seen.append((done, total)))
    total = pq.ParquetFile(features_file).metadata.num_rows
    assert [d for d, _ in seen] == [*range(500, total, 500), total]
    assert {t for _, t in seen} == {total}


def test_empty_feature_file_gives_an_empty_result(scorer: Scorer, features_file: Path,
                                                  tmp_path: Path) -> None:
    empty = tmp_path / "empty.parquet"
    pd.read_parquet(features_file).iloc[0:0].to_parquet(empty, index=False)
    for out in (tmp_path / "s.parquet", tmp_path / "s.csv"):
        result = score_file(scorer, empty, out)
        assert result.rows == 0 and result.batches == 0
        back = pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(
            out, encoding="utf-8-sig")
        assert back.empty
        assert list(back.columns)[:5] == ["buyer_id", "cutoff", "probability", "risk_score",
                                          "tier"]


def test_bad_input_is_named_and_leaves_the_previous_output(scorer: Scorer, features_file: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "s.parquet"
    out.write_bytes(b"previous")
    frame = pd.read_parquet(features_file)
    cases = {
        "missing.parquet": frame.drop(columns=["orders_30d"]),
        "no_buyer.parquet": frame.drop(columns=["buyer_id"]),
    }
    for name, df in cases.items():
        df.to_parquet(tmp_path / name, index=False)
    text = frame.copy()
    text["spend_30d"] = text["spend_30d"].astype("str")
    # The bad value comes late: earlier batches are already written to the temporary file.
    text.iloc[: len(text) // 2, text.columns.get_loc("spend_30d")] = "1.0"
    text.to_parquet(tmp_path / "text.parquet", index=False)
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not parquet")
    (tmp_path / "f.csv").write_text("buyer_id\nb1\n", encoding="utf-8")
    for src, message in [("missing.parquet", "orders_30d"), ("no_buyer.parquet", "buyer_id"),
                         ("text.parquet", "spend_30d"), ("broken.parquet", "cannot read"),
                         ("f.csv", "must be a .parquet file"), ("absent.parquet", "not found")]:
        with pytest.raises(InputError, match=message):
            score_file(scorer, tmp_path / src, out, chunk_size=100)
        assert out.read_bytes() == b"previous", src
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(InputError, match=r"\.parquet or \.csv"):
        score_file(scorer, features_file, tmp_path / "s.xlsx")
    with pytest.raises(InputError, match="chunk size"):
        score_file(scorer, features_file, out, chunk_size=0)


def test_cli_score_features(project: Path, features_file: Path, expected: pd.DataFrame,
                            tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    result = runner.invoke(app, ["score", "--model", str(project / "models/scorer"),
                                 "--features", str(features_file), "--out", str(out),
                                 "--chunk-size", "400", "--params",
                                 str(project / "params.yaml")])
    assert result.exit_code == 0, result.output
    assert f"scored {len(expected):,} buyers" in result.stdout
    got = pd.read_parquet(out)
    assert got["buyer_id"].tolist() == expected["buyer_id"].tolist()
    np.testing.assert_allclose(got["probability"], expected["probability"], atol=1e-12)


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--as-of", "2024-12-01"], "--features takes no --data, --buyers or --as-of"),
     (["--data", "somewhere"], "--features takes no"),
     (["--chunk-size", "0"], "chunk size must be at least 1"),
     (["--out", "scores.txt"], "--out must end in .csv, .xlsx, .parquet, .json")],
)
def test_cli_score_features_misuse_is_one_line(project: Path, features_file: Path,
                                               tmp_path: Path, extra: list[str],
                                               message: str) -> None:
    args = ["score", "--model", str(project / "models/scorer"), "--features",
            str(features_file), "--out", str(tmp_path / "s.csv"), *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_several_cutoffs_stay_apart(scorer: Scorer, features_file: Path, tmp_path: Path) -> None:
    """The same buyer at different cutoffs: each output row says which cutoff it is."""
    snaps = pd.read_parquet(features_file)
    assert snaps["cutoff"].nunique() > 1
    out = tmp_path / "s.parquet"
    score_file(scorer, features_file, out, chunk_size=300)
    got = pd.read_parquet(out)
    pd.testing.assert_series_equal(got["cutoff"], snaps["cutoff"], check_names=True)
    assert got.groupby("cutoff").size().to_dict() == snaps.groupby("cutoff").size().to_dict()
    # Without a cutoff column there is none in the output.
    plain = tmp_path / "plain.parquet"
    snaps.drop(columns=["cutoff"]).head(50).to_parquet(plain, index=False)
    score_file(scorer, plain, tmp_path / "p.parquet")
    assert "cutoff" not in pd.read_parquet(tmp_path / "p.parquet").columns


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return True


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


@pytest.fixture
def loud(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.ENV_QUIET, raising=False)


@pytest.mark.usefixtures("loud")
def test_bar_is_drawn_on_a_terminal_and_counts_right() -> None:
    stream = _Terminal()
    assert progress.enabled(stream)
    with progress.bar("scoring", total=7, stream=stream) as advance:
        for n in (3, 3, 1):
            advance(n)
    assert advance.done == 7
    shown = _plain(stream.getvalue())
    assert "scoring" in shown and "7/7" in shown
    stream = _Terminal()
    items = list(progress.track(["a", "b", "c"], "sentiment", stream=stream))
    assert items == ["a", "b", "c"]
    assert "3/3" in _plain(stream.getvalue())


@pytest.mark.usefixtures("loud")
def test_bar_is_silent_when_not_a_terminal() -> None:
    stream = io.StringIO()
    assert not progress.enabled(stream)
    with progress.bar("scoring", total=5, stream=stream) as advance:
        for _ in range(5):
            advance()
    assert advance.done == 5
    assert list(progress.track(range(4), "x", stream=stream)) == [0, 1, 2, 3]
    assert stream.getvalue() == ""
    closed = _Terminal()
    closed.close()
    assert not progress.enabled(closed)


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_bar_is_silent_when_quiet(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(progress.ENV_QUIET, value)
    stream = _Terminal()
    assert progress.quiet() and not progress.enabled(stream)
    with progress.bar("scoring", total=2, stream=stream) as advance:
        advance(2)
    assert advance.done == 2
    assert stream.getvalue() == ""
    monkeypatch.setenv(progress.ENV_QUIET, "0")
    assert not progress.quiet() and progress.enabled(stream)


@pytest.mark.usefixtures("loud")
def test_score_file_draws_a_bar_per_chunk_on_a_terminal(
    scorer: Scorer, features_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = _Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    result = score_file(scorer, features_file, tmp_path / "s.parquet", chunk_size=1000)
    shown = _plain(stream.getvalue())
    assert "scoring" in shown and f"{result.rows}/{result.rows}" in shown
    monkeypatch.setenv(progress.ENV_QUIET, "1")
    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    score_file(scorer, features_file, tmp_path / "s.parquet", chunk_size=1000)
    assert quiet.getvalue() == ""
