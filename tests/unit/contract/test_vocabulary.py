"""The shared vocabulary: each name set defined once, in the order its users rely on."""

from __future__ import annotations

from refundguard.contract.vocabulary import (
    ABUSER_SEGMENTS,
    DEFAULT_TIER,
    FIRST_FLAGGED_TIER,
    FLAGGED_TIERS,
    HONEST_SEGMENT,
    LABEL_SOURCES,
    LOOKALIKE_SEGMENTS,
    SEGMENTS,
    SYSTEM_DEFAULT_TEXT,
    SYSTEM_EMPTY_TEXT,
    SYSTEM_REVIEW_TEXTS,
    TIERS,
)


def test_tiers_rise_in_severity() -> None:
    assert TIERS == ("trusted", "standard", "review", "restrict")
    assert DEFAULT_TIER == "standard"
    assert FIRST_FLAGGED_TIER == "review"
    assert FLAGGED_TIERS == ("review", "restrict")


def test_segments_partition_into_honest_lookalikes_and_abusers() -> None:
    # The simulator's internal segment codes are positions in SEGMENTS: the order is fixed.
    assert SEGMENTS == (
        "honest",
        "size_bracketer",
        "logistics_victim",
        "picky_reviewer",
        "household",
        "refund_only_claimer",
        "extortion_reviewer",
        "wardrober",
        "ring_member",
    )
    assert SEGMENTS[0] == HONEST_SEGMENT
    assert not set(LOOKALIKE_SEGMENTS) & set(ABUSER_SEGMENTS)
    assert set(SEGMENTS) == {HONEST_SEGMENT, *LOOKALIKE_SEGMENTS, *ABUSER_SEGMENTS}


def test_label_sources() -> None:
    # The simulator's source codes are positions in LABEL_SOURCES.
    assert LABEL_SOURCES == ("platform_ruling", "manual_review", "merchant_report")


def test_system_texts_are_among_those_left_out() -> None:
    assert SYSTEM_DEFAULT_TEXT in SYSTEM_REVIEW_TEXTS
    assert SYSTEM_EMPTY_TEXT in SYSTEM_REVIEW_TEXTS
    assert len(set(SYSTEM_REVIEW_TEXTS)) == len(SYSTEM_REVIEW_TEXTS) == 4
