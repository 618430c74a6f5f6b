"""The team's deny and allow lists (黑名单/白名单), applied over the model's tiers.

A merchant guide's advice is to put proven abusers on a blacklist that limits their
buying, and to let buyers whose history earns it through quickly. The lists are the
team's decisions, not the model's: :func:`apply_lists` places a denied buyer in
``restrict`` and an allowed buyer at most in ``standard``, whatever the score, and
records it (``override``, ``override_reason``, ``override_by``) next to the model's own
tier (``model_tier``) and probability, which stay as the model gave them. Only entries
added before the scoring time apply. The lists never feed features or training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from refundguard.contract.vocabulary import TIERS

DENY: Final = "deny"


ALLOW: Final = "allow"


# The tier a denied buyer gets, and the highest tier an allowed buyer may keep.
DENY_TIER: Final = TIERS[-1]
ALLOW_MAX_TIER: Final = TIERS[1]


# Columns apply_lists adds: model_tier after tier, the override's record after it.
LIST_COLUMNS: Final = ("model_tier", "override", "override_reason", "override_by")


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def effective_entries(entries: pd.DataFrame | None, as_of: pd.Timestamp) -> pd.DataFrame:
    """The entries of one list in force at a time: one row per buyer.

    Args:
        entries: A validated list (buyer_id, added_at, reason, optionally added_by), or
            None for a list that does not exist.
        as_of: Only entries added strictly before this time count (naive means UTC).

    Returns:
        buyer_id, added_at, reason, added_by: for each buyer the latest entry added
        before ``as_of`` (a buyer put on the list twice shows the newer reason).
    """
    columns = ["buyer_id", "added_at", "reason", "added_by"]
    if entries is None or entries.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    frame = entries.reindex(columns=columns)
    added = pd.to_datetime(frame["added_at"], utc=True)
    frame = frame.assign(added_at=added)[(added < _utc(as_of)).fillna(False).to_numpy(bool)]
    frame = frame.sort_values("added_at", kind="stable")
    return frame.drop_duplicates("buyer_id", keep="last").reset_index(drop=True)


def apply_lists(
    scores: pd.DataFrame,
    deny: pd.DataFrame | None,
    allow: pd.DataFrame | None,
    as_of: pd.Timestamp,
) -> pd.DataFrame:
    """Apply the deny and allow lists to scored buyers.

    A buyer on the deny list is placed in ``restrict``; a buyer on the allow list is
    placed at most in ``standard`` (a trusted buyer stays trusted). **A buyer on both
    lists is denied: the deny list wins**, since letting a proven abuser through costs
    more than holding an allowed buyer for a look; :func:`summarize_lists` counts them.
    Entries added at or after ``as_of`` do not apply; listed buyers that were not scored
    are ignored.

    Args:
        scores: Scored buyers: buyer_id, probability, tier and any other columns.
        deny: The validated deny list, or None.
        allow: The validated allow list, or None.
        as_of: The scoring time (naive means UTC).

    Returns:
        A copy of ``scores`` with ``tier`` the final tier, and after it ``model_tier``
        (the model's tier), ``override`` ("deny", "allow" or "" for a buyer on no list in
        force), ``override_reason`` and ``override_by`` (the entry's reason and author,
        "" when none). Probability, risk score and reasons stay the model's. Rows keep
        their order.

    Raises:
        ValueError: ``scores`` lacks buyer_id or tier, or already carries list columns.
    """
    missing = [c for c in ("buyer_id", "tier") if c not in scores.columns]
    if missing:
        raise ValueError(f"scores lack column(s): {', '.join(missing)}")
    present = [c for c in LIST_COLUMNS if c in scores.columns]
    if present:
        raise ValueError(f"scores already carry list column(s): {', '.join(present)}")
    ids = scores["buyer_id"].astype("str")
    model_tier = scores["tier"].astype("str").to_numpy(dtype=object)
    tier = model_tier.copy()
    n = len(scores)
    override = np.full(n, "", dtype=object)
    reason = np.full(n, "", dtype=object)
    by = np.full(n, "", dtype=object)
    # Allow first, deny after it: deny overwrites, so a buyer on both lists is denied.
    for name, entries in ((ALLOW, allow), (DENY, deny)):
        found = effective_entries(entries, as_of).set_index("buyer_id")
        hit = ids.isin(found.index).to_numpy(dtype=bool)
        if not hit.any():
            continue
        rows = found.loc[ids[hit]]
        override[hit] = name
        reason[hit] = rows["reason"].fillna("").astype("str").to_numpy(dtype=object)
        by[hit] = rows["added_by"].fillna("").astype("str").to_numpy(dtype=object)
        if name == DENY:
            tier[hit] = DENY_TIER
        else:
            tier[hit] = [_at_most(t, ALLOW_MAX_TIER) for t in model_tier[hit]]
    out = scores.copy()
    out["tier"] = tier
    at = out.columns.get_loc("tier") + 1
    for offset, (column, values) in enumerate(
        zip(LIST_COLUMNS, (model_tier, override, reason, by), strict=True)
    ):
        out.insert(int(at) + offset, column, values)
    return out


def _at_most(tier: str, cap: str) -> str:
    if tier not in TIERS:
        return cap
    return TIERS[min(TIERS.index(tier), TIERS.index(cap))]


@dataclass(frozen=True)
class ListSummary:
    """How the lists changed a scoring run, and where they and the model disagree.

    Attributes:
        denied: Scored buyers the deny list placed in restrict.
        allowed: Scored buyers under the allow list (and not denied).
        deny_changed: Denied buyers whose tier the deny list changed.
        allow_changed: Allowed buyers whose tier the allow list lowered.
        deny_model_trusted: Denied buyers the model would trust: worth a second look.
        allow_model_restrict: Allowed buyers the model would restrict: worth a look too.
        on_both: Scored buyers on both lists in force (denied: deny wins).
    """

    denied: int
    allowed: int
    deny_changed: int
    allow_changed: int
    deny_model_trusted: int
    allow_model_restrict: int
    on_both: int

    @property
    def disagreements(self) -> int:
        """Buyers on a list whose model tier says the opposite."""
        return self.deny_model_trusted + self.allow_model_restrict


def summarize_lists(
    applied: pd.DataFrame, allow: pd.DataFrame | None, as_of: pd.Timestamp
) -> ListSummary:
    """Count what :func:`apply_lists` did.

    Args:
        applied: What :func:`apply_lists` returned.
        allow: The allow list given to it (to count buyers on both lists).
        as_of: The time given to it.

    Returns:
        The counts.
    """
    override = applied["override"].to_numpy(dtype=object)
    model = applied["model_tier"].to_numpy(dtype=object)
    final = applied["tier"].to_numpy(dtype=object)
    denied = override == DENY
    allowed = override == ALLOW
    allowed_ids = set(effective_entries(allow, as_of)["buyer_id"].astype("str"))
    both = denied & applied["buyer_id"].astype("str").isin(allowed_ids).to_numpy(dtype=bool)
    return ListSummary(
        denied=int(denied.sum()),
        allowed=int(allowed.sum()),
        deny_changed=int((denied & (model != final)).sum()),
        allow_changed=int((allowed & (model != final)).sum()),
        deny_model_trusted=int((denied & (model == TIERS[0])).sum()),
        allow_model_restrict=int((allowed & (model == TIERS[-1])).sum()),
        on_both=int(both.sum()),
    )
