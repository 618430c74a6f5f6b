from __future__ import annotations

import itertools
import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refundguard.config import BaseParams
from refundguard.errors import ConfigError, DataContractError
from refundguard.features.timesplit import (
    ROLES,
    TimeSplit,
    data_span,
    label_delays,
    label_targets,
    make_cutoffs,
    resolve_horizon,
    rolling_folds,
    split_cutoffs,
)

TZ = "Asia/Shanghai"
T = pd.Timestamp("2024-03-01 00:00", tz=TZ).tz_convert("UTC")
DAY = pd.Timedelta(days=1)


def utc(local: str) -> pd.Timestamp:
    """A Shanghai wall-clock time in UTC."""
    return pd.Timestamp(local, tz=TZ).tz_convert("UTC")


def _labels(rows: list[tuple[str, float, pd.Timestamp]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["buyer_id", "label", "labeled_at"])
    df["label"] = df["label"].astype("float64")
    df["labeled_at"] = pd.to_datetime(df["labeled_at"], utc=True).dt.as_unit("us")
    return df


# --- label_targets ----------------------------------------------------------------------


def test_positives_only_inside_the_horizon() -> None:
    h = 10
    labels = _labels(
        [
            ("before", 1, T - pd.Timedelta(seconds=1)),
            ("at_t", 1, T),
            ("inside", 1, T + 5 * DAY),
            ("last_second", 1, T + h * DAY - pd.Timedelta(microseconds=1)),
            ("at_end", 1, T + h * DAY),
            ("after", 1, T + 30 * DAY),
            ("legit", 0, T + 2 * DAY),
        ]
    )
    targets = label_targets(labels, T, h)
    assert targets.positives == frozenset({"at_t", "inside", "last_second"})
    assert targets.known_abusers == frozenset({"before"})


def test_label_exactly_at_t_plus_h_is_excluded() -> None:
    labels = _labels([("b1", 1, T + 56 * DAY)])
    assert label_targets(labels, T, 56).positives == frozenset()
    assert label_targets(labels, T, 57).positives == frozenset({"b1"})


def test_known_abuser_uses_the_latest_decision_before_t() -> None:
    labels = _labels(
        [
            ("cleared", 1, T - 30 * DAY),
            ("cleared", 0, T - 10 * DAY),  # later decision: legitimate
            ("caught", 0, T - 30 * DAY),
            ("caught", 1, T - 10 * DAY),  # later decision: abuser
            ("always", 1, T - 5 * DAY),
            ("fresh", 0, T - 5 * DAY),
            ("future", 1, T + 100 * DAY),  # after the horizon; not known at T either
        ]
    )
    targets = label_targets(labels, T, 56)
    assert targets.known_abusers == frozenset({"caught", "always"})
    assert targets.positives == frozenset()


def test_latest_decision_does_not_depend_on_row_order() -> None:
    rows = [("cleared", 0, T - 10 * DAY), ("cleared", 1, T - 30 * DAY),
            ("caught", 1, T - 10 * DAY), ("caught", 0, T - 30 * DAY)]
    for perm in itertools.permutations(rows):
        targets = label_targets(_labels(list(perm)), T, 56)
        assert targets.known_abusers == frozenset({"caught"})


def test_decision_at_t_is_not_yet_known() -> None:
    labels = _labels([("b1", 1, T - 20 * DAY), ("b1", 0, T)])
    targets = label_targets(labels, T, 56)
    assert targets.known_abusers == frozenset({"b1"})  # the 0 at T is not before T
    assert targets.positives == frozenset()


def test_known_abuser_can_also_be_positive_again() -> None:
    labels = _labels([("b1", 1, T - 20 * DAY), ("b1", 1, T + 3 * DAY)])
    targets = label_targets(labels, T, 56)
    assert targets.known_abusers == frozenset({"b1"})
    assert targets.positives == frozenset({"b1"})


RULINGS = ("platform_ruling", "manual_review")


@pytest.mark.parametrize(
    ("decisions", "sources", "trusted"),
    [
        # A merchant's report alone makes a known abuser, not a trusted one.
        ([(1, "merchant_report")], RULINGS, False),
        ([(1, "platform_ruling")], RULINGS, True),
        # Any trusted abuser decision before T counts, whatever came after.
        ([(1, "manual_review"), (1, "merchant_report")], RULINGS, True),
        ([(1, "merchant_report"), (1, "manual_review")], RULINGS, True),
        # No sources named: every known abuser is trusted.
        ([(1, "merchant_report")], None, True),
        # A decision without a source always counts.
        ([(1, None)], RULINGS, True),
        # A trusted ruling that was overturned: not a known abuser at all.
        ([(1, "platform_ruling"), (0, "manual_review")], RULINGS, False),
    ],
)
def test_trusted_abusers_by_label_source(
    decisions: list[tuple[int, str | None]], sources: tuple[str, ...] | None, trusted: bool
) -> None:
    labels = _labels(
        [("b1", label, T - (30 - 10 * i) * DAY) for i, (label, _) in enumerate(decisions)]
    )
    labels["source"] = pd.Series([src for _, src in decisions], dtype="str")
    targets = label_targets(labels, T, 56, sources)
    assert targets.trusted_abusers == (frozenset({"b1"}) if trusted else frozenset())
    assert targets.trusted_abusers <= targets.known_abusers


def test_labels_without_a_source_column_trust_every_known_abuser() -> None:
    labels = _labels([("b1", 1, T - 10 * DAY), ("b2", 0, T - 10 * DAY)])
    targets = label_targets(labels, T, 56, RULINGS)
    assert targets.trusted_abusers == targets.known_abusers == frozenset({"b1"})


def test_empty_labels() -> None:
    targets = label_targets(_labels([]), T, 56)
    assert targets.positives == frozenset() and targets.known_abusers == frozenset()


def test_naive_and_local_cutoffs_mean_the_same_instant() -> None:
    labels = _labels([("b1", 1, T), ("b2", 1, T - pd.Timedelta(seconds=1))])
    local = label_targets(labels, T.tz_convert(TZ), 1)
    assert local.positives == frozenset({"b1"})
    assert local.known_abusers == frozenset({"b2"})


# --- make_cutoffs -----------------------------------------------------------------------


def _tables(first_order: str, last_order: str, last_label: str | None = None,
            last_refund: str | None = None) -> dict[str, pd.DataFrame]:
    orders = pd.DataFrame(
        {"order_id": ["o1", "o2"], "created_at": [utc(first_order), utc(last_order)]}
    )
    tables = {"orders": orders}
    if last_label is not None:
        tables["labels"] = pd.DataFrame({"buyer_id": ["b1"], "label": [1.0],
                                         "labeled_at": [utc(last_label)]})
    if last_refund is not None:
        tables["refunds"] = pd.DataFrame({"refund_id": ["r1"],
                                          "requested_at": [utc(last_refund)]})
    tables["reviews"] = pd.DataFrame({"review_id": pd.Series(dtype="str"),
                                      "created_at": pd.Series(dtype="datetime64[us, UTC]")})
    return tables


BASE = BaseParams(timezone=TZ, cutoff_step_days=28, horizon_days=56, min_history_days=120)


def test_data_span_uses_every_table() -> None:
    tables = _tables("2024-01-01 00:00", "2024-12-31 12:00", last_label="2025-02-01 10:00",
                     last_refund="2025-01-10 00:00")
    start, end = data_span(tables)
    assert start == utc("2024-01-01 00:00")
    assert end == utc("2025-02-01 10:00")
    del tables["labels"]
    assert data_span(tables)[1] == utc("2025-01-10 00:00")
    del tables["refunds"]
    assert data_span(tables)[1] == utc("2024-12-31 12:00")


def test_derived_bounds() -> None:
    tables = _tables("2024-01-01 00:00", "2024-12-31 12:00", last_label="2025-02-01 10:00")
    cutoffs = make_cutoffs(tables, BASE)
    # last = local midnight of (data end - 56 days) = 2024-12-07 00:00 Shanghai
    assert cutoffs[-1] == utc("2024-12-07 00:00")
    # first bound = local midnight of (first order + 120 days) = 2024-04-30 00:00
    assert cutoffs[0] >= utc("2024-04-30 00:00")
    assert cutoffs[0] - 28 * DAY < utc("2024-04-30 00:00")
    assert cutoffs == sorted(cutoffs)
    assert all(b - a == 28 * DAY for a, b in itertools.pairwise(cutoffs))
    assert len(cutoffs) == 8  # 2024-05-18 ... 2024-12-07


def test_cutoffs_are_local_midnights() -> None:
    tables = _tables("2024-01-01 13:37", "2024-12-31 23:59", last_label="2025-02-01 22:10")
    cutoffs = make_cutoffs(tables, BASE)
    assert cutoffs
    for c in cutoffs:
        assert str(c.tz) == "UTC"
        assert (c.hour, c.minute, c.second, c.microsecond) == (16, 0, 0, 0)
        local = c.tz_convert(TZ)
        assert (local.hour, local.minute) == (0, 0)


def test_local_midnight_alignment_late_evening_utc() -> None:
    # 2024-12-07 17:00 UTC is already 2024-12-08 01:00 in Shanghai.
    tables = _tables("2024-01-01 00:00", "2024-06-01 00:00")
    tables["labels"] = pd.DataFrame({"buyer_id": ["b"], "label": [1.0],
                                     "labeled_at": [pd.Timestamp("2025-02-01 17:00", tz="UTC")]})
    cutoffs = make_cutoffs(tables, BASE)
    assert cutoffs[-1] == utc("2024-12-08 00:00")
    assert cutoffs[-1] == pd.Timestamp("2024-12-07 16:00", tz="UTC")


def test_explicit_first_and_last_cutoffs() -> None:
    tables = _tables("2024-01-01 00:00", "2024-12-31 12:00", last_label="2025-02-01 10:00")
    base = BaseParams(timezone=TZ, first_cutoff="2024-05-01", last_cutoff="2024-08-01",
                      cutoff_step_days=28, horizon_days=56, min_history_days=120)
    cutoffs = make_cutoffs(tables, base)
    # Laid back from the last cutoff, so the first one falls on or after 2024-05-01.
    assert cutoffs == [utc("2024-05-09"), utc("2024-06-06"), utc("2024-07-04"),
                       utc("2024-08-01")]
    assert cutoffs[-1] == utc("2024-08-01")
    assert cutoffs[-1] == pd.Timestamp("2024-07-31 16:00", tz="UTC")


def test_explicit_cutoff_with_time_and_offset_is_aligned() -> None:
    tables = _tables("2024-01-01 00:00", "2024-12-31 12:00", last_label="2025-02-01 10:00")
    base = BaseParams(timezone=TZ, first_cutoff="2024-06-01T12:00:00+00:00",
                      last_cutoff="2024-06-01 23:30", cutoff_step_days=7)
    # 12:00 UTC is 20:00 in Shanghai: same local day.
    assert make_cutoffs(tables, base) == [utc("2024-06-01")]


def test_explicit_bounds_can_leave_the_data() -> None:
    tables = _tables("2024-01-01 00:00", "2024-02-01 00:00")
    base = BaseParams(timezone=TZ, first_cutoff="2023-01-01", last_cutoff="2023-01-15",
                      cutoff_step_days=7)
    assert make_cutoffs(tables, base) == [utc("2023-01-01"), utc("2023-01-08"),
                                          utc("2023-01-15")]


@pytest.mark.parametrize("step", [1, 7, 14, 30])
def test_step(step: int) -> None:
    tables = _tables("2024-01-01 00:00", "2024-12-31 12:00", last_label="2025-02-01 10:00")
    base = BaseParams(timezone=TZ, cutoff_step_days=step, horizon_days=56, min_history_days=120)
    cutoffs = make_cutoffs(tables, base)
    assert cutoffs[-1] == utc("2024-12-07 00:00")
    assert all(b - a == step * DAY for a, b in itertools.pairwise(cutoffs))
    assert cutoffs[0] >= utc("2024-04-30 00:00") > cutoffs[0] - step * DAY


def test_other_time_zone() -> None:
    tables = _tables("2024-01-01 00:00", "2024-12-31 12:00", last_label="2025-02-01 10:00")
    base = BaseParams(timezone="UTC", last_cutoff="2024-08-01", first_cutoff="2024-08-01")
    assert make_cutoffs(tables, base) == [pd.Timestamp("2024-08-01", tz="UTC")]


def test_single_cutoff_when_span_is_just_enough() -> None:
    # first bound 2024-04-30, last bound: (2024-06-25 00:00 - 56 d) = 2024-04-30.
    tables = _tables("2024-01-01 00:00", "2024-06-25 00:00")
    assert make_cutoffs(tables, BASE) == [utc("2024-04-30")]


def test_too_short_span() -> None:
    tables = _tables("2024-01-01 00:00", "2024-06-23 00:00")
    with pytest.raises(DataContractError, match="too short"):
        make_cutoffs(tables, BASE)


def test_explicit_first_after_last() -> None:
    tables = _tables("2024-01-01 00:00", "2024-12-31 12:00")
    base = BaseParams(timezone=TZ, first_cutoff="2024-09-01", last_cutoff="2024-08-01")
    with pytest.raises(DataContractError):
        make_cutoffs(tables, base)


def test_no_orders() -> None:
    tables = _tables("2024-01-01 00:00", "2024-12-31 12:00", last_label="2025-02-01 10:00")
    tables["orders"] = tables["orders"].iloc[0:0]
    with pytest.raises(DataContractError, match="orders"):
        make_cutoffs(tables, BASE)
    with pytest.raises(DataContractError):
        data_span(tables)


# --- split_cutoffs ----------------------------------------------------------------------


def weekly(n: int, start: str = "2024-01-01") -> list[pd.Timestamp]:
    return [utc(start) + i * 7 * DAY for i in range(n)]


def assert_gapped(split: TimeSplit, horizon_days: int) -> None:
    gap = pd.Timedelta(days=horizon_days)
    assert split.train and split.valid and split.test
    assert max(split.train) + gap <= min(split.valid)
    assert max(split.valid) + gap <= min(split.test)


def test_split_worked_example() -> None:
    cutoffs = weekly(20)  # weeks 0..19
    split = split_cutoffs(cutoffs, horizon_days=28, n_valid=2, n_test=3)
    assert split.test == tuple(cutoffs[17:20])
    # valid: latest two with c + 28 d <= week 17, i.e. weeks 12 and 13
    assert split.valid == tuple(cutoffs[12:14])
    # train: c + 28 d <= week 12, i.e. weeks 0..8
    assert split.train == tuple(cutoffs[0:9])
    assert_gapped(split, 28)


def test_split_sorts_its_input() -> None:
    cutoffs = weekly(20)
    shuffled = cutoffs[::-1]
    assert split_cutoffs(shuffled, horizon_days=28, n_valid=1, n_test=1) == split_cutoffs(
        cutoffs, horizon_days=28, n_valid=1, n_test=1
    )


def test_gap_exactly_h_is_allowed() -> None:
    cutoffs = [utc("2024-01-01"), utc("2024-01-01") + 10 * DAY, utc("2024-01-01") + 20 * DAY]
    split = split_cutoffs(cutoffs, horizon_days=10, n_valid=1, n_test=1)
    assert split == TimeSplit(train=(cutoffs[0],), valid=(cutoffs[1],), test=(cutoffs[2],))
    with pytest.raises(DataContractError):
        split_cutoffs(cutoffs, horizon_days=11, n_valid=1, n_test=1)


@pytest.mark.parametrize(
    ("n", "horizon", "n_valid", "n_test"),
    [(0, 7, 1, 1), (1, 7, 1, 1), (2, 7, 1, 1), (5, 28, 1, 1), (10, 7, 5, 5), (3, 1, 1, 3)],
)
def test_too_few_cutoffs(n: int, horizon: int, n_valid: int, n_test: int) -> None:
    with pytest.raises(DataContractError, match="cutoffs cannot hold"):
        split_cutoffs(weekly(n), horizon_days=horizon, n_valid=n_valid, n_test=n_test)


@pytest.mark.parametrize(("n_valid", "n_test"), [(0, 1), (1, 0), (-1, 1), (0, 0)])
def test_counts_below_one(n_valid: int, n_test: int) -> None:
    with pytest.raises(ConfigError, match="must be >= 1"):
        split_cutoffs(weekly(30), horizon_days=7, n_valid=n_valid, n_test=n_test)


def _feasible(ordered: Sequence[pd.Timestamp], gap: pd.Timedelta, n_valid: int,
              n_test: int) -> bool:
    """Brute force: can any n_valid cutoffs sit between a train cutoff and the test ones?"""
    if len(ordered) < n_test:
        return False
    test = ordered[len(ordered) - n_test:]
    rest = ordered[: len(ordered) - n_test]
    for valid in itertools.combinations(rest, n_valid):
        if max(valid) + gap <= min(test) and any(c + gap <= min(valid) for c in rest):
            return True
    return False


@settings(max_examples=200, deadline=None)
@given(
    days=st.lists(st.integers(min_value=0, max_value=400), min_size=0, max_size=9, unique=True),
    horizon=st.integers(min_value=1, max_value=120),
    n_valid=st.integers(min_value=1, max_value=3),
    n_test=st.integers(min_value=1, max_value=3),
)
def test_split_gap_property(days: list[int], horizon: int, n_valid: int, n_test: int) -> None:
    base = pd.Timestamp("2024-01-01 16:00", tz="UTC")
    cutoffs = [base + pd.Timedelta(days=d) for d in days]
    ordered = sorted(cutoffs)
    gap = pd.Timedelta(days=horizon)
    try:
        split = split_cutoffs(cutoffs, horizon_days=horizon, n_valid=n_valid, n_test=n_test)
    except DataContractError:
        assert not _feasible(ordered, gap, n_valid, n_test)
        return
    assert_gapped(split, horizon)
    assert len(split.valid) == n_valid
    assert split.test == tuple(ordered[-n_test:])
    assert list(split.train) == sorted(split.train)
    assert list(split.valid) == sorted(split.valid)
    roles = set(split.train) | set(split.valid) | set(split.test)
    assert len(roles) == len(split.train) + len(split.valid) + len(split.test)
    assert roles <= set(cutoffs)
    # The split uses the latest possible validation cutoffs and every train cutoff it can.
    assert split.train == tuple(c for c in ordered if c + gap <= split.valid[0])
    assert split.valid == tuple(c for c in ordered if c + gap <= split.test[0])[-n_valid:]
    assert _feasible(ordered, gap, n_valid, n_test)


def test_role() -> None:
    cutoffs = weekly(12)
    split = split_cutoffs(cutoffs, horizon_days=14, n_valid=1, n_test=1)
    assert split.test == (cutoffs[11],)
    assert split.valid == (cutoffs[9],)
    assert split.train == tuple(cutoffs[:8])
    assert [split.role(c) for c in cutoffs] == ["train"] * 8 + [None, "valid", None, "test"]
    assert split.role(utc("1999-01-01")) is None
    # The same instant in another zone is the same cutoff.
    assert split.role(cutoffs[11].tz_convert(TZ)) == "test"


def test_timesplit_is_frozen() -> None:
    split = split_cutoffs(weekly(12), horizon_days=14, n_valid=1, n_test=1)
    with pytest.raises(AttributeError):
        split.train = ()  # type: ignore[misc]


def test_make_then_split_keeps_the_gaps() -> None:
    tables = _tables("2024-01-01 00:00", "2025-12-31 12:00", last_label="2026-02-01 10:00")
    cutoffs = make_cutoffs(tables, BASE)
    split = split_cutoffs(cutoffs, horizon_days=BASE.horizon_days, n_valid=1, n_test=2)
    assert_gapped(split, BASE.horizon_days)
    assert split.test[-1] == cutoffs[-1]


# --- the calibration role ---------------------------------------------------------------


def test_split_with_calibration_worked_example() -> None:
    cutoffs = weekly(20)  # weeks 0..19, H = 4 weeks
    split = split_cutoffs(cutoffs, horizon_days=28, n_valid=1, n_calibration=2, n_test=2)
    assert split.test == tuple(cutoffs[18:20])
    # calibration: latest two with c + 4 w <= week 18, i.e. weeks 13 and 14
    assert split.calibration == tuple(cutoffs[13:15])
    # valid: latest one with c + 4 w <= week 13, i.e. week 9
    assert split.valid == (cutoffs[9],)
    # train: c + 4 w <= week 9, i.e. weeks 0..5
    assert split.train == tuple(cutoffs[0:6])
    roles = [split.role(c) for c in cutoffs]
    assert roles == (["train"] * 6 + [None] * 3 + ["valid"] + [None] * 3 + ["calibration"] * 2
                     + [None] * 3 + ["test"] * 2)


def assert_gapped_with_calibration(split: TimeSplit, horizon_days: int) -> None:
    gap = pd.Timedelta(days=horizon_days)
    assert split.train and split.valid and split.calibration and split.test
    assert max(split.train) + gap <= min(split.valid)
    assert max(split.valid) + gap <= min(split.calibration)
    assert max(split.calibration) + gap <= min(split.test)


def test_calibration_gaps_exactly_h_are_allowed() -> None:
    cutoffs = [utc("2024-01-01") + i * 10 * DAY for i in range(4)]
    split = split_cutoffs(cutoffs, horizon_days=10, n_valid=1, n_calibration=1, n_test=1)
    assert split == TimeSplit(train=(cutoffs[0],), valid=(cutoffs[1],), test=(cutoffs[3],),
                              calibration=(cutoffs[2],))
    assert_gapped_with_calibration(split, 10)
    assert [split.role(c) for c in cutoffs] == list(ROLES)
    with pytest.raises(DataContractError, match="1 calibration"):
        split_cutoffs(cutoffs, horizon_days=11, n_valid=1, n_calibration=1, n_test=1)


def test_calibration_needs_its_own_gap() -> None:
    """Three cutoffs H apart hold train/valid/test, but not a calibration role as well."""
    cutoffs = [utc("2024-01-01") + i * 10 * DAY for i in range(3)]
    assert split_cutoffs(cutoffs, horizon_days=10, n_valid=1, n_test=1).calibration == ()
    with pytest.raises(DataContractError, match="cutoffs cannot hold"):
        split_cutoffs(cutoffs, horizon_days=10, n_valid=1, n_calibration=1, n_test=1)


@pytest.mark.parametrize(
    ("n", "horizon", "n_valid", "n_calibration", "n_test"),
    [
        (20, 28, 1, 1, 1),  # weeks 0..19 hold train + 3 gapped roles
        (16, 28, 2, 2, 2),
        (12, 14, 1, 3, 1),
        (9, 14, 1, 3, 1),  # just enough
    ],
)
def test_enough_cutoffs_with_calibration(n: int, horizon: int, n_valid: int,
                                         n_calibration: int, n_test: int) -> None:
    split = split_cutoffs(weekly(n), horizon_days=horizon, n_valid=n_valid,
                          n_calibration=n_calibration, n_test=n_test)
    assert_gapped_with_calibration(split, horizon)
    assert (len(split.valid), len(split.calibration), len(split.test)) == (
        n_valid, n_calibration, n_test)


@pytest.mark.parametrize(
    ("n", "horizon", "n_valid", "n_calibration", "n_test"),
    [
        # 13 weekly cutoffs with H = 4 w: train 0, valid 4, calibration 8, test 12 fit ...
        (12, 28, 1, 1, 1),  # ... but 12 do not
        (3, 7, 1, 1, 1),
        (0, 7, 1, 1, 1),
        (15, 28, 2, 2, 2),  # needs 16
        (8, 14, 1, 3, 1),  # needs 9: train 0, valid 2, calibration 4-6, test 8
    ],
)
def test_too_few_cutoffs_with_calibration(n: int, horizon: int, n_valid: int,
                                          n_calibration: int, n_test: int) -> None:
    with pytest.raises(DataContractError, match=f"{n_calibration} calibration"):
        split_cutoffs(weekly(n), horizon_days=horizon, n_valid=n_valid,
                      n_calibration=n_calibration, n_test=n_test)


def test_thirteen_cutoffs_are_just_enough() -> None:
    split = split_cutoffs(weekly(13), horizon_days=28, n_valid=1, n_calibration=1, n_test=1)
    w = weekly(13)
    assert split == TimeSplit(train=(w[0],), valid=(w[4],), calibration=(w[8],),
                              test=(w[12],))


def test_negative_calibration_count() -> None:
    with pytest.raises(ConfigError):
        split_cutoffs(weekly(30), horizon_days=7, n_valid=1, n_calibration=-1, n_test=1)


def test_zero_calibration_is_the_three_role_split() -> None:
    for n in (12, 20):
        three = split_cutoffs(weekly(n), horizon_days=14, n_valid=2, n_test=1)
        zero = split_cutoffs(weekly(n), horizon_days=14, n_valid=2, n_calibration=0, n_test=1)
        assert three == zero and zero.calibration == ()


def _feasible_with_calibration(ordered: Sequence[pd.Timestamp], gap: pd.Timedelta,
                               n_valid: int, n_calibration: int, n_test: int) -> bool:
    """Brute force: can valid and calibration cutoffs sit, gapped, between train and test?"""
    if len(ordered) < n_test:
        return False
    test = ordered[len(ordered) - n_test:]
    rest = ordered[: len(ordered) - n_test]
    for cal in itertools.combinations(rest, n_calibration):
        if max(cal) + gap > min(test):
            continue
        for valid in itertools.combinations(rest, n_valid):
            if max(valid) + gap <= min(cal) and any(c + gap <= min(valid) for c in rest):
                return True
    return False


@settings(max_examples=200, deadline=None)
@given(
    days=st.lists(st.integers(min_value=0, max_value=400), min_size=0, max_size=9, unique=True),
    horizon=st.integers(min_value=1, max_value=120),
    n_valid=st.integers(min_value=1, max_value=2),
    n_calibration=st.integers(min_value=1, max_value=2),
    n_test=st.integers(min_value=1, max_value=2),
)
def test_split_with_calibration_gap_property(days: list[int], horizon: int, n_valid: int,
                                             n_calibration: int, n_test: int) -> None:
    base = pd.Timestamp("2024-01-01 16:00", tz="UTC")
    cutoffs = [base + pd.Timedelta(days=d) for d in days]
    ordered = sorted(cutoffs)
    gap = pd.Timedelta(days=horizon)
    feasible = _feasible_with_calibration(ordered, gap, n_valid, n_calibration, n_test)
    try:
        split = split_cutoffs(cutoffs, horizon_days=horizon, n_valid=n_valid,
                              n_calibration=n_calibration, n_test=n_test)
    except DataContractError:
        assert not feasible
        return
    assert feasible
    assert_gapped_with_calibration(split, horizon)
    assert len(split.valid) == n_valid and len(split.calibration) == n_calibration
    assert split.test == tuple(ordered[-n_test:])
    for role in ROLES:
        assert list(getattr(split, role)) == sorted(getattr(split, role))
    used = [c for role in ROLES for c in getattr(split, role)]
    assert len(set(used)) == len(used) and set(used) <= set(cutoffs)
    # The latest possible cutoffs for each role, every train cutoff that fits.
    assert split.calibration == tuple(c for c in ordered
                                      if c + gap <= split.test[0])[-n_calibration:]
    assert split.valid == tuple(c for c in ordered
                                if c + gap <= split.calibration[0])[-n_valid:]
    assert split.train == tuple(c for c in ordered if c + gap <= split.valid[0])


# --- rolling_folds ----------------------------------------------------------------------


def test_rolling_folds_worked_example() -> None:
    w = weekly(12)  # weeks 0..11, H = 2 weeks, validate before week 12
    folds = rolling_folds(w, utc("2024-01-01") + 12 * 7 * DAY, horizon_days=14, n_folds=3)
    # validation cutoffs: the latest three with c + 2 w <= week 12, each at least 2 w
    # after the one before (so that no two folds share a label window): weeks 6, 8, 10;
    # each trains on the cutoffs at least 2 w before it.
    assert folds == [(tuple(w[0:5]), w[6]), (tuple(w[0:7]), w[8]), (tuple(w[0:9]), w[10])]


def test_rolling_folds_before_a_split_role() -> None:
    w = weekly(20)
    split = split_cutoffs(w, horizon_days=28, n_valid=1, n_calibration=1, n_test=1)
    folds = rolling_folds(w, split.valid[0], horizon_days=28, n_folds=2)
    gap = 28 * DAY
    last = [c for c in w if c + gap <= split.valid[0]][-1]
    assert folds and folds[-1][1] == last
    assert all(a + gap <= b for (_, a), (_, b) in itertools.pairwise(folds))
    for train, v in folds:
        assert v + gap <= split.valid[0]
        assert max(train) + gap <= v


@pytest.mark.parametrize(
    ("n_folds", "min_train", "expected"),
    [
        # weeks 0..5, H = 2 w, before week 6: validation candidates weeks 2, 3, 4 with
        # 1, 2 and 3 training cutoffs; folds 2 w apart leave weeks 2 and 4.
        (5, 2, [4]),
        (5, 1, [2, 4]),
        (5, 3, [4]),
        (5, 4, []),
        (1, 1, [4]),
        (2, 1, [2, 4]),
        (0, 1, []),
    ],
)
def test_rolling_folds_are_capped(n_folds: int, min_train: int, expected: list[int]) -> None:
    w = weekly(6)
    folds = rolling_folds(w, utc("2024-01-01") + 6 * 7 * DAY, horizon_days=14, n_folds=n_folds,
                          min_train_cutoffs=min_train)
    assert [w.index(v) for _, v in folds] == expected
    for train, v in folds:
        assert train == tuple(c for c in w if c + 14 * DAY <= v)


def test_rolling_folds_default_needs_two_training_cutoffs() -> None:
    w = weekly(6)
    folds = rolling_folds(w, utc("2024-01-01") + 6 * 7 * DAY, horizon_days=14, n_folds=9)
    assert [len(train) for train, _ in folds] == [3]  # week 2 (1 cutoff) is too short


@pytest.mark.parametrize("before_week", [0, 2, 3])
def test_rolling_folds_without_room(before_week: int) -> None:
    w = weekly(6)
    before = utc("2024-01-01") + before_week * 7 * DAY
    assert rolling_folds(w, before, horizon_days=14, n_folds=3) == []


def test_rolling_folds_gap_exactly_h() -> None:
    c = [utc("2024-01-01") + i * 10 * DAY for i in range(4)]
    # validate on c[2] (c[2] + 10 d == c[3]); train on c[0], c[1]
    assert rolling_folds(c, c[3], horizon_days=10, n_folds=1, min_train_cutoffs=1) == [
        ((c[0], c[1]), c[2])]
    # H = 11 d: only c[0] and c[1] can validate, and neither has a cutoff 11 d before it
    assert rolling_folds(c, c[3], horizon_days=11, n_folds=1, min_train_cutoffs=1) == []
    assert rolling_folds(c, c[3] + DAY, horizon_days=11, n_folds=1, min_train_cutoffs=1) == [
        ((c[0],), c[2])]


def test_rolling_folds_sort_their_input() -> None:
    w = weekly(12)
    before = utc("2024-01-01") + 12 * 7 * DAY
    assert rolling_folds(w[::-1], before, horizon_days=14, n_folds=3) == rolling_folds(
        w, before, horizon_days=14, n_folds=3)


@settings(max_examples=200, deadline=None)
@given(
    days=st.lists(st.integers(min_value=0, max_value=300), min_size=0, max_size=12, unique=True),
    horizon=st.integers(min_value=1, max_value=90),
    before_day=st.integers(min_value=0, max_value=400),
    n_folds=st.integers(min_value=0, max_value=5),
    min_train=st.integers(min_value=1, max_value=4),
)
def test_rolling_folds_property(days: list[int], horizon: int, before_day: int, n_folds: int,
                                min_train: int) -> None:
    base = pd.Timestamp("2024-01-01 16:00", tz="UTC")
    cutoffs = [base + pd.Timedelta(days=d) for d in days]
    before = base + pd.Timedelta(days=before_day)
    gap = pd.Timedelta(days=horizon)
    folds = rolling_folds(cutoffs, before, horizon_days=horizon, n_folds=n_folds,
                          min_train_cutoffs=min_train)
    # Brute force: from the latest, every cutoff H before `before` and H before the fold
    # after it, with enough training cutoffs H before it; at most n_folds of them.
    ordered = sorted(cutoffs)
    expected: list[pd.Timestamp] = []
    for v in reversed(ordered):
        if len(expected) == n_folds:
            break
        if v + gap > before or (expected and v + gap > expected[-1]):
            continue
        if sum(c + gap <= v for c in ordered) >= min_train:
            expected.append(v)
    assert [v for _, v in folds] == expected[::-1]
    assert all(a + gap <= b for a, b in itertools.pairwise(expected[::-1]))
    assert len(folds) <= n_folds
    for train, v in folds:
        assert v + gap <= before
        assert len(train) >= min_train
        assert all(c + gap <= v for c in train)
        assert train == tuple(c for c in ordered if c + gap <= v)  # every earlier cutoff


# --- the label horizon from the data ----------------------------------------------------


def _label_tables(delays_days: list[float]) -> dict[str, pd.DataFrame]:
    """One buyer per delay: a request at day 10, then an abuser label `delay` days later."""
    t0 = pd.Timestamp("2024-01-10", tz="UTC")
    n = len(delays_days)
    ids = [f"b{i}" for i in range(n)]
    orders = pd.DataFrame({"order_id": [f"o{i}" for i in range(n)], "buyer_id": ids,
                           "created_at": [t0 - pd.Timedelta(days=2)] * n})
    refunds = pd.DataFrame({"order_id": [f"o{i}" for i in range(n)],
                            "requested_at": [t0] * n})
    labels = pd.DataFrame({"buyer_id": ids, "label": [1] * n,
                           "labeled_at": [t0 + pd.Timedelta(days=d) for d in delays_days]})
    return {"orders": orders, "refunds": refunds, "labels": labels}


def test_label_delays_measure_from_the_last_request_before_the_label() -> None:
    tables = _label_tables([30.0, 45.5])
    # b0 asks again 10 days before its label, and once more after it (ignored).
    extra = pd.DataFrame({"order_id": ["o0", "o0"],
                          "requested_at": [pd.Timestamp("2024-01-30", tz="UTC"),
                                           pd.Timestamp("2024-03-01", tz="UTC")]})
    tables["refunds"] = pd.concat([tables["refunds"], extra], ignore_index=True)
    # A "legitimate" decision (0) is no abuse label and has no delay.
    tables["labels"] = pd.concat([tables["labels"], pd.DataFrame(
        {"buyer_id": ["b1"], "label": [0], "labeled_at": [pd.Timestamp("2024-02-01", tz="UTC")]}
    )], ignore_index=True)
    assert sorted(label_delays(tables)) == pytest.approx([10.0, 45.5])


@pytest.mark.parametrize(
    ("delays", "expected", "source"),
    [([20.0] * 40, 20, "data"), (list(np.linspace(1, 100, 100)), 91, "data"),
     ([3.0] * 40, 14, "data"), ([400.0] * 40, 180, "data"), ([30.0] * 5, 180, "data")],
)
def test_resolve_horizon_from_the_data(delays: list[float], expected: int, source: str) -> None:
    h = resolve_horizon(_label_tables(delays), BaseParams(horizon_days=None))
    assert (h.days, h.source) == (expected, source)
    assert h.n_delays == len(delays)
    assert json.loads(json.dumps(h.to_dict()))["days"] == expected


def test_resolve_horizon_keeps_a_hand_set_value() -> None:
    h = resolve_horizon(_label_tables([20.0] * 40), BaseParams(horizon_days=56))
    assert (h.days, h.source, h.n_delays) == (56, "params", 0)


def test_make_cutoffs_respects_the_history_cap() -> None:
    tables = _tables("2024-01-01 00:00", "2024-12-31 12:00", last_label="2025-02-01 10:00")
    base = BaseParams(timezone=TZ, first_cutoff="2024-01-15", horizon_days=56,
                      min_history_days=30)
    assert make_cutoffs(tables, base)[0] < utc("2024-02-15")  # steps laid back from the last
    capped = make_cutoffs(tables, base, min_history_days=90)
    assert capped[0] >= utc("2024-03-31")
