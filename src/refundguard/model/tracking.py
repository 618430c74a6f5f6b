"""MLflow set-up for the stage shells: a SQLite store at the project root by default."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from refundguard.errors import ConfigError
from refundguard.paths import MLFLOW_ARTIFACTS_DIR, MLFLOW_TRACKING_URI, PROJECT_ROOT

EXPERIMENT = "refundguard"


# MLflow 3's UI opens a GenAI "Traces" page for an experiment without a kind; this kind
# ("custom model development") opens it on the runs table, where refundguard's runs are.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


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
        exp_id = mlflow.create_experiment(
            experiment, artifact_location=artifact_root(uri), tags=EXPERIMENT_TAGS
        )
    else:
        check_artifact_location(uri, experiment, found.artifact_location)
        exp_id = found.experiment_id
        # Stores made before the kind tag existed get it too.
        for key, value in EXPERIMENT_TAGS.items():
            if found.tags.get(key) != value:
                mlflow.MlflowClient(uri).set_experiment_tag(exp_id, key, value)
    mlflow.set_experiment(experiment_id=exp_id)
    return str(exp_id)


def check_artifact_location(uri: str, experiment: str, location: str) -> None:
    """Refuse a store whose experiment keeps its artifacts outside this project.

    A SQLite store copied with its project (or a project moved to another folder) still
    names the old folder's ``mlartifacts``: runs would write there, out of the project.

    Args:
        uri: Tracking URI.
        experiment: Experiment name.
        location: The experiment's artifact location as the store records it.

    Raises:
        ConfigError: The location is a local folder other than the one beside the store.
    """
    expected = artifact_root(uri)
    if expected is None or not location.startswith("file:"):
        return
    if _local_path(location) != _local_path(expected):
        raise ConfigError(
            f"MLflow store {uri}: experiment {experiment!r} keeps its artifacts in {location}, "
            f"not beside the store ({expected}); the store was copied or moved from another "
            "folder: remove mlflow.db and mlartifacts/ here, or set MLFLOW_TRACKING_URI"
        )


def _local_path(file_uri: str) -> Path:
    from urllib.parse import unquote, urlparse

    return Path(unquote(urlparse(file_uri).path)).resolve()


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
