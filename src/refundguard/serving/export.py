"""Export stage: the trained model as a scorer folder, an ONNX pair, and a registry version.

Writes ``models/scorer`` (an MLflow pyfunc model whose artifacts are the data files that
:data:`refundguard.scorer.ARTIFACTS` names), ``models/onnx`` (``model.onnx`` and
``spec.json`` for services in other languages), registers the scorer in the MLflow Model
Registry as champion or challenger, and records that in ``reports/registry.json``.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from refundguard import __version__
from refundguard.paths import (
    MODELS_DIR,
    REPORTS_DIR,
)
from refundguard.serving.scorer import ARTIFACTS, SCORER_FORMAT, content_id

log = logging.getLogger(__name__)


PACKAGE_DIR = Path(__file__).resolve().parents[1]
# What an exported scorer needs at serving time: no simulator, no stage shells, no report
# or CLI. The layer rule (tests/unit/test_architecture.py) keeps serving from importing them.
DEV_ONLY: tuple[str, ...] = ("sim", "stages", "reporting", "cli.py", "__main__.py")


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
    from refundguard.serving import registry

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


def serving_code(dst: Path) -> Path:
    """Copy the package's serving code (everything but :data:`DEV_ONLY`) under ``dst``.

    The exported scorer carries this copy (MLflow ``code_paths``) so that loading it needs
    no installed refundguard; the simulator, stages, reports and CLI stay behind.

    Args:
        dst: An empty staging folder.

    Returns:
        The copied package folder, ``dst/refundguard``.
    """
    out = dst / PACKAGE_DIR.name
    shutil.copytree(
        PACKAGE_DIR,
        out,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", *DEV_ONLY),
    )
    return out
