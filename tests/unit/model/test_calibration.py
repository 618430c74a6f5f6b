from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from refundguard.errors import ModelError
from refundguard.model.calibration import TIE_BREAK, Calibrator, fit_calibrator

METHODS = ["isotonic", "platt"]
GRID = np.concatenate([[-0.5, 0.0, 1e-9], np.linspace(0, 1, 501), [1 - 1e-9, 1.0, 1.5]])


def miscalibrated(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores that rank well but are far too confident (true p = raw ** 3)."""
    raw = rng.random(n)
    y = (rng.random(n) < raw**3).astype(int)
    return raw, y


def brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


@pytest.fixture(params=METHODS)
def fitted(request: pytest.FixtureRequest, rng: np.random.Generator) -> Calibrator:
    raw, y = miscalibrated(rng, 4000)
    return fit_calibrator(raw, y, request.param)


def test_fitted_method(fitted: Calibrator) -> None:
    assert fitted.method in METHODS
    if fitted.method == "isotonic":
        assert len(fitted.x) == len(fitted.y) > 1
        assert list(fitted.x) == sorted(fitted.x)
    else:
        assert fitted.x == () and fitted.y == ()
        assert fitted.a > 0


def test_outputs_are_probabilities(fitted: Calibrator) -> None:
    p = fitted.predict(GRID)
    assert p.shape == GRID.shape
    assert np.isfinite(p).all()
    assert (p >= 0).all() and (p <= 1).all()


def test_monotone_non_decreasing(fitted: Calibrator) -> None:
    order = np.argsort(GRID, kind="stable")
    p = fitted.predict(GRID[order])
    assert (np.diff(p) >= -1e-12).all()


def test_improves_brier_score(fitted: Calibrator, rng: np.random.Generator) -> None:
    raw, y = miscalibrated(rng, 20_000)  # fresh rows, not the fitting ones
    before = brier(raw, y)
    after = brier(fitted.predict(raw), y)
    assert after < before - 0.02, (before, after)
    # Close to the best possible score, the one of the true probabilities.
    assert after < brier(raw**3, y) + 0.005


def test_calibrated_mean_matches_the_base_rate(fitted: Calibrator,
                                               rng: np.random.Generator) -> None:
    raw, y = miscalibrated(rng, 20_000)
    assert fitted.predict(raw).mean() == pytest.approx(y.mean(), abs=0.02)
    assert raw.mean() > y.mean() + 0.2  # the raw scores were far off


def test_isotonic_stays_near_its_end_levels_outside_the_knots(
    rng: np.random.Generator,
) -> None:
    raw = rng.uniform(0.2, 0.8, 2000)
    y = (rng.random(2000) < raw).astype(int)
    cal = fit_calibrator(raw, y, "isotonic")
    low, high = cal.predict(np.array([0.0, 1.0]))
    # Only the tie-break moves them off the step function's end levels.
    assert low == pytest.approx((1 - TIE_BREAK) * cal.y[0])
    assert high == pytest.approx((1 - TIE_BREAK) * cal.y[-1] + TIE_BREAK)
    assert low < cal.predict(np.array([0.1]))[0] < cal.predict(np.array([0.15]))[0]


def test_isotonic_on_perfectly_separated_data() -> None:
    raw = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 0, 1, 1, 1])
    cal = fit_calibrator(raw, y, "isotonic")
    np.testing.assert_allclose(cal.predict(raw), y, atol=TIE_BREAK)
    assert (np.diff(cal.predict(raw)) > 0).all()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [50, 2_000, 40_000])
def test_calibration_keeps_every_distinct_score_distinct_and_in_order(
    rng: np.random.Generator, method: str, n: int
) -> None:
    # Rare positives, as in abuse data: plain isotonic makes a few dozen plateaus here.
    raw = rng.beta(0.5, 20.0, n)
    y = (rng.random(n) < np.clip(raw * 3, 0, 1)).astype(int)
    cal = fit_calibrator(raw, y, method)  # type: ignore[arg-type]
    order = np.argsort(raw, kind="stable")
    prob = cal.predict(raw[order])
    distinct = np.diff(raw[order]) > 0
    assert (np.diff(prob)[distinct] > 0).all()
    assert len(np.unique(prob)) == len(np.unique(raw))
    # So every ranking metric is the raw score's.
    from sklearn.metrics import average_precision_score, roc_auc_score

    if 0 < y.sum() < n:
        same = cal.predict(raw)
        assert average_precision_score(y, same) == pytest.approx(average_precision_score(y, raw))
        assert roc_auc_score(y, same) == pytest.approx(roc_auc_score(y, raw))


def test_a_step_function_calibration_from_an_old_file_still_loads() -> None:
    cal = Calibrator.from_dict({"method": "isotonic", "x": [0.1, 0.5], "y": [0.0, 0.5]})
    assert cal.tie_break == 0.0
    np.testing.assert_allclose(cal.predict(np.array([0.0, 0.3, 0.9])), [0.0, 0.25, 0.5])


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2.0])
def test_tie_break_outside_its_range_is_refused(bad: float) -> None:
    with pytest.raises(ModelError, match="tie_break"):
        Calibrator.from_dict({"method": "isotonic", "x": [0.1], "y": [0.2], "tie_break": bad})


def test_platt_never_reverses_the_order(rng: np.random.Generator) -> None:
    raw = rng.random(3000)
    y = (rng.random(3000) < 1 - raw).astype(int)  # a booster worse than chance
    cal = fit_calibrator(raw, y, "platt")
    assert cal.a > 0
    assert (np.diff(cal.predict(np.sort(raw))) >= 0).all()


def test_platt_recovers_a_known_sigmoid(rng: np.random.Generator) -> None:
    raw = rng.uniform(0.01, 0.99, 50_000)
    logit = np.log(raw / (1 - raw))
    true_p = 1 / (1 + np.exp(-(0.5 * logit - 1.0)))
    y = (rng.random(raw.size) < true_p).astype(int)
    cal = fit_calibrator(raw, y, "platt")
    assert cal.a == pytest.approx(0.5, abs=0.05)
    assert cal.b == pytest.approx(-1.0, abs=0.05)


def test_platt_handles_zero_and_one() -> None:
    cal = Calibrator(method="platt", a=2.0, b=0.5)
    p = cal.predict(np.array([0.0, 1.0]))
    assert np.isfinite(p).all()
    assert 0 < p[0] < 1e-6 and 1 - 1e-6 < p[1] < 1


def test_predict_accepts_lists() -> None:
    cal = Calibrator(method="isotonic", x=(0.0, 1.0), y=(0.2, 0.4))
    np.testing.assert_allclose(cal.predict([0.0, 0.5, 1.0]), [0.2, 0.3, 0.4])  # type: ignore[arg-type]


def test_identity_platt() -> None:
    cal = Calibrator(method="platt")
    np.testing.assert_allclose(cal.predict(np.array([0.1, 0.5, 0.9])), [0.1, 0.5, 0.9])


# --- serialisation ----------------------------------------------------------------------


def test_round_trip_gives_identical_predictions(fitted: Calibrator) -> None:
    text = json.dumps(fitted.to_dict())
    back = Calibrator.from_dict(json.loads(text))
    assert back == fitted
    np.testing.assert_array_equal(back.predict(GRID), fitted.predict(GRID))


def test_to_dict_is_plain_json(fitted: Calibrator) -> None:
    d = fitted.to_dict()
    assert set(d) == {"method", "x", "y", "a", "b", "tie_break"}
    assert d["method"] == fitted.method
    assert isinstance(d["x"], list) and isinstance(d["y"], list)
    assert all(type(v) is float for v in d["x"] + d["y"])
    assert type(d["a"]) is float and type(d["b"]) is float
    assert json.loads(json.dumps(d, allow_nan=False)) == d


def test_from_dict_defaults_for_platt() -> None:
    cal = Calibrator.from_dict({"method": "platt"})
    assert (cal.a, cal.b, cal.x, cal.y) == (1.0, 0.0, (), ())


def test_from_dict_converts_numbers() -> None:
    cal = Calibrator.from_dict({"method": "isotonic", "x": [0, "0.5", 1], "y": [0, 0.5, 1],
                                "a": "2", "b": 1})
    assert cal.x == (0.0, 0.5, 1.0)
    assert cal.a == 2.0 and isinstance(cal.b, float)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({}, id="no-method"),
        pytest.param({"method": "sigmoid"}, id="unknown-method"),
        pytest.param({"method": None}, id="null-method"),
        pytest.param({"method": "isotonic"}, id="isotonic-without-knots"),
        pytest.param({"method": "isotonic", "x": [], "y": []}, id="isotonic-empty-knots"),
        pytest.param({"method": "isotonic", "x": [0.0, 1.0], "y": [0.1]}, id="uneven-knots"),
        pytest.param({"method": "isotonic", "x": [0.0, "abc"], "y": [0.1, 0.2]},
                     id="text-knot"),
        pytest.param({"method": "isotonic", "x": None, "y": None}, id="null-knots"),
        pytest.param({"method": "isotonic", "x": 5, "y": 5}, id="number-knots"),
        pytest.param({"method": "isotonic", "x": [[0.0]], "y": [[1.0]]}, id="nested-knots"),
        pytest.param({"method": "platt", "a": "steep"}, id="text-slope"),
        pytest.param({"method": "platt", "b": None}, id="null-intercept"),
        pytest.param({"method": "platt", "a": [1.0]}, id="list-slope"),
        pytest.param(["isotonic"], id="list-instead-of-mapping"),
        pytest.param(None, id="none"),
        pytest.param("platt", id="text"),
    ],
)
def test_malformed_dicts(data: Any) -> None:
    with pytest.raises(ModelError, match="malformed"):
        Calibrator.from_dict(data)


def test_calibrator_is_frozen() -> None:
    cal = Calibrator(method="platt")
    with pytest.raises(AttributeError):
        cal.a = 3.0  # type: ignore[misc]
