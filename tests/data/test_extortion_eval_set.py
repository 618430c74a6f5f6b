"""Shape checks for the hand-written extortion evaluation set (tests/data/extortion_eval.csv).

Only the file's structure is checked here; the detector's accuracy on it is measured elsewhere.
"""

import csv
import io
from collections import Counter
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "extortion_eval.csv"

COLUMNS = ["id", "label", "kind", "lang", "text"]
KINDS = {
    "demand": {"money_or_goods", "rating_for_money", "escalation", "more_reviews", "conditional"},
    "complaint": {"quality", "logistics", "service", "mismatch", "mixed", "hard_negative"},
}
LANGS = {"zh", "zh_hant", "en"}
# Minimum rows per (label, kind), from issue 14. Complaint kinds other than hard_negative have
# no stated minimum; 25 keeps each large enough to report a per-kind rate.
MIN_PER_KIND = {
    ("demand", "money_or_goods"): 35,
    ("demand", "rating_for_money"): 35,
    ("demand", "escalation"): 35,
    ("demand", "more_reviews"): 35,
    ("demand", "conditional"): 40,
    ("complaint", "quality"): 25,
    ("complaint", "logistics"): 25,
    ("complaint", "service"): 25,
    ("complaint", "mismatch"): 25,
    ("complaint", "mixed"): 25,
    ("complaint", "hard_negative"): 60,
}
# Target language mix is about 70/15/15; allow five points either way.
LANG_SHARE = {"zh": 0.70, "zh_hant": 0.15, "en": 0.15}
LANG_TOLERANCE = 0.05
# Characters whose simplified and traditional forms differ, common in shopping reviews. A row
# tagged with one script that contains the other script's form is mislabelled.
SIMPLIFIED = (
    "这们说会给买赔评处过还来个东货没对时么应运红补偿价钱让当关实单账号坏负诉题为发质问样经请读"
)
TRADITIONAL = (
    "這們說會給買賠評處過還來個東貨沒對時麼應運紅補償價錢讓當關實單帳號壞負訴題為發質問樣經請讀"
)


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


@pytest.fixture(scope="module")
def raw() -> bytes:
    return DATA.read_bytes()


@pytest.fixture(scope="module")
def rows(raw: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8"), newline="")))


def test_utf8_without_bom(raw: bytes) -> None:
    assert not raw.startswith(b"\xef\xbb\xbf")
    raw.decode("utf-8")  # strict: raises on any invalid byte


def test_header_is_exact(raw: bytes) -> None:
    header = next(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    assert header == COLUMNS


def test_every_row_has_all_fields(rows: list[dict[str, str]]) -> None:
    for row in rows:
        # DictReader puts surplus fields under None and fills missing ones with None.
        assert None not in row, row
        assert all(row[col] is not None for col in COLUMNS), row


def test_labels_kinds_and_langs_are_allowed(rows: list[dict[str, str]]) -> None:
    for row in rows:
        assert row["label"] in KINDS, row
        assert row["kind"] in KINDS[row["label"]], row
        assert row["lang"] in LANGS, row


def test_ids_are_unique(rows: list[dict[str, str]]) -> None:
    ids = [row["id"] for row in rows]
    assert all(ids)
    assert len(set(ids)) == len(ids)


def test_texts_are_non_empty_trimmed_and_sized(rows: list[dict[str, str]]) -> None:
    for row in rows:
        text = row["text"]
        assert text == text.strip(), row
        assert 5 <= len(text) <= 200, row
        assert "\n" not in text and "\r" not in text, row


def test_no_duplicate_texts(rows: list[dict[str, str]]) -> None:
    # Case-folded and space-free, so a copy with different spacing or case also counts.
    keys = Counter("".join(row["text"].casefold().split()) for row in rows)
    assert [k for k, n in keys.items() if n > 1] == []


def test_counts_per_label(rows: list[dict[str, str]]) -> None:
    labels = Counter(row["label"] for row in rows)
    assert labels["demand"] >= 220
    assert labels["complaint"] >= 220


def test_counts_per_kind(rows: list[dict[str, str]]) -> None:
    kinds = Counter((row["label"], row["kind"]) for row in rows)
    short = {k: (kinds[k], n) for k, n in MIN_PER_KIND.items() if kinds[k] < n}
    assert short == {}


def test_language_mix(rows: list[dict[str, str]]) -> None:
    langs = Counter(row["lang"] for row in rows)
    for lang, share in LANG_SHARE.items():
        assert abs(langs[lang] / len(rows) - share) <= LANG_TOLERANCE, (lang, langs)


def test_every_kind_has_every_language(rows: list[dict[str, str]]) -> None:
    present = {(row["label"], row["kind"], row["lang"]) for row in rows}
    missing = [
        (label, kind, lang)
        for label, kinds in KINDS.items()
        for kind in kinds
        for lang in LANGS
        if (label, kind, lang) not in present
    ]
    assert missing == []


def test_lang_tag_matches_script(rows: list[dict[str, str]]) -> None:
    simplified, traditional = set(SIMPLIFIED), set(TRADITIONAL)
    # Characters identical in both scripts are in both strings; they prove nothing.
    only_simplified, only_traditional = simplified - traditional, traditional - simplified
    for row in rows:
        chars = set(row["text"])
        if row["lang"] == "en":
            assert not _has_cjk(row["text"]), row
        elif row["lang"] == "zh":
            assert _has_cjk(row["text"]), row
            assert not chars & only_traditional, row
        else:
            assert chars & only_traditional, row
            assert not chars & only_simplified, row
