"""Train stage: LightGBM on time-split snapshots, calibrated on the validation window."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from refundguard.calibration import Calibrator, fit_calibrator
from refundguard.config import LightGBMParams, load_params
from refundguard.errors import DataContractError
from refundguard.io import atomic_path, read_json, write_json
from refundguard.metrics import ranking_metrics
from refundguard.paths import FEATURES_DIR, MODEL_DIR, PARAMS_FILE, VALIDATED_DIR
from refundguard.timesplit import TimeSplit, split_cutoffs

log = logging.getLogger(__name__)

MODEL_FILE = "model.txt"
CALIBRATION_FILE = "calibration.json"
TRAINING_FILE = "training.json"


@dataclass(frozen=True)
class TrainedModel:
    """A fitted booster and its calibrator.

    Attributes:
        booster: The LightGBM booster, cut at its best iteration.
        calibrator: Map from the booster's probability to a calibrated one.
        features: Feature columns in the booster's order.
        best_iteration: Boosting rounds kept.
        valid_metrics: Ranking metrics of the raw booster on the validation rows.
    """

    booster: lgb.Booster
    calibrator: Calibrator
    features: tuple[str, ...]
    best_iteration: int
    valid_metrics: dict[str, float]

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities for feature rows.

        Args:
            frame: Rows holding every feature column.

        Returns:
            One probability per row.
        """
        raw = self.booster.predict(frame.loc[:, list(self.features)].to_numpy(dtype="float64"))
        return self.calibrator.predict(np.asarray(raw))


def booster_params(p: LightGBMParams, seed: int) -> dict[str, Any]:
    """LightGBM's parameter mapping, pinned for repeatable results.

    Args:
        p: Booster settings.
        seed: Random seed.

    Returns:
        Parameters for ``lightgbm.train``.
    """
    return {
        "objective": "binary",
        "metric": "average_precision",
        "learning_rate": p.learning_rate,
        "num_leaves": p.num_leaves,
        "min_data_in_leaf": p.min_data_in_leaf,
        "feature_fraction": p.feature_fraction,
        "bagging_fraction": p.bagging_fraction,
        "bagging_freq": p.bagging_freq,
        "lambda_l2": p.lambda_l2,
        "max_bin": p.max_bin,
        "num_threads": p.num_threads,
        "seed": seed,
        # Same data, params and thread count give the same trees.
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }


def split_rows(snapshots: pd.DataFrame, split: TimeSplit) -> dict[str, pd.DataFrame]:
    """Rows of each role of the split.

    Args:
        snapshots: The features stage's table.
        split: The time split.

    Returns:
        Frames for "train", "valid" and "test" (copies; the input is untouched).
    """
    return {
        role: snapshots[snapshots["cutoff"].isin(list(getattr(split, role)))].reset_index(drop=True)
        for role in ("train", "valid", "test")
    }


def _matrix(frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    return frame.loc[:, list(features)].to_numpy(dtype="float64")


def _require_both_classes(frame: pd.DataFrame, role: str) -> None:
    positives = int(frame["target"].sum())
    if len(frame) == 0 or positives == 0 or positives == len(frame):
        raise DataContractError(
            f"the {role} window has {len(frame)} rows and {positives} labeled abusers; "
            "both classes are needed (more labels, or a longer history, are required)"
        )


def train_model(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    features: Sequence[str],
    params: LightGBMParams,
    *,
    seed: int,
    calibration: str,
) -> TrainedModel:
    """Fit LightGBM with early stopping on the validation rows, then calibrate on them.

    Args:
        train: Training rows (features and ``target``).
        valid: Validation rows, later in time than ``train`` by at least the horizon.
        features: Feature columns to use.
        params: Booster settings.
        seed: Random seed.
        calibration: "isotonic" or "platt".

    Returns:
        The trained model.

    Raises:
        DataContractError: A window lacks one of the classes.
    """
    _require_both_classes(train, "training")
    _require_both_classes(valid, "validation")
    features = tuple(features)
    dtrain = lgb.Dataset(
        _matrix(train, features),
        label=train["target"].to_numpy(),
        feature_name=list(features),
        free_raw_data=True,
    )
    dvalid = lgb.Dataset(
        _matrix(valid, features), label=valid["target"].to_numpy(), reference=dtrain
    )
    booster = lgb.train(
        booster_params(params, seed),
        dtrain,
        num_boost_round=params.num_boost_round,
        valid_sets=[dvalid],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
    )
    best = booster.best_iteration or booster.current_iteration()
    # Re-load from text: the saved model is exactly the one calibrated and evaluated.
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    raw_valid = np.asarray(booster.predict(_matrix(valid, features)))
    calibrator = fit_calibrator(raw_valid, valid["target"].to_numpy(), calibration)  # type: ignore[arg-type]
    metrics = ranking_metrics(valid["target"].to_numpy(), raw_valid, top_share=0.01, max_fpr=0.01)
    return TrainedModel(booster, calibrator, features, int(best), metrics)


def save_model(model: TrainedModel, out_dir: Path, training_info: dict[str, Any]) -> None:
    """Write the booster (LightGBM text), calibration and training facts (JSON).

    Args:
        model: The trained model.
        out_dir: Destination folder.
        training_info: Split, data hash, commit, params and run id, for later stages.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / MODEL_FILE) as tmp:
        model.booster.save_model(str(tmp))
    write_json(model.calibrator.to_dict(), out_dir / CALIBRATION_FILE)
    write_json(
        {**training_info, "features": list(model.features), "best_iteration": model.best_iteration},
        out_dir / TRAINING_FILE,
    )


def load_model(model_dir: Path) -> TrainedModel:
    """Read a model written by :func:`save_model`.

    Args:
        model_dir: The folder.

    Returns:
        The model (validation metrics as recorded at training).
    """
    info = read_json(model_dir / TRAINING_FILE)
    booster = lgb.Booster(model_file=str(model_dir / MODEL_FILE))
    calibrator = Calibrator.from_dict(read_json(model_dir / CALIBRATION_FILE))
    return TrainedModel(
        booster,
        calibrator,
        tuple(info["features"]),
        info["best_iteration"],
        info.get("valid_metrics", {}),
    )


def split_from_info(info: dict[str, Any]) -> TimeSplit:
    """The split recorded in training.json.

    Args:
        info: Parsed training.json.

    Returns:
        The time split.
    """
    return TimeSplit(
        **{
            role: tuple(pd.Timestamp(c) for c in info["split"][role])
            for role in ("train", "valid", "test")
        }
    )


def main(
    params_path: Path = PARAMS_FILE,
    features_dir: Path = FEATURES_DIR,
    out_dir: Path = MODEL_DIR,
    validated_dir: Path = VALIDATED_DIR,
) -> TrainedModel:
    """Train on the snapshots, log the run to MLflow, write models/model.

    Args:
        params_path: params.yaml.
        features_dir: The features stage's folder.
        out_dir: Destination of the model files.
        validated_dir: The validated tables, hashed as the data version.

    Returns:
        The trained model.
    """
    import mlflow

    from refundguard import tracking

    params = load_params(params_path)
    snapshots = pd.read_parquet(features_dir / "snapshots.parquet")
    manifest = read_json(features_dir / "manifest.json")
    features = manifest["features"]
    split = split_cutoffs(
        sorted(snapshots["cutoff"].unique()),
        horizon_days=params.base.horizon_days,
        n_valid=params.train.n_valid_cutoffs,
        n_test=params.train.n_test_cutoffs,
    )
    rows = split_rows(snapshots, split)
    model = train_model(
        rows["train"],
        rows["valid"],
        features,
        params.train.lightgbm,
        seed=params.base.seed,
        calibration=params.train.calibration,
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
            }
        )
        mlflow.log_params(
            {
                **{f"lgb.{k}": v for k, v in asdict(params.train.lightgbm).items()},
                "seed": params.base.seed,
                "horizon_days": params.base.horizon_days,
                "calibration": params.train.calibration,
                "n_features": len(features),
                "train_rows": len(rows["train"]),
                "valid_rows": len(rows["valid"]),
                "best_iteration": model.best_iteration,
            }
        )
        mlflow.log_metrics(
            {f"valid_{k}": v for k, v in model.valid_metrics.items() if np.isfinite(v)}
        )
        mlflow.log_dict({"features": list(features)}, "features.json")
        mlflow.log_dict(model.calibrator.to_dict(), "calibration.json")
        mlflow.lightgbm.log_model(
            model.booster, name="model", pip_requirements=[f"lightgbm=={lgb.__version__}"]
        )
        info = {
            "run_id": run.info.run_id,
            "git_commit": commit,
            "data_hash": data_hash,
            "catalog_version": manifest["catalog_version"],
            "split": {
                role: [c.isoformat() for c in getattr(split, role)]
                for role in ("train", "valid", "test")
            },
            "horizon_days": params.base.horizon_days,
            "valid_metrics": model.valid_metrics,
            "params": {
                "lightgbm": asdict(params.train.lightgbm),
                "seed": params.base.seed,
                "calibration": params.train.calibration,
            },
        }
    save_model(model, out_dir, info)
    log.info(
        "trained %d rounds; validation AP %.3f",
        model.best_iteration,
        model.valid_metrics["average_precision"],
    )
    return model
