"""Train stage: tune, fit, calibrate and choose the policy; log the run to MLflow."""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightgbm as lgb
import pandas as pd

from refundguard.config import load_params
from refundguard.data.io import read_json
from refundguard.errors import DataContractError
from refundguard.features.build import known_abuser_rows
from refundguard.features.extortion import REVIEW_MODELS_DIR
from refundguard.model.bundle import (
    DEMAND_DIR,
    HOLDOUT_DIR,
    TrainedModel,
    TrainingInfo,
    save_model,
)
from refundguard.model.consistency import CONSISTENCY_DIR, CONSISTENCY_FILE
from refundguard.model.train import TrainingResult, TuningResult, train
from refundguard.paths import (
    FEATURES_DIR,
    MANIFEST_FILE_NAME,
    MODEL_DIR,
    PARAMS_FILE,
    SNAPSHOTS_FILE_NAME,
    VALIDATED_DIR,
)

log = logging.getLogger(__name__)


def _horizon_of(manifest: Mapping[str, Any], configured: int | None) -> int:
    """H as the features stage resolved it (manifest), else as configured."""
    horizon = manifest.get("horizon", {}).get("days") if "horizon" in manifest else None
    if horizon is None:
        horizon = configured
    if horizon is None:
        raise DataContractError(
            "the features manifest records no label horizon; re-run the features stage"
        )
    return int(horizon)


def _log_trials(mlflow: Any, tuned: TuningResult) -> None:
    """One nested child run per tuning trial, with its settings and fold scores."""
    for i, trial in enumerate(tuned.trials):
        with mlflow.start_run(run_name=f"trial-{i:02d}", nested=True):
            mlflow.log_params({f"lgb.{k}": v for k, v in trial["params"].items()})
            mlflow.log_metrics({"rolling_ap_mean": trial["ap_mean"],
                                "rolling_ap_std": trial["ap_std"]})
            for step, score in enumerate(trial.get("fold_ap", [])):
                mlflow.log_metric("fold_ap", score, step=step)


def _log_run(
    mlflow: Any,
    result: TrainingResult,
    features: list[str],
    dropped: list[str],
    consistency: dict[str, Any],
) -> None:
    """The run's params, metrics and artifacts (inside the open training run)."""
    model, holdout, shipped = result.model, result.holdout, result.shipped
    mlflow.log_params(
        {
            **{f"lgb.{k}": v for k, v in asdict(result.tuned.params).items()},
            "seed": result.seed,
            "horizon_days": result.horizon_days,
            "calibration": model.calibrator.method,
            "reweighted": result.reweight["reweighted"],
            "monotone_increasing": ",".join(result.monotone_increasing),
            "n_features": len(features),
            "dropped_features": ",".join(dropped),
            "train_rows": result.rows["train"],
            "valid_rows": result.rows["valid"],
            "calibration_rows": result.rows["calibration"],
            "known_abusers": "positive" if result.rows["known_abusers"] else "none",
            "known_abuser_rows": result.rows["known_abusers"],
            "holdout_rounds": holdout.best_iteration,
            "shipped_rounds": model.best_iteration,
            "shipped_rows": shipped.rows if shipped is not None else result.rows["train"],
            "tuning_trials": len(result.tuned.trials),
        }
    )
    mlflow.log_metrics(
        {
            **{f"valid_{k}": v for k, v in holdout.valid_metrics.items() if math.isfinite(v)},
            **{
                f"shipped_oot_{k}": v
                for k, v in (shipped.model.valid_metrics if shipped else {}).items()
                if math.isfinite(v)
            },
            **{f"tuning_{k}": v for k, v in result.best_trial.items()},
            **{f"calibration_brier_{k}": v for k, v in model.calibration_scores.items()},
            "train_seconds": result.seconds,
        }
    )
    _log_trials(mlflow, result.tuned)
    mlflow.log_dict({"features": list(features), "dropped": dropped}, "features.json")
    if consistency:
        mlflow.log_dict(consistency, "consistency.json")
    mlflow.log_dict(model.calibrator.to_dict(), "calibration.json")
    mlflow.log_dict(result.policy.to_dict(), "policy.json")
    mlflow.log_dict({"trials": result.tuned.trials, "folds": result.tuned.folds}, "tuning.json")
    mlflow.lightgbm.log_model(
        model.booster, name="model", pip_requirements=[f"lightgbm=={lgb.__version__}"]
    )


def _save(
    result: TrainingResult, info: TrainingInfo, out_dir: Path, review_models: Path
) -> None:
    """The shipped model at the folder's top level, the held-out one under holdout/.

    The features stage's review demand model (trained on the data before the last
    cutoff) goes to ``demand/``, for the scorer.
    """
    save_model(result.model, out_dir, info, policy=result.policy, reference=result.reference)
    demand_dir = out_dir / DEMAND_DIR
    if demand_dir.exists():
        shutil.rmtree(demand_dir)
    if review_models.is_dir():
        shutil.copytree(review_models, demand_dir)
    holdout_dir = out_dir / HOLDOUT_DIR
    if result.shipped is not None:
        save_model(result.holdout, holdout_dir, info, policy=result.holdout_policy,
                   reference=result.holdout_reference)
    elif holdout_dir.exists():
        shutil.rmtree(holdout_dir)


def main(
    params_path: Path = PARAMS_FILE,
    features_dir: Path = FEATURES_DIR,
    out_dir: Path = MODEL_DIR,
    validated_dir: Path = VALIDATED_DIR,
    consistency_file: Path | None = CONSISTENCY_DIR / CONSISTENCY_FILE,
) -> TrainedModel:
    """Train on the snapshots, log the run to MLflow, write models/model.

    Args:
        params_path: params.yaml.
        features_dir: The features stage's folder.
        out_dir: Destination of the model files.
        validated_dir: The validated tables, hashed as the data version.
        consistency_file: The time-consistency check's result; its failed features are
            left out of the model (None or a missing file: every feature is used).

    Returns:
        The shipped model.
    """
    import mlflow
    import optuna

    from refundguard.features.catalog import build_catalog
    from refundguard.model import tracking

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params = load_params(params_path)
    snapshots = pd.read_parquet(features_dir / SNAPSHOTS_FILE_NAME)
    known = known_abuser_rows(features_dir, params.train.known_abusers)
    manifest = read_json(features_dir / MANIFEST_FILE_NAME)
    consistency: dict[str, Any] = {}
    if consistency_file is not None and consistency_file.is_file():
        consistency = read_json(consistency_file)
    dropped = list(consistency.get("dropped", []))
    features = [f for f in manifest["features"] if f not in set(dropped)]
    if dropped:
        log.info("train: %d features left out by the time-consistency check: %s",
                 len(dropped), ", ".join(dropped))
    result = train(
        snapshots,
        features,
        {f.name: int(f.direction) for f in build_catalog(params.features)},
        params.train,
        params.policy,
        seed=params.base.seed,
        horizon_days=_horizon_of(manifest, params.base.horizon_days),
        period_days=params.base.cutoff_step_days,
        known=known,
    )

    data_hash = tracking.files_hash(validated_dir.glob("*.parquet"))
    commit = tracking.git_commit()
    tracking.start()
    with mlflow.start_run(run_name="train") as run:
        mlflow.set_tags(
            {
                "git_commit": commit,
                "data_hash": data_hash,
                "catalog_version": manifest["catalog_version"],
                "ships": result.ships,
            }
        )
        _log_run(mlflow, result, features, dropped, consistency)
        info = result.info(
            run_id=run.info.run_id,
            git_commit=commit,
            data_hash=data_hash,
            catalog_version=manifest["catalog_version"],
            horizon=manifest.get("horizon"),
            dropped=dropped,
        )
    _save(result, info, out_dir, features_dir / REVIEW_MODELS_DIR)
    _log_summary(result)
    return result.model


def _log_summary(result: TrainingResult) -> None:
    """One line: both models' rounds and figures, the search and the tiers."""
    model, shipped = result.model, result.shipped
    log.info(
        "trained %d rounds held out (validation AP %.3f), shipped %s with %d rounds on %d "
        "rows (out-of-time AP %.3f); %d trials, %.0f s; tiers from %s",
        result.holdout.best_iteration,
        result.holdout.valid_metrics["average_precision"],
        "a refit" if shipped is not None else "the held-out booster",
        model.best_iteration,
        shipped.rows if shipped is not None else result.rows["train"],
        model.valid_metrics.get("average_precision", float("nan")),
        len(result.tuned.trials),
        result.seconds,
        ", ".join(f"{b:.3f}" for b in result.policy.bounds),
    )
