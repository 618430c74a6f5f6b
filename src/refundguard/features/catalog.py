"""The feature catalog: every per-buyer feature as of a cutoff, declared once.

Two clocks govern every fact. An event counts at cutoff T only if it happened before T
(``created_at``, ``requested_at`` < T), and a refund's outcome counts only if it was known
before T (``resolved_at`` < T; otherwise the request is still pending at T). Delivery
times after T are unknown at T. Windows are half-open, [T - w, T).

A buyer's features depend only on that buyer's own rows, so the computation can run per
partition of buyers on a distributed engine. Every feature is declared once in the
catalog (:func:`build_catalog`), with its meaning in Chinese and English, its unit, window
and risk direction; the README's feature table is generated from it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Final, Literal

import numpy as np
import pandas as pd

from refundguard.config import FeaturesParams
from refundguard.data.frames import isin
from refundguard.features.events import (
    CLAIM_AFTER_REVIEW_DAYS,
    DAY,
    EVIDENCE_REASONS,
    FIT_REASONS,
    HOUR,
    LINK_KINDS,
    QUALITY_REASONS,
    EventTableName,
    Snapshot,
    ratio,
)
from refundguard.features.extortion import FLAG_THRESHOLD

# A review with at most this many stars is a low-star review (the demand model's
# population, and the reviews whose follow-up requests are counted).
LOW_STARS = 2

log = logging.getLogger(__name__)


FeatureGroup = Literal["orders", "refunds", "sellers", "reviews", "linked"]


FEATURE_GROUPS: tuple[FeatureGroup, ...] = ("refunds", "orders", "sellers", "reviews", "linked")


Unit = Literal["count", "cny", "share", "days", "hours", "stars", "score", "ratio"]


Compute = Callable[[Snapshot], np.ndarray]


@dataclass(frozen=True)
class Feature:
    """One entry of the feature catalog.

    Attributes:
        name: Column name.
        group: Feature group (used by ablations and reports).
        en: What it measures, in English, in one sentence.
        zh: The same in Chinese.
        unit: Unit of the value.
        window_days: Look-back window, or None for "all history before the cutoff".
        direction: +1 if a higher value means more risk, -1 less risk, 0 neither.
        nullable: The value may be NaN (nothing to measure), which LightGBM treats as missing.
        compute: Function of a snapshot returning one value per buyer code.
        reason_en: Reason sentence template, when the generic "<description>: <value>,
            higher than N% of buyers" is not the clearest. Fields: {value} (formatted),
            {rank} ("more than 98% of buyers"), {w} (window), {n} (the ``count_of``
            feature's value) and {k} (round(value * n)).
        reason_zh: The same in Chinese ({rank} reads "高于 98% 的买家").
        count_of: Feature counting what a share is a share of (for {n} and {k}).
    """

    name: str
    group: FeatureGroup
    en: str
    zh: str
    unit: Unit
    window_days: int | None
    direction: Literal[-1, 0, 1]
    nullable: bool
    compute: Compute
    reason_en: str = ""
    reason_zh: str = ""
    count_of: str | None = None


def _count_in(s: Snapshot, table: EventTableName, days: int) -> np.ndarray:
    return s.count(table, s.since(table, days))


def _spend_in(s: Snapshot, days: int) -> np.ndarray:
    return s.total("orders", s.orders["amount"].to_numpy(), s.since("orders", days))


def _orders_features(windows: Sequence[int], history_cap: int) -> list[Feature]:
    out: list[Feature] = []
    for w in windows:
        out += [
            Feature(
                name=f"orders_{w}d",
                group="orders",
                en=f"Orders placed in the last {w} days.",
                zh=f"近{w}天下单数。",
                unit="count",
                window_days=w,
                direction=0,
                nullable=False,
                compute=partial(_count_in, table="orders", days=w),
            ),
            Feature(
                name=f"spend_{w}d",
                group="orders",
                en=f"Total order value in the last {w} days.",
                zh=f"近{w}天下单总金额。",
                unit="cny",
                window_days=w,
                direction=0,
                nullable=False,
                compute=partial(_spend_in, days=w),
            ),
        ]
    long = max(windows)
    out += [
        Feature(
            name=f"mean_order_value_{long}d",
            group="orders",
            en=f"Average order value over {long} days.",
            zh=f"近{long}天平均客单价。",
            unit="cny",
            window_days=long,
            direction=0,
            nullable=True,
            compute=lambda s: ratio(
                s.total("orders", s.orders["amount"].to_numpy(), s.since("orders", long)),
                s.count("orders", s.since("orders", long)),
            ),
        ),
        Feature(
            name="account_age_days",
            group="orders",
            en=f"Days since the account was opened (or first order), capped at {history_cap}.",
            zh=f"账号注册天数(无注册时间时按首单计), 最多计 {history_cap} 天。",
            unit="days",
            window_days=None,
            direction=-1,
            nullable=True,
            compute=partial(_account_age, cap=history_cap),
        ),
        Feature(
            name="days_since_first_order",
            group="orders",
            en=f"Days since the buyer's first order, capped at {history_cap}.",
            zh=f"距首单天数, 最多计 {history_cap} 天。",
            unit="days",
            window_days=None,
            direction=-1,
            nullable=True,
            compute=lambda s: _capped_history(_days_before_cutoff(s, "min"), history_cap),
        ),
        Feature(
            name="days_since_last_order",
            group="orders",
            en=f"Days since the buyer's latest order, capped at {history_cap}.",
            zh=f"距最近一单天数, 最多计 {history_cap} 天。",
            unit="days",
            window_days=None,
            direction=0,
            nullable=True,
            compute=lambda s: _capped_history(_days_before_cutoff(s, "max"), history_cap),
        ),
    ]
    return out


def _days_before_cutoff(s: Snapshot, how: Literal["min", "max"]) -> np.ndarray:
    created = s.orders["created_at"].to_numpy()
    everything = np.ones(len(s.orders), dtype=bool)
    age = (np.datetime64(s.cutoff.tz_convert(None)) - created) / DAY
    return s.reduce("orders", age.astype("float64"), everything, "max" if how == "min" else "min")


def _capped_history(days: np.ndarray, cap: int) -> np.ndarray:
    """A length of history, capped so that it means the same at every cutoff.

    An export starts at an arbitrary date: at a cutoff 120 days after it, no buyer can
    show more than 120 days since a first order, at the scoring date two years later
    most can. Uncapped, the model learned thresholds at the early cutoffs that meant
    something else when it scored (on an independent export, dropping the three history
    lengths raised AUC from 0.881 to 0.926). Capped at ``cap`` (at most the history
    every used cutoff has), a value says the same thing everywhere. NaN stays NaN.
    """
    return np.minimum(days, float(cap))


def _account_age(s: Snapshot, cap: int) -> np.ndarray:
    first = _days_before_cutoff(s, "min")
    reg = np.asarray(
        (np.datetime64(s.cutoff.tz_convert(None)) - s.registered_at) / DAY, dtype="float64"
    )
    # An account is at least as old as its first order, whatever the register says.
    return _capped_history(np.fmax(reg, first), cap)


def _refund_features(windows: Sequence[int], fast_hours: float) -> list[Feature]:
    out: list[Feature] = []
    for w in windows:
        out += [
            Feature(
                name=f"refunds_{w}d",
                group="refunds",
                en=f"After-sales requests made in the last {w} days.",
                zh=f"近{w}天售后申请次数。",
                unit="count",
                window_days=w,
                direction=1,
                nullable=False,
                compute=partial(_count_in, table="refunds", days=w),
            ),
            Feature(
                name=f"refund_rate_count_{w}d",
                group="refunds",
                en=f"Share of orders placed in the last {w} days with an after-sales request.",
                zh=f"近{w}天订单中申请售后的比例。",
                unit="share",
                window_days=w,
                direction=1,
                nullable=True,
                compute=partial(_refund_rate, w=w, by_amount=False),
                reason_en="Refunds asked on {k} of {n} orders in the last {w} days ({value}), "
                "{rank}",
                reason_zh="近{w}天 {n} 单中 {k} 单申请退款 ({value}), {rank}",
                count_of=f"orders_{w}d",
            ),
            Feature(
                name=f"refund_rate_amount_{w}d",
                group="refunds",
                en=f"Share of the value of orders placed in the last {w} days asked back.",
                zh=f"近{w}天订单金额中申请退款金额的比例。",
                unit="share",
                window_days=w,
                direction=1,
                nullable=True,
                compute=partial(_refund_rate, w=w, by_amount=True),
            ),
        ]
    long = max(windows)

    def share(
        name: str,
        en: str,
        zh: str,
        pick: Callable[[pd.DataFrame], np.ndarray],
        direction: Literal[-1, 0, 1] = 1,
    ) -> Feature:
        return Feature(
            name=name,
            group="refunds",
            en=en,
            zh=zh,
            unit="share",
            window_days=long,
            direction=direction,
            nullable=True,
            compute=lambda s: ratio(
                s.count("refunds", s.since("refunds", long) & pick(s.refunds)),
                s.count("refunds", s.since("refunds", long)),
            ),
        )

    out += [
        share(
            f"refund_only_share_{long}d",
            f"Share of requests over {long} days that were refund-only (no return).",
            f"近{long}天售后中仅退款的比例。",
            lambda r: (r["type"] == "refund_only").to_numpy(),
        ),
        share(
            f"compensation_share_{long}d",
            f"Share of requests over {long} days asking for compensation.",
            f"近{long}天售后中要求补偿的比例。",
            lambda r: (r["type"] == "compensation").to_numpy(),
        ),
        share(
            f"fast_refund_share_{long}d",
            f"Share of requests over {long} days made within {fast_hours:g} hours after delivery.",
            f"近{long}天售后中签收后{fast_hours:g}小时内申请的比例。",
            # Requests before delivery are measured separately: a parcel that never
            # arrives makes "not received" claims honest, however soon they come.
            lambda r: (~r["before_delivery"] & (r["hours_to_request"] <= fast_hours)).to_numpy(),
        ),
        share(
            f"before_delivery_share_{long}d",
            f"Share of requests over {long} days made on orders not yet delivered.",
            f"近{long}天售后中未签收即申请的比例。",
            lambda r: r["before_delivery"].to_numpy(),
        ),
        share(
            f"reason_evidence_share_{long}d",
            f"Share of requests over {long} days claiming not received, damaged or "
            "missing parts (claims that need evidence).",
            f"近{long}天售后中以未收到货、破损、少件为由的比例。",
            lambda r: isin(r["reason"], EVIDENCE_REASONS),
        ),
        share(
            f"reason_quality_share_{long}d",
            f"Share of requests over {long} days about quality, description or wrong item.",
            f"近{long}天售后中以质量、描述不符、发错货为由的比例。",
            lambda r: isin(r["reason"], QUALITY_REASONS),
            0,
        ),
        share(
            f"reason_fit_share_{long}d",
            f"Share of requests over {long} days for size/fit or a change of mind.",
            f"近{long}天售后中以尺码不合适或不想要了为由的比例。",
            lambda r: isin(r["reason"], FIT_REASONS),
            0,
        ),
        share(
            f"reason_logistics_share_{long}d",
            f"Share of requests over {long} days blaming logistics.",
            f"近{long}天售后中以物流问题为由的比例。",
            lambda r: (r["reason"] == "logistics").to_numpy(),
            0,
        ),
        share(
            f"rejected_share_{long}d",
            f"Share of requests over {long} days already rejected at the cutoff.",
            f"近{long}天售后中截至当时已被驳回的比例。",
            lambda r: (r["status_at_cutoff"] == "rejected").to_numpy(),
        ),
        share(
            f"cancelled_share_{long}d",
            f"Share of requests over {long} days the buyer cancelled, as known at the cutoff.",
            f"近{long}天售后中截至当时已撤销的比例。",
            lambda r: (r["status_at_cutoff"] == "cancelled").to_numpy(),
        ),
        share(
            f"instant_share_{long}d",
            f"Share of requests over {long} days auto-approved as instant refunds.",
            f"近{long}天售后中极速退款的比例。",
            lambda r: r["instant"].to_numpy(),
        ),
        Feature(
            name=f"median_hours_to_refund_{long}d",
            group="refunds",
            en=f"Median hours from delivery (or payment, if undelivered) to request, {long} days.",
            zh=f"近{long}天从签收(未签收则从付款)到申请售后的中位小时数。",
            unit="hours",
            window_days=long,
            direction=-1,
            nullable=True,
            compute=lambda s: s.reduce(
                "refunds",
                s.refunds["hours_to_request"].to_numpy(),
                s.since("refunds", long),
                "median",
            ),
        ),
        Feature(
            name=f"min_hours_to_refund_{long}d",
            group="refunds",
            en=f"Shortest time in hours from delivery (or payment) to a request, {long} days.",
            zh=f"近{long}天从签收(或付款)到申请售后的最短小时数。",
            unit="hours",
            window_days=long,
            direction=-1,
            nullable=True,
            compute=lambda s: s.reduce(
                "refunds", s.refunds["hours_to_request"].to_numpy(), s.since("refunds", long), "min"
            ),
        ),
    ]
    return out


def _refund_rate(s: Snapshot, w: int, *, by_amount: bool) -> np.ndarray:
    in_window = s.since("orders", w)
    orders = s.orders
    if by_amount:
        asked = orders["asked_amount"].to_numpy()
        num = s.total("orders", np.minimum(asked, orders["amount"].to_numpy()), in_window)
        den = s.total("orders", orders["amount"].to_numpy(), in_window)
    else:
        num = s.count("orders", in_window & orders["has_request"].to_numpy())
        den = s.count("orders", in_window)
    return np.clip(ratio(num, den), 0.0, 1.0)


def _seller_features(windows: Sequence[int]) -> list[Feature]:
    long = max(windows)
    return [
        Feature(
            name=f"sellers_{long}d",
            group="sellers",
            en=f"Distinct sellers ordered from in {long} days.",
            zh=f"近{long}天下单的不同店铺数。",
            unit="count",
            window_days=long,
            direction=0,
            nullable=False,
            compute=lambda s: s.reduce(
                "orders", s.orders["seller_code"].to_numpy(), s.since("orders", long), "nunique"
            ),
        ),
        Feature(
            name=f"sellers_refunded_{long}d",
            group="sellers",
            en=f"Distinct sellers the buyer asked for after-sales in {long} days.",
            zh=f"近{long}天申请过售后的不同店铺数。",
            unit="count",
            window_days=long,
            direction=1,
            nullable=False,
            compute=lambda s: s.reduce(
                "refunds", s.refunds["seller_code"].to_numpy(), s.since("refunds", long), "nunique"
            ),
        ),
    ]


def _review_features(windows: Sequence[int]) -> list[Feature]:
    long = max(windows)

    def rated(s: Snapshot) -> np.ndarray:
        return s.since("reviews", long) & s.reviews["rating"].notna().to_numpy()

    def scored(s: Snapshot) -> np.ndarray:
        return s.since("reviews", long) & s.reviews["sentiment"].notna().to_numpy()

    return [
        Feature(
            name=f"reviews_{long}d",
            group="reviews",
            en=f"Reviews posted in {long} days.",
            zh=f"近{long}天评价数。",
            unit="count",
            window_days=long,
            direction=0,
            nullable=False,
            compute=lambda s: s.count("reviews", s.since("reviews", long)),
        ),
        Feature(
            name=f"mean_rating_{long}d",
            group="reviews",
            en=f"Average star rating over {long} days.",
            zh=f"近{long}天平均评分。",
            unit="stars",
            window_days=long,
            direction=-1,
            nullable=True,
            compute=lambda s: ratio(
                s.total("reviews", s.reviews["rating"].to_numpy(), rated(s)),
                s.count("reviews", rated(s)),
            ),
        ),
        Feature(
            name=f"low_rating_share_{long}d",
            group="reviews",
            en=f"Share of rated reviews over {long} days with 1 or 2 stars.",
            zh=f"近{long}天评价中1-2星差评的比例。",
            unit="share",
            window_days=long,
            direction=1,
            nullable=True,
            compute=lambda s: ratio(
                s.count("reviews", rated(s) & (s.reviews["rating"].to_numpy() <= 2)),
                s.count("reviews", rated(s)),
            ),
        ),
        Feature(
            name=f"mean_sentiment_{long}d",
            group="reviews",
            en=f"Average text sentiment of reviews over {long} days (0 negative, 1 positive).",
            zh=f"近{long}天评价文本的平均情感分(0负面,1正面)。",
            unit="score",
            window_days=long,
            direction=-1,
            nullable=True,
            compute=lambda s: ratio(
                s.total("reviews", s.reviews["sentiment"].to_numpy(), scored(s)),
                s.count("reviews", scored(s)),
            ),
        ),
        Feature(
            name=f"negative_text_share_{long}d",
            group="reviews",
            en=f"Share of review texts over {long} days the sentiment model reads as negative.",
            zh=f"近{long}天评价文本被判为负面的比例。",
            unit="share",
            window_days=long,
            direction=1,
            nullable=True,
            compute=lambda s: ratio(
                s.count("reviews", scored(s) & (s.reviews["sentiment"].to_numpy() < 0.5)),
                s.count("reviews", scored(s)),
            ),
        ),
    ]


def _window(s: Snapshot, table: EventTableName, days: int) -> np.ndarray:
    return s.since(table, days)


def _share_of_requests(s: Snapshot, days: int, pick: np.ndarray) -> np.ndarray:
    win = _window(s, "refunds", days)
    return ratio(s.count("refunds", win & pick), s.count("refunds", win))


def _after_delivery_between(s: Snapshot, lo_h: float, hi_h: float) -> np.ndarray:
    r = s.refunds
    hours = r["hours_to_request"].to_numpy()
    return ~r["before_delivery"].to_numpy(dtype=bool) & (hours >= lo_h) & (hours < hi_h)


def _partial_refund(s: Snapshot) -> np.ndarray:
    r = s.refunds
    amount = r["amount"].to_numpy()
    return (amount > 0) & (amount < 0.999 * r["order_amount"].to_numpy())


def _compensation_ratio(s: Snapshot, days: int) -> np.ndarray:
    r = s.refunds
    comp = _window(s, "refunds", days) & (r["type"].to_numpy(dtype=object) == "compensation")
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(
            r["order_amount"].to_numpy() > 0,
            r["amount"].to_numpy() / np.maximum(r["order_amount"].to_numpy(), 1e-9),
            np.nan,
        )
    comp &= np.isfinite(share)
    return ratio(s.total("refunds", np.nan_to_num(share), comp), s.count("refunds", comp))


def _reason_switch_rate(s: Snapshot, days: int) -> np.ndarray:
    r = s.refunds[_window(s, "refunds", days)]
    if r.empty:
        return np.full(s.n_buyers, np.nan)
    codes = pd.factorize(r["reason"].to_numpy(dtype=object), sort=True)[0]
    # Requests at the same instant are taken in reason order, so the file's row order
    # cannot change the value.
    order = np.lexsort((codes, r["requested_at"].to_numpy(), r["b"].to_numpy()))
    b = r["b"].to_numpy()[order]
    reason = codes[order]
    same_buyer = np.r_[False, b[1:] == b[:-1]]
    switched = same_buyer & np.r_[False, reason[1:] != reason[:-1]]
    n = np.bincount(b, minlength=s.n_buyers).astype("float64")
    return ratio(np.bincount(b[switched], minlength=s.n_buyers).astype("float64"), n - 1)


def _category_median(s: Snapshot) -> np.ndarray:
    """Each order's category median value among all orders before T (a global lookup)."""
    cached = s.cache.get("category_median")
    if cached is None:
        o = s.orders
        cat = o["category_code"].to_numpy()
        amount = o["amount"].to_numpy()
        overall = float(np.median(amount)) if amount.size else np.nan
        med = pd.Series(amount).groupby(cat).median()
        lookup = med.reindex(cat).to_numpy(dtype="float64")
        cached = np.where((cat < 0) | np.isnan(lookup), overall, lookup)
        s.cache["category_median"] = cached
    return np.asarray(cached)


def _value_vs_category(s: Snapshot, days: int) -> np.ndarray:
    win = _window(s, "orders", days)
    rel = s.orders["amount"].to_numpy() / np.maximum(_category_median(s), 1e-9)
    return ratio(s.total("orders", rel, win), s.count("orders", win))


def _high_value_share(s: Snapshot, days: int, factor: float) -> np.ndarray:
    win = _window(s, "orders", days)
    high = s.orders["amount"].to_numpy() > factor * _category_median(s)
    return ratio(s.count("orders", win & high), s.count("orders", win))


def _max_vs_own_median(s: Snapshot, days: int) -> np.ndarray:
    win = _window(s, "orders", days)
    amount = s.orders["amount"].to_numpy()
    top = s.reduce("orders", amount, win, "max")
    med = s.reduce("orders", amount, win, "median")
    return np.where(med > 0, top / np.where(med > 0, med, 1.0), np.nan)


def _late_night_share(s: Snapshot, days: int) -> np.ndarray:
    win = _window(s, "orders", days)
    night = s.orders["local_hour"].to_numpy() < 6
    return ratio(s.count("orders", win & night), s.count("orders", win))


def _top_category_share(s: Snapshot, days: int) -> np.ndarray:
    o = s.orders[_window(s, "orders", days)]
    counts = o.groupby(["b", "category_code"], sort=False).size()
    top = counts.groupby(level=0).max()
    out = np.zeros(s.n_buyers)
    out[top.index.to_numpy()] = top.to_numpy(dtype="float64")
    return ratio(out, s.count("orders", _window(s, "orders", days)))


def _peak_orders_per_day(s: Snapshot, days: int) -> np.ndarray:
    o = s.orders[_window(s, "orders", days)]
    per_day = o.groupby(["b", "local_day"], sort=False).size()
    peak = per_day.groupby(level=0).max()
    out = np.zeros(s.n_buyers)
    out[peak.index.to_numpy()] = peak.to_numpy(dtype="float64")
    return out


def _refund_seller_concentration(s: Snapshot, days: int) -> np.ndarray:
    r = s.refunds[_window(s, "refunds", days)]
    per_seller = r.groupby(["b", "seller_code"], sort=False).size()
    top = per_seller.groupby(level=0).max()
    out = np.zeros(s.n_buyers)
    out[top.index.to_numpy()] = top.to_numpy(dtype="float64")
    return ratio(out, s.count("refunds", _window(s, "refunds", days)))


def _reviews_share(s: Snapshot, days: int, pick: np.ndarray, base: np.ndarray) -> np.ndarray:
    win = _window(s, "reviews", days) & base
    return ratio(s.count("reviews", win & pick), s.count("reviews", win))


def _mismatch(s: Snapshot) -> np.ndarray:
    v = s.reviews
    rating = v["rating"].to_numpy()
    sent = v["sentiment"].to_numpy()
    return ((rating >= 4) & (sent < 0.3)) | ((rating <= 2) & (sent > 0.7))


def _rated_and_scored(s: Snapshot) -> np.ndarray:
    v = s.reviews
    return v["rating"].notna().to_numpy() & v["sentiment"].notna().to_numpy()


def _review_near_refund_share(s: Snapshot, days: int, hours: float) -> np.ndarray:
    win = _window(s, "refunds", days)
    r = s.refunds[win]
    v = s.reviews
    joined = pd.merge(
        pd.DataFrame(
            {
                "row": np.arange(len(r)),
                "oc": r["oc"].to_numpy(),
                "requested_at": r["requested_at"].to_numpy(),
            }
        ),
        pd.DataFrame({"oc": v["oc"].to_numpy(), "created_at": v["created_at"].to_numpy()}),
        on="oc",
    )
    gap = np.abs((joined["created_at"].to_numpy() - joined["requested_at"].to_numpy()) / HOUR)
    near_rows = np.unique(joined["row"].to_numpy()[gap <= hours])
    near = np.zeros(len(r), dtype=bool)
    near[near_rows] = True
    b = r["b"].to_numpy()
    return ratio(
        np.bincount(b[near], minlength=s.n_buyers).astype("float64"),
        np.bincount(b, minlength=s.n_buyers).astype("float64"),
    )


def _review_then_claim_share(s: Snapshot, days: int) -> np.ndarray:
    """Share of low-star reviews in the window followed by a claim on the same order.

    ``claim_at`` is the first claim within the allowed days after the review; it counts
    only if made before T (NaT compares False), so a claim after T never does.
    """
    v = s.reviews
    low = _window(s, "reviews", days) & (v["rating"].to_numpy() <= LOW_STARS)
    t = np.datetime64(s.cutoff.tz_convert(None), "us")
    followed = low & (v["claim_at"].to_numpy() < t)
    return ratio(s.count("reviews", followed), s.count("reviews", low))


def _duplicate_text_share(s: Snapshot, days: int) -> np.ndarray:
    v = s.reviews[_window(s, "reviews", days)]
    texted = v[v["text_code"].to_numpy() >= 0]
    sizes = texted.groupby(["b", "text_code"], sort=False)["b"].transform("size")
    dup = sizes.to_numpy() > 1
    b = texted["b"].to_numpy()
    return ratio(
        np.bincount(b[dup], minlength=s.n_buyers).astype("float64"),
        np.bincount(b, minlength=s.n_buyers).astype("float64"),
    )


def _links(s: Snapshot, cap: int) -> dict[str, pd.DataFrame]:
    """Pairs (b, other) of distinct buyers sharing an id of each kind, known at T.

    An id held by more than ``cap`` accounts (a parcel locker, a pickup point, a shared
    office card) links nobody: it says where people live or work, not who they are.
    """
    key = f"links_{cap}"
    cached = s.cache.get(key)
    if cached is not None:
        return dict(cached)
    o = s.orders
    out: dict[str, pd.DataFrame] = {}
    for kind in LINK_KINDS:
        held = pd.DataFrame({"id": o[kind].to_numpy(), "b": o["b"].to_numpy()})
        held = held[held["id"].to_numpy() >= 0].drop_duplicates()
        holders = held.groupby("id")["b"].transform("size").to_numpy()
        small = held[(holders >= 2) & (holders <= cap)]
        pairs = small.merge(small, on="id", suffixes=("", "_other"))
        pairs = pairs[pairs["b"].to_numpy() != pairs["b_other"].to_numpy()]
        out[kind] = pairs[["b", "b_other"]].drop_duplicates()
    out["any"] = pd.concat(list(out.values()), ignore_index=True).drop_duplicates()
    s.cache[key] = out
    return out


def _linked_count(s: Snapshot, kind: str, cap: int) -> np.ndarray:
    pairs = _links(s, cap)[kind]
    return np.bincount(pairs["b"].to_numpy(), minlength=s.n_buyers).astype("float64")


def _linked_mean(s: Snapshot, cap: int, value: np.ndarray) -> np.ndarray:
    pairs = _links(s, cap)["any"]
    other = value[pairs["b_other"].to_numpy()]
    ok = ~np.isnan(other)
    b = pairs["b"].to_numpy()[ok]
    return ratio(
        np.bincount(b, weights=other[ok], minlength=s.n_buyers),
        np.bincount(b, minlength=s.n_buyers).astype("float64"),
    )


def _known_abuser(s: Snapshot) -> np.ndarray:
    """1 for buyers whose latest label decision before T says abuser."""
    lab = s.labels.sort_values(["labeled_at", "label"], kind="stable")
    latest = lab.drop_duplicates("b", keep="last")
    out = np.zeros(s.n_buyers)
    out[latest["b"].to_numpy()[latest["label"].to_numpy() == 1]] = 1.0
    return out


def _linked_known_abusers(s: Snapshot, cap: int) -> np.ndarray:
    pairs = _links(s, cap)["any"]
    known = _known_abuser(s)[pairs["b_other"].to_numpy()]
    return np.bincount(pairs["b"].to_numpy(), weights=known, minlength=s.n_buyers)


def _max_holders(s: Snapshot) -> np.ndarray:
    o = s.orders
    out = np.zeros(s.n_buyers)
    for kind in LINK_KINDS:
        held = pd.DataFrame({"id": o[kind].to_numpy(), "b": o["b"].to_numpy()})
        held = held[held["id"].to_numpy() >= 0].drop_duplicates()
        holders = held.groupby("id")["b"].transform("size").to_numpy(dtype="float64")
        np.maximum.at(out, held["b"].to_numpy(), holders)
    return out


def _extra_refund_features(long: int) -> list[Feature]:
    return [
        Feature(
            name=f"within_1h_share_{long}d",
            group="refunds",
            en=f"Share of requests over {long} days made within 1 hour after delivery.",
            zh=f"近{long}天售后中签收后1小时内申请的比例。",
            unit="share",
            window_days=long,
            direction=1,
            nullable=True,
            compute=lambda s: _share_of_requests(s, long, _after_delivery_between(s, 0, 1)),
        ),
        Feature(
            name=f"window_end_share_{long}d",
            group="refunds",
            en=f"Share of requests over {long} days made on day 6 or 7 of the 7-day return window.",
            zh=f"近{long}天售后中在7天无理由退货期最后2天申请的比例。",
            unit="share",
            window_days=long,
            direction=1,
            nullable=True,
            compute=lambda s: _share_of_requests(s, long, _after_delivery_between(s, 120, 168)),
        ),
        Feature(
            name=f"partial_refund_share_{long}d",
            group="refunds",
            en=f"Share of requests over {long} days asking back only part of the order's value.",
            zh=f"近{long}天售后中部分退款的比例。",
            unit="share",
            window_days=long,
            direction=0,
            nullable=True,
            compute=lambda s: _share_of_requests(s, long, _partial_refund(s)),
        ),
        Feature(
            name=f"compensation_ratio_{long}d",
            group="refunds",
            en=f"Average compensation asked, as a share of the order's value, over {long} days.",
            zh=f"近{long}天补偿申请金额占订单金额的平均比例。",
            unit="share",
            window_days=long,
            direction=1,
            nullable=True,
            compute=lambda s: _compensation_ratio(s, long),
        ),
        Feature(
            name=f"reason_switch_rate_{long}d",
            group="refunds",
            en=f"Share of consecutive requests over {long} days that give a different reason.",
            zh=f"近{long}天相邻两次售后更换理由的比例。",
            unit="share",
            window_days=long,
            direction=1,
            nullable=True,
            compute=lambda s: _reason_switch_rate(s, long),
        ),
    ]


def _extra_order_features(long: int) -> list[Feature]:
    return [
        Feature(
            name=f"max_vs_own_median_{long}d",
            group="orders",
            en=f"Largest order over {long} days, as a multiple of the buyer's median order.",
            zh=f"近{long}天最大订单金额是本人订单中位数的倍数。",
            unit="ratio",
            window_days=long,
            direction=1,
            nullable=True,
            compute=lambda s: _max_vs_own_median(s, long),
        ),
        Feature(
            name=f"value_vs_category_{long}d",
            group="orders",
            en=f"Average order value over {long} days relative to its category's median.",
            zh=f"近{long}天订单金额相对品类中位价的平均倍数。",
            unit="ratio",
            window_days=long,
            direction=1,
            nullable=True,
            compute=lambda s: _value_vs_category(s, long),
        ),
        Feature(
            name=f"high_value_share_{long}d",
            group="orders",
            en=f"Share of orders over {long} days worth more than 3 times their category's median.",
            zh=f"近{long}天订单中金额超过品类中位价3倍的比例。",
            unit="share",
            window_days=long,
            direction=1,
            nullable=True,
            compute=lambda s: _high_value_share(s, long, 3.0),
        ),
        Feature(
            name=f"late_night_share_{long}d",
            group="orders",
            en=f"Share of orders over {long} days placed between midnight and 6 a.m. local time.",
            zh=f"近{long}天凌晨0-6点下单的比例。",
            unit="share",
            window_days=long,
            direction=1,
            nullable=True,
            compute=lambda s: _late_night_share(s, long),
        ),
        Feature(
            name=f"top_category_share_{long}d",
            group="orders",
            en=f"Share of orders over {long} days in the buyer's most frequent category.",
            zh=f"近{long}天最常购买品类的订单占比。",
            unit="share",
            window_days=long,
            direction=0,
            nullable=True,
            compute=lambda s: _top_category_share(s, long),
        ),
        Feature(
            name=f"peak_orders_per_day_{long}d",
            group="orders",
            en=f"Most orders placed on a single local day over {long} days.",
            zh=f"近{long}天单日最多下单数。",
            unit="count",
            window_days=long,
            direction=0,
            nullable=False,
            compute=lambda s: _peak_orders_per_day(s, long),
        ),
    ]


def _extra_seller_features(long: int) -> list[Feature]:
    return [
        Feature(
            name=f"refund_seller_concentration_{long}d",
            group="sellers",
            en=f"Share of the buyer's requests over {long} days made to their most-refunded seller "
            "(high: one dispute; low: claims spread over many shops).",
            zh=f"近{long}天售后集中在同一店铺的比例(高:单一纠纷;低:多店铺连续索赔)。",
            unit="share",
            window_days=long,
            direction=-1,
            nullable=True,
            compute=lambda s: _refund_seller_concentration(s, long),
        ),
    ]


def _extra_review_features(long: int) -> list[Feature]:
    return [
        Feature(
            name=f"rating_text_mismatch_share_{long}d",
            group="reviews",
            en=f"Share of reviews over {long} days whose stars and text disagree.",
            zh=f"近{long}天评分与文字情感相反的评价比例。",
            unit="share",
            window_days=long,
            direction=1,
            nullable=True,
            compute=lambda s: _reviews_share(s, long, _mismatch(s), _rated_and_scored(s)),
        ),
        Feature(
            name=f"review_near_refund_share_{long}d",
            group="reviews",
            en=f"Share of requests over {long} days with a review of the same order within 48 "
            "hours before or after.",
            zh=f"近{long}天售后申请前后48小时内对同一订单发表评价的比例。",
            unit="share",
            window_days=long,
            direction=1,
            nullable=True,
            compute=lambda s: _review_near_refund_share(s, long, 48.0),
        ),
        Feature(
            name=f"duplicate_text_share_{long}d",
            group="reviews",
            en=f"Share of the buyer's review texts over {long} days that repeat word for word.",
            zh=f"近{long}天评价文字重复(模板化)的比例。",
            unit="share",
            window_days=long,
            direction=1,
            nullable=True,
            compute=lambda s: _duplicate_text_share(s, long),
        ),
        Feature(
            name=f"mean_review_length_{long}d",
            group="reviews",
            en=f"Average review length in characters over {long} days.",
            zh=f"近{long}天评价平均字数。",
            unit="count",
            window_days=long,
            direction=0,
            nullable=True,
            compute=lambda s: ratio(
                s.total(
                    "reviews",
                    np.nan_to_num(s.reviews["text_len"].to_numpy()),
                    _window(s, "reviews", long) & s.reviews["text_len"].notna().to_numpy(),
                ),
                s.count(
                    "reviews",
                    _window(s, "reviews", long) & s.reviews["text_len"].notna().to_numpy(),
                ),
            ),
        ),
        Feature(
            name=f"extortion_review_share_{long}d",
            group="reviews",
            en=f"Share of reviews over {long} days that the extortion lexicon reads as a "
            "demand or threat (structure score at least 0.5: a demand tied to a threat, a "
            "rating offered for money, threats of more bad reviews).",
            zh=f"近{long}天评价中被勒索词库判为索要或威胁的比例(结构分≥0.5: 以威胁为条件索要"
            "赔偿、以评价换钱、威胁追加差评)。",
            unit="share",
            window_days=long,
            direction=1,
            nullable=True,
            compute=lambda s: _reviews_share(
                s,
                long,
                s.reviews["extortion_score"].to_numpy() >= FLAG_THRESHOLD,
                np.ones(len(s.reviews), dtype=bool),
            ),
        ),
        Feature(
            name=f"max_demand_score_{long}d",
            group="reviews",
            en=f"Highest demand-model score of the buyer's 1-2 star reviews over {long} days "
            "(a model learned from which low-star reviews came with compensation or "
            "refund-only requests, trained only on data before the cutoff).",
            zh=f"近{long}天1-2星差评的最高索赔模型分(模型从平台自身数据学习哪些差评伴随补偿或"
            "仅退款申请, 只用截止时间之前的数据训练)。",
            unit="score",
            window_days=long,
            direction=1,
            nullable=True,
            compute=lambda s: s.reduce(
                "reviews",
                s.reviews["demand_score"].to_numpy(dtype="float64"),
                _window(s, "reviews", long)
                & (s.reviews["rating"].to_numpy() <= LOW_STARS)
                & s.reviews["demand_score"].notna().to_numpy(),
                "max",
            ),
        ),
        Feature(
            name=f"conditional_threats_{long}d",
            group="reviews",
            en=f"Reviews over {long} days tying a demand to a threat by a condition "
            "(\"pay me or I report you\").",
            zh=f"近{long}天以条件把索要和威胁连在一起的评价数(\"不赔钱就投诉\")。",
            unit="count",
            window_days=long,
            direction=1,
            nullable=False,
            compute=lambda s: s.count(
                "reviews", _window(s, "reviews", long) & s.reviews["conditional"].to_numpy()
            ),
        ),
        Feature(
            name=f"review_then_claim_share_{long}d",
            group="reviews",
            en=f"Share of the buyer's 1-2 star reviews over {long} days followed within "
            f"{CLAIM_AFTER_REVIEW_DAYS} days by a compensation or refund-only request on "
            "the same order.",
            zh=f"近{long}天1-2星差评中, 发布后{CLAIM_AFTER_REVIEW_DAYS}天内同一订单又申请补偿或"
            "仅退款的比例。",
            unit="share",
            window_days=long,
            direction=1,
            nullable=True,
            compute=lambda s: _review_then_claim_share(s, long),
        ),
    ]


def _linked_features(long: int, cap: int) -> list[Feature]:
    def rate(s: Snapshot) -> np.ndarray:
        return _refund_rate(s, long, by_amount=False)

    return [
        *[
            Feature(
                name=f"linked_accounts_{kind}",
                group="linked",
                en=f"Other accounts that used the same {kind} (ids shared by more than {cap} "
                "accounts, such as parcel lockers, are ignored).",
                zh=f"与本账号共用{zh}的其他账号数(超过{cap}个账号共用的标识如快递柜不计)。",
                unit="count",
                window_days=None,
                direction=1,
                nullable=False,
                compute=partial(_linked_count, kind=kind, cap=cap),
            )
            for kind, zh in (("device", "设备"), ("address", "收货地址"), ("payment", "支付方式"))
        ],
        Feature(
            name="linked_accounts_any",
            group="linked",
            en="Other accounts sharing any device, address or payment method with this one.",
            zh="与本账号共用设备、地址或支付方式的其他账号数。",
            unit="count",
            window_days=None,
            direction=1,
            nullable=False,
            compute=partial(_linked_count, kind="any", cap=cap),
        ),
        Feature(
            name=f"linked_refund_rate_{long}d",
            group="linked",
            en=f"Average {long}-day refund rate of the linked accounts.",
            zh=f"关联账号近{long}天的平均退款率。",
            unit="share",
            window_days=long,
            direction=1,
            nullable=True,
            compute=lambda s: _linked_mean(s, cap, rate(s)),
        ),
        Feature(
            name="linked_known_abusers",
            group="linked",
            en="Linked accounts already labeled abusers before the cutoff.",
            zh="截至当时已被认定为恶意的关联账号数。",
            unit="count",
            window_days=None,
            direction=1,
            nullable=False,
            compute=partial(_linked_known_abusers, cap=cap),
        ),
        Feature(
            name="max_accounts_per_id",
            group="linked",
            en="Most accounts seen on any one of this buyer's devices, addresses or payment "
            "methods (parcel lockers and offices score high).",
            zh="本账号所用设备、地址、支付方式中被最多账号共用的数量(快递柜、公司地址较高)。",
            unit="count",
            window_days=None,
            direction=0,
            nullable=False,
            compute=_max_holders,
        ),
    ]


def build_catalog(params: FeaturesParams) -> tuple[Feature, ...]:
    """The feature catalog for the configured windows.

    Args:
        params: Feature settings (windows, fast-refund hours).

    Returns:
        Every feature, in model column order.
    """
    windows = sorted(set(params.windows_days))
    long = max(windows)
    return tuple(
        _orders_features(windows, params.history_cap_days)
        + _extra_order_features(long)
        + _refund_features(windows, params.fast_refund_hours)
        + _extra_refund_features(long)
        + _seller_features(windows)
        + _extra_seller_features(long)
        + _review_features(windows)
        + _extra_review_features(long)
        + _linked_features(long, params.link_max_accounts)
    )


@dataclass(frozen=True)
class NoHistory:
    """What the catalog says about a buyer with no order before the cutoff.

    The model has nothing of theirs to judge, so they get a fixed tier and reason
    rather than a score extrapolated from empty features.

    Attributes:
        tier: The tier they are placed in.
        en: The reason, in English.
        zh: The reason, in Chinese.
        feature: The feature that is missing exactly when there is no history.
    """

    tier: str
    en: str
    zh: str
    feature: str


NO_HISTORY: Final = NoHistory(
    tier="standard",
    en="No orders before this date, so no history to judge: normal after-sales process",
    zh="此前没有订单记录, 无历史可评估: 按正常售后流程处理",
    feature="days_since_first_order",
)


# Each is NaN exactly when the buyer had no order before the cutoff (both come from the
# buyer's orders before it). The first one a model has decides the no-history tier: the
# time-consistency check may leave days_since_first_order out of the model.
HISTORY_FEATURES: Final = (NO_HISTORY.feature, "days_since_last_order")


def has_history(features: pd.DataFrame) -> np.ndarray:
    """Whether each row's buyer had ordered before the cutoff.

    Args:
        features: Feature rows (holding ``NO_HISTORY.feature``).

    Returns:
        One boolean per row.
    """
    return np.isfinite(features[NO_HISTORY.feature].to_numpy(dtype="float64"))


def catalog_version(catalog: Sequence[Feature]) -> str:
    """A short fingerprint of the catalog's names, units, windows and directions.

    A model records it; a scorer refuses features computed by a different catalog.

    Args:
        catalog: The catalog.

    Returns:
        12 hex characters.
    """
    text = "|".join(f"{f.name}:{f.unit}:{f.window_days}:{f.direction}" for f in catalog)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def catalog_markdown(catalog: Sequence[Feature]) -> str:
    """Render the catalog as the README's feature table.

    Args:
        catalog: The catalog.

    Returns:
        A markdown table.
    """
    arrow = {1: "↑ risk", -1: "↓ risk", 0: "neither"}
    lines = [
        "| feature | group | unit | window | direction | meaning | 含义 |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in catalog:
        window = f"{f.window_days} d" if f.window_days else "all"
        lines.append(
            f"| {f.name} | {f.group} | {f.unit} | {window} | {arrow[f.direction]} "
            f"| {f.en} | {f.zh} |"
        )
    return "\n".join(lines) + "\n"
