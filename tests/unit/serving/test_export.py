"""The exported scorer folder: format, signature, safe artifacts, fresh-process loading."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from tests.fixtures import project_env, run

from refundguard.model.bundle import (
    ARTIFACTS,
    content_id,
    load_model,
    load_training_info,
    model_files,
    model_version,
)
from refundguard.model.train import split_rows


def _test_rows(project: Path) -> pd.DataFrame:
    info = load_training_info(project / "models/model")
    snaps = pd.read_parquet(project / "data/features/snapshots.parquet")
    return split_rows(snaps, info.time_split)["test"]


def test_scorer_folder_is_mlflow_pyfunc_from_code(project: Path) -> None:
    mlmodel = yaml.safe_load((project / "models/scorer/MLmodel").read_text(encoding="utf-8"))
    pyfunc = mlmodel["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert "signature" in mlmodel and "inputs" in mlmodel["signature"]
    assert (project / "models/scorer/input_example.json").is_file()
    reqs = (project / "models/scorer/requirements.txt").read_text(encoding="utf-8").split()
    assert any(r.startswith("lightgbm==") for r in reqs)
    assert all("==" in r for r in reqs if not r.startswith("-"))


def test_scorer_carries_serving_code_only(project: Path) -> None:
    code = project / "models/scorer/code/refundguard"
    assert (code / "serving" / "scorer.py").is_file() and (code / "model" / "bundle.py").is_file()
    shipped = {p.relative_to(code).parts[0] for p in code.rglob("*.py")}
    # No simulator, no stage shells, no report or CLI, no README generator.
    assert not shipped & {"sim", "stages", "reporting", "cli.py", "__main__.py", "docs.py"}
    assert not list(code.rglob("__pycache__"))


def test_artifacts_are_data_files_not_pickles(project: Path) -> None:
    art = project / "models/scorer/artifacts"
    names = sorted(p.name for p in art.rglob("*") if p.is_file())
    assert "model.txt" in names and "scorer.json" in names and "calibration.json" in names
    for p in art.rglob("*"):
        if p.is_file():
            assert p.suffix in {".txt", ".json", ".npz"}, p
    assert (art / "model.txt").read_text(encoding="utf-8").startswith("tree")


def test_fresh_process_pyfunc_gives_training_scores(project: Path, tmp_path: Path) -> None:
    rows = _test_rows(project)
    features = rows.drop(columns=["cutoff", "target"])
    features.to_parquet(tmp_path / "in.parquet")
    code = (
        "import sys, mlflow.pyfunc, pandas as pd\n"
        "m = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "m.predict(pd.read_parquet(sys.argv[2])).to_parquet(sys.argv[3])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(project / "models/scorer"), str(tmp_path / "in.parquet"),
         str(tmp_path / "out.parquet")],
        env=project_env(project), capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = pd.read_parquet(tmp_path / "out.parquet")
    trained = load_model(project / "models/model").predict(rows)
    assert list(out["buyer_id"]) == list(rows["buyer_id"])
    np.testing.assert_allclose(out["probability"].to_numpy(), trained, rtol=0, atol=1e-12)
    assert set(out["tier"]) <= {"trusted", "standard", "review", "restrict"}
    assert ((out["risk_score"] >= 0) & (out["risk_score"] <= 1000)).all()


def test_scorer_json_names_the_model_by_content(project: Path) -> None:
    cfg = json.loads((project / "models/scorer/artifacts/scorer.json").read_text(encoding="utf-8"))
    expected = model_version(project / "models/model")
    assert cfg["model_version"] == expected == cfg["metadata"]["model_version"]
    assert "bounds" not in cfg and "policy" in ARTIFACTS  # the bounds are policy.json
    mlmodel = yaml.safe_load((project / "models/scorer/MLmodel").read_text(encoding="utf-8"))
    assert mlmodel["metadata"]["model_version"] == expected
    for key in ("data_hash", "git_commit", "params", "metrics", "catalog_version"):
        assert cfg["metadata"][key] is not None, key


def test_every_scorer_artifact_is_exported(project: Path) -> None:
    art = project / "models/scorer/artifacts"
    folders = {"sentiment", "demand"}  # model folders, not files
    for name, file in ARTIFACTS.items():
        if name in folders:
            assert (art / file).is_dir(), name
            assert any((art / file).iterdir()), name
        else:
            assert (art / file).is_file(), name
            if name != "scorer":
                assert (art / file).read_bytes() == (project / "models/model" / file).read_bytes()
    assert (art / ARTIFACTS["sentiment"]).is_dir() == (project / "models/sentiment").is_dir()


def test_model_version_is_a_content_id(project: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(project / "models/model", copy)
    files = model_files(copy)
    first = content_id(files)
    assert first == model_version(copy) == model_version(project / "models/model")
    assert first.startswith("rg-") and len(first) == 15
    (copy / "training.json").write_text("{}", encoding="utf-8")  # not a model file
    assert content_id(files) == first
    calibration = files["calibration"]
    calibration.write_bytes(calibration.read_bytes() + b" ")
    assert content_id(files) != first


def test_export_registers_the_first_model_as_champion(project: Path) -> None:
    report = json.loads((project / "reports/registry.json").read_text(encoding="utf-8"))
    cfg = json.loads((project / "models/scorer/artifacts/scorer.json").read_text(encoding="utf-8"))
    assert report["name"] == "refundguard" and report["decision"] == "champion"
    assert "champion" in report["aliases"].split(",")
    assert report["model_version"] == cfg["model_version"]
    assert report["uri"] == f"models:/refundguard/{report['version']}"


def test_registered_version_links_to_the_training_run_and_ui_opens_on_runs(
    project: Path,
) -> None:
    from mlflow import MlflowClient

    info = json.loads((project / "models/model/training.json").read_text(encoding="utf-8"))
    report = json.loads((project / "reports/registry.json").read_text(encoding="utf-8"))
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    version = client.get_model_version(report["name"], report["version"])
    # The version links to a training run of this model and data. (Other tests re-run the
    # pipeline; a re-export of the same model adds no version, so the link may be to the
    # first of several identical training runs.)
    trained = client.get_run(version.run_id)
    assert trained.info.run_name == "train"
    assert trained.data.tags["data_hash"] == info["data_hash"]
    assert trained.data.params["shipped_rounds"] == str(info["shipped"]["rounds"])
    experiment = client.get_experiment(client.get_run(info["run_id"]).info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def _numbers(tree: object) -> list[float]:
    if isinstance(tree, dict):
        return [n for v in tree.values() for n in _numbers(v)]
    return [tree] if isinstance(tree, float | int) and not isinstance(tree, bool) else []


def test_dvc_metrics_are_the_short_headline(project: Path) -> None:
    out = json.loads(run(["dvc", "metrics", "show", "--json"], project).stdout)
    files = next(iter(out.values()))["data"]
    assert list(files) == ["reports/metrics.json"]  # registry.json is an out, not a metric
    head = files["reports/metrics.json"]["data"]
    assert 9 <= len(_numbers(head)) <= 15
    for who in ("model", "plain"):
        for key in ("roc_auc", "average_precision"):
            assert isinstance(head[who][key], float), (who, key)
            assert isinstance(head["truth"][who][key], float), (who, key)
    details = json.loads((project / "reports/evaluation.json").read_text(encoding="utf-8"))
    assert head["model"]["average_precision"] == details["model"]["average_precision"]
    assert head["plain"]["roc_auc"] == details["plain"]["roc_auc"]
    assert head["model"]["cost_per_buyer"] == details["cost"]["model"]["cost_per_buyer"]
    cfg = json.loads((project / "models/scorer/artifacts/scorer.json").read_text(encoding="utf-8"))
    assert cfg["metadata"]["metrics"] == head
    text = run(["dvc", "metrics", "show"], project).stdout
    assert max(len(line) for line in text.splitlines()) < 1000


def test_dvc_plots_draw_each_curve_once_with_data(project: Path) -> None:
    out = json.loads(run(["dvc", "plots", "show", "--json"], project).stdout)
    assert not out.get("errors")
    plots = out["data"]
    assert list(plots) == ["ROC", "Precision-recall", "Calibration"]
    expected = {"ROC": ("fpr", "tpr", 4), "Precision-recall": ("recall", "precision", 4),
                "Calibration": ("mean_predicted", "observed_rate", 1)}
    for name, (x, y, files) in expected.items():
        (chart,) = plots[name]
        values = chart["content"]["data"]["values"]
        assert values, name
        assert all(x in v and y in v for v in values), name  # no "\ufefffpr" columns
        assert len({v.get("filename", name) for v in values}) == files, name
