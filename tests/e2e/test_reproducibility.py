"""Reproducibility: a second run from scratch, in a fresh folder, with the same data and
params, gives byte-identical features, LightGBM model text and metrics.

The first run is the session's ``project`` fixture (a full ``dvc repro`` on the tiny world);
the second starts from an empty folder (no DVC cache, no MLflow store, no outputs) and runs
every stage up to evaluation.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml
from tests.fixtures import REPO, run

COMPARED = (
    "data/simulated/orders.parquet",
    "data/validated/orders.parquet",
    "data/validated/quarantine.csv",
    "data/validated/report.json",
    "data/features/snapshots.parquet",
    "data/features/manifest.json",
    "models/model/model.txt",
    "models/model/calibration.json",
    "reports/metrics.json",
    "reports/evaluation.json",
    "data/consistency/consistency.json",
)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def second_run(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("second-run")
    shutil.copy(project / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(REPO / "src", root / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # The same params, re-serialised (a byte-for-byte copy would hide nothing either way).
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True),
                                      encoding="utf-8")
    run(["git", "init", "-q"], root)
    run(["dvc", "init", "-q"], root)
    run(["dvc", "config", "core.analytics", "false"], root)
    # Export is left out: it only packages the model compared here.
    run(["dvc", "repro", "evaluate"], root)
    return root


@pytest.mark.parametrize("rel", COMPARED)
def test_from_scratch_run_is_byte_identical(project: Path, second_run: Path, rel: str) -> None:
    assert (second_run / rel).is_file(), rel
    assert sha(second_run / rel) == sha(project / rel), rel


def test_second_run_is_really_separate(project: Path, second_run: Path) -> None:
    """Guard: nothing was shared between the runs (own folder, own MLflow store)."""
    assert second_run.resolve() != project.resolve()
    assert (second_run / "mlflow.db").is_file()
    first = (project / "models/model/training.json").read_text(encoding="utf-8")
    second = (second_run / "models/model/training.json").read_text(encoding="utf-8")
    assert first != second  # another MLflow run id, so another training.json
