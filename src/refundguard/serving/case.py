"""The analyst's case file: one buyer's score, reasons and the evidence behind them.

:func:`build_case` (one buyer) and :func:`build_cases` (several, sharing one pass over
the tables) are the public API; :mod:`refundguard.serving.case_render` writes a
:class:`Case` as a self-contained HTML page or as JSON.

A case is built as of a date T with the rules the features follow (see
:mod:`refundguard.features.events`): an order, request or review shows only if it
happened before T; a request's outcome only if it was resolved before T (else it is
"pending"); a delivery only if it was signed for before T; a linked account's label only
if it was decided before T; and links come only from orders placed before T. The reasons
are the model's top SHAP contributions for any tier (:meth:`Scorer.explain`), each with
the buyer's figure, where it stands among the reference buyers, and the ids of the rows
behind it: the rows of the feature's evidence table (:func:`evidence_table`) inside the
feature's window.

Example:
    >>> from refundguard.serving.scorer import Scorer
    >>> scorer = Scorer.load("models/scorer")  # doctest: +SKIP
    >>> case = build_case(scorer, tables, "B000123", as_of)  # doctest: +SKIP
    >>> case.tier, [r.feature for r in case.reasons]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd

from refundguard.errors import InputError
from refundguard.features.build import compute_features
from refundguard.features.catalog import NO_HISTORY, Feature, build_catalog, has_history
from refundguard.features.events import (
    LINK_KINDS,
    EventTables,
    Snapshot,
    prepare_events,
    snapshot,
)
from refundguard.features.extortion import FLAG_THRESHOLD, Lexicon, detect, load_lexicon
from refundguard.serving.reasons import TOP_REASONS, standing
from refundguard.serving.scorer import Scorer, unknown_buyers

CASE_FORMAT = "refundguard-case/1"


EvidenceTable = Literal["orders", "refunds", "reviews", "linked"]


# The evidence table of each catalog feature group. Seller features count orders, except
# the ones about after-sales requests (see evidence_table).
GROUP_EVIDENCE: Mapping[str, EvidenceTable] = {
    "orders": "orders",
    "refunds": "refunds",
    "sellers": "orders",
    "reviews": "reviews",
    "linked": "linked",
}


@dataclass(frozen=True)
class CaseOrder:
    """An order placed before the case date.

    Attributes:
        order_id: Order id.
        created_at: When it was paid (local time).
        amount: Order value in CNY.
        seller_id: Seller (shop) id.
        category: Product category, if given.
        delivered_at: When it was signed for, if that happened before the case date.
        device_id: Device it was placed from, if given.
        address_id: Delivery address id, if given.
        payment_id: Payment instrument id, if given.
    """

    order_id: str
    created_at: datetime
    amount: float
    seller_id: str
    category: str | None
    delivered_at: datetime | None
    device_id: str | None
    address_id: str | None
    payment_id: str | None


@dataclass(frozen=True)
class CaseRefund:
    """An after-sales request made before the case date, as known then.

    Attributes:
        refund_id: Request id.
        order_id: The order it is about.
        seller_id: The order's seller.
        requested_at: When the buyer asked (local time).
        type: refund_only, return_refund, exchange or compensation.
        reason: The reason the buyer chose.
        amount: Amount asked for, CNY.
        order_amount: The order's value, CNY.
        hours_after_delivery: Hours from delivery to the request; None when it was
            asked before the parcel was signed for (as known at the request).
        status: The outcome known at the case date ("pending" if resolved later).
        resolved_at: When it was resolved, if before the case date.
        instant: Auto-approved instant refund.
        reason_text: The buyer's own words, if any.
    """

    refund_id: str
    order_id: str
    seller_id: str
    requested_at: datetime
    type: str
    reason: str
    amount: float
    order_amount: float
    hours_after_delivery: float | None
    status: str
    resolved_at: datetime | None
    instant: bool
    reason_text: str | None


@dataclass(frozen=True)
class CaseReview:
    """A review posted before the case date.

    Attributes:
        review_id: Review id.
        order_id: The order reviewed.
        created_at: When it was posted (local time).
        rating: Stars 1-5, if given.
        text: The text as the buyer wrote it.
        sentiment: Probability the text is positive (the scorer's sentiment model), or
            None without one.
        extortion_language: The lexicon detector reads the text as a demand or threat
            (score at least its flag threshold), as the review features count it.
        extortion_score: The lexicon detector's score in [0, 1]
            (:func:`refundguard.features.extortion.detect`).
        extortion_phrases: The phrases found, in reading order.
        highlights: (start, end) character spans of those phrases in ``text``, sorted and
            not overlapping.
    """

    review_id: str
    order_id: str
    created_at: datetime
    rating: float | None
    text: str
    sentiment: float | None
    extortion_language: bool
    extortion_score: float
    extortion_phrases: tuple[str, ...]
    highlights: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class CaseLink:
    """Another account sharing a device, address or payment id with the buyer.

    Attributes:
        buyer_id: The other account.
        kinds: What is shared: some of "device", "address", "payment".
        shared_ids: The shared ids, as "kind:id".
        orders: The other account's orders before the case date.
        label: Its latest label decided before the case date (1 abuser, 0 legitimate),
            or None.
        labeled_at: When that label was decided.
        label_source: Who decided it, if given.
    """

    buyer_id: str
    kinds: tuple[str, ...]
    shared_ids: tuple[str, ...]
    orders: int
    label: int | None
    labeled_at: datetime | None
    label_source: str | None


@dataclass(frozen=True)
class CrowdedId:
    """A device, address or payment id of the buyer's that links nobody.

    Held by more accounts than ``features.link_max_accounts`` (a parcel locker, an
    office): the linked-account features ignore it.

    Attributes:
        kind: "device", "address" or "payment".
        id: The id.
        accounts: Accounts holding it before the case date.
    """

    kind: str
    id: str
    accounts: int


@dataclass(frozen=True)
class CaseReason:
    """One of the model's top reasons for the buyer, with the rows behind it.

    Attributes:
        rank: 1 for the strongest.
        feature: The catalog feature.
        group: Its catalog group.
        evidence: The evidence table holding the rows behind it.
        unit: The feature's unit.
        window_days: Its look-back window, or None for all history.
        value: The buyer's figure.
        share_below: Share of reference buyers with a lower value (None without one).
        share_above: Share of reference buyers with a higher value (None without one).
        contribution: SHAP contribution to the raw score (log-odds).
        meaning_en: What the feature measures, in English.
        meaning_zh: The same in Chinese.
        text_en: The reason sentence in English.
        text_zh: The reason sentence in Chinese.
        evidence_ids: Ids of the evidence rows inside the feature's window (orders,
            requests, reviews, or linked accounts).
    """

    rank: int
    feature: str
    group: str
    evidence: EvidenceTable
    unit: str
    window_days: int | None
    value: float
    share_below: float | None
    share_above: float | None
    contribution: float
    meaning_en: str
    meaning_zh: str
    text_en: str
    text_zh: str
    evidence_ids: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    """One buyer's case file as of a date.

    Attributes:
        buyer_id: The buyer.
        as_of: The case date: only what was known before it is shown (local time).
        timezone: The zone of every time in the case (the model's).
        model_version: The scorer's content id.
        probability: Calibrated probability of abuse.
        risk_score: 0-1000.
        tier: trusted, standard, review or restrict.
        has_history: The buyer had ordered before the case date.
        note_en: A note on the score (the no-history reason), or "".
        note_zh: The same in Chinese.
        reasons: The top reasons, strongest first (empty without history).
        orders: Orders before the case date, oldest first.
        refunds: Requests before the case date, oldest first.
        reviews: Reviews before the case date, oldest first.
        linked: Linked accounts, most shared ids first.
        crowded_ids: The buyer's ids too widely shared to link anyone.
    """

    buyer_id: str
    as_of: datetime
    timezone: str
    model_version: str
    probability: float
    risk_score: int
    tier: str
    has_history: bool
    note_en: str
    note_zh: str
    reasons: tuple[CaseReason, ...]
    orders: tuple[CaseOrder, ...]
    refunds: tuple[CaseRefund, ...]
    reviews: tuple[CaseReview, ...]
    linked: tuple[CaseLink, ...]
    crowded_ids: tuple[CrowdedId, ...]


def evidence_table(feature: Feature) -> EvidenceTable:
    """The table whose rows a feature counts, for the case file.

    Args:
        feature: A catalog entry.

    Returns:
        "orders", "refunds", "reviews" or "linked" (:data:`GROUP_EVIDENCE`; a seller
        feature about after-sales requests points at the requests).
    """
    if feature.group == "sellers" and "refund" in feature.name:
        return "refunds"
    return GROUP_EVIDENCE.get(feature.group, "orders")


def build_case(
    scorer: Scorer,
    tables: Mapping[str, pd.DataFrame],
    buyer_id: str,
    as_of: pd.Timestamp,
    *,
    lexicon: Lexicon | None = None,
) -> Case:
    """One buyer's case file as of a date.

    Args:
        scorer: The scorer (:meth:`Scorer.load`).
        tables: Validated tables (orders, refunds, reviews; optionally buyers and labels),
            as :func:`refundguard.data.validate.validate_folder` returns them.
        buyer_id: The buyer.
        as_of: The case date (tz-aware, or naive UTC).
        lexicon: Extortion lexicon (default: the scorer's, else the shipped one).

    Returns:
        The case.

    Raises:
        InputError: The buyer appears in no table.
    """
    return build_cases(scorer, tables, [buyer_id], as_of, lexicon=lexicon)[0]


def build_cases(
    scorer: Scorer,
    tables: Mapping[str, pd.DataFrame],
    buyer_ids: Sequence[str],
    as_of: pd.Timestamp,
    *,
    lexicon: Lexicon | None = None,
) -> list[Case]:
    """Case files of several buyers as of one date (the tables are joined once).

    Args:
        scorer: The scorer.
        tables: Validated tables, as for :func:`build_case`.
        buyer_ids: The buyers, in the order wanted.
        as_of: The case date (tz-aware, or naive UTC).
        lexicon: Extortion lexicon (default: the scorer's, else the shipped one).

    Returns:
        One case per buyer, in order.

    Raises:
        InputError: No buyer is asked for, or a buyer appears in no table (ids are
            case-sensitive).
    """
    ids = [str(b) for b in buyer_ids]
    if not ids:
        raise InputError("no buyer id given")
    unknown = unknown_buyers(tables, ids)
    if unknown.any():
        missing = [b for b, u in zip(ids, unknown, strict=True) if u]
        shown = ", ".join(repr(b) for b in missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise InputError(
            f"{len(missing)} buyer id(s) appear nowhere in the data: {shown} "
            "(ids are case-sensitive)"
        )
    when = pd.Timestamp(as_of)
    when = when.tz_localize("UTC") if when.tzinfo is None else when
    reviews = tables["reviews"]
    lexicon = lexicon or scorer.lexicon or load_lexicon()
    events = prepare_events(
        tables["orders"],
        tables["refunds"],
        reviews,
        tables.get("buyers"),
        scorer.review_sentiment(reviews),
        extra_buyer_ids=ids,
        labels=tables.get("labels"),
        timezone=scorer.timezone,
        lexicon=lexicon,
        demand=scorer.demand_scores(tables, when),
    )
    catalog = build_catalog(scorer.feature_params)
    feats = compute_features(events, when, catalog, buyer_ids=ids)
    scores = scorer.score(feats, reasons=False)
    explained = scorer.explain(feats, k=TOP_REASONS)
    history = has_history(feats)
    snap = snapshot(events, when)
    ctx = _Context(scorer, tables, events, snap, when, lexicon)
    cases = []
    for i, buyer in enumerate(ids):
        known = bool(history[i])
        reasons = tuple(
            _reason(ctx, buyer, rank, r.feature, r.value, r.contribution, r.en, r.zh)
            for rank, r in enumerate(explained[i] if known else [], start=1)
        )
        cases.append(
            Case(
                buyer_id=buyer,
                as_of=when.tz_convert(scorer.timezone).to_pydatetime(),
                timezone=scorer.timezone,
                model_version=scorer.model_version,
                probability=float(scores["probability"].iloc[i]),
                risk_score=int(scores["risk_score"].iloc[i]),
                tier=str(scores["tier"].iloc[i]),
                has_history=known,
                note_en="" if known else NO_HISTORY.en,
                note_zh="" if known else NO_HISTORY.zh,
                reasons=reasons,
                orders=ctx.orders(buyer),
                refunds=ctx.refunds(buyer),
                reviews=ctx.reviews(buyer),
                linked=ctx.linked(buyer)[0],
                crowded_ids=ctx.linked(buyer)[1],
            )
        )
    return cases


def _text(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _number(value: object) -> float | None:
    x = float(value)  # type: ignore[arg-type]
    return x if math.isfinite(x) else None


class _Context:
    """What every case of one date shares: the tables, the snapshot, the lexicon."""

    def __init__(
        self,
        scorer: Scorer,
        tables: Mapping[str, pd.DataFrame],
        events: EventTables,
        snap: Snapshot,
        as_of: pd.Timestamp,
        lexicon: Lexicon,
    ) -> None:
        self.scorer = scorer
        self.tables = tables
        self.events = events
        self.snap = snap
        self.as_of = as_of
        self.lexicon = lexicon
        self.tz = scorer.timezone
        self.t = np.datetime64(snap.cutoff.tz_convert(None), "us")
        self._links: dict[str, tuple[tuple[CaseLink, ...], tuple[CrowdedId, ...]]] = {}
        # Raw rows of the orders known at T, in snapshot order.
        self.known_orders = tables["orders"].iloc[snap.orders["oc"].to_numpy()]

    def local(self, value: object) -> datetime | None:
        """A naive-UTC or tz-aware time as local time; None if missing."""
        if value is None or pd.isna(value):
            return None
        ts = pd.Timestamp(value)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
        return ts.tz_convert(self.tz).to_pydatetime()

    def code(self, buyer: str) -> int:
        return int(self.events.buyer_ids.get_loc(buyer))

    def orders(self, buyer: str) -> tuple[CaseOrder, ...]:
        o = self.snap.orders
        mine = o[o["b"].to_numpy() == self.code(buyer)].sort_values("created_at", kind="stable")
        raw = self.tables["orders"].iloc[mine["oc"].to_numpy()]
        out = []
        for (_, row), delivered in zip(
            raw.iterrows(), mine["delivered_at"].to_numpy(), strict=True
        ):
            out.append(
                CaseOrder(
                    order_id=str(row["order_id"]),
                    created_at=self.local(row["created_at"]),  # type: ignore[arg-type]
                    amount=float(row["amount"]),
                    seller_id=str(row["seller_id"]),
                    category=_text(row.get("category")),
                    delivered_at=self.local(delivered),
                    device_id=_text(row.get("device_id")),
                    address_id=_text(row.get("address_id")),
                    payment_id=_text(row.get("payment_id")),
                )
            )
        return tuple(out)

    def refunds(self, buyer: str) -> tuple[CaseRefund, ...]:
        r = self.snap.refunds
        mine = r[r["b"].to_numpy() == self.code(buyer)].sort_values("requested_at", kind="stable")
        raw = self.tables["refunds"].iloc[mine.index.to_numpy()]
        orders = self.tables["orders"]
        out = []
        for (_, row), (_, s) in zip(raw.iterrows(), mine.iterrows(), strict=True):
            resolved = s["resolved_at"]
            # The snapshot's rule: an outcome is known only if resolved before T.
            resolved_known = not pd.isna(resolved) and np.datetime64(resolved, "us") < self.t
            out.append(
                CaseRefund(
                    refund_id=str(row["refund_id"]),
                    order_id=str(row["order_id"]),
                    seller_id=str(orders["seller_id"].iloc[int(s["oc"])]),
                    requested_at=self.local(row["requested_at"]),  # type: ignore[arg-type]
                    type=str(row["type"]),
                    reason=str(row["reason"]),
                    amount=float(row["amount"]),
                    order_amount=float(s["order_amount"]),
                    hours_after_delivery=(
                        None if bool(s["before_delivery"]) else float(s["hours_to_request"])
                    ),
                    status=str(s["status_at_cutoff"]),
                    resolved_at=self.local(resolved) if resolved_known else None,
                    instant=bool(s["instant"]),
                    reason_text=_text(row.get("reason_text")),
                )
            )
        return tuple(out)

    def reviews(self, buyer: str) -> tuple[CaseReview, ...]:
        v = self.snap.reviews
        mine = v[v["b"].to_numpy() == self.code(buyer)].sort_values("created_at", kind="stable")
        raw = self.tables["reviews"].iloc[mine.index.to_numpy()]
        texts = [_text(t) or "" for t in raw["text"].tolist()]
        found = detect(texts, self.lexicon)
        out = []
        for i, ((_, row), (_, s)) in enumerate(zip(raw.iterrows(), mine.iterrows(), strict=True)):
            text = texts[i]
            phrases = [p for p in str(found["phrase"].iloc[i]).split(" | ") if p.strip()]
            # Each phrase once; one inside a longer one found too says nothing more.
            phrases = list(dict.fromkeys(phrases))
            phrases = [p for p in phrases if not any(p != q and p in q for q in phrases)]
            out.append(
                CaseReview(
                    review_id=str(row["review_id"]),
                    order_id=str(row["order_id"]),
                    created_at=self.local(row["created_at"]),  # type: ignore[arg-type]
                    rating=_number(row["rating"]),
                    text=text,
                    sentiment=_number(s["sentiment"]),
                    extortion_language=bool(s["extortion_score"] >= FLAG_THRESHOLD),
                    extortion_score=float(found["score"].iloc[i]),
                    extortion_phrases=tuple(phrases),
                    highlights=_spans(text, phrases),
                )
            )
        return tuple(out)

    def linked(self, buyer: str) -> tuple[tuple[CaseLink, ...], tuple[CrowdedId, ...]]:
        if buyer in self._links:
            return self._links[buyer]
        cap = self.scorer.feature_params.link_max_accounts
        known = self.known_orders
        owner = known["buyer_id"].astype("str")
        mine = (owner == buyer).to_numpy()
        shared: dict[str, list[tuple[str, str]]] = {}
        crowded: list[CrowdedId] = []
        for kind in LINK_KINDS:
            col = f"{kind}_id"
            if col not in known.columns:
                continue
            ids = known[col].to_numpy(dtype=object)
            held = {i for i in ids[mine] if _text(i) is not None}
            if not held:
                continue
            sel = known[col].isin(list(held)).to_numpy()
            pairs = pd.DataFrame({"id": ids[sel], "b": owner.to_numpy()[sel]}).drop_duplicates()
            for value, holders in pairs.groupby("id", sort=True)["b"]:
                accounts = sorted(set(holders.tolist()))
                if len(accounts) > cap:
                    crowded.append(CrowdedId(kind, str(value), len(accounts)))
                    continue
                for other in accounts:
                    if other != buyer:
                        shared.setdefault(other, []).append((kind, str(value)))
        counts = owner.value_counts()
        links = []
        for other, found in shared.items():
            label, labeled_at, source = self._label(other)
            links.append(
                CaseLink(
                    buyer_id=other,
                    kinds=tuple(dict.fromkeys(k for k, _ in found)),
                    shared_ids=tuple(f"{k}:{v}" for k, v in found),
                    orders=int(counts.get(other, 0)),
                    label=label,
                    labeled_at=labeled_at,
                    label_source=source,
                )
            )
        links.sort(key=lambda link: (-len(link.shared_ids), link.buyer_id))
        result = (tuple(links), tuple(crowded))
        self._links[buyer] = result
        return result

    def _label(self, buyer: str) -> tuple[int | None, datetime | None, str | None]:
        """The buyer's latest label decided before T: (label, when, source)."""
        labels = self.tables.get("labels")
        none = (None, None, None)
        if labels is None or not len(labels):
            return none
        mine = labels[(labels["buyer_id"].astype("str") == buyer).to_numpy()]
        mine = mine[(mine["labeled_at"] < self.as_of).to_numpy()]
        if mine.empty:
            return none
        latest = mine.sort_values(["labeled_at", "label"], kind="stable").iloc[-1]
        return (
            int(latest["label"]),
            self.local(latest["labeled_at"]),
            _text(latest.get("source")),
        )


def _spans(text: str, phrases: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Where the phrases occur in the text (case-insensitive), merged where they overlap."""
    found: list[tuple[int, int]] = []
    for p in phrases:
        found += [(m.start(), m.end()) for m in re.finditer(re.escape(p), text, re.IGNORECASE)]
    merged: list[tuple[int, int]] = []
    for start, end in sorted(found):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)


def _in_window(times: np.ndarray, t: pd.Timestamp, days: int | None) -> np.ndarray:
    if days is None:
        return np.ones(len(times), dtype=bool)
    start = np.datetime64((t - pd.Timedelta(days=days)).tz_convert(None), "us")
    return times >= start


def _reason(
    ctx: _Context,
    buyer: str,
    rank: int,
    feature: str,
    value: float,
    contribution: float,
    en: str,
    zh: str,
) -> CaseReason:
    f = ctx.scorer.catalog[feature]
    table = evidence_table(f)
    t = ctx.snap.cutoff
    b = ctx.code(buyer)
    ids: list[str]
    if table == "linked":
        ids = [link.buyer_id for link in ctx.linked(buyer)[0]]
    else:
        frame = getattr(ctx.snap, table)
        time_col = "requested_at" if table == "refunds" else "created_at"
        pick = (frame["b"].to_numpy() == b) & _in_window(
            frame[time_col].to_numpy(), t, f.window_days
        )
        # Snapshot orders carry their row in the orders table; requests and reviews keep
        # their row as the index.
        rows = frame["oc"].to_numpy() if table == "orders" else frame.index.to_numpy()
        key = {"orders": "order_id", "refunds": "refund_id", "reviews": "review_id"}[table]
        ids = ctx.tables[table][key].iloc[rows[pick]].astype("str").tolist()
    below, above = standing(value, ctx.scorer.reference.get(feature, ()))
    return CaseReason(
        rank=rank,
        feature=feature,
        group=f.group,
        evidence=table,
        unit=f.unit,
        window_days=f.window_days,
        value=float(value),
        share_below=None if math.isnan(below) else below,
        share_above=None if math.isnan(above) else above,
        contribution=float(contribution),
        meaning_en=f.en,
        meaning_zh=f.zh,
        text_en=en,
        text_zh=zh,
        evidence_ids=tuple(ids),
    )
