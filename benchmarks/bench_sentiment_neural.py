"""A neural review-sentiment model on the real corpora: does it reach the 0.92 target?

Trains a character bidirectional GRU from scratch (character embeddings plus hashed
character-bigram embeddings, max- and mean-pooled over time, 4 epochs of Adam) on the
same stratified 5-fold splits (seed 0) as ``bench_sentiment.py``, and reports:

* its 5-fold accuracy on waimai_10k and ChnSentiCorp_htl_all;
* the accuracy of refundguard's NB-LR on the same folds;
* averages of the two models' standardised out-of-fold scores (weights 0.3 and 0.5 on
  the GRU), each fold's decision threshold chosen on the other four folds' scores;
* the GRU's scoring throughput on one thread, in reviews per second.

PyTorch is not a refundguard dependency, so this runs in its own environment:

    python3 -m venv /tmp/bench-torch
    /tmp/bench-torch/bin/pip install -r requirements.lock torch==2.13.0
    /tmp/bench-torch/bin/pip install --no-deps -e .
    /tmp/bench-torch/bin/python benchmarks/bench_sentiment_neural.py [--reviews-dir DIR]

Results go to benchmarks/results/sentiment_neural.json. It takes about 40 minutes on
2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import StratifiedKFold
from torch import nn

from bench_sentiment import CORPORA, REPO, SEED, default_reviews_dir
from refundguard.features.sentiment import ReviewSentiment, normalize_text

RESULTS = REPO / "benchmarks" / "results" / "sentiment_neural.json"
MAX_CHARS = 160
BIGRAM_BUCKETS = 1 << 18
DIM = 96
EPOCHS = 4
BATCH = 64
BLEND_WEIGHTS = (0.3, 0.5)


def encode(texts: list[str], vocab: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Character ids (0 pad, 1 unknown) and hashed bigram ids, cut to MAX_CHARS."""
    chars = np.zeros((len(texts), MAX_CHARS), np.int64)
    bigrams = np.zeros((len(texts), MAX_CHARS), np.int64)
    for i, text in enumerate(texts):
        text = text[:MAX_CHARS]
        for j, ch in enumerate(text):
            chars[i, j] = vocab.get(ch, 1)
            if j:
                # crc32, not hash(): the buckets must not depend on PYTHONHASHSEED.
                key = text[j - 1 : j + 1].encode()
                bigrams[i, j] = zlib.crc32(key) % (BIGRAM_BUCKETS - 1) + 1
    return torch.from_numpy(chars), torch.from_numpy(bigrams)


class CharGRU(nn.Module):
    def __init__(self, n_chars: int) -> None:
        super().__init__()
        self.chars = nn.Embedding(n_chars, DIM, padding_idx=0)
        self.bigrams = nn.Embedding(BIGRAM_BUCKETS, DIM, padding_idx=0)
        self.drop = nn.Dropout(0.3)
        self.rnn = nn.GRU(DIM, DIM, batch_first=True, bidirectional=True)
        self.out = nn.Linear(4 * DIM, 1)

    def forward(self, chars: torch.Tensor, bigrams: torch.Tensor) -> torch.Tensor:
        mask = (chars > 0).float().unsqueeze(-1)
        hidden, _ = self.rnn(self.drop(self.chars(chars) + self.bigrams(bigrams)))
        top = (hidden - 1e4 * (1 - mask)).max(1).values
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.out(self.drop(torch.cat([top, mean], 1))).squeeze(-1)


def trimmed(chars: torch.Tensor, bigrams: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(int((chars > 0).sum(1).max()), 1)
    return chars[:, :width], bigrams[:, :width]


def fit_gru(texts: list[str], y: np.ndarray, seed: int) -> tuple[CharGRU, dict[str, int]]:
    torch.manual_seed(seed)
    counts = Counter(ch for text in texts for ch in text)
    vocab = {ch: i + 2 for i, (ch, n) in enumerate(counts.most_common()) if n >= 2}
    chars, bigrams = encode(texts, vocab)
    net = CharGRU(len(vocab) + 2)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    target = torch.tensor(y, dtype=torch.float32)
    for _ in range(EPOCHS):
        net.train()
        order = torch.randperm(len(texts))
        for start in range(0, len(texts), BATCH):
            idx = order[start : start + BATCH]
            logits = net(*trimmed(chars[idx], bigrams[idx]))
            loss = nn.functional.binary_cross_entropy_with_logits(logits, target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval(), vocab


def score_gru(net: CharGRU, vocab: dict[str, int], texts: list[str]) -> np.ndarray:
    chars, bigrams = encode(texts, vocab)
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), 256):
            part = trimmed(chars[start : start + 256], bigrams[start : start + 256])
            out.append(net(*part).numpy())
    return np.concatenate(out)


def blended_accuracy(a: np.ndarray, b: np.ndarray, w: float, y: np.ndarray,
                     fold: np.ndarray) -> float:
    """Accuracy of w*z(a) + (1-w)*z(b), each fold thresholded on the other folds."""
    score = w * (a - a.mean()) / a.std() + (1 - w) * (b - b.mean()) / b.std()
    correct = 0
    for k in np.unique(fold):
        train, test = fold != k, fold == k
        grid = np.quantile(score[train], np.linspace(0.05, 0.95, 181))
        best = max(grid, key=lambda t: float(((score[train] > t) == y[train]).mean()))
        correct += int(((score[test] > best) == y[test]).sum())
    return correct / len(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews-dir", type=Path, default=default_reviews_dir())
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__},
        "settings": {"max_chars": MAX_CHARS, "dim": DIM, "epochs": EPOCHS,
                     "bigram_buckets": BIGRAM_BUCKETS, "seed": SEED},
    }
    for name, file in CORPORA.items():
        frame = pd.read_csv(args.reviews_dir / file)
        raw = frame["review"].tolist()
        texts = normalize_text(raw)
        y = frame["label"].to_numpy()
        fold = np.zeros(len(y), np.int64)
        gru = np.zeros(len(y))
        nblr = np.zeros(len(y))
        start = time.perf_counter()
        for k, (train, test) in enumerate(
            StratifiedKFold(5, shuffle=True, random_state=SEED).split(y, y)
        ):
            fold[test] = k
            net, vocab = fit_gru([texts[i] for i in train], y[train], seed=k)
            gru[test] = score_gru(net, vocab, [texts[i] for i in test])
            model = ReviewSentiment().fit([raw[i] for i in train], y[train])
            nblr[test] = model.decision_function([raw[i] for i in test])
            print(f"  {name} fold {k}: GRU {((gru[test] > 0) == y[test]).mean():.4f}, "
                  f"NB-LR {((nblr[test] > 0) == y[test]).mean():.4f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
        torch.set_num_threads(1)
        sample = [texts[i % len(texts)] for i in range(5000)]
        t = time.perf_counter()
        score_gru(net, vocab, sample)
        per_second = len(sample) / (time.perf_counter() - t)
        torch.set_num_threads(2)
        entry = {
            "gru_accuracy": float(((gru > 0) == y).mean()),
            "nblr_accuracy": float(((nblr > 0) == y).mean()),
            "blend_accuracy": {str(w): blended_accuracy(gru, nblr, w, y, fold)
                               for w in BLEND_WEIGHTS},
            "gru_reviews_per_second_one_thread": per_second,
            "seconds": time.perf_counter() - start,
        }
        results[name] = entry
        print(f"{name}: {json.dumps(entry)}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
