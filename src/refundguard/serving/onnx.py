"""The booster as an ONNX graph in double precision, plus a JSON spec for other languages.

A Java, Go or C# service scores buyers with onnxruntime and ``model.onnx`` (feature
matrix in, the booster's raw probability out), then applies the calibration and the tier
bounds from ``spec.json``, which are plain numbers. Neither file can run code when loaded.

Why not onnxmltools' LightGBM converter: it writes ``TreeEnsembleClassifier`` with
float32 thresholds, leaf values and output, about 1e-7 off LightGBM's probability, and
the isotonic calibration's steep steps can magnify that to 1e-4 or move a buyer across
a tier bound, depending on the model (``benchmarks/bench_scorer.py`` measures it). This
module writes the ``ai.onnx.ml`` ``TreeEnsemble`` operator (opset 5) instead, with
float64 inputs, thresholds, leaf values and sums, which reproduces LightGBM's own
prediction to rounding error.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from refundguard.contract.vocabulary import TIERS
from refundguard.data.io import write_json
from refundguard.errors import ModelError
from refundguard.features.catalog import HISTORY_FEATURES, NO_HISTORY
from refundguard.model.calibration import _EPS as PLATT_EPS

ONNX_FORMAT = "refundguard-onnx/1"


ONNX_FILE = "model.onnx"


SPEC_FILE = "spec.json"


INPUT_NAME = "features"


OUTPUT_PROBABILITY = "raw_probability"


OUTPUT_MARGIN = "margin"


OPSET = 21


ML_OPSET = 5


# Values of TreeEnsemble's nodes_modes and post_transform attributes.
_BRANCH_LEQ = 0


_POST_NONE = 0


# LightGBM's JSON dump clips infinite thresholds to this magnitude.
_AVOID_INF = 1e300


def _sigmoid_scale(objective: str) -> float:
    parts = objective.split()
    if not parts or parts[0] not in ("binary", "cross_entropy", "xentropy"):
        raise ModelError(f"ONNX export handles binary models only, not {objective!r}")
    for part in parts[1:]:
        if part.startswith("sigmoid:"):
            return float(part.split(":", 1)[1])
    return 1.0


class _Nodes:
    """TreeEnsemble's flat node and leaf arrays, filled one tree at a time."""

    def __init__(self) -> None:
        self.feature: list[int] = []
        self.split: list[float] = []
        self.true_id: list[int] = []
        self.true_leaf: list[int] = []
        self.false_id: list[int] = []
        self.false_leaf: list[int] = []
        self.missing_true: list[int] = []
        self.leaf_weight: list[float] = []
        self.roots: list[int] = []

    def _leaf(self, leaf: Mapping[str, Any]) -> int:
        if "leaf_coeff" in leaf:
            raise ModelError("ONNX export cannot express linear trees")
        self.leaf_weight.append(float(leaf["leaf_value"]))
        return len(self.leaf_weight) - 1

    def _branch(self) -> int:
        for column in (self.feature, self.true_id, self.true_leaf, self.false_id,
                       self.false_leaf, self.missing_true):
            column.append(0)
        self.split.append(0.0)
        return len(self.split) - 1

    def add_tree(self, root: Mapping[str, Any]) -> None:
        if "leaf_value" in root:
            # A tree that is one leaf: a branch whose both sides lead to it.
            node = self._branch()
            leaf = self._leaf(root)
            self.true_id[node] = self.false_id[node] = leaf
            self.true_leaf[node] = self.false_leaf[node] = 1
            self.missing_true[node] = 1
            self.roots.append(node)
            return
        self.roots.append(self._branch())
        stack: list[tuple[int, Mapping[str, Any]]] = [(self.roots[-1], root)]
        while stack:
            node, split = stack.pop()
            self._fill(node, split, stack)

    def _fill(
        self, node: int, split: Mapping[str, Any], stack: list[tuple[int, Mapping[str, Any]]]
    ) -> None:
        if split.get("decision_type") != "<=":
            raise ModelError("ONNX export handles numerical splits only (no categorical)")
        threshold = float(split["threshold"])
        if abs(threshold) >= _AVOID_INF:
            # The JSON dump writes LightGBM's infinite thresholds as +-1e300 (AvoidInf);
            # the booster compares with the infinity itself, which decides where inf goes.
            threshold = math.copysign(math.inf, threshold)
        missing = split.get("missing_type", "None")
        if missing == "NaN":
            # LightGBM sends NaN to the default side.
            missing_true = bool(split["default_left"])
        elif missing == "None":
            # LightGBM reads NaN as 0.0 when the feature had no missing values in training.
            missing_true = 0.0 <= threshold
        else:
            raise ModelError(f"ONNX export cannot express missing type {missing!r} splits")
        self.feature[node] = int(split["split_feature"])
        self.split[node] = threshold
        self.missing_true[node] = int(missing_true)
        sides = (
            (self.true_id, self.true_leaf, split["left_child"]),
            (self.false_id, self.false_leaf, split["right_child"]),
        )
        for ids, leafs, child in sides:
            if "leaf_value" in child:
                ids[node], leafs[node] = self._leaf(child), 1
            else:
                ids[node], leafs[node] = self._branch(), 0
                stack.append((ids[node], child))


def booster_to_onnx(booster: lgb.Booster) -> Any:
    """The booster's prediction as an ONNX model, in float64 throughout.

    Inputs: ``features``, float64 [n, n_features], NaN for missing. Outputs:
    ``raw_probability`` (what ``Booster.predict`` returns) and ``margin`` (the sum of the
    trees), both float64 [n, 1].

    Args:
        booster: A LightGBM binary model with numerical splits.

    Returns:
        The ``onnx.ModelProto``.

    Raises:
        ModelError: The model uses something this export cannot express (another
            objective, categorical or zero-as-missing splits, linear trees).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    dump = booster.dump_model()
    if dump.get("average_output"):
        raise ModelError("ONNX export handles boosted trees only, not random forests")
    scale = _sigmoid_scale(str(dump.get("objective", "")))
    n_features = int(dump["max_feature_idx"]) + 1
    nodes = _Nodes()
    for tree in dump["tree_info"]:
        nodes.add_tree(tree["tree_structure"])
    ensemble = helper.make_node(
        "TreeEnsemble",
        [INPUT_NAME],
        [OUTPUT_MARGIN],
        domain="ai.onnx.ml",
        name="lightgbm_trees",
        n_targets=1,
        aggregate_function=1,  # sum
        post_transform=_POST_NONE,
        tree_roots=nodes.roots,
        nodes_featureids=nodes.feature,
        nodes_splits=numpy_helper.from_array(np.asarray(nodes.split, dtype=np.float64)),
        nodes_modes=numpy_helper.from_array(
            np.full(len(nodes.split), _BRANCH_LEQ, dtype=np.uint8)
        ),
        nodes_truenodeids=nodes.true_id,
        nodes_trueleafs=nodes.true_leaf,
        nodes_falsenodeids=nodes.false_id,
        nodes_falseleafs=nodes.false_leaf,
        nodes_missing_value_tracks_true=nodes.missing_true,
        leaf_targetids=[0] * len(nodes.leaf_weight),
        leaf_weights=numpy_helper.from_array(np.asarray(nodes.leaf_weight, dtype=np.float64)),
    )
    graph_nodes = [ensemble]
    sigmoid_in = OUTPUT_MARGIN
    initializers = []
    if scale != 1.0:
        initializers.append(numpy_helper.from_array(np.asarray(scale, dtype=np.float64), "scale"))
        graph_nodes.append(helper.make_node("Mul", [OUTPUT_MARGIN, "scale"], ["scaled"]))
        sigmoid_in = "scaled"
    graph_nodes.append(helper.make_node("Sigmoid", [sigmoid_in], [OUTPUT_PROBABILITY]))
    graph = helper.make_graph(
        graph_nodes,
        "refundguard",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.DOUBLE, [None, n_features])],
        [
            helper.make_tensor_value_info(OUTPUT_PROBABILITY, TensorProto.DOUBLE, [None, 1]),
            helper.make_tensor_value_info(OUTPUT_MARGIN, TensorProto.DOUBLE, [None, 1]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        producer_name="refundguard",
    )
    # IR 10 is what ai.onnx.ml opset 5 needs; pinned so the bytes do not follow the onnx package.
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    return model


def onnx_spec(
    features: Sequence[str],
    calibration: Mapping[str, Any],
    bounds: Iterable[float],
    *,
    model_version: str,
    catalog_version: str,
    onnx_sha256: str,
) -> dict[str, Any]:
    """What a service in another language needs besides ``model.onnx``.

    Args:
        features: Feature columns in the model's input order.
        calibration: The calibration exactly as :class:`refundguard.calibration.Calibrator`
            stores it (``to_dict``).
        bounds: Lower probability bounds of the standard, review and restrict tiers.
        model_version: The scorer's content id.
        catalog_version: The feature catalog's fingerprint.
        onnx_sha256: Hex SHA-256 of ``model.onnx``, so a service can check it has the pair.

    Returns:
        Content of ``spec.json``.
    """
    cal = dict(calibration)
    cal.setdefault("tie_break", 0.0)
    if cal.get("method") == "isotonic":
        base = (
            "c(p) = p <= x[0]: y[0]; p >= x[-1]: y[-1]; otherwise, with j the largest index "
            "where x[j] <= p: y[j] + (p - x[j]) * (y[j+1] - y[j]) / (x[j+1] - x[j])"
        )
    else:
        cal["eps"] = PLATT_EPS
        base = "c(p) = 1 / (1 + exp(-(a * ln(q / (1 - q)) + b))) with q = clip(p, eps, 1 - eps)"
    cal["rule"] = (
        f"{base}; probability = (1 - tie_break) * c(p) + tie_break * clip(p, 0, 1) "
        "(strictly increasing: distinct raw probabilities stay distinct and in order)"
    )
    return {
        "format": ONNX_FORMAT,
        "model_version": model_version,
        "catalog_version": catalog_version,
        "onnx_file": ONNX_FILE,
        "onnx_sha256": onnx_sha256,
        "opset": {"ai.onnx": OPSET, "ai.onnx.ml": ML_OPSET},
        "input": {
            "name": INPUT_NAME,
            "type": "float64",
            "shape": [None, len(features)],
            "missing": "NaN",
        },
        "features": list(features),
        "outputs": {
            OUTPUT_PROBABILITY: "float64 [n, 1]: the booster's probability, before calibration",
            OUTPUT_MARGIN: "float64 [n, 1]: the sum of the trees (log-odds)",
        },
        "calibration": cal,
        "tiers": {
            "names": list(TIERS),
            "bounds": [float(b) for b in bounds],
            "rule": "tier = names[number of bounds <= probability] (a bound belongs to the "
            "higher tier)",
        },
        "no_history": {
            # The first history feature the model has (the time-consistency check may
            # leave days_since_first_order out); null: the rule cannot be applied.
            "feature": next((f for f in HISTORY_FEATURES if f in features), None),
            "tier": NO_HISTORY.tier,
            "reason_zh": NO_HISTORY.zh,
            "reason_en": NO_HISTORY.en,
            "rule": "a buyer whose 'feature' is missing (NaN) has no order before the cutoff: "
            "tier and reason are these, whatever the probability",
        },
        "risk_score": "round half to even of clip(probability, 0, 1) * 1000",
        "reasons": "not in the ONNX model (they need per-row SHAP values); use the Python "
        "scorer or the REST server for reasons_zh and reasons_en",
    }


def calibrate_from_spec(raw: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """Apply spec.json's calibration rule, as a service in another language would.

    Args:
        raw: The ONNX model's ``raw_probability``.
        spec: Parsed spec.json.

    Returns:
        Calibrated probabilities.
    """
    cal = spec["calibration"]
    p = np.asarray(raw, dtype="float64").ravel()
    if cal["method"] == "isotonic":
        x = np.asarray(cal["x"], dtype="float64")
        y = np.asarray(cal["y"], dtype="float64")
        if len(x) == 1:
            base = np.full(p.shape, y[0])
        else:
            j = np.clip(np.searchsorted(x, p, side="right") - 1, 0, len(x) - 2)
            with np.errstate(divide="ignore", invalid="ignore"):
                inner = y[j] + (p - x[j]) * (y[j + 1] - y[j]) / (x[j + 1] - x[j])
            base = np.where(p <= x[0], y[0], np.where(p >= x[-1], y[-1], inner))
    else:
        q = np.clip(p, cal["eps"], 1 - cal["eps"])
        base = 1.0 / (1.0 + np.exp(-(cal["a"] * np.log(q / (1 - q)) + cal["b"])))
    w = float(cal.get("tie_break", 0.0))
    return np.asarray(base) if w <= 0 else (1.0 - w) * base + w * np.clip(p, 0.0, 1.0)


def tiers_from_spec(
    probability: np.ndarray, spec: Mapping[str, Any], features: np.ndarray | None = None
) -> np.ndarray:
    """Apply spec.json's tier rule, and its no-history rule when given the features.

    Args:
        probability: Calibrated probabilities.
        spec: Parsed spec.json.
        features: The rows fed to the ONNX model, in spec order; None skips the
            no-history rule.

    Returns:
        Tier names.
    """
    bounds = np.asarray(spec["tiers"]["bounds"], dtype="float64")
    idx = np.searchsorted(bounds, np.asarray(probability, dtype="float64"), side="right")
    tiers = np.asarray(spec["tiers"]["names"], dtype=object)[idx]
    rule = spec.get("no_history")
    if features is not None and rule and rule["feature"] in spec["features"]:
        column = np.asarray(features, dtype="float64")[:, spec["features"].index(rule["feature"])]
        tiers[np.isnan(column)] = rule["tier"]
    return tiers


def write_onnx(
    booster: lgb.Booster,
    features: Sequence[str],
    calibration: Mapping[str, Any],
    bounds: Iterable[float],
    out_dir: Path,
    *,
    model_version: str,
    catalog_version: str,
) -> Path:
    """Write ``model.onnx`` and ``spec.json`` into a folder.

    Args:
        booster: The LightGBM booster.
        features: Feature columns in the booster's order.
        calibration: The calibration as stored in calibration.json.
        bounds: Tier bounds.
        out_dir: Destination folder (created).
        model_version: The scorer's content id.
        catalog_version: The feature catalog's fingerprint.

    Returns:
        The folder.

    Raises:
        ModelError: The booster cannot be expressed, or its feature names differ.
    """
    if list(booster.feature_name()) != list(features):
        raise ModelError("the booster's feature names differ from the scorer's feature list")
    data = booster_to_onnx(booster).SerializeToString(deterministic=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / ONNX_FILE).write_bytes(data)
    spec = onnx_spec(
        features,
        calibration,
        bounds,
        model_version=model_version,
        catalog_version=catalog_version,
        onnx_sha256=hashlib.sha256(data).hexdigest(),
    )
    write_json(spec, out_dir / SPEC_FILE)
    return out_dir


def read_spec(folder: Path) -> dict[str, Any]:
    """Read a folder's spec.json and check that model.onnx is the file it describes.

    Args:
        folder: A folder written by :func:`write_onnx`.

    Returns:
        The spec.

    Raises:
        ModelError: A file is missing, or the pair does not match.
    """
    try:
        spec: dict[str, Any] = json.loads((folder / SPEC_FILE).read_text(encoding="utf-8"))
        data = (folder / ONNX_FILE).read_bytes()
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder}: not a refundguard ONNX folder ({exc})") from exc
    if spec.get("format") != ONNX_FORMAT:
        raise ModelError(f"{folder}: unsupported ONNX spec format {spec.get('format')!r}")
    if hashlib.sha256(data).hexdigest() != spec.get("onnx_sha256"):
        raise ModelError(f"{folder}: model.onnx is not the file spec.json describes")
    return spec
