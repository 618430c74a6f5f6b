from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tests.fixtures import run
from typer.testing import CliRunner

from refundguard import progress
from refundguard.cli import app
from refundguard.features.build import load_validated
from refundguard.features.catalog import NO_HISTORY
from refundguard.serving.scorer import OUTPUT_COLUMNS, last_event_time

runner = CliRunner()


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("simulate", "validate", "sentiment", "featurize", "train", "evaluate", "export",
                "score", "case", "consistency", "model"):
        assert cmd in result.output


def test_score_writes_scores_for_the_list(project: Path, tmp_path: Path) -> None:
    orders = pd.read_parquet(project / "data/validated/orders.parquet")
    buyers = [*sorted(orders["buyer_id"].unique())[:20], "not-a-buyer"]
    pd.DataFrame({"buyer_id": buyers}).to_csv(tmp_path / "buyers.csv", index=False)
    out = tmp_path / "scores.csv"
    proc = run(["refundguard", "score", "--model", str(project / "models/scorer"),
                "--data", str(project / "data/simulated"), "--buyers",
                str(tmp_path / "buyers.csv"), "--as-of", "2024-12-01", "--out", str(out)],
               project)
    scores = pd.read_csv(out, encoding="utf-8-sig")
    assert list(scores["buyer_id"]) == buyers
    assert tuple(scores.columns) == (*OUTPUT_COLUMNS, "known_buyer")
    assert scores["probability"].between(0, 1).all()
    # The unknown buyer has no history: the catalog's tier and reason, and the flag.
    assert scores["tier"].iloc[-1] == NO_HISTORY.tier
    assert scores["reasons_zh"].iloc[-1] == NO_HISTORY.zh
    assert scores["known_buyer"].tolist() == [True] * 20 + [False]
    assert "scored 21 buyers" in proc.stdout
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("refundguard: warning:")]
    assert len(warnings) == 1
    assert "1 of 21 buyer ids appear nowhere in the data ('not-a-buyer'" in warnings[0]


def _score_args(project: Path, tmp_path: Path, **over: str) -> list[str]:
    (tmp_path / "buyers.csv").write_text("buyer_id\nB000001\n", encoding="utf-8")
    args = {"--model": str(project / "models/scorer"), "--data": str(project / "data/simulated"),
            "--buyers": str(tmp_path / "buyers.csv"), "--as-of": "2024-12-01",
            "--out": str(tmp_path / "s.csv")}
    args.update(over)
    return ["score", *[x for kv in args.items() for x in kv]]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"--as-of": "yesterday"}, "--as-of"),
        ({"--as-of": "2024-13-45"}, "--as-of"),
        ({"--data": "/nonexistent/folder"}, "input folder not found"),
        ({"--model": "/nonexistent/model"}, "not an exported refundguard scorer"),
        ({"--buyers": "/nonexistent/buyers.csv"}, "cannot read"),
    ],
)
def test_score_bad_arguments_give_one_line(project: Path, tmp_path: Path,
                                           override: dict[str, str], message: str) -> None:
    result = runner.invoke(app, _score_args(project, tmp_path, **override))
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("refundguard: error:")
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_buyers_file_without_buyer_id_column(project: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    result = runner.invoke(app, _score_args(project, tmp_path, **{"--buyers": str(bad)}))
    assert result.exit_code == 2
    assert "buyer_id" in result.stderr


def test_validate_missing_table_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    pd.DataFrame({"order_id": ["o1"]}).to_csv(tmp_path / "in" / "orders.csv", index=False)
    result = runner.invoke(app, ["validate", "--data", str(tmp_path / "in"), "--out",
                                 str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "required column(s) missing" in result.stderr


def test_bad_params_key_is_named(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  n_valid_cutoff: 2\n", encoding="utf-8")
    result = runner.invoke(app, ["train", "--params", str(params)])
    assert result.exit_code == 2
    assert "train.n_valid_cutoff" in result.stderr


def test_subprocess_error_has_no_traceback(project: Path) -> None:
    proc = run(["refundguard", "score", "--as-of", "nonsense", "--model",
                str(project / "models/scorer"), "--data", str(project / "data/simulated"),
                "--buyers", str(project / "params.yaml")], project, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("refundguard: error:"), stderr
    return lines[0]


@pytest.fixture(scope="module")
def last_event(project: Path) -> pd.Timestamp:
    last = last_event_time(load_validated(project / "data/validated"))
    assert last is not None
    return last.tz_convert("Asia/Shanghai")


def test_as_of_after_the_data_is_refused(project: Path, tmp_path: Path,
                                         last_event: pd.Timestamp) -> None:
    """The bug: --as-of 2030-01-01 scored every buyer "trusted" (all windows empty)."""
    result = runner.invoke(app, _score_args(project, tmp_path, **{"--as-of": "2030-01-01"}))
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert "--as-of 2030-01-01T00:00:00+08:00" in line
    assert f"last event ({last_event.isoformat()})" in line
    assert "at most 7 days" in line and "score.max_days_after_data" in line
    assert not (tmp_path / "s.csv").exists()


def test_as_of_gap_comes_from_params(project: Path, tmp_path: Path,
                                     last_event: pd.Timestamp) -> None:
    three_days_on = (last_event + pd.Timedelta(days=3)).strftime("%Y-%m-%d %H:%M")
    ok = runner.invoke(app, _score_args(project, tmp_path, **{"--as-of": three_days_on}))
    assert ok.exit_code == 0, ok.output
    raw = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    raw["score"]["max_days_after_data"] = 1
    strict = tmp_path / "params.yaml"
    strict.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    refused = runner.invoke(app, [*_score_args(project, tmp_path, **{"--as-of": three_days_on}),
                                  "--params", str(strict)])
    assert refused.exit_code == 2
    assert "at most 1 days" in _one_error_line(refused.stderr)


@pytest.mark.parametrize(
    "as_of", ["01/10/2024", "10/01/2024", "2024/10/01", "1 Oct 2024", "20241001", "2024-10-1",
              "2024.10.01", "2024年10月"],
)
def test_ambiguous_or_unknown_date_forms_are_refused(project: Path, tmp_path: Path,
                                                     as_of: str) -> None:
    """The bug: 01/10/2025 was read month first (10 January) without a word."""
    result = runner.invoke(app, _score_args(project, tmp_path, **{"--as-of": as_of}))
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert repr(as_of) in line and "not an accepted date" in line
    assert "ISO 8601" in line and "2025年10月1日" in line


def _scores_as_of(project: Path, tmp_path: Path, as_of: str) -> pd.DataFrame:
    out = tmp_path / f"s{hashlib.sha256(as_of.encode()).hexdigest()[:8]}.parquet"
    result = runner.invoke(app, _score_args(project, tmp_path, **{"--as-of": as_of,
                                                                   "--out": str(out)}))
    assert result.exit_code == 0, result.output
    return pd.read_parquet(out)


@pytest.mark.parametrize(
    ("iso", "others"),
    [("2024-12-01", ["2024年12月1日", "2024-12-01T00:00:00+08:00", "2024-11-30T16:00Z"]),
     ("2024-12-01 08:30", ["2024年12月1日 8:30", "2024年12月1日8时30分", "2024-12-01T08:30"])],
)
def test_iso_and_chinese_dates_mean_the_same_time(project: Path, tmp_path: Path, iso: str,
                                                  others: list[str]) -> None:
    (tmp_path / "buyers.csv").write_text("buyer_id\nB000001\n", encoding="utf-8")
    expected = _scores_as_of(project, tmp_path, iso)
    for other in others:
        pd.testing.assert_frame_equal(_scores_as_of(project, tmp_path, other), expected)


def test_unknown_ids_are_counted_flagged_and_not_silently_new(project: Path,
                                                              tmp_path: Path) -> None:
    """The bug: README's b000123 (the data has B000123) was scored as a new buyer."""
    orders = pd.read_parquet(project / "data/validated/orders.parquet")
    real = sorted(orders["buyer_id"].unique())[:3]
    asked = [*real, real[0].lower(), "x1", "x2", "x3"]
    buyers = tmp_path / "ids.csv"
    pd.DataFrame({"buyer_id": asked}).to_csv(buyers, index=False)
    out = tmp_path / "s.csv"
    result = runner.invoke(app, _score_args(project, tmp_path, **{"--buyers": str(buyers),
                                                                   "--out": str(out)}))
    assert result.exit_code == 0, result.output
    warnings = [ln for ln in result.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 1
    assert f"4 of 7 buyer ids appear nowhere in the data ('{real[0].lower()}', 'x1', 'x2', ..."\
        in warnings[0]
    assert "case-sensitive" in warnings[0] and "known_buyer=false" in warnings[0]
    scores = pd.read_csv(out, encoding="utf-8-sig")
    assert scores["known_buyer"].tolist() == [True] * 3 + [False] * 4
    assert (scores["tier"].iloc[3:] == NO_HISTORY.tier).all()
    assert (scores["reasons_en"].iloc[3:] == NO_HISTORY.en).all()


def test_known_ids_give_no_warning(project: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, _score_args(project, tmp_path))
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    assert pd.read_csv(tmp_path / "s.csv", encoding="utf-8-sig")["known_buyer"].all()


def test_features_file_with_several_cutoffs_keeps_the_cutoff(project: Path,
                                                             tmp_path: Path) -> None:
    snaps = project / "data/features/snapshots.parquet"
    cutoffs = pd.read_parquet(snaps, columns=["buyer_id", "cutoff"])
    assert cutoffs["cutoff"].nunique() > 1
    out = tmp_path / "scores.parquet"
    result = runner.invoke(app, ["score", "--model", str(project / "models/scorer"),
                                 "--features", str(snaps), "--out", str(out)])
    assert result.exit_code == 0, result.output
    got = pd.read_parquet(out)
    assert list(got.columns[:2]) == ["buyer_id", "cutoff"]
    pd.testing.assert_frame_equal(got[["buyer_id", "cutoff"]], cutoffs)


def test_quiet_option_silences_progress(project: Path, tmp_path: Path) -> None:
    snaps = str(project / "data/features/snapshots.parquet")
    args = ["score", "--model", str(project / "models/scorer"), "--features", snaps,
            "--chunk-size", "5000"]
    loud = run(["refundguard", *args, "--out", str(tmp_path / "a.parquet")], project)
    # stderr is a pipe, not a terminal: no bar, one log line per chunk.
    assert "score: 5,000 of" in loud.stderr
    assert "\x1b[" not in loud.stderr
    quiet = run(["refundguard", "--quiet", *args, "--out", str(tmp_path / "b.parquet")],
                project)
    assert quiet.stderr == ""
    assert "scored" in quiet.stdout
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a.parquet"),
                                  pd.read_parquet(tmp_path / "b.parquet"))


def test_quiet_option_sets_the_environment_for_stages(project: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.ENV_QUIET, raising=False)
    result = runner.invoke(app, ["--quiet", "score", "--model", str(project / "models/scorer"),
                                 "--features", str(project / "data/features/snapshots.parquet"),
                                 "--out", str(tmp_path / "s.parquet")])
    assert result.exit_code == 0, result.output
    assert os.environ.get(progress.ENV_QUIET) == "1" and progress.quiet()


def test_negative_gap_in_params_is_named(project: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    raw["score"]["max_days_after_data"] = -1
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    result = runner.invoke(app, [*_score_args(project, tmp_path), "--params", str(bad)])
    assert result.exit_code == 2
    assert "score.max_days_after_data must be >= 0" in _one_error_line(result.stderr)
