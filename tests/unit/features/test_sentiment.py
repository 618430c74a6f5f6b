"""Review sentiment model: normalisation, hashing, estimator contract, storage.

Accuracy on the real review corpora is in tests/data/test_review_corpora.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import opencc
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from refundguard.errors import ModelError
from refundguard.features import sentiment
from refundguard.features.sentiment import ReviewSentiment, normalize_text

POSITIVE = ["好吃", "很快", "满意", "不错", "推荐", "新鲜", "热情", "干净"]
NEGATIVE = ["难吃", "太慢", "失望", "差评", "退款", "变质", "冷淡", "脏乱"]


def toy_reviews(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Short reviews of two or three phrases whose majority decides the label."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        label = int(rng.integers(2))
        own, other = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
        words = list(rng.choice(own, size=2)) + list(rng.choice(other, size=int(rng.integers(2))))
        rng.shuffle(words)
        texts.append("，".join(words) + "！")
        labels.append(label)
    return texts, np.asarray(labels)


@pytest.fixture(scope="module")
def toy_model() -> ReviewSentiment:
    texts, labels = toy_reviews(300)
    return ReviewSentiment(hash_bits=16).fit(texts, labels)


# --------------------------------------------------------------------------- normalising


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("這家餐廳的服務態度很好", "这家餐厅的服务态度很好", id="traditional"),
        pytest.param("頭髮", "头发", id="traditional-phrase"),
        pytest.param("ＡＢＣ１２３", "abc123", id="full-width-letters-digits"),
        pytest.param("好吃！！，？", "好吃!!,?", id="full-width-punctuation"),
        pytest.param("Very GOOD Food", "very good food", id="english-case"),
        pytest.param("好\x00吃\x07了\x1b", "好吃了", id="control-chars-deleted"),
        pytest.param("好吃\n\n下次\t再来\r\n", "好吃 下次 再来", id="line-breaks-become-spaces"),
        pytest.param("\ufeff好\u200b吃", "好吃", id="format-chars-deleted"),
        pytest.param("  很　 好  ", "很 好", id="whitespace-collapsed-and-trimmed"),
        pytest.param("等了……", "等了......", id="ellipsis-expands"),
        pytest.param("e\u0301", "\u00e9", id="combining-mark-composed"),
        pytest.param("a\ud800b", "ab", id="lone-surrogate-deleted"),
        pytest.param("", "", id="empty"),
        pytest.param(None, "", id="none"),
        pytest.param(float("nan"), "", id="nan"),
        pytest.param(pd.NA, "", id="pandas-na"),
        pytest.param(42, "42", id="number"),
    ],
)
def test_normalize_text(raw: object, expected: str) -> None:
    assert normalize_text([raw]) == [expected]


def test_normalize_text_cuts_after_normalising() -> None:
    assert normalize_text(["一二三四五六"], max_chars=3) == ["一二三"]
    assert normalize_text(["…" * 4], max_chars=5) == ["....."]
    # Deleted characters do not count towards the length...
    assert normalize_text(["\x00" * 6 + "好吃"], max_chars=2) == ["好吃"]
    # ...but raw text past 4 * max_chars is never looked at.
    assert normalize_text(["\x00" * 8 + "好吃"], max_chars=2) == [""]


def test_normalize_text_keeps_one_output_per_review_in_order() -> None:
    raw = ["第一\n行", None, "", "  ", "最後", "a\u2028b"]
    assert normalize_text(raw) == ["第一 行", "", "", "", "最后", "a b"]
    assert normalize_text(pd.Series(raw, dtype=object)) == normalize_text(raw)
    assert normalize_text([]) == []


def test_normalize_text_is_thread_safe() -> None:
    # Characters no other test uses, so that the threads fill the lazy table together.
    texts = ["".join(chr(0x0400 + (i * 7 + j) % 256) for j in range(40)) for i in range(400)]
    expected = [t.lower() for t in texts]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda chunk: normalize_text(chunk), [texts] * 8))
    assert all(r == expected for r in results)


def test_normalize_text_rejects_a_single_string() -> None:
    with pytest.raises(TypeError, match="not one string"):
        normalize_text("好吃")
    with pytest.raises(ValueError, match="max_chars"):
        normalize_text(["好吃"], max_chars=0)


T2S = opencc.OpenCC("t2s")
ALPHABET = st.sampled_from(
    list("好吃很慢這個頭髮服務態度差ABCxyz019ＡＢＣ１２，。！？ 　\t\n\x00\x7f…①")
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet=ALPHABET, max_size=30), max_size=8))
def test_normalize_text_matches_string_level_reference(texts: list[str]) -> None:
    def reference(text: str) -> str:
        text = unicodedata.normalize("NFKC", text).lower()
        text = re.sub(r"[\x00-\x08\x0e-\x1b\x7f]", "", text)
        text = " ".join(text.split())[:20]
        return str(T2S.convert(text))

    assert normalize_text(texts, max_chars=20) == [reference(t) for t in texts]


# --------------------------------------------------------------------------- hashing


def test_hash_buckets_are_pinned() -> None:
    # Saved models depend on these buckets: a change here breaks every model in use.
    batch = sentiment._normalise_batch(["好吃", "ab"], 500)
    none = 1 << 20
    unigrams, bigrams = (
        next(sentiment._iter_buckets(batch.codes, range(k, k + 1), 20)).tolist() for k in (1, 2)
    )
    assert unigrams == [524117, 16971, none, 952617, 552096, none]
    assert bigrams == [697037, none, none, 684281, none, none]


def test_scores_do_not_depend_on_batching(
    toy_model: ReviewSentiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts, _ = toy_reviews(50, seed=1)
    texts += ["", None, "很好" * 400]
    whole = toy_model.decision_function(texts)
    monkeypatch.setattr(sentiment, "_BLOCK_DOCS", 3)
    np.testing.assert_allclose(toy_model.decision_function(texts), whole, rtol=0, atol=1e-12)
    one_by_one = np.concatenate([toy_model.decision_function([t]) for t in texts])
    np.testing.assert_allclose(one_by_one, whole, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- estimator


def test_estimator_contract() -> None:
    model = ReviewSentiment(ngram_max=4, C=2.0)
    params = model.get_params()
    assert params["ngram_max"] == 4 and params["C"] == 2.0
    assert set(params) >= {"ngram_min", "ngram_max", "hash_bits", "C", "max_iter", "max_chars",
                           "random_state"}
    twin = clone(model)
    assert twin.get_params() == params and twin is not model
    assert not [k for k in vars(model) if k.endswith("_")]
    for method in (model.predict, model.predict_proba, model.decision_function):
        with pytest.raises(NotFittedError):
            method(["好吃"])

    texts, labels = toy_reviews(200)
    model.fit(texts, labels)
    fitted = {k for k in vars(model) if not k.startswith("_")} - set(params)
    assert fitted == {"classes_", "coef_", "intercept_"}
    assert model.coef_.shape == (1, 1 << model.hash_bits)
    assert clone(model).get_params() == params
    assert not hasattr(clone(model), "coef_")


def test_predictions_use_the_given_labels(toy_model: ReviewSentiment) -> None:
    texts, labels = toy_reviews(200)
    names = np.where(labels == 1, "pos", "neg")
    model = ReviewSentiment(hash_bits=16).fit(texts, names)
    assert model.classes_.tolist() == ["neg", "pos"]
    assert set(model.predict(["好吃，很快！", "难吃，太慢！"])) <= {"neg", "pos"}
    assert model.predict(["好吃，很快，推荐！", "难吃，太慢，差评！"]).tolist() == ["pos", "neg"]

    proba = toy_model.predict_proba(["好吃", None, float("nan"), ""])
    assert proba.shape == (4, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # A review without text gets the intercept alone.
    assert proba[1, 1] == proba[2, 1] == proba[3, 1]
    assert toy_model.predict_proba([]).shape == (0, 2)
    assert (toy_model.predict(texts) == labels).mean() > 0.95


def test_fit_rejects_unusable_input() -> None:
    with pytest.raises(ValueError, match="two classes"):
        ReviewSentiment().fit(["好吃", "不错"], [1, 1])
    with pytest.raises(ValueError, match="labels"):
        ReviewSentiment().fit(["好吃", "不错"], [1, 0, 1])
    with pytest.raises(ValueError, match="no training review"):
        ReviewSentiment().fit(["", None], [1, 0])
    with pytest.raises(ValueError, match="ngram_min"):
        ReviewSentiment(ngram_min=3, ngram_max=2).fit(["好吃", "难吃"], [1, 0])
    with pytest.raises(ValueError, match="hash_bits"):
        ReviewSentiment(hash_bits=40).fit(["好吃", "难吃"], [1, 0])


def test_fit_is_deterministic_across_processes(toy_model: ReviewSentiment) -> None:
    texts, labels = toy_reviews(300)
    again = ReviewSentiment(hash_bits=16).fit(texts, labels)
    assert again.coef_.tobytes() == toy_model.coef_.tobytes()
    assert again.intercept_.tobytes() == toy_model.intercept_.tobytes()

    probe = toy_reviews(20, seed=5)[0]
    code = (
        "import json, sys\n"
        "from refundguard.features.sentiment import ReviewSentiment\n"
        "texts, labels, probe = json.load(sys.stdin)\n"
        "model = ReviewSentiment(hash_bits=16).fit(texts, labels)\n"
        "print(model.decision_function(probe).tobytes().hex())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    payload = json.dumps([texts, labels.tolist(), probe])
    proc = subprocess.run([sys.executable, "-c", code], input=payload, env=env,
                          capture_output=True, text=True, check=True)
    expected = toy_model.decision_function(probe)
    assert proc.stdout.strip() == expected.tobytes().hex()


# --------------------------------------------------------------------------- storage


def test_save_load_round_trip(toy_model: ReviewSentiment, tmp_path: Path) -> None:
    texts = [*toy_reviews(100, seed=2)[0], "", None, "頭髮很好ＡＢＣ"]
    folder = toy_model.save(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "weights.npz"]
    loaded = ReviewSentiment.load(folder)
    assert loaded.get_params() == toy_model.get_params()
    assert loaded.classes_.tolist() == toy_model.classes_.tolist()
    assert np.array_equal(loaded.predict_proba(texts), toy_model.predict_proba(texts))

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["format"] == sentiment.FORMAT_ID
    assert config["version"] == sentiment.FORMAT_VERSION
    with np.load(folder / "weights.npz", allow_pickle=False) as weights:
        assert sorted(weights.files) == ["index", "intercept", "weight"]


def test_save_before_fit_raises(tmp_path: Path) -> None:
    with pytest.raises(NotFittedError):
        ReviewSentiment().save(tmp_path)


def _edit_config(folder: Path, **changes: object) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(changes)
    path.write_text(json.dumps(config), encoding="utf-8")


def _rewrite_weights(folder: Path, **arrays: object) -> None:
    with np.load(folder / "weights.npz", allow_pickle=False) as old:
        content = {name: old[name] for name in old.files}
    content.update(arrays)
    content = {k: v for k, v in content.items() if v is not None}
    np.savez(folder / "weights.npz", **content)


CORRUPTIONS = {
    "no-folder": (shutil.rmtree, "not found"),
    "no-weights": (lambda f: (f / "weights.npz").unlink(), "weights not found"),
    "no-config": (lambda f: (f / "config.json").unlink(), "config not found"),
    "config-not-json": (lambda f: (f / "config.json").write_text("{oops"), "unreadable"),
    "config-not-object": (lambda f: (f / "config.json").write_text("[1]"), "JSON object"),
    "other-format": (lambda f: _edit_config(f, format="something.else"), "not a sentiment"),
    "newer-version": (lambda f: _edit_config(f, version=99), "version 99"),
    "unknown-param": (lambda f: _edit_config(f, params={"colour": 1}), "invalid parameters"),
    "bad-param": (lambda f: _edit_config(f, params={"hash_bits": 99}), "invalid parameters"),
    "three-classes": (lambda f: _edit_config(f, classes=[0, 1, 2]), "two labels"),
    "bucket-count": (lambda f: _edit_config(f, n_buckets=7), "n_buckets"),
    "weights-garbage": (lambda f: (f / "weights.npz").write_bytes(b"not a zip"), "unreadable"),
    "weights-truncated": (
        lambda f: (f / "weights.npz").write_bytes((f / "weights.npz").read_bytes()[:100]),
        "unreadable",
    ),
    "weights-missing-array": (lambda f: _rewrite_weights(f, intercept=None), "lacks array"),
    "weights-pickled": (
        lambda f: _rewrite_weights(f, weight=np.array([{"x": 1}], dtype=object)),
        "unreadable",
    ),
    "index-out-of-range": (
        lambda f: _rewrite_weights(f, index=np.array([1 << 30]), weight=np.array([1.0])),
        "out of range",
    ),
    "nan-weight": (
        lambda f: _rewrite_weights(f, index=np.array([3]), weight=np.array([np.nan])),
        "NaN",
    ),
    "shape-mismatch": (lambda f: _rewrite_weights(f, weight=np.zeros(2)), "shapes"),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_load_rejects_broken_model(
    corruption: str, toy_model: ReviewSentiment, tmp_path: Path
) -> None:
    folder = toy_model.save(tmp_path / "model")
    damage, message = CORRUPTIONS[corruption]
    damage(folder)
    with pytest.raises(ModelError, match=message):
        ReviewSentiment.load(folder)
