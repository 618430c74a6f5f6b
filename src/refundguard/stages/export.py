"""Export stage: the scorer folder, the ONNX pair and a registry version."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from refundguard.config import load_params
from refundguard.data.io import read_json, write_json
from refundguard.model.bundle import load_training_info, model_files
from refundguard.paths import (
    FEATURES_DIR,
    METRICS_FILE,
    MODEL_DIR,
    PARAMS_FILE,
    SCORER_DIR,
    SENTIMENT_MODEL_DIR,
    SNAPSHOTS_FILE_NAME,
)
from refundguard.serving.export import (
    GATE_FILE,
    ONNX_DIR,
    REGISTRY_FILE,
    check_model,
    publish,
    registry_tags,
    stage_scorer,
)

log = logging.getLogger(__name__)


def main(
    params_path: Path = PARAMS_FILE,
    model_dir: Path = MODEL_DIR,
    features_dir: Path = FEATURES_DIR,
    sentiment_dir: Path = SENTIMENT_MODEL_DIR,
    metrics_file: Path = METRICS_FILE,
    out_dir: Path = SCORER_DIR,
    onnx_dir: Path = ONNX_DIR,
    gate_file: Path = GATE_FILE,
    registry_file: Path | None = REGISTRY_FILE,
) -> Path:
    """Write models/scorer and models/onnx, then register the scorer.

    Args:
        params_path: params.yaml.
        model_dir: The train stage's folder.
        features_dir: The features stage's folder (for the input example).
        sentiment_dir: The sentiment model's folder.
        metrics_file: The evaluate stage's headline metrics, recorded in scorer.json.
        out_dir: Destination of the scorer; replaced whole, only once the new one is complete.
        onnx_dir: Destination of model.onnx and spec.json; replaced the same way.
        gate_file: The evaluate stage's champion/challenger decision.
        registry_file: Where to record the registry version; None skips registering.

    Returns:
        The scorer folder.

    Raises:
        ModelError: The trained model was built with a different feature catalog, or a
            model file is missing.
    """
    params = load_params(params_path)
    info = load_training_info(model_dir)
    files = model_files(model_dir)
    check_model(info, files, params.features)
    metrics = read_json(metrics_file) if metrics_file.is_file() else {}
    with tempfile.TemporaryDirectory(dir=out_dir.parent if out_dir.parent.exists() else None) as t:
        staged = stage_scorer(
            Path(t),
            info,
            files,
            pd.read_parquet(features_dir / SNAPSHOTS_FILE_NAME),
            params.features,
            metrics=metrics,
            timezone=params.base.timezone,
            sentiment_dir=sentiment_dir if sentiment_dir.is_dir() else None,
        )
        for staged_dir, dest in ((staged.scorer_dir, out_dir), (staged.onnx_dir, onnx_dir)):
            if dest.exists():
                shutil.rmtree(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staged_dir), str(dest))
    log.info("exported scorer %s to %s and %s", staged.version, out_dir, onnx_dir)
    if registry_file is not None:
        report = publish(
            out_dir,
            name=params.registry.name,
            gate_file=gate_file,
            tags=registry_tags(info, staged.version),
            source_run_id=info.run_id,
        )
        write_json(report, registry_file)
    return out_dir
