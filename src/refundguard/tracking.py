"""MLflow set-up for the stage shells: a SQLite store at the project root by default."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from refundguard.paths import MLFLOW_ARTIFACTS_DIR, MLFLOW_TRACKING_URI, PROJECT_ROOT

EXPERIMENT = "refundguard"


def tracking_uri() -> str:
    """The tracking URI: ``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<root>/mlflow.db``.

    Returns:
        The URI, absolute, so that it does not depend on the working folder.
    """
    return os.environ.get("MLFLOW_TRACKING_URI") or MLFLOW_TRACKING_URI


def artifact_root(uri: str) -> str | None:
    """Where a SQLite store keeps artifacts: ``mlartifacts`` beside the database file.

    Args:
        uri: Tracking URI.

    Returns:
        A file URI for SQLite stores; None (the server's default) for other stores.
    """
    if uri == MLFLOW_TRACKING_URI:
        return MLFLOW_ARTIFACTS_DIR.as_uri()
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    return None


def start(experiment: str = EXPERIMENT) -> str:
    """Point MLflow at the store and select the experiment, creating it if needed.

    Args:
        experiment: Experiment name.

    Returns:
        The experiment id.
    """
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        exp_id = mlflow.create_experiment(experiment, artifact_location=artifact_root(uri))
    else:
        exp_id = found.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return str(exp_id)


def git_commit(root: Path = PROJECT_ROOT) -> str:
    """The checked-out commit, with "+dirty" if the tree has changes; "unknown" outside git.

    Args:
        root: Repository folder.

    Returns:
        The commit description.
    """
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


def files_hash(paths: Iterable[Path]) -> str:
    """SHA-256 over the bytes of files (sorted by path), for a data version tag.

    Args:
        paths: Files to hash; missing ones are skipped.

    Returns:
        Hex digest.
    """
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        if p.is_file():
            h.update(p.name.encode())
            with p.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()
