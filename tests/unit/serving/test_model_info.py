"""`refundguard model info`: what a scorer is, from a folder or a registry URI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.fixtures import run
from typer.testing import CliRunner

from refundguard.cli import app

runner = CliRunner()


def _json(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.fixture
def project_store(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    return project


def test_json_info_of_a_folder_carries_the_provenance(project: Path) -> None:
    result = runner.invoke(app, ["model", "info", str(project / "models/scorer"), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    training = _json(project / "models/model/training.json")
    scorer = _json(project / "models/scorer/artifacts/scorer.json")
    assert info["model_version"] == scorer["model_version"]
    assert info["data_hash"] == training["data_hash"]
    assert info["git_commit"] == training["git_commit"]
    # The scorer names the training run that produced its model. test_pipeline re-runs
    # training on the same project (same model, a new run id), so compare the run's facts.
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    produced = client.get_run(info["run_id"])
    assert produced.info.run_name == "train"
    assert produced.data.tags["data_hash"] == training["data_hash"]
    assert info["params"] == training["params"]
    assert info["catalog_version"] == training["catalog_version"]
    assert info["features"] == training["features"]
    assert info["metrics"] == _json(project / "reports/metrics.json")
    assert info["split"] == training["split"]
    assert len(info["bounds"]) == 3 and info["registry"] is None


def test_text_info_is_readable(project: Path) -> None:
    result = runner.invoke(app, ["model", "info", str(project / "models/scorer")])
    assert result.exit_code == 0, result.output
    training = _json(project / "models/model/training.json")
    scorer = _json(project / "models/scorer/artifacts/scorer.json")
    text = result.stdout
    for needle in (scorer["model_version"], training["data_hash"], training["git_commit"],
                   training["catalog_version"], "average_precision", "learning_rate"):
        assert str(needle) in text, needle
    assert not text.lstrip().startswith("{")


def test_info_of_the_registered_champion(project_store: Path) -> None:
    registered = _json(project_store / "reports/registry.json")
    result = runner.invoke(app, ["model", "info", "models:/refundguard@champion", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["registry"]["name"] == registered["name"]
    assert info["registry"]["version"] == registered["version"]
    assert "champion" in info["registry"]["aliases"]
    assert info["model_version"] == registered["model_version"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{tmp}", "not an exported refundguard scorer"),
        ("{tmp}/missing", "not an exported refundguard scorer"),
        ("models:/refundguard@nobody", "no alias @nobody"),
        ("models:/no-such-model/1", "no version 1 of model 'no-such-model'"),
        ("models:/bad name", "not a registry URI"),
    ],
)
def test_errors_are_one_line_and_exit_2(project_store: Path, tmp_path: Path, target: str,
                                        message: str) -> None:
    result = runner.invoke(app, ["model", "info", target.format(tmp=tmp_path)])
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("refundguard: error:"), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_unknown_alias_in_a_fresh_process_prints_one_line(project: Path) -> None:
    proc = run(["refundguard", "model", "info", "models:/refundguard@nobody"], project,
               check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no alias @nobody" in proc.stderr
