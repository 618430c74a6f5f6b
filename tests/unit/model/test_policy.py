from __future__ import annotations

import dataclasses
import itertools
import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refundguard.config import PolicyParams, params_from_dict
from refundguard.contract.vocabulary import FLAGGED_TIERS, TIERS
from refundguard.errors import ConfigError
from refundguard.model.policy import (
    TIER_TEXT,
    PolicyChoice,
    assign_tiers,
    choose_bounds,
    describe,
    realized_cost,
    risk_score,
    tier_costs,
    tier_index,
)

BOUNDS = (0.02, 0.2, 0.6)


def test_tiers_and_texts() -> None:
    assert TIERS == ("trusted", "standard", "review", "restrict")
    assert set(TIER_TEXT) == set(TIERS)
    for english, chinese in TIER_TEXT.values():
        assert english and chinese


@pytest.mark.parametrize(
    ("probability", "tier"),
    [
        (0.0, "trusted"),
        (0.0199999, "trusted"),
        (0.02, "standard"),  # exactly on a bound: the higher tier
        (0.1, "standard"),
        (np.nextafter(0.2, 0), "standard"),
        (0.2, "review"),
        (0.5999, "review"),
        (0.6, "restrict"),
        (0.99, "restrict"),
        (1.0, "restrict"),
    ],
)
def test_tier_boundaries(probability: float, tier: str) -> None:
    assert assign_tiers(np.array([probability]), BOUNDS).tolist() == [tier]


@pytest.mark.parametrize("bounds", [(0.02, 0.2, 0.6), (0.1, 0.25, 0.5), (0.001, 0.002, 0.003)])
def test_every_bound_belongs_to_the_higher_tier(bounds: tuple[float, float, float]) -> None:
    below = [np.nextafter(b, 0) for b in bounds]
    got = assign_tiers(np.array(list(bounds) + below), bounds).tolist()
    assert got == ["standard", "review", "restrict", "trusted", "standard", "review"]


def test_assign_tiers_vectorised_and_ordered(rng: np.random.Generator) -> None:
    p = rng.random(1000)
    tiers = assign_tiers(p, BOUNDS)
    assert tiers.shape == (1000,)
    rank = np.array([TIERS.index(t) for t in tiers])
    order = np.argsort(p)
    assert (np.diff(rank[order]) >= 0).all()  # a higher probability never gets a lower tier
    expected = np.where(p >= 0.6, 3, np.where(p >= 0.2, 2, np.where(p >= 0.02, 1, 0)))
    np.testing.assert_array_equal(rank, expected)


def test_assign_tiers_empty() -> None:
    assert assign_tiers(np.array([]), BOUNDS).tolist() == []


def test_equal_bounds_leave_the_middle_tiers_empty() -> None:
    got = assign_tiers(np.array([0.1, 0.5, 0.9]), (0.5, 0.5, 0.5)).tolist()
    assert got == ["trusted", "restrict", "restrict"]
    # A bound above 1 leaves its tier (and every tier above it) empty.
    got = assign_tiers(np.array([0.0, 0.3, 1.0]), (0.3, 1.5, 1.5)).tolist()
    assert got == ["trusted", "standard", "standard"]


@pytest.mark.parametrize(
    ("probability", "score"),
    [
        (0.0, 0),
        (1.0, 1000),
        (0.5, 500),
        (0.1234, 123),
        (0.1236, 124),
        (0.0004, 0),
        (0.0006, 1),
        (0.9996, 1000),
        (-0.3, 0),  # clipped
        (1.7, 1000),  # clipped
    ],
)
def test_risk_score(probability: float, score: int) -> None:
    assert risk_score(np.array([probability])).tolist() == [score]


def test_risk_score_dtype_and_range(rng: np.random.Generator) -> None:
    p = rng.uniform(-0.5, 1.5, 1000)
    s = risk_score(p)
    assert s.dtype == np.int64
    assert s.min() >= 0 and s.max() <= 1000
    assert (np.diff(s[np.argsort(p)]) >= 0).all()
    inside = (p >= 0) & (p <= 1)
    assert np.abs(s[inside] - p[inside] * 1000).max() <= 0.5 + 1e-9


@pytest.mark.parametrize("func", [risk_score, lambda p: assign_tiers(p, BOUNDS)])
def test_nan_probability_raises(func: Any) -> None:
    with pytest.raises(ValueError, match="NaN"):
        func(np.array([0.1, math.nan, 0.3]))


# --- costs of a tier assignment ---------------------------------------------------------

# abuser: 100 * (1 - prevented) = 100, 50, 10, 0; honest: 5 * friction = 0, 1, 10, 30
HAND = PolicyParams(
    abuse_loss=100.0,
    friction_cost=5.0,
    loss_prevented={"trusted": 0.0, "standard": 0.5, "review": 0.9, "restrict": 1.0},
    friction={"trusted": 0.0, "standard": 0.2, "review": 2.0, "restrict": 6.0},
)


def test_tier_costs_by_hand() -> None:
    abuser, honest = tier_costs(HAND)
    np.testing.assert_allclose(abuser, [100.0, 50.0, 10.0, 0.0])
    np.testing.assert_allclose(honest, [0.0, 1.0, 10.0, 30.0])
    # The defaults: 150 * (1, 0.7, 0.15, 0) and 10 * (0, 0.1, 1, 4).
    abuser, honest = tier_costs(PolicyParams())
    np.testing.assert_allclose(abuser, [150.0, 105.0, 22.5, 0.0])
    np.testing.assert_allclose(honest, [0.0, 1.0, 10.0, 40.0])


@pytest.mark.parametrize(
    ("y", "tiers", "cost"),
    [
        ([1], ["trusted"], 100.0),
        ([1], ["standard"], 50.0),
        ([1], ["review"], 10.0),
        ([1], ["restrict"], 0.0),
        ([0], ["trusted"], 0.0),
        ([0], ["standard"], 1.0),
        ([0], ["review"], 10.0),
        ([0], ["restrict"], 30.0),
        ([1, 1, 0, 0, 0], ["trusted", "restrict", "standard", "review", "restrict"], 141.0),
        ([0, 0, 0], ["standard", "standard", "standard"], 3.0),
        ([], [], 0.0),
    ],
)
def test_realized_cost_by_hand(y: list[int], tiers: list[str], cost: float) -> None:
    got = realized_cost(np.array(y, dtype="int64"), np.array(tiers, dtype=object), HAND)
    assert got == pytest.approx(cost)


def test_realized_cost_accepts_boolean_and_float_labels() -> None:
    tiers = np.array(["review", "review"], dtype=object)
    assert realized_cost(np.array([True, False]), tiers, HAND) == pytest.approx(20.0)
    assert realized_cost(np.array([1.0, 0.0]), tiers, HAND) == pytest.approx(20.0)


def test_describe_by_hand() -> None:
    y = np.array([1, 1, 0, 0, 0])
    tiers = np.array(["trusted", "restrict", "standard", "review", "restrict"], dtype=object)
    d = describe(y, tiers, PolicyParams(), periods=2, period_days=28)
    # abusers: 150 + 0; honest: 1 + 10 + 40
    assert d["cost"] == pytest.approx(201.0)
    assert d["cost_per_buyer"] == pytest.approx(201.0 / 5)
    assert {t: d[f"count.{t}"] for t in TIERS} == {
        "trusted": 1.0, "standard": 1.0, "review": 1.0, "restrict": 2.0,
    }
    assert d["honest_above_standard"] == pytest.approx(2 / 3)  # review + restrict of 3 honest
    assert d["flagged_per_day"] == pytest.approx(3 / 2 / 28)  # 3 flagged over 2 x 28 days


def test_describe_without_honest_rows_or_rows() -> None:
    d = describe(np.array([1, 1]), np.array(["review", "trusted"], dtype=object),
                 PolicyParams(), periods=1, period_days=7)
    assert math.isnan(d["honest_above_standard"])
    assert d["flagged_per_day"] == pytest.approx(1 / 7)
    empty = describe(np.array([], dtype="int64"), np.array([], dtype=object), PolicyParams(),
                     periods=3, period_days=28)
    assert empty["cost"] == 0.0 and empty["cost_per_buyer"] == 0.0
    assert empty["flagged_per_day"] == 0.0
    assert math.isnan(empty["honest_above_standard"])
    assert all(empty[f"count.{t}"] == 0.0 for t in TIERS)


def test_tier_index() -> None:
    got = tier_index(np.array(["restrict", "trusted", "review", "standard"], dtype=object))
    assert got.tolist() == [3, 0, 2, 1]
    with pytest.raises(ValueError, match="unknown tier 'vip'"):
        tier_index(np.array(["trusted", "vip"], dtype=object))
    with pytest.raises(ValueError, match="unknown tier"):
        realized_cost(np.array([1]), np.array(["Trusted"], dtype=object), HAND)


# --- choose_bounds: hand-worked windows -------------------------------------------------


def _wide(**changes: Any) -> PolicyParams:
    """Default costs, with limits that never bind unless overridden."""
    base: dict[str, Any] = {"max_honest_above_standard": 1.0, "review_capacity_per_day": 1e9}
    base.update(changes)
    return PolicyParams(**base)


# 3 rows at 0.9 (2 abusers, 1 honest) and 9 honest rows at 0.2: 10 honest rows in all.
# Default costs: abuser 150/105/22.5/0, honest 0/1/10/40 per tier. The 0.9 group costs
# 300 trusted, 211 standard, 55 review, 40 restrict; the 0.2 group costs nothing trusted.
LUMP_P = np.array([0.9, 0.9, 0.9] + [0.2] * 9)
LUMP_Y = np.array([1, 1, 0] + [0] * 9)


def test_unconstrained_optimum_by_hand() -> None:
    c = choose_bounds(LUMP_P, LUMP_Y, _wide(), periods=1, period_days=1)
    assert c.chosen == "costs"
    assert c.bounds == (0.9, 0.9, 0.9)
    assert c.cost == pytest.approx(40.0)
    assert c.cost_per_buyer == pytest.approx(40.0 / 12)
    assert c.counts == {"trusted": 9, "standard": 0, "review": 0, "restrict": 3}
    assert c.honest_above_standard == pytest.approx(0.1)
    assert c.flagged_per_day == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("cap", "cost"),
    [(1.0, 40.0), (0.1, 40.0), (0.0999, 211.0), (0.05, 211.0)],
)
def test_cap_on_honest_above_standard_binds(cap: float, cost: float) -> None:
    """Flagging the 0.9 group puts 1 of 10 honest rows above standard."""
    c = choose_bounds(LUMP_P, LUMP_Y, _wide(max_honest_above_standard=cap), periods=1,
                      period_days=1)
    assert c.cost == pytest.approx(cost)
    assert c.honest_above_standard <= cap
    if cost == 211.0:  # nobody may be flagged: the 0.9 group goes to standard
        assert c.bounds[0] == 0.9 and c.bounds[1] > 1 and c.bounds[2] > 1
        assert c.counts == {"trusted": 9, "standard": 3, "review": 0, "restrict": 0}
        assert c.honest_above_standard == 0.0 and c.flagged_per_day == 0.0


@pytest.mark.parametrize(
    ("capacity", "periods", "period_days", "cost"),
    [
        (3.0, 1, 1, 40.0),  # 3 flagged / 1 day
        (2.9, 1, 1, 211.0),
        (1.5, 2, 1, 40.0),  # 3 flagged over 2 periods of 1 day
        (1.4, 2, 1, 211.0),
        (0.1, 1, 30, 40.0),  # 3 flagged over 30 days
        (0.099, 1, 30, 211.0),
        (0.05, 2, 30, 40.0),  # 3 flagged over 2 x 30 days
        (0.049, 2, 30, 211.0),
    ],
)
def test_review_capacity_binds(capacity: float, periods: int, period_days: int,
                               cost: float) -> None:
    c = choose_bounds(LUMP_P, LUMP_Y, _wide(review_capacity_per_day=capacity),
                      periods=periods, period_days=period_days)
    assert c.cost == pytest.approx(cost)
    assert c.flagged_per_day <= capacity
    assert c.counts["review"] + c.counts["restrict"] == (3 if cost == 40.0 else 0)


# 0.9: 1 abuser; 0.6: 1 abuser + 2 honest; 0.1: 6 honest (8 honest rows in all).
# The 0.6 group costs 150 trusted, 107 standard, 42.5 review, 80 restrict.
STEP_P = np.array([0.9, 0.6, 0.6, 0.6] + [0.1] * 6)
STEP_Y = np.array([1, 1, 0, 0] + [0] * 6)


@pytest.mark.parametrize(
    ("changes", "bounds", "cost", "counts"),
    [
        ({}, (0.6, 0.6, 0.9), 42.5, (6, 0, 3, 1)),
        # 2 of 8 honest rows in review is 25%: over a 20% cap, so review starts at 0.9
        ({"max_honest_above_standard": 0.2}, (0.6, 0.9, 0.9), 107.0, (6, 3, 0, 1)),
        ({"max_honest_above_standard": 0.25}, (0.6, 0.6, 0.9), 42.5, (6, 0, 3, 1)),
        # one case a day fits only the 0.9 row
        ({"review_capacity_per_day": 1.0}, (0.6, 0.9, 0.9), 107.0, (6, 3, 0, 1)),
        ({"review_capacity_per_day": 3.99}, (0.6, 0.9, 0.9), 107.0, (6, 3, 0, 1)),
        ({"review_capacity_per_day": 4.0}, (0.6, 0.6, 0.9), 42.5, (6, 0, 3, 1)),
    ],
)
def test_limits_move_the_review_bound(changes: dict[str, float],
                                      bounds: tuple[float, float, float], cost: float,
                                      counts: tuple[int, int, int, int]) -> None:
    c = choose_bounds(STEP_P, STEP_Y, _wide(**changes), periods=1, period_days=1)
    assert c.bounds == bounds
    assert c.cost == pytest.approx(cost)
    assert tuple(c.counts[t] for t in TIERS) == counts


def test_all_honest_window_flags_nobody() -> None:
    p = np.array([0.05, 0.3, 0.3, 0.7, 0.95])
    c = choose_bounds(p, np.zeros(5, dtype="int64"), _wide(), periods=1, period_days=1)
    assert c.cost == 0.0
    assert c.counts == {"trusted": 5, "standard": 0, "review": 0, "restrict": 0}
    assert all(b > 1 for b in c.bounds)
    assert c.honest_above_standard == 0.0


def test_all_abuser_window_restricts_everyone() -> None:
    p = np.array([0.05, 0.3, 0.7])
    c = choose_bounds(p, np.ones(3, dtype="int64"), _wide(), periods=1, period_days=1)
    assert c.cost == 0.0
    assert c.counts["restrict"] == 3
    assert c.bounds[2] <= 0.05
    assert math.isnan(c.honest_above_standard)  # no honest rows to measure


@pytest.mark.parametrize(
    "changes",
    [
        {"review_capacity_per_day": 1e-9},  # not even one case fits
        {"max_honest_above_standard": 1e-9},  # every group holds an honest row
    ],
)
def test_no_feasible_review_bound_leaves_review_and_restrict_empty(
    changes: dict[str, float],
) -> None:
    # Each probability holds abusers and an honest row, so flagging anything costs the cap.
    p = np.array([0.2, 0.2, 0.2, 0.5, 0.5, 0.8, 0.8, 0.8])
    y = np.array([1, 1, 0, 1, 0, 1, 1, 0])
    c = choose_bounds(p, y, _wide(**changes), periods=1, period_days=1)
    assert c.counts["review"] == 0 and c.counts["restrict"] == 0
    assert c.bounds[1] > 1 and c.bounds[2] > 1
    assert c.flagged_per_day == 0.0 and c.honest_above_standard == 0.0
    # Standard is still worth using: 5 abusers at 105 + 3 honest at 1 beats 5 x 150.
    assert c.counts["standard"] == 8
    assert c.cost == pytest.approx(5 * 105 + 3 * 1)


def test_fixed_bounds_are_used_as_given() -> None:
    policy = _wide(bounds=(0.5, 0.7, 0.95))
    c = choose_bounds(STEP_P, STEP_Y, policy, periods=1, period_days=1)
    assert c.chosen == "fixed"
    assert c.bounds == (0.5, 0.7, 0.95)
    # 0.9 -> review (abuser 22.5), 0.6 -> standard (105 + 1 + 1), 0.1 -> trusted
    assert c.counts == {"trusted": 6, "standard": 3, "review": 1, "restrict": 0}
    assert c.cost == pytest.approx(129.5)


def test_fixed_bounds_ignore_the_limits() -> None:
    # Everyone is flagged, far beyond the cap and the capacity: the bounds are as given.
    policy = PolicyParams(bounds=(0.01, 0.02, 0.03), max_honest_above_standard=0.01,
                          review_capacity_per_day=0.001)
    c = choose_bounds(STEP_P, STEP_Y, policy, periods=1, period_days=1)
    assert c.chosen == "fixed" and c.bounds == (0.01, 0.02, 0.03)
    assert c.counts["restrict"] == 10
    assert c.honest_above_standard == 1.0
    assert c.cost == pytest.approx(8 * 40.0)


def test_fixed_bounds_from_params_yaml() -> None:
    policy = params_from_dict({"policy": {"bounds": [0.05, 0.3, 0.9]}}).policy
    c = choose_bounds(STEP_P, STEP_Y, policy, periods=1, period_days=1)
    assert c.chosen == "fixed" and c.bounds == (0.05, 0.3, 0.9)
    assert c.counts == {"trusted": 0, "standard": 6, "review": 3, "restrict": 1}


@pytest.mark.parametrize(
    ("prob", "y"),
    [
        ([], []),  # empty window
        ([0.1, 0.2], [1]),  # one label short
        ([0.1], [1, 0]),
        ([0.1, math.nan], [1, 0]),  # NaN probability
        ([0.1, 0.2], [1, 2]),  # a label other than 0/1
        ([0.1, 0.2], [1, -1]),
        ([0.1, 0.2], [1.0, math.nan]),  # NaN label
        ([0.1, 0.2], [1.0, 0.5]),
    ],
)
def test_choose_bounds_rejects_bad_input(prob: list[float], y: list[float]) -> None:
    with pytest.raises(ValueError, match="choose_bounds"):
        choose_bounds(np.array(prob, dtype="float64"), np.array(y), _wide(), periods=1,
                      period_days=1)


def test_bad_input_raises_even_with_fixed_bounds() -> None:
    with pytest.raises(ValueError, match="choose_bounds"):
        choose_bounds(np.array([0.1, math.nan]), np.array([1, 0]), _wide(bounds=BOUNDS),
                      periods=1, period_days=1)


def test_float_and_boolean_labels_are_accepted() -> None:
    ints = choose_bounds(STEP_P, STEP_Y, _wide(), periods=1, period_days=1)
    floats = choose_bounds(STEP_P, STEP_Y.astype("float64"), _wide(), periods=1, period_days=1)
    bools = choose_bounds(STEP_P, STEP_Y.astype(bool), _wide(), periods=1, period_days=1)
    assert ints == floats == bools


@pytest.mark.parametrize("p_out", [math.inf, 1.5])
def test_probabilities_above_one_never_break_the_limits(p_out: float) -> None:
    """A probability above every candidate bound must not slip past the limits.

    The search treats its sentinel bound (just above 1) as "nobody flagged". An input
    probability above it (inf, or a value > 1) must either be refused or kept within the
    limits; here the capacity allows no case at all.
    """
    p = np.array([p_out, 0.5, 0.2])
    y = np.array([0, 0, 0])
    policy = _wide(review_capacity_per_day=1e-9)
    try:
        c = choose_bounds(p, y, policy, periods=1, period_days=1)
    except ValueError:
        return
    assert c.counts["review"] + c.counts["restrict"] == 0
    assert c.flagged_per_day <= policy.review_capacity_per_day
    assert c.cost == 0.0  # all honest: trusted costs nothing
    assert list(c.bounds) == sorted(c.bounds)


# --- choose_bounds against brute force --------------------------------------------------


def _brute_force(prob: np.ndarray, y: np.ndarray, policy: PolicyParams, periods: int,
                 period_days: int) -> tuple[float, tuple[float, float, float]]:
    """Least cost over every bound triple b1 <= b2 <= b3 within the limits.

    Every distinct assignment of rows to tiers is reached by bounds taken from the
    window's probabilities plus one bound above all of them.
    """
    abuser = [policy.abuse_loss * (1 - policy.loss_prevented[t]) for t in TIERS]
    honest = [policy.friction_cost * policy.friction[t] for t in TIERS]
    cands = [*sorted(set(prob.tolist())), 2.0]
    n_honest = int((y == 0).sum())
    best, best_bounds = math.inf, (2.0, 2.0, 2.0)
    for b in itertools.combinations_with_replacement(cands, 3):
        tier = sum((prob >= bound).astype(int) for bound in b)
        cost = sum(abuser[t] if lab else honest[t] for t, lab in zip(tier, y, strict=True))
        flagged = tier >= 2
        honest_share = (flagged & (y == 0)).sum() / max(n_honest, 1)
        per_day = flagged.sum() / periods / period_days
        if honest_share > policy.max_honest_above_standard:
            continue
        if per_day > policy.review_capacity_per_day:
            continue
        if cost < best:
            best, best_bounds = cost, b
    return best, best_bounds


def _check_against_brute_force(prob: np.ndarray, y: np.ndarray, policy: PolicyParams,
                               periods: int, period_days: int) -> PolicyChoice:
    c = choose_bounds(prob, y, policy, periods=periods, period_days=period_days)
    best, _ = _brute_force(prob, y, policy, periods, period_days)
    assert c.cost == pytest.approx(best, rel=1e-9, abs=1e-9)
    # The reported figures are those of the bounds it returns.
    tiers = assign_tiers(prob, c.bounds)
    assert c.cost == pytest.approx(realized_cost(y, tiers, policy), rel=1e-12, abs=1e-12)
    assert c.counts == {t: int((tiers == t).sum()) for t in TIERS}
    assert sum(c.counts.values()) == prob.size
    assert c.cost_per_buyer == pytest.approx(c.cost / prob.size)
    # The limits hold.
    flagged = np.isin(tiers, FLAGGED_TIERS)
    assert flagged.sum() / periods / period_days <= policy.review_capacity_per_day
    assert c.flagged_per_day == pytest.approx(flagged.sum() / periods / period_days)
    if (y == 0).any():
        share = (flagged & (y == 0)).sum() / (y == 0).sum()
        assert share <= policy.max_honest_above_standard
        assert c.honest_above_standard == pytest.approx(share)
    assert c.bounds[0] <= c.bounds[1] <= c.bounds[2]
    assert c.chosen == "costs"
    return c


@st.composite
def _policies(draw: st.DrawFn) -> PolicyParams:
    unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
    prevented = sorted(draw(st.lists(unit, min_size=4, max_size=4)))
    friction = sorted(draw(st.lists(st.floats(min_value=0.0, max_value=6.0), min_size=4,
                                    max_size=4)))
    return PolicyParams(
        abuse_loss=draw(st.floats(min_value=1.0, max_value=500.0)),
        friction_cost=draw(st.floats(min_value=0.5, max_value=50.0)),
        loss_prevented=dict(zip(TIERS, prevented, strict=True)),
        friction=dict(zip(TIERS, friction, strict=True)),
        max_honest_above_standard=draw(st.sampled_from([0.05, 0.1, 0.2, 0.34, 0.5, 1.0])),
        review_capacity_per_day=draw(st.sampled_from([0.1, 0.5, 1.0, 2.0, 3.0, 100.0])),
    )


GRID = [0.0, 0.01, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9, 0.99, 1.0]


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.tuples(st.sampled_from(GRID), st.integers(0, 1)), min_size=1,
                  max_size=12),
    policy=_policies(),
    periods=st.integers(min_value=1, max_value=3),
    period_days=st.integers(min_value=1, max_value=3),
)
def test_choose_bounds_matches_brute_force(rows: list[tuple[float, int]], policy: PolicyParams,
                                           periods: int, period_days: int) -> None:
    prob = np.array([r[0] for r in rows], dtype="float64")
    y = np.array([r[1] for r in rows], dtype="int64")
    _check_against_brute_force(prob, y, policy, periods, period_days)


@pytest.mark.parametrize("seed", range(8))
def test_choose_bounds_matches_brute_force_seeded(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 30
    prob = np.round(rng.beta(0.6, 3.0, n), 2)  # ties on a 0.01 grid
    y = (rng.random(n) < np.clip(prob * 1.3, 0, 1)).astype("int64")
    policy = PolicyParams(max_honest_above_standard=float(rng.choice([0.05, 0.15, 1.0])),
                          review_capacity_per_day=float(rng.choice([0.2, 0.5, 5.0])))
    _check_against_brute_force(prob, y, policy, periods=2, period_days=7)


def test_candidate_cap_keeps_the_limits_and_never_beats_the_exact_search(
    rng: np.random.Generator,
) -> None:
    n = 400
    prob = rng.beta(0.5, 4.0, n)
    y = (rng.random(n) < prob).astype("int64")
    policy = PolicyParams(max_honest_above_standard=0.05, review_capacity_per_day=2.0)
    exact = choose_bounds(prob, y, policy, periods=2, period_days=7)
    for cap in (3, 8, 50):
        coarse = choose_bounds(prob, y, policy, periods=2, period_days=7, max_candidates=cap)
        assert coarse.cost >= exact.cost - 1e-9
        assert coarse.honest_above_standard <= 0.05
        assert coarse.flagged_per_day <= 2.0
        assert coarse.bounds[0] <= coarse.bounds[1] <= coarse.bounds[2]
        tiers = assign_tiers(prob, coarse.bounds)
        assert coarse.cost == pytest.approx(realized_cost(y, tiers, policy))


def test_choose_bounds_is_deterministic_and_order_free(rng: np.random.Generator) -> None:
    prob = np.round(rng.random(50), 2)
    y = (rng.random(50) < prob).astype("int64")
    policy = PolicyParams(max_honest_above_standard=0.2, review_capacity_per_day=3.0)
    a = choose_bounds(prob, y, policy, periods=1, period_days=5)
    perm = rng.permutation(50)
    b = choose_bounds(prob[perm], y[perm], policy, periods=1, period_days=5)
    assert a.cost == pytest.approx(b.cost)
    assert a.counts == b.counts


# --- PolicyChoice ------------------------------------------------------------------------


def test_policy_choice_round_trip_through_json() -> None:
    c = choose_bounds(STEP_P, STEP_Y, _wide(), periods=2, period_days=28)
    d = c.to_dict()
    assert d["bounds"] == [0.6, 0.6, 0.9]
    assert d["counts"] == {"trusted": 6, "standard": 0, "review": 3, "restrict": 1}
    again = PolicyChoice.from_dict(json.loads(json.dumps(d)))
    assert again == c
    assert isinstance(again.bounds, tuple)


def test_policy_choice_from_dict_converts_types() -> None:
    d = {"bounds": [0, "0.5", 1], "cost": 3, "cost_per_buyer": "1.5",
         "counts": {"trusted": 1.0, "review": "2"}, "honest_above_standard": 0,
         "flagged_per_day": 1, "chosen": "fixed"}
    c = PolicyChoice.from_dict(d)
    assert c.bounds == (0.0, 0.5, 1.0)
    assert c.counts == {"trusted": 1, "review": 2}
    assert c.cost == 3.0 and isinstance(c.cost, float)


@pytest.mark.parametrize(
    "bounds",
    [
        [0.1, 0.2],
        [0.1, 0.2, 0.3, 0.4],
        [],
        [0.3, 0.2, 0.5],
        [0.1, 0.5, 0.4],
        [0.1, math.nan, 0.5],
        [math.nan, math.nan, math.nan],
    ],
)
def test_policy_choice_rejects_bad_bounds(bounds: list[float]) -> None:
    d = choose_bounds(STEP_P, STEP_Y, _wide(), periods=1, period_days=1).to_dict()
    d["bounds"] = bounds
    with pytest.raises(ValueError, match="three ascending"):
        PolicyChoice.from_dict(d)


def test_policy_choice_is_frozen() -> None:
    c = choose_bounds(STEP_P, STEP_Y, _wide(), periods=1, period_days=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.cost = 0.0  # type: ignore[misc]


# --- params.yaml validation -------------------------------------------------------------


def _policy_raw(**changes: Any) -> dict[str, Any]:
    return {"policy": changes}


@pytest.mark.parametrize(
    "changes",
    [
        # loss_prevented decreasing, missing or extra tier, negative, above 1
        {"loss_prevented": {"trusted": 0.0, "standard": 0.5, "review": 0.4, "restrict": 1.0}},
        {"loss_prevented": {"trusted": 0.0, "standard": 0.3, "review": 0.85}},
        {"loss_prevented": {"trusted": 0.0, "standard": 0.3, "review": 0.85, "restrict": 1.0,
                            "vip": 1.0}},
        {"loss_prevented": {"trusted": -0.1, "standard": 0.3, "review": 0.85, "restrict": 1.0}},
        {"loss_prevented": {"trusted": 0.0, "standard": 0.3, "review": 0.85, "restrict": 1.2}},
        # friction decreasing, missing tier
        {"friction": {"trusted": 0.0, "standard": 2.0, "review": 1.0, "restrict": 4.0}},
        {"friction": {"standard": 0.1, "review": 1.0, "restrict": 4.0}},
        # costs
        {"abuse_loss": 0.0},
        {"abuse_loss": -5.0},
        {"friction_cost": 0.0},
        # limits
        {"max_honest_above_standard": 0.0},
        {"max_honest_above_standard": 1.5},
        {"review_capacity_per_day": 0.0},
        {"review_capacity_per_day": -1.0},
        # bounds: not ascending, equal, outside (0, 1), wrong length, not numbers
        {"bounds": [0.3, 0.2, 0.6]},
        {"bounds": [0.02, 0.6, 0.2]},
        {"bounds": [0.2, 0.2, 0.6]},
        {"bounds": [0.0, 0.2, 0.6]},
        {"bounds": [0.02, 0.2, 1.0]},
        {"bounds": [0.02, 0.2]},
        {"bounds": [0.02, 0.2, 0.6, 0.9]},
        {"bounds": ["low", 0.2, 0.6]},
        {"bounds": 0.5},
        # wrong types and unknown keys
        {"abuse_loss": "a lot"},
        {"standard_from": 0.05},
    ],
)
def test_policy_params_validation(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="policy"):
        params_from_dict(_policy_raw(**changes))


def test_policy_params_defaults_and_overrides() -> None:
    p = params_from_dict({}).policy
    assert p == PolicyParams()
    assert p.bounds is None
    p = params_from_dict(_policy_raw(
        bounds=[0.05, 0.3, 0.9], abuse_loss=200, max_honest_above_standard=1,
        loss_prevented={"trusted": 0.0, "standard": 0.0, "review": 0.0, "restrict": 0.0},
    )).policy
    assert p.bounds == (0.05, 0.3, 0.9)
    assert p.abuse_loss == 200.0 and isinstance(p.abuse_loss, float)
    assert p.max_honest_above_standard == 1.0
    assert set(p.loss_prevented.values()) == {0.0}  # flat is allowed: never decreasing
