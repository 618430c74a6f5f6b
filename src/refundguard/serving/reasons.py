"""Reasons a person can check: the top SHAP contributions, as sentences with figures.

For each flagged buyer, LightGBM's own SHAP values (``pred_contrib=True``) say which
features pushed the risk up. The three largest positive ones become sentences written
from the feature catalog, with the buyer's figure and where it stands among all buyers
("高于 98% 的买家" / "more than 98% of buyers", from the reference distribution the train
stage saved). Contributions are computed only for the rows asked for, so scoring a big
batch stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from refundguard.features.catalog import Feature

TOP_REASONS = 3


# Reasons are joined into one string per language, so a row stays flat (CSV, REST).
SEPARATOR = " | "


@dataclass(frozen=True)
class Reason:
    """One reason for one buyer.

    Attributes:
        feature: The feature.
        contribution: Its SHAP contribution to the raw score (log-odds).
        value: The buyer's value.
        en: The sentence in English.
        zh: The sentence in Chinese.
    """

    feature: str
    contribution: float
    value: float
    en: str
    zh: str


# How a catalog unit is written in a reason sentence; other units print as plain numbers.
_UNIT_FORMATS: dict[str, str] = {
    "share": "{:.0%}",
    "cny": "¥{:,.0f}",
    "hours": "{:.1f} h",
    "days": "{:.0f} d",
    "ratio": "{:.1f}x",
    "stars": "{:.1f}★",
    "score": "{:.2f}",
}
# The same in a Chinese sentence: 元, 小时, 天, 倍 (what a merchant's back office writes).
_UNIT_FORMATS_ZH: dict[str, str] = {
    **_UNIT_FORMATS,
    "cny": "{:,.0f}元",
    "hours": "{:.1f}小时",
    "days": "{:.0f}天",
    "ratio": "{:.1f}倍",
}


def format_value(value: float, unit: str, lang: str = "en") -> str:
    """A feature value as a person reads it.

    Args:
        value: The value.
        unit: The catalog unit.
        lang: "en" or "zh" (units 元, 小时, 天, 倍).

    Returns:
        Text such as "63%", "¥1,280", "3.5 h", "12" (zh: "1,280元", "3.5小时").
    """
    if not math.isfinite(value):
        return "-"
    template = (_UNIT_FORMATS_ZH if lang == "zh" else _UNIT_FORMATS).get(unit)
    if template is not None:
        return template.format(value)
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def standing(value: float, quantiles: Sequence[float]) -> tuple[float, float]:
    """Shares of reference buyers strictly below and strictly above a value.

    Args:
        value: The buyer's value.
        quantiles: Evenly spaced quantiles of the reference distribution.

    Returns:
        (share below, share above), each in [0, 1]; (nan, nan) without a reference.
    """
    q = np.asarray(quantiles, dtype="float64")
    if q.size < 2 or not math.isfinite(value):
        return math.nan, math.nan
    # Quantile i sits at level i/(P-1); a value between two of them is placed linearly.
    levels = np.linspace(0.0, 1.0, q.size)
    below = float(np.interp(value, q, levels, left=0.0, right=1.0)) if value > q[0] else 0.0
    lo = np.searchsorted(q, value, side="left")
    hi = np.searchsorted(q, value, side="right")
    if hi > lo:  # the value is a plateau of the distribution (e.g. a share of 0)
        below = float(levels[lo - 1]) if lo > 0 else 0.0
        above = 1.0 - float(levels[hi - 1]) if hi < q.size else 0.0
    else:
        above = 1.0 - below
    return below, above


def _rank(below: float, above: float) -> tuple[str, str]:
    if math.isnan(below):
        return "", ""
    # The epsilon undoes float error (1 - 0.9 is 0.0999...); the cap keeps "more than
    # 100%" impossible for a value beyond the reference's range.
    if below >= above:
        pct = min(math.floor(below * 100 + 1e-9), 99)
        return f"more than {pct}% of buyers", f"高于 {pct}% 的买家"
    pct = min(math.floor(above * 100 + 1e-9), 99)
    return f"less than {pct}% of buyers", f"低于 {pct}% 的买家"


def sentence(
    feature: Feature,
    value: float,
    quantiles: Sequence[float],
    row: Mapping[str, float],
) -> tuple[str, str]:
    """The reason sentence for one feature of one buyer, in English and Chinese.

    Args:
        feature: The catalog entry.
        value: The buyer's value.
        quantiles: The feature's reference distribution.
        row: The buyer's other feature values (for templates that cite a count).

    Returns:
        (English, Chinese).
    """
    rank_en, rank_zh = _rank(*standing(value, quantiles))
    text = format_value(value, feature.unit)
    text_zh = format_value(value, feature.unit, lang="zh")
    n = row.get(feature.count_of, math.nan) if feature.count_of else math.nan
    if feature.reason_en and math.isfinite(n) and math.isfinite(value):
        fields = {
            "w": feature.window_days,
            "n": f"{n:.0f}",
            "k": f"{round(value * n):.0f}",
        }
        en = feature.reason_en.format(rank=rank_en, value=text, **fields)
        zh = feature.reason_zh.format(rank=rank_zh, value=text_zh, **fields)
    else:
        en = f"{feature.en.rstrip('.')}: {text}" + (f", {rank_en}" if rank_en else "")
        zh = f"{feature.zh.rstrip('。')}: {text_zh}" + (f", {rank_zh}" if rank_zh else "")
    return en.rstrip(", "), zh.rstrip(", ")


def contributions(booster: lgb.Booster, x: np.ndarray, num_threads: int = 1) -> np.ndarray:
    """SHAP contributions of each feature to each row's raw score.

    Args:
        booster: The model.
        x: Feature matrix, in the booster's order.
        num_threads: Threads LightGBM may use.

    Returns:
        Array (rows, features); the expected value column is dropped.
    """
    if len(x) == 0:
        return np.zeros((0, booster.num_feature()))
    out = np.asarray(booster.predict(x, pred_contrib=True, num_threads=num_threads))
    return out[:, :-1]


def top_reasons(
    contrib: np.ndarray,
    values: pd.DataFrame,
    catalog: Mapping[str, Feature],
    reference: Mapping[str, Sequence[float]],
    k: int = TOP_REASONS,
) -> list[list[Reason]]:
    """The k largest positive contributions of each row, as reasons.

    Features whose value is missing are skipped (there is no figure to show).

    Args:
        contrib: Contributions (rows, features), columns in ``values``' order.
        values: The rows' feature values; its columns are the model's features.
        catalog: Catalog entries by name.
        reference: Reference quantiles by feature name.
        k: Reasons per row, at most.

    Returns:
        One list of reasons per row, strongest first.
    """
    names = list(values.columns)
    x = values.to_numpy(dtype="float64")
    out: list[list[Reason]] = []
    for i in range(len(x)):
        c = np.where(np.isfinite(x[i]), contrib[i], -np.inf)
        order = np.argsort(-c, kind="stable")
        row = dict(zip(names, x[i].tolist(), strict=True))
        reasons = []
        for j in order[:k]:
            if not c[j] > 0:
                break
            f = catalog[names[j]]
            en, zh = sentence(f, float(x[i, j]), reference.get(f.name, ()), row)
            reasons.append(Reason(f.name, float(c[j]), float(x[i, j]), en, zh))
        out.append(reasons)
    return out


def join(reasons: Sequence[Reason], language: str) -> str:
    """One row's reasons as one string.

    Args:
        reasons: The row's reasons.
        language: "en" or "zh".

    Returns:
        The sentences joined by SEPARATOR ("" when there are none).
    """
    return SEPARATOR.join(getattr(r, language) for r in reasons)
