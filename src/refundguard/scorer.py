"""The scorer: a calibrated probability and a policy tier per buyer.

A scorer folder is what the export stage writes (``models/scorer``): an MLflow pyfunc
model whose artifacts are data files only (LightGBM's text model, JSON, the sentiment
weights as npz). :class:`Scorer` reads those files directly; ``mlflow.pyfunc.load_model``
wraps the same class (see :mod:`refundguard.scorer_model`).

Safety: loading an MLflow pyfunc model imports and runs the Python code stored in it, so
load only scorer folders you trust. :meth:`Scorer.load` reads only the data files and runs
no stored code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from refundguard.calibration import Calibrator
from refundguard.config import FeaturesParams
from refundguard.errors import InputError, ModelError
from refundguard.features import (
    build_catalog,
    catalog_version,
    compute_features,
    prepare_events,
)
from refundguard.io import read_json
from refundguard.policy import assign_tiers, risk_score

SCORER_FORMAT = "refundguard-scorer/1"
OUTPUT_COLUMNS = ("buyer_id", "probability", "risk_score", "tier")
# Artifact names inside the pyfunc model, and the files behind them.
ARTIFACTS = {
    "booster": "model.txt",
    "calibration": "calibration.json",
    "scorer": "scorer.json",
    "sentiment": "sentiment",
}


@dataclass
class Scorer:
    """Scores buyers from feature rows or from raw event tables.

    Attributes:
        booster: The LightGBM booster.
        calibrator: Calibration of the booster's probabilities.
        features: Feature columns, in the booster's order.
        catalog_version: Fingerprint of the feature catalog the model was trained with.
        bounds: Lower probability bounds of the standard, review and restrict tiers.
        feature_params: Settings needed to recompute the features from events.
        metadata: Training facts (data hash, commit, metrics, params).
        sentiment_dir: Folder of the review sentiment model, if one was trained.
        num_threads: Threads LightGBM may use when predicting.
        timezone: Zone of the local-clock features (the training data's zone).
    """

    booster: lgb.Booster
    calibrator: Calibrator
    features: tuple[str, ...]
    catalog_version: str
    bounds: tuple[float, float, float]
    feature_params: FeaturesParams
    metadata: dict[str, Any] = field(default_factory=dict)
    sentiment_dir: Path | None = None
    num_threads: int = 1
    timezone: str = "Asia/Shanghai"

    @classmethod
    def from_artifacts(cls, artifacts: Mapping[str, str | Path]) -> Scorer:
        """Build from the artifact files of an exported model.

        Args:
            artifacts: Paths of the "booster", "calibration", "scorer" and (optionally)
                "sentiment" artifacts.

        Returns:
            The scorer.

        Raises:
            ModelError: A file is missing or corrupt, or the model was made for another
                feature catalog than this code computes.
        """
        try:
            config = read_json(Path(artifacts["scorer"]))
            if config.get("format") != SCORER_FORMAT:
                raise ModelError(
                    f"unsupported scorer format {config.get('format')!r} "
                    f"(this refundguard reads {SCORER_FORMAT})"
                )
            booster = lgb.Booster(model_file=str(artifacts["booster"]))
            calibrator = Calibrator.from_dict(read_json(Path(artifacts["calibration"])))
            fp = config["feature_params"]
            feature_params = FeaturesParams(
                windows_days=tuple(fp["windows_days"]),
                fast_refund_hours=float(fp["fast_refund_hours"]),
                active_days=int(fp["active_days"]),
                link_max_accounts=int(fp["link_max_accounts"]),
            )
            timezone = str(config["timezone"])
            features = tuple(config["features"])
            bounds = tuple(float(b) for b in config["bounds"])
        except ModelError:
            raise
        except (OSError, KeyError, TypeError, ValueError, lgb.basic.LightGBMError) as exc:
            raise ModelError(f"cannot load scorer: {exc}") from exc
        expected = catalog_version(build_catalog(feature_params))
        if config.get("catalog_version") != expected:
            raise ModelError(
                f"model was trained with feature catalog {config.get('catalog_version')}, "
                f"this refundguard computes catalog {expected}; retrain or use the "
                "matching refundguard version"
            )
        if booster.feature_name() != list(features):
            raise ModelError("scorer.json's feature list does not match the booster's")
        sentiment = artifacts.get("sentiment")
        sentiment_dir = Path(sentiment) if sentiment and Path(sentiment).is_dir() else None
        return cls(
            booster=booster,
            calibrator=calibrator,
            features=features,
            catalog_version=expected,
            bounds=(bounds[0], bounds[1], bounds[2]),
            feature_params=feature_params,
            metadata=config.get("metadata", {}),
            sentiment_dir=sentiment_dir,
            timezone=timezone,
        )

    @classmethod
    def load(cls, path: str | Path) -> Scorer:
        """Load an exported scorer folder (the one ``mlflow.pyfunc`` loads too).

        Args:
            path: The folder written by the export stage (holding MLmodel and artifacts/).

        Returns:
            The scorer.

        Raises:
            ModelError: Not a scorer folder, or a file in it is missing or corrupt.
        """
        root = Path(path)
        art = root / "artifacts"
        if not (root / "MLmodel").is_file() or not art.is_dir():
            raise ModelError(f"{root}: not an exported refundguard scorer (no MLmodel)")
        return cls.from_artifacts({k: art / v for k, v in ARTIFACTS.items()})

    def _check_input(self, frame: pd.DataFrame) -> np.ndarray:
        if "buyer_id" not in frame.columns:
            raise InputError("input has no 'buyer_id' column")
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise InputError(
                f"input is missing feature column '{missing[0]}'"
                + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
            )
        for f in self.features:
            dtype = frame[f].dtype
            if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
                raise InputError(f"feature column '{f}' must be numeric, got {dtype}")
        return frame.loc[:, list(self.features)].to_numpy(dtype="float64")

    def score(self, features: pd.DataFrame, chunk_size: int = 200_000) -> pd.DataFrame:
        """Score feature rows (one per buyer); NaN features are treated as missing.

        Args:
            features: buyer_id and every feature column; extra columns are ignored.
            chunk_size: Rows per prediction call, bounding memory on big inputs.

        Returns:
            buyer_id, probability, risk_score (0-1000), tier; one row per input row.

        Raises:
            InputError: A column is missing or has a non-numeric dtype.
        """
        x = self._check_input(features)
        raw = np.empty(len(x), dtype="float64")
        for start in range(0, len(x), chunk_size):
            part = x[start : start + chunk_size]
            raw[start : start + len(part)] = self.booster.predict(
                part, num_threads=self.num_threads
            )
        prob = self.calibrator.predict(raw)
        return pd.DataFrame(
            {
                "buyer_id": features["buyer_id"].astype("str").to_numpy(),
                "probability": prob,
                "risk_score": risk_score(prob),
                "tier": assign_tiers(prob, self.bounds).astype(str),
            }
        )

    def review_sentiment(self, reviews: pd.DataFrame) -> pd.DataFrame | None:
        """Sentiment of review texts with the bundled model, or None if it has none.

        Args:
            reviews: Validated reviews (review_id, text).

        Returns:
            review_id and sentiment, or None.
        """
        if self.sentiment_dir is None:
            return None
        from refundguard.sentiment import predict_reviews, read_model

        model = read_model(self.sentiment_dir)
        return None if model is None else predict_reviews(model, reviews)

    def score_events(
        self,
        tables: Mapping[str, pd.DataFrame],
        as_of: pd.Timestamp,
        buyers: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Compute features as of a time from validated tables, then score.

        Args:
            tables: Validated orders, refunds, reviews and optionally buyers and labels
                (labels feed the linked-account features).
            as_of: Only what was known before this time is used (tz-aware, or UTC).
            buyers: Buyers to score; a buyer with no history gets the no-history
                features. None scores every buyer active in the feature window.

        Returns:
            As :meth:`score`, in the order of ``buyers`` when given.
        """
        reviews = tables["reviews"]
        events = prepare_events(
            tables["orders"],
            tables["refunds"],
            reviews,
            tables.get("buyers"),
            self.review_sentiment(reviews),
            extra_buyer_ids=list(buyers or ()),
            labels=tables.get("labels"),
            timezone=self.timezone,
        )
        catalog = build_catalog(self.feature_params)
        feats = compute_features(
            events,
            as_of,
            catalog,
            buyer_ids=list(buyers) if buyers is not None else None,
            active_days=self.feature_params.active_days,
        )
        return self.score(feats)
