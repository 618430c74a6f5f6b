"""What people read: tier names, score-table headers and list names in Chinese and English.

One home for the translations that the case file (:mod:`refundguard.serving.case_render`)
and the score tables for people (:mod:`refundguard.serving.people`) share. Machine output
(Parquet, JSON) keeps the English column names and tier codes of
:mod:`refundguard.contract.vocabulary`.
"""

from __future__ import annotations

from collections.abc import Mapping

# The language codes and tier names live in the contract, where the report can share them.
from refundguard.contract.vocabulary import LANGUAGES as LANGUAGES
from refundguard.contract.vocabulary import TIER_LABELS as TIER_LABELS
from refundguard.contract.vocabulary import Language as Language

# Values of the ``override`` column (see refundguard.serving.lists).
OVERRIDE_LABELS: Mapping[Language, Mapping[str, str]] = {
    "zh": {"deny": "黑名单", "allow": "白名单", "": ""},
    "en": {"deny": "deny list", "allow": "allow list", "": ""},
}


# Headers of the score table and its summary; a column not listed keeps its name.
COLUMN_LABELS: Mapping[Language, Mapping[str, str]] = {
    "zh": {
        "buyer_id": "买家ID",
        "cutoff": "截至时间",
        "probability": "风险概率",
        "risk_score": "风险分",
        "tier": "处理级别",
        "model_tier": "模型级别",
        "override": "名单覆盖",
        "override_reason": "名单原因",
        "override_by": "名单添加人",
        "reasons_zh": "主要原因",
        "reasons_en": "主要原因(英文)",
        "model_version": "模型版本",
        "known_buyer": "数据中有此买家",
        "buyers": "买家数",
        "share": "占比",
        "mean_probability": "平均风险概率",
        "min_probability": "最低风险概率",
        "max_probability": "最高风险概率",
        "overridden": "名单覆盖数",
    },
    "en": {
        "buyer_id": "buyer_id",
        "cutoff": "cutoff",
        "probability": "probability",
        "risk_score": "risk_score",
        "tier": "tier",
        "model_tier": "model_tier",
        "override": "override",
        "override_reason": "override_reason",
        "override_by": "override_by",
        "reasons_zh": "reasons_zh",
        "reasons_en": "reasons_en",
        "model_version": "model_version",
        "known_buyer": "known_buyer",
        "buyers": "buyers",
        "share": "share",
        "mean_probability": "mean_probability",
        "min_probability": "min_probability",
        "max_probability": "max_probability",
        "overridden": "overridden",
    },
}


# Sheet names of the Excel file.
SHEET_LABELS: Mapping[Language, Mapping[str, str]] = {
    "zh": {"scores": "评分", "summary": "按级别汇总"},
    "en": {"scores": "scores", "summary": "summary by tier"},
}


def check_language(lang: str) -> Language:
    """A supported language code.

    Args:
        lang: "zh" or "en".

    Returns:
        The code.

    Raises:
        ValueError: Another code.
    """
    if lang not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {lang!r}")
    return lang
