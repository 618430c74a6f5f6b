"""Export stage: the trained model as a scorer folder, an ONNX pair, and a registry version.

Writes ``models/scorer`` (an MLflow pyfunc model whose artifacts are the data files that
:data:`refundguard.model.bundle.ARTIFACTS` names), ``models/onnx`` (``model.onnx`` and
``spec.json`` for services in other languages), registers the scorer in the MLflow Model
Registry as champion or challenger, and records that in ``reports/registry.json``.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from refundguard import __version__
from refundguard.config import FeaturesParams
from refundguard.data.io import write_json
from refundguard.errors import ModelError
from refundguard.features.catalog import build_catalog, catalog_version
from refundguard.model.bundle import DEMAND_DIR, SCORER_FILE, TrainingInfo, content_id
from refundguard.paths import (
    MODELS_DIR,
    REPORTS_DIR,
)
from refundguard.serving.scorer import SCORER_FORMAT, Scorer

log = logging.getLogger(__name__)


PACKAGE_DIR = Path(__file__).resolve().parents[1]
# What an exported scorer needs at serving time: no simulator, no stage shells, no report
# or CLI. The layer rule (tests/unit/test_architecture.py) keeps serving from importing them.
DEV_ONLY: tuple[str, ...] = ("sim", "stages", "reporting", "cli.py", "__main__.py")


ONNX_DIR = MODELS_DIR / "onnx"


GATE_FILE = REPORTS_DIR / "gate.json"


REGISTRY_FILE = REPORTS_DIR / "registry.json"


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


def scorer_config(
    training: TrainingInfo,
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
        training: The model folder's training.json.
        feature_params: Feature settings the catalog is built from.
        metrics: Test metrics, recorded as the model's figures.
        timezone: Zone of the local-clock features.
        version: The model's content id (:func:`refundguard.model.bundle.model_version`).

    Returns:
        Content of scorer.json.
    """
    return {
        "format": SCORER_FORMAT,
        "model_version": version,
        "features": list(training.features),
        "catalog_version": training.catalog_version,
        "feature_params": feature_params,
        "timezone": timezone,
        "metadata": {
            "model_version": version,
            "catalog_version": training.catalog_version,
            "data_hash": training.data_hash,
            "git_commit": training.git_commit,
            "run_id": training.run_id,
            "params": training.params,
            "split": training.to_dict()["split"],
            "horizon_days": training.horizon_days,
            "best_iteration": training.best_iteration,
            "valid_metrics": training.valid_metrics,
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


def scorer_feature_params(fp: FeaturesParams) -> dict[str, object]:
    """The feature settings a scorer recomputes features with (scorer.json's copy).

    Args:
        fp: The ``features`` block.

    Returns:
        windows_days, fast_refund_hours, active_days and link_max_accounts.
    """
    return {
        "windows_days": list(fp.windows_days),
        "fast_refund_hours": fp.fast_refund_hours,
        "active_days": fp.active_days,
        "link_max_accounts": fp.link_max_accounts,
    }


def check_model(
    info: TrainingInfo, files: Mapping[str, Path], feature_params: FeaturesParams
) -> None:
    """Refuse to export a model of another feature catalog, or with a file missing.

    Args:
        info: The model folder's training.json.
        files: The model's files by artifact role.
        feature_params: The ``features`` block the scorer will compute with.

    Raises:
        ModelError: The catalog changed since training, or a file is missing.
    """
    if info.catalog_version != catalog_version(build_catalog(feature_params)):
        raise ModelError("features params changed since training; run `dvc repro` again")
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise ModelError(f"{missing[0]}: missing; run the train stage again (`dvc repro`)")


def registry_tags(info: TrainingInfo, version: str) -> dict[str, str]:
    """Tags of the registry version: the model's identity and provenance.

    Args:
        info: The model folder's training.json.
        version: The model's content id.

    Returns:
        Tag name to text.
    """
    return {
        "model_version": version,
        "catalog_version": str(info.catalog_version),
        "data_hash": str(info.data_hash),
        "git_commit": str(info.git_commit),
        "train_run_id": str(info.run_id),
        "refundguard_version": __version__,
    }


@dataclass(frozen=True)
class StagedScorer:
    """A scorer folder and an ONNX pair written to a staging folder, not yet in place.

    Attributes:
        version: The model's content id.
        scorer_dir: The MLflow pyfunc folder.
        onnx_dir: model.onnx and spec.json.
    """

    version: str
    scorer_dir: Path
    onnx_dir: Path


def input_example(
    snapshots: pd.DataFrame, info: TrainingInfo, features: tuple[str, ...]
) -> pd.DataFrame:
    """Five test-window rows as a scorer request (buyer_id and the model's features).

    Args:
        snapshots: The features stage's table (read only).
        info: The model's training.json (its test cutoffs).
        features: The scorer's features.

    Returns:
        A new frame.
    """
    rows = snapshots[snapshots["cutoff"].isin(list(info.time_split.test))].head(5)
    return rows.loc[:, ["buyer_id", *features]].reset_index(drop=True)


def _signature(example: pd.DataFrame, scorer: Scorer) -> Any:
    from mlflow.models import ModelSignature, infer_signature

    with warnings.catch_warnings():
        # risk_score is an integer on purpose; it is never missing.
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        # "reasons" is a request parameter: {"params": {"reasons": false}} skips them.
        signature = infer_signature(example, scorer.score(example), params={"reasons": True})
    # No input schema: MLflow would check requests before the scorer does, with messages
    # that repeat the whole request and schema (3,400+ characters for a missing column)
    # and silently dropping extra columns; the scorer's own checks name the column and the
    # problem in one line.
    return ModelSignature(inputs=None, outputs=signature.outputs, params=signature.params)


def stage_scorer(
    staging: Path,
    info: TrainingInfo,
    files: Mapping[str, Path],
    snapshots: pd.DataFrame,
    feature_params: FeaturesParams,
    *,
    metrics: dict[str, object],
    timezone: str,
    sentiment_dir: Path | None = None,
) -> StagedScorer:
    """Write the scorer folder and the ONNX pair of a model under ``staging``.

    Args:
        staging: An empty folder, on the destination's file system.
        info: The model folder's training.json.
        files: The model's files by artifact role (:func:`refundguard.model.bundle.model_files`).
        snapshots: The features stage's table, for the input example (read only).
        feature_params: The ``features`` block.
        metrics: The evaluate stage's headline metrics, recorded in scorer.json.
        timezone: Zone of the local-clock features.
        sentiment_dir: The sentiment model's folder, bundled when given.

    The model folder's ``demand/`` (beside the booster), when present, is bundled too.

    Returns:
        The staged folders and the model's content id.
    """
    import mlflow

    from refundguard.serving.onnx import write_onnx

    version = content_id(files)
    config_file = staging / SCORER_FILE
    write_json(
        scorer_config(info, scorer_feature_params(feature_params), metrics, timezone,
                      version=version),
        config_file,
    )
    artifacts = {k: str(v) for k, v in files.items()}
    artifacts["scorer"] = str(config_file)
    if sentiment_dir is not None:
        artifacts["sentiment"] = str(sentiment_dir)
    # The review demand model lives in the model folder beside the booster (the train
    # stage copies it there from the features stage).
    demand_dir = Path(files["booster"]).parent / DEMAND_DIR
    if demand_dir.is_dir():
        artifacts["demand"] = str(demand_dir)
    scorer = Scorer.from_artifacts(artifacts)
    example = input_example(snapshots, info, scorer.features)
    mlflow.pyfunc.save_model(
        path=str(staging / "scorer"),
        python_model=str(PACKAGE_DIR / "serving" / "pyfunc.py"),
        artifacts=artifacts,
        code_paths=[str(serving_code(staging / "code"))],
        signature=_signature(example, scorer),
        input_example=example,
        pip_requirements=pinned_requirements(),
        metadata={
            "model_version": version,
            "catalog_version": info.catalog_version,
            "data_hash": info.data_hash,
            "git_commit": info.git_commit,
        },
    )
    onnx_dir = write_onnx(
        scorer.booster,
        scorer.features,
        scorer.calibrator.to_dict(),
        scorer.bounds,
        staging / "onnx",
        model_version=version,
        catalog_version=info.catalog_version,
    )
    return StagedScorer(version, staging / "scorer", onnx_dir)
