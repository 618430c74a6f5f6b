"""Ranking metrics for a review team: what it catches in the cases it can look at."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def _check(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    raw_y = np.asarray(y_true).ravel()
    s = np.asarray(score, dtype="float64").ravel()
    if raw_y.shape != s.shape:
        raise ValueError(f"y_true has {raw_y.size} values but score has {s.size}")
    if not np.isin(raw_y, (0, 1)).all():
        raise ValueError("y_true must hold only 0 and 1")
    finite = s[np.isfinite(s)]
    # A missing score ranks last (a rule with nothing to measure flags nobody); a finite
    # stand-in keeps scikit-learn's metrics, which refuse infinities, working.
    floor = float(np.nextafter(finite.min(), -np.inf)) if finite.size else 0.0
    return raw_y.astype(int), np.nan_to_num(s, nan=floor, neginf=floor)


def precision_at_k(y_true: np.ndarray, score: np.ndarray, k: int) -> float:
    """Share of true positives among the k highest scores.

    Ties at the k-th score are broken by position (stable), so the result repeats.

    Args:
        y_true: 0/1 outcomes.
        score: Higher means more suspicious.
        k: How many cases the team can review.

    Returns:
        Precision in the top k; NaN when k is 0 or there are no rows.
    """
    y, s = _check(y_true, score)
    k = min(int(k), y.size)
    if k <= 0:
        return math.nan
    top = np.argsort(-s, kind="stable")[:k]
    return float(y[top].mean())


def recall_at_fpr(y_true: np.ndarray, score: np.ndarray, max_fpr: float) -> float:
    """Largest recall reachable while flagging at most ``max_fpr`` of the negatives.

    Args:
        y_true: 0/1 outcomes.
        score: Higher means more suspicious.
        max_fpr: False-positive rate budget, in (0, 1).

    Returns:
        Recall at that budget; NaN when either class is absent.
    """
    y, s = _check(y_true, score)
    if y.size == 0 or y.min() == y.max():
        return math.nan
    fpr, tpr, _ = roc_curve(y, s)
    return float(tpr[fpr <= max_fpr].max(initial=0.0))


def ranking_metrics(
    y_true: np.ndarray, score: np.ndarray, *, top_share: float, max_fpr: float
) -> dict[str, float]:
    """The headline metrics of a score on one evaluation set.

    Args:
        y_true: 0/1 outcomes.
        score: Higher means more suspicious.
        top_share: Precision is taken in this top share of rows (at least one row).
        max_fpr: Recall is taken at this false-positive rate.

    Returns:
        roc_auc, average_precision, recall_at_fpr, precision_at_top, plus the counts
        n, positives and k. NaN where a metric is undefined (one class only).
    """
    y, s = _check(y_true, score)
    both = 0 < y.sum() < y.size
    k = max(1, round(top_share * y.size))
    return {
        "roc_auc": float(roc_auc_score(y, s)) if both else math.nan,
        "average_precision": float(average_precision_score(y, s)) if both else math.nan,
        "recall_at_fpr": recall_at_fpr(y, s, max_fpr),
        "precision_at_top": precision_at_k(y, s, k),
        "n": float(y.size),
        "positives": float(y.sum()),
        "k": float(k),
    }
