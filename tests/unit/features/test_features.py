from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from refundguard.config import FeaturesParams
from refundguard.data.validate import validate_tables
from refundguard.errors import ConfigError
from refundguard.features.build import build_snapshots, compute_features
from refundguard.features.catalog import build_catalog, catalog_markdown, catalog_version
from refundguard.features.events import prepare_events, ratio
from refundguard.features.extortion import DemandScores, demand_history, load_lexicon, refit_points

CUTOFF = pd.Timestamp("2024-03-01 00:00", tz="Asia/Shanghai")
CATALOG = build_catalog(FeaturesParams())
SENTIMENT = pd.DataFrame(
    {"review_id": ["v1", "v2", "v3", "v4"], "sentiment": [0.1, 0.2, 0.0, 0.1]}
)


def _features(tables: dict[str, pd.DataFrame], sentiment: pd.DataFrame | None = SENTIMENT,
              cutoff: pd.Timestamp = CUTOFF) -> pd.DataFrame:
    events = prepare_events(tables["orders"], tables["refunds"], tables["reviews"],
                            tables["buyers"], sentiment, labels=tables["labels"])
    return compute_features(events, cutoff, CATALOG).set_index("buyer_id")


# Worked out by hand from conftest.hand_raw_tables (cutoff 2024-03-01 00:00 local).
B1_EXPECTED = {
    "orders_30d": 3,  # o2, o3, o4; o1 is older, o5 after the cutoff
    "spend_30d": 550,
    "orders_90d": 4,
    "spend_90d": 650,
    "orders_365d": 4,
    "spend_365d": 650,
    "refunds_365d": 3,
    "refund_rate_count_365d": 3 / 4,
    "refund_rate_amount_365d": 300 / 650,
    "mean_order_value_365d": 650 / 4,
    "refunds_30d": 2,  # r2, r3; r4 is after the cutoff
    "refunds_90d": 3,
    "refund_rate_count_30d": 2 / 3,  # o2 and o3 of o2, o3, o4 have a request before T
    "refund_rate_amount_30d": (150 + 50) / 550,
    "refund_rate_count_90d": 3 / 4,
    "refund_rate_amount_90d": (100 + 150 + 50) / 650,
    "refund_only_share_365d": 2 / 3,
    "compensation_share_365d": 0.0,
    "fast_refund_share_365d": 1 / 3,  # r1, half an hour after delivery
    "before_delivery_share_365d": 1 / 3,  # r3, o3 never delivered
    "median_hours_to_refund_365d": 120.0,  # 0.5 h, 144 h, 120 h (r3 from payment)
    "min_hours_to_refund_365d": 0.5,
    "reason_evidence_share_365d": 2 / 3,
    "reason_fit_share_365d": 1 / 3,
    "reason_quality_share_365d": 0.0,
    "reason_logistics_share_365d": 0.0,
    "rejected_share_365d": 0.0,  # r2's rejection is only known after the cutoff
    "cancelled_share_365d": 0.0,
    "instant_share_365d": 1 / 3,
    "sellers_365d": 3,
    "sellers_refunded_365d": 2,
    "reviews_365d": 3,  # v1, v2, v4; v3 is after the cutoff
    "mean_rating_365d": 7 / 3,
    "low_rating_share_365d": 2 / 3,
    "mean_sentiment_365d": 0.4 / 3,
    "negative_text_share_365d": 1.0,
    # Deeper signals.
    "max_vs_own_median_365d": 300 / 150,  # median of 100, 300, 50, 200
    "value_vs_category_365d": (100 / 200 + 300 / 200 + 50 / 50 + 200 / 200) / 4,
    "high_value_share_365d": 0.0,
    "late_night_share_365d": 0.0,
    "top_category_share_365d": 2 / 4,  # apparel
    "peak_orders_per_day_365d": 1,
    "within_1h_share_365d": 1 / 3,  # r1
    "window_end_share_365d": 1 / 3,  # r2, 144 h after delivery
    "partial_refund_share_365d": 1 / 3,  # r2 asks 150 of 300
    "compensation_ratio_365d": math.nan,  # no compensation request
    "reason_switch_rate_365d": 1.0,  # damaged -> size_fit -> not_received
    "refund_seller_concentration_365d": 2 / 3,  # r1 and r3 at s1
    "rating_text_mismatch_share_365d": 1 / 3,  # v2: 5 stars, negative text
    "review_near_refund_share_365d": 2 / 3,  # r1 (v1 23.5 h later), r3 (v4 24 h later)
    "duplicate_text_share_365d": 2 / 3,  # v1 and v4 say the same
    "mean_review_length_365d": (13 + 2 + 13) / 3,
    # v1 and v4 say "不赔钱就给差评": a demand tied by a condition to a bad review (1.0).
    "extortion_review_share_365d": 2 / 3,
    "conditional_threats_365d": 2,
    "max_demand_score_365d": math.nan,  # no demand scores given
    # v1 (o1) and v4 (o3) are 1-star; the claims on o1 and o3 (r1, r3) came before them.
    "review_then_claim_share_365d": 0.0,
    "linked_accounts_device": 1,  # b2 used device d1
    "linked_accounts_address": 0,
    "linked_accounts_payment": 0,
    "linked_accounts_any": 1,
    "linked_refund_rate_365d": 0.0,  # b2's one order had no request
    "linked_known_abusers": 0,
    "max_accounts_per_id": 2,
    "account_age_days": 91.0,  # registered 2023-12-01
    "days_since_first_order": 50 + 14 / 24,  # o1 at 2024-01-10 10:00
    "days_since_last_order": 1 + 14 / 24,  # o4 at 2024-02-28 10:00
}


@pytest.mark.parametrize("name", sorted(B1_EXPECTED))
def test_hand_built_buyer(hand_tables: dict[str, pd.DataFrame], name: str) -> None:
    got = _features(hand_tables).loc["b1", name]
    assert got == pytest.approx(B1_EXPECTED[name], rel=1e-9, nan_ok=True), name


def test_every_feature_has_a_hand_value() -> None:
    assert set(B1_EXPECTED) == {f.name for f in CATALOG}


def test_buyer_without_recent_activity(hand_tables: dict[str, pd.DataFrame]) -> None:
    b2 = _features(hand_tables).loc["b2"]
    assert b2["orders_30d"] == 0 and b2["orders_365d"] == 1
    assert math.isnan(b2["refund_rate_count_30d"])  # nothing ordered: unknown, not 0
    assert b2["refund_rate_count_365d"] == 0.0
    assert math.isnan(b2["mean_rating_365d"])
    assert b2["reviews_365d"] == 0


def test_no_sentiment_gives_missing_sentiment(hand_tables: dict[str, pd.DataFrame]) -> None:
    b1 = _features(hand_tables, sentiment=None).loc["b1"]
    assert math.isnan(b1["mean_sentiment_365d"])
    assert math.isnan(b1["rating_text_mismatch_share_365d"])
    assert b1["mean_rating_365d"] == pytest.approx(7 / 3)


def _with_later_events(raw: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Events, status changes and labels that all happen after the cutoff."""
    raw = {k: v.copy() for k, v in raw.items()}
    raw["orders"] = pd.concat([raw["orders"], pd.DataFrame([
        ("o9", "b1", "s9", "2024-03-01 00:00", "5000", "digital", "2024-03-01 01:00"),
        ("o10", "b3", "s9", "2024-03-10 00:00", "10", "digital", None),
    ], columns=["order_id", "buyer_id", "seller_id", "created_at", "amount", "category",
                "delivered_at"])], ignore_index=True)
    # o4 was delivered after the cutoff; delivering it earlier-than-known must not leak.
    raw["refunds"] = pd.concat([raw["refunds"], pd.DataFrame([
        ("r9", "o9", "2024-03-01 02:00", "5000", "refund_only", "not_received", "approved",
         "2024-03-01 03:00", "true"),
        ("r10", "o1", "2024-03-02 00:00", "10", "compensation", "quality", "rejected",
         "2024-03-03 00:00", "false"),
    ], columns=raw["refunds"].columns)], ignore_index=True)
    raw["refunds"].loc[raw["refunds"]["refund_id"] == "r2", "status"] = "approved"
    raw["reviews"] = pd.concat([raw["reviews"], pd.DataFrame([
        ("v9", "o1", "2024-03-20 00:00", "1", "威胁"),
    ], columns=raw["reviews"].columns)], ignore_index=True)
    raw["labels"] = pd.concat([raw["labels"], pd.DataFrame([
        ("b2", "1", "2024-03-01 00:00", "merchant_report"),
        ("b1", "0", "2024-09-01 00:00", "manual_review"),
    ], columns=raw["labels"].columns)], ignore_index=True)
    return raw


def test_point_in_time_features(hand_raw: dict[str, pd.DataFrame]) -> None:
    before = validate_tables(hand_raw, timezone="Asia/Shanghai", max_text_chars=100).tables
    after = validate_tables(_with_later_events(hand_raw), timezone="Asia/Shanghai",
                            max_text_chars=100).tables
    a = _features(before).loc[["b1", "b2"]]
    b = _features(after).loc[["b1", "b2"]]
    pd.testing.assert_frame_equal(a, b)


def test_point_in_time_training_rows(hand_raw: dict[str, pd.DataFrame]) -> None:
    horizon = 60
    before = validate_tables(hand_raw, timezone="Asia/Shanghai", max_text_chars=100).tables
    raw = _with_later_events(hand_raw)
    # Drop the label decision inside the horizon from the comparison: it *is* the target.
    raw["labels"] = raw["labels"][raw["labels"]["labeled_at"] != "2024-03-01 00:00"]
    after = validate_tables(raw, timezone="Asia/Shanghai", max_text_chars=100).tables

    def rows(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
        events = prepare_events(t["orders"], t["refunds"], t["reviews"], t["buyers"],
                                labels=t["labels"])
        return build_snapshots(events, t["labels"], [CUTOFF], CATALOG,
                               horizon_days=horizon, active_days=365)

    a, b = rows(before), rows(after)
    assert list(a["buyer_id"]) == ["b1", "b2"]
    assert list(a["target"]) == [1, 0]  # b1 labeled on 2024-04-01, within 60 days
    pd.testing.assert_frame_equal(a, b[b["buyer_id"].isin(["b1", "b2"])].reset_index(drop=True))


def test_known_abusers_leave_the_training_rows(hand_tables: dict[str, pd.DataFrame]) -> None:
    events = prepare_events(hand_tables["orders"], hand_tables["refunds"],
                            hand_tables["reviews"], hand_tables["buyers"])
    later = pd.Timestamp("2024-05-01", tz="Asia/Shanghai")
    rows = build_snapshots(events, hand_tables["labels"], [later], CATALOG, horizon_days=30,
                           active_days=365)
    assert "b1" not in set(rows["buyer_id"])  # labeled abuser on 2024-04-01, before T


def test_inputs_are_not_modified(hand_tables: dict[str, pd.DataFrame]) -> None:
    copies = {k: v.copy() for k, v in hand_tables.items()}
    _features(hand_tables)
    for k, v in hand_tables.items():
        pd.testing.assert_frame_equal(v, copies[k])


def test_scoring_list_includes_unknown_buyer(hand_tables: dict[str, pd.DataFrame]) -> None:
    events = prepare_events(hand_tables["orders"], hand_tables["refunds"],
                            hand_tables["reviews"], hand_tables["buyers"],
                            extra_buyer_ids=["nobody"])
    out = compute_features(events, CUTOFF, CATALOG, buyer_ids=["nobody", "b1"])
    assert list(out["buyer_id"]) == ["nobody", "b1"]
    row = out.iloc[0]
    assert row["orders_365d"] == 0 and row["refunds_365d"] == 0
    assert math.isnan(row["refund_rate_count_365d"])


@pytest.mark.parametrize(("num", "den", "expected"), [
    (1.0, 2.0, 0.5), (0.0, 3.0, 0.0), (0.0, 0.0, math.nan), (5.0, 0.0, math.nan),
])
def test_ratio(num: float, den: float, expected: float) -> None:
    got = ratio(np.array([num]), np.array([den]))[0]
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


def test_catalog_is_well_formed() -> None:
    names = [f.name for f in CATALOG]
    assert len(names) == len(set(names))
    for f in CATALOG:
        assert f.en and f.zh and f.direction in (-1, 0, 1)
        if f.unit == "share":
            assert f.nullable
    table = catalog_markdown(CATALOG)
    assert all(f"| {n} |" in table for n in names)


def test_catalog_version_tracks_windows() -> None:
    assert catalog_version(CATALOG) == catalog_version(build_catalog(FeaturesParams()))
    other = build_catalog(FeaturesParams(windows_days=(7, 30)))
    assert catalog_version(other) != catalog_version(CATALOG)


def _orders_sharing(n_buyers: int, kind: str) -> pd.DataFrame:
    ids = {k: [f"{k}-{i}" for i in range(n_buyers)] for k in ("device", "address", "payment")}
    ids[kind] = [f"shared-{kind}"] * n_buyers
    return pd.DataFrame({
        "order_id": [f"o{i}" for i in range(n_buyers)],
        "buyer_id": [f"b{i}" for i in range(n_buyers)],
        "seller_id": "s1",
        "created_at": "2024-02-01 10:00",
        "amount": "10",
        "device_id": ids["device"], "address_id": ids["address"], "payment_id": ids["payment"],
    })


def _linked(orders: pd.DataFrame, cap: int = 30) -> pd.DataFrame:
    empty = {
        "refunds": pd.DataFrame(columns=["refund_id", "order_id", "requested_at", "amount",
                                         "type", "reason", "status"]),
        "reviews": pd.DataFrame(columns=["review_id", "order_id", "created_at"]),
        "labels": pd.DataFrame(columns=["buyer_id", "label", "labeled_at"]),
    }
    t = validate_tables({"orders": orders, **empty}, timezone="Asia/Shanghai",
                        max_text_chars=100).tables
    events = prepare_events(t["orders"], t["refunds"], t["reviews"], t["buyers"],
                            labels=t["labels"])
    catalog = build_catalog(FeaturesParams(link_max_accounts=cap))
    return compute_features(events, CUTOFF, catalog).set_index("buyer_id")


@pytest.mark.parametrize("kind", ["device", "address", "payment"])
def test_small_group_sharing_an_id_is_linked(kind: str) -> None:
    feats = _linked(_orders_sharing(4, kind))
    assert (feats[f"linked_accounts_{kind}"] == 3).all()
    assert (feats["linked_accounts_any"] == 3).all()
    others = {"device", "address", "payment"} - {kind}
    assert all((feats[f"linked_accounts_{k}"] == 0).all() for k in others)


def test_parcel_locker_links_nobody() -> None:
    feats = _linked(_orders_sharing(40, "address"), cap=30)
    assert (feats["linked_accounts_any"] == 0).all()
    assert (feats["max_accounts_per_id"] == 40).all()


def test_linked_known_abusers_counts_only_labels_before_the_cutoff() -> None:
    orders = _orders_sharing(3, "device")
    empty_r = pd.DataFrame(columns=["refund_id", "order_id", "requested_at", "amount", "type",
                                    "reason", "status"])
    empty_v = pd.DataFrame(columns=["review_id", "order_id", "created_at"])
    labels = pd.DataFrame({"buyer_id": ["b1", "b2"], "label": ["1", "1"],
                           "labeled_at": ["2024-02-15 00:00", "2024-03-02 00:00"]})
    t = validate_tables({"orders": orders, "refunds": empty_r, "reviews": empty_v,
                         "labels": labels}, timezone="Asia/Shanghai", max_text_chars=100).tables
    events = prepare_events(t["orders"], t["refunds"], t["reviews"], t["buyers"],
                            labels=t["labels"])
    feats = compute_features(events, CUTOFF, CATALOG).set_index("buyer_id")
    assert feats.loc["b0", "linked_known_abusers"] == 1  # b1 only; b2's label is later
    assert feats.loc["b1", "linked_known_abusers"] == 0  # itself does not count


def test_reason_switch_rate_ignores_row_order_of_simultaneous_requests(
    hand_raw: dict[str, pd.DataFrame],
) -> None:
    raw = {k: v.copy() for k, v in hand_raw.items()}
    extra = pd.DataFrame([
        ("r5", "o1", "2024-01-12 10:30", "1", "compensation", "quality", "approved",
         "2024-01-13 10:00", "false"),
    ], columns=raw["refunds"].columns)
    forward = {**raw, "refunds": pd.concat([raw["refunds"], extra], ignore_index=True)}
    backward = {**raw, "refunds": pd.concat([extra, raw["refunds"]], ignore_index=True)}
    values = [
        _features(validate_tables(t, timezone="Asia/Shanghai", max_text_chars=100).tables)
        .loc["b1", "reason_switch_rate_365d"]
        for t in (forward, backward)
    ]
    assert values[0] == values[1]


@pytest.mark.parametrize(("registered", "expected_age"), [
    # Registered exactly at the cutoff: not known at T, so the age falls back to the
    # first order (b2's only order, 2023-06-01 09:00, 273.6 days before T).
    ("2024-03-01 00:00", 273.625),
    # One second before T: known, but b2's first order is older still.
    ("2024-02-29 23:59:59", 273.625),
    ("2023-01-01 00:00", 425.0),
])
def test_registration_is_known_only_before_the_cutoff(
    hand_raw: dict[str, pd.DataFrame], registered: str, expected_age: float
) -> None:
    raw = {k: v.copy() for k, v in hand_raw.items()}
    raw["buyers"].loc[raw["buyers"]["buyer_id"] == "b2", "registered_at"] = registered
    tables = validate_tables(raw, timezone="Asia/Shanghai", max_text_chars=100).tables
    wide = build_catalog(FeaturesParams(history_cap_days=10_000))
    events = prepare_events(tables["orders"], tables["refunds"], tables["reviews"],
                            tables["buyers"])
    feats = compute_features(events, CUTOFF, wide).set_index("buyer_id")
    assert feats.loc["b2", "account_age_days"] == pytest.approx(expected_age)


@pytest.mark.parametrize("cap", [30, 120, 365])
def test_history_lengths_are_capped_the_same_at_every_cutoff(
    hand_tables: dict[str, pd.DataFrame], cap: int
) -> None:
    catalog = build_catalog(FeaturesParams(history_cap_days=cap))
    wide = build_catalog(FeaturesParams(history_cap_days=100_000))
    events = prepare_events(hand_tables["orders"], hand_tables["refunds"],
                            hand_tables["reviews"], hand_tables["buyers"])
    history = ("account_age_days", "days_since_first_order", "days_since_last_order")
    for cutoff in (CUTOFF, CUTOFF + pd.Timedelta(days=400)):
        capped = compute_features(events, cutoff, catalog).set_index("buyer_id")
        raw = compute_features(events, cutoff, wide).set_index("buyer_id")
        for name in history:
            np.testing.assert_allclose(
                capped[name].to_numpy(), np.minimum(raw[name].to_numpy(), cap)
            )
            assert (capped[name].dropna() <= cap).all()
    # The catalog says so, in both languages.
    entry = {f.name: f for f in catalog}["days_since_first_order"]
    assert str(cap) in entry.en and str(cap) in entry.zh


# ------------------------------------------------------------------- review-text evidence


def _hand_demand(later: float) -> DemandScores:
    """Two demand models of the hand-built reviews: one cut before CUTOFF, one after it."""
    t0 = pd.Timestamp("2024-02-01", tz="UTC")
    t1 = pd.Timestamp("2024-03-05", tz="UTC")  # after CUTOFF: must not be read at CUTOFF
    ids = np.array(["v1", "v2", "v3", "v4"], dtype=object)
    scores = np.array([[0.3, 0.99, np.nan, 0.6], [later, later, later, later]])
    return DemandScores((t0, t1), ids, scores)


def _review_features(
    tables: dict[str, pd.DataFrame], cutoff: pd.Timestamp, demand: DemandScores | None = None
) -> pd.Series:
    events = prepare_events(tables["orders"], tables["refunds"], tables["reviews"],
                            tables["buyers"], SENTIMENT, labels=tables["labels"],
                            demand=demand)
    return compute_features(events, cutoff, CATALOG).set_index("buyer_id").loc["b1"]


def test_max_demand_score_reads_the_model_cut_before_the_cutoff(
    hand_tables: dict[str, pd.DataFrame],
) -> None:
    # At CUTOFF the model of 2024-02-01 holds: the 1-2 star reviews v1 (0.3) and v4 (0.6);
    # v2 is 5 stars, so its 0.99 does not count.
    at = _review_features(hand_tables, CUTOFF, _hand_demand(0.9))
    assert at["max_demand_score_365d"] == pytest.approx(0.6)
    # Whatever the later model says, the features at CUTOFF do not change.
    other = _review_features(hand_tables, CUTOFF, _hand_demand(0.01))
    assert other["max_demand_score_365d"] == pytest.approx(0.6)
    # From 2024-03-05 on, the later model's scores are read (v1, v3, v4: 1 star).
    later = _review_features(hand_tables, pd.Timestamp("2024-03-10", tz="Asia/Shanghai"),
                             _hand_demand(0.9))
    assert later["max_demand_score_365d"] == pytest.approx(0.9)


def _claim_after_v4(raw: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """A compensation claim on o3 two days after its 1-star review v4, after CUTOFF."""
    raw = {k: v.copy() for k, v in raw.items()}
    raw["refunds"] = pd.concat([raw["refunds"], pd.DataFrame([
        ("r7", "o3", "2024-03-01 10:00", "20", "compensation", "quality", "pending",
         None, "false"),
    ], columns=raw["refunds"].columns)], ignore_index=True)
    return validate_tables(raw, timezone="Asia/Shanghai", max_text_chars=100).tables


def test_review_then_claim_share_counts_claims_known_before_the_cutoff(
    hand_raw: dict[str, pd.DataFrame],
) -> None:
    tables = _claim_after_v4(hand_raw)
    # At CUTOFF the claim (2024-03-01 10:00) is not yet made: 0 of v1, v4.
    assert _review_features(tables, CUTOFF)["review_then_claim_share_365d"] == 0.0
    # At 2024-03-10: v1, v3 (o2, no claim) and v4 are 1-star; v4 was followed by r7.
    later = _review_features(tables, pd.Timestamp("2024-03-10", tz="Asia/Shanghai"))
    assert later["review_then_claim_share_365d"] == pytest.approx(1 / 3)


def test_user_lexicon_param_changes_the_review_features(
    hand_tables: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    # "后悔" alone is no demand in the shipped lexicon; a user's lexicon makes it one.
    lexicon_file = tmp_path / "lexicon.yaml"
    lexicon_file.write_text(
        "version: 1\nkinds:\n  more_reviews: ['后悔']\n", encoding="utf-8"
    )
    fp = FeaturesParams(extortion_lexicon=str(lexicon_file))
    lexicon = load_lexicon(fp.lexicon_path())
    events = prepare_events(hand_tables["orders"], hand_tables["refunds"],
                            hand_tables["reviews"], hand_tables["buyers"], SENTIMENT,
                            labels=hand_tables["labels"], lexicon=lexicon)
    when = pd.Timestamp("2024-03-10", tz="Asia/Shanghai")
    got = compute_features(events, when, CATALOG).set_index("buyer_id").loc["b1"]
    # v1 and v4 as before, and v3 ("后悔", a threat of more reviews: 0.5) now too.
    assert got["extortion_review_share_365d"] == pytest.approx(3 / 4)
    assert got["conditional_threats_365d"] == 2
    shipped = _review_features(hand_tables, when)
    assert shipped["extortion_review_share_365d"] == pytest.approx(2 / 4)


def test_missing_user_lexicon_is_one_line_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"features\.extortion_lexicon .* does not exist") as e:
        FeaturesParams(extortion_lexicon=str(tmp_path / "nope.yaml"))
    assert "\n" not in str(e.value)


def test_demand_model_features_are_point_in_time() -> None:
    """A review or a request after T never changes the features at T, through the model too."""
    from tests.unit.features.test_extortion import synthetic_platform

    reviews, refunds, orders = synthetic_platform(600, seed=3)
    reviews = reviews.assign(created_at=reviews["created_at"].dt.tz_localize("UTC"))
    refunds = refunds.assign(
        requested_at=refunds["requested_at"].dt.tz_localize("UTC"),
        resolved_at=pd.NaT, refund_id=[f"q{i}" for i in range(len(refunds))],
        reason="quality", status="pending", instant=False,
    )
    t_first = reviews["created_at"].min()
    orders = orders.assign(
        seller_id="s1", created_at=t_first - pd.Timedelta(days=3), delivered_at=pd.NaT,
        category="food", device_id="d", address_id=None, payment_id=None,
    )
    cutoffs = [t_first + pd.Timedelta(days=d) for d in (40, 60, 80, 100)]
    points = refit_points(cutoffs, 2)
    assert points == [cutoffs[0], cutoffs[1], cutoffs[3]]
    params = {"hash_bits": 14, "min_per_class": 10}
    t = cutoffs[2]  # uses the model of cutoffs[1]

    def features_at(rv: pd.DataFrame, rf: pd.DataFrame) -> pd.DataFrame:
        demand, _ = demand_history(rv, rf, orders, points, params)
        events = prepare_events(orders, rf, rv, demand=demand)
        return compute_features(events, t, CATALOG).set_index("buyer_id")

    full = features_at(reviews, refunds)
    cut = features_at(
        reviews[reviews["created_at"] < t], refunds[refunds["requested_at"] < t]
    )
    assert full["max_demand_score_365d"].notna().sum() > 100
    pd.testing.assert_frame_equal(full, cut)


REVIEW_TEXT_FEATURES = (
    "extortion_review_share_365d",
    "max_demand_score_365d",
    "conditional_threats_365d",
    "review_then_claim_share_365d",
)


def test_pipeline_snapshots_and_scorer_agree_on_the_review_text_features(project: Path) -> None:
    """End to end: the features are in the snapshots, and the exported scorer recomputes
    them at the last cutoff with the demand model and lexicon it ships."""
    from refundguard.features.build import load_validated
    from refundguard.serving.scorer import Scorer

    snaps = pd.read_parquet(project / "data" / "features" / "snapshots.parquet")
    for name in REVIEW_TEXT_FEATURES:
        assert name in snaps.columns, name
    assert (project / "data" / "features" / "review_models" / "demand.json").is_file()
    assert (project / "models" / "model" / "demand" / "demand.json").is_file()
    scorer = Scorer.load(project / "models" / "scorer")
    assert scorer.demand_model is not None and scorer.demand_model.trained
    last = snaps["cutoff"].max()
    assert pd.Timestamp(scorer.demand_model.cutoff) == last
    rows = snaps[snaps["cutoff"] == last].set_index("buyer_id")
    assert rows["max_demand_score_365d"].notna().any()
    tables = load_validated(project / "data" / "validated")
    events = prepare_events(
        tables["orders"], tables["refunds"], tables["reviews"], tables["buyers"],
        scorer.review_sentiment(tables["reviews"]), labels=tables["labels"],
        timezone=scorer.timezone, lexicon=scorer.lexicon,
        demand=scorer.demand_scores(tables, last),
    )
    again = compute_features(events, last, CATALOG, buyer_ids=list(rows.index))
    again = again.set_index("buyer_id")
    for name in REVIEW_TEXT_FEATURES:
        np.testing.assert_allclose(
            again[name].to_numpy(dtype="float64"), rows[name].to_numpy(dtype="float64"),
            rtol=0, atol=1e-12, err_msg=name,
        )


def test_known_abusers_get_their_own_table(hand_tables: dict[str, pd.DataFrame]) -> None:
    from refundguard.features.build import build_snapshot_tables

    events = prepare_events(hand_tables["orders"], hand_tables["refunds"],
                            hand_tables["reviews"], hand_tables["buyers"])
    cutoffs = [CUTOFF, pd.Timestamp("2024-05-01", tz="Asia/Shanghai")]
    tables = build_snapshot_tables(events, hand_tables["labels"], cutoffs, CATALOG,
                                   horizon_days=30, active_days=365)
    rows = build_snapshots(events, hand_tables["labels"], cutoffs, CATALOG, horizon_days=30,
                           active_days=365)
    pd.testing.assert_frame_equal(tables.rows, rows)
    # b1 was labeled an abuser on 2024-04-01: a known abuser at the later cutoff only,
    # with the same columns, features and a positive target.
    assert list(tables.known["buyer_id"]) == ["b1"]
    assert list(tables.known["cutoff"]) == [cutoffs[1].tz_convert("UTC")]
    assert list(tables.known.columns) == list(rows.columns)
    assert tables.known["target"].tolist() == [1]
    assert tables.known["target"].dtype == rows["target"].dtype
    every = compute_features(events, cutoffs[1], CATALOG, buyer_ids=["b1"])
    pd.testing.assert_frame_equal(
        tables.known.drop(columns="target").reset_index(drop=True), every
    )


@pytest.mark.parametrize(("sources", "in_known"), [
    (None, True), (("platform_ruling",), True), (("manual_review",), False),
])
def test_known_table_keeps_only_trusted_label_sources(
    hand_tables: dict[str, pd.DataFrame], sources: tuple[str, ...] | None, in_known: bool
) -> None:
    from refundguard.features.build import build_snapshot_tables

    events = prepare_events(hand_tables["orders"], hand_tables["refunds"],
                            hand_tables["reviews"], hand_tables["buyers"])
    later = pd.Timestamp("2024-05-01", tz="Asia/Shanghai")
    tables = build_snapshot_tables(events, hand_tables["labels"], [later], CATALOG,
                                   horizon_days=30, active_days=365, trusted_sources=sources)
    # b1's only decision is a platform ruling: a known abuser either way, so never a
    # snapshot row; a training positive only when that source is trusted.
    assert "b1" not in set(tables.rows["buyer_id"])
    assert ("b1" in set(tables.known["buyer_id"])) == in_known
