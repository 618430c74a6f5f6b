"""The champion/challenger gate: the candidate against the registry's champion, same rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from refundguard.config import RegistryParams
from refundguard.errors import RefundGuardError
from refundguard.model.metrics import ranking_metrics
from refundguard.serving import registry
from refundguard.serving.scorer import Scorer


def gate_decision(
    candidate: float,
    champion: float | None,
    champion_version: str | None,
    *,
    metric: str,
    min_improvement: float,
    note: str = "",
) -> dict[str, Any]:
    """The champion/challenger decision, as gate.json records it.

    Args:
        candidate: The new model's metric on the test window.
        champion: The current champion's metric on the same rows (None: no champion, or
            it cannot score these features).
        champion_version: The champion's registry version.
        metric: The metric's name.
        min_improvement: Margin the candidate must beat the champion by.
        note: Why the champion was not scored, if it was not.

    Returns:
        metric, candidate, champion, champion_version, decision, note.
    """
    return {
        "metric": metric,
        "candidate": candidate,
        "champion": champion,
        "champion_version": champion_version,
        "decision": registry.gate(candidate, champion, min_improvement),
        "note": note,
    }


def champion_metric(
    name: str,
    metric: str,
    test: pd.DataFrame,
    candidate_id: str,
    *,
    top_share: float,
    max_fpr: float,
) -> tuple[float | None, str | None, str]:
    """Score the test rows with the registry's champion, by the candidate's own yardstick.

    Args:
        name: The registered model's name.
        metric: The gate's metric (a key of :func:`~refundguard.model.metrics.ranking_metrics`).
        test: The test rows (buyer_id, the features, target).
        candidate_id: The candidate's model version (a champion that is the candidate is
            not compared with itself).
        top_share: The review team's capacity, as the candidate was measured.
        max_fpr: The false-positive rate of the recall metric, as the candidate's.

    Returns:
        The champion's metric (None when it cannot be scored), its version, and why not.
    """
    try:
        found = registry.load_alias(name, "champion")
    except RefundGuardError as exc:
        return None, None, f"registry unavailable: {exc}"
    if found is None:
        return None, None, "no champion yet"
    folder, version = found
    try:
        champion = Scorer.load(folder)
        if champion.model_version == candidate_id:
            return None, version, f"this model is already the champion (version {version})"
        cols = ["buyer_id", *champion.features]
        prob = champion.score(test.loc[:, cols], reasons=False)["probability"].to_numpy()
    except (RefundGuardError, KeyError) as exc:
        return None, version, f"champion v{version} cannot score this data: {exc}"
    m = ranking_metrics(test["target"].to_numpy(), prob, top_share=top_share, max_fpr=max_fpr)
    return float(m[metric]), version, ""


def judge(
    metrics: Mapping[str, float],
    test: pd.DataFrame,
    candidate_id: str,
    registry_params: RegistryParams,
    *,
    top_share: float,
    max_fpr: float,
) -> dict[str, Any]:
    """The gate of a candidate evaluated on ``test``: its figure against the champion's.

    Args:
        metrics: The candidate's flat test metrics ("model.<metric>" among them).
        test: The test rows it was measured on.
        candidate_id: Its model version (the shipped model's content id).
        registry_params: Registered name, gate metric and margin.
        top_share: The review team's capacity, as the candidate was measured.
        max_fpr: The false-positive rate of the recall metric, as the candidate's.

    Returns:
        gate.json's content (see :func:`gate_decision`).
    """
    metric = registry_params.metric
    champ, champ_version, note = champion_metric(
        registry_params.name, metric, test, candidate_id, top_share=top_share, max_fpr=max_fpr
    )
    return gate_decision(
        float(metrics[f"model.{metric}"]), champ, champ_version, metric=metric,
        min_improvement=registry_params.min_improvement, note=note,
    )
