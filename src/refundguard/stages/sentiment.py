"""Sentiment stage: train the review sentiment model on star ratings and score every review."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from refundguard.config import load_params
from refundguard.data.io import write_json, write_parquet
from refundguard.features.sentiment import (
    CONFIG_FILE,
    STATUS_FILE,
    WEIGHTS_FILE,
    ReviewSentiment,
    predict_reviews,
    training_pairs,
)
from refundguard.paths import (
    PARAMS_FILE,
    REVIEW_SENTIMENT_FILE_NAME,
    SENTIMENT_DIR,
    SENTIMENT_MODEL_DIR,
    VALIDATED_DIR,
    VALIDATED_TABLE_SUFFIX,
    require_project,
)

log = logging.getLogger(__name__)


def main(
    params_path: Path = PARAMS_FILE,
    validated_dir: Path = VALIDATED_DIR,
    out_dir: Path = SENTIMENT_DIR,
    model_dir: Path = SENTIMENT_MODEL_DIR,
) -> ReviewSentiment | None:
    """Train on the validated reviews' stars, score every review, write both.

    The model learns text -> stars, which every review carries from the moment it is
    posted, so training on all reviews leaks no abuse label into the features.

    Args:
        params_path: params.yaml.
        validated_dir: The validate stage's folder.
        out_dir: Destination of review_sentiment.parquet.
        model_dir: Destination of the model files.

    Returns:
        The model, or None when there were too few rated texts (sentiment stays missing).

    Raises:
        ConfigError: Run outside a project (no params.yaml found), or bad params.
    """
    require_project(params_path)
    params = load_params(params_path)
    sp_ = params.sentiment
    reviews = pd.read_parquet(validated_dir / f"reviews{VALIDATED_TABLE_SUFFIX}")
    texts, y = training_pairs(reviews)
    model_dir.mkdir(parents=True, exist_ok=True)
    if len(texts) < sp_.min_labeled_reviews or len(set(y.tolist())) < 2:
        log.info(
            "sentiment: %d rated texts (< %d): no model; sentiment features stay missing",
            len(texts),
            sp_.min_labeled_reviews,
        )
        for stale in (model_dir / WEIGHTS_FILE, model_dir / CONFIG_FILE):
            stale.unlink(missing_ok=True)
        write_json({"trained": False, "rated_texts": len(texts)}, model_dir / STATUS_FILE)
        empty = pd.DataFrame(
            {"review_id": pd.Series(dtype="str"), "sentiment": pd.Series(dtype="float64")}
        )
        write_parquet(empty, out_dir / REVIEW_SENTIMENT_FILE_NAME)
        return None
    model = ReviewSentiment(
        ngram_min=sp_.ngram_min,
        ngram_max=sp_.ngram_max,
        hash_bits=sp_.hash_bits,
        C=sp_.C,
        max_iter=sp_.max_iter,
        max_chars=sp_.max_chars,
        random_state=params.base.seed,
    ).fit(texts, y)
    model.save(model_dir)
    write_json({"trained": True, "rated_texts": len(texts)}, model_dir / STATUS_FILE)
    write_parquet(predict_reviews(model, reviews), out_dir / REVIEW_SENTIMENT_FILE_NAME)
    log.info("sentiment: trained on %d rated texts", len(texts))
    return model
