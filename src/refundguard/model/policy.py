"""Policy tiers: what a refund service does with a buyer's calibrated risk.

The tier bounds are chosen on validation data from costs and limits (``policy`` in
params.yaml): each tier prevents a share of an abuser's loss and puts some friction on
an honest buyer; the bounds minimise the total cost on the window, subject to a cap on
the honest buyers placed above "standard" and to the review team's daily capacity.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np

from refundguard.config import PolicyParams
from refundguard.contract.vocabulary import FIRST_FLAGGED_TIER, TIERS

# What each tier does, in English and Chinese, in TIERS order.
TIER_TEXT: Final[dict[str, tuple[str, str]]] = dict(
    zip(
        TIERS,
        (
            ("instant refund allowed", "可极速退款"),
            ("normal after-sales process", "正常售后流程"),
            ("a person checks; goods come back before the refund", "人工审核, 先退货后退款"),
            ("refund-only blocked; case escalated", "限制仅退款并升级处理"),
        ),
        strict=True,
    )
)


# A bound above every probability: the tier above it is empty.
NEVER: Final = 1.0 + 1e-9


@dataclass(frozen=True)
class PolicyChoice:
    """Tier bounds chosen on a validation window, with what they cost there.

    Attributes:
        bounds: Lower probability bounds of standard, review and restrict (a bound above
            1 leaves its tier empty).
        cost: Total cost on the window (CNY), abusers as labeled.
        cost_per_buyer: ``cost`` over the window's rows.
        counts: Rows per tier.
        honest_above_standard: Share of the honest rows placed in review or restrict.
        flagged_per_day: Review and restrict rows per day of a scoring period.
        chosen: "costs" when chosen from the costs and limits, "fixed" when given.
    """

    bounds: tuple[float, float, float]
    cost: float
    cost_per_buyer: float
    counts: dict[str, int]
    honest_above_standard: float
    flagged_per_day: float
    chosen: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description.

        Returns:
            The fields, bounds as a list.
        """
        out = asdict(self)
        out["bounds"] = list(self.bounds)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyChoice:
        """Rebuild from :meth:`to_dict` output.

        Args:
            data: The description.

        Returns:
            The choice.

        Raises:
            ValueError: The bounds are not three ascending numbers.
        """
        b = tuple(float(v) for v in data["bounds"])
        if len(b) != 3 or not b[0] <= b[1] <= b[2] or any(math.isnan(v) for v in b):
            raise ValueError(f"policy bounds must be three ascending numbers, got {b}")
        return cls(
            bounds=(b[0], b[1], b[2]),
            cost=float(data["cost"]),
            cost_per_buyer=float(data["cost_per_buyer"]),
            counts={str(k): int(v) for k, v in data["counts"].items()},
            honest_above_standard=float(data["honest_above_standard"]),
            flagged_per_day=float(data["flagged_per_day"]),
            chosen=str(data["chosen"]),
        )


def tier_costs(policy: PolicyParams) -> tuple[np.ndarray, np.ndarray]:
    """Cost of placing an abuser and an honest buyer in each tier.

    Args:
        policy: Costs.

    Returns:
        (abuser cost, honest cost), each one value per tier in TIERS order.
    """
    abuser = np.array([policy.abuse_loss * (1 - policy.loss_prevented[t]) for t in TIERS])
    honest = np.array([policy.friction_cost * policy.friction[t] for t in TIERS])
    return abuser, honest


def tier_index(tiers: np.ndarray) -> np.ndarray:
    """Position of each tier name in TIERS.

    Args:
        tiers: Tier names.

    Returns:
        Integers 0-3.

    Raises:
        ValueError: An unknown tier name.
    """
    names = np.asarray(tiers, dtype=object)
    idx = np.full(names.shape, -1, dtype="int64")
    for i, t in enumerate(TIERS):
        idx[names == t] = i
    if (idx < 0).any():
        raise ValueError(f"unknown tier {names[idx < 0][0]!r}")
    return idx


def realized_cost(y_true: np.ndarray, tiers: np.ndarray, policy: PolicyParams) -> float:
    """Total cost of a tier assignment when the outcomes are known.

    Args:
        y_true: 1 for an abuser, 0 for an honest buyer.
        tiers: Tier names, one per row.
        policy: Costs.

    Returns:
        The cost (CNY).
    """
    abuser, honest = tier_costs(policy)
    idx = tier_index(tiers)
    y = np.asarray(y_true).astype(bool)
    return float(abuser[idx[y]].sum() + honest[idx[~y]].sum())


def describe(
    y_true: np.ndarray,
    tiers: np.ndarray,
    policy: PolicyParams,
    *,
    periods: int,
    period_days: int,
) -> dict[str, float]:
    """Counts per tier, cost and the two limits' figures for a tier assignment.

    Args:
        y_true: 1 for an abuser, 0 for an honest buyer.
        tiers: Tier names, one per row.
        policy: Costs.
        periods: Scoring periods (cutoffs) the rows come from.
        period_days: Days per scoring period.

    Returns:
        "count.<tier>", "cost", "cost_per_buyer", "honest_above_standard",
        "flagged_per_day".
    """
    idx = tier_index(tiers)
    y = np.asarray(y_true).astype(bool)
    n = max(idx.size, 1)
    flagged = idx >= TIERS.index(FIRST_FLAGGED_TIER)
    cost = realized_cost(y, tiers, policy)
    out = {f"count.{t}": float((idx == i).sum()) for i, t in enumerate(TIERS)}
    out.update(
        cost=cost,
        cost_per_buyer=cost / n,
        honest_above_standard=float(flagged[~y].mean()) if (~y).any() else math.nan,
        flagged_per_day=float(flagged.sum()) / max(periods, 1) / period_days,
    )
    return out


def choose_bounds(
    probability: np.ndarray,
    y_true: np.ndarray,
    policy: PolicyParams,
    *,
    periods: int,
    period_days: int,
    max_candidates: int = 1024,
) -> PolicyChoice:
    """Tier bounds of least cost on a labeled window, within the two limits.

    The cost of a buyer depends only on their tier, and every limit only on the review
    bound, so the search is exact over the candidate bounds (the window's distinct
    probabilities, or ``max_candidates`` quantiles of them) in linear time.

    Args:
        probability: Calibrated probabilities of the window's rows.
        y_true: Their labels (1 abuser).
        policy: Costs and limits (``policy.bounds``, when set, is used as given).
        periods: Scoring periods (cutoffs) in the window.
        period_days: Days per scoring period.
        max_candidates: Cap on the candidate bounds.

    Returns:
        The choice; when no review bound meets the limits, review and restrict stay empty.

    Raises:
        ValueError: Empty window, NaN probabilities or labels other than 0/1.
    """
    prob = np.asarray(probability, dtype="float64")
    y = np.asarray(y_true)
    if prob.size == 0 or prob.shape != y.shape:
        raise ValueError("choose_bounds needs one label per probability, and some rows")
    if not ((prob >= 0) & (prob <= 1)).all() or not np.isin(y, (0, 1)).all():
        raise ValueError("choose_bounds needs probabilities in [0, 1] and 0/1 labels")
    y = y.astype(bool)
    if policy.bounds is not None:
        bounds = (policy.bounds[0], policy.bounds[1], policy.bounds[2])
        return _choice(prob, y, bounds, policy, periods, period_days, "fixed")
    cands = np.unique(prob)
    if cands.size > max_candidates:
        cands = np.unique(np.quantile(prob, np.linspace(0, 1, max_candidates)))
    cands = np.append(cands, NEVER)
    order = np.sort(prob)
    # Rows at or above each candidate, split by class.
    above = prob.size - np.searchsorted(order, cands, side="left")
    pos_sorted = np.sort(prob[y])
    pos = y.sum() - np.searchsorted(pos_sorted, cands, side="left")
    neg = above - pos
    a, h = tier_costs(policy)
    # cost = const + f(j1) + g(j2) + k(j3) for bounds j1 <= j2 <= j3 (see module doc).
    f = (a[1] - a[0]) * pos + (h[1] - h[0]) * neg
    g = (a[2] - a[1]) * pos + (h[2] - h[1]) * neg
    k = (a[3] - a[2]) * pos + (h[3] - h[2]) * neg
    n_neg = max(int((~y).sum()), 1)
    feasible = (neg / n_neg <= policy.max_honest_above_standard) & (
        above / max(periods, 1) / period_days <= policy.review_capacity_per_day
    )
    arg_f = _running_argmin(f)
    # The restrict bound j3 >= j2: a running minimum from the right end.
    arg_k = k.size - 1 - _running_argmin(k[::-1])[::-1]
    total = np.where(feasible, f[arg_f] + g + k[arg_k], np.inf)
    j2 = int(np.argmin(total))  # the sentinel is always feasible: nobody flagged
    j1, j3 = int(arg_f[j2]), int(arg_k[j2])
    bounds = (float(cands[j1]), float(cands[j2]), float(cands[j3]))
    return _choice(prob, y, bounds, policy, periods, period_days, "costs")


def _running_argmin(values: np.ndarray) -> np.ndarray:
    """Index of the minimum of values[: i + 1] for each i (first one on ties)."""
    idx = np.zeros(values.size, dtype="int64")
    current = 0
    for i in range(values.size):
        if values[i] < values[current]:
            current = i
        idx[i] = current
    return idx


def _choice(
    prob: np.ndarray,
    y: np.ndarray,
    bounds: tuple[float, float, float],
    policy: PolicyParams,
    periods: int,
    period_days: int,
    chosen: str,
) -> PolicyChoice:
    d = describe(
        y, assign_tiers(prob, bounds), policy, periods=periods, period_days=period_days
    )
    return PolicyChoice(
        bounds=bounds,
        cost=d["cost"],
        cost_per_buyer=d["cost_per_buyer"],
        counts={t: int(d[f"count.{t}"]) for t in TIERS},
        honest_above_standard=d["honest_above_standard"],
        flagged_per_day=d["flagged_per_day"],
        chosen=chosen,
    )


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
