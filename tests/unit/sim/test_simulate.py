"""The marketplace simulator: determinism, the data contract, and segment behaviour."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import opencc
import pandas as pd
import pytest

from refundguard.config import SimulateParams
from refundguard.contract.vocabulary import (
    ABUSER_SEGMENTS,
    HONEST_SEGMENT,
    LABEL_SOURCES,
    LOOKALIKE_SEGMENTS,
    MERCHANT_REPORT,
    REFUND_REASONS,
    REFUND_STATUSES,
    REFUND_TYPES,
    RULING_SOURCES,
    SEGMENTS,
)
from refundguard.errors import ConfigError
from refundguard.sim.simulate import (
    CATEGORIES,
    World,
    export_as_of,
    simulate_world,
)

COLUMNS = {
    "orders": [
        "order_id", "buyer_id", "seller_id", "created_at", "amount", "category",
        "shipped_at", "delivered_at", "device_id", "address_id", "payment_id",
    ],
    "refunds": [
        "refund_id", "order_id", "requested_at", "amount", "type", "reason", "status",
        "resolved_at", "instant", "reason_text",
    ],
    "reviews": ["review_id", "order_id", "created_at", "rating", "text"],
    "labels": ["buyer_id", "label", "labeled_at", "source"],
    "buyers": ["buyer_id", "registered_at"],
    "truth": ["buyer_id", "segment", "is_abuser", "group_id", "abuse_start"],
}  # fmt: skip
TIME_COLUMNS = {
    "orders": ["created_at", "shipped_at", "delivered_at"],
    "refunds": ["requested_at", "resolved_at"],
    "reviews": ["created_at"],
    "labels": ["labeled_at"],
    "buyers": ["registered_at"],
    "truth": ["abuse_start"],
}
STR_COLUMNS = {
    "orders": ["order_id", "buyer_id", "seller_id", "category", "device_id", "address_id",
               "payment_id"],
    "refunds": ["refund_id", "order_id", "type", "reason", "status", "reason_text"],
    "reviews": ["review_id", "order_id", "text"],
    "labels": ["buyer_id", "source"],
    "buyers": ["buyer_id"],
    "truth": ["buyer_id", "segment", "group_id"],
}  # fmt: skip
THREAT = re.compile(
    "不赔钱|不给补偿|天天差评|全网差评|找媒体曝光|不然差评|追评曝光|投诉到平台|每个链接|"
    "看谁耗得起|市场监管局|bad reviews everywhere|report you|1-star reviews on every|"
    "complain to 12315|keep leaving bad"
)
EMOJI = re.compile("[\U0001f300-\U0001faff\u2764]")
ENGLISH = re.compile("[A-Za-z]{4,}")
SMALL = SimulateParams(n_buyers=2000, days=365, start="2024-03-01")


def world_for(**changes: object) -> World:
    return simulate_world(dataclasses.replace(SMALL, **changes), seed=11)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def world() -> World:
    return simulate_world(SMALL, seed=7)


@pytest.fixture(scope="module")
def joined(world: World) -> dict[str, pd.DataFrame]:
    """Refunds and reviews with their order's buyer, segment and times."""
    segment = world.truth.set_index("buyer_id").segment
    orders = world.orders.assign(segment=world.orders.buyer_id.map(segment))
    keep = ["order_id", "buyer_id", "segment", "seller_id", "delivered_at"]
    refunds = world.refunds.merge(orders[[*keep, "created_at"]], on="order_id",
                                  suffixes=("", "_order"))  # fmt: skip
    reviews = world.reviews.merge(orders[keep], on="order_id")
    refunds["after_delivery"] = refunds.requested_at - refunds.delivered_at
    return {"orders": orders, "refunds": refunds, "reviews": reviews}


def assert_contract(w: World, params: SimulateParams) -> None:
    """Every promise of the data contract that a single world can break."""
    start = pd.Timestamp(params.start)
    end = start + pd.Timedelta(days=params.days)
    for name, columns in COLUMNS.items():
        frame = getattr(w, name)
        assert list(frame.columns) == columns, name
        for col in TIME_COLUMNS[name]:
            assert pd.api.types.is_datetime64_dtype(frame[col]), (name, col)
            assert getattr(frame[col].dtype, "tz", None) is None, (name, col)
        for col in STR_COLUMNS[name]:
            assert frame[col].dtype == "str", (name, col)
    o, r, v, lb, b, t = w.orders, w.refunds, w.reviews, w.labels, w.buyers, w.truth

    # Ids and references.
    assert o.order_id.is_unique and r.refund_id.is_unique and v.review_id.is_unique
    assert b.buyer_id.is_unique and t.buyer_id.is_unique
    assert set(b.buyer_id) == set(t.buyer_id)
    assert len(b) == params.n_buyers
    assert set(o.buyer_id) <= set(b.buyer_id)
    assert set(lb.buyer_id) <= set(b.buyer_id)
    assert r.order_id.isin(o.order_id).all() and v.order_id.isin(o.order_id).all()
    for col in ("order_id", "buyer_id", "seller_id", "device_id", "address_id", "payment_id"):
        assert o[col].notna().all(), col

    # Orders.
    assert o.amount.dtype == np.float64 and (o.amount >= 0).all()
    assert o.category.isin(CATEGORIES).all()
    assert o.created_at.between(start, end, inclusive="left").all()
    for col in ("shipped_at", "delivered_at"):
        assert o[col].dropna().between(start, end, inclusive="left").all()
    assert (o.shipped_at.dropna() >= o.created_at[o.shipped_at.notna()]).all()
    both = o.delivered_at.notna()
    assert o.shipped_at[both].notna().all()
    assert (o.delivered_at[both] >= o.shipped_at[both]).all()
    first_order = o.groupby("buyer_id").created_at.min()
    registered = b.set_index("buyer_id").registered_at
    assert (registered[first_order.index] <= first_order).all()

    # After-sales requests.
    order_side = o[["order_id", "created_at", "delivered_at", "amount"]].rename(
        columns=lambda c: c if c == "order_id" else f"{c}_o"
    )
    ro = r.merge(order_side, on="order_id")
    assert (ro.requested_at >= ro.created_at_o).all()
    assert ((ro.amount >= 0) & (ro.amount <= ro.amount_o)).all()
    assert r.requested_at.between(start, end, inclusive="left").all()
    assert r.type.isin(REFUND_TYPES).all() and r.reason.isin(REFUND_REASONS).all()
    assert r.status.isin(REFUND_STATUSES).all()
    assert (r.resolved_at.isna() == (r.status == "pending")).all()
    resolved = r.resolved_at.notna()
    assert (r.resolved_at[resolved] > r.requested_at[resolved]).all()
    assert (r.resolved_at[resolved] < end).all()
    assert r.instant.dtype == bool
    assert (r.status[r.instant] == "approved").all()

    # Reviews: after delivery, or after the order when it never arrived.
    vo = v.merge(order_side, on="order_id")
    floor = vo.delivered_at_o.fillna(vo.created_at_o)
    assert (vo.created_at > floor).all()
    assert v.created_at.between(start, end, inclusive="left").all()
    assert pd.api.types.is_integer_dtype(v.rating) and v.rating.between(1, 5).all()
    assert v.text.notna().all()

    # Labels: as the platform has them, so never from the future.
    assert pd.api.types.is_integer_dtype(lb.label) and lb.label.isin([0, 1]).all()
    assert lb.source.isin(LABEL_SOURCES).all()
    assert lb.labeled_at.between(start, end, inclusive="left").all()

    # Truth: abuse may have started in the history before the export.
    assert t.segment.isin(SEGMENTS).all()
    assert (t.is_abuser == t.segment.isin(ABUSER_SEGMENTS)).all()
    assert (t.abuse_start.notna() == t.is_abuser).all()
    first_day = start - pd.Timedelta(days=params.history_before_days)
    assert t.abuse_start.dropna().between(first_day, end, inclusive="left").all()


# ---------------------------------------------------------------------------------------
# Determinism and the contract
# ---------------------------------------------------------------------------------------


def test_same_seed_gives_identical_frames(world: World) -> None:
    again = simulate_world(SMALL, seed=7)
    for name in COLUMNS:
        pd.testing.assert_frame_equal(getattr(world, name), getattr(again, name))


def test_different_seed_gives_a_different_world(world: World) -> None:
    other = simulate_world(SMALL, seed=8)
    assert not world.orders.equals(other.orders)
    assert not world.reviews.text.equals(other.reviews.text)


def test_world_honours_the_contract(world: World) -> None:
    assert_contract(world, SMALL)


def test_column_dtypes(world: World) -> None:
    assert world.orders.amount.dtype == np.float64
    assert world.refunds.amount.dtype == np.float64
    assert world.reviews.rating.dtype == np.int64
    assert world.labels.label.dtype == np.int64
    assert world.truth.is_abuser.dtype == bool


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"n_buyers": 1}, id="one-buyer"),
        pytest.param({"n_buyers": 50}, id="fifty-buyers"),
        pytest.param({"n_buyers": 300, "segment_shares": {}}, id="no-segments"),
        pytest.param(
            {"n_buyers": 300, "segment_shares": dict.fromkeys(SEGMENTS[1:], 0.0)},
            id="all-shares-zero",
        ),
        pytest.param(
            {"n_buyers": 300, "segment_shares": {"ring_member": 0.6, "household": 0.3}},
            id="mostly-rings",
        ),
        pytest.param({"n_buyers": 300, "days": 1}, id="one-day"),
        pytest.param({"n_buyers": 300, "days": 30, "start": "2023-11-01"}, id="double-11"),
        pytest.param(
            {"n_buyers": 300, "label_coverage": 1.0, "label_delay_days": (0, 0)},
            id="instant-labels",
        ),
        pytest.param({"n_buyers": 300, "english_share": 1.0, "emoji_share": 1.0}, id="all-english"),
    ],
)
def test_edge_worlds_honour_the_contract(changes: dict[str, object]) -> None:
    params = dataclasses.replace(SMALL, **changes)  # type: ignore[arg-type]
    w = simulate_world(params, seed=3)
    assert_contract(w, params)
    assert len(w.orders) >= params.n_buyers  # everyone orders at least once


def test_no_segments_means_no_abusers() -> None:
    w = world_for(n_buyers=300, segment_shares={})
    assert (w.truth.segment == HONEST_SEGMENT).all()
    assert not w.truth.is_abuser.any()
    assert w.truth.group_id.isna().all()
    assert (w.labels.label == 0).all()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_buyers": 0}, "n_buyers"),
        ({"days": 0}, "days"),
        ({"segment_shares": {"fraudster": 0.1}}, "unknown segment"),
        ({"segment_shares": {"wardrober": 0.7, "household": 0.4}}, "add up"),
        ({"segment_shares": {"wardrober": -0.1}}, "segment_shares"),
        ({"label_coverage": 1.5}, "label_coverage"),
        ({"label_delay_days": (10, 5)}, "label_delay_days"),
        ({"history_before_days": -1}, "history_before_days"),
        ({"dormant_share": 1.5}, "dormant_share"),
        ({"dormant_days": (200, 100)}, "dormant_days"),
        ({"close_on_label_share": -0.1}, "close_on_label_share"),
        ({"office_share": 0.9}, "office_share"),
        ({"office_device_share": 2.0}, "office_device_share"),
        ({"spring_festival_dip": 1.2}, "spring_festival_dip"),
        ({"growth_per_year": -0.2}, "growth_per_year"),
        ({"growth_per_year": float("nan")}, "growth_per_year"),
    ],
)
def test_bad_parameters_are_config_errors(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        simulate_world(dataclasses.replace(SMALL, **changes), seed=1)  # type: ignore[arg-type]


def test_segment_counts_follow_shares(world: World) -> None:
    counts = world.truth.segment.value_counts()
    for name, share in SMALL.segment_shares.items():
        assert counts.get(name, 0) == round(share * SMALL.n_buyers)


def test_buyer_ids_do_not_reveal_segments(world: World) -> None:
    position = np.arange(len(world.truth)) / len(world.truth)  # truth is in buyer id order
    assert 0.4 < position[world.truth.is_abuser.to_numpy()].mean() < 0.6


def test_some_accounts_predate_the_period(world: World) -> None:
    before = world.buyers.registered_at < pd.Timestamp(SMALL.start)
    assert 0.4 < before.mean() < 0.9


# ---------------------------------------------------------------------------------------
# Honest buyers and their look-alikes
# ---------------------------------------------------------------------------------------


def refund_rate(joined: dict[str, pd.DataFrame], segment: str) -> float:
    orders = joined["orders"]
    n_orders = (orders.segment == segment).sum()
    return float((joined["refunds"].segment == segment).sum() / n_orders)


def test_honest_buyers_refund_a_few_percent(joined: dict[str, pd.DataFrame]) -> None:
    assert 0.03 <= refund_rate(joined, HONEST_SEGMENT) <= 0.09
    honest = joined["refunds"][joined["refunds"].segment == HONEST_SEGMENT]
    assert honest.type.isin(["return_refund", "exchange"]).mean() > 0.4
    assert (honest.status == "approved").mean() > 0.75


def test_honest_order_volume_varies(joined: dict[str, pd.DataFrame]) -> None:
    orders = joined["orders"]
    per_buyer = orders[orders.segment == HONEST_SEGMENT].groupby("buyer_id").size()
    assert per_buyer.quantile(0.1) <= 3 and per_buyer.quantile(0.9) >= 12


def test_lookalikes_refund_as_often_as_abusers(joined: dict[str, pd.DataFrame]) -> None:
    # The reason look-alikes exist: refund rate alone cannot tell them apart.
    assert refund_rate(joined, "size_bracketer") > refund_rate(joined, "refund_only_claimer")
    assert refund_rate(joined, "logistics_victim") > refund_rate(joined, "wardrober")


def test_size_bracketers_buy_several_sizes_and_return_them(
    joined: dict[str, pd.DataFrame],
) -> None:
    refunds = joined["refunds"][joined["refunds"].segment == "size_bracketer"]
    bracket = (refunds.type == "return_refund") & (refunds.reason == "size_fit")
    assert bracket.mean() > 0.6
    days = refunds.after_delivery[bracket].dt.total_seconds() / 86400
    assert days.between(1, 5).mean() > 0.9
    orders = joined["orders"][joined["orders"].segment == "size_bracketer"]
    same = orders.groupby(["buyer_id", "seller_id", orders.created_at.dt.date]).size()
    assert (same >= 2).sum() > 0.3 * orders.buyer_id.nunique()
    assert orders.category.isin(["apparel", "shoes"]).mean() > 0.6


def test_logistics_victims_lose_parcels_and_claim_genuinely(
    joined: dict[str, pd.DataFrame],
) -> None:
    orders = joined["orders"]
    undelivered = orders.delivered_at.isna().groupby(orders.segment).mean()
    assert undelivered["logistics_victim"] > 3 * undelivered["honest"]
    refunds = joined["refunds"]
    claims = refunds[
        (refunds.segment == "logistics_victim") & refunds.reason.isin(["not_received", "logistics"])
    ]
    assert len(claims) > 0.5 * (refunds.segment == "logistics_victim").sum()
    assert (claims.status == "approved").mean() > 0.7
    # Genuine claims come days after the parcel was due, not minutes after delivery.
    late = claims.requested_at - claims.created_at
    assert (late > pd.Timedelta(days=5)).mean() > 0.7


def test_picky_reviewers_complain_without_demands(joined: dict[str, pd.DataFrame]) -> None:
    reviews = joined["reviews"]
    low = (reviews.rating <= 2).groupby(reviews.segment).mean()
    assert low["picky_reviewer"] > 0.35 and low["honest"] < 0.1
    picky = reviews[reviews.segment == "picky_reviewer"]
    assert not picky.text.str.contains(THREAT).any()
    assert refund_rate(joined, "picky_reviewer") < refund_rate(joined, HONEST_SEGMENT)


def test_households_share_an_address(world: World) -> None:
    members = world.truth[world.truth.segment == "household"]
    assert members.group_id.str.startswith("H").all()
    orders = world.orders.merge(members[["buyer_id", "group_id"]], on="buyer_id")
    for _, group in orders.groupby("group_id"):
        if group.buyer_id.nunique() < 2:
            continue
        per_address = group.groupby("address_id").buyer_id.nunique()
        assert per_address.max() == group.buyer_id.nunique()


def test_parcel_lockers_are_shared_by_many_honest_buyers(world: World) -> None:
    per_address = world.orders.groupby("address_id").buyer_id.nunique()
    lockers = per_address[per_address >= 50].index
    assert len(lockers) >= 1
    users = world.orders[world.orders.address_id.isin(lockers)].buyer_id.unique()
    truth = world.truth.set_index("buyer_id").loc[users]
    assert (truth.segment != "ring_member").all()
    assert truth.group_id.nunique() < 0.2 * len(users)  # unrelated people


def test_devices_and_cards_are_mostly_personal(world: World) -> None:
    for col in ("device_id", "payment_id"):
        per_id = world.orders.groupby(col).buyer_id.nunique()
        assert (per_id == 1).mean() > 0.95
    devices = world.orders.groupby("buyer_id").device_id.nunique()
    assert devices.between(1, 6).all() and (devices > 1).any()


# ---------------------------------------------------------------------------------------
# Abusers
# ---------------------------------------------------------------------------------------


def test_refund_only_claimers_claim_within_hours_of_delivery(
    joined: dict[str, pd.DataFrame], world: World
) -> None:
    refunds = joined["refunds"]
    start = world.truth.set_index("buyer_id").abuse_start
    claims = refunds[
        (refunds.segment == "refund_only_claimer")
        & (refunds.type == "refund_only")
        & refunds.reason.isin(["not_received", "damaged", "missing_parts"])
        & (refunds.created_at >= refunds.buyer_id.map(start))
    ]
    assert len(claims) >= 20
    fast = claims.after_delivery < pd.Timedelta(hours=24)  # negative: before delivery
    assert fast.mean() > 0.7
    assert (claims.after_delivery < pd.Timedelta(0)).any()
    assert claims.instant.mean() > 0.3
    # Across many shops, and for pricier goods than honest buyers return.
    spread = claims.groupby("buyer_id").seller_id.agg(lambda s: s.nunique() / len(s))
    assert spread.mean() > 0.7
    amounts = joined["orders"].set_index("order_id").amount
    honest = refunds[refunds.segment == HONEST_SEGMENT]
    assert claims.order_id.map(amounts).median() > 1.2 * honest.order_id.map(amounts).median()


def test_abusers_behave_honestly_before_abuse_start(
    joined: dict[str, pd.DataFrame], world: World
) -> None:
    start = world.truth.set_index("buyer_id").abuse_start
    orders = joined["orders"]
    abusers = orders[orders.segment.isin(["refund_only_claimer", "wardrober"])]
    turned = abusers.created_at >= abusers.buyer_id.map(start)
    refunded = abusers.order_id.isin(joined["refunds"].order_id)
    before, after = refunded[~turned].mean(), refunded[turned].mean()
    assert before < 0.12
    assert after > 2.5 * before


def test_extortion_reviews_threaten_then_ask_for_compensation(
    joined: dict[str, pd.DataFrame],
) -> None:
    reviews = joined["reviews"]
    threats = reviews[reviews.text.str.contains(THREAT)]
    assert len(threats) >= 20
    assert (threats.segment == "extortion_reviewer").all()
    assert (threats.rating <= 2).all() and (threats.rating == 1).mean() > 0.8
    refunds = joined["refunds"]
    follow = threats.merge(
        refunds[["order_id", "requested_at", "type", "amount"]], on="order_id", how="left"
    )
    asked = follow[(follow.type == "compensation") & (follow.requested_at > follow.created_at)]
    assert len(asked) > 0.6 * len(threats)
    assert ((asked.requested_at - asked.created_at) < pd.Timedelta(days=2)).all()
    order_amount = asked.order_id.map(joined["orders"].set_index("order_id").amount)
    paid = order_amount > 0  # a few orders are free gifts
    share = asked.amount[paid] / order_amount[paid]
    assert share.between(0.099, 0.501).all()


def test_some_threats_are_in_english() -> None:
    w = world_for(english_share=0.5)
    threats = w.reviews.text[w.reviews.text.str.contains(THREAT)]
    english = threats.str.contains(ENGLISH)
    assert 0.3 < english.mean() < 0.7


def test_wardrobers_return_on_the_last_days_of_the_window(
    joined: dict[str, pd.DataFrame],
) -> None:
    refunds = joined["refunds"]
    returns = refunds[(refunds.segment == "wardrober") & (refunds.type == "return_refund")]
    assert len(returns) >= 20
    days = returns.after_delivery.dt.total_seconds() / 86400
    assert days.between(5, 7).mean() > 0.6
    assert returns.reason.isin(["changed_mind", "quality", "not_as_described"]).mean() > 0.8
    honest = refunds[(refunds.segment == HONEST_SEGMENT) & (refunds.type == "return_refund")]
    honest_days = honest.after_delivery.dt.total_seconds() / 86400
    assert honest_days.between(5, 7).mean() < 0.3


def test_ring_members_share_ids_and_strike_together(world: World) -> None:
    members = world.truth[world.truth.segment == "ring_member"]
    assert members.group_id.str.startswith("G").all()
    orders = world.orders.merge(members[["buyer_id", "group_id"]], on="buyer_id")
    for _, ring in orders.groupby("group_id"):
        buyers = ring.buyer_id.unique()
        if len(buyers) < 2:
            continue
        for buyer in buyers:
            mine, others = ring[ring.buyer_id == buyer], ring[ring.buyer_id != buyer]
            assert any(
                mine[col].isin(others[col]).any()
                for col in ("device_id", "address_id", "payment_id")
            )
        # Coordinated: several members order from one shop within two days.
        window = ring.groupby(["seller_id", ring.created_at.dt.floor("2D")]).buyer_id.nunique()
        assert window.max() >= 2
    registered = world.buyers.set_index("buyer_id").registered_at[members.buyer_id]
    recent = members.set_index("buyer_id").abuse_start - registered
    assert (recent <= pd.Timedelta(days=46)).all()


# ---------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------


def test_labels_come_from_the_right_sources(world: World) -> None:
    truth = world.truth.set_index("buyer_id")
    labels = world.labels.join(truth, on="buyer_id")
    rulings = labels[labels.source.isin(RULING_SOURCES) & (labels.label == 1)]
    assert rulings.is_abuser.all()
    assert (rulings.labeled_at > rulings.abuse_start).all()
    reports = labels[labels.source == MERCHANT_REPORT]
    assert len(reports) > 0
    assert (reports.label == 1).all() and reports.segment.isin(LOOKALIKE_SEGMENTS).all()
    cleared = labels[labels.label == 0]
    assert not cleared.is_abuser.any()
    assert (labels.groupby("buyer_id").size() > 1).any()  # several decisions per buyer


@pytest.mark.parametrize("coverage", [0.3, 0.9])
def test_label_coverage_follows_the_parameter(coverage: float) -> None:
    w = world_for(n_buyers=4000, label_coverage=coverage, label_delay_days=(1, 3))
    start = w.truth.set_index("buyer_id").abuse_start
    orders = w.orders[w.orders.created_at >= w.orders.buyer_id.map(start)]
    # Only abusers who got to abuse (a claim, or a threat) can be caught.
    threats = w.reviews.order_id[w.reviews.text.str.contains(THREAT)]
    acted = orders.buyer_id[
        orders.order_id.isin(w.refunds.order_id) | orders.order_id.isin(threats)
    ]
    ruled = w.labels[w.labels.source.isin(RULING_SOURCES)]
    covered = pd.Index(acted.unique()).isin(ruled.buyer_id[ruled.label == 1]).mean()
    assert coverage - 0.12 <= covered <= coverage + 0.08


def test_late_decisions_are_not_known_yet() -> None:
    quick = world_for(label_delay_days=(1, 2))
    slow = world_for(label_delay_days=(300, 360))
    assert (slow.labels.label == 1).sum() < 0.4 * (quick.labels.label == 1).sum()


def test_false_reports_follow_the_parameter() -> None:
    none = world_for(false_report_rate=0.0)
    many = world_for(false_report_rate=0.3)
    assert (none.labels.source == MERCHANT_REPORT).sum() == 0
    reported = many.labels[many.labels.source == MERCHANT_REPORT].buyer_id.nunique()
    lookalikes = many.truth.segment.isin(LOOKALIKE_SEGMENTS).sum()
    assert 0.15 * lookalikes < reported < 0.35 * lookalikes


# ---------------------------------------------------------------------------------------
# Texts
# ---------------------------------------------------------------------------------------


def traditional_share(texts: pd.Series) -> float:
    to_simplified = opencc.OpenCC("t2s")
    changed = [to_simplified.convert(t) != t for t in texts]
    return float(np.mean(changed))


def test_review_texts_mix_scripts_languages_and_emoji(world: World) -> None:
    texts = world.reviews.text
    assert 0.05 < traditional_share(texts) < 0.2
    assert 0.03 < texts.str.contains(ENGLISH).mean() < 0.1
    assert 0.1 < texts.str.contains(EMOJI).mean() < 0.3
    assert texts.nunique() > 0.5 * len(texts)  # composed, not a handful of templates


def test_text_shares_follow_the_parameters() -> None:
    w = world_for(n_buyers=500, traditional_share=0.0, english_share=0.0, emoji_share=0.0)
    texts = w.reviews.text
    assert traditional_share(texts) < 0.01
    assert not texts.str.contains(ENGLISH).any()
    assert not texts.str.contains(EMOJI).any()


def test_ratings_mostly_agree_with_text(world: World) -> None:
    reviews = world.reviews
    praise = reviews.text.str.contains("好评|推荐购买|值得购买|会回购|Highly recommend|Five stars")
    complaint = reviews.text.str.contains("不推荐|慎拍|很失望|不会再买|避雷|Do not buy|Never again")
    assert reviews.rating[praise].mean() > 4.0
    assert reviews.rating[complaint].mean() < 2.8
    # ...but not always: five stars with a complaint happen.
    assert ((reviews.rating == 5) & complaint).any()


def test_reason_texts_are_short_chinese_or_missing(world: World) -> None:
    text = world.refunds.reason_text
    assert 0.1 < text.isna().mean() < 0.4
    assert text.dropna().str.len().max() <= 40
    assert text.dropna().str.contains("[\u4e00-\u9fff]").all()


# ---------------------------------------------------------------------------------------
# The family of worlds: knobs that real exports differ by
# ---------------------------------------------------------------------------------------

KNOBS = dataclasses.replace(SMALL, days=400)
YEAR = pd.Timedelta(days=365)


def knob_world(**changes: object) -> World:
    return simulate_world(dataclasses.replace(KNOBS, **changes), seed=5)  # type: ignore[arg-type]


def rulings(w: World) -> pd.DataFrame:
    """Positive platform and manual decisions, with the buyer's truth."""
    labels = w.labels.join(w.truth.set_index("buyer_id"), on="buyer_id")
    return labels[labels.source.isin(RULING_SOURCES) & (labels.label == 1)]


def test_every_knob_at_once_honours_the_contract_and_repeats() -> None:
    params = dataclasses.replace(
        KNOBS,
        history_before_days=200,
        dormant_share=0.5,
        close_on_label_share=0.5,
        office_share=0.1,
        spring_festival_dip=0.7,
        growth_per_year=0.5,
        label_delay_days=(30, 90),
    )
    w = simulate_world(params, seed=9)
    assert_contract(w, params)
    again = simulate_world(params, seed=9)
    for name in COLUMNS:
        pd.testing.assert_frame_equal(getattr(w, name), getattr(again, name))


def test_history_before_the_export_is_left_out() -> None:
    params = dataclasses.replace(KNOBS, history_before_days=365)
    w = simulate_world(params, seed=5)
    assert_contract(w, params)
    start = pd.Timestamp(params.start)
    assert w.orders.created_at.min() >= start
    assert w.labels.labeled_at.min() >= start
    # Accounts keep their true age: many were active for a year before the first row.
    registered = w.buyers.registered_at
    assert (registered < start - pd.Timedelta(days=300)).mean() > 0.5
    # Some accounts whose activity all came before the export are listed without orders.
    assert 0 < (~w.buyers.buyer_id.isin(w.orders.buyer_id)).sum() < 0.2 * len(w.buyers)
    # Abuse that began in the hidden history is in the truth, and gets labeled later.
    early = w.truth.abuse_start < start
    assert early.sum() > 0.3 * w.truth.is_abuser.sum()
    assert rulings(w).buyer_id.isin(w.truth.buyer_id[early]).any()

    # Buyers are already mid-life at the start: the export's first month is no quieter
    # than its last, unlike a platform launched on the first day.
    def first_vs_last(world: World) -> float:
        days = (world.orders.created_at - start).dt.days
        return float((days < 30).sum() / (days >= params.days - 30).sum())

    assert first_vs_last(w) > 1.1 * first_vs_last(knob_world())


@pytest.mark.parametrize(
    ("delay", "days"),
    [pytest.param((7, 30), 365, id="days"), pytest.param((60, 180), 1095, id="months")],
)
def test_label_delay_and_coverage_extremes(delay: tuple[int, int], days: int) -> None:
    params = dataclasses.replace(KNOBS, days=days, label_delay_days=delay)
    low = simulate_world(dataclasses.replace(params, label_coverage=0.33), seed=5)
    high = simulate_world(dataclasses.replace(params, label_coverage=0.67), seed=5)
    assert_contract(low, dataclasses.replace(params, label_coverage=0.33))
    for w in (low, high):
        ruled = rulings(w)
        lag = ruled.labeled_at - ruled.abuse_start
        assert (lag >= pd.Timedelta(days=delay[0])).all()
    caught_low, caught_high = rulings(low).buyer_id.nunique(), rulings(high).buyer_id.nunique()
    assert caught_low >= 10
    assert 1.5 < caught_high / caught_low < 2.6


def test_dormant_abusers_shop_honestly_for_months_first() -> None:
    lo = KNOBS.dormant_days[0]
    w = knob_world(dormant_share=1.0)
    truth = w.truth.set_index("buyer_id")
    registered = w.buyers.set_index("buyer_id").registered_at
    abuse_start = truth.abuse_start.dropna()
    start = pd.Timestamp(KNOBS.start)
    honest_months = abuse_start - np.maximum(registered[abuse_start.index], start)
    assert (honest_months >= pd.Timedelta(days=lo)).all()

    orders = w.orders.assign(
        segment=w.orders.buyer_id.map(truth.segment),
        turned=w.orders.created_at >= w.orders.buyer_id.map(truth.abuse_start),
        refund_only=w.orders.order_id.isin(w.refunds.order_id[w.refunds.type == "refund_only"]),
    )
    abusers = orders[orders.segment.isin(ABUSER_SEGMENTS)]
    sleeping = abusers[~abusers.turned]
    assert sleeping.buyer_id.nunique() > 0.8 * truth.is_abuser.sum()
    honest_rate = orders.refund_only[orders.segment == HONEST_SEGMENT].mean()
    assert sleeping.refund_only.mean() < 1.5 * honest_rate + 0.005
    assert abusers.refund_only[abusers.turned].mean() > 5 * honest_rate
    ruled = rulings(w)
    assert len(ruled) > 0 and (ruled.labeled_at > ruled.abuse_start).all()


def test_dormancy_is_off_by_default() -> None:
    # The knob, not the base world, makes the honest months: without it some abusers turn
    # within weeks of their account or of the period start.
    w = knob_world()
    registered = w.buyers.set_index("buyer_id").registered_at
    abuse_start = w.truth.set_index("buyer_id").abuse_start.dropna()
    start = pd.Timestamp(KNOBS.start)
    honest_months = abuse_start - np.maximum(registered[abuse_start.index], start)
    assert (honest_months < pd.Timedelta(days=KNOBS.dormant_days[0])).mean() > 0.2


@pytest.mark.parametrize(("share", "closed"), [(1.0, True), (0.0, False)])
def test_accounts_closed_at_their_ruling_order_nothing_after(share: float, closed: bool) -> None:
    w = knob_world(close_on_label_share=share, label_delay_days=(5, 20))
    first_ruling = rulings(w).groupby("buyer_id").labeled_at.min()
    assert len(first_ruling) >= 20
    orders = w.orders[w.orders.buyer_id.isin(first_ruling.index)]
    after = orders.created_at >= orders.buyer_id.map(first_ruling)
    assert (after.sum() == 0) == closed
    if closed:
        # Later decisions about a closed account are not made either.
        later = rulings(w).labeled_at > rulings(w).buyer_id.map(first_ruling)
        assert not later.any()


def test_offices_share_an_address_and_sometimes_a_device_or_card() -> None:
    w = knob_world(office_share=0.1, office_device_share=1.0, office_card_share=1.0)
    members = w.truth[w.truth.group_id.str.startswith("F", na=False)]
    assert abs(len(members) - 0.1 * KNOBS.n_buyers) <= 2
    assert (members.segment == HONEST_SEGMENT).all() and not members.is_abuser.any()
    sizes = members.group_id.value_counts()
    assert sizes.between(5, 40).all()
    orders = w.orders.merge(members[["buyer_id", "group_id"]], on="buyer_id")
    colleagues = orders.groupby("group_id").buyer_id.nunique()
    for col, everyone in (("address_id", True), ("device_id", True), ("payment_id", False)):
        users = orders.groupby(["group_id", col]).buyer_id.nunique().groupby("group_id").max()
        if everyone:  # each colleague's first order goes to the office, from its device
            assert (users == colleagues).all(), col
        else:  # the company card is used now and then
            assert (users >= 2).mean() > 0.8, col
    # Without the device and card shares, colleagues share only the address.
    plain = knob_world(office_share=0.1, office_device_share=0.0, office_card_share=0.0)
    colleagues = plain.truth.buyer_id[plain.truth.group_id.str.startswith("F", na=False)]
    mine = plain.orders[plain.orders.buyer_id.isin(colleagues)]
    assert (mine.groupby("device_id").buyer_id.nunique() == 1).all()
    assert (mine.groupby("payment_id").buyer_id.nunique() == 1).all()


def test_no_offices_by_default(world: World) -> None:
    assert not world.truth.group_id.str.startswith("F", na=False).any()


def orders_per_year(w: World) -> tuple[int, int]:
    created = w.orders.created_at
    boundary = pd.Timestamp(KNOBS.start) + YEAR
    return int((created < boundary).sum()), int((created >= boundary).sum())


def test_growth_brings_new_accounts_and_more_orders_each_year() -> None:
    first, second = orders_per_year(knob_world(days=730, growth_per_year=1.0))
    assert second > 1.5 * first
    first, second = orders_per_year(knob_world(days=730, growth_per_year=0.0))
    assert 0.8 * first < second < 1.1 * first
    grown = knob_world(days=730, growth_per_year=1.0).buyers.registered_at
    start = pd.Timestamp(KNOBS.start)
    opened = grown[grown >= start]
    # Registrations speed up: more in the second year than in the first.
    assert (opened >= start + YEAR).sum() > 1.4 * (opened < start + YEAR).sum()


@pytest.mark.parametrize(("dip", "trough"), [(0.8, True), (0.0, False)])
def test_spring_festival_is_a_trough(dip: float, trough: bool) -> None:
    w = knob_world(start="2024-01-01", spring_festival_dip=dip)
    per_day = w.orders.created_at.dt.floor("D").value_counts()
    # 春节 2024 fell on 10 February; couriers rest from about a week before.
    holiday = per_day[per_day.index.to_series().between("2024-02-04", "2024-02-16")].mean()
    spring = per_day[per_day.index.to_series().between("2024-03-15", "2024-04-30")].mean()
    assert (holiday < 0.5 * spring) == trough


def test_three_years_of_history_work() -> None:
    params = dataclasses.replace(KNOBS, n_buyers=1000, days=1095)
    w = simulate_world(params, seed=4)
    assert_contract(w, params)
    years = (w.orders.created_at - pd.Timestamp(params.start)).dt.days // 365
    assert set(years) == {0, 1, 2}


# ---------------------------------------------------------------------------------------
# An export taken on a given day
# ---------------------------------------------------------------------------------------


def test_export_as_of_keeps_only_the_past(world: World) -> None:
    cut = pd.Timestamp(SMALL.start) + pd.Timedelta(days=200, hours=13)
    before = {name: getattr(world, name).copy(deep=True) for name in COLUMNS}
    past = export_as_of(world, cut)
    for name in COLUMNS:  # the input is left as it was
        pd.testing.assert_frame_equal(getattr(world, name), before[name])

    for name, columns in TIME_COLUMNS.items():
        if name == "truth":
            continue
        for col in columns:
            assert (getattr(past, name)[col].dropna() < cut).all(), (name, col)
    assert len(past.orders) == (world.orders.created_at < cut).sum()
    assert len(past.refunds) == (world.refunds.requested_at < cut).sum()
    assert len(past.reviews) == (world.reviews.created_at < cut).sum()
    assert len(past.labels) == (world.labels.labeled_at < cut).sum()
    assert len(past.buyers) == (world.buyers.registered_at < cut).sum()
    pd.testing.assert_frame_equal(past.truth, world.truth)
    assert list(past.orders.columns) == COLUMNS["orders"]
    assert past.orders.index.equals(pd.RangeIndex(len(past.orders)))

    # In transit at the cut: the delivery is not known yet.
    transit = world.orders[(world.orders.created_at < cut) & (world.orders.delivered_at >= cut)]
    assert len(transit) > 0
    shown = past.orders.set_index("order_id").loc[transit.order_id]
    assert shown.delivered_at.isna().all()

    # Requested before the cut, resolved after it: pending, not instant, no resolution.
    open_ = world.refunds[(world.refunds.requested_at < cut) & (world.refunds.resolved_at >= cut)]
    assert len(open_) > 0 and (open_.status != "pending").all()
    shown = past.refunds.set_index("refund_id").loc[open_.refund_id]
    assert (shown.status == "pending").all()
    assert shown.resolved_at.isna().all() and not shown.instant.any()
    assert past.refunds.status.dtype == "str"
    closed = past.refunds[past.refunds.resolved_at.notna()]
    assert (closed.status != "pending").all()
    assert set(past.refunds.order_id) <= set(past.orders.order_id)
    assert set(past.reviews.order_id) <= set(past.orders.order_id)


def test_export_as_of_needs_a_naive_time(world: World) -> None:
    with pytest.raises(ConfigError, match="naive"):
        export_as_of(world, pd.Timestamp("2024-06-01", tz="Asia/Shanghai"))
