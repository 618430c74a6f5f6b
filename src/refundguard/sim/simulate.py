"""Marketplace simulator: buyers, orders, after-sales requests, reviews and labels.

The simulated world is a Chinese e-commerce platform seen through its exports: naive
local (Asia/Shanghai) timestamps, opaque string ids, and labels only as the platform
has them (late, partial and sometimes wrong). Abusers hide among honest buyers who look
like them on simple rules: size bracketers return most of what they buy, logistics
victims file many genuine "not received" claims, picky reviewers leave many one-star
reviews, households, offices and parcel lockers share addresses like rings do.

The parameters span a family of worlds, as real exports differ: an export that starts
after years of history, labels from days to months late and covering a third to two
thirds of the abusers, sleepers who shop honestly for months before they abuse, accounts
closed when caught, offices, a Spring Festival trough and a growing buyer base.
:func:`export_as_of` shows a world as an export taken on a given day would.

Everything is generated segment by segment as numpy arrays (no per-order Python loops),
then turned into pyarrow-backed ``str`` columns, so a million buyers fit in minutes.
The core is pure: no file I/O, no logging, no global state. The same parameters and
seed give byte-identical frames.

Internally time is a float number of days since ``params.start``; it becomes whole
seconds (``datetime64[s]``) only at the end, where the ordering constraints of the data
contract are enforced on the integer values.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import opencc
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from refundguard.config import SimulateParams
from refundguard.contract.tables import TABLE_NAMES
from refundguard.contract.vocabulary import (
    LABEL_SOURCES,
    REFUND_REASONS,
    REFUND_STATUSES,
    REFUND_TYPES,
    SEGMENTS,
    SYSTEM_DEFAULT_TEXT,
    SYSTEM_EMPTY_TEXT,
)
from refundguard.data.io import write_table
from refundguard.errors import ConfigError
from refundguard.paths import TRUTH_FILE_NAME

log = logging.getLogger(__name__)


__all__ = [
    "CATEGORIES",
    "World",
    "export_as_of",
    "simulate_world",
]


FloatArray = npt.NDArray[np.float64]


IntArray = npt.NDArray[np.int64]


BoolArray = npt.NDArray[np.bool_]


CATEGORIES: tuple[str, ...] = (
    "apparel",
    "shoes",
    "electronics",
    "beauty",
    "food",
    "home",
    "baby",
    "sports",
    "books",
    "digital",
)


# Segment codes (positions in vocabulary.SEGMENTS).
_HONEST, _BRACKET, _VICTIM, _PICKY, _HOUSEHOLD, _ROC, _EXTORT, _WARD, _RING = range(len(SEGMENTS))


# What an order is for; abuse kinds carry their own refund/review behaviour.
_K_NORMAL, _K_ROC, _K_EXTORT, _K_WARD, _K_RING = range(5)


# Refund type, reason and status codes (positions in the vocabulary's tuples).
_RT_ONLY, _RT_RETURN, _RT_EXCHANGE, _RT_COMP = range(len(REFUND_TYPES))


(
    _R_NOT_RECEIVED,
    _R_DAMAGED,
    _R_QUALITY,
    _R_NAD,
    _R_WRONG,
    _R_MISSING,
    _R_SIZE,
    _R_CHANGED,
    _R_LOGISTICS,
    _R_OTHER,
) = range(len(REFUND_REASONS))


_S_PENDING, _S_APPROVED, _S_REJECTED, _S_CANCELLED = range(len(REFUND_STATUSES))


_SRC_PLATFORM, _SRC_MANUAL, _SRC_MERCHANT = range(len(LABEL_SOURCES))


_APPAREL, _SHOES, _ELECTRONICS, _BEAUTY, _FOOD, _HOME, _BABY, _SPORTS, _BOOKS, _DIGITAL = range(10)


# Review text languages.
_ZH, _ZH_HANT, _EN = range(3)


# Review text polarity.
_NEG, _NEU, _POS = range(3)


# Review kinds.
_RV_NORMAL, _RV_THREAT, _RV_DEFAULT, _RV_EMPTY = range(4)


_SECONDS_PER_DAY = 86_400.0


# Share of orders per category across the platform.
_CATEGORY_WEIGHTS = (0.20, 0.08, 0.07, 0.12, 0.16, 0.13, 0.06, 0.06, 0.05, 0.07)


# Lognormal price per category: median CNY and sigma.
_PRICE_MEDIAN = (129.0, 239.0, 699.0, 139.0, 49.0, 89.0, 119.0, 159.0, 45.0, 899.0)


_PRICE_SIGMA = (0.6, 0.5, 0.8, 0.6, 0.6, 0.7, 0.6, 0.7, 0.5, 0.8)


# Honest after-sales propensity by category (apparel comes back far more than books).
_REFUND_CATEGORY_FACTOR = (1.8, 1.6, 1.0, 0.8, 0.5, 1.0, 0.9, 1.1, 0.4, 1.0)


# Relative order volume by local hour: night trough, lunch bump, evening peak.
_HOUR_WEIGHTS = (
    2.0, 1.0, 0.6, 0.4, 0.3, 0.4, 0.8, 1.5, 2.5, 3.5, 4.0, 4.0,
    3.5, 3.5, 3.8, 3.8, 3.5, 3.2, 3.5, 4.5, 5.5, 6.0, 5.5, 3.5,
)  # fmt: skip


# Shopping festivals (month, day): 3.8 女王节, 618, 双11, 双12.
_FESTIVALS = ((3, 8), (6, 18), (11, 11), (12, 12))


_FESTIVAL_SHARE = 0.05


# Spring Festival (春节, first day of the lunar year) by year; other years fall back to
# 5 February. Couriers mostly stop from about 腊月二十三 to 正月初八: days before, after.
_SPRING_FESTIVAL = {
    2015: (2, 19), 2016: (2, 8), 2017: (1, 28), 2018: (2, 16), 2019: (2, 5),
    2020: (1, 25), 2021: (2, 12), 2022: (2, 1), 2023: (1, 22), 2024: (2, 10),
    2025: (1, 29), 2026: (2, 17), 2027: (2, 6), 2028: (1, 26), 2029: (2, 13),
    2030: (2, 3), 2031: (1, 23), 2032: (2, 11), 2033: (1, 31), 2034: (2, 19),
    2035: (2, 8),
}  # fmt: skip


_SPRING_FESTIVAL_BREAK = (7.0, 8.0)


# Order rate (orders per year) is lognormal around this median.
_RATE_MEDIAN = 5.6


_RATE_SIGMA = 0.95


_RING_RATE_MEDIAN = 4.0


# After abuse_start, abusers order more, and this share of those orders is abuse.
# Keyed by segment code.
_ABUSE_BOOST = {_ROC: 1.6, _EXTORT: 1.2, _WARD: 1.4}


_ABUSE_PROB = {_ROC: 0.45, _EXTORT: 0.30, _WARD: 0.40}


_PRE_REGISTERED_SHARE = 0.65


_CHURN_SHARE = 0.15


_HOUSEHOLD_SIZE = (2, 5)


_OFFICE_SIZE = (5, 40)


_RING_SIZE = (3, 15)


_RURAL_CLUSTER_SIZE = (3, 20)


_RURAL_SHARE = 0.5


_LOCKER_SHARE = 0.08


_LOCKER_USERS = 250


_SESSION_SHARE = 0.55


_PRESHIP_CANCEL_SHARE = 0.008


_SELLERS_PER_BUYER = 0.1


# Refund behaviour of honest buyers after delivery: reason mix, then type given reason.
_HONEST_REASON_P = (0.0, 0.08, 0.25, 0.15, 0.05, 0.04, 0.18, 0.20, 0.0, 0.05)


_TYPE_GIVEN_REASON = (
    (1.00, 0.00, 0.00, 0.00),  # not_received
    (0.40, 0.35, 0.05, 0.20),  # damaged
    (0.15, 0.55, 0.15, 0.15),  # quality
    (0.10, 0.70, 0.05, 0.15),  # not_as_described
    (0.05, 0.45, 0.50, 0.00),  # wrong_item
    (0.45, 0.05, 0.10, 0.40),  # missing_parts
    (0.00, 0.70, 0.30, 0.00),  # size_fit
    (0.00, 1.00, 0.00, 0.00),  # changed_mind
    (0.50, 0.00, 0.00, 0.50),  # logistics
    (0.10, 0.00, 0.00, 0.90),  # other (mostly price protection 价保)
)


# Rating distributions (1..5 stars) by experience (bad, mixed, good).
_RATING_P = (
    (0.38, 0.25, 0.22, 0.10, 0.05),
    (0.04, 0.08, 0.25, 0.33, 0.30),
    (0.01, 0.01, 0.04, 0.18, 0.76),
)


_PICKY_RATING_P = (
    (0.70, 0.22, 0.06, 0.02, 0.00),
    (0.35, 0.30, 0.20, 0.10, 0.05),
    (0.22, 0.25, 0.28, 0.17, 0.08),
)


_TEXT_MISMATCH_SHARE = 0.07


_DEFAULT_REVIEW_SHARE = 0.08


_EMPTY_REVIEW_SHARE = 0.03


_REASON_TEXT_MISSING_SHARE = 0.25


_Group = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]


_ZH_GROUPS: dict[str, _Group] = {
    "logistics": (
        ("物流", "快递", "发货", "配送速度", "送货"),
        ("太慢了", "慢得离谱", "等了快半个月", "一直不更新", "走了好久才到", "卡在中转站好几天"),
        ("还行", "一般", "正常速度", "中规中矩", "慢了一点点"),
        ("很快", "超快", "很给力", "第二天就到了", "神速", "比预期快"),
    ),
    "packaging": (
        ("包装", "外包装", "快递盒"),
        ("破了", "压扁了", "很简陋", "被压坏了", "湿透了"),
        ("普通", "还可以", "简单"),
        ("很严实", "完好无损", "很用心", "很精致", "很结实"),
    ),
    "service": (
        ("客服", "卖家", "售后", "商家服务"),
        ("爱答不理", "态度很差", "一直不回消息", "推来推去", "只会复制粘贴"),
        ("回复有点慢", "还行", "态度一般"),
        ("态度很好", "很耐心", "回复很及时", "服务周到", "很热情"),
    ),
    "quality": (
        ("质量", "品质", "做工", "东西"),
        ("很差", "太差了", "粗糙", "有瑕疵", "和图片差别很大", "一言难尽"),
        ("一般", "对得起价格", "中规中矩", "凑合", "马马虎虎"),
        ("很好", "不错", "没得说", "杠杠的", "超出预期", "很精细"),
    ),
    "value": (
        ("性价比", "价格", "这个价位"),
        ("太低了", "不值", "偏贵", "虚高"),
        ("还行", "一般", "正常"),
        ("很高", "很实惠", "超值", "很划算"),
    ),
    "fabric": (
        ("面料", "布料", "衣服料子"),
        ("起球了", "很扎人", "洗一次就掉色", "有异味", "很薄很透"),
        ("一般", "有点薄", "还可以"),
        ("很舒服", "柔软亲肤", "很有质感", "很透气"),
    ),
    "fit": (
        ("尺码", "版型", "大小"),
        ("严重偏小", "完全不对", "太大了", "和尺码表不一样"),
        ("偏大一点", "偏小一点", "还行"),
        ("很合适", "很标准", "刚刚好", "很显瘦"),
    ),
    "color": (
        ("颜色", "色泽"),
        ("色差严重", "和图片完全不一样", "很土"),
        ("有一点色差", "还行"),
        ("很正", "好看", "和图片一样", "很显白"),
    ),
    "comfort": (
        ("鞋子", "脚感", "穿着"),
        ("磨脚", "很硬", "硌脚", "穿一天脚疼"),
        ("一般", "还需要磨合", "有点硬"),
        ("很舒服", "很轻便", "很合脚", "走路不累"),
    ),
    "sole": (
        ("鞋底", "鞋面", "鞋子做工"),
        ("开胶了", "有胶水印", "一穿就有折痕"),
        ("一般", "普通"),
        ("很结实", "很防滑", "很精致"),
    ),
    "sound": (
        ("音质", "声音"),
        ("有杂音", "很闷", "断断续续"),
        ("一般", "够用", "中规中矩"),
        ("很清晰", "很震撼", "低音很足"),
    ),
    "battery": (
        ("续航", "电池"),
        ("掉电很快", "充不进电", "鼓包了"),
        ("一般", "还行"),
        ("很持久", "很耐用", "一天一充够用"),
    ),
    "function": (
        ("功能", "性能", "机器"),
        ("经常死机", "发热严重", "用两天就坏了", "连不上"),
        ("够用", "一般"),
        ("很强大", "很稳定", "很灵敏"),
    ),
    "scent": (
        ("味道", "香味"),
        ("很刺鼻", "像酒精", "和专柜不一样"),
        ("一般", "有点浓"),
        ("很好闻", "淡淡的很舒服", "很高级"),
    ),
    "effect": (
        ("效果", "保湿效果", "上脸效果"),
        ("没有效果", "过敏了", "闷痘", "脸都红了"),
        ("一般", "还在观察", "不太明显"),
        ("很明显", "很好", "很水润"),
    ),
    "texture": (
        ("质地", "肤感"),
        ("很油腻", "搓泥", "结块了"),
        ("一般", "有点黏"),
        ("很清爽", "很好吸收", "不油腻"),
    ),
    "taste": (
        ("味道", "口感"),
        ("很难吃", "怪怪的", "太咸了", "有哈喇味"),
        ("一般", "还行", "偏甜"),
        ("很好吃", "很香", "很正宗", "回味无穷"),
    ),
    "freshness": (
        ("日期", "新鲜度", "保质期"),
        ("快过期了", "不新鲜", "已经过期了"),
        ("还行", "一般"),
        ("很新鲜", "很新", "是最近生产的"),
    ),
    "portion": (
        ("分量", "份量"),
        ("太少了", "缺斤少两", "和描述不符"),
        ("一般", "刚好"),
        ("很足", "很多", "很实在"),
    ),
    "material": (
        ("材质", "用料"),
        ("很薄", "有刺鼻味", "一碰就坏"),
        ("一般", "普通"),
        ("很厚实", "很环保", "很结实"),
    ),
    "install": (
        ("安装", "组装"),
        ("缺零件", "孔位对不上", "说明书看不懂"),
        ("有点麻烦", "还行"),
        ("很简单", "很方便", "一看就会"),
    ),
    "size": (
        ("尺寸", "大小"),
        ("完全不对", "比描述小很多"),
        ("偏小", "偏大"),
        ("刚刚好", "很合适", "和描述一致"),
    ),
    "baby": (
        ("宝宝", "孩子", "小朋友"),
        ("用了起红疹", "很不喜欢", "哭闹不止"),
        ("不太感兴趣", "还在适应"),
        ("很喜欢", "用着很舒服", "爱不释手"),
    ),
    "safety": (
        ("安全性", "做工细节"),
        ("让人担心", "有毛刺"),
        ("一般",),
        ("让人放心", "很好"),
    ),
    "grip": (
        ("手感", "弹性", "握感"),
        ("很差", "太硬", "没弹性"),
        ("一般", "还行"),
        ("很好", "很舒服", "很有弹性"),
    ),
    "durability": (
        ("耐用度", "结实程度"),
        ("用了一次就坏了", "开线了"),
        ("一般",),
        ("很结实", "很耐用"),
    ),
    "print": (
        ("印刷", "纸张", "字迹"),
        ("模糊不清", "像盗版", "有缺页"),
        ("一般", "偏薄"),
        ("很清晰", "质量很好", "很有质感"),
    ),
    "content": (
        ("内容", "这本书"),
        ("很水", "不值得买", "很失望"),
        ("一般", "还没看完"),
        ("很有收获", "很精彩", "值得一读"),
    ),
    "screen": (
        ("屏幕", "画质", "像素"),
        ("有坏点", "偏色", "漏光严重"),
        ("一般", "够用"),
        ("很清晰", "很细腻", "色彩很好"),
    ),
    "speed": (
        ("运行速度", "系统", "反应"),
        ("很卡", "经常闪退", "反应很慢"),
        ("一般", "偶尔卡一下"),
        ("很流畅", "很快", "不卡顿"),
    ),
}


_EN_GROUPS: dict[str, _Group] = {
    "logistics": (
        ("delivery", "shipping", "the courier"),
        ("was terribly slow", "took forever", "never updated the tracking"),
        ("was okay", "was average", "was a bit slow"),
        ("was super fast", "was quick", "arrived the next day"),
    ),
    "packaging": (
        ("packaging", "the box"),
        ("was crushed", "was damaged", "was flimsy"),
        ("was basic", "was fine"),
        ("was very secure", "was neat"),
    ),
    "service": (
        ("the seller", "customer service"),
        ("was rude", "never replied", "kept making excuses"),
        ("was okay", "was slow to reply"),
        ("was very helpful", "replied quickly"),
    ),
    "quality": (
        ("quality", "the item", "the product"),
        ("is terrible", "is poor", "broke after two days", "looks nothing like the photos"),
        ("is average", "is okay for the price", "is so-so"),
        ("is great", "is excellent", "exceeded my expectations"),
    ),
    "value": (
        ("value for money", "the price"),
        ("is a rip-off", "is way too high"),
        ("is okay", "is average"),
        ("is great", "is very fair"),
    ),
    "fit": (
        ("the size", "the fit"),
        ("is completely wrong", "is way too small"),
        ("runs a bit large", "runs a bit small"),
        ("is perfect", "is just right"),
    ),
    "battery": (
        ("the battery", "battery life"),
        ("drains fast", "died in a week"),
        ("is average",),
        ("lasts all day", "is great"),
    ),
    "taste": (
        ("the taste", "flavour"),
        ("is awful", "is weird"),
        ("is okay",),
        ("is delicious", "is amazing"),
    ),
    "effect": (
        ("the effect", "the result"),
        ("is zero", "gave me a rash"),
        ("is not obvious yet",),
        ("is amazing", "is visible"),
    ),
}


_ZH_CATEGORY_GROUPS: tuple[tuple[str, ...], ...] = (
    ("fabric", "fit", "color"),
    ("comfort", "sole", "fit"),
    ("sound", "battery", "function"),
    ("scent", "effect", "texture"),
    ("taste", "freshness", "portion"),
    ("material", "install", "size"),
    ("baby", "safety", "material"),
    ("grip", "fit", "durability"),
    ("print", "content"),
    ("screen", "speed", "battery"),
)


_EN_CATEGORY_GROUPS: tuple[tuple[str, ...], ...] = (
    ("fit",),
    ("fit",),
    ("battery",),
    ("effect",),
    ("taste",),
    (),
    (),
    ("fit",),
    (),
    ("battery",),
)


_GENERIC_GROUPS = ("logistics", "packaging", "service", "quality", "value")


_ZH_HEDGES = ("", "", "真的", "感觉", "确实")


_EN_HEDGES = ("", "", " really")


# Indexed by polarity (negative, neutral, positive).
_ZH_OPENERS = (
    ("", "", "收到货了，", "说实话，", "第一次在这家买，", "用了两天，", "无语了，"),
    ("", "", "收到了，", "用了几天，", "说实话，"),
    ("", "", "", "收到了，", "宝贝收到了，", "第二次回购了，", "用了一段时间了，", "朋友推荐的，"),
)


_EN_OPENERS = (
    ("Honestly, ", "Very disappointed, ", "Not happy, "),
    ("Overall, ", "Used it for a few days, ", "Well, "),
    ("Overall, ", "Got it, ", "Second purchase, ", "Love it, "),
)


_ZH_CLOSINGS = (
    ("不推荐", "大家慎拍", "很失望", "不会再买了", "后悔买了", "差评", "避雷", "垃圾"),
    ("就这样吧", "凑合用吧", "再观察看看", "中评吧", "一分钱一分货"),
    ("下次还会再来", "推荐购买", "五星好评", "值得购买", "会回购的", "满意", "好评", "物超所值"),
)


_EN_CLOSINGS = (
    ("Do not buy", "Waste of money", "Never again", "Avoid this seller"),
    ("It's fine", "Okay for the price", "Might buy again"),
    ("Would buy again", "Highly recommend", "Five stars", "Love it"),
)


_EMOJI = (
    ("😡", "👎", "😤", "💔", "🙄", "😠😠", "🤮"),
    ("🤔", "😐", "🙂", "😶"),
    ("👍", "😊", "❤️", "🎉", "💯", "🥰", "👍👍", "😄"),
)


_ZH_CONJ_SAME = ("，", "，", "，而且", "，")


_ZH_CONJ_DIFF = ("，但是", "，不过", "，就是")


_EN_CONJ_SAME = (", ", " and ", ", and ")


_EN_CONJ_DIFF = (", but ", ", though ")


_ZH_SEP = ("，", "。", "！")  # between the clauses and a closing


_ZH_END = ("。", "！", "", "~")


_EN_SEP = (". ", "! ")


_EN_END = (".", "!", "")


_AMOUNTS = ("20", "30", "50", "80", "100", "200")


_ZH_THREATS = (
    "不赔钱就给差评",
    "不给补偿我就投诉到12315",
    "再不处理我就天天差评",
    "不给个说法就全网差评",
    "不赔偿就找媒体曝光",
    "赔我{n}块钱这事就算了，不然差评",
    "必须给补偿，否则追评曝光你家",
    "今天不给我补偿我就投诉到平台",
    "给我退一半的钱，不然每个链接都给差评",
    "不补偿就一直给你差评，看谁耗得起",
    "我录了开箱视频，不赔{n}元就投诉到市场监管局",
)


_EN_THREATS = (
    "Refund me or I will leave bad reviews everywhere",
    "I'll report you to the platform",
    "Compensate me or I post 1-star reviews on every listing",
    "Pay me {n} yuan or I will report you",
    "Give me compensation or I will complain to 12315",
    "If you don't pay I will keep leaving bad reviews",
)


# Free text of after-sales requests, by reason (order of REFUND_REASONS).
_ZH_REASON_TEXTS: tuple[tuple[str, ...], ...] = (
    ("一直没收到货", "物流显示签收但我没收到", "快递好多天没更新了", "没有收到商品",
     "驿站说没有我的快递", "包裹丢了", "显示已签收，本人未收到"),
    ("收到的时候就坏了", "外包装破损，商品摔坏了", "屏幕碎了", "商品有破损", "瓶子漏了",
     "压坏了"),
    ("质量有问题", "用了两天就坏了", "开线了", "有瑕疵", "质量太差", "有异味"),
    ("和描述不符", "颜色和图片不一样", "材质和详情页写的不一样", "实物与图片差距太大",
     "功能和宣传的不一样"),
    ("发错货了", "颜色发错了", "尺码发错了", "收到的不是我买的款"),
    ("少发了配件", "缺少零件", "只收到一件", "少了一个", "赠品没有发"),
    ("尺码偏小", "尺码偏大", "不合身", "换大一码", "换小一码", "穿着不合适"),
    ("不想要了", "拍错了", "买多了", "七天无理由退货", "不喜欢", "地址填错了"),
    ("物流太慢了", "快递停滞不动", "超时未发货", "物流一直不更新", "发货太慢"),
    ("申请价保", "降价了，申请补差价", "其他原因", "协商一致退款", "商家同意退款"),
)  # fmt: skip


_ZH_DEMAND_TEXTS = (
    "质量太差，要求赔偿{n}元",
    "给我补偿{n}元，不然差评",
    "不赔钱就投诉",
    "要求补偿，否则差评",
    "东西有问题，必须赔偿",
    "商家不处理就投诉到12315",
)


@dataclass(frozen=True)
class World:
    """One simulated marketplace, as the platform exports it, plus the hidden truth.

    Attributes:
        orders: One row per order.
        refunds: One row per after-sales request (售后申请).
        reviews: One row per product review.
        labels: Platform decisions about buyers (late, partial, sometimes wrong).
        buyers: One row per buyer account.
        truth: Every buyer's true segment, group (``H`` household, ``G`` ring, ``F``
            office) and ``abuse_start`` (NaT for honest buyers), for evaluation only.
    """

    orders: pd.DataFrame
    refunds: pd.DataFrame
    reviews: pd.DataFrame
    labels: pd.DataFrame
    buyers: pd.DataFrame
    truth: pd.DataFrame


def simulate_world(params: SimulateParams, *, seed: int) -> World:
    """Simulate a marketplace: buyers, their orders, after-sales requests, reviews, labels.

    Args:
        params: Size and behaviour of the world (``n_buyers``, ``start``, ``days``,
            ``segment_shares``, label and text settings, and the knobs of the family:
            history, dormancy, closures, offices, Spring Festival, growth).
        seed: Seed of the random generator; the same parameters and seed give identical
            frames.

    Returns:
        The world. Timestamps are naive local wall-clock times (``datetime64[s]``) in
        ``[start, start + days)``, except ``buyers.registered_at`` and
        ``truth.abuse_start``, which may be earlier; ids and texts are pyarrow-backed
        ``str`` columns.

    Raises:
        ConfigError: Unknown segment names, shares outside [0, 1) or adding up to 1 or
            more, fewer than one buyer or day, rates outside [0, 1], a negative history
            or growth, a bad day range, or more office workers than honest buyers.
    """
    _check_params(params)
    rng = np.random.default_rng(seed)
    (
        r_buyers,
        r_orders,
        r_sessions,
        r_rings,
        r_ids,
        r_logistics,
        r_refunds,
        r_reviews,
        r_labels,
        r_text,
    ) = rng.spawn(10)
    # The knobs of the world family draw from generators spawned after the original ten,
    # so that with every knob at its default a world is exactly what it was before them.
    r_knobs = _KnobRngs(*rng.spawn(6))
    # Internal time 0 is the first simulated day: the export start minus the history.
    history = float(params.history_before_days)
    horizon = history + float(params.days)
    first_day = pd.Timestamp(params.start) - pd.Timedelta(days=params.history_before_days)
    start = np.datetime64(first_day.to_datetime64(), "s")

    buyers = _make_buyers(params, horizon, r_buyers, r_knobs)
    orders = _make_base_orders(
        buyers, horizon, start, r_orders, params.spring_festival_dip, r_knobs.season
    )
    orders = _expand_sessions(orders, r_sessions, horizon)
    orders = _concat_orders(orders, _ring_bursts(buyers, horizon, r_rings))
    _assign_ids(orders, buyers, r_ids, params, r_knobs.office_ids)
    _draw_logistics(orders, buyers, r_logistics)
    refunds = _make_refunds(orders, buyers, r_refunds)
    reviews = _make_reviews(orders, buyers, refunds, r_reviews)
    labels = _make_labels(orders, buyers, refunds, reviews, params, horizon, r_labels)
    closed = _closed_at(buyers, labels, params.close_on_label_share, r_knobs.close)
    orders, refunds, reviews, labels = _cut_history_and_closures(
        orders, refunds, reviews, labels, history, closed
    )

    r_numbers, r_pools, r_reason_text, r_review_text = r_text.spawn(4)
    buyer_number = r_numbers.permutation(params.n_buyers).astype(np.int64)
    # The working order arrays are the largest thing alive: keep only what the order frame
    # needs, so that the rest is freed before the frames and texts are built.
    exported = _ExportedOrders.of(orders)
    del orders
    orders_df, keys = _orders_frame(exported, buyer_number, start, horizon, r_pools)
    del exported
    lexicon = _build_lexicon()
    refunds_df = _refunds_frame(refunds, keys, lexicon, params, start, horizon, r_reason_text)
    reviews_df = _reviews_frame(reviews, keys, lexicon, params, start, horizon, r_review_text)
    buyers_df, truth_df = _buyer_frames(buyers, buyer_number, start)
    return World(
        orders=orders_df,
        refunds=refunds_df,
        reviews=reviews_df,
        labels=_labels_frame(labels, buyer_number, start),
        buyers=buyers_df,
        truth=truth_df,
    )


def _check_params(params: SimulateParams) -> None:
    if len(params.worlds) > 1:
        # Every world is written to the same folder (data/simulated), so one at a time.
        raise ConfigError(f"simulate.worlds names at most one world, got {list(params.worlds)}")
    if params.n_buyers < 1:
        raise ConfigError(f"simulate.n_buyers must be at least 1, got {params.n_buyers}")
    if params.days < 1:
        raise ConfigError(f"simulate.days must be at least 1, got {params.days}")
    unknown = sorted(set(params.segment_shares) - set(SEGMENTS[1:]))
    if unknown:
        raise ConfigError(
            f"simulate.segment_shares: unknown segment '{unknown[0]}' (known: {list(SEGMENTS[1:])})"
        )
    shares = [float(params.segment_shares.get(s, 0.0)) for s in SEGMENTS[1:]]
    if any(not 0.0 <= s < 1.0 for s in shares) or sum(shares) >= 1.0:
        raise ConfigError("simulate.segment_shares must be in [0, 1) and add up to less than 1")
    rates = {
        "label_coverage": params.label_coverage,
        "false_report_rate": params.false_report_rate,
        "legit_label_rate": params.legit_label_rate,
        "traditional_share": params.traditional_share,
        "english_share": params.english_share,
        "emoji_share": params.emoji_share,
        "dormant_share": params.dormant_share,
        "close_on_label_share": params.close_on_label_share,
        "office_share": params.office_share,
        "office_device_share": params.office_device_share,
        "office_card_share": params.office_card_share,
        "spring_festival_dip": params.spring_festival_dip,
    }
    for name in sorted(rates):
        if not 0.0 <= rates[name] <= 1.0:
            raise ConfigError(f"simulate.{name} must be in [0, 1], got {rates[name]}")
    for name in ("label_delay_days", "dormant_days"):
        lo, hi = getattr(params, name)
        if lo < 0 or hi < lo:
            raise ConfigError(f"simulate.{name} must satisfy 0 <= low <= high, got {(lo, hi)}")
    if params.history_before_days < 0:
        raise ConfigError(
            f"simulate.history_before_days must be at least 0, got {params.history_before_days}"
        )
    growth = params.growth_per_year
    if growth is not None and not (math.isfinite(growth) and growth >= 0.0):
        raise ConfigError(f"simulate.growth_per_year must be null or >= 0, got {growth}")
    if params.office_share > 1.0 - sum(shares):
        raise ConfigError(
            f"simulate.office_share ({params.office_share}) is more than the share of "
            f"ordinary honest buyers ({1.0 - sum(shares):.3f}) that offices are made of"
        )


def _draw(rng: np.random.Generator, probs: Sequence[float], size: int) -> IntArray:
    """Draw category codes 0..len(probs)-1 with the given (unnormalised) weights."""
    cum = np.cumsum(np.asarray(probs, dtype=np.float64))
    codes = np.searchsorted(cum / cum[-1], rng.random(size), side="right")
    return np.minimum(codes, len(cum) - 1).astype(np.int64)


def _draw_by_row(
    rng: np.random.Generator, table: Sequence[Sequence[float]], rows: IntArray
) -> IntArray:
    """Draw one code per element, from the probability row ``table[rows[i]]``."""
    u = rng.random(len(rows))
    out = np.zeros(len(rows), dtype=np.int64)
    for r, probs in enumerate(table):
        mask = rows == r
        if mask.any():
            cum = np.cumsum(np.asarray(probs, dtype=np.float64))
            codes = np.searchsorted(cum / cum[-1], u[mask], side="right")
            out[mask] = np.minimum(codes, len(cum) - 1)
    return out


def _pick(rng: np.random.Generator, count: IntArray) -> IntArray:
    """A uniform index in [0, count) per element (0 where count is 0)."""
    return np.minimum((rng.random(len(count)) * count).astype(np.int64), np.maximum(count - 1, 0))


def _partition(n_members: int, lo: int, hi: int, rng: np.random.Generator) -> IntArray:
    """Group sizes in [lo, hi] adding up to n_members.

    A remainder shorter than ``lo`` is spread over groups that still have room (a group
    grows past ``hi`` only when none has); fewer than ``lo`` members make one small group.
    """
    if n_members == 0:
        return np.zeros(0, dtype=np.int64)
    sizes = rng.integers(lo, hi + 1, size=n_members // lo + 1).astype(np.int64)
    cum = np.cumsum(sizes)
    k = int(np.searchsorted(cum, n_members))
    sizes = sizes[: k + 1].copy()
    sizes[k] = n_members - (int(cum[k - 1]) if k > 0 else 0)
    if sizes[k] < lo and k > 0:
        rest = int(sizes[k])
        sizes = sizes[:k]
        for _ in range(rest):
            room = np.flatnonzero(sizes < hi)
            sizes[room[0] if len(room) else len(sizes) - 1] += 1
    return sizes


def _starts(counts: IntArray) -> IntArray:
    """Where each block starts when blocks of these sizes are laid end to end."""
    return (np.cumsum(counts) - counts).astype(np.int64)


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _uniform(rng: np.random.Generator, lo: float, hi: float, size: int) -> FloatArray:
    return lo + (hi - lo) * rng.random(size)


def _lognormal(rng: np.random.Generator, median: float, sigma: float, size: int) -> FloatArray:
    return rng.lognormal(math.log(median), sigma, size)


@dataclass(frozen=True)
class _KnobRngs:
    """One generator per knob of the world family, apart from the base world's ten."""

    dormant: np.random.Generator
    growth: np.random.Generator
    season: np.random.Generator
    office: np.random.Generator
    office_ids: np.random.Generator
    close: np.random.Generator


@dataclass
class _Buyers:
    """Per-buyer arrays, indexed by the internal buyer number 0..n-1."""

    segment: IntArray
    household: IntArray  # household number, -1 for none
    ring: IntArray  # ring number, -1 for none
    ring_members: IntArray  # buyers of ring g are ring_members[ring_offset[g]:...+size]
    ring_offset: IntArray
    ring_size: IntArray
    ring_start: FloatArray
    registered: FloatArray
    active_from: FloatArray
    active_to: FloatArray
    abuse_start: FloatArray  # +inf for honest buyers
    rate: FloatArray
    fav_category: IntArray
    fav_share: FloatArray
    seller_salt: IntArray
    refund_p: FloatArray
    review_p: FloatArray
    n_households: int
    office: IntArray  # office number, -1 for none
    n_offices: int


def _segment_codes(params: SimulateParams, rng: np.random.Generator) -> IntArray:
    n = params.n_buyers
    shares = np.array([params.segment_shares.get(s, 0.0) for s in SEGMENTS[1:]])
    counts = np.floor(shares * n + 0.5).astype(np.int64)
    while counts.sum() > n:  # rounding can overshoot when shares nearly fill the world
        counts[int(np.argmax(counts))] -= 1
    all_counts = np.concatenate([[n - counts.sum()], counts])
    return rng.permutation(np.repeat(np.arange(len(SEGMENTS), dtype=np.int64), all_counts))


def _make_buyers(
    params: SimulateParams, horizon: float, rng: np.random.Generator, knobs: _KnobRngs
) -> _Buyers:
    n = params.n_buyers
    segment = _segment_codes(params, rng)
    is_abuser = np.isin(segment, [_ROC, _EXTORT, _WARD, _RING])

    household = np.full(n, -1, dtype=np.int64)
    hh_members = np.flatnonzero(segment == _HOUSEHOLD)
    hh_sizes = _partition(len(hh_members), *_HOUSEHOLD_SIZE, rng)
    household[hh_members] = np.repeat(np.arange(len(hh_sizes)), hh_sizes)

    ring = np.full(n, -1, dtype=np.int64)
    ring_members = np.flatnonzero(segment == _RING)
    ring_size = _partition(len(ring_members), *_RING_SIZE, rng)
    ring[ring_members] = np.repeat(np.arange(len(ring_size)), ring_size)
    ring_offset = _starts(ring_size)
    ring_start = horizon * rng.random(len(ring_size))

    # Accounts: most existed before the period; the rest open during it.
    pre = rng.random(n) < _PRE_REGISTERED_SHARE
    registered = np.where(
        pre, -(1.0 + 2400.0 * rng.random(n) ** 1.3), 0.85 * horizon * rng.random(n)
    )
    if params.growth_per_year is not None:
        registered, pre = _grown_registrations(params.growth_per_year, horizon, n, knobs.growth)
    abuse_start = np.where(is_abuser, horizon * rng.random(n), np.inf)
    # An abuser had an account before turning.
    registered = np.where(is_abuser & ~pre, rng.random(n) * abuse_start, registered)
    # Ring accounts are fresh: opened weeks before the ring strikes.
    in_ring = ring >= 0
    abuse_start[in_ring] = ring_start[ring[in_ring]]
    registered[in_ring] = abuse_start[in_ring] - _uniform(rng, 1.0, 45.0, int(in_ring.sum()))
    dormant = np.zeros(n, dtype=bool)
    if params.dormant_share > 0.0:
        dormant, abuse_start, registered, ring_start = _dormant_abusers(
            params, horizon, is_abuser, ring, ring_start, abuse_start, registered, knobs.dormant
        )

    first_day = np.maximum(registered, 0.0)
    active_from = first_day + np.minimum(rng.exponential(2.0, n), 0.5 * (horizon - first_day))
    churn = ~is_abuser & (rng.random(n) < _CHURN_SHARE)
    active_to = np.where(
        churn,
        active_from + (horizon - active_from) * _uniform(rng, 0.2, 1.0, n),
        horizon,
    )

    rate = np.clip(_lognormal(rng, _RATE_MEDIAN, _RATE_SIGMA, n), 1.0, 150.0)
    rate = np.where(in_ring, np.clip(_lognormal(rng, _RING_RATE_MEDIAN, 0.5, n), 1.0, 20.0), rate)
    rate = rate * np.where(segment == _VICTIM, 0.9, 1.0)

    fav_category = _draw(rng, _CATEGORY_WEIGHTS, n)
    fav_share = _uniform(rng, 0.2, 0.5, n)
    bracket = segment == _BRACKET
    fav_category[bracket] = np.where(rng.random(int(bracket.sum())) < 0.65, _APPAREL, _SHOES)
    fav_share[bracket] = 0.6

    refund_p = _uniform(rng, 0.025, 0.07, n)
    refund_p[segment == _PICKY] *= 0.4
    review_p = _uniform(rng, 0.3, 0.5, n)
    review_p[segment == _PICKY] = _uniform(rng, 0.75, 0.95, int((segment == _PICKY).sum()))
    review_p[is_abuser] = _uniform(rng, 0.2, 0.45, int(is_abuser.sum()))
    # Sleepers pass as honest buyers, in how often they review too.
    review_p[dormant] = _uniform(knobs.dormant, 0.3, 0.5, int(dormant.sum()))

    office = np.full(n, -1, dtype=np.int64)
    n_offices = 0
    if params.office_share > 0.0:
        office = _offices(segment, params.office_share, knobs.office)
        n_offices = int(office.max(initial=-1)) + 1

    return _Buyers(
        segment=segment,
        household=household,
        ring=ring,
        ring_members=ring_members.astype(np.int64),
        ring_offset=ring_offset,
        ring_size=ring_size,
        ring_start=ring_start,
        registered=registered,
        active_from=active_from,
        active_to=active_to,
        abuse_start=abuse_start,
        rate=rate,
        fav_category=fav_category,
        fav_share=fav_share,
        seller_salt=rng.integers(0, 1 << 30, n),
        refund_p=refund_p,
        review_p=review_p,
        n_households=len(hh_sizes),
        office=office,
        n_offices=n_offices,
    )


def _grown_registrations(
    growth: float, horizon: float, n: int, rng: np.random.Generator
) -> tuple[FloatArray, BoolArray]:
    """Registration days for a buyer base that grows by ``growth`` a year.

    With ``N(t) = N(horizon) * (1 + growth) ** ((t - horizon) / 365)`` accounts by day t,
    a share ``N(0) / N(horizon)`` predates the period and the rest open with a density
    rising as ``exp(rate * t)``, drawn by inverting its distribution function.

    Returns:
        Registration days and whether each account predates the period.
    """
    rate = math.log1p(growth) / 365.0
    pre = rng.random(n) < math.exp(-rate * horizon)
    u = rng.random(n)
    new = np.log1p(u * math.expm1(rate * horizon)) / rate if rate > 0.0 else u * horizon
    old = -(1.0 + 2400.0 * rng.random(n) ** 1.3)
    return np.where(pre, old, np.minimum(new, np.nextafter(horizon, 0.0))), pre


def _dormant_abusers(
    params: SimulateParams,
    horizon: float,
    is_abuser: BoolArray,
    ring: IntArray,
    ring_start: FloatArray,
    abuse_start: FloatArray,
    registered: FloatArray,
    rng: np.random.Generator,
) -> tuple[BoolArray, FloatArray, FloatArray, FloatArray]:
    """Abusers who shop honestly for ``dormant_days`` inside the period, then turn.

    A sleeper's abuse starts at least its dormancy into the period (so the honest months
    are there to see) and its account is at least that old; a sleeper ring's accounts are
    aged (养号) that long before the ring first strikes. The dormancy is capped at 90% of
    the period so that every abuser still turns inside it.

    Returns:
        Who is a sleeper, and the new abuse starts, registrations and ring starts.
    """
    n = len(is_abuser)
    lo, hi = (float(x) for x in params.dormant_days)
    in_ring = ring >= 0
    abuse_start, registered, ring_start = abuse_start.copy(), registered.copy(), ring_start.copy()

    d = np.minimum(_uniform(rng, lo, hi, n), 0.9 * horizon)
    solo = is_abuser & ~in_ring & (rng.random(n) < params.dormant_share)
    abuse_start[solo] = d[solo] + (horizon - d[solo]) * rng.random(int(solo.sum()))
    registered[solo] = np.minimum(registered[solo], abuse_start[solo] - d[solo])

    n_rings = len(ring_start)
    ring_d = np.minimum(_uniform(rng, lo, hi, n_rings), 0.9 * horizon)
    sleeper_ring = rng.random(n_rings) < params.dormant_share
    span = horizon - ring_d[sleeper_ring]
    ring_start[sleeper_ring] = ring_d[sleeper_ring] + span * rng.random(len(span))
    members = in_ring & np.append(sleeper_ring, False)[ring]
    g = ring[members]
    # Keep each member's own lead (1-45 days) on top of the ring's dormancy.
    lead = abuse_start[members] - registered[members]
    abuse_start[members] = ring_start[g]
    registered[members] = ring_start[g] - ring_d[g] - lead
    return solo | members, abuse_start, registered, ring_start


def _offices(segment: IntArray, share: float, rng: np.random.Generator) -> IntArray:
    """Office number per buyer (-1 for none): groups of ordinary honest colleagues."""
    n = len(segment)
    honest = np.flatnonzero(segment == _HONEST)
    k = min(len(honest), round(share * n))
    members = rng.permutation(honest)[:k]
    sizes = _partition(k, *_OFFICE_SIZE, rng)
    office = np.full(n, -1, dtype=np.int64)
    office[members] = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    return office


@dataclass
class _Orders:
    """Per-order arrays (one element per order, in no particular order)."""

    buyer: IntArray
    created: FloatArray
    kind: IntArray
    category: IntArray
    amount: FloatArray
    seller: IntArray
    first: BoolArray  # one order per buyer that must carry the buyer's shared ids
    session: IntArray  # bracketing session number, -1 for none
    keep: BoolArray  # within a session: the size the buyer keeps
    cancel: BoolArray  # cancelled and refunded before shipping
    device: IntArray | None = None
    address: IntArray | None = None
    payment: IntArray | None = None
    shipped: FloatArray | None = None  # true times; NaN when it never happens
    delivered: FloatArray | None = None
    lost: BoolArray | None = None
    ext_review: FloatArray | None = None  # when the extortion threat review is posted


_ORDER_FIELDS = ("buyer", "created", "kind", "category", "amount", "seller", "first",
                 "session", "keep", "cancel")  # fmt: skip


def _concat_orders(a: _Orders, b: _Orders) -> _Orders:
    return _Orders(**{f: np.concatenate([getattr(a, f), getattr(b, f)]) for f in _ORDER_FIELDS})


def _festival_days(start: np.datetime64, horizon: float) -> FloatArray:
    first = pd.Timestamp(start)
    days: list[float] = []
    for year in range(first.year, first.year + int(horizon // 365) + 2):
        for month, day in _FESTIVALS:
            offset = (pd.Timestamp(year=year, month=month, day=day) - first).days
            if 0 <= offset < horizon:
                days.append(float(offset))
    return np.array(sorted(days), dtype=np.float64)


def _spring_festival_days(start: np.datetime64, horizon: float) -> FloatArray:
    """Days (since ``start``) of every Spring Festival (农历正月初一) near the period."""
    first = pd.Timestamp(start)
    days: list[float] = []
    for year in range(first.year, first.year + int(horizon // 365) + 2):
        month, day = _SPRING_FESTIVAL.get(year, (2, 5))
        days.append(float((pd.Timestamp(year=year, month=month, day=day) - first).days))
    return np.array(days, dtype=np.float64)


def _spring_festival_trough(
    t: FloatArray,
    active_to: FloatArray,
    start: np.datetime64,
    horizon: float,
    dip: float,
    rng: np.random.Generator,
) -> FloatArray:
    """Postpone a share ``dip`` of the orders placed while couriers rest over 春节.

    A postponed order keeps its time of day and comes a few days after the break, the
    post-holiday rebound; one that would fall after the buyer's last active day stays.
    """
    out = t.copy()
    before, after = _SPRING_FESTIVAL_BREAK
    for festival in _spring_festival_days(start, horizon):
        lo, hi = festival - before, festival + after
        if hi <= 0.0 or lo >= horizon:
            continue
        rows = np.flatnonzero((out >= lo) & (out < hi))
        rows = rows[rng.random(len(rows)) < dip]
        later = hi + np.floor(rng.exponential(4.0, len(rows))) + (out[rows] % 1.0)
        fits = later < np.minimum(active_to[rows], horizon)
        out[rows[fits]] = later[fits]
    return out


def _n_sellers(n_buyers: int) -> IntArray:
    total = max(30, int(n_buyers * _SELLERS_PER_BUYER))
    weights = np.asarray(_CATEGORY_WEIGHTS) / sum(_CATEGORY_WEIGHTS)
    return np.maximum(3, np.round(total * weights)).astype(np.int64)


def _prices(rng: np.random.Generator, category: IntArray, factor: FloatArray) -> FloatArray:
    median = np.asarray(_PRICE_MEDIAN)[category] * factor
    raw = np.exp(
        np.log(median) + np.asarray(_PRICE_SIGMA)[category] * rng.standard_normal(len(category))
    )
    # Shop prices end in .9 or .0; a few orders are free gifts fully paid by coupons.
    price = np.maximum(np.round(raw), 1.0) - 0.1 * (rng.random(len(raw)) < 0.5)
    return np.where(rng.random(len(raw)) < 0.001, 0.0, np.round(price, 2))


def _sellers(
    rng: np.random.Generator,
    category: IntArray,
    n_sellers: IntArray,
    salt: IntArray,
    loyal: BoolArray,
    skew: float,
) -> IntArray:
    """Global seller number: popular shops take most orders; loyal buyers return to one."""
    offsets = _starts(n_sellers)
    m = n_sellers[category]
    popular = (m * rng.random(len(category)) ** skew).astype(np.int64)
    favourite = (salt + category * 7919) % m
    local = np.where(loyal, favourite, np.minimum(popular, m - 1))
    return offsets[category] + local


def _make_base_orders(
    buyers: _Buyers,
    horizon: float,
    start: np.datetime64,
    rng: np.random.Generator,
    spring_dip: float,
    r_season: np.random.Generator,
) -> _Orders:
    seg = buyers.segment
    boost = np.ones(len(seg))
    abuse_p = np.zeros(len(seg))
    for code in _ABUSE_BOOST:
        boost[seg == code] = _ABUSE_BOOST[code]
        abuse_p[seg == code] = _ABUSE_PROB[code]

    af, at, ab = buyers.active_from, buyers.active_to, buyers.abuse_start
    pre_len = np.maximum(0.0, np.minimum(ab, at) - af)
    post_len = np.maximum(0.0, at - np.maximum(ab, af))
    w_pre = buyers.rate * pre_len
    w_post = buyers.rate * boost * post_len
    total = w_pre + w_post
    counts = np.maximum(1, rng.poisson(total / 365.0)).astype(np.int64)
    p_post = np.divide(w_post, total, out=np.zeros_like(total), where=total > 0)

    b = np.repeat(np.arange(len(seg), dtype=np.int64), counts)
    n = len(b)
    post = rng.random(n) < p_post[b]
    lo = np.where(post, np.maximum(ab[b], af[b]), af[b])
    hi = np.where(post, at[b], np.minimum(ab[b], at[b]))
    t = lo + (hi - lo) * rng.random(n)

    # Shape to local shopping hours and festival peaks, where the buyer is active then.
    hour = (_draw(rng, _HOUR_WEIGHTS, n) + rng.random(n)) / 24.0
    festivals = _festival_days(start, horizon)
    day = np.floor(t)
    if len(festivals):
        on_festival = rng.random(n) < _FESTIVAL_SHARE
        day = np.where(on_festival, festivals[_pick(rng, np.full(n, len(festivals)))], day)
    candidate = day + hour
    ok = (candidate >= af[b]) & (candidate < at[b])
    t = np.where(ok, candidate, t)
    if spring_dip > 0.0:
        t = _spring_festival_trough(t, at[b], start, horizon, spring_dip, r_season)

    seg_b = seg[b]
    abuse = (t >= ab[b]) & (rng.random(n) < abuse_p[b])
    kind = np.full(n, _K_NORMAL, dtype=np.int64)
    kind[abuse & (seg_b == _ROC)] = _K_ROC
    kind[abuse & (seg_b == _EXTORT)] = _K_EXTORT
    kind[abuse & (seg_b == _WARD)] = _K_WARD

    category = np.where(
        rng.random(n) < buyers.fav_share[b],
        buyers.fav_category[b],
        _draw(rng, _CATEGORY_WEIGHTS, n),
    )
    roc = kind == _K_ROC
    category[roc] = _draw(rng, (0.15, 0.0, 0.25, 0.2, 0.1, 0.1, 0.0, 0.0, 0.0, 0.2), int(roc.sum()))
    ward = kind == _K_WARD
    category[ward] = _draw(rng, (0.5, 0.0, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3), int(ward.sum()))

    # Size bracketing: the same item in 2-3 sizes, expanded into copies later.
    session = (seg_b == _BRACKET) & (kind == _K_NORMAL) & (rng.random(n) < _SESSION_SHARE)
    category[session] = np.where(rng.random(int(session.sum())) < 0.65, _APPAREL, _SHOES)

    factor = np.ones(n)
    factor[roc] = 1.8
    factor[ward] = 2.5
    factor[kind == _K_EXTORT] = 1.2
    amount = _prices(rng, category, factor)

    n_sellers = _n_sellers(len(seg))
    abuse_any = kind != _K_NORMAL
    loyal = ~abuse_any & (rng.random(n) < 0.3)
    seller = _sellers(rng, category, n_sellers, buyers.seller_salt[b], loyal, 2.2)
    # Abusers spread their claims over many shops rather than the popular few.
    spread = _sellers(rng, category, n_sellers, buyers.seller_salt[b], loyal, 1.2)
    seller = np.where(abuse_any, spread, seller)

    first = np.ones(n, dtype=bool)
    first[1:] = b[1:] != b[:-1]
    cancel = (kind == _K_NORMAL) & ~session & (rng.random(n) < _PRESHIP_CANCEL_SHARE)
    return _Orders(
        buyer=b,
        created=t,
        kind=kind,
        category=category.astype(np.int64),
        amount=amount,
        seller=seller,
        first=first,
        session=np.where(session, np.arange(n), -1),
        keep=np.zeros(n, dtype=bool),
        cancel=cancel,
    )


def _expand_sessions(orders: _Orders, rng: np.random.Generator, horizon: float) -> _Orders:
    """Turn each bracketing order into 2-3 orders of the same item, minutes apart."""
    is_session = orders.session >= 0
    copies = np.where(is_session, np.where(rng.random(len(is_session)) < 0.55, 2, 3), 1)
    keep_copy = _pick(rng, copies)
    idx = np.repeat(np.arange(len(copies)), copies)
    starts = _starts(copies)
    j = np.arange(len(idx)) - np.repeat(starts, copies)
    out = _Orders(**{f: getattr(orders, f)[idx] for f in _ORDER_FIELDS})
    gap = j * _uniform(rng, 0.5 / 1440.0, 10.0 / 1440.0, len(idx))
    out.created = np.minimum(out.created + gap, np.nextafter(horizon, 0.0))
    out.keep = (out.session >= 0) & (j == keep_copy[idx])
    out.first = out.first & (j == 0)
    out.session = np.where(out.session >= 0, idx, -1)
    return out


def _ring_bursts(buyers: _Buyers, horizon: float, rng: np.random.Generator) -> _Orders:
    """Coordinated orders: every few weeks a ring hits one or two shops within a day or two."""
    n_rings = len(buyers.ring_size)
    max_bursts = int(horizon // 10) + 2
    gaps = _uniform(rng, 10.0, 35.0, n_rings * max_bursts).reshape(n_rings, max_bursts)
    gaps[:, 0] = _uniform(rng, 0.0, 5.0, n_rings)
    times = buyers.ring_start[:, None] + np.cumsum(gaps, axis=1)
    valid = times < horizon
    burst_ring = np.nonzero(valid)[0].astype(np.int64)
    burst_t = times[valid]
    n_bursts = len(burst_ring)

    burst_cat = _draw(rng, (0.1, 0.0, 0.3, 0.25, 0.0, 0.1, 0.0, 0.0, 0.0, 0.25), n_bursts)
    n_sellers = _n_sellers(len(buyers.segment))
    offsets = _starts(n_sellers)
    targets = offsets[burst_cat][:, None] + (
        rng.random((n_bursts, 2)) * n_sellers[burst_cat][:, None]
    ).astype(np.int64)
    window = _uniform(rng, 0.2, 2.0, n_bursts)

    reps = buyers.ring_size[burst_ring]
    row_burst = np.repeat(np.arange(n_bursts), reps)
    k = np.arange(len(row_burst)) - np.repeat(_starts(reps), reps)
    member = buyers.ring_members[buyers.ring_offset[burst_ring[row_burst]] + k]
    joins = rng.random(len(member)) < 0.75
    row_burst, member = row_burst[joins], member[joins]
    n_orders = np.where(rng.random(len(member)) < 0.3, 2, 1)
    row_burst = np.repeat(row_burst, n_orders)
    member = np.repeat(member, n_orders)
    n = len(member)

    created = burst_t[row_burst] + window[row_burst] * rng.random(n)
    keep = created < horizon
    row_burst, member, created = row_burst[keep], member[keep], created[keep]
    n = len(member)
    category = burst_cat[row_burst]
    seller = targets[row_burst, (rng.random(n) < 0.5).astype(np.int64)]
    return _Orders(
        buyer=member,
        created=created,
        kind=np.full(n, _K_RING, dtype=np.int64),
        category=category,
        amount=_prices(rng, category, np.full(n, 1.5)),
        seller=seller,
        first=np.zeros(n, dtype=bool),
        session=np.full(n, -1, dtype=np.int64),
        keep=np.zeros(n, dtype=bool),
        cancel=np.zeros(n, dtype=bool),
    )


def _assign_ids(
    orders: _Orders,
    buyers: _Buyers,
    rng: np.random.Generator,
    params: SimulateParams,
    r_office: np.random.Generator,
) -> None:
    """Device, address and payment per order, as pool numbers (formatted later).

    Ids are personal except: household members share a home address (and sometimes a
    family device or card); office colleagues share the office address (and sometimes a
    front-desk device or a company payment account); parcel-locker users share a locker
    address with hundreds of strangers; half of the logistics victims share a rural
    pickup station; rings share devices, payments and/or drop addresses.
    """
    seg = buyers.segment
    n = len(seg)
    b = orders.buyer
    m = len(b)

    n_dev = _draw(rng, (0.6, 0.3, 0.1), n) + 1
    n_dev[buyers.ring >= 0] = 1
    n_addr = _draw(rng, (0.7, 0.25, 0.05), n) + 1
    n_pay = _draw(rng, (0.75, 0.25), n) + 1
    dev_base = _starts(n_dev)
    addr_base = _starts(n_addr)
    pay_base = _starts(n_pay)
    next_dev, next_addr, next_pay = int(n_dev.sum()), int(n_addr.sum()), int(n_pay.sum())

    device = dev_base[b] + (rng.random(m) ** 1.5 * n_dev[b]).astype(np.int64)
    address = addr_base[b] + (rng.random(m) ** 2 * n_addr[b]).astype(np.int64)
    payment = pay_base[b] + (rng.random(m) * n_pay[b]).astype(np.int64)

    # Parcel lockers / 驿站: hundreds of unrelated buyers, one address.
    n_lockers = max(1, round(n * _LOCKER_SHARE / _LOCKER_USERS))
    has_locker = (buyers.ring < 0) & (rng.random(n) < _LOCKER_SHARE)
    locker = next_addr + (rng.random(n) * n_lockers).astype(np.int64)
    next_addr += n_lockers
    use = has_locker[b] & (rng.random(m) < 0.6)
    address[use] = locker[b[use]]

    # Remote villages: logistics victims collect parcels at the same rural station.
    victims = np.flatnonzero((seg == _VICTIM) & (rng.random(n) < _RURAL_SHARE))
    sizes = _partition(len(victims), *_RURAL_CLUSTER_SIZE, rng)
    station = np.full(n, -1, dtype=np.int64)
    station[victims] = next_addr + np.repeat(np.arange(len(sizes)), sizes)
    next_addr += len(sizes)
    use = (station[b] >= 0) & (rng.random(m) < 0.9)
    address[use] = station[b[use]]

    # Households: one home address, some a shared tablet or a parent's card. Assigned
    # last among addresses so that nothing overrides a member's forced home address.
    n_hh = buyers.n_households
    hh = buyers.household[b]
    in_hh = hh >= 0
    hh_home = next_addr + np.arange(n_hh)
    next_addr += n_hh
    use = in_hh & ((rng.random(m) < 0.8) | orders.first)
    address[use] = hh_home[hh[use]]
    # A trailing -1 entry makes "no household" (-1) index to "no shared id".
    hh_dev = np.append(np.where(rng.random(n_hh) < 0.3, next_dev + np.arange(n_hh), -1), -1)
    next_dev += n_hh
    hh_pay = np.append(np.where(rng.random(n_hh) < 0.2, next_pay + np.arange(n_hh), -1), -1)
    next_pay += n_hh
    use = (hh_dev[hh] >= 0) & ((rng.random(m) < 0.3) | orders.first)
    device[use] = hh_dev[hh[use]]
    use = (hh_pay[hh] >= 0) & (rng.random(m) < 0.4)
    payment[use] = hh_pay[hh[use]]

    # Rings: a device farm, a shared card, a drop address; each ring uses some of them.
    n_rings = len(buyers.ring_size)
    share_dev = rng.random(n_rings) < 0.75
    share_pay = rng.random(n_rings) < 0.5
    share_addr = rng.random(n_rings) < 0.45
    share_dev |= ~(share_pay | share_addr)
    ring_dev_n = rng.integers(1, 4, n_rings)
    ring_dev_base = next_dev + _starts(ring_dev_n)
    ring_addr_n = rng.integers(1, 3, n_rings)
    ring_addr_base = next_addr + _starts(ring_addr_n)
    ring_pay = next_pay + np.arange(n_rings)
    g = buyers.ring[b]
    must = (g >= 0) & (orders.first | (orders.kind == _K_RING))
    # Trailing False entries make "no ring" (-1) index to "shares nothing".
    share_dev, share_addr, share_pay = (
        np.append(x, False) for x in (share_dev, share_addr, share_pay)
    )
    use = share_dev[g] & (must | (rng.random(m) < 0.85))
    device[use] = ring_dev_base[g[use]] + _pick(rng, ring_dev_n[g[use]])
    use = share_addr[g] & (must | (rng.random(m) < 0.85))
    address[use] = ring_addr_base[g[use]] + _pick(rng, ring_addr_n[g[use]])
    use = share_pay[g] & (must | (rng.random(m) < 0.85))
    payment[use] = ring_pay[g[use]]

    if buyers.n_offices:
        # New pool numbers go after every other pool, so the base world's ids stay put.
        next_dev += int(ring_dev_n.sum())
        next_addr += int(ring_addr_n.sum())
        next_pay += n_rings
        _office_ids(orders, buyers, device, address, payment, (next_dev, next_addr, next_pay),
                    params, r_office)  # fmt: skip

    orders.device, orders.address, orders.payment = device, address, payment


def _office_ids(
    orders: _Orders,
    buyers: _Buyers,
    device: IntArray,
    address: IntArray,
    payment: IntArray,
    next_pool: tuple[int, int, int],
    params: SimulateParams,
    rng: np.random.Generator,
) -> None:
    """Colleagues have parcels sent to the office; some offices share a device or card.

    Writes into ``device``, ``address`` and ``payment`` (the caller's working arrays).
    """
    k = buyers.n_offices
    m = len(orders.buyer)
    next_dev, next_addr, next_pay = next_pool
    # A trailing -1 entry makes "no office" (-1) index to "no shared id".
    office = buyers.office[orders.buyer]
    home = np.append(next_addr + np.arange(k), -1)
    shared_dev = rng.random(k) < params.office_device_share
    desk = np.append(np.where(shared_dev, next_dev + np.arange(k), -1), -1)
    shared_pay = rng.random(k) < params.office_card_share
    card = np.append(np.where(shared_pay, next_pay + np.arange(k), -1), -1)
    use = (home[office] >= 0) & ((rng.random(m) < 0.75) | orders.first)
    address[use] = home[office[use]]
    use = (desk[office] >= 0) & ((rng.random(m) < 0.25) | orders.first)
    device[use] = desk[office[use]]
    use = (card[office] >= 0) & (rng.random(m) < 0.3)
    payment[use] = card[office[use]]


def _draw_logistics(orders: _Orders, buyers: _Buyers, rng: np.random.Generator) -> None:
    """Shipping and delivery times; victims wait long and lose many parcels.

    The times are the true ones, possibly after the period end (those become missing in
    the export); lost and cancelled orders are never delivered.
    """
    m = len(orders.buyer)
    victim = buyers.segment[orders.buyer] == _VICTIM
    ship_delay = np.clip(_lognormal(rng, 0.7, 0.6, m), 0.02, 6.0)
    transit = np.where(
        victim,
        np.clip(_lognormal(rng, 7.0, 0.5, m), 2.0, 40.0),
        np.clip(_lognormal(rng, 2.2, 0.45, m), 0.3, 12.0),
    )
    lost = rng.random(m) < np.where(victim, 0.16, 0.004)
    # Bracketed copies travel in one parcel: same shipping as the session's first copy.
    if (orders.session >= 0).any():
        sess = orders.session >= 0
        _, first_idx, inverse = np.unique(
            orders.session[sess], return_index=True, return_inverse=True
        )
        rows = np.flatnonzero(sess)
        lead = rows[first_idx][inverse]
        ship_delay[rows] = ship_delay[lead]
        transit[rows] = transit[lead]
        lost[rows] = lost[lead]
    shipped = orders.created + ship_delay
    arrive = shipped + transit
    # Couriers deliver in the daytime.
    delivered = np.floor(arrive) + _uniform(rng, 8.0 / 24.0, 21.0 / 24.0, m)
    delivered = np.where(delivered <= shipped + 0.05, delivered + 1.0, delivered)
    shipped[orders.cancel] = np.nan
    delivered[orders.cancel | lost] = np.nan
    orders.shipped, orders.delivered, orders.lost = shipped, delivered, lost & ~orders.cancel


@dataclass
class _Refunds:
    """Per-request arrays; ``row`` points into the orders."""

    row: IntArray
    requested: FloatArray
    rtype: IntArray
    reason: IntArray
    fraction: FloatArray  # of the order amount
    status: IntArray  # final status if resolved in time (never pending here)
    resolve_delay: FloatArray
    instant: BoolArray
    abuse: BoolArray
    demand: BoolArray  # reason text carries a compensation demand


class _RefundBuilder:
    def __init__(self) -> None:
        self.parts: list[_Refunds] = []

    def add(
        self,
        rng: np.random.Generator,
        row: IntArray,
        requested: FloatArray,
        rtype: IntArray,
        reason: IntArray,
        fraction: FloatArray,
        status_p: tuple[float, float, float],
        instant_p: FloatArray | float,
        abuse: bool,
        demand: BoolArray | None = None,
    ) -> None:
        k = len(row)
        instant = rng.random(k) < instant_p
        status = _draw(rng, status_p, k) + _S_APPROVED
        status[instant] = _S_APPROVED
        delay = _resolve_delay(rng, rtype, status)
        delay[instant] = _uniform(rng, 5.0 / 86400.0, 180.0 / 86400.0, int(instant.sum()))
        self.parts.append(
            _Refunds(
                row=row,
                requested=requested,
                rtype=rtype,
                reason=reason,
                fraction=fraction,
                status=status,
                resolve_delay=delay,
                instant=instant,
                abuse=np.full(k, abuse),
                demand=np.zeros(k, dtype=bool) if demand is None else demand,
            )
        )

    def build(self) -> _Refunds:
        names = _field_names(_Refunds)
        return _Refunds(**{f: np.concatenate([getattr(p, f) for p in self.parts]) for f in names})


def _resolve_delay(rng: np.random.Generator, rtype: IntArray, status: IntArray) -> FloatArray:
    k = len(rtype)
    by_type = np.select(
        [rtype == _RT_ONLY, rtype == _RT_RETURN, rtype == _RT_EXCHANGE],
        [
            _uniform(rng, 0.1, 2.5, k),
            2.0 + _lognormal(rng, 2.5, 0.4, k),  # goods travel back first
            3.0 + _lognormal(rng, 3.0, 0.4, k),
        ],
        _uniform(rng, 0.05, 3.0, k),
    )
    return np.select(
        [status == _S_REJECTED, status == _S_CANCELLED],
        [_uniform(rng, 0.5, 5.0, k), _uniform(rng, 0.02, 3.0, k)],
        by_type,
    )


def _make_refunds(orders: _Orders, buyers: _Buyers, rng: np.random.Generator) -> _Refunds:
    assert orders.shipped is not None and orders.delivered is not None
    assert orders.lost is not None
    m = len(orders.buyer)
    seg = buyers.segment[orders.buyer]
    victim = seg == _VICTIM
    kind = orders.kind
    shipped, delivered, created = orders.shipped, orders.delivered, orders.created
    transit = np.where(np.isfinite(delivered), delivered - shipped, np.nan)
    is_delivered = np.isfinite(delivered)
    taken = np.zeros(m, dtype=bool)
    out = _RefundBuilder()

    def claim(mask: BoolArray) -> IntArray:
        rows = np.flatnonzero(mask & ~taken)
        taken[rows] = True
        return rows

    # Cancelled before shipping (未发货仅退款): fast, usually automatic.
    rows = claim(orders.cancel)
    k = len(rows)
    out.add(
        rng,
        rows,
        created[rows] + np.minimum(rng.exponential(0.15, k), 0.6),
        np.full(k, _RT_ONLY),
        np.array([_R_CHANGED, _R_OTHER, _R_LOGISTICS])[_draw(rng, (0.7, 0.2, 0.1), k)],
        np.ones(k),
        (1.0, 0.0, 0.0),
        0.75,
        abuse=False,
    )

    # Refund-only claimers: "not received" / "damaged" within hours of delivery, or even
    # while the parcel is still on its way; the goods are kept.
    rows = claim((kind == _K_ROC) & np.isfinite(shipped) & (rng.random(m) < 0.95))
    _fast_claims(out, rng, rows, shipped, delivered, median_hours=3.0, early_share=0.15,
                 instant_p=0.5)  # fmt: skip

    # Ring members: the same, in coordinated bursts.
    rows = claim((kind == _K_RING) & np.isfinite(shipped) & (rng.random(m) < 0.9))
    _fast_claims(out, rng, rows, shipped, delivered, median_hours=2.0, early_share=0.2,
                 instant_p=0.35)  # fmt: skip

    # Extortion: the threat review comes first (see _make_reviews), then within a day or so
    # a request for partial compensation.
    ext_review = np.full(m, np.nan)
    ext_rows = np.flatnonzero((kind == _K_EXTORT) & is_delivered)
    ext_review[ext_rows] = delivered[ext_rows] + _uniform(rng, 0.1, 2.5, len(ext_rows))
    rows = claim(np.isfinite(ext_review) & (rng.random(m) < 0.85))
    k = len(rows)
    out.add(
        rng,
        rows,
        ext_review[rows] + np.clip(_lognormal(rng, 0.35, 0.8, k), 0.02, 1.5),
        np.full(k, _RT_COMP),
        np.array([_R_QUALITY, _R_NAD, _R_DAMAGED])[_draw(rng, (0.4, 0.35, 0.25), k)],
        _uniform(rng, 0.1, 0.5, k),
        (0.45, 0.40, 0.15),
        0.0,
        abuse=True,
        demand=rng.random(k) < 0.6,
    )

    # Wardrobing: worn, then returned on the last days of the 7-day window.
    rows = claim((kind == _K_WARD) & is_delivered & (rng.random(m) < 0.92))
    k = len(rows)
    out.add(
        rng,
        rows,
        delivered[rows] + 5.0 + 2.0 * rng.random(k) ** 0.7,
        np.full(k, _RT_RETURN),
        np.array([_R_CHANGED, _R_QUALITY, _R_NAD])[_draw(rng, (0.45, 0.3, 0.25), k)],
        np.ones(k),
        (0.85, 0.08, 0.07),
        0.05,
        abuse=True,
    )

    # Lost parcels: genuine "not received" claims, long after the expected delivery.
    lost_p = np.where(victim, 0.95, 0.9)
    rows = claim(orders.lost & np.isfinite(shipped) & (rng.random(m) < lost_p))
    k = len(rows)
    expected = np.clip(_lognormal(rng, 2.5, 0.4, k), 1.0, 10.0)
    out.add(
        rng,
        rows,
        shipped[rows] + expected + _uniform(rng, 3.0, 20.0, k),
        np.full(k, _RT_ONLY),
        np.where(rng.random(k) < 0.7, _R_NOT_RECEIVED, _R_LOGISTICS),
        np.ones(k),
        (0.88, 0.04, 0.08),
        0.1,
        abuse=False,
    )

    # Late parcels: a claim while still waiting, or compensation after it finally came.
    late = is_delivered & (transit > 6.0)
    rows = claim(late & (rng.random(m) < np.where(victim, 0.35, 0.25)))
    k = len(rows)
    waiting = rng.random(k) < 0.5
    requested = np.where(
        waiting,
        shipped[rows] + _uniform(rng, 0.6, 0.95, k) * transit[rows],
        delivered[rows] + _uniform(rng, 0.1, 3.0, k),
    )
    out.add(
        rng,
        rows[waiting],
        requested[waiting],
        np.full(int(waiting.sum()), _RT_ONLY),
        np.full(int(waiting.sum()), _R_NOT_RECEIVED),
        np.ones(int(waiting.sum())),
        (0.7, 0.1, 0.2),
        0.05,
        abuse=False,
    )
    out.add(
        rng,
        rows[~waiting],
        requested[~waiting],
        np.full(int((~waiting).sum()), _RT_COMP),
        np.full(int((~waiting).sum()), _R_LOGISTICS),
        _uniform(rng, 0.03, 0.1, int((~waiting).sum())),
        (0.7, 0.2, 0.1),
        0.1,
        abuse=False,
    )

    # Size bracketing: return every size but the one that fits, within days of delivery.
    in_session = (orders.session >= 0) & is_delivered
    returned = np.where(orders.keep, rng.random(m) < 0.12, rng.random(m) < 0.92)
    rows = claim(in_session & returned)
    k = len(rows)
    rtype = np.where(rng.random(k) < 0.9, _RT_RETURN, _RT_EXCHANGE)
    out.add(
        rng,
        rows,
        delivered[rows] + _uniform(rng, 1.0, 5.0, k),
        rtype,
        np.array([_R_SIZE, _R_QUALITY, _R_NAD])[_draw(rng, (0.85, 0.08, 0.07), k)],
        np.where(rtype == _RT_EXCHANGE, 0.0, 1.0),
        (0.93, 0.04, 0.03),
        0.08,
        abuse=False,
    )

    # Everyone's ordinary after-sales: quality, fit, second thoughts, the odd damage.
    factor = np.asarray(_REFUND_CATEGORY_FACTOR)[orders.category]
    p = buyers.refund_p[orders.buyer] * factor
    rows = claim((kind == _K_NORMAL) & is_delivered & (orders.session < 0) & (rng.random(m) < p))
    _honest_refunds(out, rng, rows, orders)

    refunds = out.build()
    refunds.row = refunds.row.astype(np.int64)
    orders.ext_review = ext_review
    return refunds


def _fast_claims(
    out: _RefundBuilder,
    rng: np.random.Generator,
    rows: IntArray,
    shipped: FloatArray,
    delivered: FloatArray,
    *,
    median_hours: float,
    early_share: float,
    instant_p: float,
) -> None:
    k = len(rows)
    d = delivered[rows]
    s = shipped[rows]
    has_d = np.isfinite(d)
    early = has_d & (rng.random(k) < early_share)
    after = d + np.clip(_lognormal(rng, median_hours / 24.0, 1.0, k), 2.0 / 1440.0, 2.0)
    before = s + _uniform(rng, 0.3, 0.9, k) * (d - s)
    never = s + _uniform(rng, 1.0, 4.0, k)
    requested = np.where(has_d, np.where(early, before, after), never)
    reason = np.array([_R_NOT_RECEIVED, _R_DAMAGED, _R_MISSING])[_draw(rng, (0.45, 0.35, 0.2), k)]
    reason = np.where(early | ~has_d, _R_NOT_RECEIVED, reason)
    rtype = np.where(rng.random(k) < 0.9, _RT_ONLY, _RT_COMP)
    fraction = np.where(
        rtype == _RT_COMP,
        _uniform(rng, 0.3, 0.8, k),
        np.where(reason == _R_MISSING, _uniform(rng, 0.3, 1.0, k), 1.0),
    )
    out.add(rng, rows, requested, rtype, reason, fraction, (0.55, 0.35, 0.10), instant_p,
            abuse=True)  # fmt: skip


def _honest_refunds(
    out: _RefundBuilder, rng: np.random.Generator, rows: IntArray, orders: _Orders
) -> None:
    assert orders.delivered is not None
    k = len(rows)
    category = orders.category[rows]
    reason = _draw(rng, _HONEST_REASON_P, k)
    wearable = np.isin(category, [_APPAREL, _SHOES, _SPORTS, _BABY])
    reason = np.where((reason == _R_SIZE) & ~wearable, _R_QUALITY, reason)
    rtype = _draw_by_row(rng, _TYPE_GIVEN_REASON, reason)
    # Breakage and wrong or missing items show at unboxing, so those come within hours.
    at_unboxing = np.isin(reason, [_R_DAMAGED, _R_WRONG, _R_MISSING])
    delay = np.select(
        [at_unboxing, reason == _R_SIZE, reason == _R_CHANGED],
        [
            np.clip(_lognormal(rng, 0.25, 1.0, k), 0.003, 7.0),
            np.clip(_lognormal(rng, 1.5, 0.6, k), 0.05, 14.0),
            _uniform(rng, 0.1, 7.0, k),
        ],
        np.clip(_lognormal(rng, 2.5, 0.8, k), 0.05, 15.0),
    )
    fraction = np.select(
        [rtype == _RT_EXCHANGE, rtype == _RT_COMP, reason == _R_MISSING],
        [np.zeros(k), _uniform(rng, 0.03, 0.3, k), _uniform(rng, 0.2, 1.0, k)],
        1.0,
    )
    amount = orders.amount[rows]
    instant_p = np.select(
        [(rtype == _RT_ONLY) & (amount < 300), rtype == _RT_RETURN, rtype == _RT_COMP],
        [0.35, 0.08, 0.1],
        0.0,
    )
    out.add(rng, rows, orders.delivered[rows] + delay, rtype, reason, fraction,
            (0.85, 0.05, 0.10), instant_p, abuse=False)  # fmt: skip


@dataclass
class _Reviews:
    row: IntArray
    created: FloatArray
    rating: IntArray
    kind: IntArray
    polarity: IntArray
    force_logistics: BoolArray
    clauses: IntArray


def _make_reviews(
    orders: _Orders,
    buyers: _Buyers,
    refunds: _Refunds,
    rng: np.random.Generator,
) -> _Reviews:
    assert orders.delivered is not None and orders.shipped is not None
    assert orders.lost is not None
    m = len(orders.buyer)
    seg = buyers.segment[orders.buyer]
    picky = seg == _PICKY
    kind = orders.kind
    delivered, shipped = orders.delivered, orders.shipped
    is_delivered = np.isfinite(delivered)
    transit = np.where(is_delivered, delivered - shipped, np.nan)
    late = is_delivered & (transit > 6.0)

    reason = np.full(m, -1, dtype=np.int64)
    honest = ~refunds.abuse
    reason[refunds.row[honest]] = refunds.reason[honest]

    # Experience of the order: 0 bad, 1 mixed, 2 good.
    experience = np.full(m, 2, dtype=np.int64)
    experience[np.isin(reason, [_R_SIZE, _R_CHANGED]) | (seg == _VICTIM)] = 1
    bad = np.isin(reason, [_R_DAMAGED, _R_QUALITY, _R_NAD, _R_WRONG, _R_MISSING]) | late
    experience[bad | (kind == _K_ROC)] = 0

    p = buyers.review_p[orders.buyer] * np.select(
        [kind == _K_ROC, kind == _K_RING, kind == _K_WARD], [0.5, 0.5, 0.8], 1.0
    )
    eligible = is_delivered & (kind != _K_EXTORT)
    wrote = eligible & (rng.random(m) < p)
    default = eligible & ~wrote & (rng.random(m) < _DEFAULT_REVIEW_SHARE)
    lost_review = (
        orders.lost & np.isfinite(shipped) & (rng.random(m) < np.where(seg == _VICTIM, 0.45, 0.25))
    )
    assert orders.ext_review is not None
    ext_review = orders.ext_review
    threat = np.isfinite(ext_review)

    rows_w = np.flatnonzero(wrote)
    rows_d = np.flatnonzero(default)
    rows_l = np.flatnonzero(lost_review)
    rows_t = np.flatnonzero(threat)
    created = np.concatenate(
        [
            delivered[rows_w] + np.clip(_lognormal(rng, 1.5, 1.0, len(rows_w)), 0.01, 14.0),
            delivered[rows_d] + 15.0 + _uniform(rng, 0.0, 0.5, len(rows_d)),
            shipped[rows_l] + _uniform(rng, 6.0, 25.0, len(rows_l)),
            ext_review[rows_t],
        ]
    )
    rows = np.concatenate([rows_w, rows_d, rows_l, rows_t])
    rkind = np.concatenate(
        [
            np.where(rng.random(len(rows_w)) < _EMPTY_REVIEW_SHARE, _RV_EMPTY, _RV_NORMAL),
            np.full(len(rows_d), _RV_DEFAULT),
            np.full(len(rows_l), _RV_NORMAL),
            np.full(len(rows_t), _RV_THREAT),
        ]
    )
    exp_rows = np.concatenate(
        [
            experience[rows_w],
            np.full(len(rows_d), 2),
            np.zeros(len(rows_l), dtype=np.int64),
            np.zeros(len(rows_t), dtype=np.int64),
        ]
    )
    is_picky = picky[rows]
    rating = (
        np.where(
            is_picky,
            _draw_by_row(rng, _PICKY_RATING_P, exp_rows),
            _draw_by_row(rng, _RATING_P, exp_rows),
        )
        + 1
    )
    rating[rkind == _RV_DEFAULT] = 5
    rating[rkind == _RV_THREAT] = np.where(rng.random(len(rows_t)) < 0.93, 1, 2)

    polarity = np.select([rating >= 4, rating == 3], [_POS, _NEU], _NEG)
    # Ratings and words disagree now and then: five stars with a complaint, and so on.
    flip = (rkind == _RV_NORMAL) & (rng.random(len(rows)) < _TEXT_MISMATCH_SHARE)
    polarity = np.where(flip, (polarity + 1 + _pick(rng, np.full(len(rows), 2))) % 3, polarity)
    polarity[rkind == _RV_THREAT] = _NEG

    force_logistics = (late[rows] | orders.lost[rows] | (
        (seg[rows] == _VICTIM) & (rng.random(len(rows)) < 0.5)
    )) & (rkind == _RV_NORMAL)  # fmt: skip
    clauses = (
        np.where(
            is_picky,
            _draw(rng, (0.0, 0.3, 0.7), len(rows)),
            _draw(rng, (0.35, 0.45, 0.2), len(rows)),
        )
        + 1
    )
    clauses[rkind == _RV_THREAT] = np.minimum(clauses[rkind == _RV_THREAT], 2)
    return _Reviews(
        row=rows.astype(np.int64),
        created=created,
        rating=rating.astype(np.int64),
        kind=rkind.astype(np.int64),
        polarity=polarity.astype(np.int64),
        force_logistics=force_logistics,
        clauses=clauses.astype(np.int64),
    )


@dataclass
class _Labels:
    buyer: IntArray
    labeled: FloatArray
    label: IntArray
    source: IntArray


def _pick_events(
    ev_buyer: IntArray,
    ev_time: FloatArray,
    chosen: BoolArray,
    first_share: float,
    rng: np.random.Generator,
) -> tuple[IntArray, FloatArray]:
    """One event per chosen buyer: the first one, or else a random one of theirs."""
    keep = chosen[ev_buyer]
    b, t = ev_buyer[keep], ev_time[keep]
    order = np.lexsort((t, b))
    b, t = b[order], t[order]
    buyers, first, count = np.unique(b, return_index=True, return_counts=True)
    take_first = rng.random(len(buyers)) < first_share
    idx = first + np.where(take_first, 0, _pick(rng, count))
    return buyers.astype(np.int64), t[idx]


def _make_labels(
    orders: _Orders,
    buyers: _Buyers,
    refunds: _Refunds,
    reviews: _Reviews,
    params: SimulateParams,
    horizon: float,
    rng: np.random.Generator,
) -> _Labels:
    seg = buyers.segment
    n = len(seg)
    lo, hi = (float(x) for x in params.label_delay_days)
    parts: list[_Labels] = []

    def add(b: IntArray, t: FloatArray, label: int, source: IntArray | int) -> None:
        parts.append(_Labels(b, t, np.full(len(b), label, dtype=np.int64),
                             np.broadcast_to(source, len(b)).astype(np.int64)))  # fmt: skip

    # Abuse events as the platform would see them: claims and threat reviews.
    abuse_rows = refunds.abuse & (refunds.requested < horizon)
    threat = (reviews.kind == _RV_THREAT) & (reviews.created < horizon)
    ev_buyer = np.concatenate(
        [orders.buyer[refunds.row[abuse_rows]], orders.buyer[reviews.row[threat]]]
    )
    ev_time = np.concatenate([refunds.requested[abuse_rows], reviews.created[threat]])
    has_event = np.zeros(n, dtype=bool)
    has_event[ev_buyer] = True
    labeled = has_event & (rng.random(n) < params.label_coverage)
    b, t = _pick_events(ev_buyer, ev_time, labeled, 0.5, rng)
    source = np.where(rng.random(len(b)) < 0.6, _SRC_PLATFORM, _SRC_MANUAL).astype(np.int64)
    add(b, t + _uniform(rng, lo, hi, len(b)), 1, source)
    # Some abusers are ruled on again, for a later case.
    again = np.zeros(n, dtype=bool)
    again[b] = rng.random(len(b)) < 0.25
    b2, t2 = _pick_events(ev_buyer, ev_time, again, 0.0, rng)
    add(b2, t2 + _uniform(rng, lo, hi, len(b2)), 1, _SRC_PLATFORM)

    # Merchants wrongly report honest look-alikes after a dispute; some get cleared.
    lookalike = np.isin(seg, [_BRACKET, _VICTIM, _PICKY, _HOUSEHOLD])
    reported = lookalike & (rng.random(n) < params.false_report_rate)
    negative = reviews.rating <= 2
    dispute_buyer = np.concatenate(
        [orders.buyer[refunds.row], orders.buyer[reviews.row[negative]], orders.buyer]
    )
    dispute_time = np.concatenate([refunds.requested, reviews.created[negative], orders.created])
    # Prefer a dispute (refund or bad review) over a plain order when the buyer has one.
    n_disputes = len(refunds.row) + int(negative.sum())
    has_dispute = np.zeros(n, dtype=bool)
    has_dispute[dispute_buyer[:n_disputes]] = True
    use = np.ones(len(dispute_buyer), dtype=bool)
    use[n_disputes:] = ~has_dispute[dispute_buyer[n_disputes:]]
    b, t = _pick_events(dispute_buyer[use], dispute_time[use], reported, 0.0, rng)
    reported_at = t + _uniform(rng, 1.0, 14.0, len(b))
    add(b, reported_at, 1, _SRC_MERCHANT)
    cleared = rng.random(len(b)) < 0.3
    cleared_at = reported_at[cleared] + _uniform(rng, lo, hi, int(cleared.sum()))
    add(b[cleared], cleared_at, 0, _SRC_MANUAL)

    # Confirmed-legitimate buyers from routine manual reviews.
    honest = ~np.isin(seg, [_ROC, _EXTORT, _WARD, _RING])
    confirmed = honest & (rng.random(n) < params.legit_label_rate)
    b, t = _pick_events(orders.buyer, orders.created, confirmed, 0.0, rng)
    add(b, t + _uniform(rng, lo, hi, len(b)), 0, _SRC_MANUAL)

    out = _Labels(
        buyer=np.concatenate([p.buyer for p in parts]),
        labeled=np.concatenate([p.labeled for p in parts]),
        label=np.concatenate([p.label for p in parts]),
        source=np.concatenate([p.source for p in parts]),
    )
    # A decision after the period end is not known yet.
    known = out.labeled < horizon
    return _Labels(out.buyer[known], out.labeled[known], out.label[known], out.source[known])


def _closed_at(
    buyers: _Buyers, labels: _Labels, share: float, rng: np.random.Generator
) -> FloatArray | None:
    """When each account is closed (+inf: never), or None when no account is.

    A share of the abusers with a ruling (a platform or manual label 1) lose their
    account at their first one.
    """
    if share <= 0.0:
        return None
    n = len(buyers.segment)
    ruling = (labels.label == 1) & (labels.source != _SRC_MERCHANT)
    ruling &= np.isfinite(buyers.abuse_start[labels.buyer])
    first = np.full(n, np.inf)
    np.minimum.at(first, labels.buyer[ruling], labels.labeled[ruling])
    return np.where(np.isfinite(first) & (rng.random(n) < share), first, np.inf)


def _cut_history_and_closures(
    orders: _Orders,
    refunds: _Refunds,
    reviews: _Reviews,
    labels: _Labels,
    history: float,
    closed: FloatArray | None,
) -> tuple[_Orders, _Refunds, _Reviews, _Labels]:
    """Leave out what the export does not hold.

    Orders before the export start (day ``history``) and everything tied to them, labels
    before it, and the orders (with their requests and reviews) and later labels of a
    closed account, from its closure on.
    """
    keep = orders.created >= history
    known = labels.labeled >= history
    if closed is not None:
        keep &= orders.created < closed[orders.buyer]
        known &= labels.labeled <= closed[labels.buyer]
    if not known.all():
        labels = _Labels(labels.buyer[known], labels.labeled[known], labels.label[known],
                         labels.source[known])  # fmt: skip
    if keep.all():
        return orders, refunds, reviews, labels
    new_row = np.cumsum(keep) - 1
    kept = dataclasses.replace(orders)
    for f in _field_names(_Orders):
        column = getattr(orders, f)
        if column is not None:
            setattr(kept, f, column[keep])
    rf = keep[refunds.row]
    refunds = _Refunds(**{f: getattr(refunds, f)[rf] for f in _field_names(_Refunds)})
    refunds.row = new_row[refunds.row]
    rv = keep[reviews.row]
    reviews = _Reviews(**{f: getattr(reviews, f)[rv] for f in _field_names(_Reviews)})
    reviews.row = new_row[reviews.row]
    return kept, refunds, reviews, labels


_EMPTY_IDX, _NULL_IDX = 0, 1  # fixed entries of every fragment store


class _Store:
    """Every text fragment, in one list: samples are indices, texts are joins of takes."""

    def __init__(self) -> None:
        self.items: list[str | None] = ["", None]

    def add(self, items: Sequence[str]) -> tuple[int, int]:
        offset = len(self.items)
        self.items.extend(items)
        return offset, len(items)

    def array(self) -> pa.Array:
        return pa.array(self.items, type=pa.string())


@dataclass
class _Lexicon:
    store: pa.Array
    clause_off: IntArray  # [language, group, polarity]
    clause_cnt: IntArray
    clause_first_off: IntArray  # first clause of an English text is capitalised
    spec_flat: IntArray
    spec_off: IntArray  # [language, category]
    spec_cnt: IntArray
    generic: IntArray  # group numbers of the generic aspects
    logistics_group: int
    opener_off: IntArray  # [language, polarity]
    opener_cnt: IntArray
    closing_off: IntArray
    closing_cnt: IntArray
    emoji_off: IntArray
    emoji_cnt: IntArray
    conj_same_off: IntArray  # [language]
    conj_same_cnt: IntArray
    conj_diff_off: IntArray
    conj_diff_cnt: IntArray
    sep_off: IntArray
    sep_cnt: IntArray
    end_off: IntArray
    end_cnt: IntArray
    threat_off: IntArray
    threat_cnt: IntArray
    system_default: int
    system_empty: int
    reason_off: IntArray  # [script (simplified, traditional), reason]
    reason_cnt: IntArray
    demand_off: IntArray  # [script]
    demand_cnt: IntArray


def _expand_amounts(templates: Sequence[str]) -> list[str]:
    """Fill in the amounts; fixed texts are repeated so every template is equally likely."""
    out: list[str] = []
    for text in templates:
        out.extend(text.format(n=a) for a in _AMOUNTS)
    return out


def _build_lexicon() -> _Lexicon:
    converter = opencc.OpenCC("s2t")

    def hant(items: Sequence[str]) -> list[str]:
        return [converter.convert(x) for x in items]

    store = _Store()
    groups = tuple(_ZH_GROUPS) + tuple(g for g in _EN_GROUPS if g not in _ZH_GROUPS)
    n_groups = len(groups)
    clause_off = np.zeros((3, n_groups, 3), dtype=np.int64)
    clause_cnt = np.zeros((3, n_groups, 3), dtype=np.int64)
    clause_first_off = np.zeros((3, n_groups, 3), dtype=np.int64)
    for gi, name in enumerate(groups):
        for pol in (_NEG, _NEU, _POS):
            if name in _ZH_GROUPS:
                names, *opinions = _ZH_GROUPS[name]
                zh = [f"{a}{h}{o}" for a in names for h in _ZH_HEDGES for o in opinions[pol]]
                for lang, items in ((_ZH, zh), (_ZH_HANT, hant(zh))):
                    off, cnt = store.add(items)
                    clause_off[lang, gi, pol] = clause_first_off[lang, gi, pol] = off
                    clause_cnt[lang, gi, pol] = cnt
            if name in _EN_GROUPS:
                names, *opinions = _EN_GROUPS[name]
                en = [f"{a}{h} {o}" for a in names for h in _EN_HEDGES for o in opinions[pol]]
                off, cnt = store.add(en)
                clause_off[_EN, gi, pol], clause_cnt[_EN, gi, pol] = off, cnt
                clause_first_off[_EN, gi, pol], _ = store.add([x[0].upper() + x[1:] for x in en])

    spec: list[int] = []
    spec_off = np.zeros((3, len(CATEGORIES)), dtype=np.int64)
    spec_cnt = np.zeros((3, len(CATEGORIES)), dtype=np.int64)
    for lang, table in ((_ZH, _ZH_CATEGORY_GROUPS), (_ZH_HANT, _ZH_CATEGORY_GROUPS),
                        (_EN, _EN_CATEGORY_GROUPS)):  # fmt: skip
        for c, names in enumerate(table):
            spec_off[lang, c], spec_cnt[lang, c] = len(spec), len(names)
            spec.extend(groups.index(g) for g in names)

    def per_lang_pol(
        zh: Sequence[Sequence[str]], en: Sequence[Sequence[str]]
    ) -> tuple[IntArray, IntArray]:
        off = np.zeros((3, 3), dtype=np.int64)
        cnt = np.zeros((3, 3), dtype=np.int64)
        for pol in (_NEG, _NEU, _POS):
            off[_ZH, pol], cnt[_ZH, pol] = store.add(zh[pol])
            off[_ZH_HANT, pol], cnt[_ZH_HANT, pol] = store.add(hant(zh[pol]))
            off[_EN, pol], cnt[_EN, pol] = store.add(en[pol])
        return off, cnt

    def per_lang(zh: Sequence[str], en: Sequence[str]) -> tuple[IntArray, IntArray]:
        off = np.zeros(3, dtype=np.int64)
        cnt = np.zeros(3, dtype=np.int64)
        off[_ZH], cnt[_ZH] = store.add(zh)
        off[_ZH_HANT], cnt[_ZH_HANT] = store.add(hant(zh))
        off[_EN], cnt[_EN] = store.add(en)
        return off, cnt

    opener_off, opener_cnt = per_lang_pol(_ZH_OPENERS, _EN_OPENERS)
    closing_off, closing_cnt = per_lang_pol(_ZH_CLOSINGS, _EN_CLOSINGS)
    emoji_en = tuple(tuple(" " + e for e in pol) for pol in _EMOJI)
    emoji_off = np.zeros((3, 3), dtype=np.int64)
    emoji_cnt = np.zeros((3, 3), dtype=np.int64)
    for pol in (_NEG, _NEU, _POS):
        emoji_off[_ZH, pol], emoji_cnt[_ZH, pol] = store.add(_EMOJI[pol])
        emoji_off[_ZH_HANT, pol], emoji_cnt[_ZH_HANT, pol] = (
            emoji_off[_ZH, pol],
            emoji_cnt[_ZH, pol],
        )
        emoji_off[_EN, pol], emoji_cnt[_EN, pol] = store.add(emoji_en[pol])
    conj_same_off, conj_same_cnt = per_lang(_ZH_CONJ_SAME, _EN_CONJ_SAME)
    conj_diff_off, conj_diff_cnt = per_lang(_ZH_CONJ_DIFF, _EN_CONJ_DIFF)
    sep_off, sep_cnt = per_lang(_ZH_SEP, _EN_SEP)
    end_off, end_cnt = per_lang(_ZH_END, _EN_END)
    threat_off, threat_cnt = per_lang(_expand_amounts(_ZH_THREATS), _expand_amounts(_EN_THREATS))
    system_default, _ = store.add([SYSTEM_DEFAULT_TEXT])
    system_empty, _ = store.add([SYSTEM_EMPTY_TEXT])

    reason_off = np.zeros((2, len(REFUND_REASONS)), dtype=np.int64)
    reason_cnt = np.zeros((2, len(REFUND_REASONS)), dtype=np.int64)
    for r, texts in enumerate(_ZH_REASON_TEXTS):
        reason_off[0, r], reason_cnt[0, r] = store.add(texts)
        reason_off[1, r], reason_cnt[1, r] = store.add(hant(texts))
    demand = _expand_amounts(_ZH_DEMAND_TEXTS)
    demand_off = np.zeros(2, dtype=np.int64)
    demand_cnt = np.zeros(2, dtype=np.int64)
    demand_off[0], demand_cnt[0] = store.add(demand)
    demand_off[1], demand_cnt[1] = store.add(hant(demand))

    return _Lexicon(
        store=store.array(),
        clause_off=clause_off,
        clause_cnt=clause_cnt,
        clause_first_off=clause_first_off,
        spec_flat=np.array(spec, dtype=np.int64),
        spec_off=spec_off,
        spec_cnt=spec_cnt,
        generic=np.array([groups.index(g) for g in _GENERIC_GROUPS], dtype=np.int64),
        logistics_group=groups.index("logistics"),
        opener_off=opener_off,
        opener_cnt=opener_cnt,
        closing_off=closing_off,
        closing_cnt=closing_cnt,
        emoji_off=emoji_off,
        emoji_cnt=emoji_cnt,
        conj_same_off=conj_same_off,
        conj_same_cnt=conj_same_cnt,
        conj_diff_off=conj_diff_off,
        conj_diff_cnt=conj_diff_cnt,
        sep_off=sep_off,
        sep_cnt=sep_cnt,
        end_off=end_off,
        end_cnt=end_cnt,
        threat_off=threat_off,
        threat_cnt=threat_cnt,
        system_default=system_default,
        system_empty=system_empty,
        reason_off=reason_off,
        reason_cnt=reason_cnt,
        demand_off=demand_off,
        demand_cnt=demand_cnt,
    )


_TEXT_CHUNK = 500_000  # reviews composed at once; bounds the memory of the fragment takes


def _review_texts(
    lex: _Lexicon,
    reviews: _Reviews,
    category: IntArray,
    params: SimulateParams,
    rng: np.random.Generator,
) -> pa.ChunkedArray:
    """Review texts, composed chunk by chunk (see :func:`_review_text_chunk`)."""
    k = len(reviews.row)
    chunks = [pa.array([], type=pa.string())]
    for lo in range(0, k, _TEXT_CHUNK):
        part = slice(lo, lo + _TEXT_CHUNK)
        sub = _Reviews(**{f: getattr(reviews, f)[part] for f in _field_names(_Reviews)})
        chunks.append(_review_text_chunk(lex, sub, category[part], params, rng))
    return pa.chunked_array(chunks, type=pa.string())


def _review_text_chunk(
    lex: _Lexicon,
    reviews: _Reviews,
    category: IntArray,
    params: SimulateParams,
    rng: np.random.Generator,
) -> pa.Array:
    """Compose review texts: [opener][clause][conj clause][conj clause][sep closing end][emoji]."""
    k = len(reviews.row)
    english = rng.random(k) < params.english_share
    lang = np.where(english, _EN, np.where(rng.random(k) < params.traditional_share, _ZH_HANT, _ZH))
    pol = reviews.polarity
    threat = reviews.kind == _RV_THREAT
    normal = (reviews.kind == _RV_NORMAL) | threat

    def pick(off: IntArray, cnt: IntArray) -> IntArray:
        return off + _pick(rng, cnt)

    def group(force: BoolArray) -> IntArray:
        spec_cnt = lex.spec_cnt[lang, category]
        spec = lex.spec_flat[
            np.minimum(lex.spec_off[lang, category] + _pick(rng, spec_cnt), len(lex.spec_flat) - 1)
        ]
        generic = lex.generic[_pick(rng, np.full(k, len(lex.generic)))]
        g = np.where((rng.random(k) < 0.55) & (spec_cnt > 0), spec, generic)
        return np.where(force, lex.logistics_group, g)

    def clause(g: IntArray, p: IntArray, first: bool) -> IntArray:
        off = (lex.clause_first_off if first else lex.clause_off)[lang, g, p]
        return pick(off, lex.clause_cnt[lang, g, p])

    empty = np.full(k, _EMPTY_IDX, dtype=np.int64)
    slots: list[IntArray] = []
    # English openers are never empty in the table; a bare English text starts with a
    # capitalised clause instead.
    bare = (lang == _EN) & (rng.random(k) < 0.5)
    opener = pick(lex.opener_off[lang, pol], lex.opener_cnt[lang, pol])
    slots.append(np.where(normal & ~bare, opener, empty))
    g1 = group(reviews.force_logistics)
    c1 = np.where(bare, clause(g1, pol, True), clause(g1, pol, False))
    first = np.select(
        [reviews.kind == _RV_DEFAULT, reviews.kind == _RV_EMPTY],
        [np.full(k, lex.system_default), np.full(k, lex.system_empty)],
        c1,
    )
    slots.append(first)
    for n_min in (2, 3):
        shift = rng.random(k) < 0.2
        other = np.where(pol == _NEU, np.where(rng.random(k) < 0.5, _POS, _NEG), _NEU)
        p = np.where(shift & ~threat, other, pol)
        conj = np.where(
            p == pol,
            pick(lex.conj_same_off[lang], lex.conj_same_cnt[lang]),
            pick(lex.conj_diff_off[lang], lex.conj_diff_cnt[lang]),
        )
        use = normal & (reviews.clauses >= n_min)
        slots.append(np.where(use, conj, empty))
        slots.append(np.where(use, clause(group(np.zeros(k, dtype=bool)), p, False), empty))
    closing = np.where(
        threat,
        pick(lex.threat_off[lang], lex.threat_cnt[lang]),
        pick(lex.closing_off[lang, pol], lex.closing_cnt[lang, pol]),
    )
    has_closing = normal & (threat | (rng.random(k) < 0.6))
    end = pick(lex.end_off[lang], lex.end_cnt[lang])
    sep = pick(lex.sep_off[lang], lex.sep_cnt[lang])
    slots.append(np.where(has_closing, sep, np.where(normal, end, empty)))
    slots.append(np.where(has_closing, closing, empty))
    slots.append(np.where(has_closing, end, empty))
    emoji = normal & (rng.random(k) < params.emoji_share)
    slots.append(np.where(emoji, pick(lex.emoji_off[lang, pol], lex.emoji_cnt[lang, pol]), empty))
    # Join a few slots at a time so that at most a handful of string arrays are alive.
    text = lex.store.take(pa.array(slots[0]))
    for i in range(1, len(slots), 3):
        parts = [lex.store.take(pa.array(s)) for s in slots[i : i + 3]]
        text = pc.binary_join_element_wise(text, *parts, "")
    return text


def _reason_texts(
    lex: _Lexicon, refunds: _Refunds, params: SimulateParams, rng: np.random.Generator
) -> pa.Array:
    k = len(refunds.row)
    script = (rng.random(k) < params.traditional_share).astype(np.int64)
    reason = refunds.reason
    idx = lex.reason_off[script, reason] + _pick(rng, lex.reason_cnt[script, reason])
    demand = lex.demand_off[script] + _pick(rng, lex.demand_cnt[script])
    idx = np.where(refunds.demand, demand, idx)
    idx = np.where(rng.random(k) < _REASON_TEXT_MISSING_SHARE, _NULL_IDX, idx)
    return lex.store.take(pa.array(idx))


_STR = pd.StringDtype("pyarrow", na_value=np.nan)


def _digits(count: int) -> int:
    return max(6, len(str(max(count - 1, 0))))


def _ids(prefix: str, numbers: IntArray, width: int) -> pd.api.extensions.ExtensionArray:
    """Fixed-width ids (prefix + zero-padded number) as a ``str`` array."""
    return _text(_arrow_ids(prefix, numbers, width))


def _arrow_ids(prefix: str, numbers: IntArray, width: int) -> pa.Array:
    """Fixed-width ids, written digit by digit into one byte buffer.

    Formatting tens of millions of ids through Python strings would dominate the run time;
    digits are computed in uint32 (several times faster than int64 division) into a
    column-major buffer whose transpose is the rows' bytes.
    """
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    size = len(head) + width
    columns = np.empty((size, len(numbers)), dtype=np.uint8)
    columns[: len(head)] = head[:, None]
    rest = numbers.astype(np.uint32)
    ten = np.uint32(10)
    for j in range(size - 1, len(head) - 1, -1):
        columns[j] = rest % ten
        rest //= ten
    columns[len(head) :] += 48
    data = np.ascontiguousarray(columns.T)
    offsets = np.arange(len(numbers) + 1, dtype=np.int32) * size
    return pa.Array.from_buffers(
        pa.string(), len(numbers), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def _time_order(secs: IntArray) -> IntArray:
    """Stable argsort of non-negative seconds, via one sort of unique composite keys.

    About twice as fast as ``np.argsort(kind="stable")`` on tens of millions of rows.
    """
    n = len(secs)
    keys = np.sort(secs * n + np.arange(n, dtype=np.int64))
    return keys % max(n, 1)


def _enum(values: Sequence[str], codes: IntArray) -> pd.api.extensions.ExtensionArray:
    return _text(pa.array(list(values), type=pa.string()).take(pa.array(codes)))


def _text(arr: pa.Array | pa.ChunkedArray) -> pd.api.extensions.ExtensionArray:
    return pd.array(arr, dtype=_STR)


def _end_seconds(horizon: float) -> int:
    """First second after the period: nothing exported happens at or after it."""
    return round(horizon * _SECONDS_PER_DAY)


def _seconds(t: FloatArray) -> IntArray:
    """Whole seconds since start; missing times become -1 (masked by the caller)."""
    return np.where(np.isfinite(t), np.floor(np.nan_to_num(t) * _SECONDS_PER_DAY), -1).astype(
        np.int64
    )


def _stamps(
    start: np.datetime64, secs: IntArray, missing: BoolArray | None
) -> npt.NDArray[np.datetime64]:
    out = start + secs.astype("timedelta64[s]")
    if missing is not None:
        out[missing] = np.datetime64("NaT")
    return out


@dataclass
class _ExportedOrders:
    """The order arrays that end up in the order frame."""

    buyer: IntArray
    seller: IntArray
    created: FloatArray
    amount: FloatArray
    category: IntArray
    shipped: FloatArray
    delivered: FloatArray
    device: IntArray
    address: IntArray
    payment: IntArray

    @classmethod
    def of(cls, orders: _Orders) -> _ExportedOrders:
        assert orders.shipped is not None and orders.delivered is not None
        assert orders.device is not None and orders.address is not None
        assert orders.payment is not None
        return cls(
            buyer=orders.buyer,
            seller=orders.seller,
            created=orders.created,
            amount=orders.amount,
            category=orders.category,
            shipped=orders.shipped,
            delivered=orders.delivered,
            device=orders.device,
            address=orders.address,
            payment=orders.payment,
        )


@dataclass
class _OrderKeys:
    """What the other frames need of the orders once the order frame is built."""

    rank: IntArray  # order number (position in time order) of each internal row
    width: int  # digits of the order ids
    created: IntArray  # seconds since start
    delivered: IntArray  # seconds since start; -1 if never delivered
    amount: FloatArray
    category: IntArray


def _orders_frame(
    orders: _ExportedOrders,
    buyer_number: IntArray,
    start: np.datetime64,
    horizon: float,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, _OrderKeys]:
    """The order frame, numbered in time order as platforms do; times past the end blank."""
    end = _end_seconds(horizon)
    created = _seconds(orders.created)
    o = _time_order(created)
    rank = np.empty(len(o), dtype=np.int64)
    rank[o] = np.arange(len(o))
    width = _digits(len(o))
    has_shipped = np.isfinite(orders.shipped)
    has_delivered = np.isfinite(orders.delivered)
    shipped = np.maximum(_seconds(orders.shipped), created)
    delivered = np.where(has_delivered, np.maximum(_seconds(orders.delivered), shipped), -1)

    columns: dict[str, object] = {
        "order_id": _ids("O", np.arange(len(o), dtype=np.int64), width),
        "buyer_id": _ids("B", buyer_number[orders.buyer[o]], _digits(len(buyer_number))),
    }
    # Pool numbers are shuffled so that an id reveals nothing about who holds it.
    pools = (
        ("seller_id", "S", orders.seller),
        ("device_id", "D", orders.device),
        ("address_id", "A", orders.address),
        ("payment_id", "P", orders.payment),
    )
    for name, prefix, pool in pools:
        size = int(pool.max(initial=0)) + 1
        columns[name] = _ids(prefix, rng.permutation(size)[pool[o]], _digits(size))
    frame = pd.DataFrame(
        {
            "order_id": columns["order_id"],
            "buyer_id": columns["buyer_id"],
            "seller_id": columns["seller_id"],
            "created_at": _stamps(start, created[o], None),
            "amount": orders.amount[o],
            "category": _enum(CATEGORIES, orders.category[o]),
            "shipped_at": _stamps(start, shipped[o], ~has_shipped[o] | (shipped[o] >= end)),
            "delivered_at": _stamps(start, delivered[o], ~has_delivered[o] | (delivered[o] >= end)),
            "device_id": columns["device_id"],
            "address_id": columns["address_id"],
            "payment_id": columns["payment_id"],
        },
        copy=False,
    )
    keys = _OrderKeys(
        rank=rank,
        width=width,
        created=created,
        delivered=delivered,
        amount=orders.amount,
        category=orders.category,
    )
    return frame, keys


def _refunds_frame(
    refunds: _Refunds,
    keys: _OrderKeys,
    lex: _Lexicon,
    params: SimulateParams,
    start: np.datetime64,
    horizon: float,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Requests after the period end have not happened yet; unresolved ones are pending."""
    end = _end_seconds(horizon)
    requested = np.maximum(_seconds(refunds.requested), keys.created[refunds.row])
    keep = np.flatnonzero(requested < end)
    keep = keep[_time_order(requested[keep])]
    rf = _Refunds(**{f: getattr(refunds, f)[keep] for f in _field_names(_Refunds)})
    requested = requested[keep]
    resolved = np.maximum(_seconds(rf.requested + rf.resolve_delay), requested + 1)
    pending = resolved >= end
    order_amount = keys.amount[rf.row]
    return pd.DataFrame(
        {
            "refund_id": _ids("RF", np.arange(len(keep), dtype=np.int64), _digits(len(keep))),
            "order_id": _ids("O", keys.rank[rf.row], keys.width),
            "requested_at": _stamps(start, requested, None),
            "amount": np.minimum(np.round(rf.fraction * order_amount, 2), order_amount),
            "type": _enum(REFUND_TYPES, rf.rtype),
            "reason": _enum(REFUND_REASONS, rf.reason),
            "status": _enum(REFUND_STATUSES, np.where(pending, _S_PENDING, rf.status)),
            "resolved_at": _stamps(start, resolved, pending),
            "instant": rf.instant & ~pending,
            "reason_text": _text(_reason_texts(lex, rf, params, rng)),
        },
        copy=False,
    )


def _reviews_frame(
    reviews: _Reviews,
    keys: _OrderKeys,
    lex: _Lexicon,
    params: SimulateParams,
    start: np.datetime64,
    horizon: float,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Reviews strictly after delivery (or after the order, if it never came), in period."""
    end = _end_seconds(horizon)
    delivered = keys.delivered[reviews.row]
    after = np.where(delivered >= 0, delivered, keys.created[reviews.row])
    posted = np.maximum(_seconds(reviews.created), after + 1)
    keep = np.flatnonzero(posted < end)
    keep = keep[_time_order(posted[keep])]
    rv = _Reviews(**{f: getattr(reviews, f)[keep] for f in _field_names(_Reviews)})
    return pd.DataFrame(
        {
            "review_id": _ids("RV", np.arange(len(keep), dtype=np.int64), _digits(len(keep))),
            "order_id": _ids("O", keys.rank[rv.row], keys.width),
            "created_at": _stamps(start, posted[keep], None),
            "rating": rv.rating,
            "text": _text(_review_texts(lex, rv, keys.category[rv.row], params, rng)),
        },
        copy=False,
    )


def _labels_frame(labels: _Labels, buyer_number: IntArray, start: np.datetime64) -> pd.DataFrame:
    secs = _seconds(labels.labeled)
    s = np.lexsort((buyer_number[labels.buyer], secs))
    return pd.DataFrame(
        {
            "buyer_id": _ids("B", buyer_number[labels.buyer[s]], _digits(len(buyer_number))),
            "label": labels.label[s],
            "labeled_at": _stamps(start, secs[s], None),
            "source": _enum(LABEL_SOURCES, labels.source[s]),
        },
        copy=False,
    )


def _buyer_frames(
    buyers: _Buyers, buyer_number: IntArray, start: np.datetime64
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The buyers table and the hidden truth, both in buyer id order."""
    n = len(buyer_number)
    by_id = np.empty(n, dtype=np.int64)
    by_id[buyer_number] = np.arange(n)
    ids = _arrow_ids("B", buyer_number[by_id], _digits(n))
    registered = np.floor(buyers.registered * _SECONDS_PER_DAY).astype(np.int64)
    buyers_df = pd.DataFrame(
        {"buyer_id": _text(ids), "registered_at": _stamps(start, registered[by_id], None)},
        copy=False,
    )
    group_store = pa.concat_arrays(
        [
            pa.array([None], type=pa.string()),
            _arrow_ids("H", np.arange(buyers.n_households, dtype=np.int64), 6),
            _arrow_ids("G", np.arange(len(buyers.ring_size), dtype=np.int64), 6),
            _arrow_ids("F", np.arange(buyers.n_offices, dtype=np.int64), 6),
        ]
    )
    group = np.zeros(n, dtype=np.int64)
    hh = buyers.household >= 0
    group[hh] = 1 + buyers.household[hh]
    rg = buyers.ring >= 0
    group[rg] = 1 + buyers.n_households + buyers.ring[rg]
    of = buyers.office >= 0
    group[of] = 1 + buyers.n_households + len(buyers.ring_size) + buyers.office[of]
    abuse_start = buyers.abuse_start[by_id]
    is_abuser = np.isfinite(abuse_start)
    truth_df = pd.DataFrame(
        {
            "buyer_id": _text(ids),
            "segment": _enum(SEGMENTS, buyers.segment[by_id]),
            "is_abuser": is_abuser,
            "group_id": _text(group_store.take(pa.array(group[by_id]))),
            "abuse_start": _stamps(
                start, _seconds(np.where(is_abuser, abuse_start, 0.0)), ~is_abuser
            ),
        },
        copy=False,
    )
    return buyers_df, truth_df


def export_as_of(world: World, as_of: pd.Timestamp) -> World:
    """The world as an export taken at ``as_of`` would show it.

    Only what had happened before ``as_of`` is kept: orders created, requests made,
    reviews posted, label decisions taken and accounts registered before it. Shipping
    and delivery times at or after it are blank, and a request resolved at or after it
    reads pending (no resolution time, not instant). The truth is kept whole: it is the
    hidden answer, not part of the export.

    Args:
        world: A simulated world (naive local times).
        as_of: When the export is taken, a naive local time like the world's.

    Returns:
        A new world; ``world`` is left unchanged.

    Raises:
        ConfigError: ``as_of`` carries a time zone or is not a time.
    """
    try:
        cut = pd.Timestamp(as_of)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"export_as_of: as_of must be a date or time, got {as_of!r}") from exc
    if cut is pd.NaT or cut.tzinfo is not None:
        raise ConfigError(
            f"export_as_of: as_of must be a naive local time like the tables, got {as_of!r}"
        )

    def before(frame: pd.DataFrame, column: str) -> pd.DataFrame:
        return frame.loc[(frame[column] < cut).to_numpy()].reset_index(drop=True)

    orders = before(world.orders, "created_at")
    orders = orders.assign(
        shipped_at=orders["shipped_at"].where(orders["shipped_at"] < cut),
        delivered_at=orders["delivered_at"].where(orders["delivered_at"] < cut),
    )
    refunds = before(world.refunds, "requested_at")
    open_at_cut = (refunds["resolved_at"] >= cut).to_numpy()
    refunds = refunds.assign(
        status=refunds["status"].mask(open_at_cut, REFUND_STATUSES[_S_PENDING]),
        resolved_at=refunds["resolved_at"].mask(open_at_cut),
        instant=refunds["instant"] & ~open_at_cut,
    )
    return World(
        orders=orders,
        refunds=refunds,
        reviews=before(world.reviews, "created_at"),
        labels=before(world.labels, "labeled_at"),
        buyers=before(world.buyers, "registered_at"),
        truth=world.truth.copy(),
    )


def write_world(world: World, out_dir: Path, file_format: str) -> None:
    """Write the contract tables in the chosen format and the truth file as Parquet.

    Args:
        world: The simulated marketplace.
        out_dir: Destination folder.
        file_format: "parquet" or "csv".
    """
    for name in TABLE_NAMES:
        for stale in (out_dir / f"{name}.csv", out_dir / f"{name}.parquet"):
            # A table left in the other format would make the folder ambiguous.
            if stale.suffix != f".{file_format}" and stale.exists():
                stale.unlink()
        write_table(getattr(world, name), out_dir / f"{name}.{file_format}")
    write_table(world.truth, out_dir / TRUTH_FILE_NAME)
