from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from tests.conftest import run
from typer.testing import CliRunner

from refundguard.cli import app
from refundguard.features import NO_HISTORY
from refundguard.scorer import OUTPUT_COLUMNS

runner = CliRunner()


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("simulate", "validate", "sentiment", "featurize", "train", "evaluate", "export",
                "score"):
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
    assert tuple(scores.columns) == OUTPUT_COLUMNS
    assert scores["probability"].between(0, 1).all()
    # The unknown buyer has no history: the catalog's tier and reason.
    assert scores["tier"].iloc[-1] == NO_HISTORY.tier
    assert scores["reasons_zh"].iloc[-1] == NO_HISTORY.zh
    assert "scored 21 buyers" in proc.stdout


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
