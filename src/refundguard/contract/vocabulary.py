"""The shared vocabulary: every name the layers agree on, each defined once.

Refund enums, label values and sources, buyer segments, policy tiers and the texts the
platform writes for a buyer who wrote nothing. Modules import these instead of typing
the strings out again; the order of each tuple is part of its meaning (codes are
positions, tiers rise in severity). Table names live with the table declarations, in
:mod:`refundguard.contract.tables` (``TABLE_NAMES``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

REFUND_TYPES: Final = ("refund_only", "return_refund", "exchange", "compensation")


REFUND_REASONS: Final = (
    "not_received",
    "damaged",
    "quality",
    "not_as_described",
    "wrong_item",
    "missing_parts",
    "size_fit",
    "changed_mind",
    "logistics",
    "other",
)


REFUND_STATUSES: Final = ("pending", "approved", "rejected", "cancelled")


LABEL_VALUES: Final = (0, 1)


# Who decided a label (simulator source codes are positions here).
LABEL_SOURCES: Final[tuple[str, ...]] = ("platform_ruling", "manual_review", "merchant_report")
# Decisions a person checked; a merchant's report is a claim, sometimes wrong.
RULING_SOURCES: Final[tuple[str, ...]] = LABEL_SOURCES[:2]
MERCHANT_REPORT: Final = LABEL_SOURCES[2]


# Texts the platform writes for a buyer who wrote nothing: Taobao's default praise after
# the review period, and the placeholder of an empty review.
SYSTEM_DEFAULT_TEXT: Final = "评价方未及时做出评价,系统默认好评!"
SYSTEM_EMPTY_TEXT: Final = "此用户没有填写评价。"
# Every spelling seen of them (full-width punctuation, no final stop). They say nothing
# about the buyer: features and the sentiment model leave them out.
SYSTEM_REVIEW_TEXTS: Final = (
    SYSTEM_DEFAULT_TEXT,
    "评价方未及时做出评价，系统默认好评！",
    SYSTEM_EMPTY_TEXT,
    "此用户没有填写评价",
)


HONEST_SEGMENT: Final = "honest"


# Honest segments built to look like abusers; merchants sometimes wrongly report them.
LOOKALIKE_SEGMENTS: Final[tuple[str, ...]] = (
    "size_bracketer",
    "logistics_victim",
    "picky_reviewer",
    "household",
)


# Segments whose buyers are abusers (``truth.is_abuser``).
ABUSER_SEGMENTS: Final[tuple[str, ...]] = (
    "refund_only_claimer",
    "extortion_reviewer",
    "wardrober",
    "ring_member",
)


# Every buyer segment, in the order of the simulator's internal codes.
SEGMENTS: Final[tuple[str, ...]] = (HONEST_SEGMENT, *LOOKALIKE_SEGMENTS, *ABUSER_SEGMENTS)


# Policy tiers, from least to most friction: trusted (instant refunds), standard (the
# normal process), review (a person checks), restrict (refund-only blocked).
TIERS: Final[tuple[str, ...]] = ("trusted", "standard", "review", "restrict")
# The tier everyone gets without a model: the normal after-sales process.
DEFAULT_TIER: Final = TIERS[1]
# The first tier that holds a buyer for a person ("flagged"), and the tiers from it up.
FIRST_FLAGGED_TIER: Final = TIERS[2]
FLAGGED_TIERS: Final[tuple[str, ...]] = TIERS[2:]


# --- Names people read, in Chinese and English ---------------------------------------
# The case file, the score tables for people (refundguard.serving.labels) and the HTML
# evaluation report (refundguard.reporting) all show these; machine output keeps the codes.

Language = Literal["zh", "en"]


LANGUAGES: Final[tuple[Language, ...]] = ("zh", "en")


TIER_LABELS: Final[Mapping[Language, Mapping[str, str]]] = {
    "zh": dict(zip(TIERS, ("信任", "标准", "人工审核", "限制"), strict=True)),
    "en": dict(zip(TIERS, ("Trusted", "Standard", "Review", "Restrict"), strict=True)),
}


# Buyer segments (simulated data), as the report's tables name them.
SEGMENT_LABELS: Final[Mapping[Language, Mapping[str, str]]] = {
    "zh": dict(zip(SEGMENTS, (
        "诚实买家", "尺码试穿者", "物流受害者", "挑剔评价者", "家庭共用账户",
        "仅退款索取者", "差评勒索者", "穿后退货者", "团伙成员",
    ), strict=True)),
    "en": dict(zip(SEGMENTS, (
        "honest buyer", "size bracketer", "logistics victim", "picky reviewer", "household",
        "refund-only claimer", "extortion reviewer", "wardrober", "ring member",
    ), strict=True)),
}
