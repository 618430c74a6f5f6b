"""Case files as a self-contained HTML page (Chinese or English) or as JSON.

The HTML holds its CSS inline and loads nothing (no scripts, fonts or images), so it
can be mailed, archived and printed (``@media print`` keeps tables whole and starts each
buyer on a new page). Every text from the data (review texts, ids) is HTML-escaped. The
JSON is for case-management systems: English keys, both languages' sentences, times in
ISO 8601 with their offset and numbers at full precision.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from refundguard.model.policy import TIER_TEXT
from refundguard.serving.case import CASE_FORMAT, Case, CaseReason

# The translations shared with the score tables live in serving.labels; named here too,
# for the callers of this module.
from refundguard.serving.labels import LANGUAGES as LANGUAGES
from refundguard.serving.labels import TIER_LABELS as TIER_LABELS
from refundguard.serving.labels import Language as Language
from refundguard.serving.labels import check_language as check_language

_REFUND_TYPES_ZH = {
    "refund_only": "仅退款",
    "return_refund": "退货退款",
    "exchange": "换货",
    "compensation": "补偿",
}


_REFUND_REASONS_ZH = {
    "not_received": "未收到货",
    "damaged": "商品破损",
    "quality": "质量问题",
    "not_as_described": "与描述不符",
    "wrong_item": "发错货",
    "missing_parts": "少件/漏发",
    "size_fit": "尺码不合适",
    "changed_mind": "不想要了",
    "logistics": "物流问题",
    "other": "其他",
}


_STATUSES = {
    "zh": {"pending": "处理中", "approved": "已同意", "rejected": "已拒绝", "cancelled": "已撤销"},
    "en": {"pending": "pending", "approved": "approved", "rejected": "rejected",
           "cancelled": "cancelled"},
}  # fmt: skip


_KINDS = {
    "zh": {"device": "设备", "address": "收货地址", "payment": "支付方式"},
    "en": {"device": "device", "address": "address", "payment": "payment"},
}


# Headers and phrases, by language.
_T: Mapping[Language, Mapping[str, str]] = {
    "zh": {
        "title": "售后风险案件",
        "buyer": "买家",
        "as_of": "截至",
        "as_of_note": "仅显示在此时间之前已知的信息(订单、售后、评价、标签)。",
        "zone": "时区",
        "model": "模型版本",
        "tier": "处理级别",
        "score": "风险分",
        "probability": "恶意概率",
        "reasons": "主要原因",
        "no_reasons": "模型未给出推高风险的原因。",
        "reason": "原因",
        "figure": "买家数值",
        "standing": "人群位置",
        "contribution": "贡献(对数几率)",
        "evidence": "依据",
        "rows": "条",
        "orders": "订单",
        "refunds": "售后申请",
        "reviews": "评价",
        "linked": "关联账号",
        "none": "无",
        "order_id": "订单号",
        "created_at": "下单时间",
        "amount": "金额(元)",
        "category": "类目",
        "seller": "店铺",
        "delivered_at": "签收时间",
        "ids": "设备 / 地址 / 支付",
        "refund_id": "售后单号",
        "requested_at": "申请时间",
        "type": "类型",
        "refund_reason": "原因",
        "asked": "申请金额(元)",
        "order_amount": "订单金额(元)",
        "after_delivery": "签收后(小时)",
        "before_delivery": "签收前",
        "status": "当时状态",
        "resolved_at": "处理时间",
        "instant": "极速退款",
        "yes": "是",
        "review_id": "评价号",
        "posted_at": "评价时间",
        "rating": "星级",
        "sentiment": "正面概率",
        "extortion": "勒索检测",
        "text": "内容",
        "account": "账号",
        "shared": "共用",
        "shared_ids": "共用标识",
        "their_orders": "订单数",
        "label": "当时标签",
        "labeled_at": "认定时间",
        "source": "来源",
        "abuser": "恶意",
        "legit": "正常",
        "unlabeled": "未认定",
        "crowded": "未计入的公共标识(共用账号过多,如快递柜、公司地址)",
        "accounts": "个账号",
        "cited": "被原因引用",
        "footer": "由 refundguard 生成。原因来自模型的 SHAP 贡献;人群位置对比训练时的参考买家。",
        "more_than": "高于 {pct}% 的买家",
        "less_than": "低于 {pct}% 的买家",
        "window": "近{w}天",
        "all_history": "全部历史",
    },
    "en": {
        "title": "After-sales risk case",
        "buyer": "Buyer",
        "as_of": "As of",
        "as_of_note": "Only what was known before this time is shown (orders, requests, "
        "reviews, labels).",
        "zone": "time zone",
        "model": "Model version",
        "tier": "Tier",
        "score": "Risk score",
        "probability": "Probability of abuse",
        "reasons": "Top reasons",
        "no_reasons": "The model found nothing pushing the risk up.",
        "reason": "Reason",
        "figure": "Buyer's figure",
        "standing": "Among buyers",
        "contribution": "Contribution (log-odds)",
        "evidence": "Evidence",
        "rows": "rows",
        "orders": "Orders",
        "refunds": "After-sales requests",
        "reviews": "Reviews",
        "linked": "Linked accounts",
        "none": "None",
        "order_id": "Order",
        "created_at": "Placed",
        "amount": "Amount (CNY)",
        "category": "Category",
        "seller": "Seller",
        "delivered_at": "Delivered",
        "ids": "Device / address / payment",
        "refund_id": "Request",
        "requested_at": "Requested",
        "type": "Type",
        "refund_reason": "Reason",
        "asked": "Asked (CNY)",
        "order_amount": "Order (CNY)",
        "after_delivery": "Hours after delivery",
        "before_delivery": "before delivery",
        "status": "Status then",
        "resolved_at": "Resolved",
        "instant": "Instant",
        "yes": "yes",
        "review_id": "Review",
        "posted_at": "Posted",
        "rating": "Stars",
        "sentiment": "Positive",
        "extortion": "Extortion",
        "text": "Text",
        "account": "Account",
        "shared": "Shares",
        "shared_ids": "Shared ids",
        "their_orders": "Orders",
        "label": "Label then",
        "labeled_at": "Decided",
        "source": "Source",
        "abuser": "abuser",
        "legit": "legitimate",
        "unlabeled": "none",
        "crowded": "Ids not counted (shared by too many accounts: parcel lockers, offices)",
        "accounts": "accounts",
        "cited": "cited by a reason",
        "footer": "Made by refundguard. Reasons are the model's SHAP contributions; standing "
        "compares with the reference buyers of training.",
        "more_than": "more than {pct}% of buyers",
        "less_than": "less than {pct}% of buyers",
        "window": "last {w} days",
        "all_history": "all history",
    },
}


_UNITS: Mapping[Language, Mapping[str, str]] = {
    "zh": {"cny": "{:,.0f} 元", "hours": "{:.1f} 小时", "days": "{:.0f} 天", "ratio": "{:.1f} 倍",
           "stars": "{:.1f} 星", "share": "{:.0%}", "score": "{:.2f}"},
    "en": {"cny": "¥{:,.0f}", "hours": "{:.1f} h", "days": "{:.0f} days", "ratio": "{:.1f}x",
           "stars": "{:.1f}★", "share": "{:.0%}", "score": "{:.2f}"},
}  # fmt: skip


_CSS = """
:root { --ink: #1f2328; --muted: #656d76; --line: #d0d7de; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC",
  "Segoe UI", Helvetica, Arial, sans-serif; color: var(--ink); margin: 24px; font-size: 14px;
  line-height: 1.5; }
.case { max-width: 1200px; margin: 0 auto 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 24px 0 8px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
.meta { color: var(--muted); margin: 0 0 12px; }
.summary { display: flex; gap: 12px; flex-wrap: wrap; margin: 12px 0; }
.box { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 150px; }
.box .k { color: var(--muted); font-size: 12px; }
.box .v { font-size: 20px; font-weight: 600; }
.tier-trusted { background: #dafbe1; } .tier-standard { background: var(--soft); }
.tier-review { background: #fff8c5; } .tier-restrict { background: #ffebe9; }
.note { background: var(--soft); border-left: 4px solid var(--line); padding: 6px 10px; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 6px; text-align: left;
  vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.cited td:first-child { border-left: 4px solid #bf8700; }
mark { background: #ffd8b5; padding: 0 1px; }
.tag { display: inline-block; border: 1px solid var(--line); border-radius: 10px;
  padding: 0 6px; margin: 0 2px 0 0; font-size: 12px; white-space: nowrap; }
.bad { color: #cf222e; font-weight: 600; }
.muted { color: var(--muted); }
footer { color: var(--muted); font-size: 12px; margin-top: 24px; }
@media print {
  body { margin: 0; font-size: 11px; }
  .case { max-width: none; page-break-after: always; break-after: page; }
  .case:last-of-type { page-break-after: auto; break-after: auto; }
  h2 { page-break-after: avoid; break-after: avoid; }
  table { font-size: 10px; }
  thead { display: table-header-group; }
  tr { page-break-inside: avoid; break-inside: avoid; }
  .box, .tier-trusted, .tier-standard, .tier-review, .tier-restrict, mark, th {
    -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def format_figure(value: float, unit: str, lang: Language = "zh") -> str:
    """A feature value with its unit, as a person reads it (天/小时/元 in Chinese).

    Args:
        value: The value.
        unit: The catalog unit.
        lang: "zh" or "en".

    Returns:
        Text such as "1,280 元", "3.5 小时", "63%"; "-" when missing.
    """
    if not math.isfinite(value):
        return "-"
    template = _UNITS[lang].get(unit)
    if template is not None:
        return template.format(value)
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def standing_text(reason: CaseReason, lang: Language = "zh") -> str:
    """Where the buyer's figure stands among the reference buyers.

    Args:
        reason: The reason.
        lang: "zh" or "en".

    Returns:
        "高于 98% 的买家" / "more than 98% of buyers", or "" without a reference.
    """
    below, above = reason.share_below, reason.share_above
    if below is None or above is None:
        return ""
    key, share = ("more_than", below) if below >= above else ("less_than", above)
    # As the reason sentences: the epsilon undoes float error, the cap keeps 100% out.
    pct = min(math.floor(share * 100 + 1e-9), 99)
    return _T[lang][key].format(pct=pct)


def case_to_dict(case: Case) -> dict[str, Any]:
    """A case as plain JSON-ready data (English keys, ISO times, full precision).

    Args:
        case: The case.

    Returns:
        Nested dicts and lists; times are ISO 8601 strings with their UTC offset and
        missing values are None.
    """
    out = _plain(dataclasses.asdict(case))
    assert isinstance(out, dict)
    return {"format": CASE_FORMAT, **out}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def render_json(cases: Case | Sequence[Case]) -> str:
    """Cases as JSON: one object for one case, an array for a sequence.

    Args:
        cases: A case or several.

    Returns:
        The JSON text (UTF-8 characters kept, indented).
    """
    data: Any = case_to_dict(cases) if isinstance(cases, Case) else [case_to_dict(c) for c in cases]
    return json.dumps(data, ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def render_html(cases: Case | Sequence[Case], lang: Language = "zh") -> str:
    """Cases as one self-contained HTML page (each case starts a printed page).

    Args:
        cases: A case or several.
        lang: "zh" (default) or "en".

    Returns:
        The HTML document.
    """
    lang = check_language(lang)
    many = [cases] if isinstance(cases, Case) else list(cases)
    t = _T[lang]
    title = t["title"] + (f" · {many[0].buyer_id}" if len(many) == 1 else "")
    body = "\n".join(_case_html(c, lang) for c in many)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{"zh-CN" if lang == "zh" else "en"}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n"
        "</body>\n</html>\n"
    )


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _time(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M")


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _table(headers: Sequence[str], rows: Sequence[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cells(values: Sequence[str], numeric: Sequence[int] = ()) -> str:
    """Table cells of already escaped HTML; positions in ``numeric`` align right."""
    return "".join(
        f'<td class="n">{v}</td>' if i in numeric else f"<td>{v}</td>" for i, v in enumerate(values)
    )


def _cited_by(case: Case) -> dict[tuple[str, str], list[int]]:
    """Reason ranks citing each (evidence table, row id)."""
    out: dict[tuple[str, str], list[int]] = {}
    for r in case.reasons:
        for row_id in r.evidence_ids:
            out.setdefault((r.evidence, row_id), []).append(r.rank)
    return out


def _row(cells: str, ranks: Sequence[int]) -> str:
    marks = " ".join(f"#{k}" for k in ranks)
    cls = ' class="cited"' if ranks else ""
    return f"<tr{cls}>{cells}<td>{_e(marks)}</td></tr>"


def _highlighted(text: str, spans: Sequence[tuple[int, int]]) -> str:
    out, pos = [], 0
    for start, end in spans:
        out.append(_e(text[pos:start]) + f"<mark>{_e(text[start:end])}</mark>")
        pos = end
    return "".join(out) + _e(text[pos:])


def _tier_action(tier: str, lang: Language) -> str:
    en, zh = TIER_TEXT.get(tier, ("", ""))
    return zh if lang == "zh" else en


def _case_html(case: Case, lang: Language) -> str:
    t = _T[lang]
    cited = _cited_by(case)
    parts = [
        f'<section class="case" id="case-{_e(case.buyer_id)}">',
        f"<h1>{_e(t['title'])} · {_e(t['buyer'])} {_e(case.buyer_id)}</h1>",
        f'<p class="meta">{_e(t["as_of"])} {_e(_time(case.as_of))} '
        f"({_e(t['zone'])} {_e(case.timezone)}) · {_e(t['model'])} "
        f"{_e(case.model_version)}<br>{_e(t['as_of_note'])}</p>",
        '<div class="summary">',
        f'<div class="box tier-{_e(case.tier)}"><div class="k">{_e(t["tier"])}</div>'
        f'<div class="v">{_e(TIER_LABELS[lang].get(case.tier, case.tier))}</div>'
        f'<div class="k">{_e(_tier_action(case.tier, lang))}</div></div>',
        f'<div class="box"><div class="k">{_e(t["score"])}</div>'
        f'<div class="v">{case.risk_score} / 1000</div></div>',
        f'<div class="box"><div class="k">{_e(t["probability"])}</div>'
        f'<div class="v">{case.probability:.1%}</div></div>',
        "</div>",
    ]
    note = case.note_zh if lang == "zh" else case.note_en
    if note:
        parts.append(f'<p class="note">{_e(note)}</p>')
    parts.append(f"<h2>{_e(t['reasons'])}</h2>")
    parts.append(_reasons_html(case, lang) if case.reasons else f"<p>{_e(t['no_reasons'])}</p>")
    parts.append(_orders_html(case, lang, cited))
    parts.append(_refunds_html(case, lang, cited))
    parts.append(_reviews_html(case, lang, cited))
    parts.append(_linked_html(case, lang, cited))
    parts.append(f"<footer>{_e(t['footer'])}</footer></section>")
    return "\n".join(parts)


def _reasons_html(case: Case, lang: Language) -> str:
    t = _T[lang]
    rows = []
    for r in case.reasons:
        window = t["window"].format(w=r.window_days) if r.window_days else t["all_history"]
        meaning = r.meaning_zh if lang == "zh" else r.meaning_en
        text = r.text_zh if lang == "zh" else r.text_en
        n = len(r.evidence_ids)
        evidence = f'<a href="#{_e(r.evidence)}-{_e(case.buyer_id)}">{_e(t[r.evidence])}</a>'
        cells = _cells(
            [
                f"#{r.rank}",
                f'{_e(text)}<br><span class="muted">{_e(r.feature)} · {_e(window)} · '
                f"{_e(meaning)}</span>",
                _e(format_figure(r.value, r.unit, lang)),
                _e(standing_text(r, lang)),
                f"{r.contribution:+.3f}",
                f"{evidence} ({n} {_e(t['rows'])})",
            ],
            numeric=(2, 4),
        )
        rows.append(f"<tr>{cells}</tr>")
    headers = ["#", t["reason"], t["figure"], t["standing"], t["contribution"], t["evidence"]]
    return _table(headers, rows)


def _section(case: Case, lang: Language, table: str, count: int) -> str:
    t = _T[lang]
    return f'<h2 id="{_e(table)}-{_e(case.buyer_id)}">{_e(t[table])} ({count})</h2>'


def _none(lang: Language) -> str:
    return f'<p class="muted">{_e(_T[lang]["none"])}</p>'


def _orders_html(case: Case, lang: Language, cited: Mapping[tuple[str, str], list[int]]) -> str:
    t = _T[lang]
    head = _section(case, lang, "orders", len(case.orders))
    if not case.orders:
        return head + _none(lang)
    rows = []
    for o in case.orders:
        ids = " / ".join(_e(x) if x else "-" for x in (o.device_id, o.address_id, o.payment_id))
        cells = _cells(
            [
                _e(o.order_id),
                _e(_time(o.created_at)),
                _money(o.amount),
                _e(o.category or "-"),
                _e(o.seller_id),
                _e(_time(o.delivered_at)),
                ids,
            ],
            numeric=(2,),
        )
        rows.append(_row(cells, cited.get(("orders", o.order_id), [])))
    headers = [
        t["order_id"], t["created_at"], t["amount"], t["category"], t["seller"],
        t["delivered_at"], t["ids"], t["cited"],
    ]  # fmt: skip
    return head + _table(headers, rows)


def _refunds_html(case: Case, lang: Language, cited: Mapping[tuple[str, str], list[int]]) -> str:
    t = _T[lang]
    head = _section(case, lang, "refunds", len(case.refunds))
    if not case.refunds:
        return head + _none(lang)
    rows = []
    for r in case.refunds:
        kind = _REFUND_TYPES_ZH.get(r.type, r.type) if lang == "zh" else r.type
        reason = _REFUND_REASONS_ZH.get(r.reason, r.reason) if lang == "zh" else r.reason
        reason_html = _e(reason)
        if r.reason_text:
            reason_html += f'<br><span class="muted">{_e(r.reason_text)}</span>'
        hours = (
            f"{r.hours_after_delivery:.1f}"
            if r.hours_after_delivery is not None
            else _e(t["before_delivery"])
        )
        status = _STATUSES[lang].get(r.status, r.status)
        cells = _cells(
            [
                _e(r.refund_id),
                _e(r.order_id),
                _e(_time(r.requested_at)),
                _e(kind),
                reason_html,
                _money(r.amount),
                _money(r.order_amount),
                hours,
                _e(status),
                _e(_time(r.resolved_at)),
                _e(t["yes"]) if r.instant else "",
            ],
            numeric=(5, 6, 7),
        )
        rows.append(_row(cells, cited.get(("refunds", r.refund_id), [])))
    headers = [
        t["refund_id"], t["order_id"], t["requested_at"], t["type"], t["refund_reason"],
        t["asked"], t["order_amount"], t["after_delivery"], t["status"], t["resolved_at"],
        t["instant"], t["cited"],
    ]  # fmt: skip
    return head + _table(headers, rows)


def _reviews_html(case: Case, lang: Language, cited: Mapping[tuple[str, str], list[int]]) -> str:
    t = _T[lang]
    head = _section(case, lang, "reviews", len(case.reviews))
    if not case.reviews:
        return head + _none(lang)
    rows = []
    for v in case.reviews:
        extortion = ""
        if v.extortion_score > 0 or v.extortion_language:
            cls = "bad" if v.extortion_language or v.extortion_score >= 0.5 else ""
            extortion = f'<span class="{cls}">{v.extortion_score:.2f}</span>'
            extortion += "".join(f' <span class="tag">{_e(p)}</span>' for p in v.extortion_phrases)
        cells = _cells(
            [
                _e(v.review_id),
                _e(v.order_id),
                _e(_time(v.created_at)),
                "-" if v.rating is None else f"{v.rating:.0f}",
                "-" if v.sentiment is None else f"{v.sentiment:.2f}",
                extortion,
                _highlighted(v.text, v.highlights),
            ],
            numeric=(3, 4),
        )
        rows.append(_row(cells, cited.get(("reviews", v.review_id), [])))
    headers = [
        t["review_id"], t["order_id"], t["posted_at"], t["rating"], t["sentiment"],
        t["extortion"], t["text"], t["cited"],
    ]  # fmt: skip
    return head + _table(headers, rows)


def _linked_html(case: Case, lang: Language, cited: Mapping[tuple[str, str], list[int]]) -> str:
    t = _T[lang]
    head = _section(case, lang, "linked", len(case.linked))
    parts = [head]
    if not case.linked:
        parts.append(_none(lang))
    else:
        rows = []
        for link in case.linked:
            kinds = "".join(f'<span class="tag">{_e(_KINDS[lang].get(k, k))}</span>'
                            for k in link.kinds)  # fmt: skip
            if link.label is None:
                label = _e(t["unlabeled"])
            elif link.label == 1:
                label = f'<span class="bad">{_e(t["abuser"])}</span>'
            else:
                label = _e(t["legit"])
            cells = _cells(
                [
                    _e(link.buyer_id),
                    kinds,
                    "<br>".join(_e(s) for s in link.shared_ids),
                    str(link.orders),
                    label,
                    _e(_time(link.labeled_at)) if link.labeled_at else "",
                    _e(link.label_source or ""),
                ],
                numeric=(3,),
            )
            rows.append(_row(cells, cited.get(("linked", link.buyer_id), [])))
        headers = [
            t["account"], t["shared"], t["shared_ids"], t["their_orders"], t["label"],
            t["labeled_at"], t["source"], t["cited"],
        ]  # fmt: skip
        parts.append(_table(headers, rows))
    if case.crowded_ids:
        items = ", ".join(
            f"{_e(_KINDS[lang].get(c.kind, c.kind))} {_e(c.id)} ({c.accounts} {_e(t['accounts'])})"
            for c in case.crowded_ids
        )
        parts.append(f'<p class="muted">{_e(t["crowded"])}: {items}</p>')
    return "".join(parts)
