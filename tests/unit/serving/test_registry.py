"""The model registry: the gate, champion/challenger aliases, and models:/ URIs."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.fixtures import project_env

from refundguard import Scorer
from refundguard.errors import ModelError
from refundguard.serving import registry
from refundguard.serving.registry import CHALLENGER, CHAMPION, gate, parse_uri
from refundguard.stages import export

NAME = "refundguard"
NAN = math.nan


@pytest.mark.parametrize(
    ("candidate", "champion", "margin", "decision"),
    [
        (0.30, None, 0.0, CHAMPION),        # no champion yet
        (NAN, None, 0.0, CHAMPION),         # no champion: nothing to beat
        (0.31, 0.30, 0.0, CHAMPION),
        (0.30, 0.30, 0.0, CHALLENGER),      # a tie is not an improvement
        (0.29, 0.30, 0.0, CHALLENGER),
        (0.305, 0.30, 0.01, CHALLENGER),    # better, but not by the margin
        (0.31, 0.30, 0.01, CHALLENGER),     # exactly the margin is a tie
        (0.32, 0.30, 0.01, CHAMPION),
        (0.29, 0.30, -0.02, CHAMPION),      # a negative margin tolerates a small drop
        (NAN, 0.30, 0.0, CHALLENGER),       # NaN proves nothing
        (0.30, NAN, 0.0, CHALLENGER),
        (math.inf, 0.30, 0.0, CHAMPION),
    ],
)
def test_gate(candidate: float, champion: float | None, margin: float, decision: str) -> None:
    assert gate(candidate, champion, margin) == decision


@pytest.mark.parametrize("margin", [NAN, math.inf])
def test_gate_needs_a_finite_margin(margin: float) -> None:
    with pytest.raises(ValueError, match="min_improvement"):
        gate(0.5, 0.4, margin)


@pytest.mark.parametrize(
    ("uri", "parts"),
    [
        ("models:/refundguard@champion", ("refundguard", "champion", None)),
        ("models:/refundguard/3", ("refundguard", None, "3")),
        ("models:/refundguard/latest", ("refundguard", None, "latest")),
    ],
)
def test_parse_uri(uri: str, parts: tuple[str, str | None, str | None]) -> None:
    assert parse_uri(uri) == parts


@pytest.mark.parametrize("uri", ["models:/", "models:/a/b/c", "runs:/abc/model",
                                 "models:/name@", "models:/name/v1", "/some/folder"])
def test_parse_uri_rejects_other_forms(uri: str) -> None:
    with pytest.raises(ModelError, match="not a registry URI"):
        parse_uri(uri)


# --- the lifecycle, on a temporary tracking store -----------------------------------------


def _variant(project: Path, dest: Path, shift: float) -> Path:
    """A copy of the trained model with a slightly different calibration: a new model."""
    shutil.copytree(project / "models/model", dest)
    cal_file = dest / "calibration.json"
    cal = json.loads(cal_file.read_text(encoding="utf-8"))
    if cal["method"] == "isotonic":
        cal["y"] = [min(1.0, v * (1 - shift)) for v in cal["y"]]
    else:
        cal["b"] += shift
    cal_file.write_text(json.dumps(cal), encoding="utf-8")
    return dest


class Exporter:
    """Runs the export stage against the project's outputs, into a temporary store."""

    def __init__(self, project: Path, tmp: Path) -> None:
        self.project = project
        self.tmp = tmp
        self.count = 0

    def __call__(self, model_dir: Path, gate_json: dict[str, object] | None) -> dict[str, object]:
        self.count += 1
        out = self.tmp / f"export{self.count}"
        out.mkdir()
        gate_file = out / "gate.json"
        if gate_json is not None:
            gate_file.write_text(json.dumps(gate_json), encoding="utf-8")
        export.main(
            params_path=self.project / "params.yaml",
            model_dir=model_dir,
            features_dir=self.project / "data/features",
            sentiment_dir=self.project / "models/sentiment",
            metrics_file=self.project / "reports/metrics.json",
            out_dir=out / "scorer",
            onnx_dir=out / "onnx",
            gate_file=gate_file,
            registry_file=out / "registry.json",
        )
        report: dict[str, object] = json.loads((out / "registry.json").read_text(encoding="utf-8"))
        return report


def _gate_file(candidate: float, champion: float, champion_version: str) -> dict[str, object]:
    return {"metric": "average_precision", "candidate": candidate, "champion": champion,
            "champion_version": champion_version, "decision": gate(candidate, champion, 0.0)}


@pytest.fixture(scope="module")
def store(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("registry")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        yield tmp


@pytest.fixture(scope="module")
def lifecycle(project: Path, store: Path) -> dict[str, dict[str, object]]:
    """First export, a worse one, a better one, and the better one again."""
    run = Exporter(project, store)
    worse = _variant(project, store / "model_worse", 0.01)
    better = _variant(project, store / "model_better", 0.02)
    first = run(project / "models/model", None)
    second = run(worse, _gate_file(0.10, 0.20, "1"))
    third = run(better, _gate_file(0.30, 0.20, "1"))
    again = run(better, _gate_file(0.30, 0.30, "3"))
    return {"first": first, "worse": second, "better": third, "again": again}


def test_first_export_becomes_champion(lifecycle: dict[str, dict[str, object]]) -> None:
    first = lifecycle["first"]
    assert first["decision"] == CHAMPION and first["registered"] is True
    assert first["version"] == "1" and first["aliases"] == CHAMPION
    assert first["champion"] is None and first["champion_version"] is None


def test_worse_export_becomes_challenger(lifecycle: dict[str, dict[str, object]]) -> None:
    worse = lifecycle["worse"]
    assert worse["decision"] == CHALLENGER and worse["version"] == "2"
    assert worse["candidate"] == 0.10 and worse["champion"] == 0.20


def test_better_export_takes_champion_and_rerun_adds_nothing(
        lifecycle: dict[str, dict[str, object]]) -> None:
    assert lifecycle["better"]["decision"] == CHAMPION and lifecycle["better"]["version"] == "3"
    again = lifecycle["again"]
    assert again["version"] == "3" and again["registered"] is False
    assert registry.newest_version(NAME) == "3"
    assert registry.aliases(NAME) == {CHAMPION: "3", CHALLENGER: "2"}
    model_versions = {lifecycle[k]["model_version"] for k in ("first", "worse", "better")}
    assert len(model_versions) == 3
    assert again["model_version"] == lifecycle["better"]["model_version"]


def test_load_alias_gives_folder_and_version(lifecycle: dict[str, dict[str, object]]) -> None:
    found = registry.load_alias(NAME, CHALLENGER)
    assert found is not None
    folder, version = found
    assert version == "2"
    assert Scorer.load(folder).model_version == lifecycle["worse"]["model_version"]
    assert registry.load_alias(NAME, "no-such-alias") is None
    assert registry.load_alias("no-such-model", CHAMPION) is None


def test_versions_carry_provenance_tags(project: Path,
                                        lifecycle: dict[str, dict[str, object]]) -> None:
    from mlflow import MlflowClient

    training = json.loads((project / "models/model/training.json").read_text(encoding="utf-8"))
    client = MlflowClient(tracking_uri=registry.tracking.tracking_uri())
    v = client.get_model_version(NAME, "3")
    assert v.tags["model_version"] == lifecycle["better"]["model_version"]
    assert v.tags["data_hash"] == training["data_hash"]
    assert v.tags["catalog_version"] == training["catalog_version"]


def test_champion_uri_loads_with_scorer_and_pyfunc(project: Path, store: Path,
                                                   lifecycle: dict[str, dict[str, object]],
                                                   tmp_path: Path) -> None:
    folder = registry.resolve_uri("models:/refundguard@champion")
    scorer = Scorer.load(folder)
    assert scorer.model_version == lifecycle["better"]["model_version"]
    snaps = pd.read_parquet(project / "data/features/snapshots.parquet")
    rows = snaps[snaps["cutoff"] == snaps["cutoff"].max()].head(50).reset_index(drop=True)
    rows = rows.loc[:, ["buyer_id", *scorer.features]]
    rows.to_parquet(tmp_path / "in.parquet")
    # pyfunc runs the model's stored code, so it is loaded in a fresh process.
    code = (
        "import sys, mlflow.pyfunc, pandas as pd\n"
        "x = pd.read_parquet(sys.argv[3])\n"
        "for i, uri in enumerate(sys.argv[1:3]):\n"
        "    mlflow.pyfunc.load_model(uri).predict(x).to_parquet(f'{sys.argv[4]}{i}.parquet')\n"
    )
    env = {**project_env(project), "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}"}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(folder), "models:/refundguard@champion",
         str(tmp_path / "in.parquet"), str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = scorer.score(rows)
    for i in (0, 1):
        out = pd.read_parquet(tmp_path / f"out{i}.parquet")
        assert list(out["buyer_id"]) == list(expected["buyer_id"])
        np.testing.assert_allclose(out["probability"], expected["probability"], rtol=0, atol=1e-12)
        assert list(out["tier"]) == list(expected["tier"])


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models:/refundguard@nobody", "no alias @nobody"),
        ("models:/refundguard/99", "no version 99"),
        ("models:/unknown-model@champion", "no alias @champion of model 'unknown-model'"),
        ("models:/refundguard", "not a registry URI"),
    ],
)
def test_resolve_uri_names_what_is_missing(lifecycle: dict[str, dict[str, object]], uri: str,
                                           message: str) -> None:
    with pytest.raises(ModelError, match=message):
        registry.resolve_uri(uri)


def test_lookups_do_not_create_a_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'none.db'}")
    with pytest.raises(ModelError, match="no model registry"):
        registry.resolve_uri("models:/refundguard@champion")
    assert registry.load_alias(NAME, CHAMPION) is None
    assert registry.fallback_gate(NAME)["decision"] == CHAMPION
    assert not (tmp_path / "none.db").exists()


def test_register_refuses_bad_input(store: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="decision"):
        registry.register(tmp_path, "winner", NAME, {})
    with pytest.raises(ModelError, match="not an exported refundguard scorer"):
        registry.register(tmp_path, CHAMPION, NAME, {})


def test_read_gate_refuses_unknown_decision(tmp_path: Path) -> None:
    bad = tmp_path / "gate.json"
    bad.write_text(json.dumps({"decision": "maybe"}), encoding="utf-8")
    with pytest.raises(ModelError, match="decision"):
        registry.read_gate(bad, NAME)


# --- the MLflow UI: experiment kind and the version's run, on a bare store ---------------


@pytest.fixture
def bare_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty SQLite store in tmp_path; MLflow's global URI is restored afterwards."""
    from mlflow.tracking._tracking_service import utils

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setattr(utils, "_tracking_uri", None)
    return tmp_path


def _kind(experiment: str) -> str | None:
    from mlflow import MlflowClient

    from refundguard.model import tracking

    found = MlflowClient(tracking.tracking_uri()).get_experiment_by_name(experiment)
    assert found is not None
    return found.tags.get("mlflow.experimentKind")


def test_experiment_opens_on_runs_not_traces(bare_store: Path) -> None:
    from mlflow import MlflowClient

    from refundguard.model import tracking

    tracking.start()
    assert _kind(tracking.EXPERIMENT) == "custom_model_development"
    # A store made before the tag existed gets it the next time a stage starts.
    MlflowClient(tracking.tracking_uri()).create_experiment(
        "older", artifact_location=(bare_store / "mlartifacts").as_uri()
    )
    assert _kind("older") is None
    tracking.start("older")
    assert _kind("older") == "custom_model_development"


def test_registered_version_links_to_the_training_run(bare_store: Path) -> None:
    from mlflow import MlflowClient

    from refundguard.model import tracking

    scorer = bare_store / "scorer"
    scorer.mkdir()
    (scorer / "MLmodel").write_text("flavors: {}\n", encoding="utf-8")
    client = MlflowClient(tracking.tracking_uri())
    # The export stage creates the experiment when no stage did: it gets the kind too.
    first = registry.register(scorer, CHAMPION, "m", {"model_version": "rg-a"},
                              source_run_id="not-a-run-here")
    assert _kind(tracking.EXPERIMENT) == "custom_model_development"
    export_run = client.get_run(client.get_model_version("m", first).run_id)
    assert export_run.info.run_name == "export"  # unknown run: linked to the export run
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    assert exp is not None
    train_run = client.create_run(exp.experiment_id, run_name="train").info.run_id
    second = registry.register(scorer, CHALLENGER, "m", {"model_version": "rg-b"},
                               source_run_id=train_run)
    version = client.get_model_version("m", second)
    assert version.run_id == train_run
    # The files still come from the export run's copy of the folder.
    assert version.source.endswith("/scorer") and train_run not in version.source


def test_info_text_shows_the_headline_metrics_as_scorer_json_records_them() -> None:
    from refundguard.model.evaluation import headline, nest

    flat = {"model.roc_auc": 0.9, "model.average_precision": 0.3, "model.n": 100.0,
            "plain.roc_auc": 0.8, "plain.average_precision": 0.2,
            "cost.model.cost_per_buyer": 0.65, "calibration.ece": 0.002,
            "segment.household.model_flag_rate": 0.004}
    info = {"folder": "/x", "metrics": nest(headline(flat)), "bounds": [0.01, 0.2, 0.6]}
    line = next(x for x in registry.info_text(info).splitlines() if x.startswith("metrics"))
    assert "average_precision 0.3000" in line and "cost_per_buyer 0.6500" in line
    assert "ece 0.0020" in line and "worst_lookalike_fpr 0.0040" in line
    assert "0.2000" not in line  # the plain baseline's figures are not the model's
