"""Export stage: the trained model as a scorer folder, an ONNX pair, and a registry version.

Writes ``models/scorer`` (an MLflow pyfunc model whose artifacts are the data files that
:data:`refundguard.scorer.ARTIFACTS` names), ``models/onnx`` (``model.onnx`` and
``spec.json`` for services in other languages), registers the scorer in the MLflow Model
Registry as champion or challenger, and records that in ``reports/registry.json``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from refundguard import __version__
from refundguard.config import load_params
from refundguard.errors import ModelError
from refundguard.features import build_catalog, catalog_version
from refundguard.io import read_json, write_json
from refundguard.paths import (
    FEATURES_DIR,
    METRICS_FILE,
    MODEL_DIR,
    MODELS_DIR,
    PARAMS_FILE,
    REPORTS_DIR,
    SCORER_DIR,
    SENTIMENT_MODEL_DIR,
)
from refundguard.scorer import ARTIFACTS, SCORER_FORMAT, Scorer, content_id
from refundguard.train import TRAINING_FILE, split_from_info

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
ONNX_DIR = MODELS_DIR / "onnx"
GATE_FILE = REPORTS_DIR / "gate.json"
REGISTRY_FILE = REPORTS_DIR / "registry.json"
# ARTIFACTS entries that are not files of the train stage's folder.
_NOT_MODEL_FILES = ("scorer", "sentiment")
# Packages the scorer imports when loaded; versions are pinned to the exporting machine's.
RUNTIME_PACKAGES = (
    "mlflow",
    "lightgbm",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "scipy",
    "pyyaml",
    "opencc",
    "pandera",
)


def pinned_requirements() -> list[str]:
    """The scorer's pip requirements, each pinned to the installed version.

    Returns:
        Lines such as "lightgbm==4.7.0".
    """
    return [f"{name}=={metadata.version(name)}" for name in RUNTIME_PACKAGES]


def model_artifacts(model_dir: Path) -> dict[str, Path]:
    """The scorer's artifacts that come from the train stage's folder.

    Args:
        model_dir: The train stage's folder.

    Returns:
        {artifact name: file}, for every :data:`ARTIFACTS` entry except "scorer" (written
        by export) and "sentiment" (the sentiment model's folder).
    """
    return {k: model_dir / v for k, v in ARTIFACTS.items() if k not in _NOT_MODEL_FILES}


def model_version(files: Mapping[str, Path]) -> str:
    """A content id of the model: the same files give the same id, on any machine.

    The scorer checks the files against it when it loads them
    (:func:`refundguard.scorer.content_id`).

    Args:
        files: The model's files by artifact name (see :func:`model_artifacts`).

    Returns:
        "rg-" and the first 12 hex digits of a SHA-256 over names and bytes.
    """
    return content_id(files)


def scorer_config(
    training: dict[str, Any],
    feature_params: dict[str, object],
    metrics: dict[str, object],
    timezone: str,
    *,
    version: str,
) -> dict[str, object]:
    """The scorer's own description: features, catalog version, identity and provenance.

    The tier bounds are not here: they are the train stage's policy.json, an artifact of
    their own.

    Args:
        training: Parsed training.json.
        feature_params: Feature settings the catalog is built from.
        metrics: Test metrics, recorded as the model's figures.
        timezone: Zone of the local-clock features.
        version: The model's content id (:func:`model_version`).

    Returns:
        Content of scorer.json.
    """
    return {
        "format": SCORER_FORMAT,
        "model_version": version,
        "features": training["features"],
        "catalog_version": training["catalog_version"],
        "feature_params": feature_params,
        "timezone": timezone,
        "metadata": {
            "model_version": version,
            "catalog_version": training["catalog_version"],
            "data_hash": training.get("data_hash"),
            "git_commit": training.get("git_commit"),
            "run_id": training.get("run_id"),
            "params": training.get("params"),
            "split": training.get("split"),
            "horizon_days": training.get("horizon_days"),
            "best_iteration": training.get("best_iteration"),
            "valid_metrics": training.get("valid_metrics"),
            "metrics": metrics,
            "refundguard_version": __version__,
        },
    }


def _gate_metric(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def publish(
    scorer_dir: Path,
    *,
    name: str,
    gate_file: Path,
    tags: dict[str, str],
    source_run_id: str | None = None,
) -> dict[str, Any]:
    """Register the scorer folder and set the alias the gate decided.

    Args:
        scorer_dir: The exported scorer folder.
        name: Registered model name.
        gate_file: The evaluate stage's gate.json (absent: see
            :func:`refundguard.registry.fallback_gate`).
        tags: Version tags (``model_version`` among them).
        source_run_id: The training run the registry version links to.

    Returns:
        Content of reports/registry.json.
    """
    from refundguard import registry

    decided = registry.read_gate(gate_file, name)
    newest = registry.newest_version(name)
    version = registry.register(
        scorer_dir, decided["decision"], name, tags, source_run_id=source_run_id
    )
    held = sorted(a for a, v in registry.aliases(name).items() if v == version)
    log.info(
        "registry: %s version %s (%s)%s",
        name,
        version,
        ", ".join(f"@{a}" for a in held) or "no alias",
        " (unchanged: same model as the newest version)" if newest == version else "",
    )
    return {
        "name": name,
        "version": version,
        "uri": f"models:/{name}/{version}",
        "alias": decided["decision"] if newest != version else None,
        "aliases": ",".join(held),
        "decision": decided["decision"],
        "metric": decided["metric"],
        "candidate": _gate_metric(decided["candidate"]),
        "champion": _gate_metric(decided["champion"]),
        "champion_version": decided["champion_version"],
        "model_version": tags.get("model_version"),
        "registered": newest != version,
        "note": decided["note"],
    }


def main(
    params_path: Path = PARAMS_FILE,
    model_dir: Path = MODEL_DIR,
    features_dir: Path = FEATURES_DIR,
    sentiment_dir: Path = SENTIMENT_MODEL_DIR,
    metrics_file: Path = METRICS_FILE,
    out_dir: Path = SCORER_DIR,
    onnx_dir: Path = ONNX_DIR,
    gate_file: Path = GATE_FILE,
    registry_file: Path | None = REGISTRY_FILE,
) -> Path:
    """Write models/scorer and models/onnx, then register the scorer.

    Args:
        params_path: params.yaml.
        model_dir: The train stage's folder.
        features_dir: The features stage's folder (for the input example).
        sentiment_dir: The sentiment model's folder.
        metrics_file: The evaluate stage's headline metrics, recorded in scorer.json.
        out_dir: Destination of the scorer; replaced whole, only once the new one is complete.
        onnx_dir: Destination of model.onnx and spec.json; replaced the same way.
        gate_file: The evaluate stage's champion/challenger decision.
        registry_file: Where to record the registry version; None skips registering.

    Returns:
        The scorer folder.

    Raises:
        ModelError: The trained model was built with a different feature catalog, or a
            model file is missing.
    """
    import mlflow
    from mlflow.models import ModelSignature, infer_signature

    from refundguard.onnx_export import write_onnx

    params = load_params(params_path)
    training = read_json(model_dir / TRAINING_FILE)
    fp = params.features
    if training["catalog_version"] != catalog_version(build_catalog(fp)):
        raise ModelError("features params changed since training; run `dvc repro` again")
    files = model_artifacts(model_dir)
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise ModelError(f"{missing[0]}: missing; run the train stage again (`dvc repro`)")
    version = model_version(files)
    metrics = read_json(metrics_file) if metrics_file.is_file() else {}
    with tempfile.TemporaryDirectory(dir=out_dir.parent if out_dir.parent.exists() else None) as t:
        tmp = Path(t)
        config_file = tmp / ARTIFACTS["scorer"]
        config = scorer_config(
            training,
            {
                "windows_days": list(fp.windows_days),
                "fast_refund_hours": fp.fast_refund_hours,
                "active_days": fp.active_days,
                "link_max_accounts": fp.link_max_accounts,
            },
            metrics,
            params.base.timezone,
            version=version,
        )
        write_json(config, config_file)
        artifacts = {k: str(v) for k, v in files.items()}
        artifacts["scorer"] = str(config_file)
        if sentiment_dir.is_dir():
            artifacts["sentiment"] = str(sentiment_dir)
        scorer = Scorer.from_artifacts(artifacts)
        snapshots = pd.read_parquet(features_dir / "snapshots.parquet")
        test_cutoffs = list(split_from_info(training).test)
        example = snapshots[snapshots["cutoff"].isin(test_cutoffs)].head(5)
        example = example.loc[:, ["buyer_id", *scorer.features]].reset_index(drop=True)
        with warnings.catch_warnings():
            # risk_score is an integer on purpose; it is never missing.
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
            # "reasons" is a request parameter: {"params": {"reasons": false}} skips them.
            signature = infer_signature(example, scorer.score(example), params={"reasons": True})
        # No input schema: MLflow would check requests before the scorer does, with
        # messages that repeat the whole request and schema (3,400+ characters for a
        # missing column) and silently dropping extra columns; the scorer's own checks
        # name the column and the problem in one line.
        signature = ModelSignature(
            inputs=None, outputs=signature.outputs, params=signature.params
        )
        staged = tmp / "scorer"
        mlflow.pyfunc.save_model(
            path=str(staged),
            python_model=str(PACKAGE_DIR / "scorer_model.py"),
            artifacts=artifacts,
            code_paths=[str(PACKAGE_DIR)],
            signature=signature,
            input_example=example,
            pip_requirements=pinned_requirements(),
            metadata={
                "model_version": version,
                "catalog_version": training["catalog_version"],
                "data_hash": training.get("data_hash"),
                "git_commit": training.get("git_commit"),
            },
        )
        staged_onnx = write_onnx(
            scorer.booster,
            scorer.features,
            scorer.calibrator.to_dict(),
            scorer.bounds,
            tmp / "onnx",
            model_version=version,
            catalog_version=training["catalog_version"],
        )
        for staged_dir, dest in ((staged, out_dir), (staged_onnx, onnx_dir)):
            if dest.exists():
                shutil.rmtree(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staged_dir), str(dest))
    log.info("exported scorer %s to %s and %s", version, out_dir, onnx_dir)
    if registry_file is not None:
        report = publish(
            out_dir,
            name=params.registry.name,
            gate_file=gate_file,
            tags={
                "model_version": version,
                "catalog_version": str(training["catalog_version"]),
                "data_hash": str(training.get("data_hash")),
                "git_commit": str(training.get("git_commit")),
                "train_run_id": str(training.get("run_id")),
                "refundguard_version": __version__,
            },
            source_run_id=training.get("run_id"),
        )
        write_json(report, registry_file)
    return out_dir
