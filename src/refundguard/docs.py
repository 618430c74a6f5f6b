"""Keep the README's generated tables (data contract, feature catalog) in step with code.

``python -m refundguard.docs`` rewrites the blocks between the markers in README.md;
a test fails when the README is out of date.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from refundguard.config import FeaturesParams
from refundguard.contract import contract_markdown
from refundguard.features import build_catalog, catalog_markdown
from refundguard.paths import METRICS_FILE, PROJECT_ROOT

SEGMENTS_HONEST = ("honest", "household", "size_bracketer", "logistics_victim", "picky_reviewer")
SEGMENTS_ABUSE = ("refund_only_claimer", "extortion_reviewer", "wardrober", "ring_member")


def _fmt(value: object) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"  # type: ignore[arg-type]


def results_markdown(metrics: dict[str, Any]) -> str:
    """The README's results tables from a metrics.json.

    Args:
        metrics: Nested metrics as the evaluate stage writes them.

    Returns:
        Markdown: headline metrics, segment flag rates, ablation.
    """
    rows = [
        "| on the test window | model | rule baseline |",
        "|---|---|---|",
    ]
    names = {
        "roc_auc": "ROC-AUC (labels)",
        "average_precision": "average precision (labels)",
        "recall_at_fpr": "recall at 1% false-positive rate (labels)",
        "precision_at_top": "precision in the top 1% (labels)",
    }
    for key, label in names.items():
        rows.append(
            f"| {label} | {_fmt(metrics['model'][key])} | {_fmt(metrics['baseline'][key])} |"
        )
    truth = metrics.get("truth")
    if truth:
        for key in ("average_precision", "precision_at_top"):
            label = names[key].replace("(labels)", "(truth: every abuser)")
            rows.append(
                f"| {label} | {_fmt(truth['model'][key])} | {_fmt(truth['baseline'][key])} |"
            )
    out = "\n".join(rows) + "\n"
    segments = metrics.get("segment")
    if segments:
        seg_rows = [
            "",
            "Share of each true segment flagged (model: probability >= `policy.review_from`; "
            "baseline: its rule):",
            "",
            "| segment | kind | buyers | model flags | baseline flags |",
            "|---|---|---|---|---|",
        ]
        for seg in (*SEGMENTS_HONEST, *SEGMENTS_ABUSE):
            if seg in segments:
                m = segments[seg]
                kind = "honest" if seg in SEGMENTS_HONEST else "abuser"
                seg_rows.append(
                    f"| {seg} | {kind} | {int(m['rows']):,} | {float(m['model_flag_rate']):.1%} "
                    f"| {float(m['baseline_flag_rate']):.1%} |"
                )
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


def generated_blocks(metrics_file: Path | None = None) -> dict[str, str]:
    """The generated README blocks by marker name.

    Args:
        metrics_file: A metrics.json for the "results" block; None leaves it out.

    Returns:
        Markdown for "contract", "features" (default feature windows) and, with a
        metrics file, "results".
    """
    blocks = {
        "contract": contract_markdown(),
        "features": catalog_markdown(build_catalog(FeaturesParams())),
    }
    if metrics_file is not None and metrics_file.is_file():
        blocks["results"] = results_markdown(json.loads(metrics_file.read_text("utf-8")))
    return blocks


def _replacer(block: str) -> Callable[[re.Match[str]], str]:
    def replace(m: re.Match[str]) -> str:
        return m.group(1) + block + m.group(2)

    return replace


def render_readme(text: str, metrics_file: Path | None = None) -> str:
    """Replace every ``<!-- NAME:start -->...<!-- NAME:end -->`` block with its content.

    Args:
        text: README text.
        metrics_file: A metrics.json for the results block, if any.

    Returns:
        The updated text.

    Raises:
        ValueError: A marker pair is missing.
    """
    for name, block in generated_blocks(metrics_file).items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README has no <!-- {name}:start --> ... <!-- {name}:end --> block")
        text = pattern.sub(_replacer(block), text)
    return text


def main(readme: Path = PROJECT_ROOT / "README.md", metrics_file: Path = METRICS_FILE) -> None:
    """Rewrite README.md's generated blocks in place.

    Args:
        readme: The README file.
        metrics_file: The metrics for the results block.
    """
    text = render_readme(readme.read_text(encoding="utf-8"), metrics_file)
    readme.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
