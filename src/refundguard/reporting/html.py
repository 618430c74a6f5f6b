"""The evaluate stage's report: one self-contained HTML file, every plot inline as SVG.

Plots are drawn with matplotlib's object API (no pyplot, so no global state) and
embedded as SVG text with a fixed hash salt and no date, so the same metrics give the
same bytes. Nothing is fetched when the page is opened.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from refundguard.contract.vocabulary import (
    ABUSER_SEGMENTS,
    DEFAULT_TIER,
    HONEST_SEGMENT,
    LOOKALIKE_SEGMENTS,
    TIERS,
)
from refundguard.features.catalog import Feature
from refundguard.model.policy import TIER_TEXT
from refundguard.paths import CONSISTENCY_DIR, CONSISTENCY_FILE_NAME, PROJECT_ROOT

# Where the consistency check lives, as the report names it (relative to the project).
_CONSISTENCY_SHOWN = (CONSISTENCY_DIR / CONSISTENCY_FILE_NAME).relative_to(PROJECT_ROOT).as_posix()

OPTION_LABELS = {
    "no_model": f"No model (everyone {DEFAULT_TIER})",
    "baseline": "Rule baseline",
    "logistic": "Logistic regression",
    "plain": "Plain LightGBM (defaults, basic features)",
    "model": "Model (LightGBM)",
}


SCORER_LABELS = {
    "model": "Model",
    "plain": "Plain LightGBM",
    "logistic": "Logistic regression",
    "baseline": "Rule",
}


SCORERS_ORDER = ("model", "plain", "logistic", "baseline")


COLORS = {"model": "#1f5fbf", "plain": "#2e8b57", "logistic": "#d98c1a", "baseline": "#7a7a7a"}


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows.

    Attributes:
        metrics: Flat test metrics.
        curves: (ROC, precision-recall) frames per scorer.
        reliability: The model's reliability table.
        scores: ``segment`` and ``probability`` per test row.
        bounds: The model's tier bounds.
        importance: ``feature`` and ``gain``, most important first.
        catalog: Feature catalog entries by name.
        gate: The champion/challenger decision.
        info: training.json.
        consistency: The time-consistency check (``CONSISTENCY_FILE_NAME``), if it ran.
    """

    metrics: Mapping[str, float]
    curves: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]]
    reliability: pd.DataFrame
    scores: pd.DataFrame
    bounds: tuple[float, float, float]
    importance: pd.DataFrame
    catalog: Mapping[str, Feature]
    gate: Mapping[str, Any] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)
    consistency: Mapping[str, Any] = field(default_factory=dict)


def _svg(fig: Any) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "refundguard", "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _figure(width: float = 5.0, height: float = 3.6) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    return fig, fig.add_subplot()


def _curves_plot(
    curves: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]], which: int
) -> str:
    fig, ax = _figure()
    x, y = ("fpr", "tpr") if which == 0 else ("recall", "precision")
    for name, pair in curves.items():
        frame = pair[which]
        ax.plot(frame[x], frame[y], label=SCORER_LABELS.get(name, name), color=COLORS.get(name))
    if which == 0:
        ax.plot([0, 1], [0, 1], color="#cccccc", lw=0.8, ls="--")
        ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC (test)")
    else:
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test)",
               ylim=(0, 1.02))
    ax.legend(loc="lower right" if which == 0 else "upper right", fontsize=8)
    return _svg(fig)


def roc_plot(curves: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]]) -> str:
    """ROC curves of every scorer.

    Args:
        curves: (ROC, precision-recall) frames per scorer.

    Returns:
        SVG text.
    """
    return _curves_plot(curves, 0)


def pr_plot(curves: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]]) -> str:
    """Precision-recall curves of every scorer.

    Args:
        curves: (ROC, precision-recall) frames per scorer.

    Returns:
        SVG text.
    """
    return _curves_plot(curves, 1)


def calibration_plot(rel: pd.DataFrame) -> str:
    """Reliability diagram: observed rate against mean predicted probability per bin.

    Args:
        rel: The reliability table.

    Returns:
        SVG text.
    """
    fig, ax = _figure()
    ax.plot([0, 1], [0, 1], color="#cccccc", lw=0.8, ls="--", label="perfect")
    ax.plot(rel["mean_predicted"], rel["observed_rate"], marker="o", color=COLORS["model"],
            label="model")
    for _, r in rel.iterrows():
        ax.annotate(f"{int(r['rows'])}", (r["mean_predicted"], r["observed_rate"]),
                    fontsize=6, xytext=(3, -8), textcoords="offset points")
    ax.set(xlabel="mean predicted probability", ylabel="observed rate (labels)",
           title="Calibration (test; n per bin)", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=8)
    return _svg(fig)


def distribution_plot(scores: pd.DataFrame, bounds: tuple[float, float, float]) -> str:
    """Score distribution per segment (box plots on a log axis) with the tier bounds.

    Args:
        scores: ``segment`` and ``probability`` per row.
        bounds: Tier bounds, drawn as vertical lines.

    Returns:
        SVG text.
    """
    segments = sorted(scores["segment"].unique())
    fig, ax = _figure(6.5, 0.45 * len(segments) + 1.4)
    floor = 1e-4
    data = [np.clip(scores.loc[scores["segment"] == s, "probability"].to_numpy(), floor, 1)
            for s in segments]
    ax.boxplot(data, orientation="horizontal", tick_labels=segments, whis=(1, 99),
               showfliers=False)
    for b, name in zip(bounds, TIERS[1:], strict=True):
        if b <= 1:
            ax.axvline(b, color="#b22222", lw=0.8, ls=":")
            ax.text(b, len(segments) + 0.6, name, fontsize=7, color="#b22222", ha="center")
    ax.set_xscale("log")
    ax.set(xlabel="calibrated probability (log scale; whiskers 1-99%)",
           title="Score distribution per segment (test)")
    ax.tick_params(axis="y", labelsize=7)
    return _svg(fig)


def importance_plot(importance: pd.DataFrame, top: int = 20) -> str:
    """Total gain of the most important features.

    Args:
        importance: ``feature`` and ``gain``, most important first.
        top: Features shown.

    Returns:
        SVG text.
    """
    head = importance.head(top).iloc[::-1]
    fig, ax = _figure(6.0, 0.25 * len(head) + 1.0)
    ax.barh(head["feature"], head["gain"], color=COLORS["model"])
    ax.set(xlabel="total gain", title=f"Feature importance (top {len(head)})")
    ax.tick_params(axis="y", labelsize=7)
    return _svg(fig)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return html.escape(str(v))


def _pct(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{100 * float(v):.2f}%"


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    # Headers are markup (some carry a <br> and a caption); callers escape their text.
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _model_paragraph(info: Mapping[str, Any]) -> str:
    """Which model ships, which one these figures judge, and the label horizon."""
    horizon = info.get("horizon", {})
    how = (
        f"derived from the data ({horizon.get('n_delays', 0)} label delays, quantile "
        f"{_fmt(horizon.get('quantile_days'))} days)"
        if horizon.get("source") == "data"
        else "set in params.yaml"
    )
    held = info.get("holdout", {})
    text = (
        f"Label horizon H = {info.get('horizon_days')} days, {how}. The figures above judge "
        f"the held-out booster ({held.get('rounds', info.get('best_iteration'))} rounds on "
        f"{held.get('rows', 0):,} rows of the train cutoffs). "
    )
    shipped = info.get("shipped") or {}
    if info.get("ships") == "refit" and shipped:
        oot = shipped.get("oot_metrics", {})
        text += (
            f"The shipped booster is refit on all {len(shipped.get('cutoffs', []))} cutoffs "
            f"({shipped.get('rows', 0):,} rows, {shipped.get('rounds')} rounds) and "
            f"calibrated ({shipped.get('calibration_method')}) on out-of-time predictions "
            f"of {len(shipped.get('crossfit_blocks', []))} blocks of cutoffs "
            f"({shipped.get('oot_rows', 0):,} rows; out-of-time AP "
            f"{_fmt(oot.get('average_precision'))}, AUC {_fmt(oot.get('roc_auc'))})."
        )
    else:
        text += "The held-out booster is also the one that ships (train.refit: false)."
    return f"<p>{html.escape(text)}</p>"


def _consistency_section(c: Mapping[str, Any]) -> str:
    """The time-consistency check: every feature's figures, those left out first."""
    checks = sorted(
        c.get("checks", []),
        key=lambda r: (bool(r.get("passed")), -float(r.get("adversarial_auc") or 0.0)),
    )
    dropped = list(c.get("dropped", []))
    summary = (
        f"Early side: {len(c.get('early_cutoffs', []))} training cutoffs; late side: "
        f"{', '.join(str(x)[:10] for x in c.get('late_cutoffs', []))}. An early-vs-late "
        f"classifier on all features reaches AUC {_fmt(c.get('adversarial_auc'))}. "
        + (f"Left out of the model: {', '.join(dropped)}." if dropped
           else "Every feature kept." if c.get("enabled", True)
           else "The check is report-only (consistency.enabled: false).")
    )
    rows = [
        [html.escape(str(r["name"])), _fmt(r.get("psi")), _fmt(r.get("adversarial_auc")),
         _pct(r.get("adversarial_importance")), _fmt(r.get("auc_early")),
         _fmt(r.get("auc_late")), "kept" if r.get("passed") else "<b>left out</b>",
         html.escape(str(r.get("reason", "")))]
        for r in checks[:25]
    ]
    return (
        "<h3>Time consistency of the features</h3>"
        f"<p>{html.escape(summary)} The 25 features that drift most are listed "
        f"(all in {_CONSISTENCY_SHOWN}).</p>"
        + _table(["feature", "PSI", "early vs late AUC", "share of gain",
                  "AUC early", "AUC late", "verdict", "why"], rows)
    )


def _beats(m: Mapping[str, float], prefix: str) -> tuple[bool | None, str]:
    """Whether the model beats the plain LightGBM on both AP and AUC, and the figures."""
    figures = []
    wins = []
    for key, name in (("average_precision", "AP"), ("roc_auc", "AUC")):
        ours, plain = m.get(f"{prefix}model.{key}"), m.get(f"{prefix}plain.{key}")
        if ours is None or plain is None or not (math.isfinite(ours) and math.isfinite(plain)):
            return None, ""
        figures.append(f"{name} {ours:.3f} vs {plain:.3f}")
        wins.append(ours > plain)
    return all(wins), ", ".join(figures)


def plain_verdict(m: Mapping[str, float]) -> str:
    """One sentence: does refundguard beat the plain LightGBM, on labels and on the truth?

    "Beats" means a higher average precision and a higher ROC-AUC on the test window.

    Args:
        m: Flat metrics with "model.*" and "plain.*" (and "truth.*" with a truth file).

    Returns:
        The sentence, plain text.
    """
    parts = []
    failed = False
    for prefix, where in (("", "labels"), ("truth.", "the truth")):
        won, figures = _beats(m, prefix)
        if won is None:
            if not prefix:
                return "refundguard could not be compared with the plain LightGBM (no figures)."
            continue
        failed = failed or not won
        verb = "beats" if won else "does NOT beat"
        parts.append((verb, f"on {where} ({figures})"))
    if len(parts) == 1:
        text = f"refundguard {parts[0][0]} the plain LightGBM {parts[0][1]}"
    elif parts[0][0] == parts[1][0]:
        text = f"refundguard {parts[0][0]} the plain LightGBM {parts[0][1]} and {parts[1][1]}"
    else:
        text = (f"refundguard {parts[0][0]} the plain LightGBM {parts[0][1]} but "
                f"{parts[1][0]} it {parts[1][1]}")
    return text + (": this is a bug to investigate." if failed else ".")


def _lookalike_verdict(m: Mapping[str, float]) -> str:
    rates = {s: m.get(f"segment.{s}.model_flag_rate") for s in LOOKALIKE_SEGMENTS}
    known = {s: r for s, r in rates.items() if r is not None and math.isfinite(r)}
    if not known:
        return ("<p>No truth file: the false-positive rate of honest look-alikes cannot be "
                "measured on this data.</p>")
    worst = max(known, key=lambda s: known[s])
    ok = known[worst] <= 0.02
    word = "are not" if ok else "ARE"
    cls = "ok" if ok else "bad"
    return (
        f'<p class="verdict {cls}">Honest look-alikes {word} being caught: the highest '
        f"false-positive rate at the review threshold is {_pct(known[worst])} "
        f"({html.escape(worst)}; target at most 2%).</p>"
    )


def render(data: ReportData) -> str:
    """The report as one HTML page.

    Args:
        data: What to show.

    Returns:
        HTML text (UTF-8, no external resources).
    """
    m = data.metrics
    parts: list[str] = []
    won = [_beats(m, p)[0] for p in ("", "truth.")]
    cls = "bad" if False in won else "ok" if won[0] else ""
    parts.append(f'<p class="headline {cls}">{html.escape(plain_verdict(m))}</p>')
    headline = [
        ("ROC-AUC", "roc_auc", _fmt),
        ("Average precision", "average_precision", _fmt),
        ("Recall at 1% FPR", "recall_at_fpr", _fmt),
        (f"Precision in top k (k = review capacity = {int(m.get('capacity_k', 0))})",
         "precision_at_capacity", _fmt),
        ("Sent to review or restrict", "flag_rate", _pct),
    ]
    rows = []
    for label, key, f in headline:
        rows.append([html.escape(label)] + [f(m.get(f"{s}.{key}")) for s in SCORERS_ORDER])
    parts.append("<h2>Test-period metrics (labels)</h2>")
    parts.append(_table(["metric", *[SCORER_LABELS[s] for s in SCORERS_ORDER]], rows))
    if any(k.startswith("truth.") for k in m):
        rows = []
        for label, key, f in headline[:4]:
            cells = [
                f"{f(m.get(f'truth.{s}.{key}'))} <small>(labels {f(m.get(f'{s}.{key}'))})</small>"
                for s in SCORERS_ORDER
            ]
            rows.append([html.escape(label), *cells])
        parts.append("<h3>Against the truth (every abuser, caught or not) vs. the labels</h3>")
        parts.append(_table(["metric", *[SCORER_LABELS[s] for s in SCORERS_ORDER]], rows))

    parts.append("<h2>Honest look-alikes and abusers, at the review threshold</h2>")
    parts.append(_lookalike_verdict(m))
    segs = sorted({k.split(".")[1] for k in m if k.startswith("segment.")})
    if segs:
        rows = []
        for s in segs:
            kind = ("honest look-alike" if s in LOOKALIKE_SEGMENTS else
                    "abuser" if s in ABUSER_SEGMENTS else "honest" if s == HONEST_SEGMENT else "")
            what = "recall" if s in ABUSER_SEGMENTS else "false-positive rate"
            rows.append([html.escape(s), kind, what, _fmt(m.get(f"segment.{s}.rows"), 0)]
                        + [_pct(m.get(f"segment.{s}.{x}_flag_rate")) for x in SCORERS_ORDER])
        parts.append(_table(["segment", "kind", "figure", "rows",
                             *[SCORER_LABELS[s] for s in SCORERS_ORDER]], rows))

    parts.append("<h2>Policy tiers and expected cost</h2>")
    parts.append(
        "<p>Tier bounds (calibrated probability): "
        + ", ".join(f"{t} from {_fmt(b, 4)}" for t, b in zip(TIERS[1:], data.bounds, strict=True))
        + ". Chosen on the calibration window from the costs and limits in params.yaml.</p>"
    )
    rows = []
    for opt in ("no_model", "baseline", "logistic", "plain", "model"):
        rows.append(
            [OPTION_LABELS[opt]]
            + [_fmt(m.get(f"cost.{opt}.count.{t}"), 0) for t in TIERS]
            + [_fmt(m.get(f"cost.{opt}.cost_per_buyer"), 2),
               _fmt(m.get(f"cost.{opt}.truth_cost_per_buyer"), 2),
               _pct(m.get(f"cost.{opt}.honest_above_standard")),
               _fmt(m.get(f"cost.{opt}.flagged_per_day"), 1)]
        )
    parts.append(_table(
        ["option", *[f"{t}<br><small>{html.escape(TIER_TEXT[t][1])}</small>" for t in TIERS],
         "cost / buyer (labels, CNY)", "cost / buyer (truth, CNY)",
         "honest above standard", "cases / day"], rows))

    parts.append("<h2>Curves</h2><div class='grid'>")
    parts.append(f"<figure>{roc_plot(data.curves)}</figure>")
    parts.append(f"<figure>{pr_plot(data.curves)}</figure>")
    parts.append(f"<figure>{calibration_plot(data.reliability)}</figure>")
    parts.append("</div>")
    parts.append(
        f"<p>Calibration on the test window: ECE {_fmt(m.get('calibration.ece'), 4)}, "
        f"Brier {_fmt(m.get('calibration.brier'), 4)} (target ECE at most 0.02). "
        f"Method: {html.escape(str(data.info.get('calibration_method', '')))}; "
        "cross-validated Brier in the calibration window: "
        + ", ".join(f"{k} {_fmt(v, 5)}" for k, v in
                    sorted(data.info.get("calibration_brier", {}).items()))
        + ".</p>"
    )
    parts.append("<h2>Score distribution per segment</h2>")
    parts.append(f"<figure>{distribution_plot(data.scores, data.bounds)}</figure>")
    parts.append("<h2>Feature importance</h2>")
    parts.append(f"<figure>{importance_plot(data.importance)}</figure>")
    top = data.importance.head(10)
    parts.append(_table(
        ["feature", "gain", "描述", "description"],
        [[html.escape(r.feature), _fmt(float(r.gain), 0),
          html.escape(data.catalog[r.feature].zh) if r.feature in data.catalog else "",
          html.escape(data.catalog[r.feature].en) if r.feature in data.catalog else ""]
         for r in top.itertuples()]))

    parts.append("<h2>Training</h2>")
    tuning = data.info.get("tuning", {})
    rw = data.info.get("reweight", {})
    parts.append(
        "<p>Rolling (prequential) validation of the chosen settings: average precision "
        f"{_fmt(tuning.get('rolling_ap_mean'))} ± {_fmt(tuning.get('rolling_ap_std'))} over "
        f"{len(tuning.get('folds', []))} folds; {len(tuning.get('trials', []))} trials. "
        f"Class reweighting: none {_fmt(rw.get('none_ap_mean'))} vs balanced "
        f"{_fmt(rw.get('balanced_ap_mean'))} → "
        f"{'balanced' if rw.get('reweighted') else 'no reweighting'}. "
        "Monotone (never lower the risk): "
        + html.escape(", ".join(data.info.get("monotone_increasing", [])) or "none")
        + ".</p>"
    )
    parts.append(_model_paragraph(data.info))
    if data.consistency:
        parts.append(_consistency_section(data.consistency))
    abl = sorted(k for k in m if k.startswith("ablation.without_") and k.endswith(".ap_drop"))
    if abl:
        parts.append("<h3>Ablation: drop in average precision without each group</h3>")
        parts.append(_table(["group", "AP without", "drop"], [
            [html.escape(k.split(".")[1].removeprefix("without_")),
             _fmt(m.get(k.replace("ap_drop", "average_precision"))), _fmt(m.get(k))]
            for k in abl]))
    if data.gate:
        g = data.gate
        parts.append("<h2>Registry gate</h2>")
        parts.append(
            f"<p>Metric {html.escape(str(g.get('metric')))}: this model "
            f"{_fmt(g.get('candidate'))}, champion "
            f"{_fmt(g.get('champion'))}"
            + (f" (version {html.escape(str(g['champion_version']))})"
               if g.get("champion_version") else "")
            + f" → <b>{html.escape(str(g.get('decision')))}</b>"
            + (f". {html.escape(str(g['note']))}" if g.get("note") else "")
            + "</p>"
        )
    body = "\n".join(parts)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>refundguard evaluation report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure {{ margin: 0; }} figure svg {{ max-width: 100%; height: auto; }}
.verdict, .headline {{ font-weight: bold; padding: 0.5em; }} .ok {{ background: #e6f4e6; }}
.bad {{ background: #fbe3e3; }}
</style></head><body>
<h1>refundguard evaluation report</h1>
<p>Test window: {html.escape(", ".join(data.info.get("split", {}).get("test", [])))};
{_fmt(m.get("model.n"), 0)} buyer snapshots, {_fmt(m.get("model.positives"), 0)} labeled
abusers. Data hash {html.escape(str(data.info.get("data_hash", ""))[:12])}, commit
{html.escape(str(data.info.get("git_commit", ""))[:12])}.</p>
{body}
</body></html>
"""
