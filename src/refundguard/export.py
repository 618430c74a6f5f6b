"""Export stage: the trained model as a self-contained MLflow pyfunc scorer folder."""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

import pandas as pd

from refundguard.config import load_params
from refundguard.errors import ModelError
from refundguard.features import build_catalog, catalog_version
from refundguard.io import read_json, write_json
from refundguard.paths import (
    FEATURES_DIR,
    METRICS_FILE,
    MODEL_DIR,
    PARAMS_FILE,
    SCORER_DIR,
    SENTIMENT_MODEL_DIR,
)
from refundguard.policy import thresholds
from refundguard.scorer import ARTIFACTS, SCORER_FORMAT, Scorer
from refundguard.train import CALIBRATION_FILE, MODEL_FILE, TRAINING_FILE, split_from_info

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
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
    training: dict[str, object],
    feature_params: dict[str, object],
    bounds: tuple[float, float, float],
    metrics: dict[str, object],
    timezone: str,
) -> dict[str, object]:
    """The scorer's own description: features, catalog version, tiers and provenance.

    Args:
        training: Parsed training.json.
        feature_params: Feature settings the catalog is built from.
        bounds: Tier bounds.
        metrics: Test metrics, recorded as the model's figures.
        timezone: Zone of the local-clock features.

    Returns:
        Content of scorer.json.
    """
    return {
        "format": SCORER_FORMAT,
        "features": training["features"],
        "catalog_version": training["catalog_version"],
        "feature_params": feature_params,
        "bounds": list(bounds),
        "timezone": timezone,
        "metadata": {
            "data_hash": training.get("data_hash"),
            "git_commit": training.get("git_commit"),
            "run_id": training.get("run_id"),
            "params": training.get("params"),
            "split": training.get("split"),
            "metrics": metrics,
        },
    }


def main(
    params_path: Path = PARAMS_FILE,
    model_dir: Path = MODEL_DIR,
    features_dir: Path = FEATURES_DIR,
    sentiment_dir: Path = SENTIMENT_MODEL_DIR,
    metrics_file: Path = METRICS_FILE,
    out_dir: Path = SCORER_DIR,
) -> Path:
    """Write models/scorer: pyfunc model from code, data artifacts, signature, example.

    Args:
        params_path: params.yaml.
        model_dir: The train stage's folder.
        features_dir: The features stage's folder (for the input example).
        sentiment_dir: The sentiment model's folder.
        metrics_file: The evaluate stage's metrics.
        out_dir: Destination; replaced whole, only once the new folder is complete.

    Returns:
        The scorer folder.

    Raises:
        ModelError: The trained model was built with a different feature catalog.
    """
    import mlflow
    from mlflow.models import infer_signature

    params = load_params(params_path)
    training = read_json(model_dir / TRAINING_FILE)
    fp = params.features
    if training["catalog_version"] != catalog_version(build_catalog(fp)):
        raise ModelError("features params changed since training; run `dvc repro` again")
    bounds = thresholds(params.policy)
    metrics = read_json(metrics_file) if metrics_file.is_file() else {}
    with tempfile.TemporaryDirectory(dir=out_dir.parent if out_dir.parent.exists() else None) as t:
        tmp = Path(t)
        config_file = tmp / ARTIFACTS["scorer"]
        write_json(
            scorer_config(
                training,
                {
                    "windows_days": list(fp.windows_days),
                    "fast_refund_hours": fp.fast_refund_hours,
                    "active_days": fp.active_days,
                    "link_max_accounts": fp.link_max_accounts,
                },
                bounds,
                metrics,
                params.base.timezone,
            ),
            config_file,
        )
        artifacts = {
            "booster": str(model_dir / MODEL_FILE),
            "calibration": str(model_dir / CALIBRATION_FILE),
            "scorer": str(config_file),
        }
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
            signature = infer_signature(example, scorer.score(example))
        staged = tmp / "scorer"
        mlflow.pyfunc.save_model(
            path=str(staged),
            python_model=str(PACKAGE_DIR / "scorer_model.py"),
            artifacts=artifacts,
            code_paths=[str(PACKAGE_DIR)],
            signature=signature,
            input_example=example,
            pip_requirements=pinned_requirements(),
        )
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staged), str(out_dir))
    log.info("exported scorer to %s", out_dir)
    return out_dir
