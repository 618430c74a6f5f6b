"""Probability calibration stored as plain numbers (JSON), never as a pickled object."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from refundguard.errors import ModelError

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibrator:
    """A monotone map from the booster's raw probability to a calibrated probability.

    Attributes:
        method: "isotonic" (piecewise-linear through ``x``/``y``) or "platt"
            (sigmoid of ``a * logit(p) + b``).
        x: Isotonic knots (raw probabilities), ascending.
        y: Calibrated values at the knots.
        a: Platt slope.
        b: Platt intercept.
    """

    method: Literal["isotonic", "platt"]
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    a: float = 1.0
    b: float = 0.0

    def predict(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probabilities.

        Args:
            raw: The booster's probabilities.

        Returns:
            Probabilities in [0, 1].
        """
        raw = np.asarray(raw, dtype="float64")
        if self.method == "isotonic":
            # np.interp clips outside the knots, as IsotonicRegression(out_of_bounds="clip").
            return np.interp(raw, np.asarray(self.x), np.asarray(self.y))
        return 1.0 / (1.0 + np.exp(-(self.a * _logit(raw) + self.b)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description.

        Returns:
            method, x, y, a, b.
        """
        return {
            "method": self.method,
            "x": list(self.x),
            "y": list(self.y),
            "a": self.a,
            "b": self.b,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        """Rebuild from :meth:`to_dict` output.

        Args:
            data: The description.

        Returns:
            The calibrator.

        Raises:
            ModelError: The description is malformed.
        """
        try:
            method = data["method"]
            if method not in ("isotonic", "platt"):
                raise ValueError(f"unknown method {method!r}")
            x = tuple(float(v) for v in data.get("x", ()))
            y = tuple(float(v) for v in data.get("y", ()))
            if method == "isotonic" and (len(x) != len(y) or not x):
                raise ValueError("isotonic knots are missing or uneven")
            if any(b < a for a, b in itertools.pairwise(x)):
                raise ValueError("isotonic knots are not in ascending order")
            if not all(np.isfinite(v) for v in (*x, *y)):
                raise ValueError("isotonic knots are not finite")
            return cls(
                method=method, x=x, y=y, a=float(data.get("a", 1.0)), b=float(data.get("b", 0.0))
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"calibration data is malformed: {exc}") from exc


def fit_calibrator(
    raw: np.ndarray, y_true: np.ndarray, method: Literal["isotonic", "platt"]
) -> Calibrator:
    """Fit a calibrator on held-out rows.

    Args:
        raw: The booster's probabilities on the calibration rows.
        y_true: Their 0/1 outcomes.
        method: "isotonic" or "platt".

    Returns:
        The fitted calibrator.
    """
    raw = np.asarray(raw, dtype="float64")
    y = np.asarray(y_true).astype(int)
    if method == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(raw, y)
        return Calibrator(
            method="isotonic",
            x=tuple(float(v) for v in iso.X_thresholds_),
            y=tuple(float(v) for v in iso.y_thresholds_),
        )
    lr = LogisticRegression(C=1e6)
    lr.fit(_logit(raw).reshape(-1, 1), y)
    return Calibrator(method="platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))
