"""Consistency stage: check every feature's meaning across cutoffs and record what to drop."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from refundguard.config import load_params
from refundguard.data.io import read_json, write_json
from refundguard.errors import DataContractError
from refundguard.model.consistency import (
    CONSISTENCY_DIR,
    CONSISTENCY_FILE,
    ConsistencyReport,
    check_snapshots,
)
from refundguard.paths import FEATURES_DIR, MANIFEST_FILE_NAME, PARAMS_FILE, SNAPSHOTS_FILE_NAME

log = logging.getLogger(__name__)


def main(
    params_path: Path = PARAMS_FILE,
    features_dir: Path = FEATURES_DIR,
    out_dir: Path = CONSISTENCY_DIR,
) -> ConsistencyReport:
    """Check every feature's time consistency and write the verdicts.

    Args:
        params_path: params.yaml.
        features_dir: The features stage's folder.
        out_dir: Destination of ``consistency.json``.

    Returns:
        The report.
    """
    params = load_params(params_path)
    snapshots = pd.read_parquet(features_dir / SNAPSHOTS_FILE_NAME)
    manifest = read_json(features_dir / MANIFEST_FILE_NAME)
    horizon = manifest.get("horizon", {}).get("days") or params.base.horizon_days
    if horizon is None:
        raise DataContractError(
            "the features manifest records no label horizon; re-run the features stage"
        )
    report, dropped = check_snapshots(
        snapshots, manifest["features"], horizon_days=int(horizon), train=params.train,
        params=params.consistency, seed=params.base.seed,
    )
    write_json(
        {**report.to_dict(), "enabled": params.consistency.enabled, "dropped": dropped},
        out_dir / CONSISTENCY_FILE,
    )
    log.info(
        "consistency: %d of %d features drift without their signal carrying over%s "
        "(early vs late adversarial AUC %.3f)",
        len(report.failed()), len(report.checks),
        f"; left out: {', '.join(dropped)}" if dropped else "",
        report.adversarial_auc,
    )
    return report
