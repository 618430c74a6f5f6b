"""The exported scorer folder: format, signature, safe artifacts, fresh-process loading."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from tests.conftest import project_env

from refundguard.train import load_model, split_from_info, split_rows


def _test_rows(project: Path) -> pd.DataFrame:
    info = json.loads((project / "models/model/training.json").read_text(encoding="utf-8"))
    snaps = pd.read_parquet(project / "data/features/snapshots.parquet")
    return split_rows(snaps, split_from_info(info))["test"]


def test_scorer_folder_is_mlflow_pyfunc_from_code(project: Path) -> None:
    mlmodel = yaml.safe_load((project / "models/scorer/MLmodel").read_text(encoding="utf-8"))
    pyfunc = mlmodel["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert "signature" in mlmodel and "inputs" in mlmodel["signature"]
    assert (project / "models/scorer/input_example.json").is_file()
    reqs = (project / "models/scorer/requirements.txt").read_text(encoding="utf-8").split()
    assert any(r.startswith("lightgbm==") for r in reqs)
    assert all("==" in r for r in reqs if not r.startswith("-"))


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
