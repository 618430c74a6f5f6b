"""File locations, all rooted at the project root.

The root is the checkout that holds this package (``src/refundguard`` sits two levels
below it). Set ``REFUNDGUARD_ROOT`` to run the pipeline in another folder, as the
end-to-end test does. Nothing here touches the disk: these are only names.
"""

from __future__ import annotations

import os
from pathlib import Path


def _default_root() -> Path:
    env = os.environ.get("REFUNDGUARD_ROOT")
    if env:
        return Path(env).resolve()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        return checkout
    # Installed from a wheel: there is no checkout, so the working folder is the project.
    return Path.cwd().resolve()


PROJECT_ROOT: Path = _default_root()
PARAMS_FILE: Path = PROJECT_ROOT / "params.yaml"

DATA_DIR: Path = PROJECT_ROOT / "data"
SIMULATED_DIR: Path = DATA_DIR / "simulated"
VALIDATED_DIR: Path = DATA_DIR / "validated"
SENTIMENT_DIR: Path = DATA_DIR / "sentiment"
FEATURES_DIR: Path = DATA_DIR / "features"
TRUTH_FILE_NAME: str = "truth.parquet"

MODELS_DIR: Path = PROJECT_ROOT / "models"
SENTIMENT_MODEL_DIR: Path = MODELS_DIR / "sentiment"
MODEL_DIR: Path = MODELS_DIR / "model"
SCORER_DIR: Path = MODELS_DIR / "scorer"

REPORTS_DIR: Path = PROJECT_ROOT / "reports"
METRICS_FILE: Path = REPORTS_DIR / "metrics.json"
PLOTS_DIR: Path = REPORTS_DIR / "plots"

MLFLOW_DB: Path = PROJECT_ROOT / "mlflow.db"
MLFLOW_ARTIFACTS_DIR: Path = PROJECT_ROOT / "mlartifacts"
MLFLOW_TRACKING_URI: str = f"sqlite:///{MLFLOW_DB}"
