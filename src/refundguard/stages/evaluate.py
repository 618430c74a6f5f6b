"""Evaluate stage: the held-out model against the baselines on the test window, and the report."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from refundguard.config import Params, load_params
from refundguard.data.io import read_json, write_json, write_text
from refundguard.features.build import known_abuser_rows
from refundguard.features.catalog import build_catalog
from refundguard.model.bundle import (
    TrainingInfo,
    load_holdout_model,
    load_holdout_policy,
    load_training_info,
    model_version,
)
from refundguard.model.consistency import CONSISTENCY_DIR, CONSISTENCY_FILE
from refundguard.model.evaluation import (
    EVALUATION_FILE,
    GATE_FILE,
    REPORT_FILE,
    Evaluation,
    evaluate,
    headline,
    nest,
    write_plot_csv,
)
from refundguard.paths import (
    FEATURES_DIR,
    METRICS_FILE,
    MODEL_DIR,
    PARAMS_FILE,
    PLOTS_DIR,
    REPORTS_DIR,
    SNAPSHOTS_FILE_NAME,
)
from refundguard.serving.gate import judge

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
    evaluation_file = evaluation_file or reports_dir / EVALUATION_FILE.name
    params = load_params(params_path)
    info = load_training_info(model_dir)
    truth_path = params.data.truth_path()
    result = evaluate(
        pd.read_parquet(features_dir / SNAPSHOTS_FILE_NAME),
        load_holdout_model(model_dir),
        load_holdout_policy(model_dir),
        info,
        params,
        truth=(
            pd.read_parquet(truth_path)
            if truth_path is not None and truth_path.is_file()
            else None
        ),
        known=known_abuser_rows(features_dir, params.train.known_abusers),
    )
    metrics = result.metrics
    # The version the export stage registers is the shipped model's (the folder's top
    # level), so that is the id compared with the champion's.
    gate = judge(
        metrics, result.test, model_version(model_dir), params.registry,
        top_share=params.evaluate.top_share, max_fpr=params.evaluate.max_fpr,
    )
    # The gate depends on the registry's state, not only on data and params, so it stays
    # out of the metrics files (which must repeat byte for byte) and lives in gate.json.
    write_json(nest(headline(metrics)), metrics_file)
    write_json(nest(metrics), evaluation_file)
    write_json(gate, reports_dir / GATE_FILE)
    for name, (roc, pr) in result.curves.items():
        write_plot_csv(roc, plots_dir / f"roc_{name}.csv")
        write_plot_csv(pr, plots_dir / f"pr_{name}.csv")
    write_plot_csv(result.reliability.round(6), plots_dir / "calibration.csv")
    consistency = read_json(consistency_file) if consistency_file.is_file() else {}
    _write_report(result, params, info, gate, consistency, reports_dir / REPORT_FILE)
    _log_run(info, [metrics_file, evaluation_file, reports_dir / REPORT_FILE,
                    reports_dir / GATE_FILE], plots_dir, metrics)
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
    from refundguard.reporting import html as report

    log.info("%s", report.plain_verdict(metrics))
    return metrics


def _write_report(
    result: Evaluation,
    params: Params,
    info: TrainingInfo,
    gate: dict[str, Any],
    consistency: dict[str, Any],
    path: Path,
) -> None:
    """The self-contained HTML report."""
    from refundguard.reporting import html as report

    html = report.render(
        report.ReportData(
            metrics=result.metrics,
            curves=result.curves,
            reliability=result.reliability,
            scores=result.score_frame,
            bounds=result.bounds,
            importance=result.importance,
            catalog={f.name: f for f in build_catalog(params.features)},
            gate=gate,
            info=info.to_dict(),
            consistency=consistency,
        ),
        lang=params.evaluate.report_lang,
        timezone=params.base.timezone,
    )
    write_text(html, path)


def _log_run(
    info: TrainingInfo, files: list[Path], plots_dir: Path, metrics: dict[str, float]
) -> None:
    """The test figures and the written files, on the training run."""
    import mlflow

    from refundguard.model import tracking

    tracking.start()
    with mlflow.start_run(run_id=info.run_id):
        mlflow.log_metrics({f"test.{k}": v for k, v in metrics.items() if math.isfinite(v)})
        for file in files:
            mlflow.log_artifact(str(file))
        mlflow.log_artifacts(str(plots_dir), artifact_path="plots")
