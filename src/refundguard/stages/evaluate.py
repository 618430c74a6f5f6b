"""Evaluate stage: the held-out model against the baselines on the test window, and the report."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from refundguard.config import LightGBMParams, load_params
from refundguard.data.io import read_json, write_json, write_text
from refundguard.features.catalog import FEATURE_GROUPS, build_catalog
from refundguard.model.consistency import CONSISTENCY_DIR, CONSISTENCY_FILE
from refundguard.model.evaluation import (
    EVALUATION_FILE,
    FITTED,
    GATE_FILE,
    REPORT_FILE,
    _flagged,
    ablation,
    baseline_score,
    calibration_metrics,
    check_plain_features,
    cost_table,
    curves,
    evaluate_scores,
    fit_comparators,
    headline,
    nest,
    option_tiers,
    reliability,
    truth_at_cutoff,
    write_plot_csv,
)
from refundguard.model.policy import TIERS, PolicyChoice
from refundguard.model.train import (
    TRAINING_FILE,
    load_holdout_model,
    load_holdout_policy,
    split_from_info,
    split_rows,
)
from refundguard.paths import (
    FEATURES_DIR,
    METRICS_FILE,
    MODEL_DIR,
    PARAMS_FILE,
    PLOTS_DIR,
    REPORTS_DIR,
)
from refundguard.serving.gate import champion_metric, gate_decision

log = logging.getLogger(__name__)


def main(
    params_path: Path = PARAMS_FILE,
    features_dir: Path = FEATURES_DIR,
    model_dir: Path = MODEL_DIR,
    metrics_file: Path = METRICS_FILE,
    plots_dir: Path = PLOTS_DIR,
    reports_dir: Path = REPORTS_DIR,
    evaluation_file: Path | None = None,
    consistency_file: Path = CONSISTENCY_DIR / CONSISTENCY_FILE,
) -> dict[str, float]:
    """Score the test window, write metrics, plots, gate and report, log them to MLflow.

    Args:
        params_path: params.yaml.
        features_dir: The features stage's folder.
        model_dir: The train stage's folder (its held-out model is judged).
        metrics_file: Destination of the headline metrics (DVC metrics).
        plots_dir: Destination of the curve files.
        reports_dir: Destination of the HTML report and gate.json.
        evaluation_file: Destination of every figure; None: evaluation.json in
            ``reports_dir``.
        consistency_file: The time-consistency check's result, shown in the report.

    Returns:
        The flat metrics (every figure).

    Raises:
        ConfigError: The plain baseline's features are not computed.
    """
    from refundguard.reporting import html as report

    evaluation_file = evaluation_file or reports_dir / EVALUATION_FILE.name
    params = load_params(params_path)
    info = read_json(model_dir / TRAINING_FILE)
    model = load_holdout_model(model_dir)
    policy = load_holdout_policy(model_dir)
    snapshots = pd.read_parquet(features_dir / "snapshots.parquet")
    check_plain_features(snapshots.columns)
    split = split_from_info(info)
    rows = split_rows(snapshots, split)
    test = rows["test"]
    y = test["target"].to_numpy()
    periods, period_days = len(split.test), int(info.get("period_days", 28))
    capacity = max(1, round(params.policy.review_capacity_per_day * period_days * periods))

    prob = model.predict(test)
    base = baseline_score(test, params.evaluate.baseline_feature)
    base_flag = base >= params.evaluate.baseline_threshold
    comparators = fit_comparators(
        rows,
        model.features,
        seed=params.base.seed,
        num_threads=params.train.lightgbm.num_threads,
        max_train_rows=params.evaluate.ablation_max_train_rows,
        calibration=params.train.calibration,
        policy=params.policy,
        period_days=period_days,
    )
    probs = {name: m.predict(test) for name, (m, _) in comparators.items()}
    tiered = {name: (probs[name], choice.bounds) for name, (_, choice) in comparators.items()}
    tiers = option_tiers({**tiered, "model": (prob, policy.bounds)}, base_flag)

    truth_path = params.data.truth_path()
    truth = None
    if truth_path is not None and truth_path.is_file():
        truth = truth_at_cutoff(test, pd.read_parquet(truth_path), params.base.timezone)
    scores = {
        "model": prob,
        "plain": probs["plain"],
        "baseline": base,
        "logistic": probs["logistic"],
    }
    flags = {
        "model": _flagged(tiers["model"]),
        "plain": _flagged(tiers["plain"]),
        "baseline": base_flag,
        "logistic": _flagged(tiers["logistic"]),
    }
    metrics = evaluate_scores(
        y, scores, flags, top_share=params.evaluate.top_share,
        max_fpr=params.evaluate.max_fpr, capacity=capacity, truth=truth,
    )
    metrics.update(
        cost_table(y, tiers, params.policy, periods=periods, period_days=period_days,
                   truth=truth)
    )
    metrics.update({f"calibration.{k}": v for k, v in calibration_metrics(y, prob).items()})
    for name in FITTED:
        metrics.update(
            {f"calibration.{name}_{k}": v for k, v in calibration_metrics(y, probs[name]).items()}
        )
        metrics.update(_policy_metrics(f"policy_{name}", comparators[name][1]))
    metrics.update({f"calibration.cv_brier_{k}": v for k, v in model.calibration_scores.items()})
    metrics.update(_policy_metrics("policy", policy))
    metrics.update(_training_metrics(info))
    if params.evaluate.ablation:
        catalog = {f.name: f.group for f in build_catalog(params.features)}
        groups = {g: [f for f in model.features if catalog.get(f) == g] for g in FEATURE_GROUPS}
        metrics.update(
            ablation(
                rows,
                {g: names for g, names in groups.items() if names},
                LightGBMParams(**info["params"]["lightgbm"]),
                seed=params.base.seed,
                max_train_rows=params.evaluate.ablation_max_train_rows,
            )
        )
    reg = params.registry
    candidate = float(metrics[f"model.{reg.metric}"])
    from refundguard.serving.scorer import ARTIFACTS, content_id

    # The version the export stage registers is the shipped model's (the folder's top
    # level), so that is the id compared with the champion's.
    candidate_id = content_id(
        {k: model_dir / v for k, v in ARTIFACTS.items() if k not in ("scorer", "sentiment")}
    )
    champ, champ_version, note = champion_metric(
        reg.name,
        reg.metric,
        test,
        candidate_id,
        top_share=params.evaluate.top_share,
        max_fpr=params.evaluate.max_fpr,
    )
    gate = gate_decision(
        candidate, champ, champ_version, metric=reg.metric,
        min_improvement=reg.min_improvement, note=note,
    )
    # The gate depends on the registry's state, not only on data and params, so it stays
    # out of the metrics files (which must repeat byte for byte) and lives in gate.json.

    write_json(nest(headline(metrics)), metrics_file)
    write_json(nest(metrics), evaluation_file)
    write_json(gate, reports_dir / GATE_FILE)
    curve_frames: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    for name, score in scores.items():
        roc, pr = curves(y, score)
        curve_frames[name] = (roc, pr)
        write_plot_csv(roc, plots_dir / f"roc_{name}.csv")
        write_plot_csv(pr, plots_dir / f"pr_{name}.csv")
    rel = reliability(y, prob)
    write_plot_csv(rel.round(6), plots_dir / "calibration.csv")
    importance = pd.DataFrame(
        {
            "feature": list(model.features),
            "gain": model.booster.feature_importance("gain"),
        }
    ).sort_values(["gain", "feature"], ascending=[False, True])
    html = report.render(
        report.ReportData(
            metrics=metrics,
            curves=curve_frames,
            reliability=rel,
            scores=_score_frame(test, prob, truth),
            bounds=policy.bounds,
            importance=importance,
            catalog={f.name: f for f in build_catalog(params.features)},
            gate=gate,
            info=info,
            consistency=read_json(consistency_file) if consistency_file.is_file() else {},
        )
    )
    write_text(html, reports_dir / REPORT_FILE)

    import mlflow

    from refundguard.model import tracking

    tracking.start()
    with mlflow.start_run(run_id=info["run_id"]):
        mlflow.log_metrics({f"test.{k}": v for k, v in metrics.items() if math.isfinite(v)})
        mlflow.log_artifact(str(metrics_file))
        mlflow.log_artifact(str(evaluation_file))
        mlflow.log_artifact(str(reports_dir / REPORT_FILE))
        mlflow.log_artifact(str(reports_dir / GATE_FILE))
        mlflow.log_artifacts(str(plots_dir), artifact_path="plots")
    log.info(
        "test AP: model %.3f, plain LightGBM %.3f, logistic %.3f, rule %.3f; cost/buyer: "
        "model %.2f, no model %.2f; gate: %s",
        metrics["model.average_precision"],
        metrics["plain.average_precision"],
        metrics["logistic.average_precision"],
        metrics["baseline.average_precision"],
        metrics["cost.model.cost_per_buyer"],
        metrics["cost.no_model.cost_per_buyer"],
        gate["decision"],
    )
    log.info("%s", report.plain_verdict(metrics))
    return metrics


def _policy_metrics(prefix: str, choice: PolicyChoice) -> dict[str, float]:
    out = {f"{prefix}.{t}_from": b for t, b in zip(TIERS[1:], choice.bounds, strict=True)}
    out[f"{prefix}.valid_cost_per_buyer"] = choice.cost_per_buyer
    return out


def _training_metrics(info: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    tuning = info.get("tuning", {})
    for k in ("rolling_ap_mean", "rolling_ap_std"):
        if k in tuning:
            out[f"tuning.{k}"] = float(tuning[k])
    out["tuning.trials"] = float(len(tuning.get("trials", [])))
    rw = info.get("reweight", {})
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
