"""Export stage: the scorer folder, the ONNX pair and a registry version."""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import pandas as pd

from refundguard import __version__
from refundguard.config import load_params
from refundguard.data.io import read_json, write_json
from refundguard.errors import ModelError
from refundguard.features.catalog import build_catalog, catalog_version
from refundguard.model.train import TRAINING_FILE, split_from_info
from refundguard.paths import (
    FEATURES_DIR,
    METRICS_FILE,
    MODEL_DIR,
    PARAMS_FILE,
    SCORER_DIR,
    SENTIMENT_MODEL_DIR,
)
from refundguard.serving.export import (
    GATE_FILE,
    ONNX_DIR,
    PACKAGE_DIR,
    REGISTRY_FILE,
    model_artifacts,
    model_version,
    pinned_requirements,
    publish,
    scorer_config,
    serving_code,
)
from refundguard.serving.scorer import ARTIFACTS, Scorer

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
    import mlflow
    from mlflow.models import ModelSignature, infer_signature

    from refundguard.serving.onnx import write_onnx

    params = load_params(params_path)
    training = read_json(model_dir / TRAINING_FILE)
    fp = params.features
    if training["catalog_version"] != catalog_version(build_catalog(fp)):
        raise ModelError("features params changed since training; run `dvc repro` again")
    files = model_artifacts(model_dir)
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise ModelError(f"{missing[0]}: missing; run the train stage again (`dvc repro`)")
    version = model_version(files)
    metrics = read_json(metrics_file) if metrics_file.is_file() else {}
    with tempfile.TemporaryDirectory(dir=out_dir.parent if out_dir.parent.exists() else None) as t:
        tmp = Path(t)
        config_file = tmp / ARTIFACTS["scorer"]
        config = scorer_config(
            training,
            {
                "windows_days": list(fp.windows_days),
                "fast_refund_hours": fp.fast_refund_hours,
                "active_days": fp.active_days,
                "link_max_accounts": fp.link_max_accounts,
            },
            metrics,
            params.base.timezone,
            version=version,
        )
        write_json(config, config_file)
        artifacts = {k: str(v) for k, v in files.items()}
        artifacts["scorer"] = str(config_file)
        if sentiment_dir.is_dir():
            artifacts["sentiment"] = str(sentiment_dir)
        scorer = Scorer.from_artifacts(artifacts)
        snapshots = pd.read_parquet(features_dir / "snapshots.parquet")
        test_cutoffs = list(split_from_info(training).test)
        example = snapshots[snapshots["cutoff"].isin(test_cutoffs)].head(5)
        example = example.loc[:, ["buyer_id", *scorer.features]].reset_index(drop=True)
        with warnings.catch_warnings():
            # risk_score is an integer on purpose; it is never missing.
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
            # "reasons" is a request parameter: {"params": {"reasons": false}} skips them.
            signature = infer_signature(example, scorer.score(example), params={"reasons": True})
        # No input schema: MLflow would check requests before the scorer does, with
        # messages that repeat the whole request and schema (3,400+ characters for a
        # missing column) and silently dropping extra columns; the scorer's own checks
        # name the column and the problem in one line.
        signature = ModelSignature(
            inputs=None, outputs=signature.outputs, params=signature.params
        )
        staged = tmp / "scorer"
        mlflow.pyfunc.save_model(
            path=str(staged),
            python_model=str(PACKAGE_DIR / "serving" / "pyfunc.py"),
            artifacts=artifacts,
            code_paths=[str(serving_code(tmp / "code"))],
            signature=signature,
            input_example=example,
            pip_requirements=pinned_requirements(),
            metadata={
                "model_version": version,
                "catalog_version": training["catalog_version"],
                "data_hash": training.get("data_hash"),
                "git_commit": training.get("git_commit"),
            },
        )
        staged_onnx = write_onnx(
            scorer.booster,
            scorer.features,
            scorer.calibrator.to_dict(),
            scorer.bounds,
            tmp / "onnx",
            model_version=version,
            catalog_version=training["catalog_version"],
        )
        for staged_dir, dest in ((staged, out_dir), (staged_onnx, onnx_dir)):
            if dest.exists():
                shutil.rmtree(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staged_dir), str(dest))
    log.info("exported scorer %s to %s and %s", version, out_dir, onnx_dir)
    if registry_file is not None:
        report = publish(
            out_dir,
            name=params.registry.name,
            gate_file=gate_file,
            tags={
                "model_version": version,
                "catalog_version": str(training["catalog_version"]),
                "data_hash": str(training.get("data_hash")),
                "git_commit": str(training.get("git_commit")),
                "train_run_id": str(training.get("run_id")),
                "refundguard_version": __version__,
            },
            source_run_id=training.get("run_id"),
        )
        write_json(report, registry_file)
    return out_dir
