"""Train stage: tuned, monotone LightGBM on time-split snapshots, calibrated on a later window.

The split runs train | valid | calibration | test, each at least H (the label horizon)
after the one before. The hyper-parameters come from a seeded Optuna search scored by
rolling (prequential) validation; the booster early-stops on the validation window; the
calibration, and the policy thresholds chosen from the costs in params.yaml, are fitted
on the calibration window, which the booster never saw.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from refundguard.calibration import Calibrator, fit_calibrator
from refundguard.config import LightGBMParams, PolicyParams, TrainParams, TuningParams, load_params
from refundguard.errors import ConfigError, DataContractError
from refundguard.io import atomic_path, read_json, write_json
from refundguard.metrics import ranking_metrics
from refundguard.paths import FEATURES_DIR, MODEL_DIR, PARAMS_FILE, VALIDATED_DIR
from refundguard.policy import PolicyChoice, choose_bounds
from refundguard.timesplit import ROLES, TimeSplit, rolling_folds, split_cutoffs

log = logging.getLogger(__name__)

MODEL_FILE = "model.txt"
CALIBRATION_FILE = "calibration.json"
POLICY_FILE = "policy.json"
REFERENCE_FILE = "reference.json"
TRAINING_FILE = "training.json"
# Points of each feature's reference distribution (percentiles for the reasons).
REFERENCE_POINTS = 201


@dataclass(frozen=True)
class TrainedModel:
    """A fitted booster and its calibrator.

    Attributes:
        booster: The LightGBM booster, cut at its best iteration.
        calibrator: Map from the booster's probability to a calibrated one.
        features: Feature columns in the booster's order.
        best_iteration: Boosting rounds kept.
        valid_metrics: Ranking metrics of the raw booster on the validation rows.
        calibration_scores: Brier score of each calibration method tried (cross-validated
            inside the calibration window), empty when the method was fixed.
    """

    booster: lgb.Booster
    calibrator: Calibrator
    features: tuple[str, ...]
    best_iteration: int
    valid_metrics: dict[str, float]
    calibration_scores: dict[str, float] = field(default_factory=dict)

    def raw(self, frame: pd.DataFrame) -> np.ndarray:
        """The booster's uncalibrated probabilities.

        Args:
            frame: Rows holding every feature column.

        Returns:
            One probability per row.
        """
        return np.asarray(self.booster.predict(_matrix(frame, self.features)))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities for feature rows.

        Args:
            frame: Rows holding every feature column.

        Returns:
            One probability per row.
        """
        return self.calibrator.predict(self.raw(frame))


@dataclass(frozen=True)
class TuningResult:
    """What the search found.

    Attributes:
        params: The chosen booster settings.
        trials: Per trial: its settings, and the mean and std of average precision over
            the rolling folds.
        folds: Validation cutoff of each fold.
        timed_out: The time budget ended the search before ``n_trials``.
    """

    params: LightGBMParams
    trials: list[dict[str, Any]]
    folds: list[str]
    timed_out: bool


def booster_params(
    p: LightGBMParams,
    seed: int,
    *,
    monotone: Sequence[int] = (),
    scale_pos_weight: float = 1.0,
) -> dict[str, Any]:
    """LightGBM's parameter mapping, pinned for repeatable results.

    Args:
        p: Booster settings.
        seed: Random seed.
        monotone: One constraint per feature (+1 increasing, 0 none); empty for none.
        scale_pos_weight: Weight of the positive class (1: no reweighting).

    Returns:
        Parameters for ``lightgbm.train``.
    """
    out: dict[str, Any] = {
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
        # Datasets are binned once and reused across trials with other leaf sizes.
        "feature_pre_filter": False,
    }
    if any(monotone):
        out["monotone_constraints"] = list(monotone)
        # "basic" gives the same guarantee as "intermediate"/"advanced" and trains fastest
        # (advanced took 1.7x as long here).
        out["monotone_constraints_method"] = "basic"
    if scale_pos_weight != 1.0:
        out["scale_pos_weight"] = scale_pos_weight
    return out


def monotone_vector(
    features: Sequence[str], increasing: Sequence[str], directions: Mapping[str, int]
) -> list[int]:
    """LightGBM monotone constraints for the features the domain is sure about.

    Args:
        features: Model features, in order.
        increasing: Features whose higher values never lower the risk.
        directions: Catalog direction of every feature (+1 means higher is riskier).

    Returns:
        +1 for each constrained feature, 0 elsewhere.

    Raises:
        ConfigError: A named feature is not a model feature, or its catalog direction
            is not +1.
    """
    for name in increasing:
        if name not in features:
            raise ConfigError(f"params: train.monotone_increasing names unknown feature {name!r}")
        if directions.get(name) != 1:
            raise ConfigError(
                f"params: train.monotone_increasing: the catalog does not say higher "
                f"{name!r} means more risk"
            )
    wanted = set(increasing)
    return [1 if f in wanted else 0 for f in features]


def split_rows(snapshots: pd.DataFrame, split: TimeSplit) -> dict[str, pd.DataFrame]:
    """Rows of each role of the split.

    Args:
        snapshots: The features stage's table.
        split: The time split.

    Returns:
        Frames for "train", "valid", "calibration" and "test" (copies; the input is
        untouched; "calibration" is empty when the split has none).
    """
    return {
        role: snapshots[snapshots["cutoff"].isin(list(getattr(split, role)))].reset_index(drop=True)
        for role in ROLES
    }


def sample_rows(frame: pd.DataFrame, max_rows: int, *, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows: every positive, and a seeded sample of the negatives.

    Args:
        frame: Rows with a ``target`` column.
        max_rows: Cap.
        seed: Random seed.

    Returns:
        The rows (the frame itself when it is small enough), in their original order.
    """
    if len(frame) <= max_rows:
        return frame
    positive = frame["target"].to_numpy() == 1
    n_neg = max(max_rows - int(positive.sum()), 0)
    rng = np.random.default_rng(seed)
    neg_idx = rng.choice(np.flatnonzero(~positive), size=n_neg, replace=False)
    keep = np.sort(np.concatenate([np.flatnonzero(positive), neg_idx]))
    return frame.iloc[keep].reset_index(drop=True)


def _matrix(frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    return frame.loc[:, list(features)].to_numpy(dtype="float64")


def _require_both_classes(frame: pd.DataFrame, role: str) -> None:
    positives = int(frame["target"].sum())
    if len(frame) == 0 or positives == 0 or positives == len(frame):
        raise DataContractError(
            f"the {role} window has {len(frame)} rows and {positives} labeled abusers; "
            "both classes are needed (more labels, or a longer history, are required)"
        )


def _balance(train: pd.DataFrame) -> float:
    y = train["target"].to_numpy()
    return float((y == 0).sum() / max(int(y.sum()), 1))


def fit_booster(
    train: pd.DataFrame | lgb.Dataset,
    valid: pd.DataFrame | lgb.Dataset,
    features: Sequence[str],
    params: LightGBMParams,
    *,
    seed: int,
    monotone: Sequence[int] = (),
    scale_pos_weight: float = 1.0,
) -> lgb.Booster:
    """Fit LightGBM, early-stopping on the validation rows; cut at the best iteration.

    Args:
        train: Training rows (features and ``target``), or a built Dataset.
        valid: Validation rows, or a built Dataset referencing ``train``.
        features: Feature columns to use.
        params: Booster settings.
        seed: Random seed.
        monotone: Monotone constraints, one per feature (empty: none).
        scale_pos_weight: Weight of the positive class.

    Returns:
        The booster, re-read from its text form (exactly what is saved).
    """
    dtrain, dvalid = (
        (train, valid)
        if isinstance(train, lgb.Dataset) and isinstance(valid, lgb.Dataset)
        else datasets(train, valid, features, params.max_bin)
    )
    booster = lgb.train(
        booster_params(params, seed, monotone=monotone, scale_pos_weight=scale_pos_weight),
        dtrain,
        num_boost_round=params.num_boost_round,
        valid_sets=[dvalid],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
    )
    best = booster.best_iteration or booster.current_iteration()
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


def datasets(
    train: pd.DataFrame, valid: pd.DataFrame, features: Sequence[str], max_bin: int
) -> tuple[lgb.Dataset, lgb.Dataset]:
    """Binned LightGBM datasets of a training and a validation frame.

    Args:
        train: Training rows.
        valid: Validation rows.
        features: Feature columns.
        max_bin: Histogram bins per feature.

    Returns:
        (train, valid) datasets, built (valid binned like train).
    """
    ds_params = {"max_bin": max_bin, "feature_pre_filter": False, "verbosity": -1}
    dtrain = lgb.Dataset(
        _matrix(train, features),
        label=train["target"].to_numpy(),
        feature_name=list(features),
        params=ds_params,
        free_raw_data=False,
    )
    dvalid = lgb.Dataset(
        _matrix(valid, features),
        label=valid["target"].to_numpy(),
        reference=dtrain,
        params=ds_params,
        free_raw_data=False,
    )
    return dtrain.construct(), dvalid.construct()


def _average_precision(y: np.ndarray, score: np.ndarray) -> float:
    return ranking_metrics(y, score, top_share=0.01, max_fpr=0.01)["average_precision"]


def rolling_scores(
    folds: Sequence[tuple[lgb.Dataset, lgb.Dataset]],
    features: Sequence[str],
    params: LightGBMParams,
    *,
    seed: int,
    monotone: Sequence[int] = (),
    reweight: bool = False,
) -> list[float]:
    """Average precision on each rolling fold's validation cutoff.

    Args:
        folds: (train, valid) datasets per fold, from :func:`fold_datasets`.
        features: Feature columns.
        params: Booster settings.
        seed: Random seed.
        monotone: Monotone constraints.
        reweight: Weight positives by negatives / positives of each fold's training rows.

    Returns:
        One average precision per fold.
    """
    out = []
    for dtrain, dvalid in folds:
        y_train = np.asarray(dtrain.get_label())
        weight = float((y_train == 0).sum() / max(y_train.sum(), 1)) if reweight else 1.0
        booster = fit_booster(
            dtrain, dvalid, features, params, seed=seed, monotone=monotone,
            scale_pos_weight=weight,
        )
        x_valid = dvalid.get_data()
        out.append(
            _average_precision(
                np.asarray(dvalid.get_label()), np.asarray(booster.predict(x_valid))
            )
        )
    return out


def fold_datasets(
    snapshots: pd.DataFrame,
    folds: Sequence[tuple[tuple[pd.Timestamp, ...], pd.Timestamp]],
    features: Sequence[str],
    *,
    max_bin: int,
    max_train_rows: int,
    seed: int,
) -> list[tuple[lgb.Dataset, lgb.Dataset]]:
    """Build each rolling fold's datasets once, for every trial of the search.

    Args:
        snapshots: All rows.
        folds: (training cutoffs, validation cutoff) per fold.
        features: Feature columns.
        max_bin: Histogram bins per feature.
        max_train_rows: Cap on each fold's training rows (positives kept).
        seed: Random seed of the sampling.

    Returns:
        (train, valid) per fold; folds whose windows lack a class are left out.
    """
    out = []
    for i, (train_cutoffs, valid_cutoff) in enumerate(folds):
        train = snapshots[snapshots["cutoff"].isin(list(train_cutoffs))]
        valid = snapshots[snapshots["cutoff"] == valid_cutoff]
        if train["target"].nunique() < 2 or valid["target"].nunique() < 2:
            continue
        train = sample_rows(train.reset_index(drop=True), max_train_rows, seed=seed + i)
        out.append(datasets(train, valid, features, max_bin))
    return out


def _suggest(trial: Any, tuning: TuningParams, base: LightGBMParams) -> LightGBMParams:
    values: dict[str, Any] = {}
    for name, r in sorted(tuning.search_space.items()):
        if r.integer:
            values[name] = trial.suggest_int(name, int(r.low), int(r.high), log=r.log)
        else:
            values[name] = trial.suggest_float(name, r.low, r.high, log=r.log)
    return dataclasses.replace(base, **values)


def tune(
    folds: Sequence[tuple[lgb.Dataset, lgb.Dataset]],
    fold_names: Sequence[str],
    features: Sequence[str],
    base: LightGBMParams,
    tuning: TuningParams,
    *,
    seed: int,
    monotone: Sequence[int] = (),
) -> TuningResult:
    """Seeded Optuna TPE search for the settings of best mean rolling average precision.

    The first trial is ``base`` itself (clipped into the search space), so the search
    never returns something worse, on the folds, than the settings it started from.

    Args:
        folds: (train, valid) datasets per rolling fold.
        fold_names: Validation cutoff of each fold, for the record.
        features: Feature columns.
        base: Starting settings; fields outside the search space are kept.
        tuning: Trials, time budget and search space.
        seed: Seed of the sampler and of LightGBM.
        monotone: Monotone constraints.

    Returns:
        The chosen settings and the trial history.
    """
    import optuna

    if tuning.n_trials == 0 or not tuning.search_space or not folds:
        return TuningResult(base, [], list(fold_names), False)
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    start = {}
    for name, r in tuning.search_space.items():
        v = min(max(float(getattr(base, name)), r.low), r.high)
        start[name] = round(v) if r.integer else v
    study.enqueue_trial(start)
    history: list[dict[str, Any]] = []

    def objective(trial: Any) -> float:
        params = _suggest(trial, tuning, base)
        scores = rolling_scores(folds, features, params, seed=seed, monotone=monotone)
        mean, std = float(np.mean(scores)), float(np.std(scores))
        history.append({"params": dict(trial.params), "ap_mean": mean, "ap_std": std})
        return mean

    began = time.monotonic()
    study.optimize(objective, n_trials=tuning.n_trials, timeout=tuning.timeout_seconds)
    timed_out = len(history) < tuning.n_trials
    if timed_out:
        log.warning(
            "tuning stopped by train.tuning.timeout_seconds after %d of %d trials (%.0f s); "
            "the result now depends on this machine's speed",
            len(history),
            tuning.n_trials,
            time.monotonic() - began,
        )
    best = max(range(len(history)), key=lambda i: (history[i]["ap_mean"], -i))
    chosen = dataclasses.replace(base, **history[best]["params"])
    return TuningResult(chosen, history, list(fold_names), timed_out)


def brier(y_true: np.ndarray, prob: np.ndarray) -> float:
    """Mean squared error of probabilities against 0/1 outcomes.

    Args:
        y_true: Outcomes.
        prob: Probabilities.

    Returns:
        The Brier score (lower is better).
    """
    y = np.asarray(y_true, dtype="float64")
    return float(np.mean((np.asarray(prob, dtype="float64") - y) ** 2))


def choose_calibration(
    raw: np.ndarray,
    y_true: np.ndarray,
    method: Literal["auto", "isotonic", "platt"],
    *,
    seed: int,
    n_splits: int = 5,
) -> tuple[Calibrator, dict[str, float]]:
    """Fit the calibration; with "auto", the method of lower cross-validated Brier score.

    Args:
        raw: The booster's probabilities on the calibration window.
        y_true: Labels there.
        method: "isotonic", "platt" or "auto".
        seed: Seed of the folds.
        n_splits: Folds of the cross-validation.

    Returns:
        The calibrator fitted on the whole window, and the Brier score of each method
        tried (empty when the method was given).
    """
    raw = np.asarray(raw, dtype="float64")
    y = np.asarray(y_true).astype(int)
    if method != "auto":
        return fit_calibrator(raw, y, method), {}
    scores: dict[str, float] = {}
    splits = min(n_splits, int(y.sum()), int((1 - y).sum()))
    if splits < 2:
        return fit_calibrator(raw, y, "platt"), {}
    folds = list(StratifiedKFold(splits, shuffle=True, random_state=seed).split(raw, y))
    for name in ("isotonic", "platt"):
        pred = np.empty_like(raw)
        for fit_idx, held in folds:
            cal = fit_calibrator(raw[fit_idx], y[fit_idx], name)
            pred[held] = cal.predict(raw[held])
        scores[name] = brier(y, pred)
    best = min(scores, key=lambda k: (scores[k], k))
    return fit_calibrator(raw, y, best), scores  # type: ignore[arg-type]


def train_model(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    features: Sequence[str],
    params: LightGBMParams,
    *,
    seed: int,
    calibration: Literal["auto", "isotonic", "platt"],
    calibration_rows: pd.DataFrame | None = None,
    monotone: Sequence[int] = (),
    scale_pos_weight: float = 1.0,
) -> TrainedModel:
    """Fit LightGBM with early stopping on the validation rows, then calibrate.

    Args:
        train: Training rows (features and ``target``).
        valid: Validation rows, later in time than ``train`` by at least the horizon.
        features: Feature columns to use.
        params: Booster settings.
        seed: Random seed.
        calibration: "isotonic", "platt" or "auto".
        calibration_rows: Rows to calibrate on, later than ``valid``; None calibrates on
            ``valid``.
        monotone: Monotone constraints, one per feature (empty: none).
        scale_pos_weight: Weight of the positive class.

    Returns:
        The trained model.

    Raises:
        DataContractError: A window lacks one of the classes.
    """
    _require_both_classes(train, "training")
    _require_both_classes(valid, "validation")
    cal_rows = valid if calibration_rows is None else calibration_rows
    _require_both_classes(cal_rows, "calibration")
    features = tuple(features)
    booster = fit_booster(
        train, valid, features, params, seed=seed, monotone=monotone,
        scale_pos_weight=scale_pos_weight,
    )
    raw_valid = np.asarray(booster.predict(_matrix(valid, features)))
    raw_cal = np.asarray(booster.predict(_matrix(cal_rows, features)))
    calibrator, cal_scores = choose_calibration(
        raw_cal, cal_rows["target"].to_numpy(), calibration, seed=seed
    )
    metrics = ranking_metrics(valid["target"].to_numpy(), raw_valid, top_share=0.01, max_fpr=0.01)
    return TrainedModel(
        booster, calibrator, features, int(booster.current_iteration()), metrics, cal_scores
    )


def reference_distribution(frame: pd.DataFrame, features: Sequence[str]) -> dict[str, Any]:
    """Quantiles of each feature among buyers, for "higher than N% of buyers".

    Args:
        frame: Rows of one cutoff (one per buyer).
        features: Features to describe.

    Returns:
        ``{"points": P, "rows": n, "quantiles": {feature: [P values]}}``; a feature
        that is always missing gets an empty list.
    """
    levels = np.linspace(0.0, 1.0, REFERENCE_POINTS)
    quantiles: dict[str, list[float]] = {}
    for f in features:
        values = frame[f].to_numpy(dtype="float64")
        values = values[np.isfinite(values)]
        quantiles[f] = (
            [float(v) for v in np.quantile(values, levels).round(6)] if values.size else []
        )
    return {"points": REFERENCE_POINTS, "rows": len(frame), "quantiles": quantiles}


def fit_policy(
    model: TrainedModel,
    rows: pd.DataFrame,
    policy: PolicyParams,
    *,
    period_days: int,
) -> PolicyChoice:
    """Choose the tier bounds on the calibration window's calibrated probabilities.

    Args:
        model: The trained model.
        rows: The calibration window's rows.
        policy: Costs and limits.
        period_days: Days between cutoffs (one scoring period).

    Returns:
        The chosen bounds and their cost on the window.
    """
    return choose_bounds(
        model.predict(rows),
        rows["target"].to_numpy(),
        policy,
        periods=int(rows["cutoff"].nunique()),
        period_days=period_days,
    )


def save_model(
    model: TrainedModel,
    out_dir: Path,
    training_info: dict[str, Any],
    *,
    policy: PolicyChoice | None = None,
    reference: dict[str, Any] | None = None,
) -> None:
    """Write the booster (LightGBM text), calibration, policy, reference and facts (JSON).

    Args:
        model: The trained model.
        out_dir: Destination folder.
        training_info: Split, data hash, commit, params and run id, for later stages.
        policy: The chosen tier bounds.
        reference: Feature distributions for the reasons' percentiles.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / MODEL_FILE) as tmp:
        model.booster.save_model(str(tmp))
    write_json(model.calibrator.to_dict(), out_dir / CALIBRATION_FILE)
    if policy is not None:
        write_json(policy.to_dict(), out_dir / POLICY_FILE)
    if reference is not None:
        write_json(reference, out_dir / REFERENCE_FILE)
    write_json(
        {
            **training_info,
            "features": list(model.features),
            "best_iteration": model.best_iteration,
            "calibration_brier": model.calibration_scores,
            "calibration_method": model.calibrator.method,
        },
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
        info.get("calibration_brier", {}),
    )


def load_policy(model_dir: Path) -> PolicyChoice:
    """Read the tier bounds the train stage chose.

    Args:
        model_dir: The train stage's folder.

    Returns:
        The policy choice.
    """
    return PolicyChoice.from_dict(read_json(model_dir / POLICY_FILE))


def split_from_info(info: dict[str, Any]) -> TimeSplit:
    """The split recorded in training.json.

    Args:
        info: Parsed training.json.

    Returns:
        The time split.
    """
    return TimeSplit(
        **{
            role: tuple(pd.Timestamp(c) for c in info["split"].get(role, ()))
            for role in ROLES
        }
    )


def fit(
    snapshots: pd.DataFrame,
    features: Sequence[str],
    directions: Mapping[str, int],
    train_params: TrainParams,
    *,
    seed: int,
    horizon_days: int,
) -> tuple[TrainedModel, TimeSplit, TuningResult, dict[str, Any]]:
    """The whole training core: split, tune, check reweighting, fit, calibrate.

    Args:
        snapshots: The features stage's table.
        features: Feature columns.
        directions: Catalog direction of each feature (for the monotone check).
        train_params: The ``train`` block.
        seed: Random seed.
        horizon_days: H.

    Returns:
        The model, the split, the search's result and the reweighting check
        (``{"mode", "none_ap_mean", "balanced_ap_mean", ...}``).
    """
    tp = train_params
    cutoffs = sorted(snapshots["cutoff"].unique())
    split = split_cutoffs(
        cutoffs,
        horizon_days=horizon_days,
        n_valid=tp.n_valid_cutoffs,
        n_test=tp.n_test_cutoffs,
        n_calibration=tp.n_calibration_cutoffs,
    )
    rows = split_rows(snapshots, split)
    monotone = monotone_vector(features, tp.monotone_increasing, directions)
    folds_at = rolling_folds(
        cutoffs, split.calibration[0], horizon_days=horizon_days, n_folds=tp.tuning.n_folds
    )
    need_folds = tp.tuning.n_trials > 0 or tp.reweight == "check"
    folds = (
        fold_datasets(
            snapshots, folds_at, features, max_bin=tp.lightgbm.max_bin,
            max_train_rows=tp.tuning.max_train_rows, seed=seed,
        )
        if need_folds
        else []
    )
    names = [pd.Timestamp(v).isoformat() for _, v in folds_at]
    tuned = tune(folds, names, features, tp.lightgbm, tp.tuning, seed=seed, monotone=monotone)
    check: dict[str, Any] = {"mode": tp.reweight}
    balanced = tp.reweight == "balanced"
    if tp.reweight == "check" and folds:
        none = rolling_scores(folds, features, tuned.params, seed=seed, monotone=monotone)
        weighted = rolling_scores(
            folds, features, tuned.params, seed=seed, monotone=monotone, reweight=True
        )
        balanced = float(np.mean(weighted)) > float(np.mean(none))
        check.update(
            none_ap_mean=float(np.mean(none)),
            none_ap_std=float(np.std(none)),
            balanced_ap_mean=float(np.mean(weighted)),
            balanced_ap_std=float(np.std(weighted)),
        )
    check["reweighted"] = balanced
    model = train_model(
        rows["train"],
        rows["valid"],
        features,
        tuned.params,
        seed=seed,
        calibration=tp.calibration,
        calibration_rows=rows["calibration"],
        monotone=monotone,
        scale_pos_weight=_balance(rows["train"]) if balanced else 1.0,
    )
    return model, split, tuned, check


def _best_trial(tuned: TuningResult) -> dict[str, float]:
    if not tuned.trials:
        return {}
    best = max(tuned.trials, key=lambda t: t["ap_mean"])
    return {"rolling_ap_mean": best["ap_mean"], "rolling_ap_std": best["ap_std"]}


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
    import optuna

    from refundguard import tracking
    from refundguard.features import build_catalog

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params = load_params(params_path)
    snapshots = pd.read_parquet(features_dir / "snapshots.parquet")
    manifest = read_json(features_dir / "manifest.json")
    features = manifest["features"]
    directions = {f.name: int(f.direction) for f in build_catalog(params.features)}
    began = time.monotonic()
    model, split, tuned, check = fit(
        snapshots,
        features,
        directions,
        params.train,
        seed=params.base.seed,
        horizon_days=params.base.horizon_days,
    )
    rows = split_rows(snapshots, split)
    policy = fit_policy(
        model, rows["calibration"], params.policy, period_days=params.base.cutoff_step_days
    )
    latest_train = rows["train"][rows["train"]["cutoff"] == max(split.train)]
    reference = reference_distribution(latest_train, model.features)
    seconds = time.monotonic() - began

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
                **{f"lgb.{k}": v for k, v in asdict(tuned.params).items()},
                "seed": params.base.seed,
                "horizon_days": params.base.horizon_days,
                "calibration": model.calibrator.method,
                "reweighted": check["reweighted"],
                "monotone_increasing": ",".join(params.train.monotone_increasing),
                "n_features": len(features),
                "train_rows": len(rows["train"]),
                "valid_rows": len(rows["valid"]),
                "calibration_rows": len(rows["calibration"]),
                "best_iteration": model.best_iteration,
                "tuning_trials": len(tuned.trials),
            }
        )
        mlflow.log_metrics(
            {
                **{f"valid_{k}": v for k, v in model.valid_metrics.items() if math.isfinite(v)},
                **{f"tuning_{k}": v for k, v in _best_trial(tuned).items()},
                **{f"calibration_brier_{k}": v for k, v in model.calibration_scores.items()},
                "train_seconds": seconds,
            }
        )
        for i, trial in enumerate(tuned.trials):
            mlflow.log_metric("tuning_trial_ap_mean", trial["ap_mean"], step=i)
        mlflow.log_dict({"features": list(features)}, "features.json")
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
            "horizon_days": params.base.horizon_days,
            "period_days": params.base.cutoff_step_days,
            "valid_metrics": model.valid_metrics,
            "tuning": {
                "folds": tuned.folds,
                "trials": tuned.trials,
                "timed_out": tuned.timed_out,
                **_best_trial(tuned),
            },
            "reweight": check,
            "monotone_increasing": list(params.train.monotone_increasing),
            "params": {
                "lightgbm": asdict(tuned.params),
                "seed": params.base.seed,
                "calibration": params.train.calibration,
            },
        }
    save_model(model, out_dir, info, policy=policy, reference=reference)
    log.info(
        "trained %d rounds (%d trials, %.0f s); validation AP %.3f; tiers from %s",
        model.best_iteration,
        len(tuned.trials),
        seconds,
        model.valid_metrics["average_precision"],
        ", ".join(f"{b:.3f}" for b in policy.bounds),
    )
    return model
