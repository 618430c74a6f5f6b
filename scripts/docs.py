"""Keep the generated tables in README.md and docs/*.md in step with the code.

``python scripts/docs.py`` rewrites every block between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->`` markers, in whichever of README.md and docs/*.md holds it: the data
contract (docs/contract.md), the feature catalog (docs/features.md), the results (docs/results.md)
and their summary (README.md). The results and summary blocks come from the evaluate stage's
reports/evaluation.json (every figure; the headline metrics.json is too short for it).
tests/unit/test_docs.py fails when a block is out of date.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from refundguard.config import FeaturesParams
from refundguard.contract.tables import contract_markdown
from refundguard.features.catalog import build_catalog, catalog_markdown
from refundguard.model.evaluation import EVALUATION_FILE
from refundguard.paths import PROJECT_ROOT
from refundguard.reporting.html import plain_verdict

SEGMENTS_HONEST = ("honest", "household", "size_bracketer", "logistics_victim", "picky_reviewer")
SEGMENTS_ABUSE = ("refund_only_claimer", "extortion_reviewer", "wardrober", "ring_member")


def _fmt(value: object) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"  # type: ignore[arg-type]


def _pct(value: object) -> str:
    return "n/a" if value is None else f"{float(value):.1%}"  # type: ignore[arg-type]


def _get(tree: dict[str, Any], path: str) -> Any:
    node: Any = tree
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


SCORER_COLUMNS = (
    ("model", "model"),
    ("plain", "plain LightGBM"),
    ("logistic", "logistic regression"),
    ("baseline", "rule"),
)
OPTION_ROWS = (
    ("no_model", "no model (everyone standard)"),
    ("baseline", "rule baseline (flag -> review)"),
    ("logistic", "logistic regression"),
    ("plain", "plain LightGBM (defaults, basic features)"),
    ("model", "model"),
)


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def results_markdown(metrics: dict[str, Any]) -> str:
    """The results tables (docs/results.md) from an evaluation.json.

    Args:
        metrics: Nested figures as the evaluate stage writes them to evaluation.json.

    Returns:
        Markdown: whether refundguard beats the plain LightGBM, headline metrics against
        labels and truth, calibration, tiers and costs per option, segment rates at the
        review threshold, ablation.
    """
    head = "| on the test window | " + " | ".join(n for _, n in SCORER_COLUMNS) + " |"
    rows = [plain_verdict(_flat(metrics)), "", head, "|---" * (len(SCORER_COLUMNS) + 1) + "|"]
    k = _get(metrics, "capacity_k")
    names = {
        "roc_auc": "ROC-AUC",
        "average_precision": "average precision",
        "recall_at_fpr": "recall at 1% false-positive rate",
        "precision_at_capacity": f"precision in the top k = {int(k or 0):,} (review capacity)",
    }
    for source, suffix in (("", "labels"), ("truth.", "truth: every abuser")):
        if source and not metrics.get("truth"):
            continue
        for key, label in names.items():
            cells = [_fmt(_get(metrics, f"{source}{s}.{key}")) for s, _ in SCORER_COLUMNS]
            rows.append(f"| {label} ({suffix}) | " + " | ".join(cells) + " |")
    out = "\n".join(rows) + "\n"
    cal = metrics.get("calibration", {})
    tuning = metrics.get("tuning", {})
    out += (
        f"\nCalibration on the test window: ECE {_fmt(cal.get('ece'))}, Brier "
        f"{_fmt(cal.get('brier'))}. Rolling validation of the tuned settings: average "
        f"precision {_fmt(tuning.get('rolling_ap_mean'))} ± {_fmt(tuning.get('rolling_ap_std'))} "
        f"({int(tuning.get('trials') or 0)} trials).\n"
    )
    pol = metrics.get("policy")
    if pol:
        out += (
            f"\nTier bounds chosen on the calibration window: standard from "
            f"{float(pol['standard_from']):.4f}, review from {float(pol['review_from']):.4f}, "
            f"restrict from {float(pol['restrict_from']):.4f}.\n\n"
            "| option | trusted | standard | review | restrict | cost per buyer (labels) "
            "| cost per buyer (truth) | honest above standard | cases/day |\n"
            "|---|---|---|---|---|---|---|---|---|\n"
        )
        for key, label in OPTION_ROWS:
            c = _get(metrics, f"cost.{key}") or {}
            counts = c.get("count", {})
            out += (
                f"| {label} | "
                + " | ".join(f"{int(counts.get(t) or 0):,}" for t in
                             ("trusted", "standard", "review", "restrict"))
                + f" | {_fmt(c.get('cost_per_buyer'))} | {_fmt(c.get('truth_cost_per_buyer'))} "
                f"| {_pct(c.get('honest_above_standard'))} | {_fmt(c.get('flagged_per_day'))} |\n"
            )
    segments = metrics.get("segment")
    if segments:
        seg_rows = [
            "",
            "Share of each true segment sent to review or restrict (the false-positive rate "
            "of honest segments, the recall of abusive ones); the rule flags at its threshold:",
            "",
            "| segment | kind | buyers | " + " | ".join(n for _, n in SCORER_COLUMNS) + " |",
            "|---" * (len(SCORER_COLUMNS) + 3) + "|",
        ]
        for seg in (*SEGMENTS_HONEST, *SEGMENTS_ABUSE):
            if seg in segments:
                m = segments[seg]
                kind = "honest" if seg in SEGMENTS_HONEST else "abuser"
                rates = " | ".join(_pct(m.get(f"{s}_flag_rate")) for s, _ in SCORER_COLUMNS)
                seg_rows.append(f"| {seg} | {kind} | {int(m['rows']):,} | {rates} |")
        out += "\n".join(seg_rows) + "\n"
    abl = metrics.get("ablation")
    if abl:
        abl_rows = [
            "",
            "Ablation (test average precision when a feature group is left out):",
            "",
            "| model | average precision | drop |",
            "|---|---|---|",
            f"| all features | {_fmt(abl['full']['average_precision'])} | |",
        ]
        for key in sorted(k for k in abl if k.startswith("without_")):
            abl_rows.append(
                f"| without {key.removeprefix('without_')} "
                f"| {_fmt(abl[key]['average_precision'])} | {_fmt(abl[key]['ap_drop'])} |"
            )
        out += "\n".join(abl_rows) + "\n"
    return out


def summary_markdown(metrics: dict[str, Any]) -> str:
    """The README's short results summary from an evaluation.json.

    Args:
        metrics: Nested figures as the evaluate stage writes them to evaluation.json.

    Returns:
        Markdown: the plain-LightGBM verdict, then average precision of the model, the plain
        LightGBM and the rule, the highest false-positive rate of an honest segment for the
        model and the rule, and the calibration error.
    """
    ap = ", ".join(f"{name} {_fmt(_get(metrics, f'{key}.average_precision'))}"
                   for key, name in (("model", "model"), ("plain", "plain LightGBM"),
                                     ("baseline", "rule")))
    lines = [plain_verdict(_flat(metrics)), "", f"- average precision (labels): {ap};"]
    segments = metrics.get("segment") or {}
    honest = [s for s in SEGMENTS_HONEST if s in segments]
    if honest:
        worst = []
        for key, name in (("model", "model"), ("baseline", "rule")):
            seg = max(honest, key=lambda s: float(segments[s].get(f"{key}_flag_rate") or 0.0))
            worst.append(f"{name} {_pct(segments[seg].get(f'{key}_flag_rate'))} ({seg})")
        lines.append("- highest false-positive rate of an honest segment at the review "
                     f"threshold: {', '.join(worst)};")
    lines.append(f"- expected calibration error: {_fmt(_get(metrics, 'calibration.ece'))}.")
    return "\n".join(lines) + "\n"


GENERATED = ("summary", "contract", "features", "results")


def generated_blocks(metrics_file: Path | None = None) -> dict[str, str]:
    """The generated blocks by marker name.

    Args:
        metrics_file: An evaluation.json for the "results" block; None leaves it out.

    Returns:
        Markdown for "contract", "features" (default feature windows) and, with a
        metrics file, "summary" (README) and "results" (docs/results.md).
    """
    blocks = {
        "contract": contract_markdown(),
        "features": catalog_markdown(build_catalog(FeaturesParams())),
    }
    if metrics_file is not None and metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text("utf-8"))
        blocks["summary"] = summary_markdown(metrics)
        blocks["results"] = results_markdown(metrics)
    return blocks


MARKER = re.compile(r"<!-- ([a-z][a-z0-9_-]*):start -->")


def doc_files(root: Path = PROJECT_ROOT) -> list[Path]:
    """The files that may hold generated blocks: README.md, then docs/*.md by name."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _replacer(block: str) -> Callable[[re.Match[str]], str]:
    def replace(m: re.Match[str]) -> str:
        return m.group(1) + block + m.group(2)

    return replace


def render_blocks(text: str, blocks: dict[str, str], required: Iterable[str] = ()) -> str:
    """Replace every ``<!-- NAME:start -->...<!-- NAME:end -->`` block with its content.

    Args:
        text: A markdown file's text.
        blocks: Content by block name; a block whose markers are not in ``text`` is skipped.
        required: Block names whose markers ``text`` must hold.

    Returns:
        The updated text.

    Raises:
        ValueError: A required marker pair is missing, a marker has no end or appears
            twice, or a marker names a block nothing generates.
    """
    for name in MARKER.findall(text):
        if name not in GENERATED:
            raise ValueError(f"<!-- {name}:start --> names no generated block ({GENERATED})")
    for name in GENERATED:
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        count = (text.count(start), text.count(end))
        if count == (0, 0):
            if name in required:
                raise ValueError(f"no <!-- {name}:start --> ... <!-- {name}:end --> block")
            continue
        if count != (1, 1) or text.index(start) > text.index(end):
            raise ValueError(f"the {name} block needs exactly one {start} before one {end}")
        if name in blocks:
            pattern = re.compile(rf"({re.escape(start)}\n).*?({re.escape(end)})", re.S)
            text = pattern.sub(_replacer(blocks[name]), text)
    return text


def render_docs(root: Path = PROJECT_ROOT, metrics_file: Path | None = None) -> dict[Path, str]:
    """Every doc file's text with its generated blocks rewritten.

    Args:
        root: The repository root (README.md and docs/).
        metrics_file: An evaluation.json for the results block; None (or a missing file)
            leaves that block as it is.

    Returns:
        The new text of every file in :func:`doc_files`, by path.

    Raises:
        ValueError: A generated block is in no file or in more than one, or a file's
            markers are broken (see :func:`render_blocks`).
    """
    blocks = generated_blocks(metrics_file)
    texts = {path: path.read_text(encoding="utf-8") for path in doc_files(root) if path.is_file()}
    for name in GENERATED:
        holders = [p.name for p, text in texts.items() if f"<!-- {name}:start -->" in text]
        if len(holders) != 1:
            raise ValueError(f"the {name} block must be in exactly one of README.md and "
                             f"docs/*.md, found in {holders or 'none'}")
    return {path: render_blocks(text, blocks) for path, text in texts.items()}


def main(root: Path = PROJECT_ROOT, metrics_file: Path = EVALUATION_FILE) -> None:
    """Rewrite the generated blocks in README.md and docs/*.md in place.

    Args:
        root: The repository root.
        metrics_file: The evaluate stage's evaluation.json, for the results block.
    """
    for path, text in render_docs(root, metrics_file).items():
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"docs: rewrote {path.relative_to(root)}")


if __name__ == "__main__":
    main()
