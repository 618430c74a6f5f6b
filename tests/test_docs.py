from __future__ import annotations

import json
from pathlib import Path

import pytest

from refundguard.docs import generated_blocks, render_readme, results_markdown

REPO = Path(__file__).resolve().parents[1]


def test_readme_generated_blocks_are_current() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert render_readme(text, REPO / "reports" / "metrics.json") == text, (
        "README is out of date: run `python -m refundguard.docs`"
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
        "model": {"roc_auc": 0.9, "average_precision": 0.3, "recall_at_fpr": 0.4,
                  "precision_at_top": 0.5},
        "baseline": {"roc_auc": 0.8, "average_precision": 0.1, "recall_at_fpr": None,
                     "precision_at_top": 0.05},
        "segment": {"size_bracketer": {"rows": 100.0, "model_flag_rate": 0.01,
                                       "baseline_flag_rate": 0.3}},
        "ablation": {"full": {"average_precision": 0.3},
                     "without_reviews": {"average_precision": 0.25, "ap_drop": 0.05}},
    }
    md = results_markdown(metrics)
    assert "| average precision (labels) | 0.300 | 0.100 |" in md
    assert "| recall at 1% false-positive rate (labels) | 0.400 | n/a |" in md
    assert "| size_bracketer | honest | 100 | 1.0% | 30.0% |" in md
    assert "| without reviews | 0.250 | 0.050 |" in md
    f = tmp_path / "m.json"
    f.write_text(json.dumps(metrics), encoding="utf-8")
    assert generated_blocks(f)["results"] == md
