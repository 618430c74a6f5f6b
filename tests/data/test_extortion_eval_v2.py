"""Shape checks for the second, independently written extortion evaluation set.

tests/data/extortion_eval_v2.csv was written by an author who read neither the detector,
its lexicon, the simulator nor the first set (see extortion_eval_v2.md). Only its
structure is checked here; benchmarks/bench_extortion.py measures the detector on it.
"""

import csv
import io
from collections import Counter
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "extortion_eval_v2.csv"
KINDS = {
    "demand": {"money_or_goods", "rating_for_money", "escalation", "more_reviews", "conditional"},
    "complaint": {"quality", "logistics", "service", "mismatch", "mixed", "hard_negative"},
}
LANGS = {"zh", "zh_hant", "en"}


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    raw = DATA.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf"), "no BOM"
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8"), newline="")))


def test_columns_ids_and_texts_are_unique(rows: list[dict[str, str]]) -> None:
    assert list(rows[0]) == ["id", "label", "kind", "lang", "text"]
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["text"] for r in rows}) == len(rows)


def test_values_and_lengths(rows: list[dict[str, str]]) -> None:
    for r in rows:
        assert r["label"] in KINDS and r["kind"] in KINDS[r["label"]], r
        assert r["lang"] in LANGS, r
        assert 5 <= len(r["text"]) <= 200, r


def test_both_labels_and_every_kind_are_well_represented(rows: list[dict[str, str]]) -> None:
    labels = Counter(r["label"] for r in rows)
    assert labels["demand"] >= 200 and labels["complaint"] >= 200
    kinds = Counter((r["label"], r["kind"]) for r in rows)
    for label, names in KINDS.items():
        for kind in names:
            assert kinds[(label, kind)] >= (50 if kind == "hard_negative" else 25), (label, kind)
    langs = Counter(r["lang"] for r in rows)
    assert all(langs[lang] >= 50 for lang in LANGS), langs
