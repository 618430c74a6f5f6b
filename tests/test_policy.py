from __future__ import annotations

import numpy as np
import pytest

from refundguard.config import PolicyParams, params_from_dict
from refundguard.policy import TIER_TEXT, TIERS, assign_tiers, risk_score, thresholds

BOUNDS = thresholds(PolicyParams())  # (0.02, 0.2, 0.6)


def test_thresholds_follow_the_params() -> None:
    assert BOUNDS == (0.02, 0.2, 0.6)
    p = params_from_dict({"policy": {"standard_from": 0.05, "review_from": 0.3,
                                     "restrict_from": 0.9}})
    assert thresholds(p.policy) == (0.05, 0.3, 0.9)


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
