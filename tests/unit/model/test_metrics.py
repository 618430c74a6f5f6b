from __future__ import annotations

import math

import numpy as np
import pytest

from refundguard.model.metrics import precision_at_k, ranking_metrics, recall_at_fpr

# Scores descending; positives at ranks 1, 3 and 5 of 10 (three positives, seven negatives).
Y = np.array([1, 0, 1, 0, 1, 0, 0, 0, 0, 0])
S = np.linspace(1.0, 0.1, 10)


# --- precision_at_k ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "expected"),
    [(1, 1.0), (2, 0.5), (3, 2 / 3), (4, 0.5), (5, 0.6), (6, 0.5), (10, 0.3)],
)
def test_precision_at_k_hand_computed(k: int, expected: float) -> None:
    assert precision_at_k(Y, S, k) == pytest.approx(expected)


def test_precision_at_k_ignores_input_order() -> None:
    perm = np.random.default_rng(0).permutation(len(Y))
    for k in range(1, 11):
        assert precision_at_k(Y[perm], S[perm], k) == pytest.approx(precision_at_k(Y, S, k))


def test_precision_at_k_larger_than_n() -> None:
    assert precision_at_k(Y, S, 1000) == pytest.approx(0.3)


@pytest.mark.parametrize("k", [0, -3])
def test_precision_at_k_zero(k: int) -> None:
    assert math.isnan(precision_at_k(Y, S, k))


def test_precision_at_k_no_rows() -> None:
    assert math.isnan(precision_at_k(np.array([], dtype=int), np.array([]), 5))


def test_precision_at_k_ties_broken_by_position() -> None:
    score = np.array([0.5, 0.5, 0.5, 0.1])
    assert precision_at_k(np.array([0, 1, 1, 0]), score, 1) == 0.0
    assert precision_at_k(np.array([1, 0, 0, 0]), score, 1) == 1.0
    assert precision_at_k(np.array([1, 0, 1, 0]), score, 2) == 0.5
    # Repeats exactly.
    y = np.array([0, 1, 0, 1, 1, 0])
    s = np.array([0.3, 0.3, 0.3, 0.3, 0.9, 0.0])
    # Top 3: the 0.9 row, then rows 0 and 1 of the four tied at 0.3.
    assert precision_at_k(y, s, 3) == precision_at_k(y, s, 3) == pytest.approx(2 / 3)
    assert precision_at_k(y, s, 4) == pytest.approx(2 / 4)


def test_precision_at_k_nan_scores_rank_last() -> None:
    y = np.array([1, 1, 0, 0])
    s = np.array([np.nan, np.nan, 0.1, 0.2])
    assert precision_at_k(y, s, 2) == 0.0
    assert precision_at_k(y, s, 3) == pytest.approx(1 / 3)
    # Even below negative infinity-like low scores.
    assert precision_at_k(np.array([1, 0]), np.array([np.nan, -1e300]), 1) == 0.0


def test_precision_at_k_all_nan_scores() -> None:
    assert precision_at_k(np.array([1, 0, 1]), np.full(3, np.nan), 3) == pytest.approx(2 / 3)


def test_precision_at_k_accepts_lists_and_bools() -> None:
    assert precision_at_k([True, False], [0.9, 0.1], 1) == 1.0  # type: ignore[arg-type]


# --- recall_at_fpr ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_fpr", "expected"),
    [(0.0, 1 / 3), (0.1, 1 / 3), (1 / 7, 2 / 3), (0.2, 2 / 3), (2 / 7, 1.0), (0.99, 1.0)],
)
def test_recall_at_fpr_hand_computed(max_fpr: float, expected: float) -> None:
    assert recall_at_fpr(Y, S, max_fpr) == pytest.approx(expected)


def test_recall_at_fpr_ties_cannot_be_split() -> None:
    # A positive and a negative share the top score: flagging one flags both.
    y = np.array([1, 0, 0, 0, 0])
    s = np.array([0.9, 0.9, 0.1, 0.2, 0.3])
    assert recall_at_fpr(y, s, 0.2) == 0.0
    assert recall_at_fpr(y, s, 0.25) == 1.0


def test_recall_at_fpr_perfect_and_reversed() -> None:
    y = np.array([0, 0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    assert recall_at_fpr(y, s, 0.01) == 1.0
    assert recall_at_fpr(y, -s, 0.01) == 0.0


def test_recall_at_fpr_nan_scores_rank_last() -> None:
    y = np.array([1, 1, 0, 0, 0])
    s = np.array([np.nan, 0.9, 0.5, 0.4, 0.3])
    assert recall_at_fpr(y, s, 0.01) == pytest.approx(0.5)
    assert recall_at_fpr(y, s, 0.99) == pytest.approx(0.5)
    assert recall_at_fpr(y, s, 1.0) == pytest.approx(1.0)


@pytest.mark.parametrize("y", [[0, 0, 0], [1, 1, 1], [1], [0]])
def test_recall_at_fpr_one_class(y: list[int]) -> None:
    assert math.isnan(recall_at_fpr(np.array(y, dtype=int), np.linspace(0, 1, len(y)), 0.1))


def test_recall_at_fpr_no_rows() -> None:
    # Neither class is present: NaN, as documented, not an error.
    assert math.isnan(recall_at_fpr(np.array([], dtype=int), np.array([]), 0.1))


# --- input checks -----------------------------------------------------------------------


@pytest.mark.parametrize("fn", [
    lambda y, s: precision_at_k(y, s, 1),
    lambda y, s: recall_at_fpr(y, s, 0.1),
    lambda y, s: ranking_metrics(y, s, top_share=0.5, max_fpr=0.1),
])
def test_mismatched_lengths(fn) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="3 values but score has 2"):
        fn(np.array([0, 1, 0]), np.array([0.1, 0.2]))


FUNCTIONS = [
    lambda y, s: precision_at_k(y, s, 1),
    lambda y, s: recall_at_fpr(y, s, 0.1),
    lambda y, s: ranking_metrics(y, s, top_share=0.5, max_fpr=0.1),
]


@pytest.mark.parametrize("y", [[0, 2, 1], [-1, 0, 1], [3, 3, 3]])
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_non_binary_y(fn, y: list[int]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="only 0 and 1"):
        fn(np.array(y), np.array([0.1, 0.2, 0.3]))


def test_fractional_y_is_not_binary() -> None:
    # 0.5 or 0.3 is not a 0/1 outcome (say, probabilities passed by mistake); it must not
    # be truncated to 0 silently.
    for y in ([0, 1, 0.5], [0.3, 1, 0]):
        for fn in FUNCTIONS:
            with pytest.raises(ValueError, match="only 0 and 1"):
                fn(np.array(y), np.array([0.1, 0.2, 0.3]))


# --- ranking_metrics --------------------------------------------------------------------

KEYS = {"roc_auc", "average_precision", "recall_at_fpr", "precision_at_top", "n", "positives",
        "k"}


def test_ranking_metrics_perfect_scorer(rng: np.random.Generator) -> None:
    y = (rng.random(1000) < 0.1).astype(int)
    score = y + rng.random(1000) * 0.5  # every positive above every negative
    m = ranking_metrics(y, score, top_share=0.05, max_fpr=0.01)
    assert set(m) == KEYS
    assert m["roc_auc"] == 1.0
    assert m["average_precision"] == pytest.approx(1.0)
    assert m["recall_at_fpr"] == 1.0
    assert m["precision_at_top"] == 1.0
    assert m["n"] == 1000.0
    assert m["positives"] == float(y.sum())
    assert m["k"] == 50.0
    assert all(isinstance(v, float) for v in m.values())


def test_ranking_metrics_random_scorer(rng: np.random.Generator) -> None:
    n = 20_000
    y = (rng.random(n) < 0.1).astype(int)
    score = rng.random(n)
    m = ranking_metrics(y, score, top_share=0.01, max_fpr=0.01)
    prevalence = y.mean()
    assert m["roc_auc"] == pytest.approx(0.5, abs=0.02)
    assert m["average_precision"] == pytest.approx(prevalence, abs=0.02)
    assert m["recall_at_fpr"] == pytest.approx(0.01, abs=0.01)
    assert m["precision_at_top"] == pytest.approx(prevalence, abs=0.07)
    assert m["k"] == 200.0 and m["n"] == float(n)
    assert m["positives"] == float(y.sum())


def test_ranking_metrics_hand_computed() -> None:
    m = ranking_metrics(Y, S, top_share=0.2, max_fpr=1 / 7)
    assert m["k"] == 2.0
    assert m["precision_at_top"] == pytest.approx(0.5)
    assert m["recall_at_fpr"] == pytest.approx(2 / 3)
    # AUC: pairs (positive above negative) / 21 = (7 + 6 + 5) / 21
    assert m["roc_auc"] == pytest.approx(18 / 21)
    assert m["average_precision"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert (m["n"], m["positives"]) == (10.0, 3.0)


def test_ranking_metrics_nan_scores_rank_last() -> None:
    y = np.array([1, 1, 0, 0, 0])
    s = np.array([np.nan, 0.9, 0.5, 0.4, 0.3])
    m = ranking_metrics(y, s, top_share=0.2, max_fpr=0.01)
    # Same ranking as a score that puts the missing row last.
    m_low = ranking_metrics(y, np.array([-1.0, 0.9, 0.5, 0.4, 0.3]), top_share=0.2,
                            max_fpr=0.01)
    assert m == pytest.approx(m_low)
    assert m["precision_at_top"] == 1.0
    assert m["recall_at_fpr"] == pytest.approx(0.5)


def test_ranking_metrics_k_at_least_one() -> None:
    m = ranking_metrics(Y, S, top_share=0.001, max_fpr=0.1)
    assert m["k"] == 1.0
    assert m["precision_at_top"] == 1.0


@pytest.mark.parametrize("y", [np.zeros(20, dtype=int), np.ones(20, dtype=int)])
def test_ranking_metrics_one_class(y: np.ndarray) -> None:
    m = ranking_metrics(y, np.linspace(0, 1, 20), top_share=0.1, max_fpr=0.1)
    assert math.isnan(m["roc_auc"])
    assert math.isnan(m["average_precision"])
    assert math.isnan(m["recall_at_fpr"])
    assert m["precision_at_top"] == float(y[0])
    assert m["positives"] == float(y.sum())
    assert m["k"] == 2.0
