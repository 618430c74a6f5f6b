"""Helpers shared by the tests: hand-built tables, tiny parameters, running the CLI.

Fixtures live in conftest.py; plain helpers live here and are imported by name.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from refundguard.config import Params, params_from_dict
from refundguard.contract.tables import TABLES
from refundguard.data.validate import QUARANTINE_COLUMNS, ValidationResult

TZ = "Asia/Shanghai"
# The id column of each table, whose values name the rows kept or lost.
KEYS = {"orders": "order_id", "refunds": "refund_id", "reviews": "review_id",
        "labels": "buyer_id", "buyers": "buyer_id"}


def hand_raw_tables() -> dict[str, pd.DataFrame]:
    """Two buyers whose features are worked out by hand in test_features.py.

    All times are local (Asia/Shanghai). The cutoff used with them is 2024-03-01 00:00.
    """
    orders = pd.DataFrame(
        [
            ("o1", "b1", "s1", "2024-01-10 10:00", "100", "apparel", "2024-01-12 10:00"),
            ("o2", "b1", "s2", "2024-02-15 10:00", "300", "apparel", "2024-02-17 10:00"),
            ("o3", "b1", "s1", "2024-02-20 10:00", "50", "food", None),
            ("o4", "b1", "s3", "2024-02-28 10:00", "200", "home", "2024-03-02 10:00"),
            ("o5", "b1", "s3", "2024-03-05 10:00", "999", "home", "2024-03-06 10:00"),
            ("o6", "b2", "s1", "2023-06-01 09:00", "80", "books", "2023-06-03 09:00"),
        ],
        columns=["order_id", "buyer_id", "seller_id", "created_at", "amount", "category",
                 "delivered_at"],
    )
    # b2 once ordered from b1's device: the two accounts are linked.
    orders["device_id"] = ["d1", "d1", "d1", "d1", "d1", "d1"]
    orders["address_id"] = ["a1", "a1", "a1", "a1", "a1", "a2"]
    orders["payment_id"] = ["p1", "p1", "p1", "p1", "p1", "p2"]
    refunds = pd.DataFrame(
        [
            ("r1", "o1", "2024-01-12 10:30", "100", "refund_only", "damaged", "approved",
             "2024-01-13 10:00", "false"),
            ("r2", "o2", "2024-02-23 10:00", "150", "return_refund", "size_fit", "rejected",
             "2024-03-03 10:00", "false"),
            ("r3", "o3", "2024-02-25 10:00", "50", "refund_only", "not_received", "approved",
             "2024-02-26 10:00", "true"),
            ("r4", "o4", "2024-03-03 10:00", "200", "refund_only", "damaged", "pending",
             None, "false"),
        ],
        columns=["refund_id", "order_id", "requested_at", "amount", "type", "reason", "status",
                 "resolved_at", "instant"],
    )
    reviews = pd.DataFrame(
        [
            ("v1", "o1", "2024-01-13 10:00", "1", "质量太差了，不赔钱就给差评"),
            ("v2", "o2", "2024-02-18 10:00", "5", "很好"),
            ("v3", "o2", "2024-03-04 10:00", "1", "后悔"),
            ("v4", "o3", "2024-02-26 10:00", "1", "质量太差了，不赔钱就给差评"),
        ],
        columns=["review_id", "order_id", "created_at", "rating", "text"],
    )
    labels = pd.DataFrame(
        [("b1", "1", "2024-04-01 10:00", "platform_ruling")],
        columns=["buyer_id", "label", "labeled_at", "source"],
    )
    buyers = pd.DataFrame([("b1", "2023-12-01 00:00"), ("b2", "2023-01-01 00:00")],
                          columns=["buyer_id", "registered_at"])
    return {"orders": orders, "refunds": refunds, "reviews": reviews, "labels": labels,
            "buyers": buyers}


def tiny_params(tmp: Path, **overrides: object) -> Params:
    """Parameters of a tiny world that the whole pipeline handles in seconds."""
    raw: dict[str, object] = {
        "base": {"seed": 7, "cutoff_step_days": 28, "horizon_days": 42, "min_history_days": 84},
        "features": {"history_cap_days": 84},
        "data": {"input_dir": str(tmp / "data" / "simulated"),
                 "truth_file": str(tmp / "data" / "simulated" / "truth.parquet")},
        "simulate": {"n_buyers": 1500, "days": 420, "start": "2024-01-01",
                     "label_coverage": 0.9},
        "sentiment": {"min_labeled_reviews": 50, "hash_bits": 16},
        "train": {"n_valid_cutoffs": 1, "n_test_cutoffs": 1,
                  "tuning": {"n_trials": 2, "n_folds": 2},
                  "lightgbm": {"num_boost_round": 200, "early_stopping_rounds": 30,
                               "min_data_in_leaf": 10}},
    }
    for key, value in overrides.items():
        block, _, name = key.partition("__")
        raw.setdefault(block, {})[name] = value  # type: ignore[index]
    return params_from_dict(raw)


REPO = Path(__file__).resolve().parent.parent

# The package's layers, top to bottom: a module may import its own layer's package and any
# layer below (test_architecture.py); the README's module map numbers them (test_docs.py).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__",),
    ("cli",),
    ("stages",),
    ("serving", "reporting"),
    ("model",),
    ("features", "sim"),
    ("data",),
    ("config",),
    ("contract",),
    ("paths", "progress"),
    ("errors",),
    ("__init__",),
)


VENV_BIN = Path(sys.executable).parent


def tiny_params_dict() -> dict[str, object]:
    """The repository's params.yaml, shrunk to a world the pipeline runs in seconds."""
    import yaml

    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["simulate"].update(n_buyers=1500, days=420, label_coverage=0.9)
    raw["base"].update(horizon_days=42, min_history_days=84, cutoff_step_days=28)
    raw["features"].update(history_cap_days=84)
    raw["sentiment"].update(min_labeled_reviews=50, hash_bits=16)
    raw["train"].update(n_valid_cutoffs=1, n_test_cutoffs=1)
    raw["train"]["tuning"].update(n_trials=3, n_folds=2)
    raw["train"]["lightgbm"].update(num_boost_round=300, early_stopping_rounds=30,
                                    min_data_in_leaf=10)
    return raw


def project_env(root: Path) -> dict[str, str]:
    """Environment for running refundguard and DVC in a project rooted at ``root``."""

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(
        REFUNDGUARD_ROOT=str(root),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com",
    )
    return env


def run(cmd: list[str], root: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    import subprocess

    proc = subprocess.run(cmd, cwd=root, env=project_env(root), capture_output=True, text=True,
                          timeout=900, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


# --- validation: small raw tables and the accounting every result must satisfy -------------


def raw_tables() -> dict[str, pd.DataFrame]:
    """Small raw tables, all strings as read from CSV; every row is valid.

    Each order has at most one refund and one review, so that a bad order's dependants
    are easy to name.
    """
    orders = pd.DataFrame(
        [
            ("o1", "b1", "s1", "2024-01-01 10:00", "100", "apparel", "2024-01-03 10:00"),
            ("o2", "b1", "s2", "2024-01-02 10:00", "200", "home", "2024-01-04 10:00"),
            ("o3", "b2", "s1", "2024-01-03 10:00", "300", "food", None),
            ("o4", "b2", "s3", "2024-01-04 10:00", "400", "books", "2024-01-06 10:00"),
            ("o5", "b3", "s3", "2024-01-05 10:00", "500", "toys", "2024-01-07 10:00"),
        ],
        columns=["order_id", "buyer_id", "seller_id", "created_at", "amount", "category",
                 "delivered_at"],
    )
    refunds = pd.DataFrame(
        [
            ("r1", "o1", "2024-01-04 10:00", "100", "refund_only", "damaged", "approved",
             "2024-01-05 10:00", "false"),
            ("r2", "o2", "2024-01-05 10:00", "50", "return_refund", "size_fit", "rejected",
             "2024-01-06 10:00", "true"),
            ("r3", "o3", "2024-01-06 10:00", "300", "refund_only", "not_received", "pending",
             None, None),
            ("r4", "o4", "2024-01-07 10:00", "10", "compensation", "quality", "approved",
             "2024-01-08 10:00", "0"),
        ],
        columns=["refund_id", "order_id", "requested_at", "amount", "type", "reason", "status",
                 "resolved_at", "instant"],
    )
    reviews = pd.DataFrame(
        [
            ("v1", "o1", "2024-01-04 12:00", "1", "质量太差了"),
            ("v2", "o2", "2024-01-05 12:00", "5", "很好"),
            ("v3", "o3", "2024-01-06 12:00", None, None),
            ("v4", "o5", "2024-01-08 12:00", "4", "ok"),
        ],
        columns=["review_id", "order_id", "created_at", "rating", "text"],
    )
    labels = pd.DataFrame(
        [("b1", "1", "2024-02-01 10:00", "platform_ruling"),
         ("b2", "0", "2024-02-02 10:00", "manual_review"),
         ("b3", "1", "2024-02-03 10:00", None)],
        columns=["buyer_id", "label", "labeled_at", "source"],
    )
    buyers = pd.DataFrame(
        [("b1", "2023-12-01 00:00"), ("b2", "2023-06-01 00:00"), ("b3", None)],
        columns=["buyer_id", "registered_at"],
    )
    out = {"orders": orders, "refunds": refunds, "reviews": reviews, "labels": labels,
           "buyers": buyers}
    return {k: v.astype("str") for k, v in out.items()}


def reason_kind(reason: str) -> str:
    """A reason without the offending value (what the report counts)."""
    return re.sub(r"\s*\(.*\)$|\s+(['\"]).*\1$", "", reason)


def assert_accounting(res: ValidationResult) -> None:
    """Every input row is accounted for once, and the report agrees with the quarantine."""
    q = res.quarantine
    assert list(q.columns) == list(QUARANTINE_COLUMNS)
    assert set(q["action"]) <= {"row_rejected", "field_nulled"}
    assert set(res.report) == set(TABLES)
    for name, r in res.report.items():
        assert r["rows_in"] == r["rows_valid"] + r["rows_quarantined"] + r[
            "duplicates_collapsed"
        ], name
        assert r["rows_valid"] == len(res.tables[name]), name
        listed = q.loc[q["table"] == name]
        assert listed["row"].is_unique, name
        assert listed["row"].between(1, r["rows_in"]).all(), name
        for action, rows_key, counts_key in (("row_rejected", "rows_quarantined", "reasons"),
                                             ("field_nulled", "rows_fields_nulled",
                                              "fields_nulled")):
            rows = listed.loc[listed["action"] == action]
            assert len(rows) == r[rows_key], (name, action)
            # The report's reason counts are the quarantine's reasons, counted once per row.
            counts: Counter[str] = Counter()
            for joined in rows["reason"]:
                parts = joined.split("; ")
                assert len(parts) == len(set(parts)), joined
                counts.update({reason_kind(p) for p in parts})
            assert r[counts_key] == dict(counts), (name, action)
            assert sum(r[counts_key].values()) >= r[rows_key]
        # A row kept with fields nulled is in the validated table; nulled rows are counted
        # among the valid ones, so nothing is counted twice.
        assert r["rows_fields_nulled"] <= r["rows_valid"], name


def assert_same_feature_values(expected: pd.DataFrame, got: pd.DataFrame,
                               catalog: Sequence[Any]) -> None:
    """Every catalog feature equal row by row: counts exactly, other values within 1e-12.

    Both frames hold the same buyers in the same order (the Spark parity tests).
    """
    import numpy as np

    for f in catalog:
        a = expected[f.name].to_numpy(dtype="float64")
        b = got[f.name].to_numpy(dtype="float64")
        assert (np.isnan(a) == np.isnan(b)).all(), f"{f.name}: NaN in different rows"
        ok = ~np.isnan(a)
        if f.unit == "count":
            assert (a[ok] == b[ok]).all(), f"{f.name}: counts differ"
        else:
            worst = float(np.max(np.abs(a[ok] - b[ok]), initial=0.0))
            assert worst <= 1e-12, f"{f.name}: differs by {worst}"
