from __future__ import annotations

import dataclasses
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pytest

from refundguard.config import FeaturesParams
from refundguard.contract.vocabulary import LOOKALIKE_SEGMENTS, TIER_LABELS, TIERS
from refundguard.features.catalog import build_catalog
from refundguard.model.policy import NEVER, TIER_TEXT
from refundguard.reporting import html as report
from refundguard.reporting.html import (
    OPTION_LABELS,
    OPTION_LABELS_ZH,
    ReportData,
    calibration_plot,
    distribution_plot,
    importance_plot,
    pr_plot,
    render,
    roc_plot,
)

CATALOG = {f.name: f for f in build_catalog(FeaturesParams())}
OPTIONS = ("no_model", "baseline", "logistic", "plain", "model")
SCORERS = ("model", "plain", "logistic", "baseline")

# Per option: counts per tier, cost / buyer (labels), cost / buyer (truth),
# honest above standard, cases per day.
COSTS: dict[str, tuple[tuple[float, float, float, float], float, float | None, float, float]] = {
    "no_model": ((0.0, 1000.0, 0.0, 0.0), 12.5, None, 0.0, 0.0),
    "baseline": ((1.0, 900.0, 80.0, 19.0), 9.25, 10.5, 0.05, 3.54),
    "logistic": ((300.0, 650.0, 40.0, 10.0), 7.75, 8.0, 0.0123, 1.78),
    "plain": ((700.0, 600.0, 35.0, 8.0), 6.5, 7.0, 0.008, 1.5),
    "model": ((1234.0, 500.0, 30.0, 6.0), 5.5, 6.25, 0.004, 1.28),
}


def _metrics(lookalike_rates: dict[str, float] | None = None) -> dict[str, float]:
    m: dict[str, float] = {"capacity_k": 280.0, "calibration.ece": 0.0123,
                           "calibration.brier": 0.0456, "model.n": 2000.0,
                           "model.positives": 40.0}
    for i, s in enumerate(SCORERS):
        m.update({f"{s}.roc_auc": 0.9 - 0.1 * i, f"{s}.average_precision": 0.5 - 0.1 * i,
                  f"{s}.recall_at_fpr": 0.3, f"{s}.precision_at_capacity": 0.25,
                  f"{s}.flag_rate": 0.02})
    for opt, (counts, cost, truth, honest, per_day) in COSTS.items():
        for t, c in zip(TIERS, counts, strict=True):
            m[f"cost.{opt}.count.{t}"] = c
        m[f"cost.{opt}.cost_per_buyer"] = cost
        if truth is not None:
            m[f"cost.{opt}.truth_cost_per_buyer"] = truth
        m[f"cost.{opt}.honest_above_standard"] = honest
        m[f"cost.{opt}.flagged_per_day"] = per_day
    for s, rate in (lookalike_rates or {}).items():
        m[f"segment.{s}.rows"] = 100.0
        for x in SCORERS:
            m[f"segment.{s}.{x}_flag_rate"] = rate
    return m


def _data(metrics: dict[str, float] | None = None, **changes: Any) -> ReportData:
    rng = np.random.default_rng(3)
    grid = np.linspace(0.0, 1.0, 21)
    curves = {
        name: (pd.DataFrame({"fpr": grid, "tpr": grid ** power}),
               pd.DataFrame({"recall": grid, "precision": 1.0 - 0.8 * grid ** (1 / power)}))
        for name, power in (("model", 0.3), ("plain", 0.4), ("logistic", 0.5),
                            ("baseline", 0.8))
    }
    reliability = pd.DataFrame({"mean_predicted": [0.01, 0.05, 0.2, 0.6],
                                "observed_rate": [0.012, 0.045, 0.22, 0.55],
                                "rows": [1500, 300, 150, 50]})
    segments = ["honest", "household", "wardrober"]
    scores = pd.DataFrame({
        "segment": np.repeat(segments, 30),
        "probability": np.concatenate([rng.beta(1, 40, 30), rng.beta(1, 20, 30),
                                       rng.beta(3, 4, 30)]),
    })
    importance = pd.DataFrame({"feature": ["refund_rate_count_90d", "orders_90d",
                                           "not_in_catalog"],
                               "gain": [1234.5, 600.0, 10.0]})
    data = ReportData(
        metrics=metrics if metrics is not None else _metrics({"household": 0.01}),
        curves=curves,
        reliability=reliability,
        scores=scores,
        bounds=(0.02, 0.2, 0.6),
        importance=importance,
        catalog=CATALOG,
        # Cutoffs as training.json stores them: UTC, here local midnight in Shanghai.
        info={"split": {"train": ["2024-10-08T16:00:00+00:00", "2024-11-05T16:00:00+00:00"],
                        "test": ["2024-12-06T16:00:00+00:00"]},
              "data_hash": "abcdef0123456789",
              "git_commit": "0123456789abcdef", "calibration_method": "isotonic",
              "calibration_brier": {"isotonic": 0.04, "platt": 0.05}},
    )
    return dataclasses.replace(data, **changes)


ZONE = "Asia/Shanghai"


@pytest.fixture(scope="module")
def page() -> str:
    return render(_data(), timezone=ZONE)


def _in(page: str, lang: str) -> str:
    """The page as a reader of one language sees it: the other language's elements gone,
    the shown language's spans unwrapped and its ``lang`` attributes dropped."""
    other = "en" if lang == "zh" else "zh"
    head, body = page.split("<main>", 1)
    body = re.sub(rf'<(\w+) lang="{other}"[^>]*>.*?</\1>', "", body, flags=re.DOTALL)
    body = re.sub(rf'<span lang="{lang}">(.*?)</span>', r"\1", body, flags=re.DOTALL)
    return head + "<main>" + body.replace(f' lang="{lang}"', "")


@pytest.fixture(scope="module")
def en(page: str) -> str:
    return _in(page, "en")


@pytest.fixture(scope="module")
def zh(page: str) -> str:
    return _in(page, "zh")


@pytest.fixture
def fast_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-in plots, for tests about the page's text (a real render takes seconds)."""
    for name in ("roc_plot", "pr_plot", "calibration_plot", "distribution_plot",
                 "importance_plot"):
        monkeypatch.setattr(report, name, lambda *a, _n=name, **k: f"<svg>{_n}</svg>")


# --- one self-contained document --------------------------------------------------------


def test_one_html_document(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<!DOCTYPE") == 1
    assert page.count("<html") == 1 and page.count("</html>") == 1
    assert page.rstrip().endswith("</html>")
    assert page.count("<body>") == 1 and page.count("</body>") == 1
    assert "<?xml" not in page  # the SVGs' own headers are stripped
    assert '<meta charset="utf-8">' in page


def test_every_plot_is_inline_svg(page: str) -> None:
    # ROC, precision-recall, calibration, distribution, importance
    assert page.count("<svg") == 5 and page.count("</svg>") == 5
    assert len(re.findall(r"<figure><svg", page)) == 5
    for svg in re.findall(r"<svg.*?</svg>", page, flags=re.DOTALL):
        ElementTree.fromstring(svg)  # each one is well-formed XML


def _references(page: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page, flags=re.IGNORECASE)


def test_no_external_resources(page: str) -> None:
    refs = _references(page)
    assert all(r.startswith("#") for r in refs), [r for r in refs if not r.startswith("#")]
    lowered = page.lower()
    assert "<script" not in lowered and "<link" not in lowered and "<img" not in lowered
    assert "@import" not in lowered
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//", lowered)


def test_hostile_text_is_escaped_and_fetches_nothing(fast_plots: None) -> None:
    evil = '<img src="http://evil.example/x.png">'
    m = _metrics({"household": 0.01})
    m[f"segment.{evil}.rows"] = 5.0
    data = _data(m, info={"git_commit": evil, "data_hash": evil, "calibration_method": evil,
                          "split": {"test": [evil]}},
                 gate={"metric": evil, "candidate": 0.5, "champion": 0.4,
                       "decision": evil, "note": evil})
    page = render(data)
    assert "<img" not in page
    assert "&lt;img" in page
    assert not any(r.lower().startswith(("http", "//")) for r in _references(page))


# --- the tier table ---------------------------------------------------------------------


def _rows(page: str, heading: str) -> list[list[str]]:
    start = page.index(heading)
    table = page[page.index("<table", start): page.index("</table>", start)]
    return [re.findall(r"<td>(.*?)</td>", row)
            for row in re.findall(r"<tr><td>.*?</tr>", table)]


def test_tier_table_has_every_option(en: str, zh: str) -> None:
    rows = _rows(en, "Policy tiers and expected cost")
    assert [r[0] for r in rows] == [OPTION_LABELS[o] for o in OPTIONS]
    zh_rows = _rows(zh, "处理级别与预期成本")
    assert [r[0] for r in zh_rows] == [OPTION_LABELS_ZH[o] for o in OPTIONS]
    assert [r[1:] for r in zh_rows] == [r[1:] for r in rows]
    by_hand = {
        # counts as whole numbers with thousands separators, costs to 2 decimals,
        # the honest share as a percentage, cases per day to 1 decimal; "–" when missing
        "no_model": ["0", "1,000", "0", "0", "12.50", "–", "0.00%", "0.0"],
        "baseline": ["1", "900", "80", "19", "9.25", "10.50", "5.00%", "3.5"],
        "logistic": ["300", "650", "40", "10", "7.75", "8.00", "1.23%", "1.8"],
        "plain": ["700", "600", "35", "8", "6.50", "7.00", "0.80%", "1.5"],
        "model": ["1,234", "500", "30", "6", "5.50", "6.25", "0.40%", "1.3"],
    }
    for opt, row in zip(OPTIONS, rows, strict=True):
        assert row[1:] == by_hand[opt], opt


def test_tier_table_header_shows_each_tier_with_its_text(page: str) -> None:
    """The header cells hold the tier's name, a line break and what the tier does."""
    start = page.index("Policy tiers and expected cost")
    head = page[start: page.index("</thead>", start)]
    for t in TIERS:  # real markup, not text
        assert (f'<span lang="zh">{TIER_LABELS["zh"][t]}<br><small>{TIER_TEXT[t][1]}</small>'
                f'</span><span lang="en">{TIER_LABELS["en"][t]}<br><small>'
                f"{TIER_TEXT[t][0]}</small></span>") in head
    assert "&lt;" not in head


def test_tier_bounds_sentence(en: str, zh: str) -> None:
    assert "Standard from 0.0200, Review from 0.2000, Restrict from 0.6000." in en
    assert "标准自 0.0200 起，人工审核自 0.2000 起，限制自 0.6000 起。" in zh


def test_missing_cost_metrics_show_a_dash(fast_plots: None) -> None:
    page = _in(render(_data({})), "en")
    rows = _rows(page, "Policy tiers and expected cost")
    assert [r[0] for r in rows] == [OPTION_LABELS[o] for o in OPTIONS]
    assert all(cell == "–" for r in rows for cell in r[1:])


# --- the look-alike verdict -------------------------------------------------------------


@pytest.mark.parametrize(
    ("rates", "caught", "worst", "pct"),
    [
        ({"household": 0.01}, False, "household", "1.00%"),
        ({s: 0.005 for s in LOOKALIKE_SEGMENTS}, False, None, "0.50%"),
        ({"size_bracketer": 0.02, "household": 0.015}, False, "size_bracketer", "2.00%"),
        ({"size_bracketer": 0.0201, "household": 0.015}, True, "size_bracketer", "2.01%"),
        ({"logistics_victim": 0.25, "picky_reviewer": 0.01}, True, "logistics_victim", "25.00%"),
        ({"picky_reviewer": math.nan, "household": 0.5}, True, "household", "50.00%"),
        ({"picky_reviewer": math.nan, "household": 0.001}, False, "household", "0.10%"),
        # only abusers and honest buyers: the look-alikes' rate is the one that counts
        ({"wardrober": 0.9, "honest": 0.001, "household": 0.002}, False, "household", "0.20%"),
    ],
)
def test_lookalike_verdict(rates: dict[str, float], caught: bool, worst: str | None,
                           pct: str, fast_plots: None) -> None:
    page = render(_data(_metrics(rates)))
    verdicts = re.findall(r'<p class="verdict (ok|bad)">(.*?)</p>', _in(page, "en"))
    assert len(verdicts) == 1
    cls, text = verdicts[0]
    if caught:
        assert cls == "bad"
        assert text.startswith("Honest look-alikes ARE being caught")
    else:
        assert cls == "ok"
        assert text.startswith("Honest look-alikes are not being caught")
    assert f"is {pct} (" in text
    if worst is not None:
        assert f"({worst}; target at most 2%)" in text
    (zh_cls, zh_text), = re.findall(r'<p class="verdict (ok|bad)">(.*?)</p>', _in(page, "zh"))
    assert zh_cls == cls
    assert zh_text.startswith("诚实的相似买家" + ("正在" if caught else "没有") + "被误判")
    assert f"误报率为 {pct}（" in zh_text


@pytest.mark.parametrize("rates", [{}, {"picky_reviewer": math.nan}, {"wardrober": 0.5}])
def test_lookalike_verdict_without_truth(rates: dict[str, float], fast_plots: None) -> None:
    page = render(_data(_metrics(rates)))
    assert "verdict" not in page.split("<body>")[1]
    assert "No truth file" in page and "没有真相文件" in page


# --- determinism ------------------------------------------------------------------------


def test_render_is_byte_identical_twice(page: str) -> None:
    again = render(_data(), timezone=ZONE)
    assert again.encode("utf-8") == page.encode("utf-8")


def test_render_is_byte_identical_in_another_process(page: str, tmp_path: Path) -> None:
    out = tmp_path / "page.html"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import test_report as t; from refundguard.reporting.html import render;"
        "open(sys.argv[2], 'w', encoding='utf-8').write(render(t._data()))"
    )
    code = code.replace("t._data())", f"t._data(), timezone={ZONE!r})")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(out)],
                   check=True, env=env, timeout=300)
    assert out.read_text(encoding="utf-8") == page


def test_different_metrics_give_a_different_page(fast_plots: None) -> None:
    m = _metrics({"household": 0.01})
    before = render(_data(m))
    m["model.roc_auc"] = 0.1234
    after = render(_data(m))
    assert after != before and "0.123" in after and "0.123" not in before


# --- sections that come and go ----------------------------------------------------------


def test_optional_sections(fast_plots: None) -> None:
    plain = _in(render(_data()), "en")
    assert "Registry gate" not in plain and "Ablation" not in plain
    assert "Against the truth" not in plain
    m = _metrics({"household": 0.01})
    m.update({"ablation.without_reviews.ap_drop": 0.031,
              "ablation.without_reviews.average_precision": 0.469,
              "truth.model.roc_auc": 0.95})
    page = render(_data(m, gate={"metric": "average_precision", "candidate": 0.5,
                                 "champion": 0.45, "champion_version": "3",
                                 "decision": "promote"}))
    full = _in(page, "en")
    assert "注册准入" in page and "（版本 3）" in page and "消融" in page
    assert "对照真相" in page
    assert "Registry gate" in full and "<b>promote</b>" in full and "(version 3)" in full
    abl = _rows(full, "Ablation")
    assert abl == [["reviews", "0.469", "0.031"]]
    truth = _rows(full, "Against the truth")
    assert truth[0][0] == "ROC-AUC"
    assert truth[0][1] == "0.950 <small>(labels 0.900)</small>"


def test_importance_table_uses_the_catalog(en: str, zh: str) -> None:
    rows = _rows(en, "<h2>Feature importance")
    f = CATALOG["refund_rate_count_90d"]
    assert rows[0] == ["refund_rate_count_90d", "1,234", f.en]  # 1234.5 rounds to even
    assert rows[2] == ["not_in_catalog", "10", ""]
    assert _rows(zh, "<h2>特征重要性")[0] == ["refund_rate_count_90d", "1,234", f.zh]


# --- the plots on their own -------------------------------------------------------------


def _texts(svg: str) -> str:
    return " ".join(re.findall(r"<text[^>]*>(.*?)</text>", svg, flags=re.DOTALL))


@pytest.mark.parametrize(
    ("bounds", "shown", "hidden"),
    [
        ((0.02, 0.2, 0.6), ["Standard", "Review", "Restrict"], []),
        ((0.05, NEVER, NEVER), ["Standard"], ["Review", "Restrict"]),
        ((NEVER, NEVER, NEVER), [], ["Standard", "Review", "Restrict"]),
    ],
)
def test_distribution_plot_draws_only_bounds_inside_the_axis(
    bounds: tuple[float, float, float], shown: list[str], hidden: list[str],
) -> None:
    scores = _data().scores
    text = _texts(distribution_plot(scores, bounds))
    for name in shown:
        assert name in text
    for name in hidden:
        assert name not in text
    for seg in ("honest", "household", "wardrober"):
        assert seg in text


def test_each_plot_is_one_svg() -> None:
    data = _data()
    svgs = [roc_plot(data.curves), pr_plot(data.curves), calibration_plot(data.reliability),
            distribution_plot(data.scores, data.bounds), importance_plot(data.importance)]
    for svg in svgs:
        assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
        assert svg.count("<svg") == 1
        ElementTree.fromstring(svg)
    assert "Logistic regression" in _texts(svgs[0]) and "Rule" in _texts(svgs[1])
    assert "Plain LightGBM" in _texts(svgs[0]) and "Plain LightGBM" in _texts(svgs[1])
    # The calibration plot writes the rows of each bin.
    assert all(n in _texts(svgs[2]) for n in ("1500", "300", "150", "50"))
    assert "Feature importance (top 3)" in _texts(svgs[4])


def test_importance_plot_shows_at_most_top() -> None:
    imp = pd.DataFrame({"feature": [f"f{i}" for i in range(30)],
                        "gain": np.arange(30, 0, -1, dtype="float64")})
    text = _texts(importance_plot(imp, top=5))
    assert "Feature importance (top 5)" in text
    assert all(f"f{i}" in text.split() for i in range(5))
    assert "f5" not in text.split()


# --- the plain LightGBM baseline --------------------------------------------------------


def _headline(page: str) -> tuple[str, str]:
    found = re.findall(r'<p class="headline ?(ok|bad|)">(.*?)</p>', page)
    assert len(found) == 1
    return found[0]


def test_metric_table_has_a_plain_lightgbm_column(en: str, zh: str) -> None:
    start = en.index("Test-period metrics (labels)")
    head = en[start: en.index("</thead>", start)]
    assert re.findall(r"<th>(.*?)</th>", head) == ["metric", "Model", "Plain LightGBM",
                                                  "Logistic regression", "Rule"]
    rows = _rows(en, "Test-period metrics (labels)")
    assert rows[1][:3] == ["Average precision", "0.500", "0.400"]
    start = zh.index("测试期指标（标签）")
    head = zh[start: zh.index("</thead>", start)]
    assert re.findall(r"<th>(.*?)</th>", head) == ["指标", "模型", "普通 LightGBM",
                                                  "逻辑回归", "规则"]


def test_plain_verdict_is_near_the_top(en: str, zh: str) -> None:
    cls, text = _headline(en)
    assert cls == "ok"
    assert text == ("refundguard beats the plain LightGBM on labels (AP 0.500 vs 0.400, "
                    "AUC 0.900 vs 0.800).")
    assert en.index(text) < en.index("Test-period metrics")
    assert _headline(zh) == ("ok", "refundguard 在标签上优于普通 LightGBM（AP 0.500 对 0.400，"
                                   "AUC 0.900 对 0.800）。")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"truth.model.average_precision": 0.6, "truth.plain.average_precision": 0.5,
          "truth.model.roc_auc": 0.8, "truth.plain.roc_auc": 0.79},
         "refundguard beats the plain LightGBM on labels (AP 0.500 vs 0.400, AUC 0.900 vs "
         "0.800) and on the truth (AP 0.600 vs 0.500, AUC 0.800 vs 0.790)."),
        ({"plain.roc_auc": 0.95},
         "refundguard does NOT beat the plain LightGBM on labels (AP 0.500 vs 0.400, AUC "
         "0.900 vs 0.950): this is a bug to investigate."),
        ({"truth.model.average_precision": 0.5, "truth.plain.average_precision": 0.5,
          "truth.model.roc_auc": 0.8, "truth.plain.roc_auc": 0.7},
         "refundguard beats the plain LightGBM on labels (AP 0.500 vs 0.400, AUC 0.900 vs "
         "0.800) but does NOT beat it on the truth (AP 0.500 vs 0.500, AUC 0.800 vs 0.700): "
         "this is a bug to investigate."),
        ({"plain.average_precision": math.nan},
         "refundguard could not be compared with the plain LightGBM (no figures)."),
    ],
)
def test_plain_verdict(changes: dict[str, float], expected: str) -> None:
    m = {**_metrics({"household": 0.01}), **changes}
    assert report.plain_verdict(m) == expected


def test_plain_verdict_is_marked_bad_when_the_model_loses(fast_plots: None) -> None:
    m = _metrics({"household": 0.01})
    m["plain.average_precision"] = 0.9
    page = render(_data(m))
    cls, text = _headline(_in(page, "en"))
    assert cls == "bad" and "does NOT beat" in text
    cls, text = _headline(_in(page, "zh"))
    assert cls == "bad" and "未能优于" in text and text.endswith("这是需要排查的缺陷。")


def test_plain_verdict_in_chinese() -> None:
    m = {**_metrics({"household": 0.01}), "truth.model.average_precision": 0.5,
         "truth.plain.average_precision": 0.5, "truth.model.roc_auc": 0.8,
         "truth.plain.roc_auc": 0.7}
    assert report.plain_verdict(m, "zh") == (
        "refundguard 在标签上优于普通 LightGBM（AP 0.500 对 0.400，AUC 0.900 对 0.800），"
        "但在真相上未能优于它（AP 0.500 对 0.500，AUC 0.800 对 0.700）：这是需要排查的缺陷。")


# --- two languages ----------------------------------------------------------------------


def _main(page: str) -> str:
    return page[page.index("<main>"): page.index("</main>")]


def test_both_languages_are_on_the_page(page: str) -> None:
    main = _main(page)
    # Every piece of text comes as a pair: a Chinese element, then its English twin.
    pairs = re.findall(r'<(\w+) lang="zh"[^>]*>.*?</\1><(\w+) lang="en"', main, re.DOTALL)
    assert pairs and all(a == b for a, b in pairs)
    assert main.count(' lang="zh"') == main.count(' lang="en"') == len(pairs)
    for zh, en in [("测试期指标（标签）", "Test-period metrics (labels)"),
                   ("处理级别与预期成本", "Policy tiers and expected cost"),
                   ("各群体的分数分布", "Score distribution per segment"),
                   ("特征重要性", "Feature importance"), ("训练", "Training"),
                   ("时间划分", "Time split")]:
        assert f">{zh}</h" in main and f">{en}</h" in main
    for t in TIERS:
        assert TIER_LABELS["zh"][t] in main and TIER_LABELS["en"][t] in main
    # Every figure has a caption in both languages, which names its axes.
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", main, re.DOTALL)
    assert len(captions) == 5
    assert all('<span lang="zh">' in c and '<span lang="en">' in c for c in captions)
    assert "横轴：召回率" in captions[1] and "x: recall" in captions[1]


def test_a_reader_of_one_language_sees_only_it(en: str, zh: str) -> None:
    cjk = re.compile(r"[\u4e00-\u9fff]")
    en_text = re.sub(r"<svg.*?</svg>", "", _main(en), flags=re.DOTALL)
    # Chinese left in the English view: only the feature catalog's own words, if any.
    assert not cjk.search(en_text)
    assert "Policy tiers" not in zh and "处理级别与预期成本" in zh


def test_language_toggle(page: str) -> None:
    body = page.split("<body>", 1)[1]
    # two radio buttons before <main>, labelled in their own language; CSS hides the other
    assert body.index('id="show-zh"') < body.index("<main>")
    assert body.index('id="show-en"') < body.index("<main>")
    assert re.search(r'<input type="radio" name="lang" id="show-zh"[^>]*>', body)
    assert re.search(r'<input type="radio" name="lang" id="show-en"[^>]*>', body)
    assert '<label for="show-zh" lang="zh">中文</label>' in body
    assert '<label for="show-en" lang="en">English</label>' in body
    style = page[page.index("<style>"): page.index("</style>")]
    assert '#show-zh:checked ~ main [lang="en"]' in style
    assert '#show-en:checked ~ main [lang="zh"]' in style
    # Printing hides the buttons, not the choice: the hiding rule is outside @media print.
    printing = style[style.index("@media print"):]
    assert ".langs { display: none; }" in printing and "[lang=" not in printing


@pytest.mark.parametrize(
    ("lang", "zone", "shown"),
    [
        (None, "Asia/Shanghai", "zh"),
        ("auto", "Asia/Hong_Kong", "zh"),
        (None, "Asia/Taipei", "zh"),
        (None, "Asia/Tokyo", "en"),
        (None, "Europe/Berlin", "en"),
        (None, None, "en"),
        ("en", "Asia/Shanghai", "en"),
        ("zh", "America/New_York", "zh"),
    ],
)
def test_the_language_shown_first(lang: Any, zone: str | None, shown: str,
                                  fast_plots: None) -> None:
    assert report.report_language(lang, zone) == shown
    page = render(_data(), lang=lang, timezone=zone)
    other = "en" if shown == "zh" else "zh"
    assert f'<html lang="{shown}">' in page
    assert re.search(rf'id="show-{shown}" class="toggle" checked>', page)
    assert not re.search(rf'id="show-{other}" class="toggle" checked', page)
    # the page is otherwise the same: both languages, whichever shows first
    assert _main(render(_data(), lang=other, timezone=zone)) == _main(page)


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="zh, en or auto"):
        report.report_language("fr", None)  # type: ignore[arg-type]


# --- times in the data's zone -----------------------------------------------------------


def test_times_are_shown_in_the_data_zone(fast_plots: None) -> None:
    info = {
        "split": {"train": ["2024-10-08T16:00:00+00:00", "2024-11-05T16:00:00+00:00"],
                  "calibration": ["2024-11-19T16:00:00+00:00"],
                  "test": ["2024-12-06T16:00:00+00:00", "2024-12-07T02:30:00+00:00"]},
        "ships": "refit",
        "shipped": {"cutoffs": ["2024-10-08T16:00:00+00:00", "2024-12-06T16:00:00+00:00"],
                    "rows": 10, "rounds": 5, "oot_metrics": {}},
    }
    consistency = {"early_cutoffs": ["2024-10-08T16:00:00+00:00"],
                   "late_cutoffs": ["2024-11-05T16:00:00+00:00"], "checks": []}
    local = _in(render(_data(info=info, consistency=consistency), timezone=ZONE), "en")
    # UTC 16:00 is midnight of the next day in Shanghai: the date alone.
    assert "Test window (cutoffs): 2024-12-07, 2024-12-07 10:30;" in local
    assert "Times are local to Asia/Shanghai" in local
    assert "<td>train</td><td>2</td><td>2024-10-09 – 2024-11-06</td>" in local
    assert "<td>calibration</td><td>1</td><td>2024-11-20</td>" in local
    assert "cutoffs (Asia/Shanghai)" in local
    assert "late side: 2024-11-06." in local
    assert "refit on all 2 cutoffs (2024-10-09 – 2024-12-07;" in local
    assert "2024-10-08" not in local and "16:00" not in local
    zh = _in(render(_data(info=info, consistency=consistency), timezone=ZONE), "zh")
    assert "时间均为 Asia/Shanghai 当地时间" in zh and "测试窗口（截至时间）：2024-12-07，" in zh
    # Without a zone the times stay in UTC, and the page says so.
    utc = _in(render(_data(info=info, consistency=consistency)), "en")
    assert "Test window (cutoffs): 2024-12-06 16:00, 2024-12-07 02:30;" in utc
    assert "Times are local to UTC" in utc


def test_a_time_that_is_not_a_time_is_shown_as_written(fast_plots: None) -> None:
    page = _in(render(_data(info={"split": {"test": ["soon"]}}), timezone=ZONE), "en")
    assert "Test window (cutoffs): soon;" in page


# --- readable plots ---------------------------------------------------------------------


_CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def _all_plots(data: ReportData) -> list[str]:
    return [roc_plot(data.curves), pr_plot(data.curves), calibration_plot(data.reliability),
            distribution_plot(data.scores, data.bounds), importance_plot(data.importance)]


def test_without_a_chinese_font_the_plots_hold_no_chinese(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No tofu: with no font for Chinese, the Chinese stands in the HTML around the SVG."""
    monkeypatch.setattr(report, "_cjk_font", lambda: None)
    for svg in _all_plots(_data()):
        assert not _CJK.search(svg)
        assert "font-size: 8px" in svg or "font-size: 9px" in svg  # readable sizes


@pytest.mark.filterwarnings("ignore:Glyph")
def test_with_a_chinese_font_the_plots_are_bilingual(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in name: matplotlib only needs it as the fallback family.
    monkeypatch.setattr(report, "_cjk_font", lambda: "Stand-in CJK")
    svgs = _all_plots(_data())
    assert "召回率 recall" in _texts(svgs[1]) and "精度 precision" in _texts(svgs[1])
    assert "模型 Model" in _texts(svgs[0])
    assert "标准 Standard" in _texts(svgs[3])
    assert "'Stand-in CJK'" in svgs[0]  # the SVG asks the browser for the font


def test_the_chinese_font_is_never_a_last_resort_font() -> None:
    name = report._cjk_font()
    assert name is None or "last resort" not in name.lower()


def _boxes(fig: Any) -> tuple[Any, Any, list[Any]]:
    fig.draw_without_rendering()
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_gid() == "tier-label"]
    return ax.title.get_window_extent(), ax.get_window_extent(), [
        t.get_window_extent() for t in labels]


@pytest.mark.filterwarnings("ignore:Glyph")
@pytest.mark.parametrize("bilingual", [False, True])
@pytest.mark.parametrize(
    "bounds",
    [(0.02, 0.2, 0.6), (0.02, 0.025, 0.03), (0.5, 0.55, 0.99), (1e-4, 0.9, NEVER),
     (0.3, NEVER, NEVER)],
)
def test_distribution_title_does_not_overprint_the_tier_labels(
    bounds: tuple[float, float, float], bilingual: bool,
) -> None:
    def label(zh: str, en: str) -> str:
        return f"{zh} {en}" if bilingual else en

    with report._style():
        fig = report._distribution_figure(_data().scores, bounds, label)
        title, axes, tiers = _boxes(fig)
    assert len(tiers) == sum(b <= 1 for b in bounds)
    for box in tiers:
        assert not box.overlaps(title)
        assert box.y1 <= axes.y1  # inside the axes, under the title
    for i, a in enumerate(tiers):
        for b in tiers[i + 1:]:
            assert not a.overlaps(b)


def test_the_old_layout_would_have_failed_the_overlap_check() -> None:
    """The check can fail: a label put where the title is overlaps it."""
    with report._style():
        fig = report._distribution_figure(_data().scores, (0.02, 0.2, 0.6),
                                          lambda zh, en: en)
        ax = fig.axes[0]
        # where the old layout put the labels: just above the axes, in the title's band
        ax.text(0.5, 1.02, "Review", transform=ax.transAxes, gid="tier-label",
                ha="center", va="bottom", fontsize=8)
        title, _, tiers = _boxes(fig)
    assert any(box.overlaps(title) for box in tiers)
