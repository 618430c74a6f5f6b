"""Train stage: tune, fit, calibrate and choose the policy; log the run to MLflow."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightgbm as lgb
import pandas as pd

from refundguard import progress
from refundguard.config import load_params
from refundguard.data.io import read_json
from refundguard.errors import DataContractError
from refundguard.features.timesplit import ROLES
from refundguard.model.consistency import CONSISTENCY_DIR, CONSISTENCY_FILE
from refundguard.model.policy import choose_bounds
from refundguard.model.train import (
    HOLDOUT_DIR,
    ShippedModel,
    TrainedModel,
    TuningResult,
    _balance,
    fit,
    fit_policy,
    monotone_vector,
    reference_distribution,
    refit_for_shipping,
    save_model,
    split_rows,
)
from refundguard.paths import FEATURES_DIR, MODEL_DIR, PARAMS_FILE, VALIDATED_DIR

log = logging.getLogger(__name__)


def _best_trial(tuned: TuningResult) -> dict[str, float]:
    if not tuned.trials:
        return {}
    best = max(tuned.trials, key=lambda t: t["ap_mean"])
    return {"rolling_ap_mean": best["ap_mean"], "rolling_ap_std": best["ap_std"]}


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
    snapshots = pd.read_parquet(features_dir / "snapshots.parquet")
    manifest = read_json(features_dir / "manifest.json")
    horizon_days = _horizon_of(manifest, params.base.horizon_days)
    dropped: list[str] = []
    consistency: dict[str, Any] = {}
    if consistency_file is not None and consistency_file.is_file():
        consistency = read_json(consistency_file)
        dropped = list(consistency.get("dropped", []))
    features = [f for f in manifest["features"] if f not in set(dropped)]
    if dropped:
        log.info("train: %d features left out by the time-consistency check: %s",
                 len(dropped), ", ".join(dropped))
    directions = {f.name: int(f.direction) for f in build_catalog(params.features)}
    monotone_names = tuple(f for f in params.train.monotone_increasing if f in features)
    train_params = dataclasses.replace(params.train, monotone_increasing=monotone_names)
    began = time.monotonic()
    holdout, split, tuned, check = fit(
        snapshots, features, directions, train_params,
        seed=params.base.seed, horizon_days=horizon_days,
    )
    rows = split_rows(snapshots, split)
    period_days = params.base.cutoff_step_days
    holdout_policy = fit_policy(holdout, rows["calibration"], params.policy,
                                period_days=period_days)
    latest_train = rows["train"][rows["train"]["cutoff"] == max(split.train)]
    holdout_reference = reference_distribution(latest_train, holdout.features)
    monotone = monotone_vector(features, monotone_names, directions)
    shipped: ShippedModel | None = None
    model, policy, reference = holdout, holdout_policy, holdout_reference
    if params.train.refit:
        with progress.bar("train: refit", total=params.train.crossfit_blocks + 1) as step:
            shipped, oot = refit_for_shipping(
                snapshots, holdout, tuned.params,
                fitted_rows=len(rows["train"]),
                horizon_days=horizon_days,
                n_blocks=params.train.crossfit_blocks,
                calibration=params.train.calibration,
                seed=params.base.seed,
                monotone=monotone,
                scale_pos_weight=_balance(snapshots) if check["reweighted"] else 1.0,
                on_step=lambda: step(1),
            )
        model = shipped.model
        # Tiers for the shipped model from its out-of-time probabilities on the latest
        # cutoffs (the calibration and test windows): the period it will score next.
        recent = oot[oot["cutoff"].isin(list(split.calibration) + list(split.test))]
        if recent["target"].nunique() < 2:
            recent = oot
        policy = choose_bounds(
            recent["probability"].to_numpy(), recent["target"].to_numpy(), params.policy,
            periods=int(recent["cutoff"].nunique()), period_days=period_days,
        )
        latest = snapshots[snapshots["cutoff"] == snapshots["cutoff"].max()]
        reference = reference_distribution(latest, model.features)
    seconds = time.monotonic() - began

    data_hash = tracking.files_hash(validated_dir.glob("*.parquet"))
    commit = tracking.git_commit()
    tracking.start()
    shipped_info: dict[str, Any] = (
        {
            "rounds": shipped.rounds,
            "rows": shipped.rows,
            "cutoffs": list(shipped.cutoffs),
            "oot_rows": shipped.oot_rows,
            "crossfit_blocks": [list(b) for b in shipped.blocks],
            "oot_metrics": shipped.model.valid_metrics,
            "calibration_method": shipped.model.calibrator.method,
            "calibration_brier": shipped.model.calibration_scores,
        }
        if shipped is not None
        else {}
    )
    with mlflow.start_run(run_name="train") as run:
        mlflow.set_tags(
            {
                "git_commit": commit,
                "data_hash": data_hash,
                "catalog_version": manifest["catalog_version"],
                "ships": "refit" if shipped is not None else "holdout",
            }
        )
        mlflow.log_params(
            {
                **{f"lgb.{k}": v for k, v in asdict(tuned.params).items()},
                "seed": params.base.seed,
                "horizon_days": horizon_days,
                "calibration": model.calibrator.method,
                "reweighted": check["reweighted"],
                "monotone_increasing": ",".join(monotone_names),
                "n_features": len(features),
                "dropped_features": ",".join(dropped),
                "train_rows": len(rows["train"]),
                "valid_rows": len(rows["valid"]),
                "calibration_rows": len(rows["calibration"]),
                "holdout_rounds": holdout.best_iteration,
                "shipped_rounds": model.best_iteration,
                "shipped_rows": shipped.rows if shipped is not None else len(rows["train"]),
                "tuning_trials": len(tuned.trials),
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
                **{f"tuning_{k}": v for k, v in _best_trial(tuned).items()},
                **{f"calibration_brier_{k}": v for k, v in model.calibration_scores.items()},
                "train_seconds": seconds,
            }
        )
        _log_trials(mlflow, tuned)
        mlflow.log_dict({"features": list(features), "dropped": dropped}, "features.json")
        if consistency:
            mlflow.log_dict(consistency, "consistency.json")
        mlflow.log_dict(model.calibrator.to_dict(), "calibration.json")
        mlflow.log_dict(policy.to_dict(), "policy.json")
        mlflow.log_dict({"trials": tuned.trials, "folds": tuned.folds}, "tuning.json")
        mlflow.lightgbm.log_model(
            model.booster, name="model", pip_requirements=[f"lightgbm=={lgb.__version__}"]
        )
        info = {
            "run_id": run.info.run_id,
            "git_commit": commit,
            "data_hash": data_hash,
            "catalog_version": manifest["catalog_version"],
            "split": {
                role: [c.isoformat() for c in getattr(split, role)] for role in ROLES
            },
            "horizon_days": horizon_days,
            "horizon": manifest.get("horizon", {"days": horizon_days, "source": "params"}),
            "period_days": period_days,
            "valid_metrics": holdout.valid_metrics,
            "ships": "refit" if shipped is not None else "holdout",
            "holdout": {
                "rounds": holdout.best_iteration,
                "rows": len(rows["train"]),
                "cutoffs": [c.isoformat() for c in split.train],
                "calibration_method": holdout.calibrator.method,
                "calibration_brier": holdout.calibration_scores,
                "valid_metrics": holdout.valid_metrics,
            },
            "shipped": shipped_info,
            "dropped_features": dropped,
            "tuning": {
                "folds": tuned.folds,
                "trials": tuned.trials,
                "timed_out": tuned.timed_out,
                **_best_trial(tuned),
            },
            "reweight": check,
            "monotone_increasing": list(monotone_names),
            "params": {
                "lightgbm": asdict(tuned.params),
                "seed": params.base.seed,
                "calibration": params.train.calibration,
            },
        }
    save_model(model, out_dir, info, policy=policy, reference=reference)
    holdout_dir = out_dir / HOLDOUT_DIR
    if shipped is not None:
        save_model(holdout, holdout_dir, info, policy=holdout_policy,
                   reference=holdout_reference)
    elif holdout_dir.exists():
        import shutil

        shutil.rmtree(holdout_dir)
    log.info(
        "trained %d rounds held out (validation AP %.3f), shipped %s with %d rounds on %d "
        "rows (out-of-time AP %.3f); %d trials, %.0f s; tiers from %s",
        holdout.best_iteration,
        holdout.valid_metrics["average_precision"],
        "a refit" if shipped is not None else "the held-out booster",
        model.best_iteration,
        shipped.rows if shipped is not None else len(rows["train"]),
        model.valid_metrics.get("average_precision", float("nan")),
        len(tuned.trials),
        seconds,
        ", ".join(f"{b:.3f}" for b in policy.bounds),
    )
    return model
