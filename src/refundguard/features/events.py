"""Events as of a cutoff: the validated tables joined once, and a buyer-indexed snapshot at T.

Two clocks govern every fact. An event counts at cutoff T only if it happened before T
(``created_at``, ``requested_at`` < T), and a refund's outcome counts only if it was known
before T (``resolved_at`` < T; otherwise the request is still pending at T). Delivery
times after T are unknown at T. Windows are half-open, [T - w, T).
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

EVIDENCE_REASONS = ("not_received", "damaged", "missing_parts")


QUALITY_REASONS = ("quality", "not_as_described", "wrong_item")


FIT_REASONS = ("size_fit", "changed_mind")


LINK_KINDS = ("device", "address", "payment")


# Extortion language: a demand for money, or a threat of more bad reviews or of a
# complaint to the platform or 12315. A complaint about the goods, however angry, is neither.
EXTORTION_PATTERN = (
    r"(?i)(?:赔偿|补偿|赔钱|退钱|不赔|赔我|给个说法|賠償|補償|賠錢|退錢|不賠|賠我|"
    r"就给差评|给差评|天天差评|追加差评|全部差评|就給差評|給差評|天天差評|追加差評|"
    r"就投诉|投诉到|投诉你|12315|曝光你|举报你|就投訴|投訴到|舉報你|市场监管|市場監管|"
    r"compensat|refund me|pay me|report you|complain to|bad reviews? everywhere|"
    r"leave (?:a )?bad review|or (?:else|i will|i'll)|expose you)"
)


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
        reviews: Reviews posted before T, with a ``sentiment`` column (NaN if unscored).
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
            extortion-language flag and a code per distinct text.
        registered_at: Account opening time per buyer code.
        labels: Label decisions with buyer codes (for linked-account features).
    """

    buyer_ids: pd.Index
    orders: pd.DataFrame
    refunds: pd.DataFrame
    reviews: pd.DataFrame
    registered_at: np.ndarray
    labels: pd.DataFrame


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
            "extortion": text.str.contains(EXTORTION_PATTERN, na=False).to_numpy(dtype=bool),
            "text_code": pd.factorize(templated.to_numpy(dtype=object))[0],
        }
    )
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
    )


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

    v = events.reviews[events.reviews["created_at"].to_numpy() < t]
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
