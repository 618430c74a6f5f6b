"""Building the snapshot table: every buyer's features and targets at every cutoff."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from refundguard.config import FeaturesParams, Params
from refundguard.contract.tables import TABLE_NAMES
from refundguard.data.frames import isin
from refundguard.data.io import read_json
from refundguard.errors import DataContractError
from refundguard.features.catalog import Feature
from refundguard.features.events import EventTables, snapshot
from refundguard.features.extortion import (
    DemandModel,
    DemandScores,
    Lexicon,
    demand_history,
    load_lexicon,
    refit_points,
)
from refundguard.features.timesplit import label_targets
from refundguard.paths import (
    FEATURES_DIR,
    KNOWN_ABUSERS_FILE_NAME,
    MANIFEST_FILE_NAME,
    VALIDATED_TABLE_SUFFIX,
)

# (params, validated folder, sentiment file, cutoffs, catalog, H, review evidence) -> the
# snapshot tables.
SparkBuild = Callable[
    [Params, Path, Path, Sequence[pd.Timestamp], Sequence["Feature"], int, "ReviewEvidence"],
    "SnapshotTables",
]


@dataclass(frozen=True)
class ReviewEvidence:
    """What the review-text features need besides the tables, fixed for a whole run.

    Attributes:
        lexicon: The extortion lexicon (shipped, with the user's merged over it).
        demand: Demand-model scores of each refit (:func:`review_evidence`).
        model: The demand model of the last cutoff, which the scorer ships.
    """

    lexicon: Lexicon
    demand: DemandScores | None
    model: DemandModel | None


def review_evidence(
    tables: Mapping[str, pd.DataFrame], cutoffs: Sequence[pd.Timestamp], params: FeaturesParams
) -> ReviewEvidence:
    """The lexicon and the point-in-time demand models of a features run.

    The demand model is trained at every ``demand_refit_every``-th cutoff (laid back from
    the last, :func:`refundguard.features.extortion.refit_points`) on the reviews and
    requests before it; each cutoff reads the scores of the latest model trained at or
    before it. On the default world (20 cutoffs) every 4th cutoff is 6 fits, about 2 s
    with the weak labels and scoring (see :mod:`refundguard.features.extortion`).

    Args:
        tables: Validated tables (orders, refunds, reviews).
        cutoffs: The snapshot cutoffs, ascending.
        params: The ``features`` block.

    Returns:
        The lexicon, the scores and the last cutoff's model.
    """
    lexicon = load_lexicon(params.lexicon_path())
    if not cutoffs:
        return ReviewEvidence(lexicon, None, None)
    demand, model = demand_history(
        tables["reviews"],
        tables["refunds"],
        tables["orders"],
        refit_points(list(cutoffs), params.demand_refit_every),
        params.demand,
    )
    return ReviewEvidence(lexicon, demand, model)


def compute_features(
    events: EventTables,
    cutoff: pd.Timestamp,
    catalog: Sequence[Feature],
    buyer_ids: Sequence[str] | None = None,
    active_days: int | None = None,
) -> pd.DataFrame:
    """Features of buyers at one cutoff.

    Args:
        events: Joined event tables.
        cutoff: The cutoff T.
        catalog: Features to compute.
        buyer_ids: Buyers to return (any order); None for all known buyers.
        active_days: With ``buyer_ids`` None, keep only buyers who ordered in
            [T - active_days, T).

    Returns:
        One row per buyer: buyer_id, cutoff, then one column per catalog feature.
    """
    snap = snapshot(events, cutoff)
    if buyer_ids is None:
        codes = np.arange(snap.n_buyers)
        if active_days is not None:
            recent = snap.count("orders", snap.since("orders", active_days)) > 0
            codes = codes[recent]
    else:
        codes = events.buyer_ids.get_indexer(np.asarray([str(b) for b in buyer_ids], dtype=object))
        if (codes < 0).any():
            raise DataContractError("compute_features: buyer ids missing from the event tables")
    columns: dict[str, np.ndarray] = {
        "buyer_id": events.buyer_ids.to_numpy()[codes],
    }
    for f in catalog:
        columns[f.name] = np.asarray(f.compute(snap), dtype="float64")[codes]
    out = pd.DataFrame(columns)
    out.insert(1, "cutoff", snap.cutoff)
    out["buyer_id"] = out["buyer_id"].astype("str")
    return out


@dataclass(frozen=True)
class SnapshotTables:
    """The features stage's two tables, with the same columns.

    Attributes:
        rows: Training and evaluation rows: every active buyer not yet a labeled abuser at
            T, with ``target`` (labeled abuser within H after T).
        known: Active buyers already labeled abusers before T by a trusted source
            (``features.known_abuser_sources``), ``target`` 1. They are never scored or
            evaluated; the train stage may fit on them as extra positives
            (``train.known_abusers``).
    """

    rows: pd.DataFrame
    known: pd.DataFrame


def build_snapshot_tables(
    events: EventTables,
    labels: pd.DataFrame,
    cutoffs: Sequence[pd.Timestamp],
    catalog: Sequence[Feature],
    *,
    horizon_days: int,
    active_days: int,
    progress: Callable[[int, int, pd.Timestamp], None] | None = None,
    trusted_sources: Sequence[str] | None = None,
) -> SnapshotTables:
    """Features of every active buyer at every cutoff, split into the two tables.

    Args:
        events: Joined event tables.
        labels: Validated labels (buyer_id, label, labeled_at).
        cutoffs: Snapshot cutoffs.
        catalog: Features to compute.
        horizon_days: The target is "labeled abuser within this many days after T".
        active_days: Only buyers who ordered in this many days before T get a row.
        progress: Called after each cutoff with (done, total, cutoff).
        trusted_sources: ``features.known_abuser_sources``: only known abusers with an
            abuser decision from one of these sources go to ``known`` (None: all).

    Returns:
        Both tables, each sorted by cutoff then buyer_id, with columns buyer_id, cutoff,
        the features and ``target`` (int8).

    Raises:
        DataContractError: There are no cutoffs.
    """
    parts, known_parts = [], []
    for done, cutoff in enumerate(cutoffs, start=1):
        feats = compute_features(events, cutoff, catalog, active_days=active_days)
        targets = label_targets(labels, cutoff, horizon_days, trusted_sources)
        known = isin(feats["buyer_id"], targets.known_abusers)
        trusted = isin(feats["buyer_id"], targets.trusted_abusers)
        feats["target"] = isin(feats["buyer_id"], targets.positives).astype("int8")
        known_parts.append(
            feats[trusted].assign(target=np.ones(int(trusted.sum()), dtype="int8"))
        )
        parts.append(feats[~known])
        if progress is not None:
            progress(done, len(cutoffs), cutoff)
    if not parts:
        raise DataContractError("no cutoffs: the data span is too short for the horizon")

    def table(frames: list[pd.DataFrame]) -> pd.DataFrame:
        return pd.concat(frames, ignore_index=True).sort_values(
            ["cutoff", "buyer_id"], kind="stable", ignore_index=True
        )

    return SnapshotTables(rows=table(parts), known=table(known_parts))


def build_snapshots(
    events: EventTables,
    labels: pd.DataFrame,
    cutoffs: Sequence[pd.Timestamp],
    catalog: Sequence[Feature],
    *,
    horizon_days: int,
    active_days: int,
    progress: Callable[[int, int, pd.Timestamp], None] | None = None,
) -> pd.DataFrame:
    """Training rows: features and target for every active buyer at every cutoff.

    Args:
        events: Joined event tables.
        labels: Validated labels (buyer_id, label, labeled_at).
        cutoffs: Snapshot cutoffs.
        catalog: Features to compute.
        horizon_days: The target is "labeled abuser within this many days after T".
        active_days: Only buyers who ordered in this many days before T get a row.
        progress: Called after each cutoff with (done, total, cutoff).

    Returns:
        Rows sorted by cutoff then buyer_id, with columns buyer_id, cutoff, the features,
        and ``target`` (0/1). Buyers already labeled abusers before T have no row at T
        (:func:`build_snapshot_tables` keeps them apart).
    """
    return build_snapshot_tables(
        events, labels, cutoffs, catalog,
        horizon_days=horizon_days, active_days=active_days, progress=progress,
    ).rows


def load_validated(folder: Path) -> dict[str, pd.DataFrame]:
    """Read the validate stage's tables.

    Args:
        folder: The validated folder.

    Returns:
        Tables by name.
    """
    return {n: pd.read_parquet(folder / f"{n}{VALIDATED_TABLE_SUFFIX}") for n in TABLE_NAMES}


def known_abuser_rows(features_dir: Path, mode: str) -> pd.DataFrame | None:
    """The known abusers' rows the boosters fit on, per ``train.known_abusers``.

    Args:
        features_dir: The features stage's folder.
        mode: ``train.known_abusers``: "positive" reads them, "drop" does not.

    Returns:
        The rows, or None for "drop".

    Raises:
        DataContractError: "positive" and the table is missing (features from an
            older version).
    """
    if mode != "positive":
        return None
    path = features_dir / KNOWN_ABUSERS_FILE_NAME
    if not path.is_file():
        raise DataContractError(
            f"{path}: not found; run the features stage again (it writes the known "
            "abusers' rows), or set train.known_abusers: drop"
        )
    return pd.read_parquet(path)


def read_manifest(features_dir: Path = FEATURES_DIR) -> dict[str, object]:
    """The features stage's manifest (catalog version, feature names, cutoffs).

    Args:
        features_dir: The features folder.

    Returns:
        The manifest.
    """
    manifest: dict[str, object] = read_json(features_dir / MANIFEST_FILE_NAME)
    return manifest
