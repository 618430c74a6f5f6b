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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from refundguard import progress
from refundguard.config import LightGBMParams, PolicyParams, TrainParams, TuningParams
from refundguard.errors import ConfigError, DataContractError
from refundguard.features.timesplit import ROLES, TimeSplit, rolling_folds, split_cutoffs
from refundguard.model.bundle import TrainedModel, TrainingInfo

# Still importable from here for older callers; its home is model.bundle.
from refundguard.model.bundle import split_from_info as split_from_info
from refundguard.model.calibration import Calibrator, fit_calibrator
from refundguard.model.metrics import ranking_metrics
from refundguard.model.policy import PolicyChoice, choose_bounds

log = logging.getLogger(__name__)


# Points of each feature's reference distribution (percentiles for the reasons).
REFERENCE_POINTS = 201


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
        # Early stopping follows the first metric, the ranking's AUC. Average precision
        # on one validation cutoff (94 positives on the default world) is too noisy to
        # stop on: it peaked at 3-5 rounds and the test AP was 0.153. Log loss stopped at
        # 71 rounds there (test AP 0.197), but on the young world (49 validation
        # positives, the known abusers' extra positives in training) at 32, where AUC
        # kept rising to 342 rounds; so did the AUC against the truth at the export date
        # (0.758 at 52 shipped rounds, 0.792 at 200, 0.801 at 400, AP flat at 0.59).
        "metric": ["auc", "binary_logloss", "average_precision"],
        "first_metric_only": True,
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


# A row's training weight, when negatives were sampled (sample_negatives); absent: 1.
WEIGHT_COLUMN = "_weight"


def sample_negatives(frame: pd.DataFrame, share: float, *, seed: int) -> pd.DataFrame:
    """Every positive and a seeded ``share`` of the negatives, the negatives weighted back.

    Negative down-sampling with weights is the standard way to fit a booster on more
    rows than fit at once (e.g. He et al., "Practical lessons from predicting clicks on
    ads at Facebook", 2014): with every kept negative weighted 1 / share, the weighted
    class balance and the booster's raw scores stay those of the full data (in
    expectation); what it costs is variance on the negative side, which grows as the
    share falls. On a 4,000-row table with a 22% base rate, keeping 30% of the negatives,
    a booster's mean prediction was 0.267 with the weights, 0.426 without, 0.219 on all
    rows (tests/unit/model/test_train.py). Calibration is fitted elsewhere, on unsampled
    rows, which removes what is left of the shift.

    Args:
        frame: Rows with a ``target`` column (not changed).
        share: Share of the negatives kept, in (0, 1]; 1 returns ``frame`` itself.
        seed: Random seed.

    Returns:
        The kept rows in their original order, with a :data:`WEIGHT_COLUMN`.
    """
    if share >= 1.0:
        return frame
    negative = np.flatnonzero(frame["target"].to_numpy() == 0)
    rng = np.random.default_rng(seed)
    kept = rng.choice(negative, size=round(negative.size * share), replace=False)
    keep = np.sort(np.concatenate([np.flatnonzero(frame["target"].to_numpy() == 1), kept]))
    out = frame.iloc[keep].reset_index(drop=True)
    weight = np.where(out["target"].to_numpy() == 1, 1.0, 1.0 / share)
    return out.assign(**{WEIGHT_COLUMN: weight})


def with_known(frame: pd.DataFrame, known: pd.DataFrame | None) -> pd.DataFrame:
    """Training rows plus the known abusers' rows of the same cutoffs, as positives.

    A buyer labeled an abuser stays in the known table at every cutoff while they are
    active, so each of their rows is weighted 1 / (their rows among these cutoffs): every
    known abuser counts as one positive, whether they were labeled a month or a year ago.
    Without the weights, long-active known abusers outnumbered the fresh positives up to
    5 to 1 and AP fell on the slow-labels world (0.798 -> 0.747; 0.809 weighted).

    Args:
        frame: Training rows with ``target`` (and perhaps :data:`WEIGHT_COLUMN`); not
            changed.
        known: The features stage's known-abuser rows (``target`` 1), or None.

    Returns:
        ``frame`` itself when there is nothing to add; otherwise its rows, then the known
        rows of its cutoffs, with :data:`WEIGHT_COLUMN` (1 where ``frame`` had none).
    """
    if known is None or known.empty or frame.empty:
        return frame
    extra = known[known["cutoff"].isin(frame["cutoff"].unique())]
    if extra.empty:
        return frame
    per_buyer = extra.groupby("buyer_id", sort=False)["cutoff"].transform("size")
    extra = extra.assign(
        target=np.ones(len(extra), dtype=frame["target"].dtype),
        **{WEIGHT_COLUMN: 1.0 / per_buyer.to_numpy(dtype="float64")},
    )
    base = frame if WEIGHT_COLUMN in frame.columns else frame.assign(**{WEIGHT_COLUMN: 1.0})
    return pd.concat([base, extra[list(base.columns)]], ignore_index=True)


def _weights(frame: pd.DataFrame) -> np.ndarray | None:
    return frame[WEIGHT_COLUMN].to_numpy() if WEIGHT_COLUMN in frame.columns else None


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
        callbacks=[
            lgb.early_stopping(params.early_stopping_rounds, first_metric_only=True,
                               verbose=False)
        ],
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
        weight=_weights(train),
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
    known: pd.DataFrame | None = None,
) -> list[tuple[lgb.Dataset, lgb.Dataset]]:
    """Build each rolling fold's datasets once, for every trial of the search.

    Args:
        snapshots: All rows.
        folds: (training cutoffs, validation cutoff) per fold.
        features: Feature columns.
        max_bin: Histogram bins per feature.
        max_train_rows: Cap on each fold's training rows (positives kept).
        seed: Random seed of the sampling.
        known: Known abusers' rows added to each fold's training rows (:func:`with_known`).

    Returns:
        (train, valid) per fold; folds whose windows lack a class are left out.
    """
    out = []
    for i, (train_cutoffs, valid_cutoff) in enumerate(folds):
        train = snapshots[snapshots["cutoff"].isin(list(train_cutoffs))]
        valid = snapshots[snapshots["cutoff"] == valid_cutoff]
        if train["target"].nunique() < 2 or valid["target"].nunique() < 2:
            continue
        train = sample_rows(with_known(train.reset_index(drop=True), known), max_train_rows,
                            seed=seed + i)
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
    on_trial: Callable[[], None] | None = None,
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
        on_trial: Called after each trial (progress).

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
        history.append({"params": dict(trial.params), "ap_mean": mean, "ap_std": std,
                        "fold_ap": [float(v) for v in scores]})
        if on_trial is not None:
            on_trial()
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


def fit(
    snapshots: pd.DataFrame,
    features: Sequence[str],
    directions: Mapping[str, int],
    train_params: TrainParams,
    *,
    seed: int,
    horizon_days: int,
    known: pd.DataFrame | None = None,
) -> tuple[TrainedModel, TimeSplit, TuningResult, dict[str, Any]]:
    """The whole training core: split, tune, check reweighting, fit, calibrate.

    Args:
        snapshots: The features stage's table.
        features: Feature columns.
        directions: Catalog direction of each feature (for the monotone check).
        train_params: The ``train`` block.
        seed: Random seed.
        horizon_days: H.
        known: Known abusers' rows, extra positives of every fit (:func:`with_known`).

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
            max_train_rows=tp.tuning.max_train_rows, seed=seed, known=known,
        )
        if need_folds
        else []
    )
    names = [pd.Timestamp(v).isoformat() for _, v in folds_at]
    with progress.bar("train: tuning trials", total=tp.tuning.n_trials if folds else 0) as step:
        tuned = tune(folds, names, features, tp.lightgbm, tp.tuning, seed=seed,
                     monotone=monotone, on_trial=lambda: step(1))
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
        with_known(sample_negatives(rows["train"], tp.negative_share, seed=seed), known),
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


def scaled_rounds(best_iteration: int, fitted_rows: int, rows: int) -> int:
    """Boosting rounds for a refit on more (or fewer) rows than early stopping saw.

    Early stopping found ``best_iteration`` on ``fitted_rows``; a refit on more rows
    supports more rounds before it overfits. The rounds grow with the rows, as is common
    practice when a model is refit on all its data, at most doubled so that a refit
    never wanders far from what was validated.

    Args:
        best_iteration: Rounds chosen by early stopping.
        fitted_rows: Rows that model trained on.
        rows: Rows of the refit.

    Returns:
        At least one round.
    """
    factor = min(max(rows / max(fitted_rows, 1), 0.5), 2.0)
    return max(1, math.ceil(best_iteration * factor))


def fit_rounds(
    frame: pd.DataFrame,
    features: Sequence[str],
    params: LightGBMParams,
    rounds: int,
    *,
    seed: int,
    monotone: Sequence[int] = (),
    scale_pos_weight: float = 1.0,
) -> lgb.Booster:
    """Fit LightGBM for a fixed number of rounds (no validation rows, no early stopping).

    Args:
        frame: Training rows (features and ``target``).
        features: Feature columns.
        params: Booster settings.
        rounds: Boosting rounds.
        seed: Random seed.
        monotone: Monotone constraints.
        scale_pos_weight: Weight of the positive class.

    Returns:
        The booster, re-read from its text form (exactly what is saved).
    """
    data = lgb.Dataset(
        _matrix(frame, features),
        label=frame["target"].to_numpy(),
        weight=_weights(frame),
        feature_name=list(features),
        params={"max_bin": params.max_bin, "feature_pre_filter": False, "verbosity": -1},
    )
    booster = lgb.train(
        booster_params(params, seed, monotone=monotone, scale_pos_weight=scale_pos_weight),
        data,
        num_boost_round=rounds,
    )
    return lgb.Booster(model_str=booster.model_to_string())


def crossfit_blocks(
    cutoffs: Sequence[pd.Timestamp], n_blocks: int, horizon_days: int
) -> list[tuple[tuple[pd.Timestamp, ...], tuple[pd.Timestamp, ...]]]:
    """Blocks of consecutive cutoffs, each with the cutoffs a model may fit to score it.

    A block is scored by a model fitted on every cutoff at least H before its first or
    after its last cutoff: no fitted row's label window overlaps a scored row's.

    Args:
        cutoffs: All cutoffs.
        n_blocks: Blocks wanted (fewer when there are fewer cutoffs).
        horizon_days: H.

    Returns:
        (fitting cutoffs, scored cutoffs) per block, oldest block first; blocks with no
        fitting cutoff are left out.
    """
    ordered = sorted(pd.Timestamp(c) for c in cutoffs)
    gap = pd.Timedelta(days=horizon_days)
    out = []
    for part in np.array_split(np.arange(len(ordered)), min(n_blocks, len(ordered))):
        if not len(part):
            continue
        block = tuple(ordered[i] for i in part)
        fit = tuple(c for c in ordered if c + gap <= block[0] or c >= block[-1] + gap)
        if fit:
            out.append((fit, block))
    return out


@dataclass(frozen=True)
class ShippedModel:
    """The booster that ships: refit on every cutoff, calibrated out of time.

    Attributes:
        model: Booster and calibrator (``valid_metrics`` holds the out-of-time figures).
        rounds: Boosting rounds of the refit.
        rows: Rows it was fitted on.
        cutoffs: Cutoffs it was fitted on.
        oot_rows: Rows with an out-of-time prediction (calibration and policy).
        blocks: (first, last) scored cutoff of each cross-fitting block.
    """

    model: TrainedModel
    rounds: int
    rows: int
    cutoffs: tuple[str, ...]
    oot_rows: int
    blocks: tuple[tuple[str, str], ...]


def refit_for_shipping(
    snapshots: pd.DataFrame,
    holdout: TrainedModel,
    params: LightGBMParams,
    *,
    fitted_rows: int,
    horizon_days: int,
    n_blocks: int,
    calibration: Literal["auto", "isotonic", "platt"],
    seed: int,
    monotone: Sequence[int] = (),
    scale_pos_weight: float = 1.0,
    negative_share: float = 1.0,
    known: pd.DataFrame | None = None,
    on_step: Callable[[], None] | None = None,
) -> tuple[ShippedModel, pd.DataFrame]:
    """Refit the booster on every cutoff and calibrate it on out-of-time predictions.

    The held-out model (train cutoffs only) is what the evaluation judges; it never saw
    the cutoffs closest to the date it will score. The shipped booster is refit with the
    same settings on every cutoff, the latest included, for the held-out round count
    scaled to the rows. Its calibration cannot come from its own (in-sample) scores, so
    each block of cutoffs is scored by a booster fitted on the cutoffs at least H away
    from it (cross-fitting over time), and the calibrator is fitted on those scores.

    Args:
        snapshots: Every row (all cutoffs, each with a complete label window).
        holdout: The held-out model (its features and best iteration).
        params: Booster settings.
        fitted_rows: Rows the held-out booster trained on.
        horizon_days: H.
        n_blocks: Cross-fitting blocks.
        calibration: "isotonic", "platt" or "auto".
        seed: Random seed.
        monotone: Monotone constraints.
        scale_pos_weight: Weight of the positive class.
        negative_share: Share of the negatives each booster fits on
            (:func:`sample_negatives`); the out-of-time rows that calibrate are all kept.
        known: Known abusers' rows, extra positives of every fit (:func:`with_known`);
            never among the out-of-time rows.
        on_step: Called after each cross-fitting block and after the refit (progress).

    Returns:
        The shipped model, and the out-of-time rows (``cutoff``, ``target``, ``raw``,
        ``probability``) for choosing its tiers.

    Raises:
        DataContractError: No block could be scored, or the scored rows lack a class.
    """
    features = holdout.features
    _require_both_classes(snapshots, "refit")
    scored: list[pd.DataFrame] = []
    blocks = crossfit_blocks(sorted(snapshots["cutoff"].unique()), n_blocks, horizon_days)
    for i, (fit_cutoffs, block) in enumerate(blocks):
        fit_rows = with_known(
            sample_negatives(
                snapshots[snapshots["cutoff"].isin(list(fit_cutoffs))], negative_share,
                seed=seed + i,
            ),
            known,
        )
        rows = snapshots[snapshots["cutoff"].isin(list(block))]
        if fit_rows["target"].nunique() < 2:
            continue
        booster = fit_rounds(
            fit_rows, features, params,
            scaled_rounds(holdout.best_iteration, fitted_rows, len(fit_rows)),
            seed=seed, monotone=monotone, scale_pos_weight=scale_pos_weight,
        )
        scored.append(
            pd.DataFrame(
                {
                    "cutoff": rows["cutoff"].to_numpy(),
                    "target": rows["target"].to_numpy(),
                    "raw": np.asarray(booster.predict(_matrix(rows, features))),
                }
            )
        )
        if on_step is not None:
            on_step()
    if not scored:
        raise DataContractError(
            "refit: no block of cutoffs could be scored out of time; use a longer history "
            "or set train.refit to false"
        )
    oot = pd.concat(scored, ignore_index=True)
    _require_both_classes(oot, "out-of-time calibration")
    y = oot["target"].to_numpy()
    calibrator, cal_scores = choose_calibration(oot["raw"].to_numpy(), y, calibration, seed=seed)
    refit_rows = with_known(sample_negatives(snapshots, negative_share, seed=seed), known)
    rounds = scaled_rounds(holdout.best_iteration, fitted_rows, len(refit_rows))
    booster = fit_rounds(
        refit_rows, features, params, rounds,
        seed=seed, monotone=monotone, scale_pos_weight=scale_pos_weight,
    )
    if on_step is not None:
        on_step()
    oot = oot.assign(probability=calibrator.predict(oot["raw"].to_numpy()))
    metrics = ranking_metrics(y, oot["raw"].to_numpy(), top_share=0.01, max_fpr=0.01)
    model = TrainedModel(booster, calibrator, features, rounds, metrics, cal_scores)
    shipped = ShippedModel(
        model=model,
        rounds=rounds,
        rows=len(snapshots),
        cutoffs=tuple(pd.Timestamp(c).isoformat() for c in sorted(snapshots["cutoff"].unique())),
        oot_rows=len(oot),
        blocks=tuple(
            (pd.Timestamp(b[0]).isoformat(), pd.Timestamp(b[-1]).isoformat()) for _, b in blocks
        ),
    )
    return shipped, oot


@dataclass(frozen=True)
class TrainingResult:
    """What :func:`train` produced: the held-out and the shipped model, with their tiers.

    Attributes:
        holdout: The model fitted on the train cutoffs (what the evaluation judges).
        holdout_policy: Its tier bounds, chosen on the calibration window.
        holdout_reference: Feature quantiles at the latest training cutoff.
        shipped: The refit on every cutoff (None when ``train.refit`` is off).
        policy: The shipped model's tier bounds.
        reference: The shipped model's feature quantiles (latest cutoff).
        split: The time split.
        tuned: The search's result.
        reweight: The reweighting check (``{"mode", "reweighted", ...}``).
        monotone_increasing: The constrained features that are model features.
        rows: Rows of each role of the split.
        horizon_days: H.
        period_days: Days between cutoffs.
        seed: Random seed.
        calibration: The configured calibration method.
        seconds: Wall time of the fitting.
    """

    holdout: TrainedModel
    holdout_policy: PolicyChoice
    holdout_reference: dict[str, Any]
    shipped: ShippedModel | None
    policy: PolicyChoice
    reference: dict[str, Any]
    split: TimeSplit
    tuned: TuningResult
    reweight: dict[str, Any]
    monotone_increasing: tuple[str, ...]
    rows: dict[str, int]
    horizon_days: int
    period_days: int
    seed: int
    calibration: str
    seconds: float

    @property
    def model(self) -> TrainedModel:
        """The model that ships: the refit when there is one, else the held-out model."""
        return self.shipped.model if self.shipped is not None else self.holdout

    @property
    def ships(self) -> str:
        """"refit" or "holdout"."""
        return "refit" if self.shipped is not None else "holdout"

    @property
    def best_trial(self) -> dict[str, float]:
        """Rolling AP mean and std of the best tuning trial (empty without trials)."""
        if not self.tuned.trials:
            return {}
        best = max(self.tuned.trials, key=lambda t: t["ap_mean"])
        return {"rolling_ap_mean": best["ap_mean"], "rolling_ap_std": best["ap_std"]}

    def info(
        self,
        *,
        run_id: str,
        git_commit: str | None,
        data_hash: str | None,
        catalog_version: str,
        horizon: Mapping[str, Any] | None = None,
        dropped: Sequence[str] = (),
    ) -> TrainingInfo:
        """training.json's run facts (each folder adds its own model's, on saving).

        Args:
            run_id: The MLflow run.
            git_commit: The code's commit.
            data_hash: Hash of the validated tables.
            catalog_version: Fingerprint of the feature catalog.
            horizon: How the features stage found H; None: taken from params.
            dropped: Features the time-consistency check left out.

        Returns:
            The facts.
        """
        holdout, shipped = self.holdout, self.shipped
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
        return TrainingInfo(
            run_id=run_id,
            git_commit=git_commit,
            data_hash=data_hash,
            catalog_version=catalog_version,
            split={role: [c.isoformat() for c in getattr(self.split, role)] for role in ROLES},
            horizon_days=self.horizon_days,
            horizon=dict(horizon) if horizon is not None
            else {"days": self.horizon_days, "source": "params"},
            period_days=self.period_days,
            valid_metrics=holdout.valid_metrics,
            ships=self.ships,
            holdout={
                "rounds": holdout.best_iteration,
                "rows": self.rows["train"],
                "known_abuser_rows": self.rows.get("known_abusers", 0),
                "cutoffs": [c.isoformat() for c in self.split.train],
                "calibration_method": holdout.calibrator.method,
                "calibration_brier": holdout.calibration_scores,
                "valid_metrics": holdout.valid_metrics,
            },
            shipped=shipped_info,
            dropped_features=tuple(dropped),
            tuning={
                "folds": self.tuned.folds,
                "trials": self.tuned.trials,
                "timed_out": self.tuned.timed_out,
                **self.best_trial,
            },
            reweight=self.reweight,
            monotone_increasing=self.monotone_increasing,
            params={
                "lightgbm": dataclasses.asdict(self.tuned.params),
                "seed": self.seed,
                "calibration": self.calibration,
            },
        )


def train(
    snapshots: pd.DataFrame,
    features: Sequence[str],
    directions: Mapping[str, int],
    train_params: TrainParams,
    policy: PolicyParams,
    *,
    seed: int,
    horizon_days: int,
    period_days: int,
    known: pd.DataFrame | None = None,
) -> TrainingResult:
    """Train the held-out model, refit the shipped one, and choose both tier policies.

    Args:
        snapshots: The features stage's table (read only).
        features: Model features, in order.
        directions: Catalog direction of each feature (for the monotone check).
        train_params: The ``train`` block; monotone features that are not model features
            (left out by the consistency check) are ignored.
        policy: Costs and limits of the tiers.
        seed: Random seed.
        horizon_days: H.
        period_days: Days between cutoffs (one scoring period).
        known: The features stage's known-abuser rows (read only), extra positives of
            every booster fit (:func:`with_known`); None fits on ``snapshots`` alone.

    Returns:
        Both models, their tiers and references, and the facts of the fit.
    """
    monotone_names = tuple(f for f in train_params.monotone_increasing if f in features)
    tp = dataclasses.replace(train_params, monotone_increasing=monotone_names)
    began = time.monotonic()
    holdout, split, tuned, check = fit(
        snapshots, features, directions, tp, seed=seed, horizon_days=horizon_days, known=known
    )
    rows = split_rows(snapshots, split)
    holdout_policy = fit_policy(holdout, rows["calibration"], policy, period_days=period_days)
    latest_train = rows["train"][rows["train"]["cutoff"] == max(split.train)]
    holdout_reference = reference_distribution(latest_train, holdout.features)
    shipped: ShippedModel | None = None
    ship_policy, reference = holdout_policy, holdout_reference
    if tp.refit:
        shipped, ship_policy, reference = _ship(
            snapshots, holdout, tuned.params, tp, policy, split,
            fitted_rows=_fitted_rows(rows["train"], tp.negative_share)
            + _known_rows(known, split.train),
            seed=seed, horizon_days=horizon_days, known=known,
            period_days=period_days,
            monotone=monotone_vector(features, monotone_names, directions),
            reweighted=bool(check["reweighted"]),
        )
    return TrainingResult(
        holdout=holdout,
        holdout_policy=holdout_policy,
        holdout_reference=holdout_reference,
        shipped=shipped,
        policy=ship_policy,
        reference=reference,
        split=split,
        tuned=tuned,
        reweight=check,
        monotone_increasing=monotone_names,
        rows={
            **{role: len(frame) for role, frame in rows.items()},
            "known_abusers": _known_rows(known, split.train),
        },
        horizon_days=horizon_days,
        period_days=period_days,
        seed=seed,
        calibration=tp.calibration,
        seconds=time.monotonic() - began,
    )


def _fitted_rows(train_rows: pd.DataFrame, share: float) -> int:
    """Rows the held-out booster fitted on: the positives and the kept negatives."""
    positives = int(train_rows["target"].sum())
    return positives + round((len(train_rows) - positives) * share)


def _known_rows(known: pd.DataFrame | None, cutoffs: Sequence[pd.Timestamp]) -> int:
    """Known abusers' rows among these cutoffs (what :func:`with_known` adds)."""
    return 0 if known is None else int(known["cutoff"].isin(list(cutoffs)).sum())


def _ship(
    snapshots: pd.DataFrame,
    holdout: TrainedModel,
    params: LightGBMParams,
    tp: TrainParams,
    policy: PolicyParams,
    split: TimeSplit,
    *,
    fitted_rows: int,
    seed: int,
    horizon_days: int,
    period_days: int,
    monotone: Sequence[int],
    reweighted: bool,
    known: pd.DataFrame | None = None,
) -> tuple[ShippedModel, PolicyChoice, dict[str, Any]]:
    """The refit that ships, its tiers and its reference distribution."""
    with progress.bar("train: refit", total=tp.crossfit_blocks + 1) as step:
        shipped, oot = refit_for_shipping(
            snapshots, holdout, params,
            fitted_rows=fitted_rows,
            horizon_days=horizon_days,
            n_blocks=tp.crossfit_blocks,
            calibration=tp.calibration,
            seed=seed,
            monotone=monotone,
            scale_pos_weight=_balance(snapshots) if reweighted else 1.0,
            negative_share=tp.negative_share,
            known=known,
            on_step=lambda: step(1),
        )
    # Tiers for the shipped model from its out-of-time probabilities on the latest
    # cutoffs (the calibration and test windows): the period it will score next.
    recent = oot[oot["cutoff"].isin(list(split.calibration) + list(split.test))]
    if recent["target"].nunique() < 2:
        recent = oot
    chosen = choose_bounds(
        recent["probability"].to_numpy(), recent["target"].to_numpy(), policy,
        periods=int(recent["cutoff"].nunique()), period_days=period_days,
    )
    latest = snapshots[snapshots["cutoff"] == snapshots["cutoff"].max()]
    return shipped, chosen, reference_distribution(latest, shipped.model.features)
