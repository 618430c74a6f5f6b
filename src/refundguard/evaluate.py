"""Evaluate stage: the model against a rule baseline on the test window.

The core returns a flat ``dict[str, float]`` ("model.average_precision",
"baseline.roc_auc", "segment.size_bracketer.model_flag_rate", ...); the shell writes it
as nested metrics.json plus the ROC and precision-recall curves that dvc.yaml declares,
and is the only place that logs.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve

from refundguard.config import LightGBMParams, load_params
from refundguard.features import FEATURE_GROUPS, build_catalog
from refundguard.io import read_json, write_csv, write_json
from refundguard.metrics import ranking_metrics
from refundguard.paths import FEATURES_DIR, METRICS_FILE, MODEL_DIR, PARAMS_FILE, PLOTS_DIR
from refundguard.train import (
    TRAINING_FILE,
    load_model,
    split_from_info,
    split_rows,
    train_model,
)

log = logging.getLogger(__name__)


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


def evaluate_scores(
    y_true: np.ndarray,
    model_prob: np.ndarray,
    baseline: np.ndarray,
    *,
    top_share: float,
    max_fpr: float,
    review_from: float,
    baseline_threshold: float,
    truth: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Metrics of the model and the rule baseline on the same rows.

    Args:
        y_true: Targets (labeled abuser within the horizon).
        model_prob: The model's calibrated probabilities.
        baseline: The rule's ranking score.
        top_share: Share of rows a review team can look at (precision in the top).
        max_fpr: False-positive budget for the recall figure.
        review_from: Probability from which the model sends a buyer to review.
        baseline_threshold: Score from which the rule flags a buyer.
        truth: Optional ``segment`` and ``abuser_by_cutoff`` per row (simulated data).

    Returns:
        Flat metrics, keys "<scorer>.<metric>" and "segment.<name>.<figure>".
    """
    out: dict[str, float] = {}
    scorers = {"model": model_prob, "baseline": baseline}
    for name, score in scorers.items():
        for k, v in ranking_metrics(y_true, score, top_share=top_share, max_fpr=max_fpr).items():
            out[f"{name}.{k}"] = v
    flags = {"model": model_prob >= review_from, "baseline": baseline >= baseline_threshold}
    for name, flagged in flags.items():
        out[f"{name}.flag_rate"] = float(flagged.mean()) if flagged.size else math.nan
    if truth is not None:
        actual = truth["abuser_by_cutoff"].to_numpy(dtype=int)
        for name, score in scorers.items():
            for k, v in ranking_metrics(
                actual, score, top_share=top_share, max_fpr=max_fpr
            ).items():
                if k in (
                    "roc_auc",
                    "average_precision",
                    "recall_at_fpr",
                    "precision_at_top",
                    "positives",
                ):
                    out[f"truth.{name}.{k}"] = v
        for seg in sorted(truth["segment"].unique()):
            mask = (truth["segment"] == seg).to_numpy()
            out[f"segment.{seg}.rows"] = float(mask.sum())
            for name, flagged in flags.items():
                out[f"segment.{seg}.{name}_flag_rate"] = float(flagged[mask].mean())
    return out


def ablation(
    rows: dict[str, pd.DataFrame],
    groups: dict[str, list[str]],
    params: LightGBMParams,
    *,
    seed: int,
    calibration: str,
    max_train_rows: int,
) -> dict[str, float]:
    """Retrain without each feature group and measure test average precision.

    Every variant, the full one included, trains on the same rows, so the drops compare
    like with like; above ``max_train_rows`` the training rows are a seeded sample that
    keeps every positive.

    Args:
        rows: "train", "valid" and "test" rows of the time split.
        groups: Feature names by group, in model order; together, every feature.
        params: Booster settings (the same as the full model's).
        seed: Random seed.
        calibration: Calibration method.
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
            train, rows["valid"], features, params, seed=seed, calibration=calibration
        )
        return ranking_metrics(y, model.predict(rows["test"]), top_share=0.01, max_fpr=0.01)[
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


def main(
    params_path: Path = PARAMS_FILE,
    features_dir: Path = FEATURES_DIR,
    model_dir: Path = MODEL_DIR,
    metrics_file: Path = METRICS_FILE,
    plots_dir: Path = PLOTS_DIR,
) -> dict[str, float]:
    """Score the test window, write metrics.json and the plots, log them to the train run.

    Args:
        params_path: params.yaml.
        features_dir: The features stage's folder.
        model_dir: The train stage's folder.
        metrics_file: Destination of the metrics.
        plots_dir: Destination of the curve files.

    Returns:
        The flat metrics.
    """
    params = load_params(params_path)
    info = read_json(model_dir / TRAINING_FILE)
    model = load_model(model_dir)
    snapshots = pd.read_parquet(features_dir / "snapshots.parquet")
    rows = split_rows(snapshots, split_from_info(info))
    test = rows["test"]
    y = test["target"].to_numpy()
    prob = model.predict(test)
    base = baseline_score(test, params.evaluate.baseline_feature)
    truth_path = params.data.truth_path()
    truth = None
    if truth_path is not None and truth_path.is_file():
        truth = truth_at_cutoff(test, pd.read_parquet(truth_path), params.base.timezone)
    metrics = evaluate_scores(
        y,
        prob,
        base,
        top_share=params.evaluate.top_share,
        max_fpr=params.evaluate.max_fpr,
        review_from=params.policy.review_from,
        baseline_threshold=params.evaluate.baseline_threshold,
        truth=truth,
    )
    if params.evaluate.ablation:
        catalog = {f.name: f.group for f in build_catalog(params.features)}
        groups = {g: [f for f in model.features if catalog.get(f) == g] for g in FEATURE_GROUPS}
        metrics.update(
            ablation(
                rows,
                {g: names for g, names in groups.items() if names},
                params.train.lightgbm,
                seed=params.base.seed,
                calibration=params.train.calibration,
                max_train_rows=params.evaluate.ablation_max_train_rows,
            )
        )
    write_json(nest(metrics), metrics_file)
    for name, score in (("model", prob), ("baseline", base)):
        roc, pr = curves(y, score)
        write_csv(roc, plots_dir / f"roc_{name}.csv")
        write_csv(pr, plots_dir / f"pr_{name}.csv")

    import mlflow

    from refundguard import tracking

    tracking.start()
    with mlflow.start_run(run_id=info["run_id"]):
        mlflow.log_metrics({f"test.{k}": v for k, v in metrics.items() if math.isfinite(v)})
        mlflow.log_artifact(str(metrics_file))
        mlflow.log_artifacts(str(plots_dir), artifact_path="plots")
    log.info(
        "test AP: model %.3f, baseline %.3f",
        metrics["model.average_precision"],
        metrics["baseline.average_precision"],
    )
    return metrics
