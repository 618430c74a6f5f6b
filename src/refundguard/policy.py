"""Policy tiers: what a refund service does with a buyer's calibrated risk."""

from __future__ import annotations

from typing import Final

import numpy as np

from refundguard.config import PolicyParams

TIERS: Final = ("trusted", "standard", "review", "restrict")
TIER_TEXT: Final[dict[str, tuple[str, str]]] = {
    "trusted": ("instant refund allowed", "可极速退款"),
    "standard": ("normal after-sales process", "正常售后流程"),
    "review": ("a person checks; goods come back before the refund", "人工审核, 先退货后退款"),
    "restrict": ("refund-only blocked; case escalated", "限制仅退款并升级处理"),
}


def thresholds(policy: PolicyParams) -> tuple[float, float, float]:
    """Lower probability bounds of standard, review and restrict.

    Args:
        policy: Policy settings.

    Returns:
        The three bounds, ascending.
    """
    return (policy.standard_from, policy.review_from, policy.restrict_from)


def assign_tiers(probability: np.ndarray, bounds: tuple[float, float, float]) -> np.ndarray:
    """Tier of each probability; a bound belongs to the higher tier.

    Args:
        probability: Calibrated probabilities.
        bounds: Lower bounds of standard, review and restrict.

    Returns:
        Tier names, one per probability.

    Raises:
        ValueError: A probability is NaN.
    """
    probability = np.asarray(probability, dtype="float64")
    if np.isnan(probability).any():
        raise ValueError("a probability is NaN; a tier needs a number")
    idx = np.searchsorted(np.asarray(bounds, dtype="float64"), probability, side="right")
    return np.asarray(TIERS, dtype=object)[idx]


def risk_score(probability: np.ndarray) -> np.ndarray:
    """Probability on a 0-1000 integer scale, for people and dashboards.

    Args:
        probability: Calibrated probabilities.

    Returns:
        Rounded scores.

    Raises:
        ValueError: A probability is NaN.
    """
    probability = np.asarray(probability, dtype="float64")
    if np.isnan(probability).any():
        raise ValueError("a probability is NaN; a risk score needs a number")
    return np.rint(np.clip(probability, 0.0, 1.0) * 1000).astype("int64")
