"""The analyst's case file: build_case, its HTML and JSON, and `refundguard case`.

Fast tests train a small scorer on a tiny simulated world (a few seconds) and build cases
on that world and on the hand-built tables of tests/fixtures.py, whose times are chosen
around the cutoff 2024-03-01. The last test runs the command on the session pipeline's
exported scorer (slow).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import lightgbm as lgb
import pandas as pd
import pytest
from tests.fixtures import TZ, hand_raw_tables
from typer.testing import CliRunner

from refundguard.cli import app
from refundguard.config import FeaturesParams, SimulateParams
from refundguard.contract.tables import REFUND_REASONS, REFUND_STATUSES, REFUND_TYPES
from refundguard.data.validate import validate_tables
from refundguard.errors import InputError
from refundguard.features.build import build_snapshots, compute_features
from refundguard.features.catalog import NO_HISTORY, build_catalog, catalog_version
from refundguard.features.events import prepare_events
from refundguard.model.calibration import Calibrator
from refundguard.model.policy import TIERS
from refundguard.model.train import reference_distribution
from refundguard.serving.case import Case, build_case, build_cases, evidence_table
from refundguard.serving.case_render import (
    _REFUND_REASONS_ZH,
    _REFUND_TYPES_ZH,
    _STATUSES,
    TIER_LABELS,
    case_to_dict,
    format_figure,
    render_html,
    render_json,
)
from refundguard.serving.scorer import Scorer
from refundguard.sim.simulate import simulate_world

runner = CliRunner()
WORLD_AS_OF = pd.Timestamp("2024-07-01", tz=TZ)
HAND_AS_OF = pd.Timestamp("2024-03-01", tz=TZ)


@pytest.fixture(scope="module")
def world_tables() -> dict[str, pd.DataFrame]:
    world = simulate_world(
        SimulateParams(n_buyers=400, days=240, start="2024-01-01", label_coverage=0.9), seed=3
    )
    raw = {k: getattr(world, k) for k in ("orders", "refunds", "reviews", "labels", "buyers")}
    return validate_tables(raw, timezone=TZ, max_text_chars=2000).tables


@pytest.fixture(scope="module")
def scorer(world_tables: dict[str, pd.DataFrame]) -> Scorer:
    """A small LightGBM model on two cutoffs of the tiny world, wrapped as a Scorer."""
    t = world_tables
    fp = FeaturesParams()
    catalog = build_catalog(fp)
    events = prepare_events(t["orders"], t["refunds"], t["reviews"], t["buyers"],
                            labels=t["labels"], timezone=TZ)
    cutoffs = [pd.Timestamp("2024-05-01", tz=TZ), pd.Timestamp("2024-06-01", tz=TZ)]
    snaps = build_snapshots(events, t["labels"], cutoffs, catalog, horizon_days=42,
                            active_days=365)
    names = [f.name for f in catalog]
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 7, "min_data_in_leaf": 5,
         "seed": 1, "num_threads": 1},
        lgb.Dataset(snaps[names], snaps["target"]), num_boost_round=30,
    )
    return Scorer(
        booster=booster, calibrator=Calibrator("platt"), features=tuple(names),
        catalog_version=catalog_version(catalog), bounds=(0.05, 0.2, 0.5), feature_params=fp,
        reference=reference_distribution(snaps, names)["quantiles"], model_version="rg-test",
        timezone=TZ,
    )


@pytest.fixture
def hand() -> dict[str, pd.DataFrame]:
    raw = hand_raw_tables()
    result = validate_tables(raw, timezone=TZ, max_text_chars=2000)  # type: ignore[arg-type]
    assert result.quarantine.empty
    return result.tables


def _buyers_with_refunds(tables: dict[str, pd.DataFrame], n: int) -> list[str]:
    joined = tables["refunds"].merge(tables["orders"][["order_id", "buyer_id"]], on="order_id")
    return [str(b) for b in joined["buyer_id"].value_counts().index[:n]]


def _buyers_with_orders(tables: dict[str, pd.DataFrame], n: int) -> list[str]:
    early = tables["orders"][tables["orders"]["created_at"] < WORLD_AS_OF]
    refunded = set(_buyers_with_refunds(tables, 10))
    counts = early["buyer_id"].value_counts()
    return [str(b) for b in counts.index if b not in refunded][:n]


# --- the case -----------------------------------------------------------------------------


def test_case_scores_as_the_scorer_does(scorer: Scorer,
                                        world_tables: dict[str, pd.DataFrame]) -> None:
    ids = [*_buyers_with_refunds(world_tables, 4), *_buyers_with_orders(world_tables, 3)]
    cases = build_cases(scorer, world_tables, ids, WORLD_AS_OF)
    scores = scorer.score_events(world_tables, WORLD_AS_OF, ids)
    assert [c.buyer_id for c in cases] == ids
    assert [c.probability for c in cases] == scores["probability"].tolist()
    assert [c.tier for c in cases] == scores["tier"].tolist()
    assert [c.risk_score for c in cases] == scores["risk_score"].tolist()
    assert {c.model_version for c in cases} == {"rg-test"}
    assert len({c.tier for c in cases}) >= 2


def test_reasons_for_any_tier_carry_figure_standing_and_evidence(
    scorer: Scorer, world_tables: dict[str, pd.DataFrame]
) -> None:
    ids = [*_buyers_with_refunds(world_tables, 3), *_buyers_with_orders(world_tables, 3)]
    cases = build_cases(scorer, world_tables, ids, WORLD_AS_OF)
    assert any(c.tier in ("trusted", "standard") and c.reasons for c in cases)
    events = prepare_events(world_tables["orders"], world_tables["refunds"],
                            world_tables["reviews"], world_tables["buyers"],
                            labels=world_tables["labels"], timezone=TZ)
    feats = compute_features(events, WORLD_AS_OF, build_catalog(scorer.feature_params), ids)
    for i, case in enumerate(cases):
        assert 1 <= len(case.reasons) <= 3
        assert [r.rank for r in case.reasons] == list(range(1, len(case.reasons) + 1))
        contributions = [r.contribution for r in case.reasons]
        assert contributions == sorted(contributions, reverse=True)
        rows = {
            "orders": {o.order_id for o in case.orders},
            "refunds": {r.refund_id for r in case.refunds},
            "reviews": {v.review_id for v in case.reviews},
            "linked": {link.buyer_id for link in case.linked},
        }
        for r in case.reasons:
            assert r.value == pytest.approx(feats[r.feature].iloc[i])
            assert r.share_below is not None and 0 <= r.share_below <= 1
            assert r.evidence == evidence_table(scorer.catalog[r.feature])
            assert set(r.evidence_ids) <= rows[r.evidence]
            assert r.text_zh and r.text_en and r.meaning_zh
            if r.feature.startswith("refunds_") and r.window_days:
                assert len(r.evidence_ids) == r.value  # a count is its rows


def test_evidence_table_of_each_group(scorer: Scorer) -> None:
    tables = {evidence_table(f) for f in scorer.catalog.values()}
    assert tables == {"orders", "refunds", "reviews", "linked"}
    assert evidence_table(scorer.catalog["sellers_refunded_365d"]) == "refunds"
    assert evidence_table(scorer.catalog["sellers_365d"]) == "orders"


def test_only_what_was_known_before_the_date_shows(
    scorer: Scorer, hand: dict[str, pd.DataFrame]
) -> None:
    case = build_case(scorer, hand, "b1", HAND_AS_OF)
    # o5 is ordered on 5 March; r4 and the review v3 come after the date too.
    assert [o.order_id for o in case.orders] == ["o1", "o2", "o3", "o4"]
    assert [r.refund_id for r in case.refunds] == ["r1", "r2", "r3"]
    assert [v.review_id for v in case.reviews] == ["v1", "v2", "v4"]
    # o4 is signed for on 2 March: not known on 1 March.
    delivered = {o.order_id: o.delivered_at for o in case.orders}
    assert delivered["o4"] is None
    assert delivered["o1"] == datetime.fromisoformat("2024-01-12T10:00:00+08:00")
    # r2 is rejected on 3 March: still pending on 1 March.
    status = {r.refund_id: (r.status, r.resolved_at) for r in case.refunds}
    assert status["r2"] == ("pending", None)
    assert status["r1"][0] == "approved" and status["r1"][1] is not None
    hours = {r.refund_id: r.hours_after_delivery for r in case.refunds}
    assert hours["r1"] == pytest.approx(0.5)
    assert hours["r3"] is None  # o3 was never delivered: asked before delivery
    for ids in [r.evidence_ids for r in case.reasons]:
        assert not {"o5", "r4", "v3"} & set(ids)
    # The same in what an analyst reads.
    text = render_json(case)
    data = json.loads(text)
    assert {o["order_id"] for o in data["orders"]} == {"o1", "o2", "o3", "o4"}
    page = render_html(case)
    for later in (">o5<", ">r4<", ">v3<", "后悔", "已拒绝", "2024-03-03"):
        assert later not in page
    assert "rejected" not in render_html(case, "en")
    # A week later, all of it is known.
    later_case = build_case(scorer, hand, "b1", pd.Timestamp("2024-03-08", tz=TZ))
    assert [o.order_id for o in later_case.orders][-1] == "o5"
    assert {r.refund_id: r.status for r in later_case.refunds}["r2"] == "rejected"


def test_linked_accounts_show_labels_only_once_decided(
    scorer: Scorer, hand: dict[str, pd.DataFrame]
) -> None:
    # b1 is labeled an abuser on 1 April; b2 shares b1's device.
    before = build_case(scorer, hand, "b2", HAND_AS_OF)
    assert [link.buyer_id for link in before.linked] == ["b1"]
    link = before.linked[0]
    assert link.kinds == ("device",) and link.shared_ids == ("device:d1",)
    assert link.orders == 4  # o5 comes after the date
    assert (link.label, link.labeled_at) == (None, None)
    assert 'class="bad">恶意<' not in render_html(before)
    after = build_case(scorer, hand, "b2", pd.Timestamp("2024-04-15", tz=TZ))
    assert after.linked[0].label == 1
    assert after.linked[0].label_source == "platform_ruling"
    assert 'class="bad">恶意<' in render_html(after)


def test_extortion_phrases_are_found_and_highlighted(
    scorer: Scorer, hand: dict[str, pd.DataFrame]
) -> None:
    case = build_case(scorer, hand, "b1", HAND_AS_OF)
    v1 = next(v for v in case.reviews if v.review_id == "v1")
    assert v1.extortion_language and v1.extortion_score >= 0.5
    assert v1.extortion_phrases and v1.highlights
    marked = [v1.text[a:b] for a, b in v1.highlights]
    assert any("赔钱" in m or "差评" in m for m in marked)
    v2 = next(v for v in case.reviews if v.review_id == "v2")
    assert not v2.extortion_language and v2.highlights == ()
    assert re.search(r"<mark>[^<]*(赔钱|差评)[^<]*</mark>", render_html(case))


def test_a_buyer_without_history_gets_the_catalog_note(
    scorer: Scorer, hand: dict[str, pd.DataFrame]
) -> None:
    case = build_case(scorer, hand, "b1", pd.Timestamp("2024-01-01", tz=TZ))
    assert not case.has_history and case.tier == NO_HISTORY.tier
    assert case.reasons == () and case.orders == () and case.refunds == ()
    assert case.note_zh == NO_HISTORY.zh and case.note_en == NO_HISTORY.en
    assert NO_HISTORY.zh in render_html(case)


def test_unknown_buyer_is_an_input_error(scorer: Scorer, hand: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(InputError, match=r"'B1'.*case-sensitive"):
        build_case(scorer, hand, "B1", HAND_AS_OF)
    with pytest.raises(InputError, match="no buyer"):
        build_cases(scorer, hand, [], HAND_AS_OF)


# --- rendering ----------------------------------------------------------------------------


@pytest.fixture
def hand_case(scorer: Scorer, hand: dict[str, pd.DataFrame]) -> Case:
    hand["reviews"].loc[hand["reviews"]["review_id"] == "v2", "text"] = (
        '<script>alert("x")</script><img src=x>'
    )
    return build_case(scorer, hand, "b1", HAND_AS_OF)


def test_html_is_chinese_by_default_and_english_on_request(hand_case: Case) -> None:
    zh = render_html(hand_case)
    assert '<html lang="zh-CN">' in zh
    assert TIER_LABELS["zh"][hand_case.tier] in zh
    for header in ("主要原因", "订单", "售后申请", "评价", "关联账号", "金额(元)", "签收后(小时)"):
        assert header in zh
    assert "仅退款" in zh and "商品破损" in zh
    en = render_html(hand_case, "en")
    assert '<html lang="en">' in en
    assert TIER_LABELS["en"][hand_case.tier] in en
    assert "Top reasons" in en and "主要原因" not in en
    assert "refund_only" in en
    with pytest.raises(ValueError, match="language"):
        render_html(hand_case, "fr")  # type: ignore[arg-type]


def test_html_is_self_contained_printable_and_escaped(hand_case: Case) -> None:
    page = render_html(hand_case)
    assert "@media print" in page and "<style>" in page
    for external in ("http://", "https://", "<link", "<script", "<img", "@import", "url("):
        assert external not in page, external
    assert not re.search(r"<[^>]*\b(src|href)=\"?http", page)
    assert "&lt;script&gt;" in page and "&lt;img src=x&gt;" in page
    several = render_html([hand_case, hand_case], "en")
    assert several.count('<section class="case"') == 2


def test_every_tier_and_refund_code_has_chinese_words() -> None:
    assert set(TIER_LABELS["zh"]) == set(TIERS) == set(TIER_LABELS["en"])
    assert set(_REFUND_TYPES_ZH) == set(REFUND_TYPES)
    assert set(_REFUND_REASONS_ZH) == set(REFUND_REASONS)
    assert set(_STATUSES["zh"]) == set(REFUND_STATUSES) == set(_STATUSES["en"])


def test_figures_use_chinese_units() -> None:
    assert format_figure(1280.0, "cny") == "1,280 元"
    assert format_figure(3.46, "hours") == "3.5 小时"
    assert format_figure(12.0, "days") == "12 天"
    assert format_figure(0.63, "share") == "63%"
    assert format_figure(1280.0, "cny", "en") == "¥1,280"
    assert format_figure(float("nan"), "count") == "-"


def test_json_is_machine_shaped(hand_case: Case) -> None:
    data = json.loads(render_json(hand_case))
    assert data["format"] == "refundguard-case/1"
    assert data["buyer_id"] == "b1"
    assert data["probability"] == hand_case.probability  # full precision
    assert data["as_of"] == "2024-03-01T00:00:00+08:00"
    assert data["orders"][0]["created_at"] == "2024-01-10T10:00:00+08:00"
    assert data == case_to_dict(hand_case) | {}
    assert all(re.fullmatch(r"[a-z_]+", k) for k in data)
    for r in data["reasons"]:
        assert {"feature", "value", "share_below", "evidence", "evidence_ids", "text_zh",
                "text_en"} <= set(r)
    assert isinstance(json.loads(render_json([hand_case, hand_case])), list)


# --- the command --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--buyer", "b1", "--as-of", "2024-03-01", "--lang", "fr"], "--lang"),
        (["--as-of", "2024-03-01"], "give a buyer"),
        (["--buyer", "b1"], "--as-of is required"),
        (["--buyer", "b1", "--as-of", "2024-03-01", "--out", "x.pdf"], "--out"),
        (["--buyer", "b1", "--as-of", "2024-03-01", "--format", "pdf"], "--format"),
    ],
)
def test_case_command_bad_arguments_give_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["case", *args])
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("refundguard: error:")
    assert message in lines[0]


def test_case_command_on_the_pipeline(project: Path, tmp_path: Path) -> None:
    orders = pd.read_parquet(project / "data/validated/orders.parquet")
    refunds = pd.read_parquet(project / "data/validated/refunds.parquet")
    busy = refunds.merge(orders[["order_id", "buyer_id"]], on="order_id")["buyer_id"]
    ids = [str(b) for b in busy.value_counts().index[:2]]
    base = ["case", "--model", str(project / "models/scorer"), "--data",
            str(project / "data/simulated"), "--as-of", "2024-12-01"]
    as_of = pd.Timestamp("2024-12-01", tz=TZ)

    html_file = tmp_path / "case.html"
    result = runner.invoke(app, [*base, "--buyer", ids[0], "--out", str(html_file)])
    assert result.exit_code == 0, result.output
    page = html_file.read_text(encoding="utf-8")
    assert "主要原因" in page and ids[0] in page and "@media print" in page

    json_file = tmp_path / "case.json"
    result = runner.invoke(app, [*base, "--buyer", ids[0], "--out", str(json_file)])
    assert result.exit_code == 0, result.output
    data = json.loads(json_file.read_text(encoding="utf-8"))
    assert data["buyer_id"] == ids[0] and data["tier"] in TIER_LABELS["en"]
    assert data["reasons"] and data["orders"]
    times = [o["created_at"] for o in data["orders"]] + [r["requested_at"] for r in
                                                         data["refunds"]]
    assert all(pd.Timestamp(x) < as_of for x in times)

    (tmp_path / "buyers.csv").write_text("buyer_id\n" + "\n".join(ids) + "\n", encoding="utf-8")
    folder = tmp_path / "cases"
    result = runner.invoke(app, [*base, "--buyers", str(tmp_path / "buyers.csv"), "--out",
                                 str(folder), "--lang", "en"])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in folder.iterdir())
    assert files == sorted(f"case_{b}.html" for b in ids)
    assert "Top reasons" in (folder / files[0]).read_text(encoding="utf-8")

    for extra, message in (
        (["--buyer", "no-such-buyer"], "appear nowhere in the data"),
        (["--buyer", ids[0], "--as-of", "2030-01-01"], "days after the data's last event"),
    ):
        result = runner.invoke(app, [*base, *extra, "--out", str(tmp_path / "x.html")])
        assert result.exit_code == 2
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("refundguard: error:"), lines
        assert message in lines[0]
        assert "Traceback" not in result.output
