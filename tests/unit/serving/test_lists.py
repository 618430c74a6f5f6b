"""The deny and allow lists over the model's tiers (serving/lists.py), and the score tables
for people (serving/people.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from refundguard.contract.vocabulary import TIERS
from refundguard.serving.labels import COLUMN_LABELS, TIER_LABELS
from refundguard.serving.lists import (
    LIST_COLUMNS,
    apply_lists,
    effective_entries,
    summarize_lists,
)
from refundguard.serving.people import for_people, tier_summary, write_scores

AS_OF = pd.Timestamp("2024-06-01", tz="Asia/Shanghai")


def _scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "buyer_id": ["t1", "s1", "r1", "x1", "x2"],
            "probability": [0.01, 0.1, 0.9, 0.3, 0.6],
            "risk_score": [10, 100, 900, 300, 600],
            "tier": ["trusted", "standard", "restrict", "review", "restrict"],
            "reasons_zh": ["", "", "退款多", "", ""],
            "model_version": "rg-test",
        }
    )


def _entries(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "buyer_id": [r[0] for r in rows],
            "added_at": pd.to_datetime([r[1] for r in rows], format="ISO8601").tz_localize("UTC"),
            "reason": [r[2] for r in rows],
            "added_by": "analyst",
        }
    )


def test_deny_places_in_restrict_and_keeps_the_model_visible() -> None:
    deny = _entries(("t1", "2024-05-01", "平台判定恶意"), ("s1", "2024-05-02", "敲诈差评"))
    out = apply_lists(_scores(), deny, None, AS_OF)
    row = out.set_index("buyer_id")
    assert row.loc["t1", "tier"] == "restrict" and row.loc["s1", "tier"] == "restrict"
    assert row.loc["t1", "model_tier"] == "trusted"
    assert row.loc["t1", "override"] == "deny"
    assert row.loc["t1", "override_reason"] == "平台判定恶意"
    assert row.loc["t1", "override_by"] == "analyst"
    # The model's probability, risk score and reasons stay as they were.
    pd.testing.assert_series_equal(out["probability"], _scores()["probability"])
    pd.testing.assert_series_equal(out["risk_score"], _scores()["risk_score"])
    # Others untouched; rows keep their order.
    assert out["buyer_id"].tolist() == _scores()["buyer_id"].tolist()
    assert row.loc["r1", "override"] == "" and row.loc["r1", "tier"] == "restrict"
    assert list(out.columns[3:8]) == ["tier", *LIST_COLUMNS]


def test_allow_caps_at_standard_and_never_raises() -> None:
    allow = _entries(("t1", "2024-05-01", "老客户"), ("r1", "2024-05-01", "核实无误"),
                     ("x1", "2024-05-01", "VIP"))
    out = apply_lists(_scores(), None, allow, AS_OF).set_index("buyer_id")
    assert out.loc["t1", "tier"] == "trusted"  # at most standard: trusted stays trusted
    assert out.loc["r1", "tier"] == "standard" and out.loc["r1", "model_tier"] == "restrict"
    assert out.loc["x1", "tier"] == "standard"
    assert set(out.loc[["t1", "r1", "x1"], "override"]) == {"allow"}
    assert out.loc["r1", "override_reason"] == "核实无误"


def test_buyer_on_both_lists_is_denied() -> None:
    deny = _entries(("r1", "2024-05-01", "黑名单"))
    allow = _entries(("r1", "2024-05-03", "白名单"))
    out = apply_lists(_scores(), deny, allow, AS_OF)
    row = out.set_index("buyer_id").loc["r1"]
    assert row["tier"] == "restrict" and row["override"] == "deny"
    assert row["override_reason"] == "黑名单"
    assert summarize_lists(out, allow, AS_OF).on_both == 1


def test_entries_added_at_or_after_as_of_do_not_apply() -> None:
    deny = _entries(("t1", "2024-06-02", "later"), ("s1", "2024-05-31 16:00", "at as_of"))
    # 2024-05-31 16:00 UTC is 2024-06-01 00:00 in Shanghai: not before as_of.
    out = apply_lists(_scores(), deny, None, AS_OF)
    assert (out["override"] == "").all()
    assert out["tier"].tolist() == out["model_tier"].tolist() == _scores()["tier"].tolist()
    earlier = apply_lists(_scores(), deny, None, AS_OF + pd.Timedelta(days=2))
    assert (earlier["override"] == "deny").sum() == 2


def test_latest_entry_before_as_of_gives_the_reason() -> None:
    deny = _entries(("t1", "2024-03-01", "first"), ("t1", "2024-05-01", "second"),
                    ("t1", "2024-07-01", "future"))
    assert effective_entries(deny, AS_OF)["reason"].tolist() == ["second"]


def test_unknown_buyer_on_a_list_changes_nothing() -> None:
    deny = _entries(("nobody", "2024-05-01", "x"))
    allow = _entries(("ghost", "2024-05-01", "y"))
    out = apply_lists(_scores(), deny, allow, AS_OF)
    assert len(out) == len(_scores())
    assert (out["override"] == "").all() and (out["tier"] == out["model_tier"]).all()
    s = summarize_lists(out, allow, AS_OF)
    assert (s.denied, s.allowed, s.disagreements, s.on_both) == (0, 0, 0, 0)


def test_empty_or_missing_lists() -> None:
    out = apply_lists(_scores(), None, _entries(), AS_OF)
    assert (out["override"] == "").all()
    assert out["override_reason"].tolist() == [""] * len(out)


def test_summary_counts_moves_and_disagreements() -> None:
    deny = _entries(("t1", "2024-05-01", "a"), ("r1", "2024-05-01", "b"))
    allow = _entries(("x2", "2024-05-01", "c"), ("s1", "2024-05-01", "d"))
    s = summarize_lists(apply_lists(_scores(), deny, allow, AS_OF), allow, AS_OF)
    assert (s.denied, s.deny_changed, s.deny_model_trusted) == (2, 1, 1)
    assert (s.allowed, s.allow_changed, s.allow_model_restrict) == (2, 1, 1)
    assert s.disagreements == 2 and s.on_both == 0


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="tier"):
        apply_lists(_scores().drop(columns="tier"), None, None, AS_OF)
    once = apply_lists(_scores(), None, None, AS_OF)
    with pytest.raises(ValueError, match="already"):
        apply_lists(once, None, None, AS_OF)


# --- tables for people ------------------------------------------------------------------


def test_people_table_is_sorted_rounded_and_translated() -> None:
    scores = _scores().assign(probability=[0.012345678, 0.1, 0.987654321, 0.3, 0.6])
    en = for_people(scores)
    assert en["buyer_id"].tolist() == ["r1", "x2", "x1", "s1", "t1"]
    assert en["probability"].tolist()[0] == 0.9877
    assert list(en.columns) == list(scores.columns)
    zh = for_people(apply_lists(scores, _entries(("t1", "2024-05-01", "恶意")), None, AS_OF),
                    "zh")
    assert zh.columns[0] == "买家ID" and "处理级别" in zh.columns and "名单覆盖" in zh.columns
    assert zh["处理级别"].iloc[0] == "限制"
    assert set(zh["处理级别"]) <= set(TIER_LABELS["zh"].values())
    # The denied trusted buyer stands with the other restricted ones.
    assert zh["买家ID"].tolist()[:3] == ["r1", "x2", "t1"]
    assert zh.set_index("买家ID").loc["t1", "名单覆盖"] == "黑名单"
    assert zh.set_index("买家ID").loc["t1", "模型级别"] == "信任"


def test_tier_summary_has_every_tier_and_a_total() -> None:
    summary = tier_summary(apply_lists(_scores(), _entries(("t1", "2024-05-01", "x")), None,
                                       AS_OF))
    assert summary["tier"].tolist() == [*reversed(TIERS), "total"]
    assert summary["buyers"].tolist() == [3, 1, 1, 0, 5]
    assert summary["overridden"].tolist() == [1, 0, 0, 0, 1]
    assert summary["share"].iloc[-1] == 1.0
    zh = tier_summary(_scores(), "zh")
    assert zh[COLUMN_LABELS["zh"]["tier"]].tolist() == ["限制", "人工审核", "标准", "信任", "合计"]


@pytest.mark.parametrize("suffix", [".parquet", ".json"])
def test_machine_files_keep_order_names_and_precision(tmp_path: Path, suffix: str) -> None:
    scores = _scores().assign(probability=[0.0123456789, 0.1, 0.9, 0.3, 0.6])
    path = tmp_path / f"s{suffix}"
    write_scores(scores, path, "zh")
    got = (pd.read_parquet(path) if suffix == ".parquet"
           else pd.DataFrame(json.loads(path.read_text(encoding="utf-8"))))
    assert list(got.columns) == list(scores.columns)
    assert got["buyer_id"].tolist() == scores["buyer_id"].tolist()
    assert got["probability"].iloc[0] == 0.0123456789
    assert got["tier"].tolist() == scores["tier"].tolist()
