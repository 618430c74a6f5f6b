"""The evaluate stage's report: one self-contained HTML file, every plot inline as SVG.

The page is bilingual. Every heading, table header, tier name, sentence and figure
caption is written twice, once inside an element with ``lang="zh"`` and once with
``lang="en"``; two radio buttons at the top of the page (pure CSS, no script) hide one
language. The language checked when the page opens is ``render``'s ``lang``, or, with
``"auto"``/None, Chinese when the data's time zone (``base.timezone``) is one of
mainland China, Hong Kong, Macau or Taiwan and English otherwise (see
:func:`report_language`). Printing prints the language shown.

Times (cutoffs, the split windows) are shown in the data's time zone, which the page
names; a date alone means 00:00 local time that day.

Plots are drawn with matplotlib's object API (no pyplot, so no global state) and
embedded as SVG text with a fixed hash salt and no date, so the same metrics give the
same bytes. Each plot is drawn once: its titles and axis labels carry both languages
("召回率 recall") when matplotlib has a font with Chinese glyphs, and English only when
it has none (no tofu boxes); the Chinese then stands in the HTML caption under the
figure, which every figure has in both languages. Nothing is fetched when the page is
opened.
"""

from __future__ import annotations

import functools
import html
import io
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from refundguard.contract.vocabulary import (
    ABUSER_SEGMENTS,
    DEFAULT_TIER,
    HONEST_SEGMENT,
    LOOKALIKE_SEGMENTS,
    SEGMENT_LABELS,
    TIER_LABELS,
    TIERS,
    Language,
)
from refundguard.features.catalog import Feature
from refundguard.model.policy import TIER_TEXT
from refundguard.paths import CONSISTENCY_DIR, CONSISTENCY_FILE_NAME, PROJECT_ROOT

# Where the consistency check lives, as the report names it (relative to the project).
_CONSISTENCY_SHOWN = (CONSISTENCY_DIR / CONSISTENCY_FILE_NAME).relative_to(PROJECT_ROOT).as_posix()

# What ``render`` takes for its language: a code, or "auto" (the same as None).
ReportLanguage = Literal["zh", "en", "auto"]

# Zones whose data is taken to be Chinese when the language is "auto".
CHINESE_TIMEZONES: frozenset[str] = frozenset({
    "Asia/Shanghai", "Asia/Chongqing", "Asia/Chungking", "Asia/Harbin", "Asia/Urumqi",
    "Asia/Kashgar", "Asia/Hong_Kong", "Asia/Macau", "Asia/Macao", "Asia/Taipei",
    "PRC", "ROC", "Hongkong",
})

OPTION_LABELS = {
    "no_model": f"No model (everyone {DEFAULT_TIER})",
    "baseline": "Rule baseline",
    "logistic": "Logistic regression",
    "plain": "Plain LightGBM (defaults, basic features)",
    "model": "Model (LightGBM)",
}


OPTION_LABELS_ZH = {
    "no_model": f"无模型（所有人{TIER_LABELS['zh'][DEFAULT_TIER]}）",
    "baseline": "规则基线",
    "logistic": "逻辑回归",
    "plain": "普通 LightGBM（默认参数，基础特征）",
    "model": "模型（LightGBM）",
}


SCORER_LABELS = {
    "model": "Model",
    "plain": "Plain LightGBM",
    "logistic": "Logistic regression",
    "baseline": "Rule",
}


SCORER_LABELS_ZH = {
    "model": "模型",
    "plain": "普通 LightGBM",
    "logistic": "逻辑回归",
    "baseline": "规则",
}


SCORERS_ORDER = ("model", "plain", "logistic", "baseline")


COLORS = {"model": "#1f5fbf", "plain": "#2e8b57", "logistic": "#d98c1a", "baseline": "#7a7a7a"}


# The split's roles in the order they come in time, with their names.
_ROLE_LABELS = (("train", "训练", "train"), ("valid", "验证", "validation"),
                ("calibration", "校准", "calibration"), ("test", "测试", "test"))


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


def report_language(lang: ReportLanguage | None, timezone: str | None) -> Language:
    """The language the page opens in.

    Args:
        lang: "zh" or "en" to choose; "auto" or None to decide from the data.
        timezone: The data's zone (``base.timezone``): a zone of mainland China, Hong
            Kong, Macau or Taiwan (``CHINESE_TIMEZONES``) means Chinese data.

    Returns:
        "zh" or "en".

    Raises:
        ValueError: Another language code.
    """
    if lang in ("zh", "en"):
        return lang
    if lang not in (None, "auto"):
        raise ValueError(f"report language must be zh, en or auto, got {lang!r}")
    return "zh" if timezone in CHINESE_TIMEZONES else "en"


# --- both languages -----------------------------------------------------------------------


def _bi(zh: str, en: str, tag: str = "span", attrs: str = "") -> str:
    """One piece of markup in both languages (callers escape their text).

    The two elements never nest another element that carries a language.
    """
    return f'<{tag} lang="zh"{attrs}>{zh}</{tag}><{tag} lang="en"{attrs}>{en}</{tag}>'


def _when(value: Any, timezone: str) -> str:
    """A stored time (ISO text; naive means UTC) in the data's zone, escaped.

    A time at local midnight shows as its date alone.
    """
    try:
        ts = pd.Timestamp(value)
        if pd.isna(ts):
            raise ValueError(value)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
        local = ts.tz_convert(timezone)
    except (ValueError, TypeError, OverflowError):
        return html.escape(str(value))
    if local == local.normalize():
        return local.strftime("%Y-%m-%d")
    return local.strftime("%Y-%m-%d %H:%M")


def _span(values: Sequence[Any], timezone: str) -> str:
    """Times as a range "first – last" (or the one time), in the zone."""
    if not values:
        return "–"
    first, last = _when(values[0], timezone), _when(values[-1], timezone)
    return first if len(values) == 1 else f"{first} – {last}"


# --- plots ----------------------------------------------------------------------------------

# Fonts with Chinese glyphs, most wanted first; any other font that has them comes after.
_CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
    "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Microsoft YaHei", "PingFang SC",
    "Hiragino Sans GB", "SimHei", "Heiti SC", "Sarasa Gothic SC", "AR PL UMing CN",
    "Droid Sans Fallback",
)
_CJK_PROBE = "召回率标准审核限制"


@functools.cache
def _cjk_font() -> str | None:
    """The name of a font matplotlib has that draws Chinese, or None.

    Looked up once per process: the known families first, then any font whose character
    map covers a probe of the report's Chinese. "Last Resort" fonts map every character
    to a placeholder box (the tofu this avoids) and never count.
    """
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    entries = sorted(font_manager.fontManager.ttflist, key=lambda f: (f.name, f.fname))
    rank = {name: i for i, name in enumerate(_CJK_FAMILIES)}
    entries.sort(key=lambda f: rank.get(f.name, len(rank)))
    for entry in entries:
        if "last resort" in entry.name.lower():
            continue
        try:
            charmap = FT2Font(entry.fname).get_charmap()
        except (OSError, RuntimeError, ValueError):
            continue
        if all(ord(c) in charmap for c in _CJK_PROBE):
            return str(entry.name)
    return None


@contextmanager
def _style() -> Iterator[Callable[[str, str], str]]:
    """Readable sizes and, with a Chinese font, a fallback to it; yields the labeller.

    The labeller joins a Chinese and an English label ("召回率 recall") when the
    Chinese can be drawn, and gives the English alone when it cannot.
    """
    import matplotlib

    font = _cjk_font()
    rc: Any = {  # matplotlib types its keys as literals
        "svg.hashsalt": "refundguard", "svg.fonttype": "none",
        "font.family": "sans-serif", "font.size": 9, "axes.titlesize": 10,
        "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
        "legend.fontsize": 8,
    }
    if font is not None:
        rc["font.sans-serif"] = ["DejaVu Sans", font]
    else:
        rc["font.sans-serif"] = ["DejaVu Sans"]

    def label(zh: str, en: str) -> str:
        if font is None:
            return en
        return f"{zh}\n{en}" if len(zh) + len(en) > 34 else f"{zh} {en}"

    with matplotlib.rc_context(rc):
        yield label


def _svg(fig: Any) -> str:
    buf = io.StringIO()
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
    with _style() as t:
        fig, ax = _figure()
        x, y = ("fpr", "tpr") if which == 0 else ("recall", "precision")
        for name, pair in curves.items():
            frame = pair[which]
            ax.plot(frame[x], frame[y], color=COLORS.get(name),
                    label=t(SCORER_LABELS_ZH.get(name, name), SCORER_LABELS.get(name, name)))
        if which == 0:
            ax.plot([0, 1], [0, 1], color="#cccccc", lw=0.8, ls="--")
            ax.set(xlabel=t("假阳性率", "false-positive rate"),
                   ylabel=t("真阳性率", "true-positive rate"),
                   title=t("ROC（测试）", "ROC (test)"))
        else:
            ax.set(xlabel=t("召回率", "recall"), ylabel=t("精度", "precision"),
                   title=t("精度-召回（测试）", "Precision-recall (test)"), ylim=(0, 1.02))
        ax.legend(loc="lower right" if which == 0 else "upper right")
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
    with _style() as t:
        fig, ax = _figure()
        ax.plot([0, 1], [0, 1], color="#cccccc", lw=0.8, ls="--", label=t("完美", "perfect"))
        ax.plot(rel["mean_predicted"], rel["observed_rate"], marker="o", color=COLORS["model"],
                label=t("模型", "model"))
        for _, r in rel.iterrows():
            ax.annotate(f"{int(r['rows'])}", (r["mean_predicted"], r["observed_rate"]),
                        fontsize=7, xytext=(3, -9), textcoords="offset points")
        ax.set(xlabel=t("平均预测概率", "mean predicted probability"),
               ylabel=t("观察到的比率（标签）", "observed rate (labels)"),
               title=t("校准（测试；每箱行数）", "Calibration (test; n per bin)"),
               xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="upper left")
        return _svg(fig)


# Size of the tier labels on the distribution plot, in points.
_TIER_LABEL_SIZE = 8.0


def _label_inches(text: str, size: float) -> float:
    """A generous estimate of a one-line label's width (a Chinese glyph is one em)."""
    ems = sum(1.0 if ord(c) > 0x2E80 else 0.62 for c in text)
    return ems * size / 72


def _distribution_figure(
    scores: pd.DataFrame, bounds: tuple[float, float, float], t: Callable[[str, str], str]
) -> Any:
    """The distribution plot's figure; call inside ``_style`` (see distribution_plot).

    The tier labels sit inside the axes, in headroom above the top box, so the title
    (above the axes) never runs into them; labels that would touch are stacked.
    """
    segments = sorted(scores["segment"].unique())
    n = len(segments)
    width = 6.5
    fig, ax = _figure(width, 0.45 * n + 1.9)
    floor = 1e-4
    data = [np.clip(scores.loc[scores["segment"] == s, "probability"].to_numpy(), floor, 1)
            for s in segments]
    ax.boxplot(data, orientation="horizontal", tick_labels=segments, whis=(1, 99),
               showfliers=False)
    ax.set_xscale("log")
    shown = [(b, t(TIER_LABELS["zh"][name], TIER_LABELS["en"][name]))
             for b, name in zip(bounds, TIERS[1:], strict=True) if b <= 1]
    for b, _ in shown:
        ax.axvline(b, color="#b22222", lw=0.8, ls=":")
    lo, hi = (math.log10(v) for v in ax.get_xlim())
    axis_inches = width * (fig.subplotpars.right - fig.subplotpars.left)
    levels: list[int] = []
    placed: list[tuple[float, float, int]] = []  # centre and half width (inches), level
    for b, label in shown:
        centre = (math.log10(b) - lo) / (hi - lo) * axis_inches
        half = _label_inches(label, _TIER_LABEL_SIZE) / 2 + 0.05
        level = 0
        while any(lv == level and abs(c - centre) < h + half for c, h, lv in placed):
            level += 1
        placed.append((centre, half, level))
        levels.append(level)
    rows = (max(levels) + 1) if levels else 0
    step = 0.42
    ax.set_ylim(0.5, n + 0.5 + (0.25 + step * rows if rows else 0.0))
    for (b, label), level in zip(shown, levels, strict=True):
        ax.text(b, n + 0.6 + step * level, label, fontsize=_TIER_LABEL_SIZE,
                color="#b22222", ha="center", va="bottom", gid="tier-label",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
    ax.set_xlabel(t("校准概率（对数刻度；须为 1–99%）",
                    "calibrated probability (log scale; whiskers 1-99%)"))
    ax.set_title(t("各群体的分数分布（测试）", "Score distribution per segment (test)"),
                 pad=8)
    return fig


def distribution_plot(scores: pd.DataFrame, bounds: tuple[float, float, float]) -> str:
    """Score distribution per segment (box plots on a log axis) with the tier bounds.

    Args:
        scores: ``segment`` and ``probability`` per row.
        bounds: Tier bounds, drawn as vertical lines with the tier's name.

    Returns:
        SVG text.
    """
    with _style() as t:
        return _svg(_distribution_figure(scores, bounds, t))


def importance_plot(importance: pd.DataFrame, top: int = 20) -> str:
    """Total gain of the most important features.

    Args:
        importance: ``feature`` and ``gain``, most important first.
        top: Features shown.

    Returns:
        SVG text.
    """
    with _style() as t:
        head = importance.head(top).iloc[::-1]
        fig, ax = _figure(6.0, 0.26 * len(head) + 1.2)
        ax.barh(head["feature"], head["gain"], color=COLORS["model"])
        ax.set(xlabel=t("总增益", "total gain"),
               title=t(f"特征重要性（前 {len(head)} 个）",
                       f"Feature importance (top {len(head)})"))
        return _svg(fig)


def _figure_html(svg: str, zh: str, en: str) -> str:
    """A figure with its caption in both languages (the plot's Chinese, always)."""
    return f"<figure>{svg}<figcaption>{_bi(zh, en)}</figcaption></figure>"


# --- tables and sentences -------------------------------------------------------------------


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


def _scorer_heads() -> list[str]:
    return [_bi(SCORER_LABELS_ZH[s], SCORER_LABELS[s]) for s in SCORERS_ORDER]


def _split_section(info: Mapping[str, Any], timezone: str) -> str:
    """The time split: cutoffs per role, in the data's zone."""
    split = info.get("split", {}) or {}
    rows = []
    for role, zh, en in _ROLE_LABELS:
        cutoffs = list(split.get(role, []) or [])
        if cutoffs:
            rows.append([_bi(zh, en), str(len(cutoffs)), _span(cutoffs, timezone)])
    if not rows:
        return ""
    zone = html.escape(timezone)
    return (
        _bi("时间划分", "Time split", "h3")
        + _table([_bi("用途", "role"), _bi("截至时间数", "cutoffs"),
                  _bi(f"截至时间（{zone}）", f"cutoffs ({zone})")], rows)
    )


def _model_paragraph(info: Mapping[str, Any], timezone: str) -> str:
    """Which model ships, which one these figures judge, and the label horizon."""
    horizon = info.get("horizon", {})
    from_data = horizon.get("source") == "data"
    n_delays, quantile = horizon.get("n_delays", 0), _fmt(horizon.get("quantile_days"))
    held = info.get("holdout", {})
    rounds = held.get("rounds", info.get("best_iteration"))
    rows = held.get("rows", 0)
    days = html.escape(str(info.get("horizon_days")))
    en = (
        f"Label horizon H = {days} days, "
        + (f"derived from the data ({n_delays} label delays, quantile {quantile} days)"
           if from_data else "set in params.yaml")
        + f". The figures above judge the held-out booster ({rounds} rounds on "
        f"{rows:,} rows of the train cutoffs). "
    )
    zh = (
        f"标签期限 H = {days} 天，"
        + (f"由数据推得（{n_delays} 个标签延迟，分位数 {quantile} 天）" if from_data
           else "在 params.yaml 中设定")
        + f"。以上数字评判的是留出的 booster（在训练截至时间的 {rows:,} 行上训练 {rounds} 轮）。"
    )
    shipped = info.get("shipped") or {}
    if info.get("ships") == "refit" and shipped:
        oot = shipped.get("oot_metrics", {})
        cutoffs = list(shipped.get("cutoffs", []))
        window = _span(cutoffs, timezone)
        method = html.escape(str(shipped.get("calibration_method")))
        blocks = len(shipped.get("crossfit_blocks", []))
        ap, auc = _fmt(oot.get("average_precision")), _fmt(oot.get("roc_auc"))
        en += (
            f"The shipped booster is refit on all {len(cutoffs)} cutoffs ({window}; "
            f"{shipped.get('rows', 0):,} rows, {shipped.get('rounds')} rounds) and "
            f"calibrated ({method}) on out-of-time predictions of {blocks} blocks of cutoffs "
            f"({shipped.get('oot_rows', 0):,} rows; out-of-time AP {ap}, AUC {auc})."
        )
        zh += (
            f"发布的 booster 在全部 {len(cutoffs)} 个截至时间（{window}）上重新训练"
            f"（{shipped.get('rows', 0):,} 行，{shipped.get('rounds')} 轮），并用 {blocks} "
            f"组截至时间的样本外预测（{shipped.get('oot_rows', 0):,} 行；样本外 AP {ap}，"
            f"AUC {auc}）校准（{method}）。"
        )
    else:
        en += "The held-out booster is also the one that ships (train.refit: false)."
        zh += "留出的 booster 也就是发布的那个（train.refit: false）。"
    return _bi(zh, en, "p")


def _consistency_section(c: Mapping[str, Any], timezone: str) -> str:
    """The time-consistency check: every feature's figures, those left out first."""
    checks = sorted(
        c.get("checks", []),
        key=lambda r: (bool(r.get("passed")), -float(r.get("adversarial_auc") or 0.0)),
    )
    dropped = html.escape(", ".join(str(d) for d in c.get("dropped", [])))
    early = len(c.get("early_cutoffs", []))
    late = ", ".join(_when(x, timezone) for x in c.get("late_cutoffs", []))
    auc = _fmt(c.get("adversarial_auc"))
    enabled = c.get("enabled", True)
    en = (
        f"Early side: {early} training cutoffs; late side: {late}. An early-vs-late "
        f"classifier on all features reaches AUC {auc}. "
        + (f"Left out of the model: {dropped}." if dropped
           else "Every feature kept." if enabled
           else "The check is report-only (consistency.enabled: false).")
        + f" The 25 features that drift most are listed (all in {_CONSISTENCY_SHOWN})."
    )
    zh = (
        f"早期：{early} 个训练截至时间；晚期：{late}。用全部特征区分早晚的分类器 AUC 为 {auc}。"
        + (f"未纳入模型：{dropped}。" if dropped
           else "保留了全部特征。" if enabled
           else "该检查只报告（consistency.enabled: false）。")
        + f"下表列出漂移最大的 25 个特征（全部见 {_CONSISTENCY_SHOWN}）。"
    )
    rows = [
        [html.escape(str(r["name"])), _fmt(r.get("psi")), _fmt(r.get("adversarial_auc")),
         _pct(r.get("adversarial_importance")), _fmt(r.get("auc_early")),
         _fmt(r.get("auc_late")),
         _bi("保留", "kept") if r.get("passed") else _bi("<b>未纳入</b>", "<b>left out</b>"),
         html.escape(str(r.get("reason", "")))]
        for r in checks[:25]
    ]
    return (
        _bi("特征的时间一致性", "Time consistency of the features", "h3")
        + _bi(zh, en, "p")
        + _table([_bi("特征", "feature"), "PSI", _bi("早晚区分 AUC", "early vs late AUC"),
                  _bi("增益占比", "share of gain"), _bi("早期 AUC", "AUC early"),
                  _bi("晚期 AUC", "AUC late"), _bi("结论", "verdict"), _bi("原因", "why")],
                 rows)
    )


def _beats(m: Mapping[str, float], prefix: str) -> tuple[bool | None, list[tuple[str, str]]]:
    """Whether the model beats the plain LightGBM on both AP and AUC, and the figures."""
    figures = []
    wins = []
    for key, name in (("average_precision", "AP"), ("roc_auc", "AUC")):
        ours, plain = m.get(f"{prefix}model.{key}"), m.get(f"{prefix}plain.{key}")
        if ours is None or plain is None or not (math.isfinite(ours) and math.isfinite(plain)):
            return None, []
        figures.append((name, f"{ours:.3f}", f"{plain:.3f}"))
        wins.append(ours > plain)
    joiner = {"en": ("vs", ", "), "zh": ("对", "，")}
    return all(wins), [
        (lang, sep.join(f"{n} {a} {word} {b}" for n, a, b in figures))
        for lang, (word, sep) in joiner.items()
    ]


def plain_verdict(m: Mapping[str, float], lang: Language = "en") -> str:
    """One sentence: does refundguard beat the plain LightGBM, on labels and on the truth?

    "Beats" means a higher average precision and a higher ROC-AUC on the test window.

    Args:
        m: Flat metrics with "model.*" and "plain.*" (and "truth.*" with a truth file).
        lang: "en" or "zh".

    Returns:
        The sentence, plain text.
    """
    zh = lang == "zh"
    parts: list[tuple[bool, str, str]] = []  # won, where, figures
    for prefix, where_en, where_zh in (("", "labels", "标签"), ("truth.", "the truth", "真相")):
        won, figures = _beats(m, prefix)
        if won is None:
            if not prefix:
                return ("refundguard 无法与普通 LightGBM 比较（没有数字）。" if zh else
                        "refundguard could not be compared with the plain LightGBM "
                        "(no figures).")
            continue
        parts.append((won, where_zh if zh else where_en, dict(figures)[lang]))
    failed = not all(won for won, _, _ in parts)
    if zh:
        verb = {True: "优于", False: "未能优于"}
        (w1, p1, f1) = parts[0]
        if len(parts) == 1:
            text = f"refundguard 在{p1}上{verb[w1]}普通 LightGBM（{f1}）"
        elif parts[1][0] == w1:
            text = (f"refundguard 在{p1}上（{f1}）和{parts[1][1]}上（{parts[1][2]}）都"
                    f"{verb[w1]}普通 LightGBM")
        else:
            text = (f"refundguard 在{p1}上{verb[w1]}普通 LightGBM（{f1}），但在"
                    f"{parts[1][1]}上{verb[parts[1][0]]}它（{parts[1][2]}）")
        return text + ("：这是需要排查的缺陷。" if failed else "。")
    verbs = {True: "beats", False: "does NOT beat"}
    (w1, p1, f1) = parts[0]
    if len(parts) == 1:
        text = f"refundguard {verbs[w1]} the plain LightGBM on {p1} ({f1})"
    elif parts[1][0] == w1:
        text = (f"refundguard {verbs[w1]} the plain LightGBM on {p1} ({f1}) and on "
                f"{parts[1][1]} ({parts[1][2]})")
    else:
        text = (f"refundguard {verbs[w1]} the plain LightGBM on {p1} ({f1}) but "
                f"{verbs[parts[1][0]]} it on {parts[1][1]} ({parts[1][2]})")
    return text + (": this is a bug to investigate." if failed else ".")


def _segment_zh(segment: str) -> str:
    """A segment's Chinese name with its code, escaped."""
    code = html.escape(segment)
    name = SEGMENT_LABELS["zh"].get(segment)
    return f"{html.escape(name)} {code}" if name else code


def _lookalike_verdict(m: Mapping[str, float]) -> str:
    rates = {s: m.get(f"segment.{s}.model_flag_rate") for s in LOOKALIKE_SEGMENTS}
    known = {s: r for s, r in rates.items() if r is not None and math.isfinite(r)}
    if not known:
        return _bi("没有真相文件：无法在此数据上测量诚实相似买家的误报率。",
                   "No truth file: the false-positive rate of honest look-alikes cannot be "
                   "measured on this data.", "p")
    worst = max(known, key=lambda s: known[s])
    ok = known[worst] <= 0.02
    word = "are not" if ok else "ARE"
    cls = "ok" if ok else "bad"
    return _bi(
        f"诚实的相似买家{'没有' if ok else '正在'}被误判：审核阈值下最高的误报率为 "
        f"{_pct(known[worst])}（{_segment_zh(worst)}；目标不超过 2%）。",
        f"Honest look-alikes {word} being caught: the highest false-positive rate at the "
        f"review threshold is {_pct(known[worst])} ({html.escape(worst)}; target at most 2%).",
        "p", f' class="verdict {cls}"',
    )


_STYLE = """
body { font-family: system-ui, "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei",
  "Noto Sans CJK SC", "Source Han Sans SC", sans-serif; margin: 2em auto; max-width: 70em;
  color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0 0 1em; } figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #444; max-width: 40em; }
.verdict, .headline { font-weight: bold; padding: 0.5em; } .ok { background: #e6f4e6; }
.bad { background: #fbe3e3; }
.toggle { position: absolute; opacity: 0; width: 1px; height: 1px; }
.langs { float: right; font-size: 0.9em; }
.langs label { cursor: pointer; padding: 0.2em 0.6em; border: 1px solid #999;
  border-radius: 0.3em; }
#show-zh:checked ~ .langs label[for="show-zh"],
#show-en:checked ~ .langs label[for="show-en"] { background: #1f5fbf; color: #fff; }
#show-zh:focus-visible ~ .langs label[for="show-zh"],
#show-en:focus-visible ~ .langs label[for="show-en"] { outline: 2px solid #1f5fbf; }
#show-zh:checked ~ main [lang="en"], #show-en:checked ~ main [lang="zh"] { display: none; }
@media print { .langs { display: none; } body { margin: 0; max-width: none; } }
"""


def render(
    data: ReportData,
    *,
    lang: ReportLanguage | None = None,
    timezone: str | None = None,
) -> str:
    """The report as one HTML page, in both languages, opening in one.

    Args:
        data: What to show.
        lang: The language the page opens in: "zh", "en", or "auto"/None to decide from
            the data (see :func:`report_language`); the other is one click away.
        timezone: The data's zone (``base.timezone``) to show times in; None for UTC.

    Returns:
        HTML text (UTF-8, no external resources).
    """
    zone = timezone or "UTC"
    shown = report_language(lang, timezone)
    m = data.metrics
    parts: list[str] = []
    won = [_beats(m, p)[0] for p in ("", "truth.")]
    cls = "bad" if False in won else "ok" if won[0] else ""
    parts.append(_bi(html.escape(plain_verdict(m, "zh")), html.escape(plain_verdict(m)),
                     "p", f' class="headline {cls}"'))
    k = int(m.get("capacity_k", 0))
    headline = [
        ("ROC-AUC", "ROC-AUC", "roc_auc", _fmt),
        ("平均精度（AP）", "Average precision", "average_precision", _fmt),
        ("1% 误报率下的召回率", "Recall at 1% FPR", "recall_at_fpr", _fmt),
        (f"前 k 名的精度（k = 审核容量 = {k}）",
         f"Precision in top k (k = review capacity = {k})", "precision_at_capacity", _fmt),
        ("送人工审核或限制的比例", "Sent to review or restrict", "flag_rate", _pct),
    ]
    rows = []
    for zh, en, key, f in headline:
        rows.append([_bi(html.escape(zh), html.escape(en))]
                    + [f(m.get(f"{s}.{key}")) for s in SCORERS_ORDER])
    parts.append(_bi("测试期指标（标签）", "Test-period metrics (labels)", "h2"))
    parts.append(_table([_bi("指标", "metric"), *_scorer_heads()], rows))
    if any(key.startswith("truth.") for key in m):
        rows = []
        for zh, en, key, f in headline[:4]:
            cells = [
                f"{f(m.get(f'truth.{s}.{key}'))} "
                + _bi(f"<small>（标签 {f(m.get(f'{s}.{key}'))}）</small>",
                      f"<small>(labels {f(m.get(f'{s}.{key}'))})</small>")
                for s in SCORERS_ORDER
            ]
            rows.append([_bi(html.escape(zh), html.escape(en)), *cells])
        parts.append(_bi("对照真相（每个滥用者，无论是否被抓到）与标签",
                         "Against the truth (every abuser, caught or not) vs. the labels", "h3"))
        parts.append(_table([_bi("指标", "metric"), *_scorer_heads()], rows))

    parts.append(_bi("诚实的相似买家与滥用者（审核阈值下）",
                     "Honest look-alikes and abusers, at the review threshold", "h2"))
    parts.append(_lookalike_verdict(m))
    segs = sorted({key.split(".")[1] for key in m if key.startswith("segment.")})
    if segs:
        rows = []
        for s in segs:
            kind = (_bi("诚实的相似买家", "honest look-alike") if s in LOOKALIKE_SEGMENTS else
                    _bi("滥用者", "abuser") if s in ABUSER_SEGMENTS else
                    _bi("诚实", "honest") if s == HONEST_SEGMENT else "")
            what = (_bi("召回率", "recall") if s in ABUSER_SEGMENTS
                    else _bi("误报率", "false-positive rate"))
            rows.append([_bi(_segment_zh(s), html.escape(s)), kind, what,
                         _fmt(m.get(f"segment.{s}.rows"), 0)]
                        + [_pct(m.get(f"segment.{s}.{x}_flag_rate")) for x in SCORERS_ORDER])
        parts.append(_table([_bi("群体", "segment"), _bi("类型", "kind"),
                             _bi("指标", "figure"), _bi("行数", "rows"), *_scorer_heads()],
                            rows))

    parts.append(_bi("处理级别与预期成本", "Policy tiers and expected cost", "h2"))
    pairs = list(zip(TIERS[1:], data.bounds, strict=True))
    parts.append(_bi(
        "级别下限（校准概率）："
        + "，".join(f"{TIER_LABELS['zh'][t]}自 {_fmt(b, 4)} 起" for t, b in pairs)
        + "。依据 params.yaml 中的成本与限制在校准窗口上选定。",
        "Tier bounds (calibrated probability): "
        + ", ".join(f"{TIER_LABELS['en'][t]} from {_fmt(b, 4)}" for t, b in pairs)
        + ". Chosen on the calibration window from the costs and limits in params.yaml.",
        "p"))
    rows = []
    for opt in ("no_model", "baseline", "logistic", "plain", "model"):
        rows.append(
            [_bi(html.escape(OPTION_LABELS_ZH[opt]), html.escape(OPTION_LABELS[opt]))]
            + [_fmt(m.get(f"cost.{opt}.count.{t}"), 0) for t in TIERS]
            + [_fmt(m.get(f"cost.{opt}.cost_per_buyer"), 2),
               _fmt(m.get(f"cost.{opt}.truth_cost_per_buyer"), 2),
               _pct(m.get(f"cost.{opt}.honest_above_standard")),
               _fmt(m.get(f"cost.{opt}.flagged_per_day"), 1)]
        )
    parts.append(_table(
        [_bi("方案", "option"),
         *[_bi(f"{TIER_LABELS['zh'][t]}<br><small>{html.escape(TIER_TEXT[t][1])}</small>",
               f"{TIER_LABELS['en'][t]}<br><small>{html.escape(TIER_TEXT[t][0])}</small>")
           for t in TIERS],
         _bi("每位买家成本<br><small>（标签，元）</small>",
             "cost / buyer<br><small>(labels, CNY)</small>"),
         _bi("每位买家成本<br><small>（真相，元）</small>",
             "cost / buyer<br><small>(truth, CNY)</small>"),
         _bi(f"高于{TIER_LABELS['zh']['standard']}级的诚实买家",
             "honest above standard"),
         _bi("每日案件数", "cases / day")], rows))

    parts.append(_bi("曲线", "Curves", "h2"))
    parts.append("<div class='grid'>")
    parts.append(_figure_html(
        roc_plot(data.curves),
        "ROC 曲线（测试窗口）。横轴：假阳性率；纵轴：真阳性率；虚线为随机排序。",
        "ROC curves (test window). x: false-positive rate; y: true-positive rate; the "
        "dashed line is a random ranking."))
    parts.append(_figure_html(
        pr_plot(data.curves),
        "精度-召回曲线（测试窗口）。横轴：召回率；纵轴：精度。",
        "Precision-recall curves (test window). x: recall; y: precision."))
    parts.append(_figure_html(
        calibration_plot(data.reliability),
        "校准图（测试窗口；点旁的数字是每箱的行数）。横轴：平均预测概率；"
        "纵轴：观察到的比率（标签）；虚线为完美校准。",
        "Calibration (test window; the number by each point is the rows in its bin). "
        "x: mean predicted probability; y: observed rate (labels); the dashed line is "
        "perfect calibration."))
    parts.append("</div>")
    brier = sorted(data.info.get("calibration_brier", {}).items())
    method = html.escape(str(data.info.get("calibration_method", "")))
    ece, bs = _fmt(m.get("calibration.ece"), 4), _fmt(m.get("calibration.brier"), 4)
    parts.append(_bi(
        f"测试窗口上的校准：ECE {ece}，Brier {bs}（目标 ECE 不超过 0.02）。方法：{method}；"
        "校准窗口内交叉验证的 Brier："
        + "，".join(f"{html.escape(str(key))} {_fmt(v, 5)}" for key, v in brier) + "。",
        f"Calibration on the test window: ECE {ece}, Brier {bs} (target ECE at most 0.02). "
        f"Method: {method}; cross-validated Brier in the calibration window: "
        + ", ".join(f"{html.escape(str(key))} {_fmt(v, 5)}" for key, v in brier) + ".",
        "p"))
    parts.append(_bi("各群体的分数分布", "Score distribution per segment", "h2"))
    bounds_zh = "、".join(TIER_LABELS["zh"][t] for t, b in pairs if b <= 1) or "无"
    bounds_en = ", ".join(TIER_LABELS["en"][t] for t, b in pairs if b <= 1) or "none"
    parts.append(_figure_html(
        distribution_plot(data.scores, data.bounds),
        "各群体在测试窗口上的校准概率（对数刻度；箱为四分位，须为 1–99%）。"
        f"红色点线为级别下限：{bounds_zh}。",
        "Calibrated probability per segment on the test window (log scale; boxes are "
        f"quartiles, whiskers 1-99%). The red dotted lines are the tier bounds: {bounds_en}."))
    parts.append(_bi("特征重要性", "Feature importance", "h2"))
    top_n = len(data.importance.head(20))
    parts.append(_figure_html(
        importance_plot(data.importance),
        f"特征重要性（前 {top_n} 个）。横轴：总增益。",
        f"Feature importance (top {top_n}). x: total gain."))
    top = data.importance.head(10)
    parts.append(_table(
        [_bi("特征", "feature"), _bi("增益", "gain"), _bi("描述", "description")],
        [[html.escape(r.feature), _fmt(float(r.gain), 0),
          _bi(html.escape(data.catalog[r.feature].zh), html.escape(data.catalog[r.feature].en))
          if r.feature in data.catalog else ""]
         for r in top.itertuples()]))

    parts.append(_bi("训练", "Training", "h2"))
    parts.append(_split_section(data.info, zone))
    tuning = data.info.get("tuning", {})
    rw = data.info.get("reweight", {})
    ap_mean, ap_std = _fmt(tuning.get("rolling_ap_mean")), _fmt(tuning.get("rolling_ap_std"))
    folds, trials = len(tuning.get("folds", [])), len(tuning.get("trials", []))
    none_ap, bal_ap = _fmt(rw.get("none_ap_mean")), _fmt(rw.get("balanced_ap_mean"))
    mono = html.escape(", ".join(data.info.get("monotone_increasing", [])))
    parts.append(_bi(
        f"所选设置的滚动（前序）验证：平均精度 {ap_mean} ± {ap_std}，{folds} 折；"
        f"{trials} 次试验。类别重加权：不加权 {none_ap} 对 平衡 {bal_ap} → "
        f"{'平衡' if rw.get('reweighted') else '不重加权'}。单调（只会提高风险）："
        f"{mono or '无'}。",
        "Rolling (prequential) validation of the chosen settings: average precision "
        f"{ap_mean} ± {ap_std} over {folds} folds; {trials} trials. "
        f"Class reweighting: none {none_ap} vs balanced {bal_ap} → "
        f"{'balanced' if rw.get('reweighted') else 'no reweighting'}. "
        f"Monotone (never lower the risk): {mono or 'none'}.",
        "p"))
    parts.append(_model_paragraph(data.info, zone))
    if data.consistency:
        parts.append(_consistency_section(data.consistency, zone))
    abl = sorted(key for key in m
                 if key.startswith("ablation.without_") and key.endswith(".ap_drop"))
    if abl:
        parts.append(_bi("消融：去掉每组特征后平均精度的下降",
                         "Ablation: drop in average precision without each group", "h3"))
        parts.append(_table(
            [_bi("特征组", "group"), _bi("去掉后的 AP", "AP without"), _bi("下降", "drop")], [
                [html.escape(key.split(".")[1].removeprefix("without_")),
                 _fmt(m.get(key.replace("ap_drop", "average_precision"))), _fmt(m.get(key))]
                for key in abl]))
    if data.gate:
        g = data.gate
        metric, decision = html.escape(str(g.get("metric"))), html.escape(str(g.get("decision")))
        cand, champ = _fmt(g.get("candidate")), _fmt(g.get("champion"))
        version = html.escape(str(g.get("champion_version") or ""))
        note = html.escape(str(g.get("note") or ""))
        parts.append(_bi("模型注册准入", "Registry gate", "h2"))
        parts.append(_bi(
            f"指标 {metric}：本模型 {cand}，冠军模型 {champ}"
            + (f"（版本 {version}）" if version else "") + f" → <b>{decision}</b>"
            + (f"。{note}" if note else "") + "。",
            f"Metric {metric}: this model {cand}, champion {champ}"
            + (f" (version {version})" if version else "") + f" → <b>{decision}</b>"
            + (f". {note}" if note else ""),
            "p"))
    body = "\n".join(parts)
    test = data.info.get("split", {}).get("test", []) or []
    when_zh = "，".join(_when(x, zone) for x in test)
    when_en = ", ".join(_when(x, zone) for x in test)
    z = html.escape(zone)
    n_rows, positives = _fmt(m.get("model.n"), 0), _fmt(m.get("model.positives"), 0)
    data_hash = html.escape(str(data.info.get("data_hash", ""))[:12])
    commit = html.escape(str(data.info.get("git_commit", ""))[:12])
    checked = {code: " checked" if code == shown else "" for code in ("zh", "en")}
    intro = _bi(
        f"测试窗口（截至时间）：{when_zh}；{n_rows} 个买家快照，{positives} 个已标注的滥用者。"
        f"数据哈希 {data_hash}，提交 {commit}。时间均为 {z} 当地时间（只写日期即当日 0 点）。",
        f"Test window (cutoffs): {when_en}; {n_rows} buyer snapshots, {positives} labeled "
        f"abusers. Data hash {data_hash}, commit {commit}. Times are local to {z} (a date "
        "alone means 00:00 that day).",
        "p")
    return f"""<!DOCTYPE html>
<html lang="{shown}"><head><meta charset="utf-8">
<title>refundguard 评估报告 · evaluation report</title>
<style>{_STYLE}</style></head><body>
<input type="radio" name="lang" id="show-zh" class="toggle"{checked["zh"]}>
<input type="radio" name="lang" id="show-en" class="toggle"{checked["en"]}>
<nav class="langs" aria-label="语言 Language"><label for="show-zh" lang="zh">中文</label>
<label for="show-en" lang="en">English</label></nav>
<main>
{_bi("refundguard 评估报告", "refundguard evaluation report", "h1")}
{intro}
{body}
</main>
</body></html>
"""
