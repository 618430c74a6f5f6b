"""The MLflow Model Registry: exported scorers as versions, with champion/challenger aliases.

The registry lives in the project's tracking store (:func:`refundguard.tracking.tracking_uri`,
SQLite by default). The export stage registers each new scorer folder as a version of
``registry.name`` and points ``@champion`` or ``@challenger`` at it, as the gate decides;
services load ``models:/refundguard@champion``.

Only :func:`gate` and :func:`parse_uri` are pure; the rest talk to the store. Importing
this module does not import MLflow or touch the store.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from refundguard.contract.vocabulary import TIERS
from refundguard.errors import ModelError
from refundguard.model import tracking
from refundguard.model.bundle import POLICY_FILE, SCORER_FILE

if TYPE_CHECKING:
    from mlflow import MlflowClient


CHAMPION = "champion"


CHALLENGER = "challenger"


DECISIONS = (CHAMPION, CHALLENGER)


# Version tag holding the scorer's content id; a re-export of the same model is skipped.
MODEL_VERSION_TAG = "model_version"


_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+|latest))$")


def gate(candidate: float, champion: float | None, min_improvement: float) -> str:
    """Champion or challenger: does the candidate beat the champion on the same test window?

    Args:
        candidate: The candidate's metric (higher is better).
        champion: The current champion's metric on the same rows, or None if there is no
            champion.
        min_improvement: Margin the candidate must exceed; a tie is not an improvement.

    Returns:
        "champion" if there is no champion or ``candidate > champion + min_improvement``,
        else "challenger". A NaN metric cannot prove an improvement: "challenger".

    Raises:
        ValueError: ``min_improvement`` is not a finite number.
    """
    if not math.isfinite(min_improvement):
        raise ValueError(f"min_improvement must be a finite number, got {min_improvement!r}")
    if champion is None:
        return CHAMPION
    if math.isnan(candidate) or math.isnan(champion):
        return CHALLENGER
    return CHAMPION if candidate > champion + min_improvement else CHALLENGER


def parse_uri(uri: str) -> tuple[str, str | None, str | None]:
    """Split a registry URI into model name, alias and version.

    Args:
        uri: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``models:/NAME/latest``.

    Returns:
        (name, alias, version); exactly one of alias and version is set.

    Raises:
        ModelError: Not a registry URI of these forms.
    """
    match = _URI.match(uri.strip())
    if match is None:
        raise ModelError(
            f"{uri!r} is not a registry URI (expected models:/NAME@ALIAS or models:/NAME/VERSION)"
        )
    return match["name"], match["alias"], match["version"]


def _client() -> MlflowClient:
    from mlflow import MlflowClient

    uri = tracking.tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _missing_store() -> Path | None:
    """The SQLite file of the store if it does not exist yet (opening it would create it)."""
    uri = tracking.tracking_uri()
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        if not db.is_file():
            return db
    return None


def _not_found(exc: Exception) -> bool:
    # MLflow answers "no such alias" with INVALID_PARAMETER_VALUE, "no such model or
    # version" with RESOURCE_DOES_NOT_EXIST.
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def _local_folder(client: MlflowClient, name: str, version: str) -> Path:
    """The version's files as a local folder: in place for a local store, else downloaded."""
    import mlflow

    source = client.get_model_version_download_uri(name, version)
    parsed = urlparse(source)
    if parsed.scheme in ("", "file"):
        local = Path(unquote(parsed.path))
        if local.is_dir():
            return local
    uri = tracking.tracking_uri()
    return Path(
        mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=uri, registry_uri=uri)
    )


def alias_version(name: str, alias: str) -> str | None:
    """The registry version an alias points at.

    Args:
        name: Registered model name.
        alias: Alias such as "champion".

    Returns:
        The version, or None if the model or the alias does not exist.
    """
    from mlflow.exceptions import MlflowException

    if _missing_store() is not None:
        return None
    try:
        return str(_client().get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise


def load_alias(name: str, alias: str) -> tuple[Path, str] | None:
    """The local scorer folder and registry version behind an alias.

    Args:
        name: Registered model name.
        alias: Alias such as "champion".

    Returns:
        (folder, version), or None if the model or the alias does not exist.
    """
    version = alias_version(name, alias)
    if version is None:
        return None
    return _local_folder(_client(), name, version), version


def resolve(uri: str) -> tuple[Path, str, str]:
    """A registry URI's local folder, model name and version.

    Args:
        uri: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``models:/NAME/latest``.

    Returns:
        (folder, name, version).

    Raises:
        ModelError: A malformed URI, or no such model, alias or version in the registry.
    """
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_uri(uri)
    db = _missing_store()
    if db is not None:
        raise ModelError(f"{uri}: no model registry at {db} (run the pipeline, or set "
                         "MLFLOW_TRACKING_URI)")
    client = _client()
    try:
        if alias is not None:
            version = str(client.get_model_version_by_alias(name, alias).version)
        elif version == "latest":
            newest = _newest(client, name)
            if newest is None:
                raise ModelError(f"{uri}: no versions of model {name!r} in the registry")
            version = str(newest.version)
        else:
            client.get_model_version(name, str(version))
    except MlflowException as exc:
        if _not_found(exc):
            what = f"alias @{alias}" if alias is not None else f"version {version}"
            raise ModelError(
                f"{uri}: no {what} of model {name!r} in the registry at "
                f"{tracking.tracking_uri()}"
            ) from exc
        raise
    return _local_folder(client, name, str(version)), name, str(version)


def resolve_uri(uri: str) -> Path:
    """Turn ``models:/refundguard@champion`` (or ``models:/NAME/3``) into a scorer folder.

    Args:
        uri: The registry URI.

    Returns:
        A local folder laid out as the export stage writes it (MLmodel, artifacts/).

    Raises:
        ModelError: A malformed URI, or no such model, alias or version in the registry.
    """
    return resolve(uri)[0]


def aliases(name: str) -> dict[str, str]:
    """Every alias of a registered model.

    Args:
        name: Registered model name.

    Returns:
        {alias: version}; empty if the model does not exist.
    """
    from mlflow.exceptions import MlflowException

    if _missing_store() is not None:
        return {}
    try:
        model = _client().get_registered_model(name)
    except MlflowException as exc:
        if _not_found(exc):
            return {}
        raise
    return {str(k): str(v) for k, v in model.aliases.items()}


def _newest(client: MlflowClient, name: str) -> Any | None:
    found = client.search_model_versions(f"name='{name}'")
    return max(found, key=lambda v: int(v.version)) if found else None


def newest_version(name: str) -> str | None:
    """The highest version number of a registered model.

    Args:
        name: Registered model name.

    Returns:
        The version, or None if the model has none (or does not exist).
    """
    if _missing_store() is not None:
        return None
    newest = _newest(_client(), name)
    return None if newest is None else str(newest.version)


def _experiment_id(client: MlflowClient) -> str:
    found = client.get_experiment_by_name(tracking.EXPERIMENT)
    if found is not None:
        # A copied or moved store would register into the old project's artifacts.
        tracking.check_artifact_location(
            tracking.tracking_uri(), tracking.EXPERIMENT, found.artifact_location
        )
        return str(found.experiment_id)
    uri = tracking.tracking_uri()
    return str(
        client.create_experiment(
            tracking.EXPERIMENT,
            artifact_location=tracking.artifact_root(uri),
            tags=tracking.EXPERIMENT_TAGS,
        )
    )


def _run_in_store(client: MlflowClient, run_id: str | None) -> str | None:
    """``run_id`` if this store holds that run, else None."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        client.get_run(run_id)
    except MlflowException:
        return None
    return run_id


def register(
    scorer_dir: Path,
    decision: str,
    name: str,
    tags: dict[str, str],
    *,
    source_run_id: str | None = None,
) -> str:
    """Register a scorer folder as a new model version and point an alias at it.

    The folder's files are logged as-is to an "export" run (no model is re-saved) and
    that copy becomes the version's source. The version's run is the training run that
    produced the model (``source_run_id``), so the registry links to its params and
    metrics; without one, or when this store does not hold it, the export run. If the
    newest version already carries the same ``model_version`` tag, nothing is registered
    and its version is returned, so re-running the stage adds no duplicates; the alias is
    then set only if that version holds none yet.

    Args:
        scorer_dir: A folder written by the export stage.
        decision: "champion" or "challenger": the alias to set.
        name: Registered model name.
        tags: Version tags; ``model_version`` identifies the model's content.
        source_run_id: The training run (training.json's ``run_id``).

    Returns:
        The registry version.

    Raises:
        ModelError: Not a scorer folder, or an unknown decision.
    """
    from mlflow.exceptions import MlflowException

    if decision not in DECISIONS:
        raise ModelError(f"registry decision must be one of {list(DECISIONS)}, got {decision!r}")
    if not (scorer_dir / "MLmodel").is_file():
        raise ModelError(f"{scorer_dir}: not an exported refundguard scorer (no MLmodel)")
    client = _client()
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    newest = _newest(client, name)
    content_id = tags.get(MODEL_VERSION_TAG)
    if newest is not None and content_id and newest.tags.get(MODEL_VERSION_TAG) == content_id:
        version = str(newest.version)
        if version not in aliases(name).values():
            client.set_registered_model_alias(name, decision, version)
        return version
    run = client.create_run(_experiment_id(client), run_name="export", tags=dict(tags))
    try:
        client.log_artifacts(run.info.run_id, str(scorer_dir), "scorer")
    finally:
        client.set_terminated(run.info.run_id)
    source = f"{client.get_run(run.info.run_id).info.artifact_uri}/scorer"
    run_id = _run_in_store(client, source_run_id) or run.info.run_id
    created = client.create_model_version(name, source, run_id=run_id, tags=dict(tags))
    version = str(created.version)
    client.set_registered_model_alias(name, decision, version)
    return version


def fallback_gate(name: str) -> dict[str, Any]:
    """The gate when the evaluate stage wrote no reports/gate.json.

    Without the two models' metrics on the same test window nothing proves the candidate
    better, so it is champion only when there is no champion yet, else challenger.

    Args:
        name: Registered model name.

    Returns:
        gate.json's fields: metric, candidate and champion (None: not measured),
        champion_version, decision and note.
    """
    current = alias_version(name, CHAMPION)
    return {
        "metric": None,
        "candidate": None,
        "champion": None,
        "champion_version": current,
        "decision": CHAMPION if current is None else CHALLENGER,
        "note": "no gate.json: candidate not compared with the champion",
    }


def read_gate(path: Path, name: str) -> dict[str, Any]:
    """The evaluate stage's gate.json, or :func:`fallback_gate` when there is none.

    Args:
        path: reports/gate.json.
        name: Registered model name.

    Returns:
        metric, candidate, champion, champion_version, decision and note.

    Raises:
        ModelError: The file is unreadable or its decision is unknown.
    """
    if not path.is_file():
        return fallback_gate(name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable gate file ({exc})") from exc
    if not isinstance(data, Mapping) or data.get("decision") not in DECISIONS:
        raise ModelError(f"{path}: 'decision' must be one of {list(DECISIONS)}")
    return {
        "metric": data.get("metric"),
        "candidate": data.get("candidate"),
        "champion": data.get("champion"),
        "champion_version": data.get("champion_version"),
        "decision": data["decision"],
        "note": str(data.get("note") or ""),
    }


def _read_folder(folder: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """scorer.json, MLmodel and the tier policy of a scorer folder, without loading the model."""
    import yaml

    art = folder / "artifacts"
    if not (folder / "MLmodel").is_file() or not (art / SCORER_FILE).is_file():
        raise ModelError(f"{folder}: not an exported refundguard scorer (no MLmodel/scorer.json)")
    try:
        config = json.loads((art / SCORER_FILE).read_text(encoding="utf-8"))
        mlmodel = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8")) or {}
        policy = (
            json.loads((art / POLICY_FILE).read_text(encoding="utf-8"))
            if (art / POLICY_FILE).is_file()
            else {"bounds": config.get("bounds")}
        )
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ModelError(f"{folder}: unreadable scorer description ({exc})") from exc
    if not isinstance(config, dict) or not isinstance(mlmodel, dict):
        raise ModelError(f"{folder}: unreadable scorer description")
    return config, mlmodel, policy


def model_info(target: str | Path) -> dict[str, Any]:
    """What a scorer is: identity, training data, code, params, metrics, catalog, tiers.

    Reads only the folder's JSON and YAML files; loads no model and runs no stored code.

    Args:
        target: A scorer folder, or a registry URI (``models:/refundguard@champion``).

    Returns:
        A JSON-ready description; ``registry`` is set for a registry URI.

    Raises:
        ModelError: Not a scorer folder, or no such model, alias or version.
    """
    registry_info: dict[str, Any] | None = None
    if str(target).startswith("models:/"):
        folder, name, version = resolve(str(target))
        registry_info = {
            "name": name,
            "version": version,
            "aliases": sorted(a for a, v in aliases(name).items() if v == version),
            "tracking_uri": tracking.tracking_uri(),
        }
    else:
        folder = Path(target)
    config, mlmodel, policy = _read_folder(folder)
    meta = config.get("metadata") or {}
    return {
        "source": str(target),
        "folder": str(folder.resolve()),
        "registry": registry_info,
        "model_version": config.get("model_version") or meta.get("model_version"),
        "format": config.get("format"),
        "created_utc": mlmodel.get("utc_time_created"),
        "mlflow_version": mlmodel.get("mlflow_version"),
        "refundguard_version": meta.get("refundguard_version"),
        "catalog_version": config.get("catalog_version"),
        "features": list(config.get("features") or []),
        "timezone": config.get("timezone"),
        "data_hash": meta.get("data_hash"),
        "git_commit": meta.get("git_commit"),
        "run_id": meta.get("run_id"),
        "split": meta.get("split"),
        "params": meta.get("params"),
        "metrics": meta.get("metrics"),
        "bounds": policy.get("bounds"),
    }


def _headline_metrics(metrics: Any) -> dict[str, float]:
    # metrics.json nests the model's test figures under "model"; older files are flat.
    block = metrics.get("model", metrics) if isinstance(metrics, dict) else {}
    return {
        k: float(v)
        for k, v in block.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _flat(prefix: str, value: Any) -> list[str]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _flat(f"{prefix}{k}.", v)]
    return [f"{prefix.rstrip('.')}={value}"]


def info_text(info: dict[str, Any]) -> str:
    """:func:`model_info` as lines a person reads.

    Args:
        info: The description.

    Returns:
        The text, without a final newline.
    """
    reg = info.get("registry")
    where = ""
    if reg:
        tags = "".join(f", @{a}" for a in reg["aliases"])
        where = f"  (models:/{reg['name']}/{reg['version']}{tags})"
    bounds = info.get("bounds") or []
    names = TIERS[1:]  # the bounds start each tier after the first
    tiers = ", ".join(f"{t} from {b:.4g}" for t, b in zip(names, bounds, strict=False))
    metrics = _headline_metrics(info.get("metrics") or {})
    split = info.get("split") or {}
    lines = [
        f"model        {info.get('model_version')}{where}",
        f"folder       {info['folder']}",
        f"created      {info.get('created_utc')} UTC, MLflow {info.get('mlflow_version')}, "
        f"refundguard {info.get('refundguard_version')}",
        f"data hash    {info.get('data_hash')}",
        f"git commit   {info.get('git_commit')}",
        f"mlflow run   {info.get('run_id')}",
        f"features     {len(info.get('features') or [])}, catalog {info.get('catalog_version')}",
        f"test window  {', '.join(split.get('test', [])) or 'unknown'}",
        f"tiers        {tiers or 'unknown'}",
        "metrics      "
        + (", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k not in ("n", "k"))
           or "none recorded"),
        "params       " + (", ".join(_flat("", info.get("params") or {})) or "none recorded"),
    ]
    return "\n".join(lines)
