"""Extortion language in reviews: a pattern lexicon read as data, and a learned demand model.

Two independent kinds of evidence that a review demands something under a threat:

* :func:`detect` looks for structure, not keywords. Each review is normalised (as the
  sentiment model sees it: simplified script, half-width, lower case), cut into sentences
  and clauses, and every clause is matched against the lexicon's patterns by kind
  (demand, request, rating_for_money, escalation, more_reviews, bad_review, settlement,
  condition).
  Clauses that report the past or someone else's words ("上次投诉12315也没用", "商家说
  好评返现") count for nothing. A review is *conditional* when a demand (or an offer to
  change a rating for money) is tied by a condition marker to a threat within one
  sentence or two neighbouring ones, in either order: "不赔钱就投诉12315", "投诉12315,
  除非你退一半". Honest angry reviews mention 差评, 投诉 or 12315 alone; they score low.

* :class:`DemandModel` is learned from the platform's own tables, without abuse labels: a
  1-2 star review whose order or buyer asked for compensation, a refund without return, or
  part of the price within a few days of it is "demand-like", every other 1-2 star review
  "complaint-like" (:func:`weak_labels`). The model is the hashed character n-gram
  classifier of :mod:`refundguard.sentiment`, trained point in time
  (:func:`train_demand_model`) and saved without pickle.

The lexicon ships as ``refundguard/features/lexicons/extortion.yaml``; :func:`load_lexicon` merges a
user's file of the same shape over it (``features.extortion_lexicon``).

Point in time. The features stage trains the demand model at a coarse schedule
(:func:`refit_points`: every ``features.demand_refit_every``-th cutoff, laid back from
the last one, plus the first) on the reviews and requests before each refit point; a
snapshot at T reads the scores of the latest model trained at or before T
(:class:`DemandScores`, :func:`demand_history`), so a review or a request at or after T
never changes anything at T. The model of the last cutoff is saved (JSON + npz) in the
model folder (``demand/``) and the scorer: at a scoring date on or after its cutoff it
scores with it, as the last cutoff did; an earlier date gets a model trained on the data
before that date (:func:`demand_scores_at`). A model scores its own training reviews
in-sample at the features stage and at scoring alike (out-of-fold scores, as
:func:`demand_scores` gives, would cost five more fits per refit).

Cost, measured on the default world (20,000 buyers, 134,274 reviews, 20 cutoffs, a
shared 2-core machine): ``refundguard featurize`` took 11.9 s user time (13.2 s wall,
three runs) before and 15.7 s user (17.3 s wall) with the lexicon detector (about 1 s
for every review), 6 demand-model refits (about 1.2 s of fitting, 0.6 s of weak labels,
0.2 s of scoring) and importing scikit-learn: +31%. A refit at every cutoff would be 20
fits; character trigrams instead of bigrams made one full fit 3.0 s instead of 0.45 s
for the same AUC on later reviews.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from refundguard.config import DemandParams
from refundguard.contract.vocabulary import SYSTEM_REVIEW_TEXTS
from refundguard.errors import ConfigError, ModelError
from refundguard.features.sentiment import ReviewSentiment, normalize_text

__all__ = [
    "DEMAND_LIKE",
    "FLAG_THRESHOLD",
    "KINDS",
    "LEXICON_VERSION",
    "REVIEW_MODELS_DIR",
    "USER_LEXICON_FILE",
    "DemandModel",
    "DemandParams",
    "DemandScores",
    "Lexicon",
    "demand_history",
    "demand_scores",
    "demand_scores_at",
    "detect",
    "load_lexicon",
    "load_review_models",
    "refit_points",
    "save_review_models",
    "score_reviews",
    "train_demand_model",
    "weak_labels",
]


LEXICON_VERSION = 1


KINDS = (
    "demand",
    "request",
    "rating_for_money",
    "escalation",
    "more_reviews",
    "bad_review",
    "settlement",
    "condition",
    "reported",
)


SHIPPED_LEXICON = "features/lexicons/extortion.yaml"


# Evidence strength per structure (the detector's score). A demand tied to a threat by a
# condition is extortion in so many words; a rating offered for money is a purchase of a
# review. Coordinated extra reviews are abuse on their own, unlike a complaint to a
# regulator, which is every buyer's right: so more_reviews alone passes 0.5, escalation
# alone does not. An ordinary refund held hostage to a threat is weaker than a demand for
# money beyond the price: with reviews as the leverage it still passes 0.5; with a
# regulator or the platform as the leverage ("再不退款我就去12315") it is an honest
# buyer's last resort as often as not, and stays below.
SCORE_CONDITIONAL = 1.0


SCORE_RATING_FOR_MONEY = 0.9


SCORE_DEMAND_AND_THREAT = 0.8


SCORE_SETTLEMENT = 0.7


SCORE_CONDITIONAL_REQUEST = 0.6


SCORE_CONDITIONAL_REQUEST_ESCALATION = 0.45


SCORE_MORE_REVIEWS = 0.5


SCORE_DEMAND = 0.4


SCORE_ESCALATION = 0.3


# A review scoring at least this much is read as a demand (the benchmark's threshold).
FLAG_THRESHOLD = 0.5


DEMAND_LIKE = "demand_like"


# Longest normalised review the detector reads (longer ones are cut), which bounds the work
# on very long reviews; real reviews rarely reach it.
_MAX_CHARS = 2000


# Sentence ends and clause breaks of normalised text (full-width marks are half-width by
# then, except the ideographic full stop and the enumeration comma).
_SENTENCE_SPLIT = r"[。!?;\n]+|\.(?:\s+|$)|…+|\.{3,}"


_CLAUSE_SPLIT = r"[,、:~]+|\s-\s|\s+(?:but|and then|so)\s+"


# Python's re is used for what RE2 (Arrow) cannot run and for the matched spans; ASCII
# classes (\d, \w, \b) make it read a pattern as RE2 does.
_FLAGS = re.IGNORECASE | re.ASCII


_MODEL_DIR_FILE = "demand.json"


# The features stage's folder of review-text models (in data/features): the demand model
# trained at the last cutoff, and a copy of the user's lexicon when there is one.
REVIEW_MODELS_DIR = "review_models"


# The user's lexicon, copied beside the demand model so that a scorer reads the same one.
USER_LEXICON_FILE = "lexicon.yaml"


_FORMAT_ID = "refundguard.extortion.demand-model"


_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Lexicon:
    """Extortion patterns by kind, ready to match normalised review text.

    Attributes:
        version: Format version of the files it was read from.
        patterns: The patterns of each kind in :data:`KINDS` (simplified script).
        sources: The files merged, shipped file first.
    """

    version: int
    patterns: Mapping[str, tuple[str, ...]]
    sources: tuple[str, ...] = ()
    _compiled: dict[str, re.Pattern[str]] = field(
        default_factory=dict, repr=False, compare=False, hash=False
    )

    def combined(self, kind: str) -> str:
        """One regular expression matching any pattern of ``kind`` ("" if it has none)."""
        return "|".join(f"(?:{p})" for p in self.patterns.get(kind, ()))

    def compiled(self, kind: str) -> re.Pattern[str]:
        """The compiled :meth:`combined` pattern of ``kind`` (case-insensitive)."""
        if kind not in self._compiled:
            self._compiled[kind] = re.compile(self.combined(kind) or r"(?!x)x", _FLAGS)
        return self._compiled[kind]


@lru_cache(maxsize=1)
def _t2s() -> Any:
    """OpenCC's traditional-to-simplified converter, built once."""
    import opencc

    # Releases differ on whether the config is named with or without ".json".
    try:
        return opencc.OpenCC("t2s")
    except Exception:  # the binding raises bare RuntimeErrors
        return opencc.OpenCC("t2s.json")


def _to_simplified(pattern: str) -> str:
    """NFKC and simplified-script form of a pattern, as review texts are normalised.

    Not lower-cased, unlike texts: lower case would turn the escape for "not a digit"
    into the one for "a digit". Patterns are matched case-insensitively instead.
    """
    return str(_t2s().convert(unicodedata.normalize("NFKC", pattern)))


def _read_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}".replace("\n", " ")) from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: an extortion lexicon must be a YAML mapping")
    if raw.get("version") != LEXICON_VERSION:
        raise ConfigError(
            f"{source}: extortion lexicon version {raw.get('version')!r} is not supported "
            f"(this refundguard reads version {LEXICON_VERSION})"
        )
    unknown = set(raw) - {"version", "kinds", "remove"}
    if unknown:
        raise ConfigError(f"{source}: unknown keys {sorted(unknown)}; expected kinds, remove")
    return raw


def _kind_lists(raw: dict[str, Any], key: str, source: str) -> dict[str, list[str]]:
    block = raw.get(key) or {}
    if not isinstance(block, dict):
        raise ConfigError(f"{source}: '{key}' must map kinds to lists of patterns")
    out: dict[str, list[str]] = {}
    for kind, items in block.items():
        if kind not in KINDS:
            raise ConfigError(f"{source}: unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
        if not isinstance(items, list) or not all(isinstance(p, str) and p for p in items):
            raise ConfigError(f"{source}: {key}.{kind} must be a list of non-empty strings")
        converted = []
        for p in items:
            try:
                re.compile(p)
            except re.error as exc:
                raise ConfigError(f"{source}: {key}.{kind}: bad pattern {p!r}: {exc}") from exc
            converted.append(_to_simplified(p))
        out[kind] = converted
    return out


def load_lexicon(extra: Path | None = None) -> Lexicon:
    """The shipped extortion lexicon, with a user's lexicon merged over it.

    The user's file has the shipped file's shape (``version: 1``, ``kinds: {kind: [...]}``)
    and may add ``remove: {kind: [...]}``: its patterns are added to the shipped ones of
    the same kind, and patterns listed under ``remove`` are dropped. Patterns written in
    traditional script are converted to simplified, so they match both scripts.

    Args:
        extra: The user's lexicon file, or None for the shipped lexicon alone.

    Returns:
        The merged lexicon.

    Raises:
        ConfigError: If the user's file is missing, not YAML, of another version, names an
            unknown kind, or holds a pattern that is not a valid regular expression.
    """
    shipped_text = resources.files("refundguard").joinpath(SHIPPED_LEXICON).read_text("utf-8")
    shipped = _read_yaml(shipped_text, SHIPPED_LEXICON)
    merged = {k: list(v) for k, v in _kind_lists(shipped, "kinds", SHIPPED_LEXICON).items()}
    sources = [SHIPPED_LEXICON]
    if extra is not None:
        path = Path(extra)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"extortion lexicon {path}: cannot read: {exc}") from exc
        user = _read_yaml(text, str(path))
        for kind, items in _kind_lists(user, "kinds", str(path)).items():
            merged.setdefault(kind, [])
            merged[kind].extend(p for p in items if p not in merged[kind])
        for kind, items in _kind_lists(user, "remove", str(path)).items():
            merged[kind] = [p for p in merged.get(kind, []) if p not in set(items)]
        sources.append(str(path))
    patterns = {kind: tuple(merged.get(kind, ())) for kind in KINDS}
    return Lexicon(version=LEXICON_VERSION, patterns=patterns, sources=tuple(sources))


_FLAG_COLUMNS = (
    "demand",
    "request",
    "rating_for_money",
    "escalation",
    "more_reviews",
    "bad_review",
    "settlement",
    "conditional",
)


# Kinds that can make a review score above 0; the rest only qualify them.
_EVIDENCE_KINDS = ("demand", "request", "rating_for_money", "escalation", "more_reviews")


def _contains(texts: pd.Series, pattern: str) -> npt.NDArray[np.bool_]:
    """Whether each text matches ``pattern`` (case-insensitive).

    Runs on Arrow's RE2 engine, which scans all texts in C++ without back-tracking; a
    pattern RE2 cannot run (look-arounds, back-references) falls back to Python's ``re``.
    """
    if not pattern:
        return np.zeros(len(texts), dtype=bool)
    values = pa.array(texts.array, from_pandas=True)  # zero-copy for Arrow-backed strings
    try:
        found = pc.match_substring_regex(values, pattern, ignore_case=True)
        return np.asarray(found.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        compiled = re.compile(pattern, _FLAGS)
        return np.fromiter(
            (bool(compiled.search(t)) for t in texts.to_numpy(dtype=object)),
            dtype=bool,
            count=len(texts),
        )


def _empty_result(n: int) -> pd.DataFrame:
    out = pd.DataFrame({c: np.zeros(n, dtype=bool) for c in _FLAG_COLUMNS})
    out["score"] = np.zeros(n, dtype=np.float64)
    out["phrase"] = pd.Series([""] * n, dtype="str")
    return out


def _any_by(group: npt.NDArray[np.intp], flags: npt.NDArray[np.bool_], n: int) -> npt.NDArray:
    """Per group, whether any row's flag is set."""
    return np.bincount(group, weights=flags.astype(np.float64), minlength=n) > 0


def detect(texts: Sequence[object], lexicon: Lexicon) -> pd.DataFrame:
    """Extortion structure in each review.

    A review's sentences are cut into clauses at commas; each clause is matched against
    every kind of the lexicon, and a clause matching ``reported`` counts for nothing.
    Kinds are then pooled per sentence, and a window is a sentence together with the next
    one. ``rating_for_money`` needs an offer to change a rating and a demand (or request)
    in one window; ``conditional`` needs a demand or such an offer, a condition marker
    and a threat (escalation, more reviews, or a bad review) in one window.

    Scores, the highest applying: conditional 1.0; rating for money 0.9; a demand and an
    escalation or more-reviews threat in one window without a condition 0.8; a demand
    offered as the price of dropping the matter ("给我200就算了", ``settlement`` in one
    window) 0.7; an ordinary refund or resend tied by a condition to a bad review 0.6;
    threats of more reviews 0.5; an ordinary refund tied by a condition to an escalation
    0.45; a demand alone 0.4; an escalation threat alone 0.3; anything else 0.

    Args:
        texts: Review texts; missing values count as empty reviews.
        lexicon: Patterns, from :func:`load_lexicon`.

    Returns:
        One row per review, in order (RangeIndex): booleans ``demand``, ``request``,
        ``rating_for_money``, ``escalation``, ``more_reviews``, ``bad_review``,
        ``settlement``, ``conditional`` (a demand, an offer or a plain request tied to a
        threat by a condition, whatever its score); ``score`` in [0, 1]; ``phrase``, the
        matched spans of normalised text joined by " | " ("" when the score is 0).
    """
    norm = normalize_text(texts, max_chars=_MAX_CHARS)
    n = len(norm)
    out = _empty_result(n)
    if n == 0:
        return out
    docs = pd.Series(norm, dtype="str")
    # Most reviews hold no evidence at all; only those that do are cut into clauses. One
    # pass per kind: RE2 runs each kind's automaton fast, but all kinds in one pattern
    # outgrow its DFA cache and it falls back to a slower engine.
    any_evidence = np.zeros(n, dtype=bool)
    for kind in _EVIDENCE_KINDS:
        any_evidence |= _contains(docs, lexicon.combined(kind))
    hit = np.flatnonzero(any_evidence)
    if hit.size == 0:
        return out

    sentences = docs.iloc[hit].str.split(_SENTENCE_SPLIT, regex=True).explode()
    sent_doc = sentences.index.to_numpy(dtype=np.intp)  # position in `docs`
    sentences = pd.Series(sentences.to_numpy(dtype=object), dtype="str").fillna("")
    clauses = sentences.str.split(_CLAUSE_SPLIT, regex=True).explode()
    clause_sent = clauses.index.to_numpy(dtype=np.intp)
    clauses = pd.Series(clauses.to_numpy(dtype=object), dtype="str").fillna("")
    n_sent = len(sentences)

    own = ~_contains(clauses, lexicon.combined("reported"))
    clause_flags: dict[str, npt.NDArray[np.bool_]] = {}
    s: dict[str, npt.NDArray[np.bool_]] = {}
    for kind in (k for k in KINDS if k != "reported"):
        flags = _contains(clauses, lexicon.combined(kind)) & own
        clause_flags[kind] = flags
        s[kind] = _any_by(clause_sent, flags, n_sent)

    # A window is a sentence and the next one of the same review.
    same_doc_next = np.zeros(n_sent, dtype=bool)
    same_doc_next[:-1] = sent_doc[1:] == sent_doc[:-1]
    w: dict[str, npt.NDArray[np.bool_]] = {}
    for kind, flags in s.items():
        nxt = np.zeros(n_sent, dtype=bool)
        nxt[:-1] = flags[1:]
        w[kind] = flags | (nxt & same_doc_next)
    threat = w["escalation"] | w["more_reviews"] | w["bad_review"]
    rating_win = w["rating_for_money"] & (w["demand"] | w["request"])
    cond_strong = w["condition"] & threat & (w["demand"] | rating_win)
    cond_request = w["condition"] & (w["more_reviews"] | w["bad_review"]) & w["request"]
    cond_request_escalation = w["condition"] & w["escalation"] & w["request"]
    settle_win = w["settlement"] & w["demand"]
    # Within one window too: a long honest review may ask for compensation in one place
    # and mention a lawyer in another.
    threat_win = w["demand"] & (w["escalation"] | w["more_reviews"])

    n_hit = hit.size
    local = np.searchsorted(hit, sent_doc)  # review position within `hit`

    def per_doc(flags: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        return _any_by(local, flags, n_hit)

    demand = per_doc(s["demand"])
    escalation = per_doc(s["escalation"])
    more = per_doc(s["more_reviews"])
    rating = per_doc(rating_win)
    strong = per_doc(cond_strong)
    weak = per_doc(cond_request)
    weakest = per_doc(cond_request_escalation)
    settle = per_doc(settle_win)
    score = np.select(
        [strong, rating, per_doc(threat_win), settle, weak, more, weakest, demand, escalation],
        [
            SCORE_CONDITIONAL,
            SCORE_RATING_FOR_MONEY,
            SCORE_DEMAND_AND_THREAT,
            SCORE_SETTLEMENT,
            SCORE_CONDITIONAL_REQUEST,
            SCORE_MORE_REVIEWS,
            SCORE_CONDITIONAL_REQUEST_ESCALATION,
            SCORE_DEMAND,
            SCORE_ESCALATION,
        ],
        default=0.0,
    )
    out.loc[hit, "demand"] = demand
    out.loc[hit, "request"] = per_doc(s["request"])
    out.loc[hit, "rating_for_money"] = rating
    out.loc[hit, "escalation"] = escalation
    out.loc[hit, "more_reviews"] = more
    out.loc[hit, "bad_review"] = per_doc(s["bad_review"])
    out.loc[hit, "settlement"] = settle
    out.loc[hit, "conditional"] = strong | weak | weakest
    out.loc[hit, "score"] = score
    out.loc[hit, "phrase"] = _phrases(clauses, clause_flags, local[clause_sent], score, lexicon)
    return out


def _phrases(
    clauses: pd.Series,
    clause_flags: dict[str, npt.NDArray[np.bool_]],
    clause_doc: npt.NDArray[np.intp],
    score: npt.NDArray[np.float64],
    lexicon: Lexicon,
) -> list[str]:
    """The matched spans of each scored review, in reading order, joined by " | "."""
    spans: list[list[str]] = [[] for _ in range(score.size)]
    any_flag = np.zeros(len(clauses), dtype=bool)
    for flags in clause_flags.values():
        any_flag |= flags
    rows = np.flatnonzero(any_flag & (score[clause_doc] > 0))
    texts = clauses.to_numpy(dtype=object)
    for row in rows.tolist():
        found: list[tuple[int, str]] = []
        for kind, flags in clause_flags.items():
            if flags[row]:
                found.extend(
                    (m.start(), m.group(0)) for m in lexicon.compiled(kind).finditer(texts[row])
                )
        doc_spans = spans[clause_doc[row]]
        for _, span in sorted(found):
            if span.strip() and span not in doc_spans:
                doc_spans.append(span)
    return [" | ".join(x) for x in spans]


def _utc(values: pd.Series) -> npt.NDArray[np.datetime64]:
    """Times as naive UTC datetime64[ns]; naive input is taken to be UTC."""
    t = pd.to_datetime(values, utc=True)
    return t.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


def _cutoff(cutoff: object) -> np.datetime64:
    t = pd.Timestamp(cutoff)
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    return np.datetime64(t.to_datetime64(), "ns")


def weak_labels(
    reviews: pd.DataFrame,
    refunds: pd.DataFrame,
    orders: pd.DataFrame,
    cutoff: object,
    params: DemandParams | None = None,
) -> pd.DataFrame:
    """Demand-like and complaint-like low-star reviews, as known at ``cutoff``.

    A review is in the population when it was posted before ``cutoff``, has at most
    ``max_rating`` stars and a text of its own. It is demand-like when a request made
    before ``cutoff``, within ``window_days`` of the review, on the same order (or, with
    ``by_buyer``, by the same buyer) is of a type in ``demand_types`` or asks for less than
    the order's amount (part of the price). Requests made after the cutoff never label.

    Args:
        reviews: Validated reviews (review_id, order_id, created_at, rating, text).
        refunds: Validated requests (order_id, requested_at, amount, type).
        orders: Validated orders (order_id, buyer_id, amount).
        cutoff: The point in time (a timestamp; naive means UTC).
        params: Settings; None for the defaults.

    Returns:
        review_id, buyer_id (missing for an unknown order), text and ``demand_like``
        (bool), one row per review of the population, in the reviews' order.
    """
    p = params or DemandParams()
    t_cut = _cutoff(cutoff)
    pop = _population(reviews, refunds, orders, p)
    pop = pop[pop["posted"].to_numpy() < t_cut]
    return pd.DataFrame(
        {
            "review_id": pd.Series(pop["review_id"].to_numpy(dtype=object), dtype="str"),
            "buyer_id": pd.Series(pop["buyer_id"].to_numpy(dtype=object), dtype="str"),
            "text": pd.Series(pop["text"].to_numpy(dtype=object), dtype="str"),
            # NaT compares False: a review no request ever followed is complaint-like.
            DEMAND_LIKE: pop["first_demand"].to_numpy() < t_cut,
        }
    )


def _population(
    reviews: pd.DataFrame, refunds: pd.DataFrame, orders: pd.DataFrame, p: DemandParams
) -> pd.DataFrame:
    """Every low-star review with a text of its own, whenever posted, and its first demand.

    ``first_demand`` is the earliest request within ``window_days`` of the review (same
    order, or same buyer with ``by_buyer``) that counts as a demand, NaT if none: the
    review is demand-like at T exactly when it was posted before T and ``first_demand`` is
    before T. Computed once, it gives the weak labels at every cutoff by two comparisons.

    Returns:
        ``row`` (position in ``reviews``), review_id, buyer_id, text, posted and
        first_demand (naive UTC), in the reviews' order.
    """
    text = reviews["text"].astype("str").str.strip()
    rating = pd.to_numeric(reviews["rating"], errors="coerce").to_numpy(dtype="float64")
    posted = _utc(reviews["created_at"])
    keep = (
        (rating <= p.max_rating)
        & text.notna().to_numpy(bool)
        & (text != "").to_numpy(bool)
        & ~text.isin(list(SYSTEM_REVIEW_TEXTS)).to_numpy(bool)
    )
    pop = pd.DataFrame(
        {
            "row": np.flatnonzero(keep),
            "review_id": reviews["review_id"].to_numpy(dtype=object)[keep],
            "order_id": reviews["order_id"].to_numpy(dtype=object)[keep],
            "posted": posted[keep],
            "text": text.to_numpy(dtype=object)[keep],
        }
    )
    # Integer positions and codes instead of joins on id strings: the joins were most of
    # the cost (0.63 s of 0.85 s on the default world's 1M orders).
    order_ids = orders["order_id"].to_numpy(dtype=object)
    # Validated orders are unique; otherwise an order id's first row speaks for it.
    first_rows = np.flatnonzero(~pd.Index(order_ids).duplicated(keep="first"))
    index = pd.Index(order_ids[first_rows])
    buyer = orders["buyer_id"].to_numpy(dtype=object)[first_rows]
    amount = pd.to_numeric(orders["amount"], errors="coerce").to_numpy(float)[first_rows]

    def order_pos(ids: pd.Series) -> npt.NDArray[np.intp]:
        return np.asarray(index.get_indexer(ids.to_numpy(dtype=object)), dtype=np.intp)

    r_pos = order_pos(refunds["order_id"])
    known = r_pos >= 0
    r_amount = pd.to_numeric(refunds["amount"], errors="coerce").to_numpy(float)
    partial = known & (r_amount < np.where(known, amount[np.maximum(r_pos, 0)], np.nan))
    demanding = refunds["type"].astype("str").isin(list(p.demand_types)).to_numpy(bool) | partial
    # A request of an unknown order links nothing.
    demanding &= known
    requested = _utc(refunds["requested_at"])[demanding]
    r_order = r_pos[demanding]

    v_pos = order_pos(pop["order_id"])
    v_known = v_pos >= 0
    pop["buyer_id"] = np.where(v_known, buyer[np.maximum(v_pos, 0)], None)
    if p.by_buyer:
        # Buyer codes; a missing buyer id links nothing (-1 on both sides, dropped).
        codes, _ = pd.factorize(buyer)
        v_key = np.where(v_known, codes[np.maximum(v_pos, 0)], -1)
        r_key = codes[r_order]
    else:
        v_key = np.where(v_known, v_pos, -1)
        r_key = r_order
    pairs = pd.DataFrame({"row": pop["row"].to_numpy(), "key": v_key, "posted": pop["posted"]})
    pairs = pairs[pairs["key"].to_numpy() >= 0].merge(
        pd.DataFrame({"key": r_key, "requested": requested})[r_key >= 0], on="key"
    )
    window = np.timedelta64(int(p.window_days * 86400), "s")
    gap = pairs["requested"].to_numpy() - pairs["posted"].to_numpy()
    near = pairs[np.abs(gap) <= window]
    first = near.groupby("row", sort=False)["requested"].min()
    pop["first_demand"] = first.reindex(pop["row"].to_numpy()).to_numpy(
        dtype="datetime64[ns]"
    )
    return pop.drop(columns="order_id")


@dataclass(frozen=True)
class DemandModel:
    """Probability that a review reads like a demand, learned from the platform's requests.

    Attributes:
        cutoff: The point in time its training data was cut at (ISO 8601, UTC).
        params: Its settings.
        n_demand_like: Demand-like training reviews.
        n_complaint_like: Complaint-like training reviews.
        classifier: The fitted n-gram classifier; None when there were too few reviews of
            a class to train one.
    """

    cutoff: str
    params: DemandParams
    n_demand_like: int
    n_complaint_like: int
    classifier: ReviewSentiment | None

    @property
    def trained(self) -> bool:
        """Whether a classifier was fitted."""
        return self.classifier is not None

    def score(self, texts: Sequence[object]) -> npt.NDArray[np.float64]:
        """Probability that each text is demand-like (NaN for all when untrained).

        Args:
            texts: Review texts; missing values count as empty reviews.

        Returns:
            Array of shape (len(texts),).
        """
        if self.classifier is None:
            return np.full(len(texts), np.nan)
        return np.asarray(self.classifier.predict_proba(list(texts))[:, 1], dtype=np.float64)

    def save(self, directory: str | Path) -> Path:
        """Write ``demand.json`` and, when trained, ``weights.npz`` and ``config.json``.

        Args:
            directory: Folder to write into (created if missing).

        Returns:
            The folder.
        """
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        if self.classifier is not None:
            self.classifier.save(folder)
        meta = {
            "format": _FORMAT_ID,
            "version": _FORMAT_VERSION,
            "cutoff": self.cutoff,
            "params": {**asdict(self.params), "demand_types": list(self.params.demand_types)},
            "n_demand_like": self.n_demand_like,
            "n_complaint_like": self.n_complaint_like,
            "trained": self.trained,
        }
        tmp = folder / f".{_MODEL_DIR_FILE}.tmp"
        tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, folder / _MODEL_DIR_FILE)
        return folder

    @classmethod
    def load(cls, directory: str | Path) -> DemandModel:
        """Read a model written by :meth:`save`.

        Args:
            directory: Its folder.

        Returns:
            The model; it scores exactly as the saved one did.

        Raises:
            ModelError: If a file is missing, unreadable or of another format or version.
        """
        path = Path(directory) / _MODEL_DIR_FILE
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path}: cannot read the demand model: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT_ID:
            raise ModelError(f"{path}: not a refundguard demand model")
        if meta.get("version") != _FORMAT_VERSION:
            raise ModelError(
                f"{path}: demand model version {meta.get('version')!r} is not supported "
                f"(this refundguard reads version {_FORMAT_VERSION})"
            )
        try:
            params = DemandParams.from_mapping(meta["params"])
            classifier = ReviewSentiment.load(path.parent) if meta["trained"] else None
            return cls(
                cutoff=str(meta["cutoff"]),
                params=params,
                n_demand_like=int(meta["n_demand_like"]),
                n_complaint_like=int(meta["n_complaint_like"]),
                classifier=classifier,
            )
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ModelError(f"{path}: invalid demand model metadata: {exc}") from exc


def train_demand_model(
    reviews: pd.DataFrame,
    refunds: pd.DataFrame,
    orders: pd.DataFrame,
    cutoff: object,
    params: DemandParams | Mapping[str, Any] | None = None,
) -> DemandModel:
    """Fit the demand model on the weak labels known at ``cutoff``.

    Only reviews posted and requests made before the cutoff are used
    (:func:`weak_labels`), so a snapshot at that cutoff may use the model's scores.

    Args:
        reviews: Validated reviews.
        refunds: Validated requests.
        orders: Validated orders.
        cutoff: The point in time (naive means UTC).
        params: Settings (a :class:`DemandParams` or a plain mapping); None for defaults.

    Returns:
        The model; untrained (scores NaN) when either class has fewer than
        ``min_per_class`` reviews.

    Raises:
        ConfigError: If ``params`` holds an unknown key.
    """
    p = _params(params)
    return _fit(weak_labels(reviews, refunds, orders, cutoff, p), cutoff, p)


def _params(params: DemandParams | Mapping[str, Any] | None) -> DemandParams:
    return params if isinstance(params, DemandParams) else DemandParams.from_mapping(params)


def _fit(labels: pd.DataFrame, cutoff: object, p: DemandParams) -> DemandModel:
    """The demand model fitted on weak labels (untrained if a class is too small)."""
    y = labels[DEMAND_LIKE].to_numpy(dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    classifier = None
    if min(n_pos, n_neg) >= p.min_per_class:
        classifier = ReviewSentiment(
            ngram_min=p.ngram_min,
            ngram_max=p.ngram_max,
            hash_bits=p.hash_bits,
            C=p.C,
            max_chars=p.max_chars,
            random_state=0,
        ).fit(labels["text"].tolist(), y.astype(int))
    t = pd.Timestamp(_cutoff(cutoff))
    return DemandModel(
        cutoff=t.isoformat() + "Z",
        params=p,
        n_demand_like=n_pos,
        n_complaint_like=n_neg,
        classifier=classifier,
    )


def demand_scores(
    reviews: pd.DataFrame,
    refunds: pd.DataFrame,
    orders: pd.DataFrame,
    cutoff: object,
    params: DemandParams | Mapping[str, Any] | None = None,
    n_folds: int = 5,
) -> pd.DataFrame:
    """Demand-model score of every review posted before ``cutoff``, none of it in-sample.

    A model scores its own training reviews too well: it has seen their labels, which
    come from the same requests that refund features count. So the reviews of the
    training population get out-of-fold scores (folds by buyer, from a fixed hash of the
    buyer id, so every run and platform agrees), each from a model trained on the other
    buyers' reviews; the other reviews before the cutoff are scored by the model trained
    on all of them. Everything used was known at the cutoff.

    Args:
        reviews: Validated reviews.
        refunds: Validated requests.
        orders: Validated orders.
        cutoff: The point in time (naive means UTC).
        params: Settings (a :class:`DemandParams` or a plain mapping); None for defaults.
        n_folds: Number of buyer folds, at least 2.

    Returns:
        review_id and ``model_score`` (NaN where a model could not be trained), one row
        per review posted before the cutoff, in the reviews' order.

    Raises:
        ConfigError: If ``params`` holds an unknown key or ``n_folds`` is below 2.
    """
    if n_folds < 2:
        raise ConfigError(f"n_folds must be at least 2, got {n_folds}")
    p = _params(params)
    labels = weak_labels(reviews, refunds, orders, cutoff, p)
    before = _utc(reviews["created_at"]) < _cutoff(cutoff)
    ids = pd.Series(reviews["review_id"].to_numpy(dtype=object)[before], dtype="str")
    texts = reviews["text"].to_numpy(dtype=object)[before].tolist()
    scores = _fit(labels, cutoff, p).score(texts)
    fold = pd.util.hash_array(labels["buyer_id"].fillna("").to_numpy(dtype=object)) % n_folds
    where = pd.Index(ids).get_indexer(labels["review_id"])
    for k in range(n_folds):
        held = fold == k
        if held.any():
            model = _fit(labels[~held], cutoff, p)
            scores[where[held]] = model.score(labels["text"][held].tolist())
    return pd.DataFrame({"review_id": ids, "model_score": scores})


def score_reviews(
    reviews: pd.DataFrame, lexicon: Lexicon, model: DemandModel | None = None
) -> pd.DataFrame:
    """Per-review demand evidence from the lexicon and, if given, the learned model.

    Args:
        reviews: Reviews (review_id, text).
        lexicon: Patterns, from :func:`load_lexicon`.
        model: A demand model, or None.

    Returns:
        review_id, the :func:`detect` columns, and ``model_score`` (NaN without a model
        or for an untrained one), one row per review in order.
    """
    texts = reviews["text"].astype("str").fillna("").tolist()
    found = detect(texts, lexicon)
    found.insert(0, "review_id", pd.Series(reviews["review_id"].to_numpy(object), dtype="str"))
    found["model_score"] = model.score(texts) if model is not None else np.nan
    return found


@dataclass(frozen=True)
class DemandScores:
    """Demand-model scores of reviews under a schedule of models, for point-in-time use.

    Row k of ``scores`` holds the scores given by the model trained on the data before
    ``trained_at[k]``; a snapshot at T reads the row of the latest ``trained_at`` not
    after T (:meth:`at`), so no score at T comes from a model that saw data of T or later.

    Attributes:
        trained_at: When each model's training data was cut (naive UTC), ascending.
        review_ids: The reviews scored (the low-star reviews with a text of their own).
        scores: Shape (len(trained_at), len(review_ids)); NaN where a model did not score
            a review (posted after its last use, or the model untrained).
    """

    trained_at: tuple[pd.Timestamp, ...]
    review_ids: npt.NDArray[np.object_]
    scores: npt.NDArray[np.float64]

    def at(self, cutoff: object) -> int | None:
        """Index of the model a snapshot at ``cutoff`` uses, or None if none is old enough.

        Args:
            cutoff: The point in time (naive means UTC).

        Returns:
            The row of ``scores``, or None.
        """
        t = _cutoff(cutoff)
        times = np.asarray([_cutoff(x) for x in self.trained_at], dtype="datetime64[ns]")
        k = int(np.searchsorted(times, t, side="right")) - 1
        return k if k >= 0 else None

    def wide(self) -> pd.DataFrame:
        """review_id and one column ``demand_<k>`` per model (for a join, e.g. on Spark).

        Returns:
            A new frame.
        """
        out = pd.DataFrame({"review_id": pd.Series(self.review_ids, dtype="str")})
        for k in range(len(self.trained_at)):
            out[f"demand_{k}"] = self.scores[k]
        return out

    @classmethod
    def from_wide(cls, frame: pd.DataFrame, trained_at: Sequence[object]) -> DemandScores:
        """The inverse of :meth:`wide`.

        Args:
            frame: review_id and ``demand_<k>`` for each k.
            trained_at: The models' training cutoffs, ascending.

        Returns:
            The scores.
        """
        times = tuple(pd.Timestamp(_cutoff(t)) for t in trained_at)
        scores = np.vstack(
            [frame[f"demand_{k}"].to_numpy(dtype="float64") for k in range(len(times))]
        ) if times else np.zeros((0, len(frame)))
        return cls(times, frame["review_id"].to_numpy(dtype=object), scores)


def refit_points(cutoffs: Sequence[pd.Timestamp], every: int) -> list[pd.Timestamp]:
    """The cutoffs at which the demand model is trained again.

    Laid back from the last cutoff like the cutoffs themselves (every ``every``-th one),
    so the freshest model is always trained on everything before the last cutoff; the
    first cutoff is always one too, so that every cutoff has a model.

    Args:
        cutoffs: The snapshot cutoffs, ascending.
        every: Cutoffs per refit (1: a model per cutoff).

    Returns:
        The refit cutoffs, ascending.

    Raises:
        ConfigError: ``every`` is below 1.
    """
    if every < 1:
        raise ConfigError(f"the demand model's refit interval must be >= 1, got {every}")
    n = len(cutoffs)
    return [c for j, c in enumerate(cutoffs) if j == 0 or (n - 1 - j) % every == 0]


def demand_history(
    reviews: pd.DataFrame,
    refunds: pd.DataFrame,
    orders: pd.DataFrame,
    points: Sequence[pd.Timestamp],
    params: DemandParams | Mapping[str, Any] | None = None,
) -> tuple[DemandScores, DemandModel | None]:
    """Train a demand model at each point and score the reviews each is used for.

    The model of point k learns only from reviews posted and requests made before it
    (:func:`weak_labels`), and scores the low-star reviews posted before the next point
    (the last one: before itself), which are all a snapshot between the two can read.

    Args:
        reviews: Validated reviews.
        refunds: Validated requests.
        orders: Validated orders.
        points: Training cutoffs, ascending (:func:`refit_points`).
        params: Settings; None for defaults.

    Returns:
        The scores, and the model of the last point (None without points), which a
        scorer uses at any later date.
    """
    p = _params(params)
    pop = _population(reviews, refunds, orders, p)
    ids = pop["review_id"].to_numpy(dtype=object)
    posted = pop["posted"].to_numpy()
    texts = pop["text"].to_numpy(dtype=object)
    times = [pd.Timestamp(_cutoff(t)) for t in points]
    scores = np.full((len(times), len(pop)), np.nan)
    model: DemandModel | None = None
    for k, t in enumerate(times):
        t64 = np.datetime64(t.to_datetime64(), "ns")
        before = posted < t64
        labels = pd.DataFrame(
            {
                "buyer_id": pd.Series(pop["buyer_id"].to_numpy(dtype=object)[before], dtype="str"),
                "text": pd.Series(texts[before], dtype="str"),
                DEMAND_LIKE: pop["first_demand"].to_numpy()[before] < t64,
            }
        )
        model = _fit(labels, t, p)
        until = times[k + 1] if k + 1 < len(times) else t
        used = np.flatnonzero(posted < np.datetime64(until.to_datetime64(), "ns"))
        if model.trained and used.size:
            scores[k, used] = model.score(texts[used].tolist())
    return DemandScores(tuple(times), ids, scores), model


def demand_scores_at(
    reviews: pd.DataFrame,
    refunds: pd.DataFrame,
    orders: pd.DataFrame,
    as_of: object,
    model: DemandModel | None,
    params: DemandParams | Mapping[str, Any] | None = None,
) -> DemandScores:
    """The demand scores a scorer uses at ``as_of``: the shipped model's, point in time.

    The shipped model (trained at the last training cutoff) scores whenever ``as_of`` is
    at or after its cutoff, as the features stage's last model does at its cutoffs. An
    earlier ``as_of`` must not see it (it learned from later requests): a model is then
    trained on the data before ``as_of``, deterministically.

    Args:
        reviews: Validated reviews.
        refunds: Validated requests.
        orders: Validated orders.
        as_of: The scoring time (naive means UTC).
        model: The shipped demand model, or None (trained here then).
        params: Settings of a model trained here; None for the shipped model's, else
            the defaults.

    Returns:
        Scores of one model, valid from its cutoff on.
    """
    t = pd.Timestamp(_cutoff(as_of))
    if model is not None and pd.Timestamp(_cutoff(model.cutoff)) <= t:
        p = model.params
        pop = _population(reviews, refunds, orders, p)
        before = pop["posted"].to_numpy() < np.datetime64(t.to_datetime64(), "ns")
        scores = np.full((1, len(pop)), np.nan)
        scores[0, before] = model.score(pop["text"].to_numpy(dtype=object)[before].tolist())
        at = pd.Timestamp(_cutoff(model.cutoff))
        return DemandScores((at,), pop["review_id"].to_numpy(dtype=object), scores)
    p = _params(params if params is not None else (model.params if model else None))
    found, _ = demand_history(reviews, refunds, orders, [t], p)
    return found


def save_review_models(
    folder: str | Path, model: DemandModel | None, lexicon_file: Path | None
) -> Path:
    """Write the demand model and a copy of the user's lexicon into one folder.

    Args:
        folder: Destination (created; an old lexicon copy is removed).
        model: The demand model, or None (only the lexicon is written then).
        lexicon_file: The user's lexicon file, or None for the shipped lexicon alone.

    Returns:
        The folder.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if model is not None:
        model.save(out)
    copy = out / USER_LEXICON_FILE
    if lexicon_file is not None:
        copy.write_bytes(Path(lexicon_file).read_bytes())
    elif copy.exists():
        copy.unlink()
    return out


def load_review_models(folder: str | Path | None) -> tuple[DemandModel | None, Lexicon]:
    """Read a folder written by :func:`save_review_models`.

    Args:
        folder: The folder, or None (no demand model, the shipped lexicon).

    Returns:
        The demand model (None if the folder holds none) and the lexicon.

    Raises:
        ModelError: The demand model is unreadable.
        ConfigError: The lexicon copy is not a valid lexicon.
    """
    if folder is None or not Path(folder).is_dir():
        return None, load_lexicon()
    path = Path(folder)
    model = DemandModel.load(path) if (path / _MODEL_DIR_FILE).is_file() else None
    user = path / USER_LEXICON_FILE
    return model, load_lexicon(user if user.is_file() else None)
