"""File locations, all rooted at the project root.

The project root is the folder the user works in, found as git and DVC find theirs:
walk up from the working folder to the first folder that holds ``params.yaml``. Set
``REFUNDGUARD_ROOT`` to name the root explicitly. So a copied project, a second clone
sharing one virtualenv, or ``dvc exp run --temp`` each read and write their own data,
models and MLflow store, never those of the checkout that holds the installed code.

When no folder holds ``params.yaml``, the names below are rooted at the working folder
and :data:`PROJECT_FOUND` is False; :func:`require_project` turns that into a
:class:`~refundguard.errors.ConfigError` for the commands that need a project. Nothing
here touches the disk but reading the folder tree: these are only names, computed once
at import, which is when a command starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from refundguard.errors import ConfigError

ROOT_ENV = "REFUNDGUARD_ROOT"
PARAMS_FILE_NAME = "params.yaml"


def find_root(start: Path, environ: Mapping[str, str] | None = None) -> Path | None:
    """The project root seen from a folder, or None when there is none.

    Args:
        start: Folder to look from (the working folder, for a command).
        environ: Environment to read ``REFUNDGUARD_ROOT`` from; default ``os.environ``.

    Returns:
        ``REFUNDGUARD_ROOT`` resolved, when set; else the first of ``start`` and its
        parents that holds ``params.yaml``; else None.
    """
    env = (os.environ if environ is None else environ).get(ROOT_ENV)
    if env:
        return Path(env).resolve()
    here = start.resolve()
    for folder in (here, *here.parents):
        if (folder / PARAMS_FILE_NAME).is_file():
            return folder
    return None


def missing_project_message(start: Path) -> str:
    """The one-line error for a command run outside any project.

    Args:
        start: The folder the search began in.

    Returns:
        The message.
    """
    return (
        f"no {PARAMS_FILE_NAME} in {start.resolve()} or any folder above it: run refundguard "
        f"inside a project folder (one holding {PARAMS_FILE_NAME} and dvc.yaml), or set "
        f"{ROOT_ENV} to one"
    )


_FOUND_ROOT = find_root(Path.cwd())
PROJECT_FOUND: bool = _FOUND_ROOT is not None
# Outside a project the names still need a home; the working folder is where a command
# that needs no project (score, model info) looks for its relative paths anyway.
PROJECT_ROOT: Path = _FOUND_ROOT if _FOUND_ROOT is not None else Path.cwd().resolve()
PARAMS_FILE: Path = PROJECT_ROOT / PARAMS_FILE_NAME

DATA_DIR: Path = PROJECT_ROOT / "data"
SIMULATED_DIR: Path = DATA_DIR / "simulated"
VALIDATED_DIR: Path = DATA_DIR / "validated"
SENTIMENT_DIR: Path = DATA_DIR / "sentiment"
FEATURES_DIR: Path = DATA_DIR / "features"
CONSISTENCY_DIR: Path = DATA_DIR / "consistency"

# File names inside those folders, one definition each for writer and readers.
# simulate: the world's hidden truth (segment, is_abuser) next to the contract tables.
TRUTH_FILE_NAME: str = "truth.parquet"
# validate: every validated table is ``<table><VALIDATED_TABLE_SUFFIX>``, with these two.
VALIDATED_TABLE_SUFFIX: str = ".parquet"
QUARANTINE_FILE_NAME: str = "quarantine.csv"
VALIDATION_REPORT_FILE_NAME: str = "report.json"
# sentiment: one score per review.
REVIEW_SENTIMENT_FILE_NAME: str = "review_sentiment.parquet"
# features: the snapshot table and its manifest (catalog version, features, cutoffs).
SNAPSHOTS_FILE_NAME: str = "snapshots.parquet"
# Rows of buyers already labeled abusers at each cutoff (same columns as the snapshots):
# extra positives for training (train.known_abusers), never scored or evaluated.
KNOWN_ABUSERS_FILE_NAME: str = "known_abusers.parquet"
MANIFEST_FILE_NAME: str = "manifest.json"
# consistency: the time-consistency check.
CONSISTENCY_FILE_NAME: str = "consistency.json"

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


def require_project(params_path: Path | None = None) -> None:
    """Refuse to run a pipeline stage outside a project.

    Args:
        params_path: The params file the command was given; a file the user named
            explicitly (not the default) is enough to run with.

    Raises:
        ConfigError: No project was found and no params file was named.
    """
    if PROJECT_FOUND:
        return
    if params_path is not None and Path(params_path) != PARAMS_FILE:
        return
    raise ConfigError(missing_project_message(Path.cwd()))
