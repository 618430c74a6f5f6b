from __future__ import annotations

import json
from pathlib import Path

import pytest
from scripts.docs import generated_blocks, render_readme, results_markdown
from tests.fixtures import REPO


def test_readme_generated_blocks_are_current() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert render_readme(text, REPO / "reports" / "evaluation.json") == text, (
        "README is out of date: run `python scripts/docs.py`"
    )
    for name in ("contract", "features", "results"):
        assert f"<!-- {name}:start -->" in text


def test_render_replaces_only_between_markers() -> None:
    text = "intro\n<!-- contract:start -->\nstale\n<!-- contract:end -->\n" \
           "<!-- features:start -->\n<!-- features:end -->\noutro\n"
    out = render_readme(text)
    assert out.startswith("intro\n") and out.endswith("outro\n")
    assert "stale" not in out
    assert generated_blocks()["contract"] in out


def test_render_needs_the_markers() -> None:
    with pytest.raises(ValueError, match="contract"):
        render_readme("no markers here")


def test_results_markdown_from_metrics(tmp_path: Path) -> None:
    metrics = {
        "capacity_k": 560.0,
        "model": {"roc_auc": 0.9, "average_precision": 0.3, "recall_at_fpr": 0.4,
                  "precision_at_capacity": 0.5},
        "plain": {"roc_auc": 0.87, "average_precision": 0.25, "recall_at_fpr": 0.3,
                  "precision_at_capacity": 0.4},
        "logistic": {"roc_auc": 0.85, "average_precision": 0.2, "recall_at_fpr": 0.2,
                     "precision_at_capacity": 0.3},
        "baseline": {"roc_auc": 0.8, "average_precision": 0.1, "recall_at_fpr": None,
                     "precision_at_capacity": 0.05},
        "calibration": {"ece": 0.004, "brier": 0.006},
        "tuning": {"rolling_ap_mean": 0.2, "rolling_ap_std": 0.03, "trials": 8.0},
        "policy": {"standard_from": 0.001, "review_from": 0.2, "restrict_from": 0.6},
        "cost": {"model": {"count": {"trusted": 10.0, "standard": 80.0, "review": 7.0,
                                     "restrict": 3.0},
                           "cost_per_buyer": 1.25, "truth_cost_per_buyer": 2.5,
                           "honest_above_standard": 0.004, "flagged_per_day": 0.36}},
        "segment": {"size_bracketer": {"rows": 100.0, "model_flag_rate": 0.01,
                                       "logistic_flag_rate": 0.02,
                                       "plain_flag_rate": 0.015,
                                       "baseline_flag_rate": 0.3}},
        "ablation": {"full": {"average_precision": 0.3},
                     "without_reviews": {"average_precision": 0.25, "ap_drop": 0.05}},
    }
    md = results_markdown(metrics)
    assert md.startswith("refundguard beats the plain LightGBM on labels (AP 0.300 vs 0.250, "
                         "AUC 0.900 vs 0.870).\n")
    assert ("| on the test window | model | plain LightGBM | logistic regression | rule |"
            in md)
    assert "| average precision (labels) | 0.300 | 0.250 | 0.200 | 0.100 |" in md
    assert "| recall at 1% false-positive rate (labels) | 0.400 | 0.300 | 0.200 | n/a |" in md
    assert "precision in the top k = 560 (review capacity) (labels) | 0.500 |" in md
    assert "ECE 0.004, Brier 0.006" in md and "0.200 ± 0.030 (8 trials)" in md
    assert "| model | 10 | 80 | 7 | 3 | 1.250 | 2.500 | 0.4% | 0.360 |" in md
    assert "| no model (everyone standard) | 0 | 0 | 0 | 0 | n/a |" in md
    assert "| plain LightGBM (defaults, basic features) | 0 | 0 | 0 | 0 | n/a |" in md
    assert "| size_bracketer | honest | 100 | 1.0% | 1.5% | 2.0% | 30.0% |" in md
    assert "|---|---|---|---|---|---|---|\n| size_bracketer" in md
    assert "| without reviews | 0.250 | 0.050 |" in md
    assert "truth" not in md.split("Calibration")[0]
    metrics["truth"] = {"model": {"roc_auc": 0.7, "average_precision": 0.5},
                        "plain": {"roc_auc": 0.8, "average_precision": 0.6}}
    with_truth = results_markdown(metrics)
    assert with_truth.startswith("refundguard beats the plain LightGBM on labels (AP 0.300 vs "
                                 "0.250, AUC 0.900 vs 0.870) but does NOT beat it on the truth "
                                 "(AP 0.500 vs 0.600, AUC 0.700 vs 0.800): this is a bug to "
                                 "investigate.\n")
    assert "| average precision (truth: every abuser) | 0.500 | 0.600 | n/a | n/a |" in with_truth
    del metrics["truth"]
    f = tmp_path / "m.json"
    f.write_text(json.dumps(metrics), encoding="utf-8")
    assert generated_blocks(f)["results"] == md
