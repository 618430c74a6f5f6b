"""The scorer: a calibrated probability and a policy tier per buyer.

A scorer folder is what the export stage writes (``models/scorer``): an MLflow pyfunc
model whose artifacts are data files only (LightGBM's text model, JSON, the sentiment
weights as npz). :class:`Scorer` reads those files directly; ``mlflow.pyfunc.load_model``
wraps the same class (see :mod:`refundguard.scorer_model`).

Each buyer gets a calibrated probability, a 0-1000 risk score, a policy tier (bounds
chosen by the train stage from the costs in params.yaml) and, when in review or
restrict, the top 3 reasons in Chinese and English (:mod:`refundguard.reasons`).

Safety: loading an MLflow pyfunc model imports and runs the Python code stored in it, so
load only scorer folders you trust. :meth:`Scorer.load` reads only the data files and runs
no stored code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from refundguard.config import FeaturesParams
from refundguard.contract.vocabulary import FIRST_FLAGGED_TIER
from refundguard.data.io import read_json
from refundguard.errors import ConfigError, InputError, ModelError
from refundguard.features.build import compute_features
from refundguard.features.catalog import (
    HISTORY_FEATURES,
    NO_HISTORY,
    Feature,
    build_catalog,
    catalog_version,
)
from refundguard.features.events import prepare_events
from refundguard.features.extortion import (
    DemandModel,
    DemandScores,
    Lexicon,
    demand_scores_at,
    load_review_models,
)
from refundguard.model.bundle import ARTIFACTS, MODEL_ARTIFACTS, content_id
from refundguard.model.calibration import Calibrator
from refundguard.model.policy import TIERS, PolicyChoice, risk_score
from refundguard.serving import reasons as rs

SCORER_FORMAT = "refundguard-scorer/2"


OUTPUT_COLUMNS = (
    "buyer_id",
    "probability",
    "risk_score",
    "tier",
    "reasons_zh",
    "reasons_en",
    "model_version",
)


# Columns a feature frame may carry besides buyer_id and the catalog's features.
PASSTHROUGH = frozenset({"cutoff"})


# Valid range of a feature by its catalog unit (inclusive). Shares and the sentiment score
# are fractions; stars are 1-5; counts, money, durations and ratios cannot be negative.
UNIT_RANGES: Mapping[str, tuple[float, float]] = {
    "count": (0.0, np.inf),
    "cny": (0.0, np.inf),
    "share": (0.0, 1.0),
    "days": (0.0, np.inf),
    "hours": (0.0, np.inf),
    "stars": (1.0, 5.0),
    "score": (0.0, 1.0),
    "ratio": (0.0, np.inf),
}


# Slack on the bounds: shares computed as sums of floats may end at 1 + 1e-16.
_RANGE_SLACK = 1e-9


# Buyer action times: the data's last event is the latest of these.
EVENT_TIME_COLUMNS = {"orders": "created_at", "refunds": "requested_at", "reviews": "created_at"}


_TIER_NAMES = np.asarray(TIERS, dtype=object)


def feature_ranges(catalog: Sequence[Feature]) -> dict[str, tuple[float, float]]:
    """The valid range of every catalog feature, derived from its unit.

    Args:
        catalog: Feature catalog entries.

    Returns:
        (lowest, highest) allowed value by feature name; inf where unbounded.

    Raises:
        ModelError: A feature has a unit this code has no range for.
    """
    ranges: dict[str, tuple[float, float]] = {}
    for f in catalog:
        if f.unit not in UNIT_RANGES:
            raise ModelError(f"feature '{f.name}' has unit '{f.unit}', which has no valid range")
        ranges[f.name] = UNIT_RANGES[f.unit]
    return ranges


def _is_number(value: object) -> bool:
    if value is None or value is pd.NA:
        return True  # missing: the nullable check decides
    if isinstance(value, bool | np.bool_ | float | np.floating | np.integer):
        return True
    if isinstance(value, int):
        # Python ints of any size arrive from JSON; beyond float64 they cannot be scored.
        try:
            float(value)
        except OverflowError:
            return False
        return True
    return False


def _check_numbers(name: str, values: np.ndarray) -> None:
    """Refuse a non-numeric column unless every value is a number or missing.

    A column that mixes numbers and nulls, or holds nulls only, arrives from JSON as
    Python objects; it is numeric. Text (even "5"), lists and the like are refused.
    """
    bad = np.fromiter((not _is_number(v) for v in values), dtype=bool, count=len(values))
    if bad.any():
        example = repr(values[int(np.flatnonzero(bad)[0])])
        example = example if len(example) <= 40 else example[:37] + "..."
        raise InputError(
            f"feature column '{name}' must hold numbers, got {example} in {_rows(int(bad.sum()))}"
        )


def _rows(n: int) -> str:
    return f"{n:,} row" + ("" if n == 1 else "s")


def _describe_bound(value: float) -> str:
    return f"{value:g}"


def last_event_time(tables: Mapping[str, pd.DataFrame]) -> pd.Timestamp | None:
    """The time of the latest buyer action in validated tables.

    Args:
        tables: Validated tables; orders, refunds and reviews are read when present.

    Returns:
        The latest order, request or review time, or None if there is none.
    """
    times = [
        tables[name][col].max()
        for name, col in EVENT_TIME_COLUMNS.items()
        if name in tables and col in tables[name].columns and len(tables[name])
    ]
    times = [t for t in times if not pd.isna(t)]
    return max(times) if times else None


def check_as_of(as_of: pd.Timestamp, last_event: pd.Timestamp | None, max_days: float) -> None:
    """Refuse a scoring time too far after the data's last event.

    Features count what happened in windows before ``as_of``; past the end of the data
    every window is empty and every buyer looks inactive, hence harmless.

    Args:
        as_of: The scoring time (tz-aware).
        last_event: The data's last event (:func:`last_event_time`), or None.
        max_days: Days after the last event still accepted.

    Raises:
        InputError: ``as_of`` is more than ``max_days`` after ``last_event``, or there is
            no event at all.
    """
    if last_event is None:
        raise InputError("the data has no orders, refunds or reviews to score from")
    gap = (as_of - last_event) / pd.Timedelta(days=1)
    if gap > max_days:
        raise InputError(
            f"--as-of {as_of.isoformat()} is {gap:,.1f} days after the data's last event "
            f"({last_event.tz_convert(as_of.tz).isoformat()}); at most {max_days:g} days "
            "are allowed (score.max_days_after_data), since every buyer would look inactive"
        )


def unknown_buyers(tables: Mapping[str, pd.DataFrame], buyers: Sequence[str]) -> np.ndarray:
    """Which buyer ids appear nowhere in the data (ids are case-sensitive).

    Args:
        tables: Validated tables; buyer ids are read from orders, buyers and labels.
        buyers: The ids asked for.

    Returns:
        One boolean per id in ``buyers``: True if the id is in no table.
    """
    known = [
        tables[name]["buyer_id"]
        for name in ("orders", "buyers", "labels")
        if name in tables and "buyer_id" in tables[name].columns
    ]
    asked = pd.Index(pd.Series(list(buyers), dtype="str"))
    if not known:
        return np.ones(len(asked), dtype=bool)
    seen = pd.Index(pd.concat(known, ignore_index=True).dropna().astype("str").unique())
    return ~asked.isin(seen)


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
        reference: Reference quantiles of each feature (for the reasons' percentiles).
        model_version: The model's content id, stamped on every output row.
        demand_model: The review demand model trained on the data before the last
            training cutoff (None: the model folder has none; one is trained per date).
        lexicon: The extortion lexicon the features were computed with (None: shipped).
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
    reference: dict[str, list[float]] = field(default_factory=dict)
    model_version: str = "unknown"
    demand_model: DemandModel | None = None
    lexicon: Lexicon | None = None

    @classmethod
    def from_artifacts(cls, artifacts: Mapping[str, str | Path]) -> Scorer:
        """Build from the artifact files of an exported model.

        Args:
            artifacts: Paths of the :data:`ARTIFACTS` files ("sentiment" and "demand"
                optional).

        Returns:
            The scorer.

        Raises:
            ModelError: A file is missing or corrupt, or the model was made for another
                feature catalog than this code computes.
        """
        try:
            config = read_json(Path(artifacts["scorer"]))
            if not isinstance(config, dict):
                raise ModelError("cannot load scorer: scorer.json is not a JSON object")
            if config.get("format") != SCORER_FORMAT:
                raise ModelError(
                    f"unsupported scorer format {config.get('format')!r} "
                    f"(this refundguard reads {SCORER_FORMAT})"
                )
            # Check the files against the exported content id before LightGBM parses
            # them: a truncated model.txt can crash LightGBM's C++ reader outright, and an
            # edited one would load silently and score differently.
            files = {k: Path(v) for k, v in artifacts.items() if k in MODEL_ARTIFACTS}
            found, stored = content_id(files), config.get("model_version")
            if stored != found:
                raise ModelError(
                    f"model files differ from the exported model ({found} != {stored}): "
                    "damaged or edited; export the model again"
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
            bounds = PolicyChoice.from_dict(read_json(Path(artifacts["policy"]))).bounds
            reference = read_json(Path(artifacts["reference"]))["quantiles"]
            version = str(config.get("model_version", "unknown"))
            demand = artifacts.get("demand")
            demand_model, lexicon = load_review_models(
                Path(demand) if demand and Path(demand).is_dir() else None
            )
        except ModelError:
            raise
        except (
            OSError, KeyError, TypeError, ValueError, ConfigError, lgb.basic.LightGBMError
        ) as exc:
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
            reference={k: list(v) for k, v in reference.items()},
            model_version=version,
            demand_model=demand_model,
            lexicon=lexicon,
        )

    @classmethod
    def load(cls, path: str | Path) -> Scorer:
        """Load an exported scorer (the folder ``mlflow.pyfunc`` loads too).

        Args:
            path: The folder written by the export stage (holding MLmodel and
                artifacts/), or a registry URI such as ``models:/refundguard@champion``
                (resolved on the MLflow tracking store, ``MLFLOW_TRACKING_URI`` or the
                project's SQLite store).

        Returns:
            The scorer.

        Raises:
            ModelError: Not a scorer folder, an unknown registry name or alias, or a
                file in it is missing or corrupt.
        """
        if str(path).startswith("models:/"):
            from refundguard.serving import registry

            path = registry.resolve_uri(str(path))
        root = Path(path)
        art = root / "artifacts"
        if not (root / "MLmodel").is_file() or not art.is_dir():
            raise ModelError(f"{root}: not an exported refundguard scorer (no MLmodel)")
        return cls.from_artifacts({k: art / v for k, v in ARTIFACTS.items()})

    def _check_input(self, frame: pd.DataFrame) -> np.ndarray:
        if not isinstance(frame, pd.DataFrame):
            raise InputError(f"features must be a pandas DataFrame, got {type(frame).__name__}")
        if "buyer_id" not in frame.columns:
            raise InputError("input has no 'buyer_id' column")
        if not frame.columns.is_unique:
            dup = frame.columns[frame.columns.duplicated()][0]
            raise InputError(f"input has column '{dup}' more than once")
        ids = frame["buyer_id"].to_numpy(dtype=object)
        # A plain loop: pandas' string methods cost more than the whole single-buyer call.
        blank = pd.isna(ids) | np.fromiter(
            (isinstance(v, str) and not v.strip() for v in ids), dtype=bool, count=len(ids)
        )
        if blank.any():
            raise InputError(
                f"column 'buyer_id' is missing or empty in {_rows(int(blank.sum()))} "
                f"(first at row {int(np.flatnonzero(blank)[0])})"
            )
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise InputError(
                f"input is missing feature column '{missing[0]}'"
                + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
            )
        # Catalog features the model does not use are accepted (the features stage writes
        # them all) and ignored, except that a history feature decides the no-history tier.
        known = {"buyer_id", *self.catalog, *PASSTHROUGH}
        extra = [c for c in frame.columns if c not in known]
        if extra:
            raise InputError(
                f"input has unexpected column '{extra[0]}'"
                + (f" and {len(extra) - 1} more" if len(extra) > 1 else "")
                + " (only buyer_id, cutoff and the feature catalog's columns are accepted)"
            )
        for name in HISTORY_FEATURES:
            if name in frame.columns and name not in self.features:
                col = frame[name]
                if getattr(col.dtype, "kind", "O") not in "biuf":
                    _check_numbers(name, col.to_numpy(dtype=object))
        # Positions and dtype kinds rather than .loc and per-column dtype checks: a
        # single-buyer request is dominated by pandas overhead (2 ms -> 0.5 ms here).
        pos = frame.columns.get_indexer(list(self.features))
        dtypes = frame.dtypes.to_numpy()[pos]
        for f, i, dtype in zip(self.features, pos, dtypes, strict=True):
            if getattr(dtype, "kind", "O") not in "biuf":
                _check_numbers(f, frame.iloc[:, i].to_numpy(dtype=object))
        x = frame.iloc[:, pos].to_numpy(dtype="float64", na_value=np.nan)
        if np.isinf(x).any():
            col = self.features[int(np.flatnonzero(np.isinf(x).any(axis=0))[0])]
            raise InputError(f"feature column '{col}' holds an infinite value")
        nan_cols = np.flatnonzero(np.isnan(x).any(axis=0) & ~self._nullable)
        if nan_cols.size:
            raise InputError(
                f"feature column '{self.features[int(nan_cols[0])]}' has missing values, "
                "but the feature catalog says it is always defined"
            )
        self._check_ranges(x)
        return x

    def _check_ranges(self, x: np.ndarray) -> None:
        low, high = self._ranges
        # NaN compares False: a missing value is never out of range.
        below = x < low - _RANGE_SLACK
        above = x > high + _RANGE_SLACK
        bad = (below | above).any(axis=0)
        if not bad.any():
            return
        j = int(np.flatnonzero(bad)[0])
        name, unit = self.features[j], self.catalog[self.features[j]].unit
        n_low, n_high = int(below[:, j].sum()), int(above[:, j].sum())
        parts = []
        if n_low:
            parts.append(
                f"must be >= {_describe_bound(low[j])} ({unit}), "
                f"{_rows(n_low)} below (e.g. {x[below[:, j], j][0]:g})"
            )
        if n_high:
            parts.append(
                f"must be <= {_describe_bound(high[j])} ({unit}), "
                f"{_rows(n_high)} above (e.g. {x[above[:, j], j][0]:g})"
            )
        more = int(bad.sum()) - 1
        raise InputError(
            f"feature column '{name}' "
            + "; ".join(parts)
            + (f" (and {more} more column(s) out of range)" if more else "")
        )

    @cached_property
    def _ranges(self) -> tuple[np.ndarray, np.ndarray]:
        ranges = feature_ranges(list(self.catalog.values()))
        low = np.array([ranges[f][0] for f in self.features], dtype="float64")
        high = np.array([ranges[f][1] for f in self.features], dtype="float64")
        return low, high

    def _fresh(self, frame: pd.DataFrame, x: np.ndarray) -> np.ndarray:
        """Which rows' buyers had no order before the cutoff (see HISTORY_FEATURES)."""
        for name in HISTORY_FEATURES:
            if name in self.features:
                return np.isnan(x[:, self.features.index(name)])
            if name in frame.columns:
                return ~np.isfinite(frame[name].to_numpy(dtype="float64", na_value=np.nan))
        # No history feature at all: no row can be told apart as new.
        return np.zeros(len(x), dtype=bool)

    @cached_property
    def catalog(self) -> dict[str, Feature]:
        """The feature catalog's entries, by name.

        Returns:
            Mapping from feature name to catalog entry.
        """
        return {f.name: f for f in build_catalog(self.feature_params)}

    @cached_property
    def _nullable(self) -> np.ndarray:
        return np.array([self.catalog[f].nullable for f in self.features], dtype=bool)

    def score(
        self, features: pd.DataFrame, chunk_size: int = 200_000, *, reasons: bool = True
    ) -> pd.DataFrame:
        """Score feature rows (one per buyer).

        NaN is accepted where the feature catalog says a feature may be missing, and
        LightGBM treats it as missing. A buyer with no order before the cutoff gets the
        catalog's no-history tier and reason (:data:`refundguard.features.NO_HISTORY`),
        told by days_since_first_order or days_since_last_order (:data:`HISTORY_FEATURES`),
        from the model's features or else from the input. Catalog features the model
        does not use are accepted and ignored.

        Args:
            features: buyer_id, every feature column of the model and optionally cutoff
                and other catalog features.
            chunk_size: Rows per prediction call, bounding memory on big inputs.
            reasons: Write the top 3 reasons of buyers in review or restrict (SHAP
                contributions are computed for those rows only); False leaves the
                reason columns empty.

        Returns:
            buyer_id, probability, risk_score (0-1000), tier, reasons_zh, reasons_en,
            model_version; one row per input row, in input order.

        Raises:
            InputError: A column is missing, unexpected, non-numeric, NaN where the
                catalog does not allow it, or out of its unit's range
                (:func:`feature_ranges`); a buyer_id is missing or empty.
        """
        x = self._check_input(features)
        raw = np.empty(len(x), dtype="float64")
        for start in range(0, len(x), chunk_size):
            part = x[start : start + chunk_size]
            raw[start : start + len(part)] = self.booster.predict(
                part, num_threads=self.num_threads
            )
        prob = self.calibrator.predict(raw)
        if np.isnan(prob).any():
            raise InputError("the model gave a NaN probability; check the feature values")
        # Tier codes and object arrays, not .astype(str): building the output was most of
        # the cost of a batch (1.2 s per million rows) and of a single-buyer call.
        code = np.searchsorted(np.asarray(self.bounds, dtype="float64"), prob, side="right")
        fresh = self._fresh(features, x)
        code[fresh] = TIERS.index(NO_HISTORY.tier)
        tier = _TIER_NAMES[code]
        zh = np.full(len(x), "", dtype=object)
        en = np.full(len(x), "", dtype=object)
        zh[fresh], en[fresh] = NO_HISTORY.zh, NO_HISTORY.en
        if reasons:
            # Reasons for the buyers held: review and restrict.
            flagged = np.flatnonzero(code >= TIERS.index(FIRST_FLAGGED_TIER))
            for start in range(0, flagged.size, chunk_size):
                rows = flagged[start : start + chunk_size]
                contrib = rs.contributions(self.booster, x[rows], self.num_threads)
                values = pd.DataFrame(x[rows], columns=list(self.features))
                found = rs.top_reasons(contrib, values, self.catalog, self.reference)
                zh[rows] = [rs.join(r, "zh") for r in found]
                en[rows] = [rs.join(r, "en") for r in found]
        return pd.DataFrame(
            {
                "buyer_id": features["buyer_id"].astype("str").to_numpy(),
                "probability": prob,
                "risk_score": risk_score(prob),
                "tier": tier,
                "reasons_zh": zh,
                "reasons_en": en,
                "model_version": np.full(len(x), self.model_version, dtype=object),
            }
        )

    def explain(self, features: pd.DataFrame, k: int = rs.TOP_REASONS) -> list[list[rs.Reason]]:
        """The top reasons of any rows, whatever their tier (for a case view).

        Args:
            features: Rows as for :meth:`score`.
            k: Reasons per row, at most.

        Returns:
            One list of reasons per row, strongest first.
        """
        x = self._check_input(features)
        contrib = rs.contributions(self.booster, x, self.num_threads)
        values = pd.DataFrame(x, columns=list(self.features))
        return rs.top_reasons(contrib, values, self.catalog, self.reference, k)

    def review_sentiment(self, reviews: pd.DataFrame) -> pd.DataFrame | None:
        """Sentiment of review texts with the bundled model, or None if it has none.

        Args:
            reviews: Validated reviews (review_id, text).

        Returns:
            review_id and sentiment, or None.
        """
        if self.sentiment_dir is None:
            return None
        from refundguard.features.sentiment import predict_reviews, read_model

        model = read_model(self.sentiment_dir)
        return None if model is None else predict_reviews(model, reviews)

    def demand_scores(
        self, tables: Mapping[str, pd.DataFrame], as_of: pd.Timestamp
    ) -> DemandScores:
        """Demand-model scores of the reviews as known at ``as_of``.

        The shipped demand model (trained on the data before the last training cutoff)
        scores from its cutoff on; an earlier ``as_of`` gets a model trained on the data
        before it instead, so that no score uses what was not known then
        (:func:`refundguard.features.extortion.demand_scores_at`).

        Args:
            tables: Validated orders, refunds and reviews.
            as_of: The scoring time (tz-aware, or UTC).

        Returns:
            The scores, for :func:`refundguard.features.events.prepare_events`.
        """
        return demand_scores_at(
            tables["reviews"], tables["refunds"], tables["orders"], as_of, self.demand_model
        )

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
            lexicon=self.lexicon,
            demand=self.demand_scores(tables, as_of),
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
