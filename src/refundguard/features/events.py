"""Events as of a cutoff: the validated tables joined once, and a buyer-indexed snapshot at T.

Two clocks govern every fact. An event counts at cutoff T only if it happened before T
(``created_at``, ``requested_at`` < T), and a refund's outcome counts only if it was known
before T (``resolved_at`` < T; otherwise the request is still pending at T). Delivery
times after T are unknown at T. Windows are half-open, [T - w, T).

Review texts carry two kinds of extortion evidence. The lexicon detector's structure
score (:func:`refundguard.features.extortion.detect`) reads the text alone, so it is
computed once. The learned demand model's score depends on when the model was trained:
a snapshot at T reads the scores of the latest model trained on data before T
(:class:`refundguard.features.extortion.DemandScores`), never a later one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from refundguard.contract.vocabulary import SYSTEM_REVIEW_TEXTS
from refundguard.data.frames import isin
from refundguard.errors import DataContractError
from refundguard.features.extortion import (
    FLAG_THRESHOLD,
    DemandScores,
    Lexicon,
    detect,
    load_lexicon,
)

EVIDENCE_REASONS = ("not_received", "damaged", "missing_parts")


QUALITY_REASONS = ("quality", "not_as_described", "wrong_item")


FIT_REASONS = ("size_fit", "changed_mind")


LINK_KINDS = ("device", "address", "payment")


# A compensation or refund-only request this soon (days) after a review of the same order
# is the review used as leverage (the demand model's weak-label window, 7 days).
CLAIM_AFTER_REVIEW_DAYS = 7


# Request types that ask for money without sending the goods back.
CLAIM_TYPES = ("compensation", "refund_only")


HOUR = np.timedelta64(1, "h")


DAY = np.timedelta64(1, "D")


# The event tables a snapshot counts and sums over, by their contract names.
EventTableName = Literal["orders", "refunds", "reviews"]


@dataclass(frozen=True)
class Snapshot:
    """Everything known at one cutoff, as flat arrays keyed by integer buyer codes.

    Attributes:
        cutoff: The cutoff T (UTC).
        n_buyers: Number of buyer codes; arrays of per-buyer values have this length.
        orders: Orders created before T; ``delivered_at`` is NaT where not known by T.
        refunds: Requests made before T, joined to their order; ``status_at_cutoff`` is
            "pending" where the outcome was not known by T.
        reviews: Reviews posted before T, with a ``sentiment`` column (NaN if unscored)
            and ``demand_score``, the demand model's score as known at T (NaN if
            unscored: not a low-star review with text, or no model trained before T).
        registered_at: Account opening time per buyer code (NaT if unknown).
        labels: Label decisions made before T (``b``, ``label``, ``labeled_at``).
    """

    cutoff: pd.Timestamp
    n_buyers: int
    orders: pd.DataFrame
    refunds: pd.DataFrame
    reviews: pd.DataFrame
    registered_at: np.ndarray
    labels: pd.DataFrame
    # Intermediate results several features share (category medians, account links).
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def since(self, table: EventTableName, days: int) -> np.ndarray:
        """Mask of a table's rows in the window [T - days, T).

        Args:
            table: Which table.
            days: Window length.

        Returns:
            Boolean mask over the table's rows.
        """
        df = getattr(self, table)
        col = "requested_at" if table == "refunds" else "created_at"
        start = np.datetime64((self.cutoff - pd.Timedelta(days=days)).tz_convert(None), "us")
        return df[col].to_numpy() >= start

    def count(self, table: EventTableName, mask: np.ndarray) -> np.ndarray:
        """Rows per buyer among the masked rows.

        Args:
            table: Which table.
            mask: Rows to count.

        Returns:
            Counts per buyer code, as float64.
        """
        codes = getattr(self, table)["b"].to_numpy()
        return np.bincount(codes[mask], minlength=self.n_buyers).astype("float64")

    def total(
        self, table: EventTableName, values: np.ndarray, mask: np.ndarray
    ) -> np.ndarray:
        """Sum of values per buyer among the masked rows.

        Args:
            table: Which table.
            values: One value per row of the table.
            mask: Rows to add up.

        Returns:
            Sums per buyer code.
        """
        codes = getattr(self, table)["b"].to_numpy()
        return np.bincount(codes[mask], weights=values[mask], minlength=self.n_buyers)

    def reduce(
        self,
        table: EventTableName,
        values: np.ndarray,
        mask: np.ndarray,
        how: Literal["median", "min", "max", "nunique"],
    ) -> np.ndarray:
        """A per-buyer statistic of the masked values; NaN for buyers with none.

        Args:
            table: Which table.
            values: One value per row of the table.
            mask: Rows to use.
            how: The statistic.

        Returns:
            One value per buyer code.
        """
        codes = getattr(self, table)["b"].to_numpy()[mask]
        vals = pd.Series(values[mask])
        grouped = getattr(vals.groupby(codes, sort=False), how)()
        out = np.full(self.n_buyers, np.nan)
        out[grouped.index.to_numpy()] = grouped.to_numpy(dtype="float64")
        if how == "nunique":
            out = np.nan_to_num(out, nan=0.0)
        return out


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Divide num by den, NaN where den is 0 (nothing to measure is unknown, not 0).

    Args:
        num: Numerators.
        den: Denominators.

    Returns:
        The ratios.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


@dataclass(frozen=True)
class EventTables:
    """Validated tables joined once, with integer buyer codes, ready for any cutoff.

    Attributes:
        buyer_ids: Every buyer id; a buyer's code is its position here.
        orders: Orders with ``b`` (buyer code) and ``seller_code``.
        refunds: Requests joined to their order (buyer, seller, order time and amount,
            delivery time).
        reviews: Reviews joined to their order's buyer, with ``sentiment``, text length,
            the extortion detector's ``extortion_score`` and ``conditional`` flag (a
            demand tied to a threat by a condition, scoring at least the flag
            threshold), ``claim_at`` (the first compensation or refund-only request on
            the order within :data:`CLAIM_AFTER_REVIEW_DAYS` after the review, NaT if
            none), and a code per distinct text.
        registered_at: Account opening time per buyer code.
        labels: Label decisions with buyer codes (for linked-account features).
        demand_at: When each demand model's training data was cut (naive UTC), ascending.
        demand: Demand-model score of each review (columns, in ``reviews`` order) under
            each model (rows); NaN where unscored.
    """

    buyer_ids: pd.Index
    orders: pd.DataFrame
    refunds: pd.DataFrame
    reviews: pd.DataFrame
    registered_at: np.ndarray
    labels: pd.DataFrame
    demand_at: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype="datetime64[us]")
    )
    demand: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


def _naive_utc(s: pd.Series) -> pd.Series:
    """UTC times without the zone, so that numpy arithmetic is plain and fast."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.astype("datetime64[us]")


def prepare_events(
    orders: pd.DataFrame,
    refunds: pd.DataFrame,
    reviews: pd.DataFrame,
    buyers: pd.DataFrame | None = None,
    sentiment: pd.DataFrame | None = None,
    extra_buyer_ids: Sequence[str] = (),
    *,
    labels: pd.DataFrame | None = None,
    timezone: str = "Asia/Shanghai",
    lexicon: Lexicon | None = None,
    demand: DemandScores | None = None,
) -> EventTables:
    """Join validated tables once so that each cutoff only filters.

    Args:
        orders: Validated orders.
        refunds: Validated refunds.
        reviews: Validated reviews.
        buyers: Validated buyers (optional).
        sentiment: review_id and sentiment (probability the text is positive); optional.
        extra_buyer_ids: Buyers to include even without any rows (e.g. a scoring list).
        labels: Validated labels, for the linked-account features (optional).
        timezone: Zone for local clock features (hour of day, calendar day).
        lexicon: Extortion patterns for the detector; None for the shipped lexicon.
        demand: Demand-model scores by training cutoff
            (:func:`refundguard.features.extortion.demand_history`); None leaves every
            review's demand score missing.

    Returns:
        The joined event tables. The inputs are not modified.
    """
    buyers = buyers if buyers is not None else pd.DataFrame({"buyer_id": [], "registered_at": []})
    # Object dtype on purpose: hashing lookups on it are far faster than on Arrow strings.
    ids = pd.Index(
        np.array(
            sorted(
                # unique() first: iterating an Arrow string column in Python is slow.
                set(orders["buyer_id"].dropna().unique().tolist())
                | set(buyers["buyer_id"].dropna().unique().tolist())
                | {str(b) for b in extra_buyer_ids}
            ),
            dtype=object,
        ),
        dtype=object,
    )
    order_ids = pd.Index(orders["order_id"].to_numpy(dtype=object))
    if not order_ids.is_unique:
        raise DataContractError("orders: order_id is not unique (validate the tables first)")
    o = pd.DataFrame(
        {
            # Integer order codes: joins on them avoid hashing strings at every cutoff.
            "oc": np.arange(len(orders), dtype="int64"),
            "b": ids.get_indexer(orders["buyer_id"].to_numpy(dtype=object)),
            "seller_code": pd.factorize(orders["seller_id"].to_numpy(dtype=object), sort=True)[0],
            "created_at": _naive_utc(orders["created_at"]).to_numpy(),
            "delivered_at": _naive_utc(orders["delivered_at"]).to_numpy(),
            "amount": orders["amount"].to_numpy(dtype="float64"),
            "category_code": pd.factorize(orders["category"].to_numpy(dtype=object), sort=True)[0],
            **{
                kind: pd.factorize(orders[f"{kind}_id"].to_numpy(dtype=object), sort=True)[0]
                for kind in LINK_KINDS
            },
        }
    )
    local = orders["created_at"].dt.tz_convert(timezone)
    o["local_hour"] = local.dt.hour.to_numpy(dtype="int64")
    o["local_day"] = (
        local.dt.tz_localize(None).dt.floor("D") - pd.Timestamp("2000-01-01")
    ).dt.days.to_numpy(dtype="int64")

    def of_orders(order_id: pd.Series, what: str) -> np.ndarray:
        pos = order_ids.get_indexer(order_id.to_numpy(dtype=object))
        if (pos < 0).any():
            raise DataContractError(f"{what} for unknown orders (validate the tables first)")
        return pos

    r_pos = of_orders(refunds["order_id"], "refunds")
    r = pd.DataFrame(
        {
            "oc": r_pos,
            "b": o["b"].to_numpy()[r_pos],
            "seller_code": o["seller_code"].to_numpy()[r_pos],
            "order_created_at": o["created_at"].to_numpy()[r_pos],
            "delivered_at": o["delivered_at"].to_numpy()[r_pos],
            "order_amount": o["amount"].to_numpy()[r_pos],
            "requested_at": _naive_utc(refunds["requested_at"]).to_numpy(),
            "resolved_at": _naive_utc(refunds["resolved_at"]).to_numpy(),
            "amount": refunds["amount"].to_numpy(dtype="float64"),
            "type": refunds["type"].to_numpy(dtype=object),
            "reason": refunds["reason"].to_numpy(dtype=object),
            "status": refunds["status"].to_numpy(dtype=object),
            "instant": refunds["instant"].fillna(False).to_numpy(dtype=bool),
        }
    )
    v_pos = of_orders(reviews["order_id"], "reviews")
    text = reviews["text"].astype("str").str.strip()
    templated = text.mask(isin(text, SYSTEM_REVIEW_TEXTS) | (text == ""))
    v = pd.DataFrame(
        {
            "b": o["b"].to_numpy()[v_pos],
            "oc": v_pos,
            "created_at": _naive_utc(reviews["created_at"]).to_numpy(),
            "rating": reviews["rating"].to_numpy(dtype="float64"),
            "text_len": text.str.len().to_numpy(dtype="float64"),
            "text_code": pd.factorize(templated.to_numpy(dtype=object))[0],
        }
    )
    found = detect(templated.fillna("").tolist(), lexicon or load_lexicon())
    v["extortion_score"] = found["score"].to_numpy(dtype="float64")
    # Conditional structures scoring below the flag threshold are a plain refund tied to
    # a complaint to a regulator ("再不退款我就去12315"): an honest buyer's last resort as
    # often as not (see extortion.SCORE_CONDITIONAL_REQUEST_ESCALATION), not counted.
    v["conditional"] = found["conditional"].to_numpy(dtype=bool) & (
        v["extortion_score"].to_numpy() >= FLAG_THRESHOLD
    )
    v["claim_at"] = _first_claim_after(v, r, CLAIM_TYPES, CLAIM_AFTER_REVIEW_DAYS)
    demand_at = np.zeros(0, dtype="datetime64[us]")
    demand_matrix = np.zeros((0, len(v)))
    if demand is not None and len(demand.trained_at):
        demand_at = np.asarray(
            [np.datetime64(t.to_datetime64(), "us") for t in demand.trained_at],
            dtype="datetime64[us]",
        )
        pos = pd.Index(demand.review_ids).get_indexer(reviews["review_id"].to_numpy(dtype=object))
        demand_matrix = np.full((len(demand_at), len(v)), np.nan)
        hit = pos >= 0
        demand_matrix[:, hit] = demand.scores[:, pos[hit]]
    if sentiment is not None and len(sentiment):
        scored = pd.Index(sentiment["review_id"].to_numpy(dtype=object))
        pos = scored.get_indexer(reviews["review_id"].to_numpy(dtype=object))
        values = sentiment["sentiment"].to_numpy(dtype="float64")
        v["sentiment"] = np.where(pos >= 0, values[np.maximum(pos, 0)], np.nan)
    else:
        v["sentiment"] = np.nan
    registered = np.full(len(ids), np.datetime64("NaT"), dtype="datetime64[us]")
    if len(buyers):
        known = buyers.dropna(subset=["buyer_id"])
        registered[ids.get_indexer(known["buyer_id"].to_numpy(dtype=object))] = _naive_utc(
            known["registered_at"]
        ).to_numpy()
    lab = (
        labels
        if labels is not None
        else pd.DataFrame(
            {"buyer_id": [], "label": [], "labeled_at": pd.Series([], dtype="datetime64[us, UTC]")}
        )
    )
    lab_codes = ids.get_indexer(lab["buyer_id"].to_numpy(dtype=object))
    known_buyer = lab_codes >= 0
    label_frame = pd.DataFrame(
        {
            "b": lab_codes[known_buyer],
            "label": lab["label"].to_numpy(dtype="float64")[known_buyer],
            "labeled_at": _naive_utc(lab["labeled_at"]).to_numpy()[known_buyer],
        }
    )
    return EventTables(
        buyer_ids=ids,
        labels=label_frame,
        orders=o,
        refunds=r.astype({"b": "int64", "seller_code": "int64"}),
        reviews=v.astype({"b": "int64"}),
        registered_at=registered,
        demand_at=demand_at,
        demand=demand_matrix,
    )


def _first_claim_after(
    reviews: pd.DataFrame, refunds: pd.DataFrame, types: Sequence[str], days: float
) -> np.ndarray:
    """Per review, the first request of ``types`` on its order within ``days`` after it.

    NaT where there is none. A snapshot at T counts the claim only when this time is
    before T (a request at or after T is not known at T), so it is computed once here.
    """
    claims = refunds[isin(refunds["type"], types)]
    joined = pd.merge(
        pd.DataFrame(
            {
                "row": np.arange(len(reviews)),
                "oc": reviews["oc"].to_numpy(),
                "created_at": reviews["created_at"].to_numpy(),
            }
        ),
        pd.DataFrame(
            {"oc": claims["oc"].to_numpy(), "requested_at": claims["requested_at"].to_numpy()}
        ),
        on="oc",
    )
    gap = (joined["requested_at"].to_numpy() - joined["created_at"].to_numpy()) / DAY
    near = joined[(gap >= 0) & (gap <= days)]
    first = near.groupby("row", sort=True)["requested_at"].min()
    out = np.full(len(reviews), np.datetime64("NaT"), dtype="datetime64[us]")
    out[first.index.to_numpy()] = first.to_numpy(dtype="datetime64[us]")
    return out


def snapshot(events: EventTables, cutoff: pd.Timestamp) -> Snapshot:
    """What was known at ``cutoff``: the point-in-time view of the events.

    Args:
        events: Joined event tables.
        cutoff: The cutoff T (tz-aware, or naive UTC).

    Returns:
        The snapshot at T.
    """
    cutoff = pd.Timestamp(cutoff)
    cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff.tz_convert("UTC")
    t = np.datetime64(cutoff.tz_convert(None), "us")

    o = events.orders[events.orders["created_at"].to_numpy() < t].copy()
    o.loc[~(o["delivered_at"].to_numpy() < t), "delivered_at"] = np.datetime64("NaT")

    r = events.refunds[events.refunds["requested_at"].to_numpy() < t].copy()
    delivered = r["delivered_at"].to_numpy()
    requested = r["requested_at"].to_numpy()
    delivered_before = delivered < requested  # NaT compares False: not delivered (yet)
    start = np.where(delivered_before, delivered, r["order_created_at"].to_numpy())
    r["hours_to_request"] = (requested - start) / HOUR
    r["before_delivery"] = ~delivered_before
    known = r["resolved_at"].to_numpy() < t
    r["status_at_cutoff"] = np.where(known, r["status"].to_numpy(), "pending")

    n_orders = len(events.orders)
    oc = r["oc"].to_numpy()
    asked = np.bincount(oc, weights=r["amount"].to_numpy(), minlength=n_orders)
    requests = np.bincount(oc, minlength=n_orders)
    o["asked_amount"] = asked[o["oc"].to_numpy()]
    o["has_request"] = requests[o["oc"].to_numpy()] > 0

    posted = events.reviews["created_at"].to_numpy() < t
    v = events.reviews[posted]
    # The latest demand model trained on data before T (searchsorted "right": one cut
    # exactly at T saw only data before T, so it may be used at T).
    k = int(np.searchsorted(events.demand_at, t, side="right")) - 1
    v["demand_score"] = events.demand[k][posted] if k >= 0 else np.nan
    labels = events.labels[events.labels["labeled_at"].to_numpy() < t]
    # The before-T rule, applied here once for every table: a registration at or after T
    # (NaT compares False) is not known at T.
    registered = np.where(
        events.registered_at < t, events.registered_at, np.datetime64("NaT")
    ).astype(events.registered_at.dtype)
    return Snapshot(
        labels=labels,
        cutoff=cutoff,
        n_buyers=len(events.buyer_ids),
        orders=o,
        refunds=r,
        reviews=v,
        registered_at=registered,
    )
