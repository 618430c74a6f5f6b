"""The DVC pipeline end to end on a tiny simulated world (see conftest.project)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from tests.fixtures import run

STAGES = ("simulate@default", "validate", "sentiment", "features", "consistency", "train",
          "evaluate", "export")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_stage_wrote_its_outputs(project: Path) -> None:
    for rel in ("data/simulated/orders.parquet", "data/simulated/truth.parquet",
                "data/validated/orders.parquet", "data/validated/quarantine.csv",
                "data/validated/report.json", "data/sentiment/review_sentiment.parquet",
                "data/features/snapshots.parquet", "models/model/model.txt",
                "models/model/calibration.json", "reports/metrics.json",
                "reports/evaluation.json", "reports/plots/roc_plain.csv",
                "models/model/holdout/model.txt", "data/consistency/consistency.json",
                "reports/plots/roc_model.csv", "reports/plots/pr_baseline.csv",
                "models/scorer/MLmodel", "models/scorer/artifacts/model.txt", "mlflow.db"):
        assert (project / rel).is_file(), rel
    lock = (project / "dvc.lock").read_text(encoding="utf-8")
    for stage in STAGES:
        assert f"{stage}:" in lock, stage


def test_dvc_metrics_show_prints_model_and_baseline(project: Path) -> None:
    out = json.loads(run(["dvc", "metrics", "show", "--json"], project).stdout)
    metrics = next(iter(out.values()))["data"]["reports/metrics.json"]["data"]
    for who in ("model", "plain"):
        for key in ("roc_auc", "average_precision"):
            assert isinstance(metrics[who][key], float), (who, key)
    assert metrics["model"]["roc_auc"] > 0.6
    assert sum(len(v) if isinstance(v, dict) else 1 for v in metrics.values()) <= 15
    details = json.loads((project / "reports/evaluation.json").read_text(encoding="utf-8"))
    ablation = details["ablation"]
    for group in ("refunds", "orders", "sellers", "reviews", "linked"):
        drop = ablation[f"without_{group}"]["ap_drop"]
        assert drop == pytest.approx(ablation["full"]["average_precision"]
                                     - ablation[f"without_{group}"]["average_precision"],
                                     abs=1e-5)
    text = run(["dvc", "metrics", "show"], project).stdout
    assert "model.average_precision" in text and "plain.average_precision" in text


def test_pipeline_is_up_to_date_after_repro(project: Path) -> None:
    status = run(["dvc", "status", "--json"], project).stdout
    assert json.loads(status) == {}


def test_mlflow_run_has_params_metrics_tags_and_model(project: Path) -> None:
    import mlflow

    info = json.loads((project / "models/model/training.json").read_text(encoding="utf-8"))
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    run_ = client.get_run(info["run_id"])
    assert run_.data.tags["data_hash"] == info["data_hash"]
    assert "git_commit" in run_.data.tags
    # The tuned settings are what the run records and what training.json says.
    assert run_.data.params["lgb.num_leaves"] == str(info["params"]["lightgbm"]["num_leaves"])
    assert run_.data.params["tuning_trials"] == str(len(info["tuning"]["trials"])) == "3"
    assert "test.model.average_precision" in run_.data.metrics
    assert "tuning_rolling_ap_mean" in run_.data.metrics
    artifacts = {a.path for a in client.list_artifacts(info["run_id"])}
    assert {"features.json", "calibration.json", "policy.json", "tuning.json", "metrics.json",
            "evaluation.json",
            "report.html", "gate.json"} <= artifacts
    logged = client.search_logged_models(experiment_ids=[run_.info.experiment_id])
    assert any(m.source_run_id == info["run_id"] for m in logged)
    # Each tuning trial is a nested child run with its settings and fold scores.
    children = client.search_runs(
        [run_.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{info['run_id']}'",
    )
    assert len(children) == 3
    for child in children:
        assert "rolling_ap_mean" in child.data.metrics
        assert any(k.startswith("lgb.") for k in child.data.params)
    assert run_.data.tags["ships"] == info["ships"] == "refit"


def test_time_split_has_label_delay_gaps(project: Path) -> None:
    info = json.loads((project / "models/model/training.json").read_text(encoding="utf-8"))
    split = {k: [pd.Timestamp(c) for c in v] for k, v in info["split"].items()}
    gap = pd.Timedelta(days=info["horizon_days"])
    assert max(split["train"]) + gap <= min(split["valid"])
    assert max(split["valid"]) + gap <= min(split["calibration"])
    assert max(split["calibration"]) + gap <= min(split["test"])


def test_rerun_gives_byte_identical_features_model_and_metrics(project: Path) -> None:
    files = ["data/features/snapshots.parquet", "models/model/model.txt",
             "models/model/calibration.json", "reports/metrics.json",
             "reports/evaluation.json"]
    before = {f: _sha(project / f) for f in files}
    run(["dvc", "repro", "--force", "--single-item", "features"], project)
    run(["dvc", "repro", "--force", "--single-item", "train"], project)
    gate_before = json.loads((project / "reports/gate.json").read_text(encoding="utf-8"))
    run(["dvc", "repro", "--force", "--single-item", "evaluate"], project)
    after = {f: _sha(project / f) for f in files}
    assert after == before
    # The first run had no champion; the export registered this model, so the re-run
    # finds it is the champion already rather than a challenger to itself.
    assert gate_before["decision"] == "champion" and gate_before["champion"] is None
    gate = json.loads((project / "reports/gate.json").read_text(encoding="utf-8"))
    assert gate["decision"] == "champion"
    assert "already the champion" in gate["note"]


def test_features_left_out_by_the_consistency_check_are_not_in_the_model(
    project: Path,
) -> None:
    check = json.loads((project / "data/consistency/consistency.json").read_text("utf-8"))
    manifest = json.loads((project / "data/features/manifest.json").read_text("utf-8"))
    info = json.loads((project / "models/model/training.json").read_text("utf-8"))
    failed = [c["name"] for c in check["checks"] if not c["passed"]]
    assert check["dropped"] == failed  # enabled by default
    assert info["dropped_features"] == check["dropped"]
    assert info["features"] == [f for f in manifest["features"] if f not in failed]
    # Every feature has its figures, and the report lists the check.
    assert {c["name"] for c in check["checks"]} == set(manifest["features"])
    assert "Time consistency of the features" in (project / "reports/report.html").read_text(
        "utf-8")
    # The label horizon was set by hand in the tiny params, and the manifest says so.
    assert manifest["horizon"] == {"days": 42, "source": "params", "n_delays": 0,
                                   "quantile_days": None}


@pytest.mark.slow
def test_dvc_exp_run_with_a_lightgbm_setting_changes_the_model(
    project: Path, tmp_path: Path
) -> None:
    import shutil
    import subprocess

    from tests.fixtures import project_env

    copy = tmp_path / "copy"
    shutil.copytree(project, copy, symlinks=True)
    # A copied MLflow store still points at the first project's artifacts; the stages
    # refuse it (docs/pipeline.md, "Where a project lives"), so the copy starts its own.
    (copy / "mlflow.db").unlink()
    shutil.rmtree(copy / "mlartifacts", ignore_errors=True)
    # As a user runs it: inside the project, found from the working folder.
    env = {k: v for k, v in project_env(copy).items() if k != "REFUNDGUARD_ROOT"}

    def sh(*cmd: str) -> str:
        done = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True,
                              timeout=900, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "tiny project")
    before = (copy / "models/model/model.txt").read_text()
    sh("dvc", "exp", "run", "-S", "train.lightgbm.num_leaves=5", "-S",
       "train.tuning.n_trials=0")
    info = json.loads((copy / "models/model/training.json").read_text("utf-8"))
    assert info["params"]["lightgbm"]["num_leaves"] == 5
    assert (copy / "models/model/model.txt").read_text() != before
    # The first project was not touched.
    assert (project / "models/model/model.txt").read_text() == before
