"""Evaluate stage: the model against a rule, a logistic regression and a plain LightGBM.

The core functions return flat ``dict[str, float]`` ("model.average_precision",
"cost.model.cost_per_buyer", "segment.size_bracketer.model_flag_rate", ...); the shell
writes every figure to evaluation.json, a headline of at most 15 of them to metrics.json
(the DVC metrics), the curves that dvc.yaml declares, the gate file of the
champion/challenger decision and the self-contained HTML report, and is the only place
that logs.

The judged model is the train stage's held-out one (fitted without the calibration and
test cutoffs), never the shipped refit.

Five options are compared on the same rows and the same costs:
- ``no_model``: everyone in "standard" (the normal process, nobody trusted or held);
- ``baseline``: the rule (a refund-rate feature at or above a threshold) sends a buyer to
  "review", everyone else is "standard";
- ``logistic``: a logistic regression on the same features, calibrated and tiered on the
  calibration window exactly as the model is;
- ``plain``: LightGBM with its default settings on a dozen basic refund features
  (:data:`PLAIN_FEATURES`), calibrated and tiered as the logistic regression is: what a
  team gets without refundguard's features, tuning and constraints;
- ``model``: the LightGBM model with the tiers the train stage chose.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve, roc_curve
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from refundguard.config import LightGBMParams, Params, PolicyParams
from refundguard.contract.vocabulary import (
    DEFAULT_TIER,
    FIRST_FLAGGED_TIER,
    FLAGGED_TIERS,
    LOOKALIKE_SEGMENTS,
)
from refundguard.data.io import atomic_path
from refundguard.errors import ConfigError
from refundguard.features.catalog import FEATURE_GROUPS, build_catalog
from refundguard.model.bundle import TrainedModel, TrainingInfo
from refundguard.model.calibration import Calibrator
from refundguard.model.metrics import precision_at_k, ranking_metrics
from refundguard.model.policy import TIERS, PolicyChoice, assign_tiers, choose_bounds, describe
from refundguard.model.train import (
    WEIGHT_COLUMN,
    choose_calibration,
    sample_rows,
    split_rows,
    train_model,
    with_known,
)
from refundguard.paths import (
    REPORTS_DIR,
)

log = logging.getLogger(__name__)


OPTIONS = ("no_model", "baseline", "logistic", "plain", "model")


SCORERS = ("model", "plain", "baseline", "logistic")


# Comparators fitted here, calibrated and tiered on the calibration window.
FITTED = ("logistic", "plain")


HONEST_LOOKALIKES = LOOKALIKE_SEGMENTS


REPORT_FILE = "report.html"


GATE_FILE = "gate.json"


# Every figure of the evaluation; metrics.json (DVC's metrics) holds only the headline.
EVALUATION_FILE = REPORTS_DIR / "evaluation.json"


MAX_HEADLINE = 15


RELIABILITY_BINS = 10


# The plain baseline's inputs: the refund figures any platform already tracks (refund
# rate and count, refund-only and fast-refund shares, time to request, evidence-claim
# reasons such as not_received/damaged, ratings, order counts). Nothing refundguard adds
# (links between accounts, sellers, review text, late-night orders) is here, so the
# comparison shows what those additions and the tuning are worth.
PLAIN_FEATURES = (
    "refund_rate_count_90d",
    "refund_rate_count_365d",
    "refunds_90d",
    "refunds_365d",
    "refund_only_share_365d",
    "fast_refund_share_365d",
    "median_hours_to_refund_365d",
    "reason_evidence_share_365d",
    "mean_rating_365d",
    "low_rating_share_365d",
    "orders_90d",
    "orders_365d",
)


# LightGBM's own defaults, written out so that a LightGBM upgrade cannot move them.
PLAIN_LIGHTGBM = {
    "objective": "binary",
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "verbosity": -1,
}


PLAIN_ROUNDS = 100


def baseline_score(frame: pd.DataFrame, feature: str) -> np.ndarray:
    """The rule baseline's ranking score: one refund-rate feature, missing counted as 0.

    Args:
        frame: Feature rows.
        feature: The feature the rule ranks by.

    Returns:
        One score per row.

    Raises:
        KeyError: The feature is not in the frame.
    """
    if feature not in frame.columns:
        raise KeyError(f"evaluate.baseline_feature {feature!r} is not a feature")
    return np.nan_to_num(frame[feature].to_numpy(dtype="float64"), nan=0.0)


def truth_at_cutoff(rows: pd.DataFrame, truth: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """Join each row to its buyer's true segment and whether they had abused by the cutoff.

    Args:
        rows: Rows with buyer_id and cutoff.
        truth: buyer_id, segment, is_abuser and, optionally, abuse_start.
        timezone: Zone of a naive ``abuse_start``.

    Returns:
        ``segment`` and ``abuser_by_cutoff`` aligned with ``rows``.
    """
    t = truth.set_index("buyer_id")
    seg = t["segment"].reindex(rows["buyer_id"].to_numpy())
    is_abuser = t["is_abuser"].reindex(rows["buyer_id"].to_numpy()).fillna(False)
    abuser = is_abuser.to_numpy(dtype=bool)
    if "abuse_start" in t.columns:
        start = pd.to_datetime(t["abuse_start"].reindex(rows["buyer_id"].to_numpy()))
        if start.dt.tz is None:
            start = start.dt.tz_localize(timezone).dt.tz_convert("UTC")
        cutoff = pd.to_datetime(rows["cutoff"]).to_numpy()
        started = start.to_numpy() < cutoff
        abuser = abuser & np.asarray(started, dtype=bool)
    return pd.DataFrame({"segment": seg.fillna("unknown").to_numpy(), "abuser_by_cutoff": abuser})


@dataclass(frozen=True)
class LogisticModel:
    """The logistic-regression comparator: signed-log features, median-imputed, scaled.

    Attributes:
        pipeline: The fitted scikit-learn pipeline (kept in memory only, never saved).
        calibrator: Calibration fitted on the calibration window.
        features: Feature columns.
    """

    pipeline: Any
    calibrator: Calibrator
    features: tuple[str, ...]

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities.

        Args:
            frame: Rows holding every feature column.

        Returns:
            One probability per row.
        """
        x = frame.loc[:, list(self.features)].to_numpy(dtype="float64")
        return self.calibrator.predict(self.pipeline.predict_proba(x)[:, 1])


def _signed_log(x: np.ndarray) -> np.ndarray:
    # Counts and amounts are heavy-tailed; a linear model needs them tamed.
    return np.sign(x) * np.log1p(np.abs(x))


def _row_weights(rows: pd.DataFrame) -> np.ndarray | None:
    """Training weights (known abusers', sampled negatives'), None when all rows weigh 1."""
    return rows[WEIGHT_COLUMN].to_numpy(dtype="float64") if WEIGHT_COLUMN in rows.columns else None


def fit_logistic(
    train: pd.DataFrame,
    calibration_rows: pd.DataFrame,
    features: tuple[str, ...],
    *,
    seed: int,
    max_train_rows: int,
    calibration: str,
) -> LogisticModel:
    """Fit the logistic-regression comparator on the model's training rows.

    Args:
        train: Training rows.
        calibration_rows: The calibration window's rows.
        features: Feature columns.
        seed: Random seed (row sampling, calibration folds).
        max_train_rows: Cap on the training rows (positives kept).
        calibration: Calibration method ("auto", "isotonic" or "platt").

    Returns:
        The fitted comparator.
    """
    rows = sample_rows(train, max_train_rows, seed=seed)
    pipeline = make_pipeline(
        FunctionTransformer(_signed_log),
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=1.0, max_iter=2000),
    )
    pipeline.fit(
        rows.loc[:, list(features)].to_numpy(dtype="float64"),
        rows["target"].to_numpy(),
        logisticregression__sample_weight=_row_weights(rows),
    )
    raw = pipeline.predict_proba(
        calibration_rows.loc[:, list(features)].to_numpy(dtype="float64")
    )[:, 1]
    calibrator, _ = choose_calibration(
        raw, calibration_rows["target"].to_numpy(), calibration, seed=seed  # type: ignore[arg-type]
    )
    return LogisticModel(pipeline, calibrator, features)


@dataclass(frozen=True)
class PlainModel:
    """The plain LightGBM comparator: default settings on basic refund features.

    Attributes:
        booster: The fitted booster (kept in memory only, never saved).
        calibrator: Calibration fitted on the calibration window.
        features: Feature columns, in the booster's order.
    """

    booster: lgb.Booster
    calibrator: Calibrator
    features: tuple[str, ...]

    def raw(self, frame: pd.DataFrame) -> np.ndarray:
        """The booster's uncalibrated probabilities.

        Args:
            frame: Rows holding every feature column.

        Returns:
            One probability per row.
        """
        x = frame.loc[:, list(self.features)].to_numpy(dtype="float64")
        return np.asarray(self.booster.predict(x), dtype="float64")

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities.

        Args:
            frame: Rows holding every feature column.

        Returns:
            One probability per row.
        """
        return self.calibrator.predict(self.raw(frame))


def check_plain_features(columns: Any, features: tuple[str, ...] = PLAIN_FEATURES) -> None:
    """Fail with one clear line when the plain baseline's features are not computed.

    Args:
        columns: The available feature columns.
        features: The plain baseline's features.

    Raises:
        ConfigError: Some are missing (features.windows_days lacks 90 or 365).
    """
    missing = [f for f in features if f not in set(columns)]
    if missing:
        raise ConfigError(
            f"the plain LightGBM baseline needs features {missing}, which are not computed: "
            "keep 90 and 365 in features.windows_days"
        )


def fit_plain_lightgbm(
    train: pd.DataFrame,
    calibration_rows: pd.DataFrame,
    features: tuple[str, ...] = PLAIN_FEATURES,
    *,
    seed: int,
    num_threads: int,
    max_train_rows: int | None = None,
    calibration: str = "auto",
) -> PlainModel:
    """Fit the plain LightGBM comparator: LightGBM defaults, no tuning, no constraints.

    100 rounds at learning rate 0.1 with 31 leaves, no early stopping, no class weights
    and no monotone constraints; missing values are left to LightGBM. It is calibrated on
    the calibration window exactly as the logistic comparator is.

    Args:
        train: Training rows (feature columns and ``target``).
        calibration_rows: The calibration window's rows.
        features: Feature columns.
        seed: Random seed (LightGBM, row sampling, calibration folds).
        num_threads: LightGBM threads.
        max_train_rows: Cap on the training rows (positives kept), as for the logistic
            comparator; None uses every row.
        calibration: Calibration method ("auto", "isotonic" or "platt").

    Returns:
        The fitted comparator.

    Raises:
        ConfigError: A feature is missing from the rows.
    """
    check_plain_features(train.columns, features)
    rows = train if max_train_rows is None else sample_rows(train, max_train_rows, seed=seed)
    params = {
        **PLAIN_LIGHTGBM,
        "seed": seed,
        "deterministic": True,
        # Fixed rather than LightGBM's timing-based choice, so runs repeat bit for bit.
        "force_col_wise": True,
        "num_threads": num_threads,
    }
    data = lgb.Dataset(
        rows.loc[:, list(features)].to_numpy(dtype="float64"),
        label=rows["target"].to_numpy(dtype="float64"),
        weight=_row_weights(rows),
        feature_name=list(features),
        params={"verbosity": -1},
    )
    booster = lgb.train(params, data, num_boost_round=PLAIN_ROUNDS)
    raw = booster.predict(calibration_rows.loc[:, list(features)].to_numpy(dtype="float64"))
    calibrator, _ = choose_calibration(
        np.asarray(raw, dtype="float64"),
        calibration_rows["target"].to_numpy(),
        calibration,  # type: ignore[arg-type]
        seed=seed,
    )
    return PlainModel(booster, calibrator, features)


def calibration_metrics(
    y_true: np.ndarray, prob: np.ndarray, bins: int = RELIABILITY_BINS
) -> dict[str, float]:
    """Expected calibration error and Brier score.

    ECE uses equal-width probability bins, each weighted by its share of rows.

    Args:
        y_true: 0/1 outcomes.
        prob: Calibrated probabilities.
        bins: Number of bins.

    Returns:
        "ece" and "brier".
    """
    rel = reliability(y_true, prob, bins)
    n = max(int(rel["rows"].sum()), 1)
    ece = float((rel["rows"] * (rel["mean_predicted"] - rel["observed_rate"]).abs()).sum() / n)
    y = np.asarray(y_true, dtype="float64")
    brier = float(np.mean((np.asarray(prob) - y) ** 2)) if y.size else math.nan
    return {"ece": ece, "brier": brier}


def reliability(
    y_true: np.ndarray, prob: np.ndarray, bins: int = RELIABILITY_BINS
) -> pd.DataFrame:
    """Reliability table: mean predicted probability against the observed rate per bin.

    Args:
        y_true: 0/1 outcomes.
        prob: Calibrated probabilities.
        bins: Number of equal-width bins on [0, 1].

    Returns:
        One row per non-empty bin: bin_low, bin_high, rows, mean_predicted, observed_rate.
    """
    p = np.clip(np.asarray(prob, dtype="float64"), 0.0, 1.0)
    y = np.asarray(y_true, dtype="float64")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        if m.any():
            out.append(
                {
                    "bin_low": b / bins,
                    "bin_high": (b + 1) / bins,
                    "rows": int(m.sum()),
                    "mean_predicted": float(p[m].mean()),
                    "observed_rate": float(y[m].mean()),
                }
            )
    columns = ["bin_low", "bin_high", "rows", "mean_predicted", "observed_rate"]
    return pd.DataFrame(out, columns=columns)


def evaluate_scores(
    y_true: np.ndarray,
    scores: Mapping[str, np.ndarray],
    flagged: Mapping[str, np.ndarray],
    *,
    top_share: float,
    max_fpr: float,
    capacity: int,
    truth: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Ranking metrics, flag rates and per-segment figures of each scorer on the same rows.

    Args:
        y_true: Targets (labeled abuser within the horizon).
        scores: Ranking score of each scorer ("model", "baseline", "logistic").
        flagged: Rows each scorer sends to review or restrict.
        top_share: Share of rows for "precision_at_top".
        max_fpr: False-positive budget for "recall_at_fpr".
        capacity: Cases the review team handles in the window (precision in the top k).
        truth: Optional ``segment`` and ``abuser_by_cutoff`` per row (simulated data).

    Returns:
        Flat metrics: "<scorer>.<metric>", "truth.<scorer>.<metric>" and
        "segment.<name>.<scorer>_flag_rate" (the false-positive rate of an honest
        segment, the recall of an abusive one).
    """
    out: dict[str, float] = {}
    for name, score in scores.items():
        for k, v in ranking_metrics(y_true, score, top_share=top_share, max_fpr=max_fpr).items():
            out[f"{name}.{k}"] = v
        out[f"{name}.precision_at_capacity"] = precision_at_k(y_true, score, capacity)
        out[f"{name}.flag_rate"] = (
            float(flagged[name].mean()) if flagged[name].size else math.nan
        )
    out["capacity_k"] = float(capacity)
    if truth is None:
        return out
    actual = truth["abuser_by_cutoff"].to_numpy(dtype=int)
    for name, score in scores.items():
        m = ranking_metrics(actual, score, top_share=top_share, max_fpr=max_fpr)
        for k in ("roc_auc", "average_precision", "recall_at_fpr", "precision_at_top", "positives"):
            out[f"truth.{name}.{k}"] = m[k]
        out[f"truth.{name}.precision_at_capacity"] = precision_at_k(actual, score, capacity)
    for seg in sorted(truth["segment"].unique()):
        mask = (truth["segment"] == seg).to_numpy()
        out[f"segment.{seg}.rows"] = float(mask.sum())
        out[f"segment.{seg}.abusers"] = float(actual[mask].sum())
        for name, f in flagged.items():
            out[f"segment.{seg}.{name}_flag_rate"] = float(f[mask].mean())
    return out


def cost_table(
    y_true: np.ndarray,
    tiers: Mapping[str, np.ndarray],
    policy: PolicyParams,
    *,
    periods: int,
    period_days: int,
    truth: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Counts per tier and the cost of each option, as labeled and (if known) in truth.

    Args:
        y_true: Labels.
        tiers: Tier names per row, for each option.
        policy: Costs.
        periods: Cutoffs in the window.
        period_days: Days per cutoff period.
        truth: Optional ``abuser_by_cutoff`` per row.

    Returns:
        "cost.<option>.<figure>" (see :func:`refundguard.policy.describe`), plus
        "cost.<option>.truth_cost_per_buyer" with a truth file.
    """
    out: dict[str, float] = {}
    for option, t in tiers.items():
        d = describe(y_true, t, policy, periods=periods, period_days=period_days)
        out.update({f"cost.{option}.{k}": v for k, v in d.items()})
        if truth is not None:
            actual = truth["abuser_by_cutoff"].to_numpy(dtype=int)
            dt = describe(actual, t, policy, periods=periods, period_days=period_days)
            out[f"cost.{option}.truth_cost_per_buyer"] = dt["cost_per_buyer"]
            out[f"cost.{option}.truth_honest_above_standard"] = dt["honest_above_standard"]
    return out


def ablation(
    rows: dict[str, pd.DataFrame],
    groups: dict[str, list[str]],
    params: LightGBMParams,
    *,
    seed: int,
    max_train_rows: int,
) -> dict[str, float]:
    """Retrain without each feature group and measure test average precision.

    Every variant, the full one included, trains on the same rows with the same
    settings, so the drops compare like with like; above ``max_train_rows`` the training
    rows are a seeded sample that keeps every positive. The booster's raw ranking is
    measured (calibration does not change average precision).

    Args:
        rows: "train", "valid" and "test" rows of the time split.
        groups: Feature names by group, in model order; together, every feature.
        params: Booster settings (the same as the full model's).
        seed: Random seed.
        max_train_rows: Cap on the training rows of each variant.

    Returns:
        "ablation.full.average_precision", and per group
        "ablation.without_<group>.average_precision" and "ablation.without_<group>.ap_drop"
        (full minus without: how much the group adds).
    """
    y = rows["test"]["target"].to_numpy()
    train = sample_rows(rows["train"], max_train_rows, seed=seed)

    def test_ap(features: list[str]) -> float:
        model = train_model(
            train, rows["valid"], features, params, seed=seed, calibration="platt"
        )
        return ranking_metrics(y, model.raw(rows["test"]), top_share=0.01, max_fpr=0.01)[
            "average_precision"
        ]

    every = [f for names in groups.values() for f in names]
    full = test_ap(every)
    out = {"ablation.full.average_precision": full}
    for group, names in groups.items():
        kept = [f for f in every if f not in set(names)]
        ap = test_ap(kept)
        out[f"ablation.without_{group}.average_precision"] = ap
        out[f"ablation.without_{group}.ap_drop"] = full - ap
    return out


def nest(flat: dict[str, float]) -> dict[str, object]:
    """Turn "a.b.c" keys into nested mappings; NaN becomes None (valid JSON).

    Args:
        flat: Flat metrics.

    Returns:
        Nested metrics.
    """
    root: dict[str, object] = {}
    for key, value in sorted(flat.items()):
        node = root
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})  # type: ignore[assignment]
        node[leaf] = None if value is None or not math.isfinite(value) else round(value, 6)
    return root


def curves(
    y_true: np.ndarray, score: np.ndarray, points: int = 200
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ROC and precision-recall curves, thinned to about ``points`` rows each.

    Args:
        y_true: 0/1 outcomes.
        score: Scores.
        points: Approximate number of points to keep.

    Returns:
        (roc with fpr, tpr; pr with recall, precision).
    """
    fpr, tpr, _ = roc_curve(y_true, score)
    prec, rec, _ = precision_recall_curve(y_true, score)

    def thin(n: int) -> np.ndarray:
        return np.unique(np.linspace(0, n - 1, min(points, n)).round().astype(int))

    i, j = thin(fpr.size), thin(prec.size)
    return (
        pd.DataFrame({"fpr": fpr[i].round(6), "tpr": tpr[i].round(6)}),
        pd.DataFrame({"recall": rec[j].round(6), "precision": prec[j].round(6)}),
    )


def option_tiers(
    tiered: Mapping[str, tuple[np.ndarray, tuple[float, float, float]]],
    baseline_flag: np.ndarray,
) -> dict[str, np.ndarray]:
    """Tier of every row under each option.

    Args:
        tiered: Calibrated probabilities and tier bounds of each tiered scorer
            ("logistic", "plain", "model").
        baseline_flag: Rows the rule flags.

    Returns:
        Tier names per option (see the module docstring), in :data:`OPTIONS` order.
    """
    n = len(baseline_flag)
    out = {
        "no_model": np.full(n, DEFAULT_TIER, dtype=object),
        "baseline": np.where(baseline_flag, FIRST_FLAGGED_TIER, DEFAULT_TIER).astype(object),
    }
    for name, (prob, bounds) in tiered.items():
        out[name] = assign_tiers(prob, bounds)
    order = {o: i for i, o in enumerate(OPTIONS)}
    return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], len(order))))


def headline(metrics: Mapping[str, float]) -> dict[str, float]:
    """The few figures DVC shows (metrics.json): at most :data:`MAX_HEADLINE`.

    The model's and the plain LightGBM's ROC-AUC and average precision; the model's
    recall at the false-positive budget, precision at review capacity, cost per buyer,
    ECE and the worst false-positive rate of an honest look-alike segment; with a truth
    file, the same ranking figures and cost against the truth. Figures that could not be
    measured (no truth file) are left out, never written as NaN.

    Args:
        metrics: Flat metrics of the evaluation.

    Returns:
        Flat headline metrics ("model.roc_auc", "truth.plain.average_precision", ...).
    """
    wanted = {
        "model.roc_auc": "model.roc_auc",
        "model.average_precision": "model.average_precision",
        "plain.roc_auc": "plain.roc_auc",
        "plain.average_precision": "plain.average_precision",
        "model.recall_at_fpr": "model.recall_at_fpr",
        "model.precision_at_capacity": "model.precision_at_capacity",
        "model.cost_per_buyer": "cost.model.cost_per_buyer",
        "model.ece": "calibration.ece",
        "truth.model.roc_auc": "truth.model.roc_auc",
        "truth.model.average_precision": "truth.model.average_precision",
        "truth.plain.roc_auc": "truth.plain.roc_auc",
        "truth.plain.average_precision": "truth.plain.average_precision",
        "truth.model.recall_at_fpr": "truth.model.recall_at_fpr",
        "truth.model.cost_per_buyer": "cost.model.truth_cost_per_buyer",
    }
    out = {k: float(metrics[src]) for k, src in wanted.items() if src in metrics}
    rates = [
        float(metrics[f"segment.{s}.model_flag_rate"])
        for s in HONEST_LOOKALIKES
        if f"segment.{s}.model_flag_rate" in metrics
    ]
    if rates:
        out["model.worst_lookalike_fpr"] = max(rates)
    return {k: v for k, v in out.items() if math.isfinite(v)}


def write_plot_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a curve for DVC plots: plain UTF-8 CSV, no BOM, atomically.

    DVC reads the first header as "\ufefffpr" when a BOM is there, so these files,
    read by programs rather than Excel, have none.

    Args:
        frame: The curve.
        path: Destination.
    """
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n")


def _flagged(tiers: np.ndarray) -> np.ndarray:
    return np.isin(tiers, FLAGGED_TIERS)


def fit_comparators(
    rows: Mapping[str, pd.DataFrame],
    features: tuple[str, ...],
    *,
    seed: int,
    num_threads: int,
    max_train_rows: int,
    calibration: str,
    policy: PolicyParams,
    period_days: int,
) -> dict[str, tuple[LogisticModel | PlainModel, PolicyChoice]]:
    """Fit the logistic and plain LightGBM comparators, and choose their tiers.

    Both train on the same (seeded, capped) training rows as the model, the known
    abusers' weighted rows included when it fitted on them, are calibrated on the
    calibration window (the validation window when there is none) and get tier bounds
    chosen there from the same costs, as the model's were.

    Args:
        rows: The time split's rows by role.
        features: The model's features (the logistic regression's inputs).
        seed: Random seed.
        num_threads: LightGBM threads.
        max_train_rows: Cap on the training rows.
        calibration: Calibration method.
        policy: Costs and limits.
        period_days: Days per cutoff period.

    Returns:
        {"logistic" | "plain": (fitted comparator, its tier choice)}.
    """
    cal_rows = rows["calibration"] if len(rows["calibration"]) else rows["valid"]
    fitted: dict[str, LogisticModel | PlainModel] = {
        "logistic": fit_logistic(
            rows["train"],
            cal_rows,
            features,
            seed=seed,
            max_train_rows=max_train_rows,
            calibration=calibration,
        ),
        "plain": fit_plain_lightgbm(
            rows["train"],
            cal_rows,
            PLAIN_FEATURES,
            seed=seed,
            num_threads=num_threads,
            max_train_rows=max_train_rows,
            calibration=calibration,
        ),
    }
    y_cal = cal_rows["target"].to_numpy()
    periods = int(cal_rows["cutoff"].nunique())
    return {
        name: (
            m,
            choose_bounds(
                m.predict(cal_rows), y_cal, policy, periods=periods, period_days=period_days
            ),
        )
        for name, m in fitted.items()
    }


@dataclass(frozen=True)
class Evaluation:
    """Everything the evaluate stage writes, computed without touching a file.

    Attributes:
        metrics: Every flat figure ("model.average_precision", "cost.model...", ...).
        test: The test window's rows (for scoring the registry's champion on them).
        scores: Ranking score per test row of each scorer (:data:`SCORERS`).
        curves: (ROC, precision-recall) frames of each scorer.
        reliability: The model's reliability table.
        importance: ``feature`` and ``gain`` of the model, most important first.
        score_frame: ``segment`` and ``probability`` per test row (for the report).
        bounds: The judged model's tier bounds.
    """

    metrics: dict[str, float]
    test: pd.DataFrame
    scores: dict[str, np.ndarray]
    curves: dict[str, tuple[pd.DataFrame, pd.DataFrame]]
    reliability: pd.DataFrame
    importance: pd.DataFrame
    score_frame: pd.DataFrame
    bounds: tuple[float, float, float]


def evaluate(
    snapshots: pd.DataFrame,
    model: TrainedModel,
    policy: PolicyChoice,
    info: TrainingInfo,
    params: Params,
    *,
    truth: pd.DataFrame | None = None,
    known: pd.DataFrame | None = None,
) -> Evaluation:
    """Judge the held-out model against the other options on the test window.

    Args:
        snapshots: The features stage's table (read only).
        model: The held-out model.
        policy: Its tier bounds.
        info: Its training.json (split, period, booster settings, tuning facts).
        params: The run's settings (evaluate, policy, train.calibration, base, features).
        truth: The simulator's truth table (buyer_id, segment, is_abuser, abuse_start),
            if there is one.
        known: The known abusers' rows the model fitted on as extra positives (read
            only), or None; the comparators then fit on them too (the same rows).

    Returns:
        The figures, curves and tables.

    Raises:
        ConfigError: The plain baseline's features are not computed.
    """
    check_plain_features(snapshots.columns)
    split = info.time_split
    rows = split_rows(snapshots, split)
    test = rows["test"]
    y = test["target"].to_numpy()
    periods, period_days = len(split.test), info.period_days
    prob = model.predict(test)
    comparators = fit_comparators(
        {**rows, "train": with_known(rows["train"], known)},
        model.features,
        seed=params.base.seed,
        num_threads=params.train.lightgbm.num_threads,
        max_train_rows=params.evaluate.ablation_max_train_rows,
        calibration=params.train.calibration,
        policy=params.policy,
        period_days=period_days,
    )
    probs = {name: m.predict(test) for name, (m, _) in comparators.items()}
    base = baseline_score(test, params.evaluate.baseline_feature)
    base_flag = base >= params.evaluate.baseline_threshold
    tiered = {name: (probs[name], choice.bounds) for name, (_, choice) in comparators.items()}
    tiers = option_tiers({**tiered, "model": (prob, policy.bounds)}, base_flag)
    scores = {"model": prob, "plain": probs["plain"], "baseline": base,
              "logistic": probs["logistic"]}
    flags = {"model": _flagged(tiers["model"]), "plain": _flagged(tiers["plain"]),
             "baseline": base_flag, "logistic": _flagged(tiers["logistic"])}
    truth_rows = None if truth is None else truth_at_cutoff(test, truth, params.base.timezone)
    capacity = max(1, round(params.policy.review_capacity_per_day * period_days * periods))
    metrics = evaluate_scores(
        y, scores, flags, top_share=params.evaluate.top_share,
        max_fpr=params.evaluate.max_fpr, capacity=capacity, truth=truth_rows,
    )
    metrics.update(cost_table(y, tiers, params.policy, periods=periods,
                              period_days=period_days, truth=truth_rows))
    metrics.update({f"calibration.{k}": v for k, v in calibration_metrics(y, prob).items()})
    for name in FITTED:
        metrics.update(
            {f"calibration.{name}_{k}": v for k, v in calibration_metrics(y, probs[name]).items()}
        )
        metrics.update(policy_metrics(f"policy_{name}", comparators[name][1]))
    metrics.update({f"calibration.cv_brier_{k}": v for k, v in model.calibration_scores.items()})
    metrics.update(policy_metrics("policy", policy))
    metrics.update(training_metrics(info))
    if params.evaluate.ablation:
        metrics.update(_ablation(rows, model, info, params))
    return Evaluation(
        metrics=metrics,
        test=test,
        scores=scores,
        curves={name: curves(y, score) for name, score in scores.items()},
        reliability=reliability(y, prob),
        importance=pd.DataFrame(
            {"feature": list(model.features), "gain": model.booster.feature_importance("gain")}
        ).sort_values(["gain", "feature"], ascending=[False, True]),
        score_frame=_score_frame(test, prob, truth_rows),
        bounds=policy.bounds,
    )


def _ablation(
    rows: dict[str, pd.DataFrame], model: TrainedModel, info: TrainingInfo, params: Params
) -> dict[str, float]:
    """The ablation by catalog feature group, with the model's own booster settings."""
    catalog = {f.name: f.group for f in build_catalog(params.features)}
    groups = {g: [f for f in model.features if catalog.get(f) == g] for g in FEATURE_GROUPS}
    return ablation(
        rows,
        {g: names for g, names in groups.items() if names},
        info.lightgbm,
        seed=params.base.seed,
        max_train_rows=params.evaluate.ablation_max_train_rows,
    )


def policy_metrics(prefix: str, choice: PolicyChoice) -> dict[str, float]:
    """A tier choice as figures: each tier's lower bound and the cost it was chosen at.

    Args:
        prefix: Key prefix ("policy", "policy_logistic", ...).
        choice: The tier choice.

    Returns:
        "<prefix>.<tier>_from" and "<prefix>.valid_cost_per_buyer".
    """
    out = {f"{prefix}.{t}_from": b for t, b in zip(TIERS[1:], choice.bounds, strict=True)}
    out[f"{prefix}.valid_cost_per_buyer"] = choice.cost_per_buyer
    return out


def training_metrics(info: TrainingInfo) -> dict[str, float]:
    """The tuning and reweighting facts of training.json, as figures.

    Args:
        info: The judged model's training.json.

    Returns:
        "tuning.*" and "reweight.*" figures (those recorded).
    """
    out: dict[str, float] = {}
    tuning, rw = info.tuning, info.reweight
    for k in ("rolling_ap_mean", "rolling_ap_std"):
        if k in tuning:
            out[f"tuning.{k}"] = float(tuning[k])
    out["tuning.trials"] = float(len(tuning.get("trials", [])))
    for k in ("none_ap_mean", "none_ap_std", "balanced_ap_mean", "balanced_ap_std"):
        if k in rw:
            out[f"reweight.{k}"] = float(rw[k])
    if "reweighted" in rw:
        out["reweight.chosen"] = float(bool(rw["reweighted"]))
    return out


def _score_frame(
    test: pd.DataFrame, prob: np.ndarray, truth: pd.DataFrame | None
) -> pd.DataFrame:
    segment = (
        truth["segment"].to_numpy()
        if truth is not None
        else np.where(test["target"].to_numpy() == 1, "labeled abuser", "not labeled")
    )
    return pd.DataFrame({"segment": segment, "probability": prob})
