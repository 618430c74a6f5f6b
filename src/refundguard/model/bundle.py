"""The model folder: its files, what training.json says, and how it is saved and read.

The train stage writes one folder (``models/model``)::

    model.txt          LightGBM's text model (the shipped booster)
    calibration.json   the calibrator
    policy.json        the tier bounds
    reference.json     each feature's reference quantiles (for the reasons)
    training.json      the run's facts (:class:`TrainingInfo`)
    demand/            the review demand model trained on the data before the last
                       training cutoff, and the user's extortion lexicon if any
    holdout/           the same files for the held-out model the evaluation judges

The exported scorer carries the first four under the same names (:data:`MODEL_ARTIFACTS`),
with its own ``scorer.json``, the sentiment model and the demand folder (:data:`ARTIFACTS`);
the content id over those four files (:func:`content_id`) is the model's version everywhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from refundguard.config import LightGBMParams
from refundguard.data.io import atomic_path, read_json, write_json
from refundguard.errors import ModelError
from refundguard.features.timesplit import ROLES, TimeSplit
from refundguard.model.calibration import Calibrator
from refundguard.model.policy import PolicyChoice

MODEL_FILE = "model.txt"


CALIBRATION_FILE = "calibration.json"


POLICY_FILE = "policy.json"


REFERENCE_FILE = "reference.json"


TRAINING_FILE = "training.json"


# The held-out model (trained on the train cutoffs only) that the evaluate stage judges;
# the folder's top level holds the shipped model, refit on every complete cutoff.
HOLDOUT_DIR = "holdout"


SCORER_FILE = "scorer.json"


SENTIMENT_DIR = "sentiment"


# The review demand model (and the user's lexicon): written by the features stage, copied
# here by the train stage, read by the scorer
# (:func:`refundguard.features.extortion.load_review_models`).
DEMAND_DIR = "demand"


# The model folder's files that a scorer needs, by artifact role; the content id is
# computed over exactly these.
MODEL_ARTIFACTS: Mapping[str, str] = {
    "booster": MODEL_FILE,
    "calibration": CALIBRATION_FILE,
    "policy": POLICY_FILE,
    "reference": REFERENCE_FILE,
}


# The files of an exported scorer folder's artifacts/, by role: the model's files, the
# scorer's own description (written by export) and the sentiment model's folder.
ARTIFACTS: Mapping[str, str] = {
    **MODEL_ARTIFACTS,
    "scorer": SCORER_FILE,
    "sentiment": SENTIMENT_DIR,
    "demand": DEMAND_DIR,
}


@dataclass(frozen=True)
class TrainedModel:
    """A fitted booster and its calibrator.

    Attributes:
        booster: The LightGBM booster, cut at its best iteration.
        calibrator: Map from the booster's probability to a calibrated one.
        features: Feature columns in the booster's order.
        best_iteration: Boosting rounds kept.
        valid_metrics: Ranking metrics of the raw booster on the validation rows.
        calibration_scores: Brier score of each calibration method tried (cross-validated
            inside the calibration window), empty when the method was fixed.
    """

    booster: lgb.Booster
    calibrator: Calibrator
    features: tuple[str, ...]
    best_iteration: int
    valid_metrics: dict[str, float]
    calibration_scores: dict[str, float] = field(default_factory=dict)

    def raw(self, frame: pd.DataFrame) -> np.ndarray:
        """The booster's uncalibrated probabilities.

        Args:
            frame: Rows holding every feature column.

        Returns:
            One probability per row.
        """
        x = frame.loc[:, list(self.features)].to_numpy(dtype="float64")
        return np.asarray(self.booster.predict(x))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities for feature rows.

        Args:
            frame: Rows holding every feature column.

        Returns:
            One probability per row.
        """
        return self.calibrator.predict(self.raw(frame))


@dataclass(frozen=True)
class TrainingInfo:
    """training.json: the facts of the training run, for the later stages and the scorer.

    The shipped and the held-out folder hold the same run facts; ``features`` to
    ``calibration_brier`` describe the folder's own model (:meth:`for_model`).

    Attributes:
        run_id: The MLflow training run.
        catalog_version: Fingerprint of the feature catalog the model was trained with.
        split: The time split's cutoffs by role (ISO strings, see :meth:`time_split`).
        horizon_days: H, the label horizon.
        params: ``{"lightgbm": {...}, "seed": n, "calibration": method}`` as trained.
        features: Feature columns in the booster's order.
        best_iteration: Boosting rounds of this folder's booster.
        git_commit: The code's commit.
        data_hash: Hash of the validated tables.
        period_days: Days between cutoffs (one scoring period).
        horizon: How H was found (``{"days": n, "source": "data" | "params"}``).
        valid_metrics: The held-out booster's ranking metrics on the validation rows.
        ships: "refit" or "holdout": which booster the folder's top level holds.
        holdout: Rounds, rows, cutoffs and calibration of the held-out model.
        shipped: The same for the refit (empty when the held-out booster ships).
        dropped_features: Features the time-consistency check left out.
        tuning: Folds, trials, whether time ran out, the best trial's rolling AP.
        reweight: The reweighting check (mode, AP of each choice, ``reweighted``).
        monotone_increasing: Features constrained to raise the risk.
        calibration_method: This folder's calibration method.
        calibration_brier: Cross-validated Brier score of each method tried.
    """

    run_id: str
    catalog_version: str
    split: Mapping[str, Sequence[str]]
    horizon_days: int
    params: Mapping[str, Any]
    features: tuple[str, ...] = ()
    best_iteration: int = 0
    git_commit: str | None = None
    data_hash: str | None = None
    period_days: int = 28
    horizon: Mapping[str, Any] = field(default_factory=dict)
    valid_metrics: Mapping[str, float] = field(default_factory=dict)
    ships: str = "holdout"
    holdout: Mapping[str, Any] = field(default_factory=dict)
    shipped: Mapping[str, Any] = field(default_factory=dict)
    dropped_features: tuple[str, ...] = ()
    tuning: Mapping[str, Any] = field(default_factory=dict)
    reweight: Mapping[str, Any] = field(default_factory=dict)
    monotone_increasing: tuple[str, ...] = ()
    calibration_method: str = ""
    calibration_brier: Mapping[str, float] = field(default_factory=dict)

    # Keys a training.json must hold; the rest were added over time and default.
    REQUIRED = (
        "run_id", "catalog_version", "split", "horizon_days", "params", "features",
        "best_iteration",
    )

    def to_dict(self) -> dict[str, Any]:
        """training.json's content (the same keys the train stage has always written).

        Returns:
            A JSON-ready mapping.
        """
        out = dataclasses.asdict(self)
        for key in ("features", "dropped_features", "monotone_increasing"):
            out[key] = list(out[key])
        out["split"] = {role: list(cutoffs) for role, cutoffs in self.split.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = TRAINING_FILE) -> TrainingInfo:
        """Read parsed training.json.

        Args:
            data: The parsed file.
            source: Where it came from, for the error message.

        Returns:
            The facts.

        Raises:
            ModelError: A required key is missing, or the content is not a mapping.
        """
        if not isinstance(data, Mapping):
            raise ModelError(f"{source}: not a JSON object; run the train stage again")
        missing = [k for k in cls.REQUIRED if k not in data]
        if missing:
            raise ModelError(
                f"{source}: missing {', '.join(missing)}; run the train stage again "
                "(`dvc repro`)"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known and v is not None}
        for key in ("features", "dropped_features", "monotone_increasing"):
            if key in values:
                values[key] = tuple(values[key])
        for key in ("horizon_days", "best_iteration", "period_days"):
            if key in values:
                values[key] = int(values[key])
        values["git_commit"] = data.get("git_commit")
        values["data_hash"] = data.get("data_hash")
        return cls(**values)

    def for_model(self, model: TrainedModel) -> TrainingInfo:
        """These facts, describing ``model`` as the folder's own.

        Args:
            model: The model saved beside them.

        Returns:
            A copy with the model's features, rounds and calibration.
        """
        return dataclasses.replace(
            self,
            features=tuple(model.features),
            best_iteration=model.best_iteration,
            calibration_brier=dict(model.calibration_scores),
            calibration_method=model.calibrator.method,
        )

    @property
    def time_split(self) -> TimeSplit:
        """The recorded time split.

        Returns:
            Cutoffs by role, as timestamps.
        """
        return TimeSplit(
            **{role: tuple(pd.Timestamp(c) for c in self.split.get(role, ())) for role in ROLES}
        )

    @property
    def lightgbm(self) -> LightGBMParams:
        """The booster settings the model was trained with.

        Returns:
            The settings.
        """
        return LightGBMParams(**self.params["lightgbm"])


def split_from_info(info: TrainingInfo | Mapping[str, Any]) -> TimeSplit:
    """The split recorded in training.json.

    Args:
        info: The facts, or parsed training.json.

    Returns:
        The time split.
    """
    if isinstance(info, TrainingInfo):
        return info.time_split
    return TimeSplit(
        **{role: tuple(pd.Timestamp(c) for c in info["split"].get(role, ())) for role in ROLES}
    )


def save_model(
    model: TrainedModel,
    out_dir: Path,
    info: TrainingInfo,
    *,
    policy: PolicyChoice | None = None,
    reference: dict[str, Any] | None = None,
) -> None:
    """Write the booster (LightGBM text), calibration, policy, reference and facts (JSON).

    Args:
        model: The trained model.
        out_dir: Destination folder.
        info: The run's facts; the model's own are filled in (:meth:`TrainingInfo.for_model`).
        policy: The chosen tier bounds.
        reference: Feature distributions for the reasons' percentiles.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / MODEL_FILE) as tmp:
        model.booster.save_model(str(tmp))
    write_json(model.calibrator.to_dict(), out_dir / CALIBRATION_FILE)
    if policy is not None:
        write_json(policy.to_dict(), out_dir / POLICY_FILE)
    if reference is not None:
        write_json(reference, out_dir / REFERENCE_FILE)
    write_json(info.for_model(model).to_dict(), out_dir / TRAINING_FILE)


def load_training_info(model_dir: Path) -> TrainingInfo:
    """Read a model folder's training.json.

    Args:
        model_dir: The folder.

    Returns:
        The facts.

    Raises:
        ModelError: The file is missing, unreadable or lacks a required key.
    """
    path = model_dir / TRAINING_FILE
    if not path.is_file():
        raise ModelError(f"{path}: missing; run the train stage (`dvc repro`)")
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable ({exc})") from exc
    return TrainingInfo.from_dict(data, str(path))


def load_model(model_dir: Path) -> TrainedModel:
    """Read a model written by :func:`save_model`.

    Args:
        model_dir: The folder.

    Returns:
        The model (validation metrics as recorded at training).
    """
    info = load_training_info(model_dir)
    booster = lgb.Booster(model_file=str(model_dir / MODEL_FILE))
    calibrator = Calibrator.from_dict(read_json(model_dir / CALIBRATION_FILE))
    return TrainedModel(
        booster,
        calibrator,
        info.features,
        info.best_iteration,
        dict(info.valid_metrics),
        dict(info.calibration_brier),
    )


def load_policy(model_dir: Path) -> PolicyChoice:
    """Read the tier bounds the train stage chose.

    Args:
        model_dir: The train stage's folder.

    Returns:
        The policy choice.
    """
    return PolicyChoice.from_dict(read_json(model_dir / POLICY_FILE))


def holdout_dir(model_dir: Path, file: str = MODEL_FILE) -> Path:
    """The folder of the held-out model, or ``model_dir`` when it has no held-out copy.

    Args:
        model_dir: The train stage's folder.
        file: The file whose presence marks the held-out copy.

    Returns:
        ``model_dir/holdout`` if it holds ``file``, else ``model_dir``.
    """
    held = model_dir / HOLDOUT_DIR
    return held if (held / file).is_file() else model_dir


def load_holdout_model(model_dir: Path) -> TrainedModel:
    """Read the held-out model that the evaluation judges.

    Args:
        model_dir: The train stage's folder.

    Returns:
        The model fitted without the calibration and test cutoffs (the shipped model
        when the folder has no held-out copy).
    """
    return load_model(holdout_dir(model_dir))


def load_holdout_policy(model_dir: Path) -> PolicyChoice:
    """Read the tier bounds chosen for the held-out model.

    Args:
        model_dir: The train stage's folder.

    Returns:
        The policy choice (the shipped model's when there is no held-out copy).
    """
    return load_policy(holdout_dir(model_dir, POLICY_FILE))


def model_files(model_dir: Path) -> dict[str, Path]:
    """The model folder's files that a scorer carries, by artifact role.

    Args:
        model_dir: The train stage's folder (or a scorer's artifacts/).

    Returns:
        {artifact role: file}, for every :data:`MODEL_ARTIFACTS` entry.
    """
    return {role: model_dir / name for role, name in MODEL_ARTIFACTS.items()}


def content_id(files: Mapping[str, Path]) -> str:
    """A content id of a model: the same files give the same id, on any machine.

    Args:
        files: The model's data files by artifact role (:func:`model_files`).

    Returns:
        "rg-" and the first 12 hex digits of a SHA-256 over names and bytes.
    """
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0")
        h.update(files[name].read_bytes())
        h.update(b"\0")
    return "rg-" + h.hexdigest()[:12]


def model_version(model_dir: Path) -> str:
    """The content id of the model a folder's top level holds (the shipped one).

    Args:
        model_dir: The train stage's folder.

    Returns:
        The id the export stage stamps on the scorer (:func:`content_id`).
    """
    return content_id(model_files(model_dir))
