"""The generated doc blocks are current, and the README stays short and true to the tree."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from scripts.docs import (
    GENERATED,
    doc_files,
    generated_blocks,
    render_blocks,
    render_docs,
    results_markdown,
    summary_markdown,
)
from tests.fixtures import LAYERS, REPO

README = REPO / "README.md"
PACKAGE = REPO / "src" / "refundguard"
# Where each generated block lives; moving one means changing this line on purpose.
HOMES = {"summary": "README.md", "contract": "contract.md", "features": "features.md",
         "results": "results.md"}


def test_generated_blocks_are_current() -> None:
    rendered = render_docs(REPO, REPO / "reports" / "evaluation.json")
    stale = [p.relative_to(REPO).as_posix() for p, text in rendered.items()
             if p.read_text(encoding="utf-8") != text]
    assert not stale, f"{stale} out of date: run `python scripts/docs.py`"


def test_every_block_is_in_its_file() -> None:
    assert set(HOMES) == set(GENERATED)
    texts = {p.name: p.read_text(encoding="utf-8") for p in doc_files(REPO)}
    for name, home in HOMES.items():
        assert texts[home].count(f"<!-- {name}:start -->") == 1, (name, home)
        others = [f for f, text in texts.items() if f != home and f"<!-- {name}:" in text]
        assert not others, f"the {name} block is also in {others}"


def test_render_replaces_only_between_markers() -> None:
    text = "intro\n<!-- contract:start -->\nstale\n<!-- contract:end -->\n" \
           "<!-- features:start -->\n<!-- features:end -->\noutro\n"
    blocks = generated_blocks()
    out = render_blocks(text, blocks, required=("contract",))
    assert out.startswith("intro\n") and out.endswith("outro\n")
    assert "stale" not in out
    assert blocks["contract"] in out and blocks["features"] in out


def test_render_needs_the_markers() -> None:
    with pytest.raises(ValueError, match="contract"):
        render_blocks("no markers here", generated_blocks(), required=("contract",))
    assert render_blocks("no markers here", generated_blocks()) == "no markers here"
    with pytest.raises(ValueError, match="nonesuch"):
        render_blocks("<!-- nonesuch:start -->\n<!-- nonesuch:end -->\n", {})
    with pytest.raises(ValueError, match="exactly one"):
        render_blocks("<!-- contract:start -->\nx\n", generated_blocks())


def test_a_block_in_two_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    block = "".join(f"<!-- {n}:start -->\n<!-- {n}:end -->\n" for n in GENERATED)
    (tmp_path / "README.md").write_text(block, encoding="utf-8")
    assert render_docs(tmp_path)[tmp_path / "README.md"].count(":start -->") == len(GENERATED)
    (tmp_path / "docs" / "x.md").write_text("<!-- contract:start -->\n<!-- contract:end -->\n",
                                            encoding="utf-8")
    with pytest.raises(ValueError, match="contract block must be in exactly one"):
        render_docs(tmp_path)


def test_readme_is_at_most_200_lines() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail to docs/"


def module_map() -> list[tuple[str, str, str]]:
    """The README's module map table: (unit, layer, what lives there) per row."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Module map"):]
    section = section[: section.index("\n## ")]
    out = []
    for line in section.splitlines():
        if line.startswith("| `"):
            unit, layer, what = (c.strip() for c in line.strip().strip("|").split("|", 2))
            out.append((unit, layer, what))
    return out


def test_readme_module_map_matches_the_tree() -> None:
    rows = module_map()
    named = [unit.strip("`") for unit, _, _ in rows]
    actual = {p.name + "/" for p in PACKAGE.iterdir()
              if p.is_dir() and (p / "__init__.py").is_file()}
    actual |= {p.name for p in PACKAGE.glob("*.py")}
    assert len(named) == len(set(named)), f"named twice: {named}"
    assert not actual - set(named), f"module map misses {sorted(actual - set(named))}"
    assert not set(named) - actual, f"module map names {sorted(set(named) - actual)}, not in src"


def test_readme_module_map_layers_and_files_exist() -> None:
    for unit, layer, what in module_map():
        name = unit.strip("`").removesuffix("/").removesuffix(".py")
        expected = next(i for i, names in enumerate(LAYERS) if name in names) + 1
        if name != "__init__":
            assert layer == str(expected), f"{unit} is on layer {expected}, README says {layer}"
        if unit.endswith("/`"):
            folder = PACKAGE / name
            for mentioned in re.findall(r"`([\w.]+(?:\.py|/))`", what):
                assert (folder / mentioned.rstrip("/")).exists(), (
                    f"README's module map names {name}/{mentioned}, which does not exist"
                )


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
    summary = summary_markdown(metrics)
    assert summary.startswith("refundguard beats the plain LightGBM on labels")
    assert "- average precision (labels): model 0.300, plain LightGBM 0.250, rule 0.100;" in summary
    assert "model 1.0% (size_bracketer), rule 30.0% (size_bracketer)" in summary
    assert summary.endswith("- expected calibration error: 0.004.\n")
    assert generated_blocks(f)["summary"] == summary
