"""The ONNX export: double-precision trees, a spec other languages can follow, parity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lightgbm as lgb
import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest

from refundguard import Scorer
from refundguard.errors import ModelError
from refundguard.features.catalog import NO_HISTORY
from refundguard.model.bundle import split_from_info
from refundguard.model.calibration import Calibrator
from refundguard.model.policy import risk_score
from refundguard.model.train import split_rows
from refundguard.serving.onnx import (
    INPUT_NAME,
    ONNX_FILE,
    OUTPUT_MARGIN,
    OUTPUT_PROBABILITY,
    booster_to_onnx,
    calibrate_from_spec,
    onnx_spec,
    read_spec,
    tiers_from_spec,
)


def _session(model: onnx.ModelProto | Path) -> ort.InferenceSession:
    data = model.read_bytes() if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _raw(session: ort.InferenceSession, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prob, margin = session.run([OUTPUT_PROBABILITY, OUTPUT_MARGIN], {INPUT_NAME: x})
    return np.asarray(prob).ravel(), np.asarray(margin).ravel()


@pytest.fixture(scope="module")
def test_rows(project: Path) -> pd.DataFrame:
    info = json.loads((project / "models/model/training.json").read_text(encoding="utf-8"))
    snaps = pd.read_parquet(project / "data/features/snapshots.parquet")
    return split_rows(snaps, split_from_info(info))["test"].drop(columns=["target"])


def test_export_wrote_a_matching_onnx_pair(project: Path) -> None:
    folder = project / "models/onnx"
    spec = read_spec(folder)
    scorer_json = json.loads((project / "models/scorer/artifacts/scorer.json")
                             .read_text(encoding="utf-8"))
    scorer = Scorer.load(project / "models/scorer")
    assert spec["model_version"] == scorer_json["model_version"]
    assert spec["features"] == list(scorer.features)
    assert spec["calibration"]["method"] == scorer.calibrator.method
    assert spec["tiers"]["bounds"] == list(scorer.bounds)
    model = onnx.load(folder / ONNX_FILE)
    onnx.checker.check_model(model, full_check=True)
    (inp,) = model.graph.input
    assert inp.name == spec["input"]["name"]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    (trees,) = [n for n in model.graph.node if n.domain == "ai.onnx.ml"]
    splits = next(a for a in trees.attribute if a.name == "nodes_splits")
    assert splits.t.data_type == onnx.TensorProto.DOUBLE


def test_onnx_matches_the_python_scorer_on_the_test_window(project: Path,
                                                           test_rows: pd.DataFrame) -> None:
    folder = project / "models/onnx"
    spec = read_spec(folder)
    scorer = Scorer.load(project / "models/scorer")
    expected = scorer.score(test_rows)
    x = test_rows.loc[:, spec["features"]].to_numpy(dtype="float64")
    raw, margin = _raw(_session(folder / ONNX_FILE), x)
    np.testing.assert_allclose(raw, scorer.booster.predict(x), rtol=0, atol=1e-12)
    np.testing.assert_allclose(margin, scorer.booster.predict(x, raw_score=True), rtol=0,
                               atol=1e-9)
    prob = calibrate_from_spec(raw, spec)
    assert np.abs(prob - expected["probability"].to_numpy()).max() <= 1e-5
    assert list(tiers_from_spec(prob, spec, x)) == list(expected["tier"])
    assert (risk_score(prob) == expected["risk_score"].to_numpy()).all()


def test_missing_and_extreme_values_take_lightgbm_paths(project: Path, test_rows: pd.DataFrame,
                                                        rng: np.random.Generator) -> None:
    scorer = Scorer.load(project / "models/scorer")
    x = test_rows.loc[:, list(scorer.features)].to_numpy(dtype="float64")[:500].copy()
    x[rng.random(x.shape) < 0.3] = np.nan
    x[rng.random(x.shape) < 0.05] = np.inf
    x[rng.random(x.shape) < 0.05] = -np.inf
    x[rng.random(x.shape) < 0.1] = 0.0
    raw, _ = _raw(_session(project / "models/onnx" / ONNX_FILE), x)
    np.testing.assert_allclose(raw, scorer.booster.predict(x), rtol=0, atol=1e-12)


def _tiny_booster(rng: np.random.Generator, **params: object) -> tuple[lgb.Booster, np.ndarray]:
    x = rng.normal(size=(400, 4))
    x[rng.random(x.shape) < 0.2] = np.nan
    y = (np.nan_to_num(x[:, 0]) + rng.normal(scale=0.5, size=400) > 0.3).astype(int)
    base = {"objective": "binary", "verbosity": -1, "num_leaves": 7, "seed": 1,
            "deterministic": True, "num_threads": 1}
    booster = lgb.train({**base, **params}, lgb.Dataset(x, label=y), num_boost_round=20)
    return booster, x


@pytest.mark.parametrize("params", [{}, {"sigmoid": 2.5}, {"min_data_in_leaf": 300},
                                    {"use_missing": False}])
def test_tree_shapes_and_objectives_convert_exactly(rng: np.random.Generator,
                                                    params: dict[str, object]) -> None:
    # min_data_in_leaf=300 of 400 rows gives single-leaf trees; use_missing=False makes
    # LightGBM read NaN as zero.
    booster, x = _tiny_booster(rng, **params)
    raw, _ = _raw(_session(booster_to_onnx(booster)), x)
    np.testing.assert_allclose(raw, booster.predict(x), rtol=0, atol=1e-12)


def test_infinite_thresholds_keep_lightgbm_direction(rng: np.random.Generator) -> None:
    # Where only "missing or not" matters, LightGBM splits at threshold inf (NaN one way,
    # every number, inf included, the other); the JSON dump writes it as 1e300.
    x = rng.normal(size=(400, 2))
    missing = rng.random(400) < 0.3
    x[missing, 0] = np.nan
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_leaves": 3,
                         "min_data_in_leaf": 5}, lgb.Dataset(x, label=missing.astype(int)),
                        num_boost_round=3)
    assert "threshold=inf" in booster.model_to_string()
    x[:20, 0] = np.inf
    raw, _ = _raw(_session(booster_to_onnx(booster)), x)
    np.testing.assert_allclose(raw, booster.predict(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("params", [{"objective": "regression"},
                                    {"objective": "multiclass", "num_class": 3}])
def test_models_it_cannot_express_are_refused(rng: np.random.Generator,
                                              params: dict[str, object]) -> None:
    x = rng.normal(size=(200, 3))
    y = rng.integers(0, 3, size=200) if "num_class" in params else rng.normal(size=200)
    booster = lgb.train({"verbosity": -1, **params}, lgb.Dataset(x, label=y), num_boost_round=3)
    with pytest.raises(ModelError, match="binary"):
        booster_to_onnx(booster)


@pytest.mark.parametrize(
    "calibrator",
    [
        Calibrator("isotonic", x=(0.1, 0.2, 0.2, 0.5, 0.9), y=(0.0, 0.1, 0.3, 0.3, 1.0)),
        Calibrator("isotonic", x=(0.4,), y=(0.25,)),
        Calibrator("platt", a=1.3, b=-0.7),
    ],
)
def test_spec_calibration_rule_equals_the_calibrator(calibrator: Calibrator,
                                                     rng: np.random.Generator) -> None:
    spec = onnx_spec(["f"], calibrator.to_dict(), (0.02, 0.2, 0.6), model_version="rg-x",
                     catalog_version="c", onnx_sha256="0")
    knots = np.asarray(calibrator.x, dtype="float64")
    raw = np.concatenate([rng.random(2000), knots, [0.0, 1.0, 1e-9, 1 - 1e-9]])
    np.testing.assert_allclose(calibrate_from_spec(raw, spec), calibrator.predict(raw),
                               rtol=0, atol=1e-15)


def test_tier_rule_puts_a_bound_in_the_higher_tier() -> None:
    spec = onnx_spec(["f"], {"method": "platt", "a": 1.0, "b": 0.0}, (0.02, 0.2, 0.6),
                     model_version="rg-x", catalog_version="c", onnx_sha256="0")
    tiers = tiers_from_spec(np.array([0.0, 0.02, 0.1999, 0.2, 0.6, 1.0]), spec)
    assert list(tiers) == ["trusted", "standard", "standard", "review", "restrict", "restrict"]


def test_no_history_rule_overrides_the_tier() -> None:
    feature = NO_HISTORY.feature
    spec = onnx_spec(["a", feature], {"method": "platt", "a": 1.0, "b": 0.0}, (0.02, 0.2, 0.6),
                     model_version="rg-x", catalog_version="c", onnx_sha256="0")
    x = np.array([[1.0, 30.0], [1.0, np.nan]])
    assert list(tiers_from_spec(np.array([0.9, 0.9]), spec, x)) == ["restrict", NO_HISTORY.tier]


def test_read_spec_refuses_a_mismatched_pair(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "onnx"
    shutil.copytree(project / "models/onnx", copy)
    data = bytearray((copy / ONNX_FILE).read_bytes())
    data[-1] ^= 0xFF
    (copy / ONNX_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"not the file spec\.json describes"):
        read_spec(copy)
    with pytest.raises(ModelError, match="not a refundguard ONNX folder"):
        read_spec(tmp_path / "nothing")
