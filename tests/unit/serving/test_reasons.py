from __future__ import annotations

import math
from collections.abc import Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from refundguard.config import FeaturesParams
from refundguard.features.catalog import Feature, build_catalog
from refundguard.serving.reasons import (
    SEPARATOR,
    TOP_REASONS,
    Reason,
    contributions,
    format_value,
    join,
    sentence,
    standing,
    top_reasons,
)

CATALOG: dict[str, Feature] = {f.name: f for f in build_catalog(FeaturesParams())}


# --- format_value -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "value", "text"),
    [
        ("share", 0.63, "63%"),
        ("share", 12 / 19, "63%"),
        ("share", 0.0, "0%"),
        ("share", 1.0, "100%"),
        ("cny", 1280.0, "¥1,280"),
        ("cny", 1234567.8, "¥1,234,568"),
        ("cny", 0.4, "¥0"),
        ("hours", 3.46, "3.5 h"),
        ("hours", 0.0, "0.0 h"),
        ("days", 12.4, "12 d"),
        ("days", 400.0, "400 d"),
        ("ratio", 2.0, "2.0x"),
        ("ratio", 1.26, "1.3x"),
        ("stars", 4.3, "4.3★"),
        ("stars", 1.0, "1.0★"),
        ("score", 0.123, "0.12"),
        ("score", -0.5, "-0.50"),
        ("count", 12.0, "12"),
        ("count", 0.0, "0"),
        ("count", 1234.0, "1234"),
        ("count", 2.5, "2.5"),  # a mean count keeps one decimal
    ],
)
def test_format_value_per_unit(unit: str, value: float, text: str) -> None:
    assert format_value(value, unit) == text


@pytest.mark.parametrize(
    ("unit", "value", "text"),
    [
        ("cny", 1280.0, "1,280元"),
        ("hours", 3.46, "3.5小时"),
        ("days", 12.0, "12天"),
        ("ratio", 2.5, "2.5倍"),
        ("share", 0.63, "63%"),
    ],
)
def test_format_value_in_chinese_units(unit: str, value: float, text: str) -> None:
    assert format_value(value, unit, lang="zh") == text


@pytest.mark.parametrize("unit", ["share", "cny", "hours", "days", "ratio", "stars", "score",
                                  "count"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_format_value_of_a_missing_value_is_a_dash(unit: str, value: float) -> None:
    assert format_value(value, unit) == "-"


def test_every_catalog_unit_is_formatted() -> None:
    for f in CATALOG.values():
        text = format_value(3.0, f.unit)
        assert "3" in text and text != "-"


# --- standing ---------------------------------------------------------------------------

TENTHS = np.linspace(0.0, 10.0, 11).tolist()  # quantile i/10 of a uniform 0..10 is i
ZERO_90 = [0.0] * 10 + [0.5]  # 0 for 90% of buyers, then up to 0.5


@pytest.mark.parametrize(
    ("value", "quantiles", "below", "above"),
    [
        # between quantiles: placed linearly
        (2.5, TENTHS, 0.25, 0.75),
        (7.25, TENTHS, 0.725, 0.275),
        (9.99, TENTHS, 0.999, 0.001),
        # beyond the ends
        (-1.0, TENTHS, 0.0, 1.0),
        (11.0, TENTHS, 1.0, 0.0),
        # plateau: a share that is 0 for 90% of buyers; nobody is below 0, 10% above it
        (0.0, ZERO_90, 0.0, 0.1),
        (0.25, ZERO_90, 0.95, 0.05),  # half-way from the 90% point (0) to the top (0.5)
        (0.5, ZERO_90, 0.9, 0.0),  # the top: nobody above
        (1.0, ZERO_90, 1.0, 0.0),
        # a plateau in the middle: 0 to 25%, then 1 up to 75%, then 2
        (1.0, [0.0, 1.0, 1.0, 1.0, 2.0], 0.0, 0.25),
        (1.5, [0.0, 1.0, 1.0, 1.0, 2.0], 0.875, 0.125),
        (0.5, [0.0, 1.0, 1.0, 1.0, 2.0], 0.125, 0.875),
        # everyone the same
        (3.0, [3.0, 3.0, 3.0], 0.0, 0.0),
        (2.0, [3.0, 3.0, 3.0], 0.0, 1.0),
        (4.0, [3.0, 3.0, 3.0], 1.0, 0.0),
    ],
)
def test_standing_by_hand(value: float, quantiles: Sequence[float], below: float,
                          above: float) -> None:
    got = standing(value, quantiles)
    assert got == pytest.approx((below, above), abs=1e-12)


@pytest.mark.parametrize(
    ("value", "quantiles"),
    [
        (math.nan, TENTHS),
        (math.inf, TENTHS),
        (1.0, []),
        (1.0, [1.0]),  # one point is no distribution
        (math.nan, []),
    ],
)
def test_standing_unknown(value: float, quantiles: Sequence[float]) -> None:
    below, above = standing(value, quantiles)
    assert math.isnan(below) and math.isnan(above)


@pytest.mark.parametrize("kind", ["poisson", "zero_heavy", "continuous"])
def test_standing_agrees_with_the_sample(kind: str, rng: np.random.Generator) -> None:
    """Shares from the quantiles are within one quantile step of the sample's own shares."""
    n, points = 4000, 41
    if kind == "poisson":
        sample = rng.poisson(1.5, n).astype("float64")
        values = np.arange(-1.0, 9.0, 0.5)
    elif kind == "zero_heavy":
        sample = np.where(rng.random(n) < 0.9, 0.0, rng.random(n).round(2))
        values = np.array([0.0, 0.005, 0.1, 0.37, 0.5, 0.99, 1.0, 2.0])
    else:
        sample = rng.lognormal(3.0, 1.0, n)
        values = np.quantile(sample, [0.013, 0.2, 0.5, 0.77, 0.991]) * 1.0001
    q = np.quantile(sample, np.linspace(0.0, 1.0, points)).tolist()
    tol = 1 / (points - 1) + 2 / n
    for v in values:
        below, above = standing(float(v), q)
        assert 0.0 <= below <= 1.0 and 0.0 <= above <= 1.0
        assert below + above <= 1.0 + 1e-12
        assert below == pytest.approx(float((sample < v).mean()), abs=tol)
        assert above == pytest.approx(float((sample > v).mean()), abs=tol)


def test_standing_is_monotone_off_the_quantiles(rng: np.random.Generator) -> None:
    q = np.sort(rng.normal(size=21))
    values = np.sort(rng.uniform(-3, 3, 300))
    values = values[~np.isin(values, q)]
    ref = q.tolist()
    below = np.array([standing(float(v), ref)[0] for v in values])
    above = np.array([standing(float(v), ref)[1] for v in values])
    assert (np.diff(below) >= 0).all()
    assert (np.diff(above) <= 0).all()
    np.testing.assert_allclose(below + above, 1.0)


# --- sentence ---------------------------------------------------------------------------

# value 12/19 on a uniform reference 0..0.64: (12/19) / 0.64 = 98.7% of buyers below.
RATE_REF = np.linspace(0.0, 0.64, 101).tolist()


@pytest.mark.parametrize("w", [30, 90, 365])
def test_refund_rate_sentence_reproduces_the_issue_example(w: int) -> None:
    f = CATALOG[f"refund_rate_count_{w}d"]
    en, zh = sentence(f, 12 / 19, RATE_REF, {f"orders_{w}d": 19.0})
    assert zh == f"近{w}天 19 单中 12 单申请退款 (63%), 高于 98% 的买家"
    assert en == (f"Refunds asked on 12 of 19 orders in the last {w} days (63%), "
                  "more than 98% of buyers")


@pytest.mark.parametrize(
    ("value", "n", "k", "pct"),
    [
        (2 / 7, 7.0, 2, "29%"),
        (0.333333, 3.0, 1, "33%"),  # a rounded share still gives a whole count
        (1.0, 4.0, 4, "100%"),
        (0.0, 12.0, 0, "0%"),
        (0.5, 1000.0, 500, "50%"),
    ],
)
def test_refund_rate_sentence_computes_k_of_n(value: float, n: float, k: int, pct: str) -> None:
    f = CATALOG["refund_rate_count_90d"]
    en, zh = sentence(f, value, [], {"orders_90d": n})  # no reference: no rank
    assert zh == f"近90天 {n:.0f} 单中 {k} 单申请退款 ({pct})"
    assert en == f"Refunds asked on {k} of {n:.0f} orders in the last 90 days ({pct})"


@pytest.mark.parametrize("row", [{}, {"orders_90d": math.nan}, {"orders_30d": 19.0}])
def test_refund_rate_without_its_count_falls_back_to_the_generic_sentence(
    row: dict[str, float],
) -> None:
    f = CATALOG["refund_rate_count_90d"]
    en, zh = sentence(f, 12 / 19, RATE_REF, row)
    assert en == ("Share of orders placed in the last 90 days with an after-sales request: "
                  "63%, more than 98% of buyers")
    assert zh == "近90天订单中申请售后的比例: 63%, 高于 98% 的买家"


@pytest.mark.parametrize(
    ("name", "value", "ref", "en", "zh"),
    [
        # 7 on a uniform 0..30: 23.3% below, 76.7% above
        ("refunds_90d", 7.0, np.linspace(0.0, 30.0, 11).tolist(),
         "After-sales requests made in the last 90 days: 7, less than 76% of buyers",
         "近90天售后申请次数: 7, 低于 76% 的买家"),
        # 25 on a uniform 0..30: 83.3% below
        ("refunds_30d", 25.0, np.linspace(0.0, 30.0, 11).tolist(),
         "After-sales requests made in the last 30 days: 25, more than 83% of buyers",
         "近30天售后申请次数: 25, 高于 83% 的买家"),
        ("spend_90d", 1280.0, np.linspace(0.0, 1536.0, 11).tolist(),
         "Total order value in the last 90 days: ¥1,280, more than 83% of buyers",
         "近90天下单总金额: 1,280元, 高于 83% 的买家"),
        # no reference: the figure alone
        ("refunds_90d", 7.0, [],
         "After-sales requests made in the last 90 days: 7",
         "近90天售后申请次数: 7"),
    ],
)
def test_generic_sentence(name: str, value: float, ref: Sequence[float], en: str,
                          zh: str) -> None:
    f = CATALOG[name]
    assert not f.reason_en  # the generic template, built from the description
    assert sentence(f, value, ref, {"orders_90d": 19.0}) == (en, zh)


def test_sentence_rank_is_a_whole_percent_rounded_down() -> None:
    # 0.999 of a uniform 0..1: 99.9% below, written "more than 99%".
    f = CATALOG["refund_rate_amount_90d"]
    en, zh = sentence(f, 0.999, np.linspace(0.0, 1.0, 11).tolist(), {})
    assert en.endswith(", more than 99% of buyers") and zh.endswith(", 高于 99% 的买家")


@pytest.mark.parametrize(
    ("name", "value", "quantiles", "en_rank", "zh_rank"),
    [
        # 0 for 90% of buyers, in the 201-point reference the train stage saves: 10% above
        ("refund_rate_amount_90d", 0.0,
         [0.0] * 181 + np.linspace(0.01, 0.5, 20).tolist(),
         "less than 10% of buyers", "低于 10% 的买家"),
        ("refund_rate_amount_90d", 0.0, ZERO_90, "less than 10% of buyers", "低于 10% 的买家"),
        # 7 on a uniform 0..20: 35% below, 65% above
        ("refunds_90d", 7.0, np.linspace(0.0, 20.0, 11).tolist(), "less than 65% of buyers",
         "低于 65% 的买家"),
    ],
)
def test_rank_percent_is_not_lost_to_float_rounding(name: str, value: float,
                                                    quantiles: Sequence[float], en_rank: str,
                                                    zh_rank: str) -> None:
    """Exact shares (10%, 65%) must not be written one percent lower (9%, 64%)."""
    en, zh = sentence(CATALOG[name], value, quantiles, {})
    assert en.endswith(en_rank), en
    assert zh.endswith(zh_rank), zh


def test_sentence_of_a_missing_value_does_not_crash() -> None:
    """No orders in the window: the rate is NaN while its count (0) is known."""
    f = CATALOG["refund_rate_count_90d"]
    en, zh = sentence(f, math.nan, RATE_REF, {"orders_90d": 0.0})
    assert "-" in en and "-" in zh
    assert "nan" not in en.lower() and "nan" not in zh.lower()


def test_generic_sentence_of_a_missing_value() -> None:
    ref = np.linspace(0.0, 30.0, 11).tolist()
    en, zh = sentence(CATALOG["refunds_90d"], math.nan, ref, {})
    assert en == "After-sales requests made in the last 90 days: -"
    assert zh == "近90天售后申请次数: -"


def test_every_templated_feature_formats_in_both_languages() -> None:
    templated = [f for f in CATALOG.values() if f.reason_en]
    assert templated
    for f in templated:
        assert f.reason_zh and f.count_of in CATALOG
        row = {f.count_of: 10.0} if f.count_of else {}
        # 0.3 of a uniform 0..1: 30% below, 70% above
        en, zh = sentence(f, 0.3, np.linspace(0.0, 1.0, 11).tolist(), row)
        for text in (en, zh):
            assert "{" not in text and "}" not in text
            assert "(30%)" in text and f"{f.window_days}" in text
        assert "3 of 10" in en and "10 单中 3 单" in zh
        assert en.endswith("less than 70% of buyers") and zh.endswith("低于 70% 的买家")


# --- top_reasons ------------------------------------------------------------------------

NAMES = ["orders_90d", "refunds_90d", "refund_rate_count_90d", "spend_90d",
         "refund_rate_amount_90d"]
REFERENCE = {"refund_rate_count_90d": RATE_REF,
             "refunds_90d": np.linspace(0.0, 30.0, 11).tolist()}


def _values(*rows: list[float]) -> pd.DataFrame:
    return pd.DataFrame([list(r) for r in rows], columns=NAMES, dtype="float64")


def test_top_reasons_picks_the_largest_positive_contributions() -> None:
    values = _values(
        [19.0, 7.0, 12 / 19, 1280.0, math.nan],  # the largest contribution has no value
        [19.0, 7.0, 12 / 19, 1280.0, 0.5],
        [19.0, 7.0, 12 / 19, 1280.0, 0.5],
    )
    contrib = np.array([
        [0.1, 0.5, 0.9, 0.05, 2.0],
        [0.0, -0.1, 0.3, 0.0, 0.0],  # one positive; zeros and negatives are no reason
        [-0.1, -0.5, -0.9, -0.05, -2.0],
    ])
    got = top_reasons(contrib, values, CATALOG, REFERENCE)
    assert [[r.feature for r in row] for row in got] == [
        ["refund_rate_count_90d", "refunds_90d", "orders_90d"],
        ["refund_rate_count_90d"],
        [],
    ]
    first = got[0][0]
    assert first == Reason(
        feature="refund_rate_count_90d",
        contribution=0.9,
        value=12 / 19,
        en="Refunds asked on 12 of 19 orders in the last 90 days (63%), more than 98% of buyers",
        zh="近90天 19 单中 12 单申请退款 (63%), 高于 98% 的买家",
    )
    second = got[0][1]
    assert second.contribution == 0.5 and second.value == 7.0
    assert second.zh == "近90天售后申请次数: 7, 低于 76% 的买家"
    # No reference for orders_90d: the figure without a rank.
    assert got[0][2].en == "Orders placed in the last 90 days: 19"
    assert all(isinstance(r.contribution, float) for row in got for r in row)


@pytest.mark.parametrize(("k", "expected"), [
    (0, []),
    (1, ["refund_rate_count_90d"]),
    (2, ["refund_rate_count_90d", "refunds_90d"]),
    (TOP_REASONS, ["refund_rate_count_90d", "refunds_90d", "orders_90d"]),
    (5, ["refund_rate_count_90d", "refunds_90d", "orders_90d", "spend_90d"]),  # 4 qualify
])
def test_top_reasons_at_most_k(k: int, expected: list[str]) -> None:
    values = _values([19.0, 7.0, 12 / 19, 1280.0, math.nan])
    contrib = np.array([[0.1, 0.5, 0.9, 0.05, 2.0]])
    got = top_reasons(contrib, values, CATALOG, REFERENCE, k=k)
    assert [r.feature for r in got[0]] == expected


def test_default_is_three_reasons() -> None:
    assert TOP_REASONS == 3
    values = _values([1.0, 2.0, 0.5, 3.0, 0.2])
    got = top_reasons(np.full((1, 5), 0.4), values, CATALOG, REFERENCE)
    assert len(got[0]) == 3


def test_ties_keep_the_column_order() -> None:
    values = _values([1.0, 2.0, 0.5, 3.0, 0.2])
    got = top_reasons(np.array([[0.2, 0.7, 0.2, 0.7, 0.2]]), values, CATALOG, REFERENCE)
    assert [r.feature for r in got[0]] == ["refunds_90d", "spend_90d", "orders_90d"]


def test_missing_values_are_skipped_even_when_every_large_one_is_missing() -> None:
    values = _values([math.nan, math.nan, math.nan, 3.0, math.nan])
    contrib = np.array([[5.0, 4.0, 3.0, 0.01, 2.0]])
    got = top_reasons(contrib, values, CATALOG, REFERENCE)
    assert [(r.feature, r.value) for r in got[0]] == [("spend_90d", 3.0)]


def test_infinite_values_are_skipped() -> None:
    values = _values([math.inf, 2.0, 0.5, 3.0, 0.2])
    contrib = np.array([[5.0, 0.0, 0.0, 0.0, 0.0]])
    assert top_reasons(contrib, values, CATALOG, REFERENCE) == [[]]


def test_top_reasons_of_no_rows() -> None:
    assert top_reasons(np.zeros((0, 5)), _values(), CATALOG, REFERENCE) == []


def test_top_reasons_respects_the_column_order_of_values() -> None:
    """Contributions are matched to features by position in ``values``."""
    names = ["spend_90d", "orders_90d"]
    values = pd.DataFrame([[1280.0, 19.0]], columns=names)
    got = top_reasons(np.array([[0.1, 0.2]]), values, CATALOG, {})
    assert [(r.feature, r.value, r.contribution) for r in got[0]] == [
        ("orders_90d", 19.0, 0.2), ("spend_90d", 1280.0, 0.1)]


def test_join() -> None:
    values = _values([19.0, 7.0, 12 / 19, 1280.0, 0.2])
    reasons = top_reasons(np.array([[0.0, 0.5, 0.9, 0.0, 0.0]]), values, CATALOG,
                          REFERENCE)[0]
    assert SEPARATOR == " | "
    assert join(reasons, "zh") == (
        "近90天 19 单中 12 单申请退款 (63%), 高于 98% 的买家 | "
        "近90天售后申请次数: 7, 低于 76% 的买家"
    )
    assert join(reasons, "en").split(SEPARATOR) == [r.en for r in reasons]
    assert join([], "zh") == "" and join([], "en") == ""


# --- contributions on a real booster ----------------------------------------------------


@pytest.fixture(scope="module")
def tiny_booster() -> tuple[lgb.Booster, np.ndarray]:
    rng = np.random.default_rng(5)
    n = 400
    signal = rng.normal(size=n)
    noise = rng.normal(size=n)
    constant = np.full(n, 3.0)
    with_nan = np.where(rng.random(n) < 0.3, np.nan, rng.normal(size=n))
    x = np.column_stack([signal, noise, constant, with_nan])
    y = (signal + 0.3 * rng.normal(size=n) + np.nan_to_num(with_nan) * 0.5 > 0).astype(int)
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 1,
              "deterministic": True, "min_data_in_leaf": 10, "num_leaves": 7}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=15)
    return booster, x


def test_contributions_add_up_to_the_raw_score(
    tiny_booster: tuple[lgb.Booster, np.ndarray],
) -> None:
    booster, x = tiny_booster
    rows = x[:50]
    c = contributions(booster, rows)
    assert c.shape == (50, 4)
    raw = np.asarray(booster.predict(rows, raw_score=True))
    bias = raw - c.sum(axis=1)
    # The dropped column is the expected value: one constant for every row.
    np.testing.assert_allclose(bias, bias[0], atol=1e-9)
    full = np.asarray(booster.predict(rows, pred_contrib=True))
    np.testing.assert_allclose(bias, full[:, -1], atol=1e-9)
    np.testing.assert_allclose(c.sum(axis=1) + full[:, -1], raw, atol=1e-9)


def test_contributions_of_an_unused_feature_are_zero(
    tiny_booster: tuple[lgb.Booster, np.ndarray],
) -> None:
    booster, x = tiny_booster
    c = contributions(booster, x)
    assert (c[:, 2] == 0).all()  # a constant column is never split on
    # The signal matters most, and pushes the risk up where it is high.
    assert np.abs(c[:, 0]).mean() > np.abs(c[:, 1]).mean()
    high = x[:, 0] > 1.0
    assert (c[high, 0] > 0).all()


def test_contributions_accept_missing_values_and_no_rows(
    tiny_booster: tuple[lgb.Booster, np.ndarray],
) -> None:
    booster, x = tiny_booster
    rows = x[np.isnan(x[:, 3])][:10]
    assert len(rows) == 10
    c = contributions(booster, rows, num_threads=2)
    bias = booster.predict(x[:1], raw_score=True)[0] - contributions(booster, x[:1]).sum()
    np.testing.assert_allclose(c.sum(axis=1) + bias, booster.predict(rows, raw_score=True),
                               atol=1e-9)
    empty = contributions(booster, x[:0])
    assert empty.shape == (0, 4)


def test_contributions_feed_top_reasons(tiny_booster: tuple[lgb.Booster, np.ndarray]) -> None:
    booster, x = tiny_booster
    catalog = {n: CATALOG[m] for n, m in zip(["a", "b", "c", "d"], NAMES, strict=False)}
    catalog = {n: Feature(n, f.group, f.en, f.zh, f.unit, f.window_days, f.direction,
                          f.nullable, f.compute) for n, f in catalog.items()}
    values = pd.DataFrame(x[:20], columns=["a", "b", "c", "d"])
    c = contributions(booster, x[:20])
    got = top_reasons(c, values, catalog, {})
    for i, row in enumerate(got):
        finite_pos = [j for j in range(4) if np.isfinite(x[i, j]) and c[i, j] > 0]
        expected = sorted(finite_pos, key=lambda j: -c[i, j])[:3]
        assert [r.feature for r in row] == [["a", "b", "c", "d"][j] for j in expected]
        assert all(r.contribution > 0 for r in row)
