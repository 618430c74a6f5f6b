"""Review text sentiment: a linear model over hashed character n-grams.

Chinese reviews are scored without word segmentation: every review is normalised
(traditional to simplified script, NFKC, lower case, no control characters, whitespace
collapsed, cut to ``max_chars``), cut into character n-grams, and each n-gram is hashed
into one of ``2**hash_bits`` buckets. The classifier is a naive-Bayes-scaled logistic
regression (NB-LR, Wang & Manning 2012) over bucket counts divided by the square root of
the review's n-gram count. The naive-Bayes scaling folds into the weights, so a fitted
model is one weight per bucket plus an intercept, and scoring is a gather and a sum.

Everything runs on whole batches at once: the batch is joined into one string for
OpenCC (one call instead of one per review), and normalisation, hashing and scoring are
numpy operations over the batch's code points. The hash is a fixed polynomial and
multiplicative hash over code points, so buckets are the same in every process and on
every platform (never Python's salted ``hash()``).

A model folder holds ``weights.npz`` (numpy, no pickle) and ``config.json``; see
:meth:`ReviewSentiment.save` and :meth:`ReviewSentiment.load`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted

from refundguard import progress
from refundguard.contract.vocabulary import SYSTEM_REVIEW_TEXTS
from refundguard.errors import ModelError

__all__ = [
    "FORMAT_ID",
    "FORMAT_VERSION",
    "ReviewSentiment",
    "normalize_text",
]


log = logging.getLogger(__name__)


FORMAT_ID = "refundguard.sentiment.hashed-char-ngram-nblr"


FORMAT_VERSION = 1


WEIGHTS_FILE = "weights.npz"


CONFIG_FILE = "config.json"


_SEP = 0x0A


_N_CODEPOINTS = 0x110000


# Normalising rarely lengthens text by more than this factor before it is cut again,
# so raw text beyond it is dropped early to bound the work on very long reviews.
_RAW_FACTOR = 4


# Reviews scored per block: few enough that a block's arrays stay in the CPU cache.
_BLOCK_DOCS = 2048


# Controls that stand for a break between words: they become a space, not nothing.
_SPACE_CONTROLS = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\u2028\u2029")


# Characters that compose with the character before them under NFKC although their
# combining class is 0 (some Indic vowel signs, Hangul vowel and final jamo). A review
# holding one of them, or a combining mark, at the start of a character's decomposition
# is NFKC-normalised as a whole string: a per-character table cannot compose across
# characters.
_COMPOSING_STARTERS = frozenset(
    (
        *(0x09BE, 0x09D7, 0x0B3E, 0x0B56, 0x0B57, 0x0BBE, 0x0BD7, 0x0CC2, 0x0CD5, 0x0CD6),
        *(0x0D3E, 0x0D57, 0x0DCF, 0x0DDF, 0x0FB5, 0x0FB7, 0x102E, 0x1B35, 0x11127),
        *(0x1133E, 0x11357, 0x114B0, 0x114BA, 0x114BD, 0x115AF, 0x11930),
        *range(0x1161, 0x1176),  # Hangul vowel jamo
        *range(0x11A8, 0x11C3),  # Hangul final consonant jamo
    )
)


# Hash constants: any fixed odd 64-bit numbers would do; these are well-known mixers.
_POLY = np.uint64(0x100000001B3)


_MULT = np.uint64(0x9E3779B97F4A7C15)


_SALT = 0xC2B2AE3D27D4EB4F


def _salt(order: int) -> np.uint64:
    """Per-order offset, so that a bigram and a trigram never share a hash by design."""
    return np.uint64((order * _SALT) % (1 << 64))


# Bits of _CharTable.flags.
_RESHAPES = 1  # the character is deleted or becomes several characters


_WHOLE_STRING = 2  # NFKC must see the character with its neighbours


_UNKNOWN = 4  # not looked up yet


class _CharTable:
    """Per-code-point replacement table, filled lazily for the code points seen.

    Filling all 1.1 million code points up front would take about a second; a batch of
    reviews uses a few thousand distinct ones. The newline is reserved as the separator
    between reviews (raw newlines are turned into spaces first) and maps to itself.
    """

    def __init__(self) -> None:
        self.flags = np.full(_N_CODEPOINTS, _UNKNOWN, dtype=np.uint8)
        self.flags[_SEP] = 0
        self.length = np.ones(_N_CODEPOINTS, dtype=np.uint8)
        self.single = np.arange(_N_CODEPOINTS, dtype=np.uint32)
        self.offset = np.zeros(_N_CODEPOINTS, dtype=np.int64)
        self.expansions = np.zeros(0, dtype=np.uint32)
        self._lock = threading.Lock()

    def learn(self, codes: npt.NDArray[np.uint32]) -> None:
        """Fill the table for the code points in ``codes`` not seen before."""
        with self._lock:
            new = np.unique(codes)
            new = new[(self.flags[new] & _UNKNOWN) != 0]
            extra: list[int] = []
            base = self.expansions.size
            flags = np.zeros(new.size, dtype=np.uint8)
            for i, cp in enumerate(new.tolist()):
                ch = chr(cp)
                out = _normalise_char(ch)
                head = unicodedata.normalize("NFKD", ch)[:1]
                if head and (unicodedata.combining(head) or ord(head) in _COMPOSING_STARTERS):
                    flags[i] |= _WHOLE_STRING
                self.length[cp] = len(out)
                if len(out) == 1:
                    self.single[cp] = ord(out)
                else:
                    flags[i] |= _RESHAPES
                    self.offset[cp] = base + len(extra)
                    extra.extend(map(ord, out))
            if extra:
                self.expansions = np.concatenate(
                    [self.expansions, np.asarray(extra, dtype=np.uint32)]
                )
            # Published last, so a concurrent reader never sees a half-filled entry.
            self.flags[new] = flags


def _normalise_char(ch: str) -> str:
    """Normalised replacement of one character: NFKC, lower case, controls removed."""
    if ch in _SPACE_CONTROLS:
        return " "
    if unicodedata.category(ch) in ("Cc", "Cf", "Cs"):
        return ""
    parts = []
    for o in unicodedata.normalize("NFKC", ch).lower():
        if o.isspace():
            parts.append(" ")
        elif unicodedata.category(o) not in ("Cc", "Cf", "Cs"):
            parts.append(o)
    return "".join(parts)


_TABLE: _CharTable | None = None


_TABLE_LOCK = threading.Lock()


def _char_table() -> _CharTable:
    global _TABLE
    if _TABLE is None:
        with _TABLE_LOCK:
            if _TABLE is None:
                _TABLE = _CharTable()
    return _TABLE


@lru_cache(maxsize=4)
def _converter(config: str) -> Any:
    """OpenCC converter, built once: loading its dictionaries takes milliseconds."""
    import opencc

    errors = []
    # Releases differ on whether the config is named with or without ".json".
    for name in (config, f"{config}.json"):
        try:
            return opencc.OpenCC(name)
        except Exception as exc:  # the binding raises bare RuntimeErrors
            errors.append(f"{name}: {exc}")
    raise RuntimeError("OpenCC cannot load config " + "; ".join(errors))


def _as_text(value: object) -> str:
    """A review cell as text: missing values (None, NaN, pandas NA/NaT) become ""."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else str(value)
    if type(value).__name__ in ("NAType", "NaTType"):
        return ""
    return str(value)


def _as_list(texts: Iterable[object]) -> list[object]:
    if isinstance(texts, str | bytes):
        raise TypeError("texts must be a sequence of reviews, not one string")
    if isinstance(texts, np.ndarray) and texts.ndim != 1:
        raise ValueError(f"texts must be one-dimensional, got shape {texts.shape}")
    return list(texts)


@dataclass(frozen=True)
class _Batch:
    """Normalised reviews as code points, each review followed by a newline."""

    codes: npt.NDArray[np.uint32]
    n_docs: int


def _join(raw: list[str]) -> npt.NDArray[np.uint32]:
    """Code points of the reviews, each followed by a newline."""
    joined = "\n".join(raw) + "\n"
    # surrogatepass: a lone surrogate is one code point here and is then deleted.
    return np.frombuffer(joined.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)


def _normalise_batch(texts: Iterable[object], max_chars: int) -> _Batch:
    """Normalise a batch of reviews into one code point array."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    raw_cut = max_chars * _RAW_FACTOR
    raw = [t[:raw_cut] if type(t) is str else _as_text(t)[:raw_cut] for t in _as_list(texts)]
    n_docs = len(raw)
    if n_docs == 0:
        return _Batch(np.zeros(0, dtype=np.uint32), 0)
    codes = _join(raw)
    if np.count_nonzero(codes == _SEP) != n_docs:
        raw = [t.replace("\n", " ") for t in raw]
        codes = _join(raw)

    table = _char_table()
    flags = table.flags[codes]
    if flags.any():
        if (flags & _UNKNOWN).any():
            table.learn(codes[(flags & _UNKNOWN) != 0])
            flags = table.flags[codes]
        if (flags & _WHOLE_STRING).any():
            sep_pos = np.flatnonzero(codes == _SEP)
            hit = np.flatnonzero(flags & _WHOLE_STRING)
            for i in np.unique(np.searchsorted(sep_pos, hit)).tolist():
                raw[i] = unicodedata.normalize("NFKC", raw[i])
            codes = _join(raw)
            flags = table.flags[codes]
            if (flags & _UNKNOWN).any():
                table.learn(codes[(flags & _UNKNOWN) != 0])
                flags = table.flags[codes]
    mapped = table.single[codes]
    if (flags & _RESHAPES).any():
        mapped = _reshape(codes, mapped, table)

    mapped = _collapse_spaces(mapped)
    mapped = _cut(mapped, max_chars)
    text = mapped.tobytes().decode("utf-32-le")
    converted = _converter("t2s").convert(text)
    if converted == text:
        return _Batch(mapped, n_docs)
    if len(converted) != len(text) or converted.count("\n") != n_docs:
        # t2s maps one character to one almost always; when a phrase changes length the
        # batch is cut again, and any review that lost its newline is converted alone.
        parts = converted.split("\n")[:-1]
        if len(parts) != n_docs:
            parts = [_converter("t2s").convert(t) for t in text.split("\n")[:-1]]
        converted = "".join(p[:max_chars] + "\n" for p in parts)
    return _Batch(np.frombuffer(converted.encode("utf-32-le"), dtype=np.uint32), n_docs)


def _reshape(
    codes: npt.NDArray[np.uint32], mapped: npt.NDArray[np.uint32], table: _CharTable
) -> npt.NDArray[np.uint32]:
    """Apply the table's deletions and one-to-many replacements."""
    out_len = table.length[codes]
    mapped = mapped[np.repeat(np.arange(codes.size), out_len)]
    multi = np.flatnonzero(out_len > 1)
    if multi.size:
        # Few characters expand (mostly "…" to "..."), so this works on them alone.
        starts = np.cumsum(out_len, dtype=np.int64) - out_len
        count = out_len[multi].astype(np.int64)
        within = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        target = np.repeat(starts[multi], count) + within
        source = np.repeat(table.offset[codes[multi]], count) + within
        mapped[target] = table.expansions[source]
    return mapped


def _collapse_spaces(mapped: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """Turn runs of spaces into one space and drop spaces at either end of a review."""
    space = mapped == 0x20
    if not space.any():
        return mapped
    after_gap = np.empty(mapped.size, dtype=bool)
    after_gap[0] = True
    after_gap[1:] = space[:-1] | (mapped[:-1] == _SEP)
    mapped = mapped[~(space & after_gap)]
    # Runs are single spaces now, so a trailing space is one right before a newline.
    before_end = np.zeros(mapped.size, dtype=bool)
    before_end[:-1] = (mapped[:-1] == 0x20) & (mapped[1:] == _SEP)
    return mapped[~before_end] if before_end.any() else mapped


def _cut(mapped: npt.NDArray[np.uint32], max_chars: int) -> npt.NDArray[np.uint32]:
    """Cut every review to ``max_chars`` characters."""
    sep_pos = np.flatnonzero(mapped == _SEP)
    lengths = np.diff(sep_pos, prepend=-1) - 1
    long_docs = np.flatnonzero(lengths > max_chars)
    if long_docs.size == 0:
        return mapped
    keep = np.ones(mapped.size, dtype=bool)
    ends = sep_pos[long_docs]
    for start, end in zip(
        (ends - lengths[long_docs] + max_chars).tolist(), ends.tolist(), strict=True
    ):
        keep[start:end] = False
    return mapped[keep]


def normalize_text(texts: Iterable[object], max_chars: int = 500) -> list[str]:
    """Normalise reviews the way the sentiment model sees them.

    Steps, per review: missing values (None, NaN, pandas NA) become ""; characters are
    NFKC-normalised (full-width letters, digits and punctuation become half-width) and
    lower-cased; control and format characters are deleted, except line breaks and tabs,
    which become spaces; runs of whitespace become one space and the ends are trimmed;
    the result is cut to ``max_chars`` characters; traditional Chinese becomes
    simplified (OpenCC ``t2s``). NFKC is applied character by character, except in the
    rare review holding combining marks or Hangul jamo, which is normalised as a whole.
    Raw text past ``4 * max_chars`` characters is dropped before anything else, which
    bounds the work on very long reviews.

    Args:
        texts: Reviews; any iterable of strings or missing values, not a single string.
        max_chars: Longest normalised review kept, in characters.

    Returns:
        One normalised string per review, in order.

    Raises:
        TypeError: If ``texts`` is a single string.
        ValueError: If ``max_chars`` is below 1.
    """
    batch = _normalise_batch(texts, max_chars)
    if batch.n_docs == 0:
        return []
    return batch.codes.tobytes().decode("utf-32-le").split("\n")[:-1]


def _iter_buckets(
    codes: npt.NDArray[np.uint32], orders: range, hash_bits: int
) -> Iterator[npt.NDArray[np.uint64]]:
    """Bucket of the n-gram starting at each position, one array per order.

    Each array has one entry per position of ``codes``; a window that crosses the end of
    its review holds ``2**hash_bits``, one past the last real bucket.
    """
    n = codes.size
    # Trailing newlines give every order a window at every position.
    wide = np.empty(n + orders.stop - 2, dtype=np.uint64)
    wide[:n] = codes
    wide[n:] = _SEP
    sep = wide == _SEP
    crosses = sep
    rolling = wide
    shift = np.uint64(64 - hash_bits)
    for order in range(1, orders.stop):
        if order > 1:
            # Polynomial hash of the window: uint64 arithmetic wraps, so it is exact
            # modulo 2**64 and the same on every platform.
            rolling = rolling[:-1] * _POLY
            rolling += wide[order - 1 :]
            crosses = crosses[:-1] | sep[order - 1 :]
        if order < orders.start:
            continue
        buckets = rolling[:n] + _salt(order)
        buckets *= _MULT
        buckets >>= shift
        buckets[crosses[:n]] = 1 << hash_bits
        yield buckets


def _review_lengths(codes: npt.NDArray[np.uint32]) -> npt.NDArray[np.int64]:
    sep_pos = np.flatnonzero(codes == _SEP)
    return np.diff(sep_pos, prepend=-1) - 1


def _gram_counts(lengths: npt.NDArray[np.int64], orders: range) -> npt.NDArray[np.float64]:
    """Number of n-grams of the given orders in reviews of the given lengths."""
    total = np.zeros(lengths.size, dtype=np.float64)
    for order in orders:
        total += np.maximum(lengths - order + 1, 0)
    return total


def _count_matrix(batch: _Batch, orders: range, hash_bits: int) -> sp.csr_matrix:
    """Reviews by buckets: how often each bucket's n-grams occur in each review."""
    n_buckets = 1 << hash_bits
    doc = np.repeat(np.arange(batch.n_docs), _review_lengths(batch.codes) + 1)
    rows, cols = [], []
    for buckets in _iter_buckets(batch.codes, orders, hash_bits):
        valid = buckets < n_buckets
        rows.append(doc[valid])
        cols.append(buckets[valid].astype(np.int64))
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    data = np.ones(row.size, dtype=np.float64)
    matrix = sp.csr_matrix((data, (row, col)), shape=(batch.n_docs, n_buckets))
    matrix.sum_duplicates()
    return matrix


def _score_batch(
    batch: _Batch, weights: npt.NDArray[np.float32], orders: range, hash_bits: int
) -> npt.NDArray[np.float64]:
    """Sum of the weights of each review's n-grams over the square root of their count.

    ``weights`` has one entry per bucket plus a trailing 0 for windows that cross a
    review's end.
    """
    lengths = _review_lengths(batch.codes)
    starts = np.cumsum(lengths + 1) - (lengths + 1)
    total = np.zeros(batch.n_docs, dtype=np.float64)
    for buckets in _iter_buckets(batch.codes, orders, hash_bits):
        # Every review owns at least its newline, so no segment of reduceat is empty.
        total += np.add.reduceat(weights[buckets], starts, dtype=np.float64)
    total /= np.sqrt(np.maximum(_gram_counts(lengths, orders), 1.0))
    return total


class ReviewSentiment(ClassifierMixin, BaseEstimator):
    """Binary sentiment classifier over raw review texts (scikit-learn estimator).

    Features are counts of hashed character n-grams divided by the square root of the
    review's n-gram count. Each bucket's count is scaled by its naive-Bayes log-count
    ratio (from binary presence, smoothed by ``nb_alpha``) before an L2-regularised
    logistic regression is fitted; the scaling is folded into ``coef_`` afterwards.

    Args:
        ngram_min: Shortest character n-gram.
        ngram_max: Longest character n-gram.
        hash_bits: The number of hash buckets is ``2**hash_bits``.
        C: Inverse L2 regularisation strength of the logistic regression.
        max_iter: Iteration limit of the logistic regression solver.
        max_chars: Reviews are cut to this many characters after normalising.
        random_state: Seed handed to the solver (liblinear's primal method draws no
            random numbers; the seed keeps any solver change reproducible).
        nb_alpha: Smoothing count added to every bucket for the naive-Bayes ratios.
        tol: Stopping tolerance of the logistic regression solver.

    Attributes:
        classes_: The two class labels; the second is the "positive" one.
        coef_: Weight of each bucket, shape (1, 2**hash_bits), naive-Bayes scaling folded in.
        intercept_: Intercept, shape (1,).
    """

    def __init__(
        self,
        ngram_min: int = 1,
        ngram_max: int = 3,
        hash_bits: int = 20,
        C: float = 4.0,
        max_iter: int = 1000,
        max_chars: int = 500,
        random_state: int | None = 0,
        nb_alpha: float = 1.0,
        tol: float = 1e-4,
    ) -> None:
        self.ngram_min = ngram_min
        self.ngram_max = ngram_max
        self.hash_bits = hash_bits
        self.C = C
        self.max_iter = max_iter
        self.max_chars = max_chars
        self.random_state = random_state
        self.nb_alpha = nb_alpha
        self.tol = tol

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags

    def _orders(self) -> range:
        if not 1 <= self.ngram_min <= self.ngram_max:
            raise ValueError(
                f"need 1 <= ngram_min <= ngram_max, got {self.ngram_min}, {self.ngram_max}"
            )
        return range(self.ngram_min, self.ngram_max + 1)

    def _check_params(self) -> range:
        if not 8 <= self.hash_bits <= 24:
            raise ValueError(f"hash_bits must be in 8..24, got {self.hash_bits}")
        if not self.C > 0:
            raise ValueError(f"C must be positive, got {self.C}")
        if not self.nb_alpha > 0:
            raise ValueError(f"nb_alpha must be positive, got {self.nb_alpha}")
        return self._orders()

    def fit(self, texts: Iterable[object], y: npt.ArrayLike) -> Self:
        """Fit the model on raw review texts.

        Args:
            texts: Reviews; strings or missing values (which count as empty reviews).
            y: One label per review, of exactly two distinct values.

        Returns:
            The fitted estimator.

        Raises:
            ValueError: If the parameters are invalid, the lengths differ, or ``y`` does
                not hold exactly two classes.
        """
        orders = self._check_params()
        docs = _as_list(texts)
        labels = np.asarray(y)
        if labels.ndim != 1 or labels.shape[0] != len(docs):
            raise ValueError(f"y must be 1-D with {len(docs)} labels, got shape {labels.shape}")
        classes, target = np.unique(labels, return_inverse=True)
        if classes.size != 2:
            raise ValueError(f"y must hold exactly two classes, got {classes.size}")

        batch = _normalise_batch(docs, self.max_chars)
        counts = _count_matrix(batch, orders, self.hash_bits)
        # Buckets that no training review uses keep weight 0 under an L2 penalty anyway;
        # leaving them out of the solver makes it several times faster.
        used = np.flatnonzero(np.bincount(counts.indices, minlength=counts.shape[1]))
        if used.size == 0:
            raise ValueError("no training review has any text left after normalising")
        remap = np.zeros(counts.shape[1], dtype=np.int64)
        remap[used] = np.arange(used.size)
        compact = sp.csr_matrix(
            (counts.data, remap[counts.indices], counts.indptr), shape=(batch.n_docs, used.size)
        )
        ratio = self._nb_ratio(compact, target)
        n_grams = _gram_counts(_review_lengths(batch.codes), orders)
        scale = 1.0 / np.sqrt(np.maximum(n_grams, 1.0))
        features = sp.diags(scale) @ compact @ sp.diags(ratio)
        # liblinear's primal trust-region Newton method, not its dual coordinate descent:
        # on real review text the n-gram features nearly separate the classes, so many
        # dual variables creep towards their bound C and the dual ran out of iterations
        # (ConvergenceWarning) at larger C, or on larger mixed corpora, with the same
        # optimum. Newton steps converge in a few dozen matrix-vector products whatever
        # C is; each costs one pass over the non-zeros, as a dual epoch does.
        solver = LogisticRegression(
            C=self.C,
            solver="liblinear",
            dual=False,
            max_iter=self.max_iter,
            tol=self.tol,
            random_state=self.random_state,
        )
        solver.fit(features, target)

        coef = np.zeros(counts.shape[1], dtype=np.float32)
        # float32 halves the table that scoring reads at random, which is what bounds
        # its speed; the rounding is far below any difference in sentiment.
        coef[used] = solver.coef_[0] * ratio
        self.classes_ = classes
        self.coef_ = coef.reshape(1, -1)
        self.intercept_ = np.asarray(solver.intercept_, dtype=np.float64).reshape(1)
        return self

    def _nb_ratio(
        self, counts: sp.csr_matrix, target: npt.NDArray[np.intp]
    ) -> npt.NDArray[np.float64]:
        """Naive-Bayes log-count ratio of each bucket, from binary presence."""
        present = counts.copy()
        present.data[:] = 1.0
        pos = self.nb_alpha + np.asarray(present[target == 1].sum(axis=0)).ravel()
        neg = self.nb_alpha + np.asarray(present[target == 0].sum(axis=0)).ravel()
        return np.log(pos / pos.sum()) - np.log(neg / neg.sum())

    def decision_function(self, texts: Iterable[object]) -> npt.NDArray[np.float64]:
        """Log-odds of the positive class (``classes_[1]``) for each review.

        Args:
            texts: Reviews; strings or missing values.

        Returns:
            Array of shape (n_reviews,).

        Raises:
            sklearn.exceptions.NotFittedError: If the model has not been fitted.
        """
        check_is_fitted(self, ("coef_", "intercept_", "classes_"))
        orders = self._orders()
        docs = _as_list(texts)
        weights = np.append(np.asarray(self.coef_, dtype=np.float32).ravel(), np.float32(0))
        if weights.size != (1 << self.hash_bits) + 1:
            raise ValueError("coef_ does not match hash_bits")
        scores = np.empty(len(docs), dtype=np.float64)
        starts = range(0, len(docs), _BLOCK_DOCS)
        # A bar only on a terminal, for batches large enough to take a while.
        blocks = progress.track(starts, "sentiment: batches") if len(starts) > 4 else starts
        for start in blocks:
            stop = start + _BLOCK_DOCS
            batch = _normalise_batch(docs[start:stop], self.max_chars)
            scores[start:stop] = _score_batch(batch, weights, orders, self.hash_bits)
        return scores + float(self.intercept_[0])

    def predict_proba(self, texts: Iterable[object]) -> npt.NDArray[np.float64]:
        """Class probabilities for each review.

        Args:
            texts: Reviews; strings or missing values.

        Returns:
            Array of shape (n_reviews, 2); column ``i`` is the probability of
            ``classes_[i]``.
        """
        positive = expit(self.decision_function(texts))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, texts: Iterable[object]) -> npt.NDArray[Any]:
        """Most likely class label of each review.

        Args:
            texts: Reviews; strings or missing values.

        Returns:
            Array of shape (n_reviews,) of values from ``classes_``.
        """
        scores = self.decision_function(texts)
        return np.asarray(self.classes_)[(scores > 0).astype(np.intp)]

    # ----------------------------------------------------------------------- storage

    def save(self, directory: str | Path) -> Path:
        """Write the fitted model as ``weights.npz`` and ``config.json``.

        Only the buckets with a non-zero weight are stored. The folder is created if
        missing; files already in it are overwritten.

        Args:
            directory: Folder to write into.

        Returns:
            The folder, as a path.

        Raises:
            sklearn.exceptions.NotFittedError: If the model has not been fitted.
        """
        check_is_fitted(self, ("coef_", "intercept_", "classes_"))
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        coef = np.asarray(self.coef_, dtype=np.float32).ravel()
        index = np.flatnonzero(coef).astype(np.int64)
        config = {
            "format": FORMAT_ID,
            "version": FORMAT_VERSION,
            "params": self.get_params(),
            "classes": np.asarray(self.classes_).tolist(),
            "n_buckets": int(coef.size),
        }
        # Each file is written beside its final name and then renamed over it, so a
        # crash never leaves a half-written file under the name that load() reads.
        weights_tmp = folder / f".{WEIGHTS_FILE}.tmp"
        with weights_tmp.open("wb") as fh:
            np.savez_compressed(
                fh,
                index=index,
                weight=coef[index],
                intercept=np.asarray(self.intercept_, dtype=np.float64).reshape(1),
            )
        config_tmp = folder / f".{CONFIG_FILE}.tmp"
        config_tmp.write_text(
            json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        os.replace(weights_tmp, folder / WEIGHTS_FILE)
        os.replace(config_tmp, folder / CONFIG_FILE)
        return folder

    @classmethod
    def load(cls, directory: str | Path) -> ReviewSentiment:
        """Read a model written by :meth:`save`.

        Args:
            directory: Folder holding ``weights.npz`` and ``config.json``.

        Returns:
            The fitted model; it scores exactly as the saved one did.

        Raises:
            ModelError: If a file is missing, unreadable, of another format or version, or
                inconsistent with the other.
        """
        folder = Path(directory)
        config = _read_config(folder / CONFIG_FILE)
        params = config["params"]
        try:
            model = cls(**params)
            model._check_params()
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{folder / CONFIG_FILE}: invalid parameters: {exc}") from exc
        n_buckets = 1 << model.hash_bits
        if config.get("n_buckets") != n_buckets:
            raise ModelError(
                f"{folder / CONFIG_FILE}: n_buckets {config.get('n_buckets')!r} "
                f"does not match hash_bits {model.hash_bits}"
            )
        index, weight, intercept = _read_weights(folder / WEIGHTS_FILE, n_buckets)
        coef = np.zeros(n_buckets, dtype=np.float32)
        coef[index] = weight
        model.classes_ = np.asarray(config["classes"])
        model.coef_ = coef.reshape(1, -1)
        model.intercept_ = intercept
        return model


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelError(f"sentiment model config not found: {path}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable sentiment model config: {exc}") from exc
    if not isinstance(config, dict):
        raise ModelError(f"{path}: sentiment model config is not a JSON object")
    if config.get("format") != FORMAT_ID:
        raise ModelError(
            f"{path}: format {config.get('format')!r} is not a sentiment model ({FORMAT_ID!r})"
        )
    if config.get("version") != FORMAT_VERSION:
        raise ModelError(
            f"{path}: sentiment model version {config.get('version')!r} is not supported "
            f"(this refundguard reads version {FORMAT_VERSION})"
        )
    params, classes = config.get("params"), config.get("classes")
    if not isinstance(params, dict):
        raise ModelError(f"{path}: 'params' must be a JSON object")
    if not isinstance(classes, list) or len(classes) != 2:
        raise ModelError(f"{path}: 'classes' must list exactly two labels")
    return config


def _read_weights(
    path: Path, n_buckets: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    if not path.is_file():
        raise ModelError(f"sentiment model weights not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in ("index", "weight", "intercept")}
    except KeyError as exc:
        raise ModelError(f"{path}: weights file lacks array {exc}") from exc
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{path}: unreadable sentiment model weights: {exc}") from exc
    index, weight, intercept = arrays["index"], arrays["weight"], arrays["intercept"]
    if (
        index.ndim != 1
        or weight.shape != index.shape
        or intercept.shape != (1,)
        or index.dtype.kind not in "iu"
        or weight.dtype.kind != "f"
        or intercept.dtype.kind != "f"
    ):
        raise ModelError(f"{path}: weights arrays have unexpected shapes or types")
    if index.size and (index.min() < 0 or index.max() >= n_buckets):
        raise ModelError(f"{path}: bucket index out of range for {n_buckets} buckets")
    if not (np.isfinite(weight).all() and np.isfinite(intercept).all()):
        raise ModelError(f"{path}: weights hold NaN or infinite values")
    return (
        index.astype(np.int64),
        weight.astype(np.float32),
        intercept.astype(np.float64),
    )


STATUS_FILE = "status.json"


def _own_texts(reviews: pd.DataFrame) -> tuple[pd.Series, np.ndarray]:
    text = reviews["text"].astype("str").str.strip()
    has_text = text.notna() & (text != "") & ~text.isin(list(SYSTEM_REVIEW_TEXTS))
    return text, has_text.to_numpy(dtype=bool)


def training_pairs(reviews: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Texts and labels from the reviews' own stars: 4-5 positive, 1-2 negative, 3 left out.

    Args:
        reviews: Validated reviews (rating, text).

    Returns:
        Texts and 0/1 labels.
    """
    text, has_text = _own_texts(reviews)
    rating = reviews["rating"].to_numpy(dtype="float64")
    keep = has_text & np.isin(rating, (1.0, 2.0, 4.0, 5.0))
    return text[keep].tolist(), (rating[keep] >= 4).astype(int)


def predict_reviews(model: ReviewSentiment, reviews: pd.DataFrame) -> pd.DataFrame:
    """Sentiment (probability the text is positive) of every review with its own text.

    Args:
        model: A fitted model.
        reviews: Validated reviews (review_id, text).

    Returns:
        review_id and sentiment; reviews without a text of their own are left out.
    """
    text, has_text = _own_texts(reviews)
    probs: npt.NDArray[np.float64] = (
        model.predict_proba(text[has_text].tolist())[:, 1] if has_text.any() else np.empty(0)
    )
    return pd.DataFrame(
        {
            "review_id": pd.Series(
                reviews["review_id"].to_numpy(dtype=object)[has_text], dtype="str"
            ),
            "sentiment": np.asarray(probs, dtype="float64"),
        }
    )


def read_model(directory: Path) -> ReviewSentiment | None:
    """The stage's model, or None when the stage had too few rated texts to train one.

    Args:
        directory: models/sentiment.

    Returns:
        The model or None.

    Raises:
        ModelError: The folder holds a model that cannot be read.
    """
    status = directory / STATUS_FILE
    if status.is_file() and not json.loads(status.read_text(encoding="utf-8")).get("trained"):
        return None
    return ReviewSentiment.load(directory)
