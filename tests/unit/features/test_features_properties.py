"""Property-based tests of the feature stage on random, contract-valid worlds.

A world is generated as plain records (times as whole minutes after 2024-01-01 00:00 local
time in Asia/Shanghai, amounts in fen), rendered to string tables as a CSV would hold them,
and validated; the generator asserts that nothing is quarantined, so every world is valid.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refundguard.config import FeaturesParams
from refundguard.contract.vocabulary import (
    REFUND_REASONS,
    REFUND_STATUSES,
    REFUND_TYPES,
    SYSTEM_DEFAULT_TEXT,
)
from refundguard.data.validate import validate_tables
from refundguard.features.build import build_snapshots, compute_features
from refundguard.features.catalog import build_catalog
from refundguard.features.events import prepare_events

TZ = "Asia/Shanghai"
CATALOG = build_catalog(FeaturesParams())
ACTIVE_DAYS = 365
BASE = datetime(2024, 1, 1)  # local wall-clock time in TZ (UTC+8 all year, no DST)
DAY_MIN = 24 * 60
SPAN = 181 * DAY_MIN  # 2024-01-01 .. 2024-06-30
TIME_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S+08:00")
SELLERS = ("s1", "s2", "s3", "s4")
DEVICES = ("d1", "d2", "d3", None)
ADDRESSES = ("a1", "a2", "a3", None)
PAYMENTS = ("p1", "p2", "p3", None)
CATEGORIES = ("apparel", "food", "home", "digital", None)
TEXTS = (
    "很好，物流很快",
    "質量很差，不會再買了",
    "great product, works as described",
    "👍👍👍",
    "😡 broken on arrival",
    "",
    None,
    "不赔钱就给差评",
    "不賠錢就給差評",
    "质量太差了，不赔钱就给差评",
    "refund me or I'll leave bad reviews everywhere",
    SYSTEM_DEFAULT_TEXT,
)
REASON_TEXTS = ("没收到货", "broken", "", None, "尺码不对")
INSTANT = ("true", "false", None)

ORDER_COLS = ("order_id", "buyer_id", "seller_id", "created_at", "amount", "category",
              "delivered_at", "device_id", "address_id", "payment_id")
REFUND_COLS = ("refund_id", "order_id", "requested_at", "amount", "type", "reason", "status",
               "resolved_at", "instant", "reason_text")
REVIEW_COLS = ("review_id", "order_id", "created_at", "rating", "text")
LABEL_COLS = ("buyer_id", "label", "labeled_at", "source")
BUYER_COLS = ("buyer_id", "registered_at")

# Each example validates and featurizes a world (about half a second); the default keeps
# the file under a minute. Set REFUNDGUARD_PROPERTY_EXAMPLES for a longer search.
EXAMPLES = int(os.environ.get("REFUNDGUARD_PROPERTY_EXAMPLES", "16"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class World:
    """Records of one random world; times are minutes after BASE (local)."""

    fmt: str
    orders: list[dict[str, Any]] = field(default_factory=list)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    buyers: list[dict[str, Any]] | None = None
    sentiment: dict[str, float] = field(default_factory=dict)

    def buyer_ids(self) -> list[str]:
        ids = {o["buyer_id"] for o in self.orders}
        ids |= {b["buyer_id"] for b in self.buyers or []}
        # render() lists labeled buyers with no order in the buyers table too.
        ids |= {lab["buyer_id"] for lab in self.labels}
        return sorted(ids)

    def times(self) -> list[int]:
        out = [o["created"] for o in self.orders]
        out += [o["delivered"] for o in self.orders if o["delivered"] is not None]
        out += [r["requested"] for r in self.refunds]
        out += [r["resolved"] for r in self.refunds if r["resolved"] is not None]
        out += [v["created"] for v in self.reviews]
        out += [lab["labeled"] for lab in self.labels]
        return out


def _time(minutes: int | None, fmt: str) -> str | None:
    if minutes is None:
        return None
    return (BASE + timedelta(minutes=minutes)).strftime(fmt)


def _money(fen: int) -> str:
    return str(fen // 100) if fen % 100 == 0 else f"{fen // 100}.{fen % 100:02d}"


def cutoff_at(minutes: int) -> pd.Timestamp:
    return pd.Timestamp(BASE + timedelta(minutes=minutes)).tz_localize(TZ)


def render(w: World) -> dict[str, pd.DataFrame | None]:
    """String tables as a CSV reader would return them (missing cells are None)."""
    f = w.fmt
    orders = [
        (o["order_id"], o["buyer_id"], o["seller_id"], _time(o["created"], f),
         _money(o["amount"]), o["category"], _time(o["delivered"], f), o["device_id"],
         o["address_id"], o["payment_id"])
        for o in w.orders
    ]
    refunds = [
        (r["refund_id"], r["order_id"], _time(r["requested"], f), _money(r["amount"]), r["type"],
         r["reason"], r["status"], _time(r["resolved"], f), r["instant"], r["reason_text"])
        for r in w.refunds
    ]
    reviews = [
        (v["review_id"], v["order_id"], _time(v["created"], f),
         None if v["rating"] is None else str(v["rating"]), v["text"])
        for v in w.reviews
    ]
    labels = [
        (lab["buyer_id"], str(lab["label"]), _time(lab["labeled"], f), lab["source"])
        for lab in w.labels
    ]
    raw: dict[str, pd.DataFrame | None] = {
        "orders": pd.DataFrame(orders, columns=list(ORDER_COLS), dtype=object),
        "refunds": pd.DataFrame(refunds, columns=list(REFUND_COLS), dtype=object),
        "reviews": pd.DataFrame(reviews, columns=list(REVIEW_COLS), dtype=object),
        "labels": pd.DataFrame(labels, columns=list(LABEL_COLS), dtype=object),
        "buyers": None,
    }
    # validate quarantines a label for a buyer in no order and not in the buyers table;
    # such buyers are listed, with no registration time, as a platform's register would.
    listed = {o["buyer_id"] for o in w.orders} | {b["buyer_id"] for b in w.buyers or []}
    unlisted = sorted({lab["buyer_id"] for lab in w.labels} - listed)
    if w.buyers is not None or unlisted:
        raw["buyers"] = pd.DataFrame(
            [(b["buyer_id"], _time(b["registered"], f)) for b in w.buyers or []]
            + [(b, None) for b in unlisted],
            columns=list(BUYER_COLS), dtype=object,
        )
    return raw


def validated(w: World) -> dict[str, pd.DataFrame]:
    result = validate_tables(render(w), timezone=TZ, max_text_chars=200)
    assert result.quarantine.empty, result.quarantine.to_dict(orient="records")
    return result.tables


def sentiment_frame(w: World) -> pd.DataFrame:
    return pd.DataFrame(
        {"review_id": list(w.sentiment), "sentiment": list(w.sentiment.values())}
    ).astype({"review_id": "str", "sentiment": "float64"})


def events_of(tables: dict[str, pd.DataFrame], sentiment: pd.DataFrame) -> Any:
    return prepare_events(tables["orders"], tables["refunds"], tables["reviews"],
                          tables["buyers"], sentiment, labels=tables["labels"], timezone=TZ)


# --- strategies ---------------------------------------------------------------------------

def _order(draw: st.DrawFn, order_id: str, buyer_id: str, lo: int, hi: int) -> dict[str, Any]:
    created = draw(st.integers(lo, hi))
    delivered = draw(st.one_of(st.none(), st.integers(created, created + 15 * DAY_MIN)))
    return {
        "order_id": order_id,
        "buyer_id": buyer_id,
        "seller_id": draw(st.sampled_from(SELLERS)),
        "created": created,
        "amount": draw(st.one_of(st.just(0), st.integers(0, 50_000), st.integers(0, 2_000_000))),
        "category": draw(st.sampled_from(CATEGORIES)),
        "delivered": delivered,
        "device_id": draw(st.sampled_from(DEVICES)),
        "address_id": draw(st.sampled_from(ADDRESSES)),
        "payment_id": draw(st.sampled_from(PAYMENTS)),
    }


def _refund(draw: st.DrawFn, refund_id: str, order: dict[str, Any], lo: int) -> dict[str, Any]:
    start = max(lo, order["created"])
    # Often soon after delivery, to reach the fast / 1-hour / window-end shares.
    anchor = order["delivered"] if order["delivered"] is not None else order["created"]
    requested = draw(st.one_of(
        st.integers(start, start + 40 * DAY_MIN),
        st.integers(max(start, anchor), max(start, anchor) + 8 * DAY_MIN),
    ))
    return {
        "refund_id": refund_id,
        "order_id": order["order_id"],
        "requested": requested,
        "amount": draw(st.one_of(st.just(order["amount"]), st.integers(0, order["amount"]))),
        "type": draw(st.sampled_from(REFUND_TYPES)),
        "reason": draw(st.sampled_from(REFUND_REASONS)),
        "status": draw(st.sampled_from(REFUND_STATUSES)),
        "resolved": draw(st.one_of(st.none(),
                                   st.integers(requested, requested + 20 * DAY_MIN))),
        "instant": draw(st.sampled_from(INSTANT)),
        "reason_text": draw(st.sampled_from(REASON_TEXTS)),
    }


def _review(draw: st.DrawFn, review_id: str, order: dict[str, Any], lo: int) -> dict[str, Any]:
    start = max(lo, order["created"])
    return {
        "review_id": review_id,
        "order_id": order["order_id"],
        "created": draw(st.integers(start, start + 30 * DAY_MIN)),
        "rating": draw(st.one_of(st.none(), st.integers(1, 5))),
        "text": draw(st.sampled_from(TEXTS)),
    }


def _label(draw: st.DrawFn, buyer_id: str, lo: int, hi: int) -> dict[str, Any]:
    return {
        "buyer_id": buyer_id,
        "label": draw(st.sampled_from((0, 1))),
        "labeled": draw(st.integers(lo, hi)),
        "source": draw(st.sampled_from(("platform_ruling", "manual_review", None))),
    }


@st.composite
def worlds(draw: st.DrawFn) -> World:
    w = World(fmt=draw(st.sampled_from(TIME_FORMATS)))
    buyers = [f"b{i}" for i in range(draw(st.integers(1, 6)))]
    for i in range(draw(st.integers(0, 25))):
        w.orders.append(_order(draw, f"o{i}", draw(st.sampled_from(buyers)), 0, SPAN))
    if w.orders:
        for i in range(draw(st.integers(0, 15))):
            w.refunds.append(_refund(draw, f"r{i}", draw(st.sampled_from(w.orders)), 0))
        for i in range(draw(st.integers(0, 15))):
            w.reviews.append(_review(draw, f"v{i}", draw(st.sampled_from(w.orders)), 0))
    for _ in range(draw(st.integers(0, 6))):
        # Coarse times (whole days) so that decisions at the same instant happen too.
        lab = _label(draw, draw(st.sampled_from(buyers)), 0, SPAN + 60 * DAY_MIN)
        if draw(st.booleans()):
            lab["labeled"] -= lab["labeled"] % DAY_MIN
        w.labels.append(lab)
    if draw(st.booleans()):
        listed = draw(st.lists(st.sampled_from(buyers), unique=True, max_size=len(buyers)))
        w.buyers = [
            {"buyer_id": b,
             "registered": draw(st.one_of(st.none(), st.integers(-400 * DAY_MIN, SPAN)))}
            for b in listed
        ]
    for v in w.reviews:
        if draw(st.booleans()):
            w.sentiment[v["review_id"]] = draw(st.floats(0.0, 1.0))
    return w


@st.composite
def worlds_and_cutoffs(draw: st.DrawFn) -> tuple[World, int]:
    w = draw(worlds())
    # A cutoff exactly at an event or label time, or exactly a window length after an event,
    # probes the strict "before T" boundary and the inclusive start of [T - w, T). Pipeline
    # cutoffs are local midnights.
    times = w.times()
    label_times = [lab["labeled"] for lab in w.labels]
    kind = draw(st.sampled_from(("random", "midnight", "event", "label")))
    if kind == "event" and times:
        shift = draw(st.sampled_from((0, 0, 30, 90, ACTIVE_DAYS)))
        return w, draw(st.sampled_from(times)) + shift * DAY_MIN
    if kind == "label" and label_times:
        return w, draw(st.sampled_from(label_times))
    if kind == "midnight":
        return w, draw(st.integers(-7, 211)) * DAY_MIN
    return w, draw(st.integers(-7 * DAY_MIN, SPAN + 30 * DAY_MIN))


@st.composite
def later_worlds(draw: st.DrawFn, w: World, t: int) -> World:
    """The world plus events, outcomes, deliveries and labels all at or after minute t."""
    w = copy.deepcopy(w)
    hi = t + 90 * DAY_MIN
    known = w.buyer_ids()
    pool = [*known, "n1", "n2"] if known else ["n1", "n2"]
    for i in range(draw(st.integers(0, 6))):
        w.orders.append(_order(draw, f"x{i}", draw(st.sampled_from(pool)), t, hi))
    # Parcels that arrive at or after T: delivery unknown at T.
    for o in w.orders:
        if (o["delivered"] is None or o["delivered"] >= t) and draw(st.booleans()):
            o["delivered"] = draw(st.integers(max(t, o["created"]),
                                              max(t, o["created"]) + 10 * DAY_MIN))
    # Outcomes decided at or after T (a final outcome known before T never changes).
    for r in w.refunds:
        if (r["resolved"] is None or r["resolved"] >= t) and draw(st.booleans()):
            r["status"] = draw(st.sampled_from(REFUND_STATUSES))
            start = max(t, r["requested"])
            r["resolved"] = draw(st.integers(start, start + 10 * DAY_MIN))
    if w.orders:
        for i in range(draw(st.integers(0, 5))):
            w.refunds.append(_refund(draw, f"xr{i}", draw(st.sampled_from(w.orders)), t))
        for i in range(draw(st.integers(0, 5))):
            w.reviews.append(_review(draw, f"xv{i}", draw(st.sampled_from(w.orders)), t))
    for v in w.reviews:
        if v["review_id"].startswith("xv") and draw(st.booleans()):
            w.sentiment[v["review_id"]] = draw(st.floats(0.0, 1.0))
    for _ in range(draw(st.integers(0, 4))):
        w.labels.append(_label(draw, draw(st.sampled_from(pool)), t, hi))
    # Accounts whose opening the register only learns of later.
    if draw(st.booleans()):
        listed = {b["buyer_id"] for b in w.buyers or []}
        w.buyers = [*(w.buyers or []),
                    *({"buyer_id": b, "registered": draw(st.integers(t, hi))}
                      for b in [*known, "n3"] if b not in listed)]
    return w


# --- properties ---------------------------------------------------------------------------

def _features_at(w: World, t: int, buyer_ids: Sequence[str] | None = None) -> pd.DataFrame:
    tables = validated(w)
    events = events_of(tables, sentiment_frame(w))
    return compute_features(events, cutoff_at(t), CATALOG, buyer_ids=buyer_ids)


@SETTINGS
@given(worlds_and_cutoffs())
def test_no_missing_or_infinite_values_unless_nullable(case: tuple[World, int]) -> None:
    w, t = case
    feats = _features_at(w, t)
    assert sorted(feats["buyer_id"]) == w.buyer_ids()
    for f in CATALOG:
        values = feats[f.name].to_numpy(dtype="float64")
        assert not np.isinf(values).any(), (f.name, feats.loc[np.isinf(values), "buyer_id"])
        if not f.nullable:
            bad = np.isnan(values)
            assert not bad.any(), (f.name, list(feats.loc[bad, "buyer_id"]))


# Inclusive bounds per unit; None means unbounded on that side.
UNIT_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "share": (0.0, 1.0),
    "count": (0.0, None),
    "days": (0.0, None),
    "hours": (0.0, None),
    "cny": (0.0, None),
    "stars": (1.0, 5.0),
    "score": (0.0, 1.0),
    "ratio": (0.0, None),
}


@SETTINGS
@given(worlds_and_cutoffs())
def test_values_are_within_their_units_range(case: tuple[World, int]) -> None:
    w, t = case
    feats = _features_at(w, t)
    for f in CATALOG:
        lo, hi = UNIT_BOUNDS[f.unit]
        values = feats[f.name].to_numpy(dtype="float64")
        present = ~np.isnan(values)
        bad = np.zeros(len(values), dtype=bool)
        if lo is not None:
            bad |= present & (values < lo)
        if hi is not None:
            bad |= present & (values > hi)
        assert not bad.any(), (
            f"{f.name} ({f.unit}) outside [{lo}, {hi}]",
            dict(zip(feats.loc[bad, "buyer_id"], values[bad], strict=True)),
        )


@SETTINGS
@given(worlds_and_cutoffs(), st.data())
def test_later_events_do_not_change_features(case: tuple[World, int], data: st.DataObject
                                             ) -> None:
    w, t = case
    original = w.buyer_ids()
    later = data.draw(later_worlds(w, t), label="later")
    before = _features_at(w, t, original).sort_values("buyer_id", ignore_index=True)
    after = _features_at(later, t, original).sort_values("buyer_id", ignore_index=True)
    pd.testing.assert_frame_equal(before, after, check_exact=True)


def _expected_targets(w: World, t: int, horizon_days: int) -> tuple[set[str], set[str], set[str]]:
    """Active buyers, labeled abusers in [T, T + H), and known abusers at T, by hand."""
    active = {o["buyer_id"] for o in w.orders if t - ACTIVE_DAYS * DAY_MIN <= o["created"] < t}
    end = t + horizon_days * DAY_MIN
    positives = {lab["buyer_id"] for lab in w.labels
                 if lab["label"] == 1 and t <= lab["labeled"] < end}
    known: set[str] = set()
    for b in {lab["buyer_id"] for lab in w.labels}:
        before = [lab for lab in w.labels if lab["buyer_id"] == b and lab["labeled"] < t]
        if before:
            latest = max(lab["labeled"] for lab in before)
            # At a tie the abuser decision wins (the stage sorts by time, then label).
            if any(lab["label"] == 1 for lab in before if lab["labeled"] == latest):
                known.add(b)
    return active, positives, known


@SETTINGS
@given(worlds_and_cutoffs(), st.integers(1, 120), st.data())
def test_snapshot_targets_follow_the_labels(case: tuple[World, int], horizon: int,
                                            data: st.DataObject) -> None:
    w, t = case
    # An abuser decision exactly at T is inside the horizon; one exactly at T + H is not.
    ordering = {o["buyer_id"] for o in w.orders}
    abuser_times = [lab["labeled"] for lab in w.labels
                    if lab["label"] == 1 and lab["buyer_id"] in ordering]
    where = data.draw(st.sampled_from(("as drawn", "at T", "at T + H")), label="label at")
    if abuser_times and where != "as drawn":
        t = data.draw(st.sampled_from(abuser_times), label="decision")
        t -= horizon * DAY_MIN if where == "at T + H" else 0
    tables = validated(w)
    events = events_of(tables, sentiment_frame(w))
    rows = build_snapshots(events, tables["labels"], [cutoff_at(t)], CATALOG,
                           horizon_days=horizon, active_days=ACTIVE_DAYS)
    active, positives, known = _expected_targets(w, t, horizon)
    assert set(rows["buyer_id"]) == active - known
    assert rows["buyer_id"].is_unique
    got = dict(zip(rows["buyer_id"], rows["target"].astype(int), strict=True))
    assert got == {b: int(b in positives) for b in active - known}


@SETTINGS
@given(worlds_and_cutoffs(), st.integers(1, 120))
def test_inputs_are_never_modified(case: tuple[World, int], horizon: int) -> None:
    w, t = case
    raw = render(w)
    raw_copy = {k: None if v is None else v.copy(deep=True) for k, v in raw.items()}
    result = validate_tables(raw, timezone=TZ, max_text_chars=200)
    assert result.quarantine.empty
    for k, v in raw.items():
        if v is not None:
            pd.testing.assert_frame_equal(v, raw_copy[k])  # type: ignore[arg-type]
    tables = result.tables
    sentiment = sentiment_frame(w)
    copies = {k: v.copy(deep=True) for k, v in tables.items()}
    sentiment_copy = sentiment.copy(deep=True)
    events = events_of(tables, sentiment)
    compute_features(events, cutoff_at(t), CATALOG, buyer_ids=w.buyer_ids())
    build_snapshots(events, tables["labels"], [cutoff_at(t)], CATALOG, horizon_days=horizon,
                    active_days=ACTIVE_DAYS)
    for k, v in tables.items():
        pd.testing.assert_frame_equal(v, copies[k], check_exact=True)
    pd.testing.assert_frame_equal(sentiment, sentiment_copy, check_exact=True)
